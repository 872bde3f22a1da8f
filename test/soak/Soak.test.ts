/**
 * The one-minute soak (`npm run soak -- --minutes 1`): a Bun proxy and a Deno server as real
 * processes under the mixed load (request/response, bulk with half-close, connection churn, slow
 * readers) with the link cut once through the relay. Passes when the tool exits 0: every counter
 * back at its baseline, RSS within 10 % of the first minute's, every byte exact. The tool kills
 * every process it started; this test kills the tool if it overruns.
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const TIMEOUT = 180_000

const runSoak = (minutes: number): Promise<{ readonly code: number | null; readonly output: string }> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, "tools/soak.ts"), "--minutes", String(minutes), "--quiet"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk
    })
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk
    })
    // The tool bounds itself; this is the backstop (SIGINT lets it kill its own children).
    const timer = setTimeout(() => child.kill("SIGINT"), TIMEOUT - 10_000)
    child.on("exit", (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })

describe("soak", () => {
  it(
    "one minute through a Bun proxy and a Deno server, the link cut once: nothing grows, every byte exact",
    async () => {
      const { code, output } = await runSoak(1)
      assert.strictEqual(code, 0, output)
      assert.match(output, /^baseline /m)
      assert.match(output, /^1 +\| /m, "a row after the first minute")
      assert.match(output, /^final /m)
      assert.match(output, /1 link cut\(s\)/)
      assert.match(output, /soak: OK/)
    },
    TIMEOUT
  )
})
