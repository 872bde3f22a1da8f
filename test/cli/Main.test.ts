import { assert, describe, it } from "@effect/vitest"
import { Cause } from "effect"
import { formatLine } from "../../src/cli/Main.ts"

const date = new Date("2025-01-02T03:04:05.678Z")

describe("formatLine", () => {
  it("prints time, padded level, message and annotations on one line", () => {
    assert.strictEqual(
      formatLine(date, "Info", "stream 3 opened", { client: "127.0.0.1:5000", stream: 3 }),
      "2025-01-02T03:04:05.678Z INFO  stream 3 opened client=127.0.0.1:5000 stream=3"
    )
  })

  it("joins several message parts and quotes annotation values with spaces", () => {
    assert.strictEqual(
      formatLine(date, "Warn", ["a", 1, { b: 2 }], { reason: "went away" }),
      '2025-01-02T03:04:05.678Z WARN  a 1 {"b":2} reason="went away"'
    )
  })

  it("sums a cause up on the same line, and leaves interruptions out", () => {
    const line = formatLine(date, "Debug", "handler failed", {}, Cause.fail(new Error("boom\n  at somewhere")))
    assert.strictEqual(line, "2025-01-02T03:04:05.678Z DEBUG handler failed (cause: boom)")
    assert.strictEqual(
      formatLine(date, "Error", "stopped", {}, Cause.interrupt()),
      "2025-01-02T03:04:05.678Z ERROR stopped"
    )
  })
})
