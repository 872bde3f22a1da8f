/**
 * DATA frames that span reads of the link: the session's decoder hands their payload to the stream
 * in parts, uncopied (`Decoder` fragments). What the peer sees must not change: bytes in equal bytes
 * out, the header's flags acted upon once and in order (SYN/ACK before the bytes, FIN/RST after the
 * last), and a frame refused at its first part dropped whole, flags included, as a whole frame is.
 *
 * Invariants: every split is delivered as its own read of the link (`sendRead` waits until the
 * session has taken it), so the parts really arrive separately; every wait is bounded by the raw
 * peer's deadline.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Flags, HEADER_SIZE } from "../../src/protocol/Constants.ts"
import { data, encodeFrame, windowUpdate } from "../../src/protocol/Frame.ts"
import type { SessionConfig } from "../../src/session/Config.ts"
import type { RawPeer } from "./rawPeer.ts"
import * as RawPeerModule from "./rawPeer.ts"

const TEST_TIMEOUT = 20_000

const makePeer = (config: Partial<SessionConfig> = {}) =>
  RawPeerModule.make({ config: { keepaliveIntervalMillis: 0, ...config }, timeoutMillis: 5_000 })

/** Sends `bytes` as one write and waits until the session has read it (one read of the link). */
const sendRead = (peer: RawPeer, bytes: Uint8Array) =>
  Effect.gen(function* () {
    yield* peer.send(bytes)
    yield* peer.poll("the session to read the write", () => peer.pair.buffered().toA === 0 || peer.session.isClosed())
  })

/** Cuts `bytes` at `points` (offsets, ascending). */
const cut = (bytes: Uint8Array, points: ReadonlyArray<number>): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  let start = 0
  for (const p of points) {
    out.push(bytes.subarray(start, p))
    start = p
  }
  out.push(bytes.subarray(start))
  return out
}

const pattern = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff)

describe("DATA frames across reads of the link", () => {
  it.effect(
    "a SYN|FIN DATA frame cut into five reads opens the stream, delivers every byte in order, then EOF",
    () =>
      Effect.gen(function* () {
        const peer = yield* makePeer()
        const body = pattern(5000)
        const frame = encodeFrame(data(1, Flags.SYN | Flags.FIN, body))
        // Inside the header, then inside the body at several points.
        for (const piece of cut(frame, [7, HEADER_SIZE + 1, 1200, 3333, 4990])) yield* sendRead(peer, piece)
        const s = yield* peer.session.acceptUnscoped
        const parts: Array<Uint8Array> = []
        let total = 0
        for (let i = 0; i < 10; i++) {
          const part = yield* s.read
          if (part === null) break
          parts.push(part.slice())
          total += part.length
        }
        assert.strictEqual(total, body.length)
        assert.deepStrictEqual(Buffer.concat(parts), Buffer.from(body))
        // The FIN of the last part: the stream reads EOF after the bytes, and only then.
        assert.strictEqual(yield* s.read, null)
        assert.isFalse(peer.session.isClosed())
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.effect(
    "SYN|RST DATA frames refused by a full accept backlog, cut across reads: refused whole, their RST never counted",
    () =>
      Effect.gen(function* () {
        // One rapid reset per second is the budget: a tail RST routed as a late reset would trip it.
        const peer = yield* makePeer({ acceptBacklog: 1, maxResetsPerSecond: 1 })
        yield* sendRead(peer, encodeFrame(windowUpdate(1, Flags.SYN, 0)))
        for (const id of [3, 5, 7]) {
          const frame = encodeFrame(data(id, Flags.SYN | Flags.RST, pattern(300)))
          for (const piece of cut(frame, [HEADER_SIZE + 100])) yield* sendRead(peer, piece)
          yield* peer.expectFrame({ streamId: id, flags: Flags.RST })
        }
        yield* peer.sync
        assert.isFalse(peer.session.isClosed())
        assert.strictEqual(peer.session.stats().limits.acceptBacklog, 3)
        assert.strictEqual(peer.session.stats().limits.maxResetsPerSecond, 0)
        assert.strictEqual(peer.session.stats().bufferedBytes, 0)
        // The stream in the backlog was never touched by the refused frames' bytes.
        const s = yield* peer.session.acceptUnscoped
        assert.strictEqual(s.id, 1)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.effect(
    "DATA beyond the window is refused from its header, before any part reaches the stream",
    () =>
      Effect.gen(function* () {
        const window = 256 * 1024
        const peer = yield* makePeer({ maxWindow: window })
        yield* sendRead(peer, encodeFrame(windowUpdate(1, Flags.SYN, 0)))
        const s = yield* peer.session.acceptUnscoped
        const frame = encodeFrame(data(1, 0, pattern(window + 1)))
        yield* sendRead(peer, frame.subarray(0, HEADER_SIZE + 10))
        const error = yield* peer.awaitSession
        assert.strictEqual(error.reason._tag, "WindowExceeded")
        assert.strictEqual(peer.session.stats().bufferedBytes, 0)
        const read = yield* Effect.flip(s.read)
        assert.strictEqual(read.reason._tag, "WindowExceeded")
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )
})
