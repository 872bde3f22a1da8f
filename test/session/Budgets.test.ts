/**
 * Flood budgets and the partial-frame deadline, at the session, on the TestClock: a raw peer sends
 * exactly the budget, or one more, within a second; or stalls inside a frame at every byte position.
 *
 * Each budget: one more than the budget within one second ends the session with GO_AWAY(1) (the
 * last frame), a typed `BudgetExceeded` naming the budget, the limit counted and reported once with
 * the reason; exactly the budget, in every window of several, leaves the session alive. The budgets
 * run at their defaults, except the control backlog (smaller here, so a test can fill it).
 *
 * The deadline: a frame header stalled after 1..11 of its 12 bytes, or a DATA body stalled after
 * 0..n-1 of its n bytes, ends the session with GO_AWAY(1) and a `FrameTimeout` saying where it
 * stalled, once `frameTimeoutMillis` (plus at most two timer ticks) has passed; not before; a peer
 * idle between frames is never cut off, and time the session spends not reading does not count.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { Flags, FrameType, HEADER_SIZE } from "../../src/protocol/Constants.ts"
import { data, encodeFrame, type Frame, ping, windowUpdate } from "../../src/protocol/Frame.ts"
import { defaults, type SessionConfig } from "../../src/session/Config.ts"
import type { FloodBudget } from "../../src/session/MuxError.ts"
import type { RawPeer } from "./rawPeer.ts"
import * as RawPeerModule from "./rawPeer.ts"

const TEST_TIMEOUT = 20_000
const BOUND = 5_000

const makePeer = (config: Partial<SessionConfig> = {}, highWaterMark?: number) =>
  RawPeerModule.make({
    config,
    timeoutMillis: BOUND,
    ...(highWaterMark === undefined ? {} : { highWaterMark })
  })

/** Frames encoded back to back into one byte array (one transport write, one session read). */
const wire = (frames: ReadonlyArray<Frame>): Uint8Array => {
  const out = new Uint8Array(frames.length * HEADER_SIZE + frames.reduce((n, f) => n + f.payload.length, 0))
  let offset = 0
  for (const f of frames) {
    const bytes = encodeFrame(f)
    out.set(bytes, offset)
    offset += bytes.length
  }
  return out
}

const pings = (n: number, first: number): Array<Frame> =>
  Array.from({ length: n }, (_, i) => ping(Flags.SYN, first + i))

const countFrames = (peer: RawPeer, match: (f: Frame) => boolean): number => peer.received.filter(match).length

const isPong = (f: Frame) => f.type === FrameType.Ping && f.flags === Flags.ACK

/** The defined outcome of a budget trip: GO_AWAY(1) last, the link closed, typed, counted, reported once. */
const expectTripped = (peer: RawPeer, budget: FloodBudget, limit: number) =>
  Effect.gen(function* () {
    const error = yield* peer.awaitSession
    assert.strictEqual(error.reason._tag, "BudgetExceeded", error.message)
    if (error.reason._tag === "BudgetExceeded") {
      assert.strictEqual(error.reason.budget, budget)
      assert.strictEqual(error.reason.limit, limit)
    }
    assert.strictEqual(error.goAwayCode, 1)
    const end = yield* peer.closed
    assert.strictEqual(end._tag, "Eof", "the link is closed after the GO_AWAY, not reset")
    const last = peer.received.at(-1)
    assert.deepStrictEqual(last && { type: last.type, length: last.length }, { type: FrameType.GoAway, length: 1 })
    assert.strictEqual(
      countFrames(peer, (f) => f.type === FrameType.GoAway),
      1
    )
    assert.strictEqual(peer.session.stats().limits[budget], 1)
    const reports = peer.events.filter((e) => e._tag === "LimitReached" && e.limit === budget)
    assert.strictEqual(reports.length, 1, "reported once")
    const report = reports[0]!
    assert.include(report._tag === "LimitReached" ? report.detail : undefined, budget)
  })

/** The session is alive and has handled everything sent so far (a ping barrier), not counted as tripped. */
const expectAlive = (peer: RawPeer, budget: FloodBudget) =>
  Effect.gen(function* () {
    yield* peer.sync
    assert.isFalse(peer.session.isClosed())
    assert.strictEqual(peer.session.stats().limits[budget], 0)
  })

/** Sends one write and waits until the session has read it (the pair's buffer toward it is empty). */
const sendRead = (peer: RawPeer, bytes: Uint8Array) =>
  Effect.gen(function* () {
    yield* peer.send(bytes)
    yield* peer.poll("the session to read the write", () => peer.pair.buffered().toA === 0 || peer.session.isClosed())
  })

const WINDOWS = 3

describe("flood budget: pings per second (default 100)", () => {
  const limit = defaults.maxPingsPerSecond

  it.effect(
    `${limit + 1} pings within a second → GO_AWAY(1), BudgetExceeded(maxPingsPerSecond)`,
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        yield* peer.send(wire(pings(limit + 1, 1)))
        yield* expectTripped(peer, "maxPingsPerSecond", limit)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.effect(
    `${limit} pings in each of ${WINDOWS} seconds, in one burst each → all answered, the session lives`,
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        for (let w = 0; w < WINDOWS; w++) {
          yield* peer.send(wire(pings(limit, 1 + w * limit)))
          yield* peer.waitUntil(`${(w + 1) * limit} pongs`, () =>
            countFrames(peer, isPong) >= (w + 1) * limit ? true : undefined
          )
          yield* TestClock.adjust(1_000)
        }
        yield* expectAlive(peer, "maxPingsPerSecond")
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.effect(
    `a steady ${limit} pings per second (one every 10 ms) for ${WINDOWS} seconds → the session lives`,
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        for (let i = 1; i <= WINDOWS * limit; i++) {
          yield* peer.send(ping(Flags.SYN, i))
          yield* peer.waitUntil(`pong ${i}`, () => (countFrames(peer, isPong) >= i ? true : undefined))
          yield* TestClock.adjust(10)
        }
        yield* TestClock.adjust(1_000)
        yield* expectAlive(peer, "maxPingsPerSecond")
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )
})

describe("flood budget: refused SYNs per second (default 1000)", () => {
  const limit = defaults.maxRefusedSynsPerSecond
  /** SYNs for fresh odd ids from `first`. */
  const syns = (n: number, first: number) =>
    Array.from({ length: n }, (_, i) => windowUpdate(first + 2 * i, Flags.SYN, 0))

  it.effect(
    `${limit + 1} SYNs refused (accept backlog full) within a second → GO_AWAY(1), BudgetExceeded(maxRefusedSynsPerSecond)`,
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer({ acceptBacklog: 1 })
        // The first fills the backlog; every later one is refused.
        yield* peer.send(wire(syns(1 + limit + 1, 1)))
        yield* expectTripped(peer, "maxRefusedSynsPerSecond", limit)
        assert.strictEqual(peer.session.stats().limits.acceptBacklog, limit, "each refusal before the trip counted")
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.effect(
    `${limit} SYNs refused in each of ${WINDOWS} seconds → each answered with RST, the session lives`,
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer({ acceptBacklog: 1 })
        yield* peer.send(windowUpdate(1, Flags.SYN, 0))
        let next = 3
        for (let w = 0; w < WINDOWS; w++) {
          yield* peer.send(wire(syns(limit, next)))
          next += 2 * limit
          yield* peer.waitUntil(`${(w + 1) * limit} RSTs`, () =>
            countFrames(peer, (f) => (f.flags & Flags.RST) !== 0) >= (w + 1) * limit ? true : undefined
          )
          yield* TestClock.adjust(1_000)
        }
        yield* expectAlive(peer, "maxRefusedSynsPerSecond")
        assert.strictEqual(peer.session.stats().limits.acceptBacklog, WINDOWS * limit)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )
})

describe("flood budget: rapid resets per second (default 1000)", () => {
  const limit = defaults.maxResetsPerSecond
  /** Open + RST pairs for fresh odd ids from `first`. */
  const openReset = (n: number, first: number) =>
    Array.from({ length: n }, (_, i) => [
      windowUpdate(first + 2 * i, Flags.SYN, 0),
      windowUpdate(first + 2 * i, Flags.RST, 0)
    ]).flat()

  it.effect(
    `${limit + 1} open+RST pairs within a second → GO_AWAY(1), BudgetExceeded(maxResetsPerSecond)`,
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        yield* peer.send(wire(openReset(limit + 1, 1)))
        yield* expectTripped(peer, "maxResetsPerSecond", limit)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.effect(
    `${limit} open+RST pairs in each of ${WINDOWS} seconds → the session lives, nothing left in the backlog`,
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        for (let w = 0; w < WINDOWS; w++) {
          yield* sendRead(peer, wire(openReset(limit, 1 + 2 * w * limit)))
          yield* TestClock.adjust(1_000)
        }
        yield* expectAlive(peer, "maxResetsPerSecond")
        assert.strictEqual(peer.session.stats().acceptBacklog, 0)
        assert.strictEqual(peer.session.stats().streams, 0)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.effect(
    `${limit + 500} streams reset at once after living a second (clients vanishing) → not rapid resets, the session lives`,
    () =>
      Effect.gen(function* () {
        const n = limit + 500
        const peer = yield* makePeer({ acceptBacklog: n })
        const ids = Array.from({ length: n }, (_, i) => 1 + 2 * i)
        yield* sendRead(peer, wire(ids.map((id) => windowUpdate(id, Flags.SYN, 0))))
        assert.strictEqual(peer.session.stats().streams, n)
        yield* TestClock.adjust(1_000)
        yield* sendRead(peer, wire(ids.map((id) => windowUpdate(id, Flags.RST, 0))))
        yield* expectAlive(peer, "maxResetsPerSecond")
        assert.strictEqual(peer.session.stats().streams, 0)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.effect(
    `${limit + 1} RSTs for streams already gone, within a second → GO_AWAY(1) (their age is unknown: they count)`,
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer({ acceptBacklog: 10 })
        const ids = Array.from({ length: 10 }, (_, i) => 1 + 2 * i)
        yield* sendRead(
          peer,
          wire(ids.flatMap((id) => [windowUpdate(id, Flags.SYN, 0), windowUpdate(id, Flags.FIN, 0)]))
        )
        // Accepted and closed both ways: the streams are gone.
        for (let i = 0; i < ids.length; i++) {
          const s = yield* peer.session.acceptUnscoped
          yield* s.closeWrite
        }
        yield* peer.poll("every stream gone", () => peer.session.stats().streams === 0)
        yield* TestClock.adjust(1_000)
        yield* peer.send(
          wire(Array.from({ length: limit + 1 }, (_, i) => windowUpdate(ids[i % ids.length]!, Flags.RST, 0)))
        )
        yield* expectTripped(peer, "maxResetsPerSecond", limit)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )
})

describe("flood budget: credit-only WINDOW_UPDATEs and empty DATA frames per second (default 10000)", () => {
  const limit = defaults.maxWindowUpdatesPerSecond
  /** Half credit-only WINDOW_UPDATEs (of 0 and 1 bytes), half empty DATA frames, on stream 1. */
  const empties = (n: number) =>
    Array.from({ length: n }, (_, i) =>
      i % 2 === 0 ? windowUpdate(1, 0, i % 4 === 0 ? 0 : 1) : data(1, 0, new Uint8Array(0))
    )

  const openStream = (peer: RawPeer) =>
    Effect.gen(function* () {
      yield* peer.send(windowUpdate(1, Flags.SYN, 0))
      yield* peer.session.acceptUnscoped
      yield* peer.expectFrame({ streamId: 1, flags: Flags.ACK })
    })

  it.effect(
    `${limit + 1} of them within a second → GO_AWAY(1), BudgetExceeded(maxWindowUpdatesPerSecond)`,
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        yield* openStream(peer)
        yield* peer.send(wire(empties(limit + 1)))
        yield* expectTripped(peer, "maxWindowUpdatesPerSecond", limit)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.effect(
    `${limit} of them in each of ${WINDOWS} seconds → the session lives`,
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        yield* openStream(peer)
        for (let w = 0; w < WINDOWS; w++) {
          yield* sendRead(peer, wire(empties(limit)))
          yield* TestClock.adjust(1_000)
        }
        yield* expectAlive(peer, "maxWindowUpdatesPerSecond")
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )
})

describe("flood budget: control frames queued unread (maxControlBacklog)", () => {
  const backlog = 1_000
  // The ping rate is lifted: what is tested is the peer not reading the pongs.
  const config = { maxControlBacklog: backlog, maxPingsPerSecond: 1_000_000 }

  it.effect(
    `${backlog + 1} pongs queued for a peer that does not read → GO_AWAY(1), BudgetExceeded(maxControlBacklog)`,
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer(config)
        peer.pauseReading()
        // One read carries every ping: the pongs pile up before the writer runs once.
        yield* peer.send(wire(pings(backlog + 1, 1)))
        const error = yield* peer.awaitSession
        assert.strictEqual(error.reason._tag, "BudgetExceeded")
        peer.resumeReading()
        yield* expectTripped(peer, "maxControlBacklog", backlog)
        // The backlog was dropped for the GO_AWAY: the peer learns why without reading the flood.
        assert.strictEqual(countFrames(peer, isPong), 0)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.effect(
    `${backlog} pongs queued for a peer that does not read → the session lives; reading again delivers them all`,
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer(config)
        peer.pauseReading()
        yield* sendRead(peer, wire(pings(backlog, 1)))
        assert.isFalse(peer.session.isClosed())
        peer.resumeReading()
        yield* peer.waitUntil(`${backlog} pongs`, () => (countFrames(peer, isPong) >= backlog ? true : undefined))
        yield* expectAlive(peer, "maxControlBacklog")
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )
})

describe("deadline on partial input (frameTimeoutMillis)", () => {
  const timeout = defaults.frameTimeoutMillis
  const tick = 100
  const config = { frameTimeoutMillis: timeout, timerResolutionMillis: tick }
  const body = 8

  /** The session ends within the deadline plus two ticks, not before, with where it stalled. */
  const expectTimedOut = (
    peer: RawPeer,
    part: "header" | "body",
    received: number,
    expected: number,
    streamId: number
  ) =>
    Effect.gen(function* () {
      yield* TestClock.adjust(timeout - tick)
      assert.isFalse(peer.session.isClosed(), `alive just before the deadline (${part}, ${received} bytes)`)
      yield* TestClock.adjust(3 * tick)
      const error = yield* peer.awaitSession
      assert.strictEqual(error.reason._tag, "FrameTimeout", error.message)
      if (error.reason._tag === "FrameTimeout") {
        const { part: p, received: r, expected: e, streamId: id, timeoutMillis: t } = error.reason
        assert.deepStrictEqual(
          { part: p, received: r, expected: e, streamId: id, timeoutMillis: t },
          { part, received, expected, streamId, timeoutMillis: timeout },
          error.message
        )
      }
      assert.strictEqual(error.goAwayCode, 1)
      yield* peer.closed
      const last = peer.received.at(-1)
      assert.deepStrictEqual(last && { type: last.type, length: last.length }, { type: FrameType.GoAway, length: 1 })
      assert.strictEqual(peer.session.stats().limits.frameTimeout, 1)
    })

  for (let k = 1; k < HEADER_SIZE; k++) {
    it.effect(
      `a header stalled after ${k} of 12 bytes → GO_AWAY(1), FrameTimeout(header, ${k})`,
      () =>
        Effect.gen(function* () {
          const peer = yield* makePeer(config)
          yield* sendRead(peer, encodeFrame(ping(Flags.SYN, 77)).subarray(0, k))
          yield* expectTimedOut(peer, "header", k, HEADER_SIZE, 0)
        }).pipe(Effect.scoped),
      TEST_TIMEOUT
    )
  }

  for (let j = 0; j < body; j++) {
    it.effect(
      `a DATA body stalled after ${j} of ${body} bytes → GO_AWAY(1), FrameTimeout(body, ${j})`,
      () =>
        Effect.gen(function* () {
          const peer = yield* makePeer(config)
          // A valid frame before it in the same write: the deadline runs from that write.
          const frame = encodeFrame(data(1, Flags.SYN, new Uint8Array(body).fill(7)))
          yield* sendRead(
            peer,
            new Uint8Array([...encodeFrame(ping(Flags.SYN, 5)), ...frame.subarray(0, HEADER_SIZE + j)])
          )
          yield* expectTimedOut(peer, "body", j, body, 1)
        }).pipe(Effect.scoped),
      TEST_TIMEOUT
    )
  }

  it.effect(
    "a frame trickled a byte at a time that completes just within the deadline → the session lives",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer(config)
        const frame = encodeFrame(data(1, Flags.SYN, new Uint8Array(body).fill(9)))
        const step = Math.floor((timeout - 2 * tick) / frame.length)
        for (let i = 0; i < frame.length; i++) {
          yield* sendRead(peer, frame.subarray(i, i + 1))
          yield* TestClock.adjust(step)
        }
        const s = yield* peer.session.acceptUnscoped
        // The body reaches the stream as it trickles in (in parts), so it is read until complete.
        const parts: Array<Uint8Array> = []
        for (let n = 0; n < body && parts.length < body; ) {
          const part = yield* s.read
          if (part === null) break
          parts.push(part)
          n += part.length
        }
        assert.deepStrictEqual(Buffer.concat(parts), Buffer.from(new Uint8Array(body).fill(9)))
        yield* TestClock.adjust(10 * timeout)
        yield* peer.sync
        assert.isFalse(peer.session.isClosed())
        assert.strictEqual(peer.session.stats().limits.frameTimeout, 0)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.effect(
    "a peer idle between frames is never cut off by the deadline (that is keepalive's business)",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer(config)
        yield* sendRead(peer, encodeFrame(ping(Flags.SYN, 1)))
        yield* TestClock.adjust(100 * timeout)
        yield* peer.sync
        assert.isFalse(peer.session.isClosed())
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.effect(
    "time the session spends not reading (its buffer full) does not count; the deadline runs again once it reads",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer({ ...config, maxSessionBuffer: 256 * 1024, maxWindow: 1024 * 1024 })
        yield* peer.send(windowUpdate(1, Flags.SYN, 0))
        const s = yield* peer.session.acceptUnscoped
        yield* peer.expectFrame({ streamId: 1, flags: Flags.ACK })
        // 300 KiB nobody reads yet (the session stops reading), then a partial header in the same write.
        const fill = encodeFrame(data(1, 0, new Uint8Array(300 * 1024)))
        yield* sendRead(peer, new Uint8Array([...fill, ...encodeFrame(ping(Flags.SYN, 3)).subarray(0, 5)]))
        assert.isTrue(peer.session.stats().readsPaused)
        yield* TestClock.adjust(10 * timeout)
        assert.isFalse(peer.session.isClosed(), "paused reads do not run the deadline")
        // Reading resumes the session's reads: now the partial header's deadline runs.
        let read = 0
        while (read < 300 * 1024) read += (yield* s.read)!.length
        yield* peer.poll("the session reading again", () => !peer.session.stats().readsPaused)
        yield* expectTimedOut(peer, "header", 5, HEADER_SIZE, 0)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )
})
