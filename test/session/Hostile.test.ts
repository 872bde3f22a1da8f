/**
 * Hostile input: a raw peer sends malformed, out-of-order or abusive frames to a real session, and
 * each gets the outcome protocol.md defines.
 *
 * - Session-fatal violations: the session sends GO_AWAY(1), closes the link, and `await` returns the
 *   typed reason (ProtocolError with its kind, or WindowExceeded) — nothing after the GO_AWAY.
 * - Stream-level violations (DATA after the peer's FIN): that stream is reset, the session carries on.
 * - Tolerated oddities (RST with a length, unsolicited pong, WINDOW_UPDATE after FIN, late frames for
 *   finished streams): accepted silently.
 * - Abuse (ping floods, SYN floods, 1-byte writes, random bytes): answered, refused or closed in
 *   bounded time and memory, never a thrown exception or a hang.
 *
 * The session under test listens (even ids); the raw peer dials (odd ids). All waits are bounded by
 * the raw peer's deadline; `sync` (a ping barrier) proves the session processed everything before it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { type MuxStream, snapshotOf } from "../../src/internal/session/Stream.ts"
import { Flags, FrameType, INITIAL_WINDOW, MAX_UINT32 } from "../../src/protocol/Constants.ts"
import { data, encodeFrame, type Frame, goAway, ping, windowUpdate } from "../../src/protocol/Frame.ts"
import type { SessionConfig } from "../../src/session/Config.ts"
import type { MuxError } from "../../src/session/MuxError.ts"
import { rng } from "../transport/helpers.ts"
import * as RawPeerModule from "./rawPeer.ts"
import { describeFrame, header, type RawPeer } from "./rawPeer.ts"

const TEST_TIMEOUT = 5_000
const BOUND = 2_000
const KiB = 1024
const MAX_WINDOW = 4 * 1024 * 1024

const bytes = (n: number, seed: number): Uint8Array => {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7) & 0xff
  return out
}

/** 12 to 211 uniformly random bytes. */
const randomBytes = (next: () => number): Uint8Array => {
  const out = new Uint8Array(12 + (next() % 200))
  for (let i = 0; i < out.length; i++) out[i] = next()
  return out
}

/**
 * Headers that pass the version check: a known type, defined flags, small ids, mostly small lengths,
 * each followed by a random number of random bytes (not necessarily its payload).
 */
const plausibleFrames = (next: () => number): Uint8Array => {
  const parts: Array<number> = []
  const frames = 1 + (next() % 6)
  for (let f = 0; f < frames; f++) {
    const small = next() % 8 !== 0
    const h = header({
      type: next() % 4,
      flags: next() % 16,
      streamId: next() % 4 === 0 ? 0 : next() % 9,
      length: small ? next() % 64 : next()
    })
    parts.push(...h)
    const filler = next() % 4 === 0 ? next() % 64 : 0
    for (let i = 0; i < filler; i++) parts.push(next() & 0xff)
  }
  return new Uint8Array(parts)
}

const makePeer = (config: Partial<SessionConfig> = {}) =>
  RawPeerModule.make({ config: { maxWindow: MAX_WINDOW, ...config }, timeoutMillis: BOUND })

const bounded = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.timeoutOrElse({ duration: BOUND, orElse: () => Effect.die(new Error(`${what} timed out`)) }))

/** The raw peer opens stream `id` (WINDOW_UPDATE|SYN) and the session accepts it (sending the ACK). */
const openAccepted = (peer: RawPeer, id: number) =>
  Effect.gen(function* () {
    yield* peer.send(windowUpdate(id, Flags.SYN, 0))
    const stream = yield* bounded("accept", peer.session.acceptUnscoped)
    assert.strictEqual(stream.id, id)
    const ack = yield* peer.expectFrame({ streamId: id })
    assert.deepStrictEqual(summary(ack), {
      type: FrameType.WindowUpdate,
      flags: Flags.ACK,
      streamId: id,
      length: MAX_WINDOW - INITIAL_WINDOW
    })
    return stream
  })

const summary = (f: Frame) => ({ type: f.type, flags: f.flags, streamId: f.streamId, length: f.length })

/** The session answers a violation: GO_AWAY(1) as its last frame, then EOF; returns `await`'s reason. */
const expectGoAwayAndClose = (peer: RawPeer): Effect.Effect<MuxError, RawPeerModule.RawPeerTimeout> =>
  Effect.gen(function* () {
    const frame = yield* peer.expectFrame({ type: FrameType.GoAway })
    assert.deepStrictEqual(summary(frame), { type: FrameType.GoAway, flags: 0, streamId: 0, length: 1 })
    const end = yield* peer.closed
    assert.strictEqual(end._tag, "Eof", "the link is closed after the GO_AWAY is flushed")
    assert.strictEqual(
      peer.received.at(-1),
      frame,
      `nothing follows the GO_AWAY: ${peer.received.slice(-3).map(describeFrame).join(", ")}`
    )
    const error = yield* peer.awaitSession
    assert.isTrue(peer.session.isClosed())
    assert.isFalse(peer.session.isOpen())
    const closedEvent = peer.events.find((e) => e._tag === "SessionClosed")
    assert.isDefined(closedEvent)
    return error
  })

const expectProtocolError = (peer: RawPeer, kind: string, streamId?: number) =>
  Effect.gen(function* () {
    const error = yield* expectGoAwayAndClose(peer)
    assert.strictEqual(error.reason._tag, "ProtocolError", error.message)
    if (error.reason._tag === "ProtocolError") {
      assert.strictEqual(error.reason.kind, kind, error.message)
      if (streamId !== undefined) assert.strictEqual(error.reason.streamId, streamId)
    }
    assert.strictEqual(error.goAwayCode, 1)
    assert.isFalse(error.isRetryable)
    return error
  })

/** The session is healthy: it answers a ping barrier, and a fresh stream carries bytes both ways. */
const expectHealthy = (peer: RawPeer, freshId: number) =>
  Effect.gen(function* () {
    assert.isFalse(peer.session.isClosed())
    yield* peer.sync
    const stream = yield* openAccepted(peer, freshId)
    const payload = bytes(100, freshId)
    yield* peer.send(data(freshId, 0, payload))
    const got = yield* bounded("read", stream.read)
    assert.deepStrictEqual(got, payload)
    yield* stream.write([payload.subarray(0, 10)])
    const back = yield* peer.expectFrame({ streamId: freshId, type: FrameType.Data })
    assert.deepStrictEqual(back.payload, payload.subarray(0, 10))
    yield* stream.reset
    yield* peer.expectFrame({ streamId: freshId, flags: Flags.RST })
  })

interface FatalCase {
  readonly name: string
  /** Streams the raw peer opens (and the session accepts) first. */
  readonly open?: ReadonlyArray<number>
  readonly send: ReadonlyArray<Frame | Uint8Array>
  readonly kind: string
  readonly streamId?: number
}

const fatalCases: ReadonlyArray<FatalCase> = [
  { name: "bad version 1", send: [header({ version: 1, type: 0, streamId: 1 })], kind: "BadVersion" },
  { name: "bad version 255", send: [header({ version: 255, type: 2, flags: Flags.SYN })], kind: "BadVersion" },
  { name: "unknown type 4", send: [header({ type: 4, streamId: 1 })], kind: "BadType" },
  { name: "unknown type 255", send: [header({ type: 255 })], kind: "BadType" },
  {
    name: "unknown flag bit 0x10 on WINDOW_UPDATE",
    send: [header({ type: FrameType.WindowUpdate, flags: Flags.SYN | 0x10, streamId: 1 })],
    kind: "BadFlags"
  },
  {
    name: "unknown flag bit 0x8000 on DATA",
    open: [1],
    send: [header({ type: FrameType.Data, flags: 0x8000, streamId: 1 })],
    kind: "BadFlags"
  },
  { name: "PING with FIN", send: [header({ type: FrameType.Ping, flags: Flags.FIN })], kind: "BadFlags" },
  { name: "DATA on stream 0", send: [header({ type: FrameType.Data, length: 0 })], kind: "BadStreamId" },
  {
    name: "WINDOW_UPDATE on stream 0",
    send: [header({ type: FrameType.WindowUpdate, length: 100 })],
    kind: "BadStreamId"
  },
  {
    name: "PING on a non-zero stream",
    open: [1],
    send: [header({ type: FrameType.Ping, flags: Flags.SYN, streamId: 1, length: 9 })],
    kind: "BadStreamId"
  },
  {
    name: "GO_AWAY on a non-zero stream",
    send: [header({ type: FrameType.GoAway, streamId: 3 })],
    kind: "BadStreamId"
  },
  {
    name: "DATA beyond the 16 MiB sanity bound",
    open: [1],
    send: [header({ type: FrameType.Data, streamId: 1, length: 16 * 1024 * 1024 + 1 })],
    kind: "FrameTooLarge"
  },
  {
    name: "WINDOW_UPDATE for a never-opened peer stream",
    send: [windowUpdate(5, 0, 100)],
    kind: "UnknownStream",
    streamId: 5
  },
  {
    name: "DATA for a never-opened peer stream beyond the highest seen",
    open: [1],
    send: [data(3, 0, bytes(10, 1))],
    kind: "UnknownStream",
    streamId: 3
  },
  {
    name: "DATA for a never-opened stream of the session's parity",
    send: [data(2, 0, bytes(10, 1))],
    kind: "UnknownStream",
    streamId: 2
  },
  { name: "RST for a never-opened stream", send: [windowUpdate(7, Flags.RST, 0)], kind: "UnknownStream", streamId: 7 },
  {
    name: "wrong-parity SYN (even id from the dialling peer)",
    send: [windowUpdate(2, Flags.SYN, 0)],
    kind: "BadStreamId",
    streamId: 2
  },
  {
    name: "wrong-parity DATA|SYN",
    send: [data(4, Flags.SYN, bytes(5, 1))],
    kind: "BadStreamId",
    streamId: 4
  },
  {
    name: "duplicate SYN for a live (accepted) id",
    open: [1],
    send: [windowUpdate(1, Flags.SYN, 0)],
    kind: "DuplicateSyn",
    streamId: 1
  },
  {
    name: "duplicate SYN for a live id still in the accept backlog",
    send: [windowUpdate(3, Flags.SYN, 0), data(3, Flags.SYN, bytes(4, 1))],
    kind: "DuplicateSyn",
    streamId: 3
  },
  {
    name: "window credit overflowing 2^32-1 in one update",
    open: [1],
    send: [windowUpdate(1, 0, MAX_UINT32)],
    kind: "WindowOverflow",
    streamId: 1
  },
  {
    name: "window credit overflowing 2^32-1 over two updates",
    open: [1],
    send: [windowUpdate(1, 0, MAX_UINT32 - INITIAL_WINDOW), windowUpdate(1, 0, 1)],
    kind: "WindowOverflow",
    streamId: 1
  },
  {
    name: "window credit overflow carried on the SYN itself",
    send: [windowUpdate(1, Flags.SYN, MAX_UINT32 - INITIAL_WINDOW + 1)],
    kind: "WindowOverflow",
    streamId: 1
  }
]

describe("Hostile: session-fatal violations → GO_AWAY(1), close, typed reason", () => {
  for (const c of fatalCases) {
    it.live(
      c.name,
      () =>
        Effect.gen(function* () {
          const peer = yield* makePeer()
          for (const id of c.open ?? []) yield* openAccepted(peer, id)
          yield* peer.send(...c.send)
          yield* expectProtocolError(peer, c.kind, c.streamId)
        }),
      TEST_TIMEOUT
    )
  }

  it.live(
    "a violation fails every open stream and waiter with the same error",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        const stream = yield* openAccepted(peer, 1)
        const reader = yield* Effect.forkChild(Effect.flip(stream.read))
        const acceptor = yield* Effect.forkChild(Effect.flip(peer.session.acceptUnscoped))
        yield* peer.send(header({ type: 9 }))
        const error = yield* expectProtocolError(peer, "BadType")
        assert.strictEqual(yield* bounded("reader", Fiber.join(reader)), error)
        assert.strictEqual(yield* bounded("acceptor", Fiber.join(acceptor)), error)
        assert.strictEqual(yield* Effect.flip(stream.write([bytes(1, 1)])), error)
        assert.strictEqual(yield* Effect.flip(peer.session.openUnscoped), error)
        assert.strictEqual(peer.session.stats().streams, 0)
      }),
    TEST_TIMEOUT
  )
})

describe("Hostile: the dialling side checks parity too", () => {
  it.live(
    "an odd-id SYN sent to the dialling session is a protocol error",
    () =>
      Effect.gen(function* () {
        const peer = yield* RawPeerModule.make({ client: true, timeoutMillis: BOUND })
        yield* peer.send(windowUpdate(3, Flags.SYN, 0))
        yield* expectProtocolError(peer, "BadStreamId", 3)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "an even-id SYN from the listening peer is accepted by the dialling session",
    () =>
      Effect.gen(function* () {
        const peer = yield* RawPeerModule.make({ client: true, timeoutMillis: BOUND })
        yield* peer.send(data(2, Flags.SYN, bytes(3, 1)))
        const s = yield* bounded("accept", peer.session.acceptUnscoped)
        assert.strictEqual(s.id, 2)
        assert.deepStrictEqual(yield* bounded("read", s.read), bytes(3, 1))
      }),
    TEST_TIMEOUT
  )
})

describe("Hostile: DATA beyond the receive window, detected at header time", () => {
  it.live(
    "DATA|SYN longer than the initial window: only the header is sent",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        yield* peer.send(header({ type: FrameType.Data, flags: Flags.SYN, streamId: 1, length: INITIAL_WINDOW + 1 }))
        const error = yield* expectGoAwayAndClose(peer)
        assert.strictEqual(error.reason._tag, "WindowExceeded", error.message)
        if (error.reason._tag === "WindowExceeded") {
          assert.strictEqual(error.reason.streamId, 1)
          assert.strictEqual(error.reason.length, INITIAL_WINDOW + 1)
          assert.strictEqual(error.reason.window, INITIAL_WINDOW)
        }
        assert.strictEqual(error.goAwayCode, 1)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "DATA longer than an unaccepted stream's window (the initial 256 KiB)",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        yield* peer.send(windowUpdate(1, Flags.SYN, 0))
        yield* peer.sync
        yield* peer.send(header({ type: FrameType.Data, streamId: 1, length: INITIAL_WINDOW + 1 }))
        const error = yield* expectGoAwayAndClose(peer)
        assert.strictEqual(error.reason._tag, "WindowExceeded")
      }),
    TEST_TIMEOUT
  )

  it.live(
    "DATA longer than an accepted stream's grown window (maxWindow)",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        yield* openAccepted(peer, 1)
        yield* peer.send(header({ type: FrameType.Data, streamId: 1, length: MAX_WINDOW + 1 }))
        const error = yield* expectGoAwayAndClose(peer)
        assert.strictEqual(error.reason._tag, "WindowExceeded")
        if (error.reason._tag === "WindowExceeded") {
          assert.strictEqual(error.reason.length, MAX_WINDOW + 1)
          assert.strictEqual(error.reason.window, MAX_WINDOW)
        }
      }),
    TEST_TIMEOUT
  )

  it.live(
    "the window is cumulative: unread DATA shrinks it, the next header over the rest is refused",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        yield* peer.send(data(1, Flags.SYN, bytes(200 * KiB, 1)))
        yield* peer.sync
        assert.isFalse(peer.session.isClosed())
        yield* peer.send(header({ type: FrameType.Data, streamId: 1, length: INITIAL_WINDOW - 200 * KiB + 1 }))
        const error = yield* expectGoAwayAndClose(peer)
        assert.strictEqual(error.reason._tag, "WindowExceeded")
        if (error.reason._tag === "WindowExceeded") assert.strictEqual(error.reason.window, INITIAL_WINDOW - 200 * KiB)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "DATA exactly filling the window is accepted and delivered",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        const payload = bytes(INITIAL_WINDOW, 3)
        yield* peer.send(data(1, Flags.SYN, payload))
        yield* peer.sync
        const stream = yield* bounded("accept", peer.session.acceptUnscoped)
        yield* peer.send(windowUpdate(1, Flags.FIN, 0))
        const got = yield* bounded("readAll", stream.readAll)
        assert.strictEqual(got.length, payload.length)
        assert.deepStrictEqual(got, payload)
        yield* expectHealthy(peer, 3)
      }),
    TEST_TIMEOUT
  )
})

describe("Hostile: stream-level violations reset that stream only", () => {
  it.live(
    "DATA after the peer's FIN → RST on that stream, the session and other streams carry on",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        const victim = yield* openAccepted(peer, 1)
        const bystander = yield* openAccepted(peer, 3)
        yield* peer.send(data(1, Flags.FIN, bytes(10, 1)))
        yield* peer.send(data(1, 0, bytes(10, 2)))
        const before = yield* peer.sync
        assert.deepStrictEqual(before.map(summary), [
          { type: FrameType.WindowUpdate, flags: Flags.RST, streamId: 1, length: 0 }
        ])
        const error = yield* Effect.flip(bounded("read", victim.readAll))
        assert.strictEqual(error.reason._tag, "StreamReset")
        if (error.reason._tag === "StreamReset") assert.isTrue(error.reason.remote)
        assert.strictEqual(victim.state, "Reset")
        // The bystander still works both ways.
        yield* peer.send(data(3, 0, bytes(5, 3)))
        assert.deepStrictEqual(yield* bounded("read", bystander.read), bytes(5, 3))
        yield* bystander.write([bytes(7, 4)])
        const back = yield* peer.expectFrame({ streamId: 3, type: FrameType.Data })
        assert.deepStrictEqual(back.payload, bytes(7, 4))
        // Later frames for the reset stream are dropped silently.
        yield* peer.send(data(1, 0, bytes(3, 5)), windowUpdate(1, 0, 100))
        assert.deepStrictEqual(yield* peer.sync, [])
        yield* expectHealthy(peer, 5)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "DATA after FIN on a stream still in the accept backlog resets it; accept skips it",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        yield* peer.send(data(1, Flags.SYN | Flags.FIN, bytes(4, 1)), data(1, 0, bytes(4, 2)))
        const before = yield* peer.sync
        assert.deepStrictEqual(before.map(summary), [
          { type: FrameType.WindowUpdate, flags: Flags.RST, streamId: 1, length: 0 }
        ])
        yield* peer.send(windowUpdate(3, Flags.SYN, 0))
        const next = yield* bounded("accept", peer.session.acceptUnscoped)
        assert.strictEqual(next.id, 3)
        assert.strictEqual(peer.session.stats().acceptBacklog, 0)
      }),
    TEST_TIMEOUT
  )
})

describe("Hostile: tolerated oddities", () => {
  it.live(
    "RST with a non-zero length is accepted (WINDOW_UPDATE and DATA carriers)",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        const a = yield* openAccepted(peer, 1)
        const b = yield* openAccepted(peer, 3)
        const c = yield* openAccepted(peer, 5)
        // go-yamux style: an error code in the length of a WINDOW_UPDATE|RST.
        yield* peer.send(windowUpdate(1, Flags.RST, 2))
        yield* peer.send(windowUpdate(3, Flags.RST, 0x7fff_ffff))
        // DATA|RST carrying bytes.
        yield* peer.send(data(5, Flags.RST, bytes(6, 1)))
        assert.deepStrictEqual(yield* peer.sync, [], "no RST echoed back, no GO_AWAY")
        for (const s of [a, b, c]) {
          const error = yield* Effect.flip(bounded("read", s.readAll))
          assert.strictEqual(error.reason._tag, "StreamReset")
          assert.strictEqual(s.state, "Reset")
        }
        assert.strictEqual(peer.session.stats().streams, 0)
        yield* expectHealthy(peer, 7)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "regression: WINDOW_UPDATE|RST with length 2^32-1 is not taken as credit (no WindowOverflow)",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        const s = yield* openAccepted(peer, 1)
        // Were the length taken as credit, 256 KiB + (2^32-1) would overflow the send window.
        yield* peer.send(windowUpdate(1, Flags.RST, MAX_UINT32))
        assert.deepStrictEqual(yield* peer.sync, [])
        const error = yield* Effect.flip(bounded("read", s.read))
        assert.strictEqual(error.reason._tag, "StreamReset")
        assert.strictEqual(snapshotOf(s).sendWindow, INITIAL_WINDOW)
        yield* expectHealthy(peer, 3)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "an unsolicited pong is ignored",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        yield* peer.send(ping(Flags.ACK, 12345), ping(Flags.ACK, 0), ping(Flags.ACK, MAX_UINT32))
        assert.deepStrictEqual(yield* peer.sync, [])
        assert.strictEqual(peer.session.stats().pendingPings, 0)
        yield* expectHealthy(peer, 1)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "a pong answers the session's own ping",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        const pinger = yield* Effect.forkChild(peer.session.ping)
        const request = yield* peer.expectFrame({ type: FrameType.Ping })
        assert.strictEqual(request.flags, Flags.SYN)
        yield* peer.send(ping(Flags.ACK, request.length))
        const rtt = yield* bounded("ping", Fiber.join(pinger))
        assert.isAtLeast(rtt, 0)
        assert.strictEqual(peer.session.stats().pendingPings, 0)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "WINDOW_UPDATE after FIN is accepted, in every state short of reset",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        // The session half-closes first (LocalClosed); the peer keeps granting credit.
        const s1 = yield* openAccepted(peer, 1)
        yield* s1.closeWrite
        yield* peer.expectFrame({ streamId: 1, flags: Flags.FIN })
        yield* peer.send(windowUpdate(1, 0, 64 * KiB))
        // The peer half-closes, then grants credit (RemoteClosed).
        const s3 = yield* openAccepted(peer, 3)
        yield* peer.send(windowUpdate(3, Flags.FIN, 0), windowUpdate(3, 0, 64 * KiB))
        // Both sides closed: the stream is gone; a late update is dropped.
        yield* peer.send(windowUpdate(1, Flags.FIN, 0), windowUpdate(1, 0, 1000))
        assert.deepStrictEqual(yield* peer.sync, [])
        assert.strictEqual(s1.state, "Closed")
        assert.strictEqual(s3.state, "RemoteClosed")
        assert.strictEqual(snapshotOf(s3).sendWindow, INITIAL_WINDOW + 64 * KiB)
        // s3 can still write after the peer's FIN.
        yield* s3.write([bytes(9, 1)])
        const frame = yield* peer.expectFrame({ streamId: 3, type: FrameType.Data })
        assert.deepStrictEqual(frame.payload, bytes(9, 1))
        assert.isNull(yield* bounded("read", s3.read))
        yield* expectHealthy(peer, 5)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "late frames for a stream the session opened and finished are dropped",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        const s = yield* bounded("open", peer.session.openUnscoped)
        assert.strictEqual(s.id, 2)
        const syn = yield* peer.expectFrame({ streamId: 2 })
        assert.strictEqual(syn.flags, Flags.SYN)
        yield* peer.send(windowUpdate(2, Flags.ACK | Flags.RST, 0))
        yield* peer.send(data(2, 0, bytes(10, 1)), windowUpdate(2, Flags.FIN, 10))
        assert.deepStrictEqual(yield* peer.sync, [])
        assert.strictEqual(s.state, "Reset")
        yield* expectHealthy(peer, 1)
      }),
    TEST_TIMEOUT
  )
})

describe("Hostile: abuse", () => {
  it.live(
    "ping flood within a raised budget: 10k pings answered with 10k pongs in order, memory bounded",
    () =>
      Effect.gen(function* () {
        // The ping budget (its own tests are in Budgets.test.ts) is lifted to look at ordering and memory.
        const peer = yield* makePeer({ maxPingsPerSecond: 1_000_000 })
        const count = 10_000
        const flood = new Uint8Array(count * 12)
        for (let i = 0; i < count; i++) flood.set(encodeFrame(ping(Flags.SYN, i + 1)), i * 12)
        // Sent in 1000-ping writes.
        for (let i = 0; i < count; i += 1000) yield* peer.send(flood.subarray(i * 12, (i + 1000) * 12))
        let maxBuffered = 0
        yield* peer.waitUntil(`${count} pongs`, () => {
          const b = peer.pair.buffered()
          maxBuffered = Math.max(maxBuffered, b.toA + b.toB)
          return peer.received.length >= count ? true : undefined
        })
        const pongs = yield* peer.nextFrames(count)
        assert.strictEqual(pongs.length, count)
        for (let i = 0; i < count; i++) {
          const f = pongs[i]!
          if (f.type !== FrameType.Ping || f.flags !== Flags.ACK || f.length !== i + 1) {
            assert.fail(`frame ${i} is ${describeFrame(f)}, expected PING[ACK](0, ${i + 1})`)
          }
        }
        assert.isAtMost(maxBuffered, 2 * 256 * KiB)
        yield* expectHealthy(peer, 1)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "ping flood from a peer that never reads its pongs: the control backlog budget ends the session with GO_AWAY(1), memory bounded",
    () =>
      Effect.gen(function* () {
        // The ping rate budget is lifted: this is about the pongs the peer leaves unread.
        const backlog = 4096
        const peer = yield* makePeer({ maxPingsPerSecond: 1_000_000_000, maxControlBacklog: backlog })
        peer.pauseReading()
        const count = 150_000
        const chunk = 1000
        const flood = new Uint8Array(chunk * 12)
        const flooder = yield* Effect.forkChild(
          Effect.gen(function* () {
            for (let i = 0; i < count; i += chunk) {
              for (let j = 0; j < chunk; j++) flood.set(encodeFrame(ping(Flags.SYN, i + j + 1)), j * 12)
              yield* peer.send(flood.slice())
            }
          }).pipe(Effect.ignore)
        )
        const error = yield* peer.awaitSession
        assert.strictEqual(error.reason._tag, "BudgetExceeded")
        if (error.reason._tag === "BudgetExceeded") {
          assert.strictEqual(error.reason.budget, "maxControlBacklog")
          assert.strictEqual(error.reason.limit, backlog)
        }
        assert.strictEqual(peer.session.stats().limits.maxControlBacklog, 1)
        // What the session queued for the peer: the pair's high-water mark plus one batch of
        // pongs, itself at most the backlog plus the pongs of one read (the budget is checked per frame).
        const queued = peer.pair.buffered().toB
        assert.isAtMost(queued, 256 * KiB + 12 * backlog + 256 * KiB + 12 * chunk)
        // Reading again: the pongs that were written, in order, then GO_AWAY(1) and the end.
        peer.resumeReading()
        yield* peer.closed
        yield* Fiber.join(flooder)
        const frames = peer.received
        const last = frames.at(-1)
        assert.deepStrictEqual(
          last === undefined ? undefined : { type: last.type, length: last.length },
          { type: FrameType.GoAway, length: 1 },
          "GO_AWAY(1) comes last"
        )
        // Pongs written before the backlog built up, if any (a read of many pings can trip the
        // budget before the writer ever ran).
        const pongs = frames.slice(0, -1)
        for (let i = 0; i < pongs.length; i++) {
          const f = pongs[i]!
          if (f.type !== FrameType.Ping || f.flags !== Flags.ACK || f.length !== i + 1) {
            assert.fail(`frame ${i} is ${describeFrame(f)}, expected PING[ACK](0, ${i + 1})`)
          }
        }
        assert.isBelow(pongs.length, count, "the flood was cut off")
      }),
    TEST_TIMEOUT
  )

  it.live(
    "SYN flood beyond the accept backlog: RST for the excess, session healthy",
    () =>
      Effect.gen(function* () {
        const backlog = 8
        const peer = yield* makePeer({ acceptBacklog: backlog })
        const ids = Array.from({ length: 40 }, (_, i) => 2 * i + 1)
        yield* peer.send(...ids.map((id) => windowUpdate(id, Flags.SYN, 0)))
        const before = yield* peer.sync
        const refused = ids.slice(backlog)
        assert.deepStrictEqual(
          before.map(summary),
          refused.map((id) => ({ type: FrameType.WindowUpdate, flags: Flags.RST, streamId: id, length: 0 }))
        )
        assert.strictEqual(peer.session.stats().acceptBacklog, backlog)
        assert.strictEqual(peer.session.stats().streams, backlog)
        // The backlog drains in order; the refused ids are not resurrected.
        const accepted: Array<MuxStream> = []
        for (let i = 0; i < backlog; i++) accepted.push(yield* bounded("accept", peer.session.acceptUnscoped))
        assert.deepStrictEqual(
          accepted.map((s) => s.id),
          ids.slice(0, backlog)
        )
        // Room again: a new SYN is accepted.
        yield* expectHealthy(peer, 2 * ids.length + 1)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "regression: streams reset while waiting in the accept backlog do not keep their slots",
    () =>
      Effect.gen(function* () {
        const backlog = 4
        const peer = yield* makePeer({ acceptBacklog: backlog })
        // Open-and-reset churn with nobody accepting: every stream dies in the backlog.
        const churn = Array.from({ length: 3 * backlog }, (_, i) => 2 * i + 1)
        yield* peer.send(...churn.flatMap((id) => [windowUpdate(id, Flags.SYN, 0), windowUpdate(id, Flags.RST, 0)]))
        assert.deepStrictEqual(yield* peer.sync, [], "no SYN of the churn is refused")
        assert.strictEqual(peer.session.stats().acceptBacklog, 0)
        assert.strictEqual(peer.session.stats().streams, 0)
        // A live SYN still finds room and is accepted.
        const id = 2 * churn.length + 1
        yield* peer.send(windowUpdate(id, Flags.SYN, 0))
        assert.deepStrictEqual(yield* peer.sync, [], "the live SYN is not refused")
        const s = yield* bounded("accept", peer.session.acceptUnscoped)
        assert.strictEqual(s.id, id)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "the session's own GO_AWAY resets every stream waiting in the accept backlog",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        const ids = [1, 3, 5, 7, 9]
        yield* peer.send(...ids.map((id) => windowUpdate(id, Flags.SYN, 0)))
        yield* peer.sync
        assert.strictEqual(peer.session.stats().acceptBacklog, ids.length)
        yield* peer.session.goAway
        const before = yield* peer.sync
        assert.deepStrictEqual(before.map(summary), [
          { type: FrameType.GoAway, flags: 0, streamId: 0, length: 0 },
          ...ids.map((id) => ({ type: FrameType.WindowUpdate, flags: Flags.RST, streamId: id, length: 0 }))
        ])
        assert.strictEqual(peer.session.stats().acceptBacklog, 0)
        assert.strictEqual(peer.session.stats().streams, 0)
        // Further SYNs are refused; accept reports the closing session.
        yield* peer.send(windowUpdate(11, Flags.SYN, 0))
        assert.deepStrictEqual((yield* peer.sync).map(summary), [
          { type: FrameType.WindowUpdate, flags: Flags.RST, streamId: 11, length: 0 }
        ])
        const error = yield* Effect.flip(peer.session.acceptUnscoped)
        assert.strictEqual(error.reason._tag, "SessionClosed")
      }),
    TEST_TIMEOUT
  )

  it.live(
    "1-byte writes: frames delivered one byte at a time decode correctly",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        const payload = bytes(40, 9)
        const wire = new Uint8Array([
          ...encodeFrame(windowUpdate(1, Flags.SYN, 0)),
          ...encodeFrame(data(1, 0, payload)),
          ...encodeFrame(ping(Flags.SYN, 4242)),
          ...encodeFrame(data(1, Flags.FIN, payload.subarray(0, 3)))
        ])
        yield* peer.sendSplit(wire, 1)
        // Nothing is ACKed before accept: the pong is the first frame back.
        const pong = yield* peer.nextFrame
        assert.deepStrictEqual(summary(pong), { type: FrameType.Ping, flags: Flags.ACK, streamId: 0, length: 4242 })
        const stream = yield* bounded("accept", peer.session.acceptUnscoped)
        const got = yield* bounded("readAll", stream.readAll)
        assert.deepStrictEqual(got, new Uint8Array([...payload, ...payload.subarray(0, 3)]))
        // And a violation split the same way is still caught at the header.
        yield* peer.sendSplit(header({ version: 3, type: 0 }), 1)
        yield* expectProtocolError(peer, "BadVersion")
      }),
    TEST_TIMEOUT
  )

  it.live(
    "random garbage → GO_AWAY(1) or a clean close, never an exception or a hang",
    () =>
      Effect.gen(function* () {
        const outcomes: Record<string, number> = {}
        for (let seed = 1; seed <= 60; seed++) {
          yield* Effect.scoped(
            Effect.gen(function* () {
              const peer = yield* makePeer()
              const next = rng(seed)
              const garbage = seed % 3 === 0 ? randomBytes(next) : plausibleFrames(next)
              yield* peer.send(garbage)
              // End the input, so garbage that happens to be a valid prefix cannot leave the session waiting.
              yield* peer.transport.closeWrite
              const error = yield* peer.awaitSession
              const end = yield* peer.closed
              const tag = error.reason._tag
              outcomes[tag === "ProtocolError" ? `ProtocolError/${error.reason.kind}` : tag] =
                (outcomes[tag === "ProtocolError" ? `ProtocolError/${error.reason.kind}` : tag] ?? 0) + 1
              assert.include(
                ["ProtocolError", "WindowExceeded", "SessionClosed", "RemoteGoAway"],
                tag,
                `seed ${seed}: ${error.message}`
              )
              assert.strictEqual(end._tag, "Eof", `seed ${seed}: the link is closed, not reset`)
              const goAways = peer.received.filter((f) => f.type === FrameType.GoAway)
              if (tag === "ProtocolError" || tag === "WindowExceeded") {
                assert.deepStrictEqual(goAways.map(summary), [
                  { type: FrameType.GoAway, flags: 0, streamId: 0, length: 1 }
                ])
              } else {
                assert.notInclude(
                  goAways.map((f) => f.length),
                  1,
                  `seed ${seed}: no GO_AWAY(1) without a violation`
                )
              }
            })
          )
        }
        // The corpus exercised more than one path.
        assert.isAtLeast(Object.keys(outcomes).length, 3, JSON.stringify(outcomes))
      }),
    TEST_TIMEOUT
  )

  it.live(
    "a hostile peer on one session leaves another session untouched",
    () =>
      Effect.gen(function* () {
        const victim = yield* makePeer()
        const other = yield* makePeer()
        const stream = yield* openAccepted(other, 1)
        yield* victim.send(header({ version: 7, type: 0 }))
        yield* expectProtocolError(victim, "BadVersion")
        yield* other.send(data(1, 0, bytes(20, 1)))
        assert.deepStrictEqual(yield* bounded("read", stream.read), bytes(20, 1))
        yield* expectHealthy(other, 3)
      }),
    TEST_TIMEOUT
  )
})

describe("Hostile: a silent peer (TestClock)", () => {
  it.effect(
    "a peer that never answers pings is dropped: KeepaliveTimeout, the link reset",
    () =>
      Effect.gen(function* () {
        const peer = yield* RawPeerModule.make({
          config: { keepaliveIntervalMillis: 1_000, keepaliveTimeoutMillis: 500 },
          timeoutMillis: BOUND
        })
        yield* TestClock.adjust(1_000)
        const request = yield* peer.expectFrame({ type: FrameType.Ping })
        assert.strictEqual(request.flags, Flags.SYN)
        assert.isFalse(peer.session.isClosed())
        yield* TestClock.adjust(500)
        const error = yield* peer.awaitSession
        assert.strictEqual(error.reason._tag, "KeepaliveTimeout")
        const end = yield* peer.closed
        assert.strictEqual(end._tag, "Error", "a dead link is reset, not closed")
      }),
    TEST_TIMEOUT
  )
})

describe("Hostile: GO_AWAY from the peer", () => {
  for (const code of [1, 2]) {
    it.live(
      `GO_AWAY(${code}) → the session ends with RemoteGoAway{code: ${code}}`,
      () =>
        Effect.gen(function* () {
          const peer = yield* makePeer()
          const stream = yield* openAccepted(peer, 1)
          yield* peer.send(goAway(code))
          const error = yield* peer.awaitSession
          assert.strictEqual(error.reason._tag, "RemoteGoAway")
          if (error.reason._tag === "RemoteGoAway") assert.strictEqual(error.reason.code, code)
          assert.isTrue(error.isRetryable)
          const end = yield* peer.closed
          assert.strictEqual(end._tag, "Eof")
          assert.notInclude(
            peer.received.filter((f) => f.type === FrameType.GoAway).map((f) => f.length),
            1,
            "the session does not blame itself"
          )
          assert.strictEqual(yield* Effect.flip(bounded("read", stream.read)), error)
          assert.deepInclude(peer.events, { _tag: "GoAwayReceived", code })
        }),
      TEST_TIMEOUT
    )
  }

  it.live(
    "GO_AWAY(0) → no new opens (RemoteGoAway), the existing stream keeps working",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        const stream = yield* openAccepted(peer, 1)
        yield* peer.send(goAway(0))
        assert.deepStrictEqual(yield* peer.sync, [])
        assert.isFalse(peer.session.isClosed())
        assert.isFalse(peer.session.isOpen())
        const refused = yield* Effect.flip(peer.session.openUnscoped)
        assert.strictEqual(refused.reason._tag, "RemoteGoAway")
        if (refused.reason._tag === "RemoteGoAway") assert.strictEqual(refused.reason.code, 0)
        assert.isTrue(refused.isRetryable)
        // No SYN went out for the refused open.
        assert.deepStrictEqual(yield* peer.sync, [])
        // The existing stream still works both ways, through to a clean close.
        const payload = bytes(70 * KiB, 5)
        yield* peer.send(data(1, Flags.FIN, payload))
        assert.deepStrictEqual(yield* bounded("readAll", stream.readAll), payload)
        yield* stream.write([payload])
        yield* stream.closeWrite
        const frames: Array<Frame> = []
        yield* peer.waitUntil("the stream's FIN", () => {
          const f = peer.received.find((x) => x.streamId === 1 && (x.flags & Flags.FIN) !== 0)
          return f
        })
        for (const f of peer.received) if (f.streamId === 1 && f.type === FrameType.Data) frames.push(f)
        const echoed = new Uint8Array(frames.reduce((n, f) => n + f.length, 0))
        let o = 0
        for (const f of frames) {
          echoed.set(f.payload, o)
          o += f.length
        }
        assert.deepStrictEqual(echoed, payload)
        assert.strictEqual(stream.state, "Closed")
        assert.strictEqual(peer.session.stats().streams, 0)
      }),
    TEST_TIMEOUT
  )
})
