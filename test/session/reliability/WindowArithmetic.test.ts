/**
 * Reliability case 1, "per-stream throughput capped at window / RTT": the credit arithmetic, observed
 * on the wire. A raw peer writes frames built with `Frame.ts` to one end of a memory pair and
 * decodes the session's output with the `Decoder`; a PING barrier (`RawPeer.sync`) collects exactly
 * the frames the session queued before it saw the ping.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { Flags, FrameType, GoAwayCode, INITIAL_WINDOW } from "../../../src/protocol/Constants.ts"
import { data, type Frame, windowUpdate } from "../../../src/protocol/Frame.ts"
import * as Session from "../../../src/session/Session.ts"
import { makePair } from "../../../src/transport/Memory.ts"
import { abortOnExit, assertBytes, describeFrame, payload, RawPeer, reasonOf } from "./helpers.ts"

const TIMEOUT = 10_000
const KiB = 1024

interface Row {
  readonly name: string
  readonly maxWindow: number
  /** DATA frame sizes the peer sends, in order, never more than the window in total. */
  readonly frames: ReadonlyArray<number>
  /** For each frame read by the application: the WINDOW_UPDATE delta it triggers, or 0 for none. */
  readonly credit: ReadonlyArray<number>
}

const rows: ReadonlyArray<Row> = [
  {
    name: "256 KiB window, 64 KiB frames: credit every 128 KiB",
    maxWindow: 256 * KiB,
    frames: [64 * KiB, 64 * KiB, 64 * KiB, 64 * KiB],
    credit: [0, 128 * KiB, 0, 128 * KiB]
  },
  {
    name: "256 KiB window, uneven frames: credit is everything consumed since the last update",
    maxWindow: 256 * KiB,
    frames: [100_000, 100_000, 62_144],
    credit: [0, 200_000, 0]
  },
  {
    name: "1 MiB window, 64 KiB frames: credit every 512 KiB",
    maxWindow: 1024 * KiB,
    frames: Array.from({ length: 16 }, () => 64 * KiB),
    credit: Array.from({ length: 16 }, (_, i) => (i === 7 || i === 15 ? 512 * KiB : 0))
  },
  {
    name: "1 MiB window: one byte short of half returns nothing, the next byte returns it all",
    maxWindow: 1024 * KiB,
    frames: [1, 512 * KiB - 2, 1, 1],
    credit: [0, 0, 512 * KiB, 0]
  },
  {
    name: "odd window 300001: half is 150000 (rounded down)",
    maxWindow: 300_001,
    frames: [149_999, 1, 150_000, 1],
    credit: [0, 150_000, 150_000, 0]
  },
  {
    name: "4 MiB window (default): a single frame of half the window",
    maxWindow: 4096 * KiB,
    frames: [2048 * KiB - 1, 1, 2048 * KiB],
    credit: [0, 2048 * KiB, 2048 * KiB]
  }
]

/** A server session on `pair.a`, a raw client peer on `pair.b`, stream 1 opened and accepted. */
const acceptedStream = (maxWindow: number) =>
  Effect.gen(function* () {
    const pair = yield* makePair()
    const session = yield* Session.make(pair.a, {
      client: false,
      config: { maxWindow, keepaliveIntervalMillis: 0 }
    }).pipe(Effect.orDie)
    yield* abortOnExit(session)
    const peer = new RawPeer(pair.b)
    yield* peer.send(windowUpdate(1, Flags.SYN, 0))
    const stream = yield* session.acceptUnscoped
    const ack = yield* peer.sync
    assert.deepStrictEqual(
      ack.map(describeFrame),
      [describeFrame(windowUpdate(1, Flags.ACK, maxWindow - INITIAL_WINDOW))],
      "accept sends ACK granting the rest of the max window"
    )
    return { pair, session, peer, stream }
  })

describe("per-stream throughput capped at window / RTT", () => {
  describe("receive side: credit is returned once half the window is consumed", () => {
    for (const row of rows) {
      it.effect(
        row.name,
        () =>
          Effect.gen(function* () {
            assert.isAtMost(
              row.frames.reduce((a, b) => a + b, 0),
              row.maxWindow
            )
            const { peer, session, stream } = yield* acceptedStream(row.maxWindow)
            const sent = payload(
              row.frames.reduce((a, b) => a + b, 0),
              row.maxWindow
            )
            let offset = 0
            const frames: Array<Frame> = []
            for (const size of row.frames) {
              frames.push(data(1, 0, sent.subarray(offset, offset + size)))
              offset += size
            }
            // The whole window at once: the session must buffer it all without returning credit.
            yield* peer.send(...frames)
            const before = yield* peer.sync
            assert.deepStrictEqual(before, [], "no credit before the application reads")
            assert.strictEqual(session.stats().bufferedBytes, offset)

            const received: Array<Uint8Array> = []
            for (let i = 0; i < row.frames.length; i++) {
              const chunk = yield* stream.read
              assert.isNotNull(chunk)
              received.push(chunk!)
              const out = yield* peer.sync
              const expected = row.credit[i]! === 0 ? [] : [describeFrame(windowUpdate(1, 0, row.credit[i]!))]
              assert.deepStrictEqual(out.map(describeFrame), expected, `after reading frame ${i}`)
            }
            const all = new Uint8Array(offset)
            let at = 0
            for (const c of received) {
              all.set(c, at)
              at += c.length
            }
            assertBytes(all, sent, "received bytes")
            assert.strictEqual(session.stats().bufferedBytes, 0)
          }),
        TIMEOUT
      )
    }
  })

  it.effect(
    "a frame larger than the remaining window ends the session with WindowExceeded and GO_AWAY(1)",
    () =>
      Effect.gen(function* () {
        const window = 256 * KiB
        const { peer, session, stream } = yield* acceptedStream(window)
        yield* peer.send(data(1, 0, payload(window - 10, 1)))
        assert.deepStrictEqual(yield* peer.sync, [])
        assert.strictEqual((yield* stream.read)!.length, window - 10)
        // Half the window was consumed: credit came back, so window - 10 + credit bytes are allowed now.
        const credit = yield* peer.sync
        assert.deepStrictEqual(credit.map(describeFrame), [describeFrame(windowUpdate(1, 0, window - 10))])
        yield* peer.send(data(1, 0, payload(window, 2)))
        assert.deepStrictEqual(yield* peer.sync, [], "exactly the window is accepted")
        yield* peer.send(data(1, 0, payload(1, 3)))
        const goAway = yield* peer.until((f) => f.type === FrameType.GoAway, "GO_AWAY")
        assert.strictEqual(goAway.length, GoAwayCode.ProtocolError)
        const reason = yield* session.await
        assert.strictEqual(reason.reason._tag, "WindowExceeded")
        assert.strictEqual(yield* reasonOf(stream.read), "WindowExceeded", "buffered bytes are dropped, reads fail")
      }),
    TIMEOUT
  )

  it.effect(
    "send side: the writer never exceeds the peer's window and resumes on each credit",
    () =>
      Effect.gen(function* () {
        const pair = yield* makePair()
        const session = yield* Session.make(pair.a, { client: true, config: { keepaliveIntervalMillis: 0 } }).pipe(
          Effect.orDie
        )
        yield* abortOnExit(session)
        const peer = new RawPeer(pair.b)
        const stream = yield* session.openUnscoped
        const syn = yield* peer.next
        assert.strictEqual(syn!.type, FrameType.WindowUpdate)
        assert.strictEqual(syn!.flags, Flags.SYN)
        assert.strictEqual(syn!.length, session.config.maxWindow - INITIAL_WINDOW, "SYN advertises the max window")
        // ACK without extra credit: the session may send the spec's initial 256 KiB, no more.
        yield* peer.send(windowUpdate(syn!.streamId, Flags.ACK, 0))
        const sent = payload(1024 * KiB, 9)
        const writer = yield* Effect.forkChild(
          Effect.gen(function* () {
            for (let o = 0; o < sent.length; o += 50_000) yield* stream.write([sent.subarray(o, o + 50_000)])
            yield* stream.closeWrite
          })
        )
        const got: Array<Uint8Array> = []
        let total = 0
        let granted = INITIAL_WINDOW
        let fin = false
        const readUpTo = (limit: number) =>
          Effect.gen(function* () {
            while (total < limit) {
              const f = yield* peer.next
              assert.isDefined(f)
              if (f!.type !== FrameType.Data) continue
              assert.isAtMost(f!.length, session.config.maxFrameSize, "frames respect maxFrameSize")
              got.push(f!.payload)
              total += f!.length
              assert.isAtMost(total, granted, `DATA beyond the granted window (${describeFrame(f!)})`)
              if ((f!.flags & Flags.FIN) !== 0) fin = true
            }
          })
        yield* readUpTo(INITIAL_WINDOW)
        // Nothing more is on its way without credit.
        const extra = yield* peer.sync
        assert.deepStrictEqual(extra.map(describeFrame), [])
        for (const delta of [1, 99_999, 300_000, 1024 * KiB]) {
          granted += delta
          yield* peer.send(windowUpdate(syn!.streamId, 0, delta))
          yield* readUpTo(Math.min(granted, sent.length))
        }
        if (!fin) {
          const last = yield* peer.until((f) => (f.flags & Flags.FIN) !== 0, "FIN")
          assert.strictEqual(last.length, 0)
        }
        yield* Fiber.join(writer)
        const all = new Uint8Array(total)
        let at = 0
        for (const c of got) {
          all.set(c, at)
          at += c.length
        }
        assertBytes(all, sent, "bytes on the wire")
      }),
    TIMEOUT
  )
})
