/**
 * Reliability case 9, "bursts of opens get refused or hang": thousands of opens at once wait locally
 * (at most `maxUnackedOpens` un-ACKed, never more than the peer's backlog) instead of being reset;
 * bytes written before the ACK arrive. And the open timeout: a stream the peer never ACKs is reset
 * alone, with `OpenTimeout`, and the session carries on.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import type { MuxStream } from "../../../src/internal/session/Stream.ts"
import { Flags, FrameType } from "../../../src/protocol/Constants.ts"
import { windowUpdate } from "../../../src/protocol/Frame.ts"
import * as Session from "../../../src/session/Session.ts"
import { makePair } from "../../../src/transport/Memory.ts"
import {
  abortOnExit,
  advance,
  assertBytes,
  assertIdle,
  eventually,
  fiberReason,
  isRunning,
  payload,
  RawPeer,
  reasonOf,
  sessionPair,
  settle,
  within
} from "./helpers.ts"

const OPEN_TIMEOUT = 75_000
const RESOLUTION = 1_000

/** A 4-byte big-endian tag, so the server can tell which open a stream's bytes came from. */
const tagged = (i: number): Uint8Array => {
  const out = payload(64, i)
  new DataView(out.buffer).setUint32(0, i)
  return out
}

describe("bursts of opens get refused or hang", () => {
  it.live(
    "10k opens at once (40× maxUnackedOpens and acceptBacklog): all accepted, none reset, early bytes delivered",
    () =>
      Effect.gen(function* () {
        const sp = yield* sessionPair({ recordEvents: true })
        const n = 10_000
        assert.isAbove(n, sp.client.config.maxUnackedOpens * 10)
        assert.isAbove(n, sp.server.config.acceptBacklog * 10)
        let maxUnacked = 0
        let maxBacklog = 0
        const sample = () => {
          maxUnacked = Math.max(maxUnacked, sp.client.stats().unackedOpens)
          maxBacklog = Math.max(maxBacklog, sp.server.stats().acceptBacklog)
        }
        const seen = new Set<number>()
        // The acceptor answers each stream with its own tag once it has read the client's bytes.
        const acceptor = yield* Effect.forkChild(
          Effect.forEach(
            Array.from({ length: n }, (_, i) => i),
            () =>
              Effect.gen(function* () {
                sample()
                const s = yield* sp.server.acceptUnscoped
                // In the test's scope: a child of this loop would be interrupted when the loop ends.
                return yield* Effect.forkScoped(
                  Effect.gen(function* () {
                    const got = yield* s.readAll
                    assert.strictEqual(got.length, 64)
                    const tag = new DataView(got.buffer, got.byteOffset).getUint32(0)
                    assertBytes(got, tagged(tag), `stream ${s.id}`)
                    seen.add(tag)
                    yield* s.write([got.subarray(0, 4)])
                    yield* s.closeWrite
                  })
                )
              }),
            { concurrency: 1 }
          )
        )
        const clients = yield* Effect.forEach(
          Array.from({ length: n }, (_, i) => i),
          (i) =>
            Effect.gen(function* () {
              const s = yield* sp.client.openUnscoped
              sample()
              // Written at once, before any ACK can have arrived.
              yield* s.write([tagged(i)])
              yield* s.closeWrite
              const answer = yield* s.readAll
              assert.strictEqual(new DataView(answer.buffer, answer.byteOffset).getUint32(0), i)
            }),
          { concurrency: "unbounded" }
        ).pipe(Effect.forkChild)
        yield* Fiber.join(clients)
        const handlers = yield* Fiber.join(acceptor)
        for (const h of handlers) yield* Fiber.join(h)
        assert.strictEqual(seen.size, n)
        assert.isAtMost(maxUnacked, sp.client.config.maxUnackedOpens, "un-ACKed opens stay bounded")
        assert.isAtMost(maxBacklog, sp.server.config.acceptBacklog, "the backlog never overflows")
        const resets = [...sp.events.client, ...sp.events.server].filter((e) => e._tag === "StreamClosed" && e.reset)
        assert.strictEqual(resets.length, 0, "no stream was reset")
        yield* eventually(() => sp.client.stats().streams === 0 && sp.server.stats().streams === 0, "released")
        assertIdle(sp.client)
        assertIdle(sp.server)
      }).pipe(Effect.scoped, (e) => within(15_000, "10k opens", e)),
    20_000
  )

  it.effect(
    "a slow acceptor: opens beyond the backlog wait locally, none is refused",
    () =>
      Effect.gen(function* () {
        // The opener may have more un-ACKed opens than the peer's backlog: the peer would refuse the
        // excess with RST. With the defaults (equal bounds) the excess waits on the opener's side.
        const sp = yield* sessionPair({ recordEvents: true, config: { keepaliveIntervalMillis: 0 } })
        const bound = sp.client.config.maxUnackedOpens
        const n = 3 * bound
        const opens = yield* Effect.forkChild(
          Effect.forEach(
            Array.from({ length: n }, (_, i) => i),
            () => sp.client.openUnscoped,
            { concurrency: "unbounded" }
          )
        )
        yield* eventually(() => sp.server.stats().acceptBacklog === bound, "the backlog is full")
        yield* settle()
        assert.isTrue(isRunning(opens), "excess opens wait")
        assert.strictEqual(sp.client.stats().unackedOpens, bound)
        assert.strictEqual(sp.client.stats().waiters, n - bound, "the excess opens are parked locally")
        const accepted: Array<MuxStream> = []
        for (let i = 0; i < n; i++) accepted.push(yield* sp.server.acceptUnscoped)
        const streams = yield* Fiber.join(opens)
        assert.deepStrictEqual(
          accepted.map((s) => s.id),
          streams.map((s) => s.id).sort((a, b) => a - b)
        )
        const refused = sp.events.client.filter((e) => e._tag === "StreamClosed")
        assert.strictEqual(refused.length, 0, "none refused")
      }),
    10_000
  )
})

describe("open timeout", () => {
  it.effect(
    "a peer that never ACKs: OpenTimeout for that stream only, RST on the wire, session healthy",
    () =>
      Effect.gen(function* () {
        const pair = yield* makePair()
        const session = yield* Session.make(pair.a, {
          client: true,
          config: { openTimeoutMillis: OPEN_TIMEOUT, timerResolutionMillis: RESOLUTION, keepaliveIntervalMillis: 0 }
        }).pipe(Effect.orDie)
        yield* abortOnExit(session)
        const peer = new RawPeer(pair.b)
        const a = yield* session.openUnscoped
        const synA = yield* peer.next
        assert.strictEqual(synA!.streamId, a.id)
        const pendingRead = yield* Effect.forkChild(a.read)
        yield* advance(30_000)
        // B opens 30 s later and is ACKed; C opens then too and is never ACKed.
        const b = yield* session.openUnscoped
        const c = yield* session.openUnscoped
        yield* peer.send(windowUpdate(b.id, Flags.ACK, 0))
        yield* peer.sync
        yield* advance(OPEN_TIMEOUT - 30_000 - RESOLUTION)
        assert.isTrue(isRunning(pendingRead), "A still waits 1 s before its deadline")
        yield* advance(RESOLUTION)
        assert.strictEqual(yield* fiberReason(pendingRead), "OpenTimeout")
        const error = yield* Effect.flip(a.write([payload(1, 1)]))
        assert.deepStrictEqual(
          { tag: error.reason._tag, streamId: (error.reason as { readonly streamId: number }).streamId },
          { tag: "OpenTimeout", streamId: a.id }
        )
        assert.isTrue(error.isRetryable)
        const frames = yield* peer.sync
        assert.deepStrictEqual(
          frames.map((f) => ({ type: f.type, flags: f.flags, id: f.streamId })),
          [{ type: FrameType.WindowUpdate, flags: Flags.RST, id: a.id }],
          "exactly one RST, for A"
        )
        // B (ACKed) and C (not yet due) are untouched; the session is healthy.
        assert.strictEqual(b.state, "Established")
        assert.strictEqual(c.state, "SynSent")
        assert.isTrue(session.isOpen())
        assert.strictEqual(session.stats().streams, 2)
        assert.strictEqual(session.stats().unackedOpens, 1)
        yield* advance(30_000)
        assert.strictEqual(yield* reasonOf(c.read), "OpenTimeout")
        assert.strictEqual(b.state, "Established")
        assert.isTrue(session.isOpen())
      }),
    10_000
  )

  it.effect(
    "a session that never accepts (big backlog): the opener times out, the peer drops the stream from its backlog",
    () =>
      Effect.gen(function* () {
        const sp = yield* sessionPair({
          config: { openTimeoutMillis: OPEN_TIMEOUT, timerResolutionMillis: RESOLUTION },
          serverConfig: { acceptBacklog: 10_000 }
        })
        const a = yield* sp.client.openUnscoped
        yield* a.write([payload(1000, 2)])
        yield* eventually(() => sp.server.stats().acceptBacklog === 1, "the SYN sits in the backlog")
        yield* advance(OPEN_TIMEOUT)
        assert.strictEqual(yield* reasonOf(a.read), "OpenTimeout")
        yield* eventually(() => sp.server.stats().streams === 0, "the RST reached the peer")
        assertIdle(sp.server, "the dead stream left the backlog")
        // The session is healthy both ways: a new stream is accepted and carries bytes.
        const b = yield* sp.client.openUnscoped
        const s = yield* sp.server.acceptUnscoped
        assert.strictEqual(s.id, b.id)
        yield* b.write([payload(10, 3)])
        yield* b.closeWrite
        assertBytes(yield* s.readAll, payload(10, 3), "after the timeout")
        assert.isAtLeast(yield* sp.client.ping, 0)
      }),
    10_000
  )

  it.effect(
    "regression: a FIN sent before the ACK does not postpone the open timeout of later streams",
    () =>
      Effect.gen(function* () {
        // Bug: the close deadline overwrote the open deadline of a stream that sent FIN before its
        // ACK, and the open-timer sweep (ordered by deadline) stopped at that stream, so every
        // stream opened after it timed out only after the close timeout (5 min by default).
        const sp = yield* sessionPair({
          config: {
            openTimeoutMillis: OPEN_TIMEOUT,
            closeTimeoutMillis: 300_000,
            timerResolutionMillis: RESOLUTION,
            keepaliveIntervalMillis: 0
          },
          serverConfig: { acceptBacklog: 1_000 }
        })
        const first = yield* sp.client.openUnscoped
        yield* first.write([payload(10, 1)])
        yield* first.closeWrite
        const second = yield* sp.client.openUnscoped
        const pending = yield* Effect.forkChild(second.read)
        yield* advance(OPEN_TIMEOUT + RESOLUTION)
        assert.strictEqual(yield* fiberReason(pending), "OpenTimeout")
        assert.strictEqual(yield* reasonOf(first.read), "OpenTimeout")
        assert.strictEqual(sp.client.stats().streams, 0)
      }),
    10_000
  )
})
