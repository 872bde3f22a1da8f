/**
 * deploy/Dockerfile, with no Docker engine on this machine: parsed and linted (dockerfile-ast and
 * the VS Code Docker extension's validator, dockerfile-utils), its rules checked on the real file
 * and shown to fail on mutated copies, and its stages replayed on the file system (see
 * dockerfile.ts) so that the image's ENTRYPOINT really runs the CLI from the pruned tree.
 */
import { readFileSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  dockerfileProblems,
  dockerignorePath,
  type PackageJson,
  type Replayed,
  readPackageJson,
  replay,
  runImage,
  runtimeHas
} from "./dockerfile.ts"
import { dockerfilePath } from "./manifests.ts"

const dockerfile = readFileSync(dockerfilePath, "utf8")
const dockerignore = readFileSync(dockerignorePath, "utf8")
const pkg = readPackageJson()

describe("deploy/Dockerfile, statically", () => {
  it("passes every check", () => {
    expect(dockerfileProblems(dockerfile, dockerignore, pkg)).toEqual([])
  })

  it("names the line of a syntax the linter refuses", () => {
    const broken = dockerfile.replace(
      'ENTRYPOINT ["node", "/app/dist/cli/bin.js"]',
      "ENTRYPOINT ['node', '/app/dist/cli/bin.js']"
    )
    expect(dockerfileProblems(broken, dockerignore, pkg)).toContainEqual(
      expect.stringMatching(/^Dockerfile:\d+: .*(JSON|double quotes)/i)
    )
  })

  it("refuses a root user, a shell-form or foreign ENTRYPOINT, and a Node other than the tests'", () => {
    const root = dockerfile.replace("USER 1000:1000", "USER node")
    expect(dockerfileProblems(root, dockerignore, pkg)).toEqual([
      expect.stringMatching(/^Dockerfile:\d+: USER node is not a numeric non-root uid\[:gid\]/)
    ])
    const entry = dockerfile.replace('["node", "/app/dist/cli/bin.js"]', '["node", "/app/dist/cli/server.js"]')
    expect(dockerfileProblems(entry, dockerignore, pkg)).toEqual([
      expect.stringMatching(
        /^Dockerfile:\d+: ENTRYPOINT \["node","\/app\/dist\/cli\/server\.js"\] is not \["node", "\/app\/dist\/cli\/bin\.js"\] \(package\.json bin plait\)$/
      )
    ])
    const shell = dockerfile.replace(
      'ENTRYPOINT ["node", "/app/dist/cli/bin.js"]',
      "ENTRYPOINT node /app/dist/cli/bin.js"
    )
    expect(dockerfileProblems(shell, dockerignore, pkg)).toContainEqual(
      expect.stringMatching(/ENTRYPOINT in shell form/)
    )
    const older = dockerfile.replace(/ARG NODE_VERSION=\S+/, "ARG NODE_VERSION=22.11.0")
    expect(dockerfileProblems(older, dockerignore, pkg)).toEqual([
      expect.stringMatching(/stage build runs Node 22\.11\.0, the tests run \d+\.\d+\.\d+ \(devDependencies\.node\)$/),
      expect.stringMatching(/stage runtime runs Node 22\.11\.0, the tests run/)
    ])
    const alpine = dockerfile.replaceAll("-bookworm-slim", "-alpine")
    expect(dockerfileProblems(alpine, dockerignore, pkg)).toHaveLength(2)
    const engines: PackageJson = { ...pkg, engines: { node: ">=26" } }
    expect(dockerfileProblems(dockerfile, dockerignore, engines)).toContainEqual(
      expect.stringMatching(/Node \d+ is not admitted by package\.json engines\.node >=26$/)
    )
  })

  it("refuses COPY sources that do not exist or that the ignore file leaves out of the context", () => {
    const missing = dockerfile.replace("COPY src ./src", "COPY source ./src")
    expect(dockerfileProblems(missing, dockerignore, pkg)).toEqual([
      expect.stringMatching(/^Dockerfile:\d+: COPY source: no such file in the repository$/)
    ])
    const ignored = dockerignore.replace("!src\n", "")
    expect(dockerfileProblems(dockerfile, ignored, pkg)).toEqual([
      expect.stringMatching(/^Dockerfile:\d+: COPY src: excluded by Dockerfile\.dockerignore$/)
    ])
    const open = "node_modules\n"
    expect(dockerfileProblems(dockerfile, open, pkg)).toEqual([
      "Dockerfile.dockerignore: sends dist to the build context",
      "Dockerfile.dockerignore: sends .git to the build context",
      "Dockerfile.dockerignore: sends test to the build context",
      "Dockerfile.dockerignore: sends .env to the build context"
    ])
  })

  it("refuses a runtime stage that ships sources or skips the prune or the V8 cap", () => {
    const sources = dockerfile.replace(
      "COPY --from=build /app/dist ./dist",
      "COPY --from=build /app/dist ./dist\nCOPY --from=build /app/src ./src"
    )
    expect(dockerfileProblems(sources, dockerignore, pkg)).toEqual(["Dockerfile: the runtime stage copies src"])
    const unpruned = dockerfile.replace(/ && npm prune[^\n]*/, "")
    expect(dockerfileProblems(unpruned, dockerignore, pkg)).toEqual([
      "Dockerfile: the build stage does not run npm prune --omit=dev after the build"
    ])
    const uncapped = dockerfile.replace(" \\\n    NODE_OPTIONS=--max-semi-space-size=8", "")
    expect(dockerfileProblems(uncapped, dockerignore, pkg)).toEqual([
      "Dockerfile: NODE_OPTIONS does not carry --max-semi-space-size=8, as the npm scripts do (the bench's memory figures assume it)"
    ])
  })
})

describe("deploy/Dockerfile, replayed without Docker", () => {
  let image: Replayed | undefined
  beforeAll(() => {
    image = replay(dockerfile, dockerignore)
  }, 180_000)
  afterAll(() => image?.cleanup())

  it("builds: every instruction replays and the runtime stage holds only package.json, node_modules and dist", () => {
    expect(image!.problems).toEqual([])
    expect(runtimeHas(image!, "/app/dist/cli/bin.js")).toBe(true)
    expect(runtimeHas(image!, "/app/node_modules/effect", true)).toBe(true)
    // Pruned: no compiler, no test runner, no type checker binary.
    expect(runtimeHas(image!, "/app/node_modules/typescript")).toBe(false)
    expect(runtimeHas(image!, "/app/node_modules/vitest")).toBe(false)
    expect(runtimeHas(image!, "/app/node_modules/@effect/tsgo-linux-x64")).toBe(false)
    expect(runtimeHas(image!, "/app/src")).toBe(false)
  }, 30_000)

  it("its ENTRYPOINT is the plait CLI: --version, and the help of both commands, from the pruned tree", () => {
    const version = runImage(image!, ["--version"])
    expect(version.stderr).toBe("")
    expect(version.status).toBe(0)
    expect(version.stdout).toContain(pkg.version)
    for (const command of ["server", "proxy"]) {
      const help = runImage(image!, [command, "--help"])
      expect(help.status, help.stderr).toBe(0)
      expect(help.stdout).toMatch(new RegExp(`plait ${command}`))
      expect(help.stdout).toContain("--listen")
    }
  }, 60_000)

  it("fails when the build stage lacks a file the build needs", () => {
    const partial = replay(dockerfile.replace("COPY scripts ./scripts\n", ""), dockerignore)
    try {
      expect(partial.problems).toEqual([
        expect.stringMatching(
          /^Dockerfile:\d+: npm run build failed \(exit 1\): Error: Cannot find module .*scripts\/build\.ts'$/
        ),
        expect.stringMatching(/^Dockerfile:\d+: COPY --from=build \/app\/dist: the stage has no such file$/)
      ])
    } finally {
      partial.cleanup()
    }
  }, 60_000)
})
