/**
 * Deno users can import the TypeScript sources directly, through `deno.json` (`name`, `version`,
 * `exports`) as a JSR package or workspace member would: a fresh Deno workspace under the OS temp
 * dir with the package (its `src/`, `deno.json`, `package.json`) as a member, and the consumer
 * program (test/package/consumer/main.ts) importing `@plait/plait` — run, byte-exact; deep imports
 * into the member are refused. (Not `deno check`: the sources are type-checked by the project's own
 * check, and Deno's TypeScript 6 would add ~10 s of CPU to every run.)
 */

import { cpSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { afterAll, afterEach, assert, beforeAll, describe, it } from "@effect/vitest"
import { BIN, checkConsumerReport, killAll, makeTemp, ROOT, removeTemp, run, writeJson } from "./helpers.ts"

interface DenoJson {
  readonly name: string
  readonly version: string
  readonly exports: string
}

const denoJson = JSON.parse(readFileSync(path.join(ROOT, "deno.json"), "utf8")) as DenoJson

describe("deno.json: the TypeScript sources as a Deno package", () => {
  let workspace: string | undefined
  const deno = (args: ReadonlyArray<string>) =>
    run(path.join(BIN, "deno"), args, { cwd: workspace!, timeoutMs: 40_000 })

  beforeAll(() => {
    workspace = makeTemp("deno")
    for (const entry of ["src", "deno.json", "package.json", "README.md"]) {
      cpSync(path.join(ROOT, entry), path.join(workspace, "plait", entry), { recursive: true })
    }
    // `effect` and the other npm dependencies come from this tree's node_modules (Deno's manual mode).
    symlinkSync(path.join(ROOT, "node_modules"), path.join(workspace, "node_modules"), "dir")
    writeJson(path.join(workspace, "deno.json"), { workspace: ["./plait"], nodeModulesDir: "manual" })
    const main = readFileSync(path.join(ROOT, "test/package/consumer/main.ts"), "utf8")
    writeFileSync(path.join(workspace, "main.ts"), main.replaceAll(`from "plait"`, `from "${denoJson.name}"`))
  })
  afterEach(() => killAll())
  afterAll(() => {
    killAll()
    removeTemp(workspace)
  })

  it("names the package and exports the entry point only", () => {
    assert.strictEqual(denoJson.name, "@plait/plait")
    assert.strictEqual(denoJson.version, JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).version)
    assert.strictEqual(denoJson.exports, "./src/index.ts")
  })

  it("the consumer runs on Deno from the sources: byte-exact over Server, Client and Proxy; deep imports refused", async () => {
    const deep = [
      [`${denoJson.name}/src/internal/session/Stream.ts`, "plait/src/internal/session/Stream.ts"],
      [`${denoJson.name}/src/index.ts`, "plait/src/index.ts"],
      [`${denoJson.name}/internal/session/Stream.ts`, "plait/src/internal/session/Stream.ts"]
    ]
    const ran = await deno([
      "run",
      "--no-remote",
      "--cached-only",
      "--no-lock",
      "--no-prompt",
      "--allow-net=127.0.0.1",
      `--allow-read=${workspace}`,
      "--allow-env",
      "--allow-sys",
      "main.ts",
      JSON.stringify(deep)
    ])
    checkConsumerReport(ran, "deno", deep.length)
  })
})
