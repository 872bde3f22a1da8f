import { assert, describe, it } from "@effect/vitest"
import { runNode } from "./helpers.ts"

describe("npm start (tools/demo.ts)", () => {
  it("carries every client over one link, verifies every byte, exits 0", { timeout: 60_000 }, async () => {
    const ran = await runNode(["tools/demo.ts", "--clients", "24", "--duration", "1", "--max-message", "8192"], 45_000)
    assert.strictEqual(ran.code, 0, `exit code ${ran.code}\n${ran.stdout}\n${ran.stderr}`)
    assert.match(ran.stdout, /plait demo: 24 clients/)
    assert.match(ran.stdout, /TCP links used\s+1\n/)
    const carried = /client connections carried\s+([\d,]+)/.exec(ran.stdout)
    assert.isNotNull(carried)
    assert.isAtLeast(Number(carried![1]!.replace(/,/g, "")), 24)
    const verified = /bytes verified byte-exact\s+([\d,]+) .* 0 errors/.exec(ran.stdout)
    assert.isNotNull(verified, ran.stdout)
    assert.isAbove(Number(verified![1]!.replace(/,/g, "")), 0)
    assert.match(ran.stdout, /latency per message\s+p50 [\d.]+ ms · p99 [\d.]+ ms/)
    assert.match(ran.stdout, /^OK: every byte came back exactly as sent/m)
  })

  it("refuses a bad option with exit code 2", async () => {
    const ran = await runNode(["tools/demo.ts", "--clients", "zero"], 20_000)
    assert.strictEqual(ran.code, 2)
    assert.match(ran.stderr, /--clients must be a number/)
  })
})
