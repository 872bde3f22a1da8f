/**
 * Reliability case 2, "one slow reader starves every stream": stream A is never read; every other
 * stream keeps moving, byte-exact, and the session buffers no more than A's window for A.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import type { MuxStream } from "../../../src/internal/session/Stream.ts"
import { assertBytes, eventually, isRunning, payload, sessionPair, within, writeAll } from "./helpers.ts"

const MiB = 1024 * 1024

/** Reads until FIN, checking every chunk against `expected` as it arrives; returns the byte count. */
const readAndCheck = (stream: MuxStream, expected: Uint8Array, onChunk: () => void) =>
  Effect.gen(function* () {
    let offset = 0
    while (offset <= expected.length) {
      const chunk = yield* stream.read
      if (chunk === null) break
      assertBytes(chunk, expected.subarray(offset, offset + chunk.length), `stream ${stream.id} at ${offset}`)
      offset += chunk.length
      onChunk()
    }
    return offset
  })

describe("one slow reader starves every stream", () => {
  it.live(
    "stream A never reads; 8 other streams each move 4 MiB byte-exact; buffering stays within the windows",
    () =>
      Effect.gen(function* () {
        const { client, server } = yield* sessionPair()
        const window = server.config.maxWindow
        const others = 8
        const size = 4 * MiB

        // A: the client pushes twice its window; the server accepts and never reads.
        const a = yield* client.openUnscoped
        const aWriter = yield* Effect.forkChild(writeAll(a, payload(2 * window, 1)))
        const aServer = yield* server.acceptUnscoped
        assert.strictEqual(aServer.id, a.id)
        yield* eventually(() => server.stats().bufferedBytes === window, "A's window is full on the server")

        let maxBuffered = 0
        const sample = () => {
          maxBuffered = Math.max(maxBuffered, server.stats().bufferedBytes)
        }
        const readers = yield* Effect.forkChild(
          Effect.forEach(
            Array.from({ length: others }, (_, i) => i),
            () =>
              Effect.flatMap(server.acceptUnscoped, (s) =>
                Effect.map(readAndCheck(s, payload(size, s.id), sample), (n) => ({ id: s.id, n }))
              ),
            { concurrency: "unbounded" }
          )
        )
        const writers = yield* Effect.forkChild(
          Effect.forEach(
            Array.from({ length: others }, (_, i) => i),
            () =>
              Effect.gen(function* () {
                const s = yield* client.openUnscoped
                yield* writeAll(s, payload(size, s.id), 32 * 1024)
                yield* s.closeWrite
              }),
            { concurrency: "unbounded" }
          )
        )
        // While the bulk moves, a ping still gets through (latency of the session is not held by A).
        const rtt = yield* client.ping
        assert.isAtLeast(rtt, 0)
        yield* Fiber.join(writers)
        const results = yield* Fiber.join(readers)
        assert.strictEqual(results.length, others)
        for (const r of results) assert.strictEqual(r.n, size, `stream ${r.id} bytes`)

        // A is stalled on its window, not failed, and its bytes are the only ones buffered.
        assert.isTrue(isRunning(aWriter), "A's writer waits for credit")
        assert.strictEqual(server.stats().bufferedBytes, window)
        assert.isAtMost(maxBuffered, (others + 1) * window, "buffering bounded by the granted windows")
        assert.strictEqual(a.state, "Established")

        // Once A reads, it catches up byte-exact too.
        const aReader = yield* Effect.forkChild(readAndCheck(aServer, payload(2 * window, 1), () => {}))
        yield* Fiber.join(aWriter)
        yield* a.closeWrite
        assert.strictEqual(yield* Fiber.join(aReader), 2 * window)
        assert.strictEqual(server.stats().bufferedBytes, 0)
      }).pipe(Effect.scoped, (e) => within(15_000, "slow reader", e)),
    20_000
  )
})
