/**
 * Reliability case 10, "link loss takes every stream with it; go-away semantics unclear": a graceful
 * close sends GO_AWAY(0), the peer's new opens fail fast, existing streams drain byte-exact, the
 * drain deadline ends stragglers; a link cut mid-transfer fails every stream operation promptly with
 * a typed error.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import type { MuxStream } from "../../../src/internal/session/Stream.ts"
import { FrameType, GoAwayCode } from "../../../src/protocol/Constants.ts"
import type { MuxError } from "../../../src/session/MuxError.ts"
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
  type ReasonTag,
  reasonOf,
  type SessionPair,
  sessionPair,
  settle,
  within,
  writeAll
} from "./helpers.ts"

const MiB = 1024 * 1024
const DRAIN = 10_000

describe("link loss takes every stream with it; go-away semantics unclear", () => {
  describe("go-away", () => {
    it.live(
      "close sends GO_AWAY(0): the peer's opens fail fast with RemoteGoAway, open streams drain byte-exact",
      () =>
        Effect.gen(function* () {
          const sp = yield* sessionPair({ recordEvents: true, config: { drainTimeoutMillis: 5_000 } })
          const n = 4
          const first = payload(100_000, 1)
          const rest = payload(3 * MiB, 2)
          const answer = payload(2 * MiB, 3)
          const handlers = yield* Effect.forkChild(
            Effect.forEach(
              Array.from({ length: n }, (_, i) => i),
              () =>
                Effect.gen(function* () {
                  const s = yield* sp.server.acceptUnscoped
                  const got = yield* s.readAll
                  yield* writeAll(s, answer)
                  yield* s.closeWrite
                  return got
                }),
              { concurrency: "unbounded" }
            )
          )
          const streams: Array<MuxStream> = []
          for (let i = 0; i < n; i++) {
            const c = yield* sp.client.openUnscoped
            yield* writeAll(c, first)
            streams.push(c)
          }
          yield* eventually(() => sp.server.stats().streams === n, "all accepted")
          const closing = yield* Effect.forkChild(sp.server.close)
          yield* eventually(() => !sp.client.isOpen(), "GO_AWAY reached the client")
          assert.deepStrictEqual(
            sp.events.client.filter((e) => e._tag === "GoAwayReceived"),
            [{ _tag: "GoAwayReceived", code: GoAwayCode.Normal }]
          )
          // New streams fail fast both ways; the sessions themselves are still alive.
          const refused = yield* Effect.flip(sp.client.openUnscoped)
          assert.strictEqual(refused.reason._tag, "RemoteGoAway")
          assert.isTrue(refused.isRetryable, "a new session may take the open")
          assert.strictEqual(yield* reasonOf(sp.client.acceptUnscoped), "RemoteGoAway")
          assert.strictEqual(yield* reasonOf(sp.server.openUnscoped), "SessionClosed")
          assert.isFalse(sp.client.isClosed() || sp.server.isClosed())
          assert.isTrue(isRunning(closing), "close waits for the open streams")
          // The existing streams finish their exchange, byte-exact.
          const answers = yield* Effect.forEach(
            streams,
            (c) =>
              Effect.gen(function* () {
                const reader = yield* Effect.forkChild(c.readAll)
                yield* writeAll(c, rest)
                yield* c.closeWrite
                return yield* Fiber.join(reader)
              }),
            { concurrency: "unbounded" }
          )
          const expected = new Uint8Array(first.length + rest.length)
          expected.set(first)
          expected.set(rest, first.length)
          for (const got of yield* Fiber.join(handlers)) assertBytes(got, expected, "request after GO_AWAY")
          for (const got of answers) assertBytes(got, answer, "answer after GO_AWAY")
          yield* Fiber.join(closing)
          assert.strictEqual((yield* sp.server.await).reason._tag, "SessionClosed")
          assert.strictEqual((yield* sp.client.await).reason._tag, "SessionClosed", "the link was closed after")
          const resets = [...sp.events.client, ...sp.events.server].filter((e) => e._tag === "StreamClosed" && e.reset)
          assert.strictEqual(resets.length, 0, "nothing reset during the drain")
          assertIdle(sp.client)
          assertIdle(sp.server)
        }).pipe(Effect.scoped, (e) => within(10_000, "go-away drain", e)),
      15_000
    )

    it.effect(
      "GO_AWAY(0) is on the wire first, before the link closes",
      () =>
        Effect.gen(function* () {
          const pair = yield* makePair()
          const session = yield* Session.make(pair.a, { client: false, config: { keepaliveIntervalMillis: 0 } }).pipe(
            Effect.orDie
          )
          yield* abortOnExit(session)
          const peer = new RawPeer(pair.b)
          yield* session.close
          const frame = yield* peer.next
          assert.deepStrictEqual({ type: frame!.type, code: frame!.length }, { type: FrameType.GoAway, code: 0 })
          assert.isUndefined(yield* peer.next, "then EOF: closed, not reset")
        }),
      10_000
    )

    it.effect(
      "the drain deadline ends stragglers: they work until the deadline, then fail with SessionClosed",
      () =>
        Effect.gen(function* () {
          const sp = yield* sessionPair({ config: { drainTimeoutMillis: DRAIN, keepaliveIntervalMillis: 0 } })
          const c = yield* sp.client.openUnscoped
          const s = yield* sp.server.acceptUnscoped
          const closing = yield* Effect.forkChild(sp.server.close)
          yield* eventually(() => !sp.client.isOpen(), "GO_AWAY arrived")
          yield* advance(DRAIN - 1)
          // Still alive 1 ms before the deadline: bytes move both ways.
          yield* c.write([payload(1000, 4)])
          assertBytes((yield* s.read)!, payload(1000, 4), "straggler before the deadline")
          yield* s.write([payload(10, 5)])
          assertBytes((yield* c.read)!, payload(10, 5), "straggler before the deadline")
          const pendingRead = yield* Effect.forkChild(c.read)
          const peerRead = yield* Effect.forkChild(s.read)
          yield* settle()
          assert.isTrue(isRunning(closing))
          yield* advance(1)
          yield* Fiber.join(closing)
          assert.strictEqual(yield* fiberReason(peerRead), "SessionClosed")
          assert.strictEqual(yield* fiberReason(pendingRead), "SessionClosed")
          assert.strictEqual(yield* reasonOf(c.write([payload(1, 6)])), "SessionClosed")
          assert.isTrue(sp.client.isClosed() && sp.server.isClosed())
          assertIdle(sp.client)
          assertIdle(sp.server)
        }),
      10_000
    )
  })

  describe("link loss", () => {
    /**
     * 8 streams mid-transfer in both directions, and `cut` applied from inside the data path once
     * 8 MiB have been read (the in-memory pair runs a bulk transfer entirely on microtasks, so a test
     * fiber waiting for a macrotask turn would not run before the transfer ends). Returns every
     * running or blocked operation and the moment of the cut.
     */
    const midTransfer = (sp: SessionPair, cut: Effect.Effect<void>) =>
      Effect.gen(function* () {
        const ops: Array<Fiber.Fiber<unknown, MuxError>> = []
        const cutAt = yield* Deferred.make<number>()
        const chunk = payload(64 * 1024, 9)
        let read = 0
        // Writers that would run for gigabytes: they are always mid-transfer when the link goes.
        const endless = (stream: MuxStream) =>
          Effect.gen(function* () {
            for (let i = 0; i < 100_000; i++) yield* stream.write([chunk])
          })
        const discard = (stream: MuxStream) =>
          Effect.gen(function* () {
            for (let i = 0; i < 10_000_000; i++) {
              const got = yield* stream.read
              if (got === null) return
              read += got.length
              if (read >= 8 * MiB && !(yield* Deferred.isDone(cutAt))) {
                yield* cut
                yield* Deferred.succeed(cutAt, performance.now())
              }
            }
          })
        for (let i = 0; i < 8; i++) {
          const c = yield* sp.client.openUnscoped
          const s = yield* sp.server.acceptUnscoped
          ops.push(yield* Effect.forkChild(endless(c)))
          ops.push(yield* Effect.forkChild(endless(s)))
          // Readers on one side only: the other side's buffers fill and its writers block.
          ops.push(yield* Effect.forkChild(discard(s)))
        }
        ops.push(yield* Effect.forkChild(sp.client.acceptUnscoped))
        return { ops, cutAt: Deferred.await(cutAt) }
      })

    const allFailWith = (ops: ReadonlyArray<Fiber.Fiber<unknown, MuxError>>, allowed: ReadonlyArray<ReasonTag>) =>
      Effect.gen(function* () {
        for (const f of ops) assert.include(allowed, yield* fiberReason(f))
      })

    it.live(
      "transport reset mid-transfer: every operation fails promptly with TransportFailed",
      () =>
        Effect.gen(function* () {
          const sp = yield* sessionPair({ highWaterMark: 64 * 1024 })
          const { ops, cutAt } = yield* midTransfer(sp, sp.pair.a.reset)
          const at = yield* cutAt
          yield* allFailWith(ops, ["TransportFailed"])
          assert.isBelow(performance.now() - at, 1_000, "every operation ended within a second of the cut")
          assert.strictEqual((yield* sp.client.await).reason._tag, "TransportFailed")
          assert.strictEqual((yield* sp.server.await).reason._tag, "TransportFailed")
          assert.strictEqual(yield* reasonOf(sp.client.openUnscoped), "TransportFailed")
          assert.strictEqual(yield* reasonOf(sp.server.ping), "TransportFailed")
          assertIdle(sp.client)
          assertIdle(sp.server)
        }).pipe(Effect.scoped, (e) => within(10_000, "transport reset", e)),
      15_000
    )

    it.live(
      "the peer closes the link mid-transfer: every operation fails promptly with a typed error",
      () =>
        Effect.gen(function* () {
          const sp = yield* sessionPair({ highWaterMark: 64 * 1024 })
          const { ops, cutAt } = yield* midTransfer(sp, sp.pair.b.close)
          const at = yield* cutAt
          // The side that closed sees its own writes refused (TransportFailed) or EOF (SessionClosed).
          yield* allFailWith(ops, ["SessionClosed", "TransportFailed"])
          assert.isBelow(performance.now() - at, 1_000, "every operation ended within a second of the cut")
          assert.isTrue(sp.client.isClosed() && sp.server.isClosed())
          assertIdle(sp.client)
          assertIdle(sp.server)
        }).pipe(Effect.scoped, (e) => within(10_000, "link closed", e)),
      15_000
    )

    it.effect(
      "a silent partition mid-transfer: keepalive fails every operation with KeepaliveTimeout",
      () =>
        Effect.gen(function* () {
          const sp = yield* sessionPair({
            highWaterMark: 64 * 1024,
            config: { keepaliveIntervalMillis: 30_000, keepaliveTimeoutMillis: 10_000 }
          })
          const { ops, cutAt } = yield* midTransfer(sp, sp.pair.blackhole("both"))
          yield* cutAt
          yield* advance(39_000)
          assert.isTrue(ops.every(isRunning), "nothing ends before interval + timeout")
          yield* advance(1_000)
          yield* allFailWith(ops, ["KeepaliveTimeout"])
          assertIdle(sp.client)
          assertIdle(sp.server)
        }),
      10_000
    )
  })
})
