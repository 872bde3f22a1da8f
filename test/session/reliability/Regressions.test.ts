/**
 * Regressions for bugs the reliability suite found in the session core, each named after the
 * reliability case it breaks. (The open-timeout one lives with its case in OpenBursts.test.ts.)
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { Signal } from "../../../src/internal/session/Signal.ts"
import { assertIdle, counters, eventually, fiberReason, isRunning, payload, sessionPair, settle } from "./helpers.ts"

describe("regressions", () => {
  describe("one slow reader starves every stream (session buffer accounting)", () => {
    it.effect(
      "bytes of a stream closed both ways before they were read are counted out exactly once",
      () =>
        Effect.gen(function* () {
          // Bug: the release of a Closed stream counted its unread bytes out of the session buffer,
          // and reading them counted them out again: the total drifted below zero (by every such
          // stream), silently raising the session's memory bound.
          const sp = yield* sessionPair({ config: { keepaliveIntervalMillis: 0 } })
          for (const serverFinFirst of [false, true]) {
            const c = yield* sp.client.openUnscoped
            const s = yield* sp.server.acceptUnscoped
            if (serverFinFirst) yield* s.closeWrite
            yield* c.write([payload(1000, 1)])
            yield* c.closeWrite
            yield* eventually(() => c.state === "Closed" || s.state !== "Established", "FINs moving")
            if (!serverFinFirst) {
              yield* eventually(() => s.state === "RemoteClosed", "client FIN arrived")
              yield* s.closeWrite
            }
            yield* eventually(() => sp.server.stats().streams === 0, "released after both FINs")
            assert.strictEqual(sp.server.stats().bufferedBytes, 1000, "unread bytes still counted")
            assert.strictEqual((yield* s.readAll).length, 1000)
            assert.strictEqual(sp.server.stats().bufferedBytes, 0, "counted out once, not twice")
          }
          assertIdle(sp.server)
        }),
      10_000
    )

    it.effect(
      "a dead session reports zero buffered bytes although its streams held unread data",
      () =>
        Effect.gen(function* () {
          // Bug: the dying session zeroed its total, then each failed stream counted its dropped
          // bytes out again: -N after death.
          const sp = yield* sessionPair({ config: { keepaliveIntervalMillis: 0 } })
          const c = yield* sp.client.openUnscoped
          const s = yield* sp.server.acceptUnscoped
          yield* c.write([payload(5000, 2)])
          yield* eventually(() => sp.server.stats().bufferedBytes === 5000, "buffered")
          yield* sp.server.abort
          assert.strictEqual(yield* fiberReason(yield* Effect.forkChild(s.read)), "SessionClosed")
          assertIdle(sp.server, "aborted server")
        }),
      10_000
    )
  })

  describe("writes that hang forever (a dying session's waiters)", () => {
    it.effect(
      "a waiter woken by the session's death already sees empty registries",
      () =>
        Effect.gen(function* () {
          // Bug: die() woke the waiters (which Effect resumed inline) before it cleared the registry,
          // so a woken operation observed a dead session that still listed its streams.
          const sp = yield* sessionPair({ config: { keepaliveIntervalMillis: 0 } })
          const c = yield* sp.client.openUnscoped
          yield* sp.server.acceptUnscoped
          let seen: ReturnType<typeof counters> | undefined
          const reader = yield* Effect.forkChild(
            c.read.pipe(
              Effect.tapError(() =>
                Effect.sync(() => {
                  seen = counters(sp.client)
                })
              )
            )
          )
          yield* settle()
          yield* sp.pair.b.reset
          assert.strictEqual(yield* fiberReason(reader), "TransportFailed")
          assert.deepStrictEqual(seen && { streams: seen.streams, unackedOpens: seen.unackedOpens }, {
            streams: 0,
            unackedOpens: 0
          })
        }),
      10_000
    )
  })

  describe("bursts of opens get refused or hang (wake-ups per freed slot)", () => {
    it.effect(
      "Signal.notifyOne wakes one waiter, in order; a woken waiter interrupted before it ran passes it on",
      () =>
        Effect.gen(function* () {
          // Bug: every ACK or release woke every waiting opener (N waiters, N slots: N² wake-ups);
          // 10k concurrent opens took ~4 s, 20k ~15 s. One freed slot now wakes one waiter.
          const signal = new Signal()
          const order: Array<number> = []
          const waiters = yield* Effect.forEach([0, 1, 2], (i) =>
            Effect.forkChild(
              Effect.andThen(
                signal.wait,
                Effect.sync(() => order.push(i))
              )
            )
          )
          yield* settle()
          assert.strictEqual(signal.size, 3)
          signal.notifyOne()
          yield* settle()
          assert.deepStrictEqual(order, [0])
          assert.strictEqual(signal.size, 2)
          // Wake #1, then interrupt it before the wake-up microtask runs: #2 gets the wake-up.
          signal.notifyOne()
          yield* Fiber.interrupt(waiters[1]!)
          yield* settle()
          assert.deepStrictEqual(order, [0, 2])
          assert.strictEqual(signal.size, 0)
          assert.isFalse(isRunning(waiters[2]!))
        }),
      10_000
    )
  })
})
