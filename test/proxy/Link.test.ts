import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as Client from "../../src/client/Client.ts"
import * as Link from "../../src/client/Link.ts"
import { MAX_STREAM_ID } from "../../src/protocol/Constants.ts"
import * as Session from "../../src/session/Session.ts"
import { makePair } from "../../src/transport/Memory.ts"
import { TransportError } from "../../src/transport/Transport.ts"

/** Lets forked fibers and microtask wake-ups run without moving the clock. */
const settle = Effect.gen(function* () {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

describe("the supervised link", () => {
  it.effect("a session that dies at once is redialled with backoff, not in a tight loop", () =>
    Effect.gen(function* () {
      let dials = 0
      // The "server" accepts the TCP connection and resets it straight away (a refused handshake).
      const dial = Effect.gen(function* () {
        dials++
        const pair = yield* makePair()
        yield* pair.b.reset
        return pair.a
      })
      yield* Link.make({ dial, upstream: "test", session: { keepaliveIntervalMillis: 0, drainTimeoutMillis: 0 } })
      yield* settle
      for (let i = 0; i < 10; i++) {
        yield* TestClock.adjust(100)
        yield* settle
      }
      // 1 s of virtual time: backoff 100, 200, 400, 800 ms (halved at most by jitter) allows a handful.
      assert.isAtLeast(dials, 2)
      assert.isAtMost(dials, 7)
    }).pipe(Effect.scoped)
  )

  it.effect("a caller waits at most its bound for a link, then gets LinkUnavailable with the last error", () =>
    Effect.gen(function* () {
      const dial = Effect.fail(new TransportError({ operation: "connect", message: "ECONNREFUSED" }))
      const link = yield* Link.make({ dial, upstream: "test" })
      const waiting = yield* Effect.forkChild(Effect.flip(link.session(500)))
      yield* settle
      yield* TestClock.adjust(500)
      const error = yield* Fiber.join(waiting)
      assert.strictEqual(error.reason._tag, "LinkUnavailable")
      assert.include(error.message, "ECONNREFUSED")
      assert.strictEqual(link.generation(), 0)
    }).pipe(Effect.scoped)
  )
})

describe("stream id exhaustion", () => {
  it.live("the session sends GO_AWAY(0) and the link moves to a new session; opens carry on", () =>
    Effect.gen(function* () {
      const servers: Array<Session.Session> = []
      const dial = Effect.gen(function* () {
        const pair = yield* makePair()
        const server = yield* Session.make(pair.b, {
          client: false,
          config: { keepaliveIntervalMillis: 0, drainTimeoutMillis: 0 }
        }).pipe(Effect.orDie)
        servers.push(server)
        return pair.a
      })
      // The last odd id of the 32-bit space: one open fits, the next exhausts the session.
      const client = yield* Client.make({
        dial,
        session: { keepaliveIntervalMillis: 0, drainTimeoutMillis: 0 },
        firstStreamId: MAX_STREAM_ID
      })
      const first = yield* client.openUnscoped
      assert.strictEqual(first.id, MAX_STREAM_ID)
      // Exhausted: GO_AWAY(0) on the old session, a new session dialled, the open retried there.
      const second = yield* client.openUnscoped
      assert.strictEqual(second.id, MAX_STREAM_ID, "the first id of the new session")
      assert.strictEqual(client.link.generation(), 2)
      assert.isFalse(servers[0]!.isOpen(), "the old session's peer got GO_AWAY")
      // The stream opened before exhaustion still works.
      yield* first.write([new TextEncoder().encode("still here")])
      const accepted = yield* servers[0]!.acceptUnscoped
      assert.strictEqual(new TextDecoder().decode((yield* accepted.read)!), "still here")
    }).pipe(Effect.scoped, Effect.timeout(10_000))
  )
})
