import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import * as Session from "../../src/session/Session.ts"
import { makePair } from "../../src/transport/Memory.ts"

const bytes = (s: string) => new TextEncoder().encode(s)

describe("session limits", () => {
  it.effect("a stream idle for idleTimeoutMillis is reset, counted and reported; an active one is not", () =>
    Effect.gen(function* () {
      const pair = yield* makePair()
      const events: Array<Session.SessionEvent> = []
      const config = {
        idleTimeoutMillis: 5_000,
        timerResolutionMillis: 1_000,
        keepaliveIntervalMillis: 0,
        drainTimeoutMillis: 0
      }
      const client = yield* Session.make(pair.a, { client: true, config, onEvent: (e) => events.push(e) })
      const server = yield* Session.make(pair.b, {
        client: false,
        config: { keepaliveIntervalMillis: 0, drainTimeoutMillis: 0 }
      })
      const idle = yield* client.openUnscoped
      const busy = yield* client.openUnscoped
      yield* idle.write([bytes("a")])
      yield* busy.write([bytes("a")])
      const idlePeer = yield* server.acceptUnscoped
      const busyPeer = yield* server.acceptUnscoped
      yield* idlePeer.read
      yield* busyPeer.read
      for (let second = 0; second < 8; second++) {
        // Only `busy` carries traffic while the clock moves.
        yield* busy.write([bytes("b")])
        yield* busyPeer.read
        yield* TestClock.adjust(1_000)
      }
      const error = yield* Effect.flip(idlePeer.read)
      assert.strictEqual(error.reason._tag, "StreamReset")
      assert.strictEqual(idle.state, "Reset")
      assert.notStrictEqual(busy.state, "Reset")
      assert.strictEqual(client.stats().limits.idleTimeout, 1)
      assert.isTrue(
        events.some((e) => e._tag === "LimitReached" && e.limit === "idleTimeout" && e.streamId === idle.id)
      )
      yield* busy.write([bytes("still fine")])
      assert.strictEqual(new TextDecoder().decode((yield* busyPeer.read)!), "still fine")
    }).pipe(Effect.scoped)
  )

  it.effect("SYNs beyond the accept backlog are refused with RST, counted and reported", () =>
    Effect.gen(function* () {
      const pair = yield* makePair()
      const events: Array<Session.SessionEvent> = []
      const client = yield* Session.make(pair.a, {
        client: true,
        config: { keepaliveIntervalMillis: 0, drainTimeoutMillis: 0 }
      })
      const server = yield* Session.make(pair.b, {
        client: false,
        config: { acceptBacklog: 2, keepaliveIntervalMillis: 0, drainTimeoutMillis: 0 },
        onEvent: (e) => events.push(e)
      })
      const streams = [yield* client.openUnscoped, yield* client.openUnscoped, yield* client.openUnscoped]
      const refused = yield* Effect.flip(streams[2]!.read)
      assert.strictEqual(refused.reason._tag, "StreamReset")
      assert.strictEqual(server.stats().limits.acceptBacklog, 1)
      assert.strictEqual(server.stats().acceptBacklog, 2)
      assert.isTrue(events.some((e) => e._tag === "LimitReached" && e.limit === "acceptBacklog"))
      // The two within the backlog are served normally.
      yield* streams[0]!.write([bytes("x")])
      const first = yield* server.acceptUnscoped
      assert.strictEqual(first.id, streams[0]!.id)
    }).pipe(Effect.scoped)
  )

  it.effect("SYNs beyond maxStreams are refused with RST and counted", () =>
    Effect.gen(function* () {
      const pair = yield* makePair()
      const client = yield* Session.make(pair.a, {
        client: true,
        config: { keepaliveIntervalMillis: 0, drainTimeoutMillis: 0 }
      })
      const server = yield* Session.make(pair.b, {
        client: false,
        config: { maxStreams: 1, keepaliveIntervalMillis: 0, drainTimeoutMillis: 0 }
      })
      const first = yield* client.openUnscoped
      const second = yield* client.openUnscoped
      const refused = yield* Effect.flip(second.read)
      assert.strictEqual(refused.reason._tag, "StreamReset")
      assert.strictEqual(server.stats().limits.maxStreams, 1)
      assert.strictEqual((yield* server.acceptUnscoped).id, first.id)
    }).pipe(Effect.scoped)
  )
})
