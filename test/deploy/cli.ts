/**
 * The manifests' containers as command lines of the real CLI: the image's ENTRYPOINT (from
 * deploy/Dockerfile, mapped back to its source the way tsconfig.build.json compiles it), the
 * container's args and env (a secretKeyRef read from the example Secret, the `--config` file
 * written from its ConfigMap key), and the image's ENV. Only what cannot exist outside a cluster is
 * replaced, and each replacement is listed here: every `HOST:PORT` a container binds becomes
 * `127.0.0.1:0` (loopback, a free port), the proxy's `--upstream` becomes the test's server, and the
 * config file's path becomes a temporary file with the same text.
 */
import { Buffer } from "node:buffer"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import process from "node:process"
import { binOf, readPackageJson, sourceOf, stagesOf, wordsOf } from "./dockerfile.ts"
import { configFileOf, type Deploy, flag, type PlaitContainer, root, secrets } from "./manifests.ts"

/** The source file the image's ENTRYPOINT runs once built (`/app/dist/cli/bin.js` → `src/cli/bin.ts`). */
export const entrySource = (deploy: Deploy): string => {
  const runtime = stagesOf(deploy.dockerfile).at(-1)
  const entrypoint = runtime?.instructions.findLast((instruction) => instruction.getKeyword() === "ENTRYPOINT")
  const workdir =
    runtime?.instructions.findLast((instruction) => instruction.getKeyword() === "WORKDIR")?.getArgumentsContent() ??
    "/"
  const script = entrypoint === undefined ? undefined : wordsOf(entrypoint)[1]
  const relative = script === undefined ? undefined : path.posix.relative(workdir, script)
  const source = relative === undefined ? undefined : sourceOf(relative)
  if (source === undefined) throw new Error(`the ENTRYPOINT ${script} is not a file of the build output`)
  if (relative !== binOf(readPackageJson())) throw new Error(`the ENTRYPOINT ${script} is not package.json's bin`)
  return path.join(root, source)
}

/** The runtime stage's ENV (NODE_OPTIONS …), as the container gets it. */
export const imageEnv = (deploy: Deploy): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const instruction of stagesOf(deploy.dockerfile).at(-1)?.instructions ?? []) {
    if (instruction.getKeyword() !== "ENV") continue
    for (const word of wordsOf(instruction)) {
      const eq = word.indexOf("=")
      if (eq > 0) env[word.slice(0, eq)] = word.slice(eq + 1)
    }
  }
  return env
}

/** The flags and environment variables a command's `--help` documents. */
export interface Help {
  readonly flags: ReadonlySet<string>
  readonly env: ReadonlySet<string>
}

/** Reads a `--help` text: every `--flag` at the start of a line, every `env PLAIT_…`. */
export const readHelp = (text: string): Help => ({
  flags: new Set([...text.matchAll(/^\s+(--[a-z][a-z0-9-]*)/gm)].map((match) => match[1]!)),
  env: new Set([...text.matchAll(/\benv (PLAIT_[A-Z0-9_]+)/g)].map((match) => match[1]!))
})

/**
 * Every flag a container passes is one its command's `--help` lists, and every `PLAIT_*` variable
 * it sets is one the help names as a flag's variable.
 */
export const helpProblems = (
  containers: ReadonlyArray<PlaitContainer>,
  helpOf: (command: string) => Help
): Array<string> =>
  containers.flatMap((c) => {
    const help = helpOf(c.command)
    const problems: Array<string> = []
    if (help.flags.size === 0) problems.push(`${c.where}: plait ${c.command} --help lists no flags`)
    for (const [name] of c.flags) {
      if (!help.flags.has(name)) problems.push(`${c.where}: plait ${c.command} has no flag ${name}`)
    }
    for (const env of c.container.env ?? []) {
      if (env.name.startsWith("PLAIT_") && !help.env.has(env.name)) {
        problems.push(`${c.where}: plait ${c.command} reads no variable ${env.name}`)
      }
    }
    return problems
  })

/** How the test runs one container: the command line, its environment, and the temporary files. */
export interface Launch {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
  readonly cleanup: () => void
}

/** The flags whose address a container binds: replaced with a free loopback port. */
const BOUND = new Set(["--listen", "--admin"])

/**
 * A container's command line for this machine (see the module header for what is replaced);
 * `extraEnv` is added last (the test's loopback backend as PLAIT_TARGET, which wins over the config
 * file and so leaves the manifest's args and file unchanged).
 */
export const launchOf = (
  deploy: Deploy,
  c: PlaitContainer,
  options: { readonly upstream?: string; readonly extraEnv?: Readonly<Record<string, string>> } = {}
): Launch => {
  const dir = mkdtempSync(path.join(tmpdir(), "plait-pod-"))
  const config = configFileOf(deploy, c)
  const configPath = path.join(dir, path.posix.basename(flag(c, "--config") ?? "plait.yaml"))
  if (config !== undefined) writeFileSync(configPath, config.text)
  const args = [c.command]
  for (const [name, value] of c.flags) {
    const replaced = BOUND.has(name)
      ? "127.0.0.1:0"
      : name === "--upstream" && options.upstream !== undefined
        ? options.upstream
        : name === "--config" && config !== undefined
          ? configPath
          : value
    args.push(name, replaced)
  }
  const env: Record<string, string> = { ...imageEnv(deploy) }
  for (const variable of c.container.env ?? []) {
    const ref = variable.valueFrom?.secretKeyRef
    if (variable.value !== undefined) env[variable.name] = variable.value
    else if (ref !== undefined) {
      const secret = secrets(deploy).find(({ object }) => object.metadata?.name === ref.name)?.object
      const value =
        secret?.stringData?.[ref.key] ??
        (secret?.data?.[ref.key] === undefined
          ? undefined
          : Buffer.from(secret.data[ref.key]!, "base64").toString("utf8"))
      if (value !== undefined) env[variable.name] = value
    }
  }
  return {
    command: process.execPath,
    args: [entrySource(deploy), ...args],
    env: { ...env, ...options.extraEnv },
    cleanup: () => rmSync(dir, { recursive: true, force: true })
  }
}
