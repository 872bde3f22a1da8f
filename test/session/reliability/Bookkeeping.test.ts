/**
 * Reliability case 6, "bookkeeping that grows forever": a soak of many short streams plus pings, and
 * abandoned waits (interrupted pings, opens, accepts), leave every map, queue and waiter list of both
 * sessions empty.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { scopedStream } from "../../../src/internal/session/Stream.ts"
import {
  assertIdle,
  counters,
  echo,
  eventually,
  payload,
  rng,
  sessionPair,
  settle,
  unbudgeted,
  within,
  writeAll
} from "./helpers.ts"

describe("bookkeeping that grows forever", () => {
  it.live(
    "a soak of 5000 short scoped streams and 1000 pings leaves both sessions empty after every round",
    () =>
      Effect.gen(function* () {
        const sp = yield* sessionPair({ recordEvents: true, config: unbudgeted })
        const rounds = 20
        const perRound = 250
        const bytes = payload(1024, 1)
        for (let r = 0; r < rounds; r++) {
          const server = yield* Effect.forkChild(
            Effect.forEach(
              Array.from({ length: perRound }, (_, i) => i),
              () => Effect.scoped(Effect.flatMap(sp.server.accept, (s) => echo(s))),
              { concurrency: 64 }
            )
          )
          yield* Effect.forEach(
            Array.from({ length: perRound }, (_, i) => i),
            () =>
              Effect.scoped(
                Effect.gen(function* () {
                  const s = yield* sp.client.open
                  const reader = yield* Effect.forkChild(s.readAll)
                  yield* writeAll(s, bytes)
                  yield* s.closeWrite
                  assert.strictEqual((yield* Fiber.join(reader)).length, bytes.length)
                })
              ),
            { concurrency: 64 }
          )
          yield* Effect.forEach(
            Array.from({ length: 50 }, (_, i) => i),
            (i) => (i % 2 === 0 ? sp.client.ping : sp.server.ping),
            { concurrency: "unbounded" }
          )
          yield* Fiber.join(server)
          yield* eventually(() => sp.client.stats().streams === 0 && sp.server.stats().streams === 0, `round ${r}`)
          assertIdle(sp.client, `client after round ${r}`)
          assertIdle(sp.server, `server after round ${r}`)
        }
        for (const side of ["client", "server"] as const) {
          const opened = sp.events[side].filter((e) => e._tag === "StreamOpened").length
          const closed = sp.events[side].filter((e) => e._tag === "StreamClosed").length
          const reset = sp.events[side].filter((e) => e._tag === "StreamClosed" && e.reset).length
          assert.deepStrictEqual(
            { opened, closed, reset },
            { opened: rounds * perRound, closed: rounds * perRound, reset: 0 }
          )
        }
        assert.deepStrictEqual(sp.pair.buffered(), { toA: 0, toB: 0 }, "nothing left in the link")
      }).pipe(Effect.scoped, (e) => within(15_000, "soak", e)),
    20_000
  )

  it.effect(
    "interrupted pings, opens and accepts leave no entry behind",
    () =>
      Effect.gen(function* () {
        const sp = yield* sessionPair({
          config: { ...unbudgeted, keepaliveIntervalMillis: 0 },
          clientConfig: { maxUnackedOpens: 2 },
          serverConfig: { acceptBacklog: 100 }
        })
        // Pongs never come back: every ping stays pending until interrupted.
        yield* sp.pair.blackhole("bToA")
        const pings = yield* Effect.forEach(
          Array.from({ length: 1000 }, (_, i) => i),
          () => Effect.forkChild(sp.client.ping)
        )
        yield* sp.client.openUnscoped
        yield* sp.client.openUnscoped
        const opens = yield* Effect.forEach(
          Array.from({ length: 100 }, (_, i) => i),
          () => Effect.forkChild(sp.client.openUnscoped)
        )
        const accepts = yield* Effect.forEach(
          Array.from({ length: 100 }, (_, i) => i),
          () => Effect.forkChild(sp.client.acceptUnscoped)
        )
        yield* settle()
        assert.strictEqual(sp.client.stats().pendingPings, 1000)
        assert.strictEqual(sp.client.stats().waiters, 200)
        const all: ReadonlyArray<Fiber.Fiber<unknown, unknown>> = [...pings, ...opens, ...accepts]
        yield* Fiber.interruptAll(all)
        for (const f of all) {
          const exit = yield* Fiber.await(f)
          assert.isTrue(Exit.hasInterrupts(exit))
        }
        const c = counters(sp.client)
        assert.deepStrictEqual(
          { pendingPings: c.pendingPings, waiters: c.waiters, unackedOpens: c.unackedOpens, streams: c.streams },
          { pendingPings: 0, waiters: 0, unackedOpens: 2, streams: 2 }
        )
      }),
    10_000
  )

  it.effect(
    "1000 scoped streams ending by success, failure or interruption: FIN or RST, nothing leaks",
    () =>
      Effect.gen(function* () {
        // 666 of the 1000 streams are reset right after opening, on a clock that does not move: far
        // beyond the rapid-reset budgets, which have their own tests.
        const sp = yield* sessionPair({ recordEvents: true, config: { ...unbudgeted, keepaliveIntervalMillis: 0 } })
        const next = rng(99)
        const n = 1000
        const expectedResets = { count: 0 }
        // Streams reset while still in the backlog are never accepted: the server just keeps accepting.
        const server = yield* Effect.forkChild(
          Effect.forever(
            Effect.flatMap(sp.server.acceptUnscoped, (s) =>
              Effect.forkChild(Effect.scoped(Effect.andThen(scopedStream(s), Effect.ignore(s.readAll))))
            )
          )
        )
        for (let i = 0; i < n; i++) {
          const kind = next() % 3
          if (kind !== 0) expectedResets.count++
          const written = yield* Deferred.make<void>()
          const body = Effect.gen(function* () {
            const s = yield* sp.client.open
            yield* s.write([payload(100, i)])
            yield* Deferred.succeed(written, undefined)
            if (kind === 1) return yield* Effect.fail("application error")
            if (kind === 2) return yield* Effect.never
          })
          const fiber = yield* Effect.forkChild(Effect.scoped(body))
          yield* Deferred.await(written)
          if (kind === 2) yield* Fiber.interrupt(fiber)
          yield* Fiber.await(fiber)
        }
        yield* eventually(() => sp.client.stats().streams === 0 && sp.server.stats().streams === 0, "all released")
        yield* Fiber.interrupt(server)
        assertIdle(sp.client)
        assertIdle(sp.server)
        const resets = sp.events.client.filter((e) => e._tag === "StreamClosed" && e.reset).length
        assert.strictEqual(resets, expectedResets.count, "exactly the failed and interrupted scopes sent RST")
      }),
    10_000
  )
})
