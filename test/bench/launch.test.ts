/**
 * The V8 flags plait is launched with are the same everywhere it is launched: the npm scripts
 * (`npm start`, `bun run proxy`), the Deno tasks (`deno task server`) and the benchmark harness —
 * so the benchmark measures plait as users run it.
 */
import { readFileSync } from "node:fs"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { PLAIT_V8_FLAGS, ROOT } from "../../bench/procs.ts"

const json = (file: string) => JSON.parse(readFileSync(path.join(ROOT, file), "utf8"))

describe("launch flags", () => {
  it("package.json scripts, deno.json tasks and the benchmark agree", () => {
    assert.isAbove(PLAIT_V8_FLAGS.length, 0)
    const scripts = json("package.json").scripts as Record<string, string>
    for (const name of ["start", "proxy", "server"]) {
      const command = scripts[name]!
      assert.match(command, /^node /, `${name} runs node (Bun substitutes itself via bunfig.toml)`)
      for (const flag of PLAIT_V8_FLAGS) assert.include(command.split(" "), flag, `npm script ${name}`)
    }
    const tasks = json("deno.json").tasks as Record<string, string>
    for (const name of ["proxy", "server"]) {
      const v8 = tasks[name]!.split(" ").find((word) => word.startsWith("--v8-flags="))
      assert.isDefined(v8, `deno task ${name} passes --v8-flags`)
      assert.deepStrictEqual(v8!.slice("--v8-flags=".length).split(","), [...PLAIT_V8_FLAGS], `deno task ${name}`)
    }
  })
})
