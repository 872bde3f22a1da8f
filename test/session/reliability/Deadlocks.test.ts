/**
 * Reliability case 7, "deadlocks": both ends echo payloads larger than window plus transport buffers
 * on many streams at once (streams opened from both sides), over a link with a tiny high-water mark;
 * concurrent close of the session and its streams mid-transfer. Everything under a global deadline.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber } from "effect"
import type { MuxStream } from "../../../src/internal/session/Stream.ts"
import type { MuxError } from "../../../src/session/MuxError.ts"
import type * as Session from "../../../src/session/Session.ts"
import { assertBytes, assertIdle, echo, payload, sessionPair, within, writeAll } from "./helpers.ts"

const MiB = 1024 * 1024

/** Opens a stream, writes `bytes` while reading the echo concurrently; returns the echo. */
const roundTrip = (session: Session.Session, bytes: Uint8Array) =>
  Effect.gen(function* () {
    const s = yield* session.openUnscoped
    const reader = yield* Effect.forkChild(s.readAll)
    yield* writeAll(s, bytes, 48 * 1024)
    yield* s.closeWrite
    return { id: s.id, got: yield* Fiber.join(reader) }
  })

/** Accepts `n` streams and echoes each in its own fiber. */
const echoServer = (session: Session.Session, n: number) =>
  Effect.forEach(
    Array.from({ length: n }, (_, i) => i),
    () => Effect.flatMap(session.acceptUnscoped, (s) => echo(s)),
    { concurrency: "unbounded" }
  )

describe("deadlocks", () => {
  it.live(
    "32 streams × 2 MiB echoed both ways at once (16 opened by each side), 256 KiB windows, 16 KiB link buffer",
    () =>
      Effect.gen(function* () {
        const highWaterMark = 16 * 1024
        // The smallest window yamux allows and a small write buffer: each stream's payload is many
        // times what the two sessions and the link can hold for it in both directions.
        const sp = yield* sessionPair({
          highWaterMark,
          config: { maxWindow: 256 * 1024, writeBufferSize: 64 * 1024 }
        })
        const perSide = 16
        const size = 2 * MiB
        const { maxWindow, writeBufferSize } = sp.client.config
        assert.isAbove(size, 2 * (maxWindow + writeBufferSize) + highWaterMark, "payload beyond windows plus buffers")
        const serverEcho = yield* Effect.forkChild(echoServer(sp.server, perSide))
        const clientEcho = yield* Effect.forkChild(echoServer(sp.client, perSide))
        const seeds = Array.from({ length: perSide }, (_, i) => i + 1)
        const results = yield* Effect.all(
          [
            Effect.forEach(seeds, (seed) => roundTrip(sp.client, payload(size, seed)), { concurrency: "unbounded" }),
            Effect.forEach(seeds, (seed) => roundTrip(sp.server, payload(size, 100 + seed)), {
              concurrency: "unbounded"
            })
          ],
          { concurrency: 2 }
        )
        for (const [side, base] of [
          [0, 0],
          [1, 100]
        ] as const) {
          for (const [i, r] of results[side].entries()) {
            assertBytes(r.got, payload(size, base + seeds[i]!), `side ${side} #${r.id}`)
          }
        }
        const echoed = [...(yield* Fiber.join(serverEcho)), ...(yield* Fiber.join(clientEcho))]
        assert.deepStrictEqual(
          echoed,
          Array.from({ length: 2 * perSide }, () => size)
        )
      }).pipe(Effect.scoped, (e) => within(15_000, "bidirectional echo", e)),
    20_000
  )

  it.live(
    "concurrent close of both sessions and every stream mid-transfer ends everything, typed",
    () =>
      Effect.gen(function* () {
        const sp = yield* sessionPair({ highWaterMark: 16 * 1024, config: { drainTimeoutMillis: 500 } })
        const n = 16
        const accepted: Array<MuxStream> = []
        const serverEcho = yield* Effect.forkChild(
          Effect.forEach(
            Array.from({ length: n }, (_, i) => i),
            () =>
              Effect.flatMap(sp.server.acceptUnscoped, (s) => {
                accepted.push(s)
                return echo(s)
              }),
            { concurrency: "unbounded" }
          )
        )
        const opened: Array<MuxStream> = []
        const transfers: Array<Fiber.Fiber<unknown, MuxError>> = []
        for (let i = 0; i < n; i++) {
          const s = yield* sp.client.openUnscoped
          opened.push(s)
          transfers.push(yield* Effect.forkChild(s.readAll))
          transfers.push(yield* Effect.forkChild(writeAll(s, payload(4 * MiB, i), 48 * 1024)))
        }
        // Wait until bytes are moving on every stream, then close everything at once.
        for (let i = 0; i < 10_000 && accepted.length < n; i++) yield* Effect.yieldNow
        assert.strictEqual(accepted.length, n)
        const closers = yield* Effect.forkChild(
          Effect.all(
            [
              sp.client.close,
              sp.server.close,
              ...opened.map((s) => s.close),
              ...accepted.map((s, i) => (i % 2 === 0 ? s.close : s.reset))
            ],
            { concurrency: "unbounded" }
          )
        )
        yield* Fiber.join(closers)
        // Every transfer ended: success or a typed MuxError, never a defect, never a hang.
        for (const f of transfers) {
          const exit = yield* Fiber.await(f)
          if (Exit.isFailure(exit)) {
            assert.isFalse(Cause.hasDies(exit.cause), `defect: ${String(exit.cause)}`)
            assert.isTrue(Cause.hasFails(exit.cause), `unexpected exit: ${String(exit.cause)}`)
          }
        }
        const echoExit = yield* Fiber.await(serverEcho)
        assert.isFalse(Exit.isFailure(echoExit) && Cause.hasDies(echoExit.cause))
        assert.isTrue(sp.client.isClosed() && sp.server.isClosed())
        assertIdle(sp.client)
        assertIdle(sp.server)
      }).pipe(Effect.scoped, (e) => within(10_000, "concurrent close", e)),
    15_000
  )
})
