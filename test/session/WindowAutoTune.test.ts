import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { snapshotOf } from "../../src/internal/session/Stream.ts"
import { INITIAL_WINDOW } from "../../src/protocol/Constants.ts"
import * as Session from "../../src/session/Session.ts"
import { makePair } from "../../src/transport/Memory.ts"
import { readAll } from "../../src/transport/Splice.ts"

const MiB = 1024 * 1024

const pattern = (n: number, seed: number) => {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (i * 7 + seed + (i >>> 10)) & 0xff
  return out
}

/** A dialler with default settings and a listener whose receive side is configured by `receiver`. */
const link = (receiver: Partial<Session.SessionOptions["config"]>) =>
  Effect.gen(function* () {
    const pair = yield* makePair()
    const quiet = { keepaliveIntervalMillis: 0, drainTimeoutMillis: 0 }
    const client = yield* Session.make(pair.a, { client: true, config: quiet })
    const server = yield* Session.make(pair.b, { client: false, config: { ...quiet, ...receiver } })
    return { client, server }
  })

describe("window auto-tuning (windowAutoTune: true)", () => {
  it.live("a stream whose reader keeps up grows its window from 256 KiB to maxWindow", () =>
    Effect.gen(function* () {
      const { client, server } = yield* link({ windowAutoTune: true, maxWindow: 4 * MiB })
      const opened = yield* client.openUnscoped
      const payload = pattern(16 * MiB, 1)
      const writer = yield* Effect.forkChild(Effect.andThen(opened.write([payload]), opened.closeWrite))
      const accepted = yield* server.acceptUnscoped
      assert.strictEqual(snapshotOf(accepted).windowSize, INITIAL_WINDOW, "only the spec's initial window at open")
      const got = yield* readAll(accepted)
      yield* Fiber.join(writer)
      assert.deepStrictEqual(got, payload)
      assert.strictEqual(snapshotOf(accepted).windowSize, 4 * MiB)
    }).pipe(Effect.scoped, Effect.timeout(20_000))
  )

  it.live("stalled readers pin 256 KiB each, so they cannot stall the link for a stream that reads", () =>
    Effect.gen(function* () {
      // 16 stalled streams × 4 MiB windows would be 64 MiB, far over this 8 MiB session buffer; with
      // auto-tuning they hold 16 × 256 KiB = 4 MiB and the link keeps flowing.
      const { client, server } = yield* link({ windowAutoTune: true, maxWindow: 4 * MiB, maxSessionBuffer: 8 * MiB })
      for (let i = 0; i < 16; i++) {
        const stalled = yield* client.openUnscoped
        yield* Effect.forkChild(stalled.write([pattern(4 * MiB, 100 + i)]))
        yield* server.acceptUnscoped
      }
      const reading = yield* client.openUnscoped
      const payload = pattern(16 * MiB, 2)
      yield* Effect.forkChild(Effect.andThen(reading.write([payload]), reading.closeWrite))
      const accepted = yield* server.acceptUnscoped
      assert.deepStrictEqual(yield* readAll(accepted), payload)
      assert.isAtMost(server.stats().bufferedBytes, 16 * INITIAL_WINDOW)
      assert.strictEqual(server.stats().limits.maxSessionBuffer, 0, "the link was never paused")
    }).pipe(Effect.scoped, Effect.timeout(20_000))
  )

  it.live("off by default: the whole maxWindow is advertised at open", () =>
    Effect.gen(function* () {
      const { client, server } = yield* link({ maxWindow: 4 * MiB })
      const opened = yield* client.openUnscoped
      yield* opened.write([pattern(10, 3)])
      const accepted = yield* server.acceptUnscoped
      assert.strictEqual(snapshotOf(accepted).windowSize, 4 * MiB)
    }).pipe(Effect.scoped, Effect.timeout(10_000))
  )
})
