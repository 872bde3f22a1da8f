/**
 * deploy/Dockerfile without a Docker engine: its structure checked statically, and its two stages
 * replayed on this machine's file system.
 *
 * The replay executes the instructions the image is made of, in order, each stage in its own
 * directory standing for its root file system: WORKDIR, COPY from the build context (the
 * repository filtered by deploy/Dockerfile.dockerignore, exactly as BuildKit filters it) or from the
 * earlier stage, ENV, and the RUN steps. Of these, `npm run …` runs for real; `npm ci` is the
 * repository's own node_modules (the install of the same lock file: tests have no registry), and
 * `npm prune --omit=…` keeps exactly the lock file's packages that npm would keep (by their
 * dev/optional flags). The runtime stage's ENTRYPOINT then runs with the image's ENV, under
 * `--preserve-symlinks` so that a package resolves its dependencies from the pruned tree only.
 * Not replayed: the base image itself (its Node is the one running the tests, the version the
 * Dockerfile names) and file ownership.
 */
import { spawnSync } from "node:child_process"
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import process from "node:process"
import ignore from "@balena/dockerignore"
import { DockerfileParser, type Flag, type Instruction } from "dockerfile-ast"
import { validate } from "dockerfile-utils"
import { root } from "./manifests.ts"

/** The build-context ignore file BuildKit reads for deploy/Dockerfile. */
export const dockerignorePath = path.join(root, "deploy/Dockerfile.dockerignore")

/** What the checks read of package.json. */
export interface PackageJson {
  readonly version: string
  readonly bin?: string | Readonly<Record<string, string>>
  readonly engines?: Readonly<Record<string, string>>
  readonly scripts?: Readonly<Record<string, string>>
  readonly devDependencies?: Readonly<Record<string, string>>
}

export const readPackageJson = (): PackageJson =>
  JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as PackageJson

/** One `FROM … AS name` and its instructions. */
export interface Stage {
  readonly name: string
  /** The image with the Dockerfile's initial ARGs substituted. */
  readonly image: string
  readonly from: Instruction
  readonly instructions: ReadonlyArray<Instruction>
}

/** The stages of a Dockerfile, in order. */
export const stagesOf = (text: string): Array<Stage> => {
  const dockerfile = DockerfileParser.parse(text)
  const args = new Map<string, string>()
  for (const arg of dockerfile.getInitialARGs()) {
    for (const property of arg.getProperties()) args.set(property.getName(), property.getValue() ?? "")
  }
  const substitute = (value: string) =>
    value.replaceAll(
      /\$\{(\w+)\}|\$(\w+)/g,
      (whole, a: string | undefined, b: string | undefined) => args.get(a ?? b ?? "") ?? whole
    )
  const stages: Array<Stage> = []
  let current: { name: string; image: string; from: Instruction; instructions: Array<Instruction> } | undefined
  for (const instruction of dockerfile.getInstructions()) {
    if (instruction.getKeyword() === "FROM") {
      const words = instruction.getArguments().map((arg) => arg.getValue())
      const as = words.findIndex((word) => word.toUpperCase() === "AS")
      current = {
        name: as < 0 ? String(stages.length) : (words[as + 1] ?? ""),
        image: substitute(words.find((word) => !word.startsWith("--")) ?? ""),
        from: instruction,
        instructions: []
      }
      stages.push(current)
    } else {
      current?.instructions.push(instruction)
    }
  }
  return stages
}

/** The words of an instruction; the JSON form (`["node", "x"]`) read as JSON. */
export const wordsOf = (instruction: Instruction): Array<string> => {
  const content = instruction.getArgumentsContent() ?? ""
  if (content.trim().startsWith("[")) {
    try {
      return JSON.parse(content) as Array<string>
    } catch {
      return []
    }
  }
  return instruction.getArguments().map((arg) => arg.getValue())
}

const line = (instruction: Instruction) => `Dockerfile:${instruction.getRange().start.line + 1}`

/** The `--from=stage` of a COPY, and its sources and destination. */
const copyOf = (instruction: Instruction) => {
  const flags = (instruction as Instruction & { getFlags?: () => Array<Flag> }).getFlags?.() ?? []
  const from = flags.find((flag) => flag.getName() === "from")?.getValue() ?? undefined
  const paths = wordsOf(instruction).filter((word) => !word.startsWith("--"))
  return { from, sources: paths.slice(0, -1), destination: paths.at(-1) ?? "" }
}

/** The RUN steps of a stage, one command each (`a && b` is two). */
const runSteps = (stage: Stage) =>
  stage.instructions
    .filter((instruction) => instruction.getKeyword() === "RUN")
    .flatMap((instruction) =>
      (instruction.getArgumentsContent() ?? "")
        .split("&&")
        .map((command) => ({ instruction, command: command.trim().replaceAll(/\s+/g, " ") }))
    )

/** The package's `plait` binary, as a path relative to the package root (`dist/cli/bin.js`). */
export const binOf = (pkg: PackageJson): string | undefined => {
  const bin = typeof pkg.bin === "string" ? pkg.bin : pkg.bin?.plait
  return bin === undefined ? undefined : path.posix.normalize(bin)
}

/** The lowest major version an `engines` range (`>=20`, `^24.1`, `24.x`, `24`) admits, or undefined. */
const lowestMajor = (range: string): number | undefined => {
  const match = /^(?:>=|\^|~)?\s*(\d+)(?:\.(?:\d+|x))*$/.exec(range.trim())
  return match === null ? undefined : Number(match[1])
}

/** The source file `tsconfig.build.json` compiles to a `dist/` path, or undefined. */
export const sourceOf = (distPath: string): string | undefined => {
  const build = JSON.parse(readFileSync(path.join(root, "tsconfig.build.json"), "utf8")) as {
    compilerOptions?: { rootDir?: string; outDir?: string }
  }
  const outDir = path.posix.normalize(build.compilerOptions?.outDir ?? "dist")
  const rootDir = path.posix.normalize(build.compilerOptions?.rootDir ?? "src")
  if (!distPath.startsWith(`${outDir}/`)) return undefined
  return `${rootDir}/${distPath.slice(outDir.length + 1).replace(/\.js$/, ".ts")}`
}

/**
 * The static checks: the linter of the VS Code Docker extension finds nothing; two stages on the
 * slim image of the Node version the tests run on, which package.json's engines admit; the build
 * stage installs from the lock, builds and prunes; every build-context COPY names files that exist
 * and that the ignore file sends; the runtime stage takes only package.json, node_modules and dist
 * from the build; it runs as a numeric non-root user; its ENTRYPOINT is `node` and the package's
 * `plait` binary; and it caps the young generation as the npm scripts do.
 */
export const dockerfileProblems = (text: string, ignoreText: string, pkg: PackageJson): Array<string> => {
  const problems: Array<string> = []
  for (const diagnostic of validate(text)) {
    problems.push(`Dockerfile:${diagnostic.range.start.line + 1}: ${diagnostic.message}`)
  }
  const stages = stagesOf(text)
  if (stages.length !== 2) problems.push(`Dockerfile: ${stages.length} stages, not 2 (build, runtime)`)
  const build = stages.find((stage) => stage.name === "build")
  const runtime = stages.at(-1)
  if (build === undefined) {
    problems.push("Dockerfile: no stage named build")
    return problems
  }
  if (runtime === undefined || runtime === build) {
    problems.push("Dockerfile: no runtime stage after build")
    return problems
  }

  const node = pkg.devDependencies?.node
  const engine = pkg.engines?.node
  for (const stage of stages) {
    const match = /^node:(\d+)\.(\d+)\.(\d+)-[a-z]+-slim$/.exec(stage.image)
    if (match === null) {
      problems.push(`${line(stage.from)}: stage ${stage.name} is FROM ${stage.image}, not node:X.Y.Z-<debian>-slim`)
      continue
    }
    const version = `${match[1]}.${match[2]}.${match[3]}`
    if (version !== node) {
      problems.push(
        `${line(stage.from)}: stage ${stage.name} runs Node ${version}, the tests run ${node} (devDependencies.node)`
      )
    }
    const lowest = engine === undefined ? undefined : lowestMajor(engine)
    if (lowest === undefined || Number(match[1]) < lowest) {
      problems.push(`${line(stage.from)}: Node ${match[1]} is not admitted by package.json engines.node ${engine}`)
    }
  }

  // Build stage: lock-file install, then the repository's build, then the prune.
  const steps = runSteps(build)
  const at = (pattern: RegExp) => steps.findIndex((step) => pattern.test(step.command))
  const ci = at(/^npm ci\b/)
  const runBuild = at(/^npm run build\b/)
  const prune = at(/^npm prune\b.*--omit=dev\b/)
  if (ci < 0) problems.push("Dockerfile: the build stage does not run npm ci")
  if (runBuild < 0 || runBuild < ci)
    problems.push("Dockerfile: the build stage does not run npm run build after npm ci")
  if (prune < 0 || prune < runBuild)
    problems.push("Dockerfile: the build stage does not run npm prune --omit=dev after the build")
  const context = ignore().add(ignoreText)
  const copied = new Set<string>()
  for (const instruction of build.instructions) {
    if (instruction.getKeyword() === "ADD")
      problems.push(`${line(instruction)}: ADD (use COPY: no URL, no archive unpacking)`)
    if (instruction.getKeyword() === "RUN" && /^npm ci\b/.test((instruction.getArgumentsContent() ?? "").trim())) {
      for (const file of ["package.json", "package-lock.json"]) {
        if (!copied.has(file)) problems.push(`${line(instruction)}: npm ci runs before ${file} is copied`)
      }
    }
    if (instruction.getKeyword() !== "COPY") continue
    const { from, sources } = copyOf(instruction)
    if (from !== undefined) continue
    for (const source of sources) {
      const relative = path.posix.normalize(source)
      if (!existsSync(path.join(root, relative)))
        problems.push(`${line(instruction)}: COPY ${source}: no such file in the repository`)
      else if (context.ignores(relative))
        problems.push(`${line(instruction)}: COPY ${source}: excluded by Dockerfile.dockerignore`)
      copied.add(relative)
    }
  }
  for (const host of ["node_modules", "dist", ".git", "test", ".env"]) {
    if (!context.ignores(host)) problems.push(`Dockerfile.dockerignore: sends ${host} to the build context`)
  }

  // Runtime stage: package.json, node_modules and dist from the build, nothing else.
  const taken = new Set<string>()
  for (const instruction of runtime.instructions) {
    if (instruction.getKeyword() === "ADD") problems.push(`${line(instruction)}: ADD in the runtime stage`)
    if (instruction.getKeyword() === "RUN")
      problems.push(`${line(instruction)}: RUN in the runtime stage (it ships what the build made)`)
    if (instruction.getKeyword() !== "COPY") continue
    const { from, sources } = copyOf(instruction)
    if (from !== build.name)
      problems.push(
        `${line(instruction)}: the runtime stage copies from ${from ?? "the build context"}, not from ${build.name}`
      )
    for (const source of sources) taken.add(path.posix.basename(source))
  }
  for (const wanted of ["package.json", "node_modules", "dist"]) {
    if (!taken.has(wanted)) problems.push(`Dockerfile: the runtime stage does not copy ${wanted} from the build`)
  }
  for (const extra of taken) {
    if (!["package.json", "node_modules", "dist"].includes(extra))
      problems.push(`Dockerfile: the runtime stage copies ${extra}`)
  }

  const user = runtime.instructions.findLast((instruction) => instruction.getKeyword() === "USER")
  const [uid, gid] = (user?.getArgumentsContent() ?? "").split(":")
  if (user === undefined) problems.push("Dockerfile: the runtime stage has no USER (it would run as root)")
  else if (!/^\d+$/.test(uid ?? "") || Number(uid) === 0 || (gid !== undefined && !/^\d+$/.test(gid))) {
    problems.push(
      `${line(user)}: USER ${user.getArgumentsContent()} is not a numeric non-root uid[:gid] (runAsNonRoot cannot verify a name)`
    )
  }

  const entrypoints = runtime.instructions.filter((instruction) => instruction.getKeyword() === "ENTRYPOINT")
  const entrypoint = entrypoints.at(-1)
  const workdir =
    runtime.instructions.findLast((instruction) => instruction.getKeyword() === "WORKDIR")?.getArgumentsContent() ?? "/"
  const bin = binOf(pkg)
  if (entrypoint === undefined) {
    problems.push("Dockerfile: the runtime stage has no ENTRYPOINT")
  } else {
    const words = wordsOf(entrypoint)
    const expected = bin === undefined ? undefined : path.posix.join(workdir, bin)
    if (!(entrypoint.getArgumentsContent() ?? "").trim().startsWith("[")) {
      problems.push(`${line(entrypoint)}: ENTRYPOINT in shell form (node would not be PID 1 and would not get SIGTERM)`)
    }
    if (bin === undefined) problems.push("package.json: no bin plait")
    else if (words[0] !== "node" || words[1] !== expected || words.length !== 2) {
      problems.push(
        `${line(entrypoint)}: ENTRYPOINT ${JSON.stringify(words)} is not ["node", "${expected}"] (package.json bin plait)`
      )
    }
    const source = bin === undefined ? undefined : sourceOf(bin)
    if (bin !== undefined && (source === undefined || !existsSync(path.join(root, source)))) {
      problems.push(`package.json: bin plait ${bin} is built from ${source ?? "no source"}, which does not exist`)
    }
  }

  const env = new Map<string, string>()
  for (const instruction of runtime.instructions.filter((i) => i.getKeyword() === "ENV")) {
    const words = wordsOf(instruction)
    for (const word of words) {
      const eq = word.indexOf("=")
      if (eq > 0) env.set(word.slice(0, eq), word.slice(eq + 1))
    }
  }
  const semiSpace = Object.values(pkg.scripts ?? {})
    .map((script) => /--max-semi-space-size=(\d+)/.exec(script)?.[0])
    .find((flag) => flag !== undefined)
  if (semiSpace !== undefined && !(env.get("NODE_OPTIONS") ?? "").split(/\s+/).includes(semiSpace)) {
    problems.push(
      `Dockerfile: NODE_OPTIONS does not carry ${semiSpace}, as the npm scripts do (the bench's memory figures assume it)`
    )
  }
  return problems
}

// ---------------------------------------------------------------------------------------------
// Replay

/** What a replay built: each stage's root directory, the runtime's ENV and its ENTRYPOINT. */
export interface Replayed {
  readonly problems: ReadonlyArray<string>
  readonly runtimeRoot: string
  readonly workdir: string
  readonly env: Readonly<Record<string, string>>
  readonly entrypoint: ReadonlyArray<string>
  readonly cleanup: () => void
}

/** Copies `source` (a context path) to `target`, leaving out what the ignore file excludes. */
const copyFromContext = (source: string, target: string, context: ReturnType<typeof ignore>) =>
  cpSync(path.join(root, source), target, {
    recursive: true,
    filter: (from) => {
      const relative = path.relative(root, from)
      return relative === "" || !context.ignores(relative.split(path.sep).join("/"))
    }
  })

/** The lock file's packages that `npm prune --omit=…` keeps, as top-level node_modules names. */
const keptPackages = (lockFile: string, omit: ReadonlySet<string>): Array<string> => {
  const lock = JSON.parse(readFileSync(lockFile, "utf8")) as {
    packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }>
  }
  return Object.entries(lock.packages)
    .filter(([key]) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(key))
    .filter(([, entry]) => {
      if (omit.has("dev") && entry.dev === true) return false
      if (omit.has("optional") && entry.optional === true) return false
      if (omit.has("dev") && omit.has("optional") && entry.devOptional === true) return false
      return true
    })
    .map(([key]) => key.slice("node_modules/".length))
}

/**
 * Replays the Dockerfile's stages into a temporary directory (see the module header). Problems are
 * instructions that could not be replayed or failed; `cleanup` removes the directory.
 */
export const replay = (text: string, ignoreText: string): Replayed => {
  const base = mkdtempSync(path.join(tmpdir(), "plait-image-"))
  const cleanup = () => rmSync(base, { recursive: true, force: true })
  const problems: Array<string> = []
  const context = ignore().add(ignoreText)
  const stageRoots = new Map<string, string>()
  let env: Record<string, string> = {}
  let workdir = "/"
  let entrypoint: Array<string> = []
  let stageRoot = base
  const inStage = (imagePath: string) => path.join(stageRoot, path.posix.resolve(workdir, imagePath))

  for (const stage of stagesOf(text)) {
    stageRoot = path.join(base, stage.name)
    mkdirSync(stageRoot, { recursive: true })
    stageRoots.set(stage.name, stageRoot)
    env = {}
    workdir = "/"
    entrypoint = []
    for (const instruction of stage.instructions) {
      const keyword = instruction.getKeyword()
      if (keyword === "WORKDIR") {
        workdir = path.posix.resolve(workdir, instruction.getArgumentsContent() ?? "/")
        mkdirSync(path.join(stageRoot, workdir), { recursive: true })
      } else if (keyword === "ENV") {
        for (const word of wordsOf(instruction)) {
          const eq = word.indexOf("=")
          if (eq > 0) env[word.slice(0, eq)] = word.slice(eq + 1)
        }
      } else if (keyword === "ENTRYPOINT") {
        entrypoint = wordsOf(instruction)
      } else if (keyword === "COPY") {
        const { from, sources, destination } = copyOf(instruction)
        const intoDirectory = destination.endsWith("/") || sources.length > 1
        for (const source of sources) {
          const target = intoDirectory
            ? path.join(inStage(destination), path.posix.basename(source))
            : inStage(destination)
          mkdirSync(path.dirname(target), { recursive: true })
          if (from === undefined) {
            if (context.ignores(path.posix.normalize(source)) || !existsSync(path.join(root, source))) {
              problems.push(`${line(instruction)}: COPY ${source}: not in the build context`)
              continue
            }
            copyFromContext(source, target, context)
          } else {
            const fromRoot = stageRoots.get(from)
            const sourcePath = fromRoot === undefined ? undefined : path.join(fromRoot, source)
            if (sourcePath === undefined || !existsSync(sourcePath)) {
              problems.push(`${line(instruction)}: COPY --from=${from} ${source}: the stage has no such file`)
              continue
            }
            cpSync(sourcePath, target, { recursive: true, verbatimSymlinks: true })
          }
        }
      } else if (keyword === "RUN") {
        for (const { command } of runSteps({ ...stage, instructions: [instruction] })) {
          const cwd = path.join(stageRoot, workdir)
          const modules = path.join(cwd, "node_modules")
          if (/^npm ci\b/.test(command)) {
            if (!existsSync(path.join(cwd, "package-lock.json")))
              problems.push(`${line(instruction)}: npm ci without package-lock.json`)
            symlinkSync(path.join(root, "node_modules"), modules)
          } else if (/^npm run [\w:-]+/.test(command)) {
            const script = command.split(" ")[2]!
            const pkg = JSON.parse(readFileSync(path.join(cwd, "package.json"), "utf8")) as PackageJson
            const body = pkg.scripts?.[script]
            if (body === undefined) {
              problems.push(`${line(instruction)}: ${command}: package.json has no script ${script}`)
              continue
            }
            const result = spawnSync("sh", ["-c", body], {
              cwd,
              encoding: "utf8",
              timeout: 120_000,
              env: { ...process.env, ...env, PATH: `${path.join(modules, ".bin")}${path.delimiter}${process.env.PATH}` }
            })
            if (result.status !== 0) {
              // The first line that says what went wrong, or the last one.
              const lines = `${result.stdout}\n${result.stderr}`
                .split("\n")
                .map((text) => text.trim())
                .filter((text) => text !== "")
              const output = lines.find((text) => /error/i.test(text)) ?? lines.at(-1) ?? ""
              problems.push(`${line(instruction)}: ${command} failed (exit ${result.status}): ${output}`)
            }
          } else if (/^npm prune\b/.test(command)) {
            const omit = new Set([...command.matchAll(/--omit=(\w+)/g)].map((match) => match[1]!))
            rmSync(modules, { force: true })
            mkdirSync(modules)
            for (const name of keptPackages(path.join(cwd, "package-lock.json"), omit)) {
              mkdirSync(path.dirname(path.join(modules, name)), { recursive: true })
              if (existsSync(path.join(root, "node_modules", name)))
                symlinkSync(path.join(root, "node_modules", name), path.join(modules, name))
            }
          } else {
            problems.push(`${line(instruction)}: cannot replay RUN ${command} (teach test/deploy/dockerfile.ts)`)
          }
        }
      }
    }
  }
  return { problems, runtimeRoot: stageRoot, workdir, env, entrypoint, cleanup }
}

/** Runs the replayed image's ENTRYPOINT with `args` (as `docker run IMAGE …args`). */
export const runImage = (image: Replayed, args: ReadonlyArray<string>) => {
  const [program, ...rest] = image.entrypoint
  const mapped = rest.map((arg) =>
    arg.startsWith("/") && existsSync(path.join(image.runtimeRoot, arg)) ? path.join(image.runtimeRoot, arg) : arg
  )
  if (program !== "node") throw new Error(`the ENTRYPOINT runs ${program}, not node`)
  return spawnSync(process.execPath, ["--preserve-symlinks", ...mapped, ...args], {
    cwd: path.join(image.runtimeRoot, image.workdir),
    encoding: "utf8",
    timeout: 30_000,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: tmpdir(), ...image.env }
  })
}

/** Whether a path of the replayed runtime stage exists (and is a directory when asked). */
export const runtimeHas = (image: Replayed, imagePath: string, directory = false): boolean => {
  const full = path.join(image.runtimeRoot, imagePath)
  return existsSync(full) && (!directory || statSync(full).isDirectory())
}
