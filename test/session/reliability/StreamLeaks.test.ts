/**
 * Reliability case 5, "stream leaks when a FIN never comes": 100k streams opened and closed in
 * random orders (FIN first from either side, RST from either side, a peer that stays silent) leave
 * both registries empty once the close timeout has passed; a half-closed stream whose peer stays
 * silent is reset after exactly the close timeout.
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
  assertIdle,
  eventually,
  isRunning,
  payload,
  RawPeer,
  reasonOf,
  rng,
  type SessionPair,
  sessionPair,
  settle,
  unbudgeted
} from "./helpers.ts"

const CLOSE_TIMEOUT = 60_000
const RESOLUTION = 1_000

type Action = () => Effect.Effect<void>

/** Reads until the peer's FIN or a reset (bounded: peers here send at most a few bytes). */
const drain = (s: MuxStream) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1_000; i++) if ((yield* s.read) === null) return
  }).pipe(Effect.ignore)

/**
 * Opens `n` streams, accepts them all, then runs one client action and one server action per stream
 * in a shuffled order. Client (synchronous): FIN, RST, or 16 bytes then FIN. Server (a fiber per
 * stream, as an application would run it): FIN then read to EOF, read to EOF then FIN, RST, or
 * silence (never reads, never answers).
 */
const round = (sp: SessionPair, n: number, next: () => number) =>
  Effect.gen(function* () {
    const cs: Array<MuxStream> = []
    for (let i = 0; i < n; i++) cs.push(yield* sp.client.openUnscoped)
    const ss: Array<MuxStream> = []
    for (let i = 0; i < n; i++) ss.push(yield* sp.server.acceptUnscoped)
    const actions: Array<Action> = []
    const fibers: Array<Fiber.Fiber<void>> = []
    const fork =
      (effect: Effect.Effect<void>): Action =>
      () =>
        Effect.map(Effect.forkChild(effect), (f) => {
          fibers.push(f)
        })
    const small = payload(16, 1)
    for (let i = 0; i < n; i++) {
      const c = cs[i]!
      const s = ss[i]!
      assert.strictEqual(s.id, c.id)
      const r = next()
      switch (r % 3) {
        case 0:
          actions.push(() => c.closeWrite)
          break
        case 1:
          actions.push(() => c.reset)
          break
        default:
          actions.push(() => Effect.andThen(Effect.ignore(c.write([small])), c.closeWrite))
      }
      switch ((r >>> 8) % 4) {
        case 0:
          actions.push(fork(Effect.andThen(s.closeWrite, drain(s))))
          break
        case 1:
          actions.push(fork(Effect.andThen(drain(s), s.closeWrite)))
          break
        case 2:
          actions.push(() => s.reset)
          break
        default:
        // silent: the server never reads nor answers this stream
      }
    }
    // Fisher-Yates with the seeded generator: random interleaving across streams and sides.
    for (let i = actions.length - 1; i > 0; i--) {
      const j = next() % (i + 1)
      const t = actions[i]!
      actions[i] = actions[j]!
      actions[j] = t
    }
    for (const act of actions) yield* act()
    // Every server fiber ends once the client's FIN or RST has arrived.
    for (const f of fibers) yield* Fiber.await(f)
  })

describe("stream leaks when a FIN never comes", () => {
  it.effect(
    "100k streams closed in random orders (FIN, RST, silent peer) leave both registries empty",
    () =>
      Effect.gen(function* () {
        // Two thirds of this test's CPU went to capturing stack traces for the StreamReset errors
        // of ~60k resets (reported separately); the registries are what is under test here.
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            const limit = Error.stackTraceLimit
            Error.stackTraceLimit = 0
            return limit
          }),
          (limit) =>
            Effect.sync(() => {
              Error.stackTraceLimit = limit
            })
        )
        const started = performance.now()
        const batch = 1_000
        const sp = yield* sessionPair({
          config: {
            ...unbudgeted,
            closeTimeoutMillis: CLOSE_TIMEOUT,
            timerResolutionMillis: RESOLUTION,
            keepaliveIntervalMillis: 0
          },
          clientConfig: { maxUnackedOpens: batch },
          serverConfig: { acceptBacklog: batch }
        })
        const next = rng(20240601)
        const total = 100_000
        for (let done = 0; done < total; done += batch) {
          yield* round(sp, batch, next)
        }
        // Everything not waiting on a silent peer is gone as soon as the frames are through.
        yield* eventually(
          () => sp.client.stats().unackedOpens === 0 && sp.server.stats().acceptBacklog === 0,
          "all ACKs through"
        )
        const lingering = sp.client.stats().streams
        assert.isAbove(lingering, 0, "some streams wait on a silent peer")
        assert.isBelow(lingering, total / 3)
        // The close timeout resets the rest; the RSTs clean the silent side too.
        yield* advance(CLOSE_TIMEOUT + 2 * RESOLUTION, 10_000)
        yield* eventually(() => sp.client.stats().streams === 0 && sp.server.stats().streams === 0, "registries empty")
        assertIdle(sp.client)
        assertIdle(sp.server)
        assert.isTrue(sp.client.isOpen() && sp.server.isOpen(), "both sessions healthy")
        assert.isAtLeast(yield* sp.client.ping, 0)
        const elapsed = performance.now() - started
        // Timing note for the suite's budget (2 cores): printed, not asserted.
        console.log(`100k streams: ${Math.round(elapsed)} ms, ${lingering} reset by the close timeout`)
      }),
    30_000
  )

  it.effect(
    "a half-closed stream whose peer stays silent is reset exactly after the close timeout",
    () =>
      Effect.gen(function* () {
        const sp = yield* sessionPair({
          config: { closeTimeoutMillis: CLOSE_TIMEOUT, timerResolutionMillis: RESOLUTION }
        })
        const c = yield* sp.client.openUnscoped
        const s = yield* sp.server.acceptUnscoped
        yield* c.closeWrite
        yield* eventually(() => s.state === "RemoteClosed", "FIN arrived")
        const peerRead = yield* Effect.forkChild(s.readAll)
        yield* advance(CLOSE_TIMEOUT - RESOLUTION)
        assert.strictEqual(c.state, "LocalClosed", "not yet")
        assert.strictEqual(sp.client.stats().streams, 1)
        yield* advance(RESOLUTION)
        assert.strictEqual(c.state, "Reset", "reset at the deadline")
        yield* eventually(() => sp.server.stats().streams === 0, "the RST reached the silent peer")
        // The silent peer had read everything (EOF); its stream is gone, not failed mid-read.
        assert.strictEqual((yield* Fiber.join(peerRead)).length, 0)
        assert.strictEqual(yield* reasonOf(s.write([payload(1, 1)])), "StreamReset")
        assert.strictEqual(sp.client.stats().streams, 0)
      }),
    10_000
  )

  it.effect(
    "on the wire: FIN, then exactly one RST at the close timeout, then nothing",
    () =>
      Effect.gen(function* () {
        const pair = yield* makePair()
        const session = yield* Session.make(pair.a, {
          client: true,
          config: { closeTimeoutMillis: CLOSE_TIMEOUT, timerResolutionMillis: RESOLUTION, keepaliveIntervalMillis: 0 }
        }).pipe(Effect.orDie)
        yield* abortOnExit(session)
        const peer = new RawPeer(pair.b)
        const c = yield* session.openUnscoped
        const syn = yield* peer.next
        yield* peer.send(windowUpdate(syn!.streamId, Flags.ACK, 0))
        yield* c.closeWrite
        const fin = yield* peer.until((f) => (f.flags & Flags.FIN) !== 0, "FIN")
        assert.strictEqual(fin.streamId, c.id)
        yield* advance(CLOSE_TIMEOUT - RESOLUTION)
        assert.deepStrictEqual(yield* peer.sync, [], "nothing before the deadline")
        yield* advance(RESOLUTION)
        const frames = yield* peer.sync
        assert.deepStrictEqual(
          frames.map((f) => ({ type: f.type, flags: f.flags, id: f.streamId })),
          [{ type: FrameType.WindowUpdate, flags: Flags.RST, id: c.id }]
        )
        yield* advance(10 * CLOSE_TIMEOUT, 10_000)
        assert.deepStrictEqual(yield* peer.sync, [], "and nothing after")
        assertIdle(session)
      }),
    10_000
  )

  it.effect(
    "stream.close on a silent peer waits for its FIN, then resets after the close timeout",
    () =>
      Effect.gen(function* () {
        const sp = yield* sessionPair({
          config: { closeTimeoutMillis: CLOSE_TIMEOUT, timerResolutionMillis: RESOLUTION }
        })
        const c = yield* sp.client.openUnscoped
        const s = yield* sp.server.acceptUnscoped
        const closing = yield* Effect.forkChild(c.close)
        yield* advance(CLOSE_TIMEOUT - RESOLUTION)
        assert.isTrue(isRunning(closing))
        yield* advance(RESOLUTION)
        yield* Fiber.join(closing)
        assert.strictEqual(c.state, "Reset")
        yield* eventually(() => s.state === "Reset", "RST reached the peer")
        assertIdle(sp.client)
        assertIdle(sp.server)
      }),
    10_000
  )

  it.effect(
    "stream.close returns as soon as the peer answers with its FIN",
    () =>
      Effect.gen(function* () {
        const sp = yield* sessionPair({ config: { closeTimeoutMillis: CLOSE_TIMEOUT } })
        const c = yield* sp.client.openUnscoped
        const s = yield* sp.server.acceptUnscoped
        const closing = yield* Effect.forkChild(c.close)
        yield* settle()
        assert.isTrue(isRunning(closing))
        assert.isNull(yield* s.read)
        yield* s.closeWrite
        yield* Fiber.join(closing)
        assert.strictEqual(c.state, "Closed")
        yield* eventually(() => sp.server.stats().streams === 0, "server released")
        assertIdle(sp.client)
      }),
    10_000
  )
})
