/**
 * The replay state machine alone (sans-IO): positions, the bounded buffer, acknowledgements,
 * record accounting errors, rewinding on a new connection — and a property over two of them
 * joined by a simulated connection that is cut at random points (mid-record too) and delivers in
 * random pieces: every byte arrives once, in order, both ways.
 *
 * Every loop is bounded by an explicit step budget, so a machine that stops making progress fails
 * a property instead of hanging it.
 */
import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { ReplayState } from "../../src/internal/resume/Replay.ts"
import { encodeAbort, encodeAck, encodeEnd, RecordDecoder, writeDataHeader } from "../../src/internal/resume/Wire.ts"
import type { ResumeError } from "../../src/resume/ResumeError.ts"

const make = (capacity = 1024, ackEveryBytes = 256, maxRecordBytes = 512) =>
  new ReplayState({ capacity, ackEveryBytes, maxRecordBytes })

const bytesOf = (n: number, seed = 1): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff)

const join = (chunks: ReadonlyArray<Uint8Array>): Uint8Array => {
  let n = 0
  for (const c of chunks) n += c.length
  const out = new Uint8Array(n)
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.length
  }
  return out
}

const dataRecord = (payload: Uint8Array): Uint8Array => {
  const out = new Uint8Array(5 + payload.length)
  writeDataHeader(out, 0, payload.length)
  out.set(payload, 5)
  return out
}

/** Decodes one side's output into its records (for asserting what goes on the wire). */
const records = (output: ReadonlyArray<Uint8Array>) => {
  const d = new RecordDecoder()
  d.push(join(output))
  const out: Array<unknown> = []
  for (let i = 0; i < 100; i++) {
    const r = d.next()
    if (r === undefined) break
    out.push(r._tag === "Data" ? { _tag: "Data", length: r.bytes.length } : r)
  }
  return out
}

const violationKind = (error: ResumeError | undefined) =>
  error?.reason._tag === "ProtocolViolation" ? error.reason.kind : error?.reason._tag

describe("Replay: the outbound buffer is bounded", () => {
  it("append takes at most `space` bytes; a full buffer takes nothing until an ACK", () => {
    const s = make(1000)
    assert.strictEqual(s.append(bytesOf(600)), 600)
    assert.strictEqual(s.append(bytesOf(600)), 400)
    assert.strictEqual(s.space, 0)
    assert.strictEqual(s.append(bytesOf(10)), 0)
    assert.strictEqual(s.unacked, 1000)
    s.takeOutput()
    s.takeOutput()
    const r = s.input(encodeAck(300))
    assert.isTrue(r.released)
    assert.strictEqual(s.space, 300)
    assert.strictEqual(s.append(bytesOf(500)), 300)
  })

  it("a peer that never acknowledges cannot make the buffer grow: written − acked ≤ capacity", () => {
    const s = make(4096)
    let accepted = 0
    for (let i = 0; i < 1000; i++) {
      accepted += s.append(bytesOf(97, i))
      while (s.hasOutput) s.takeOutput()
      // Heartbeats that acknowledge nothing new.
      assert.isUndefined(s.input(encodeAck(0)).error)
      assert.isAtMost(s.unacked, 4096)
    }
    assert.strictEqual(accepted, 4096)
    assert.isAtMost(s.heldChunks, 4096 / 97 + 1)
  })

  it("ACKs free whole and partial chunks; an ACK of everything empties the buffer", () => {
    const s = make(10_000, 1_000_000, 10_000)
    for (let i = 0; i < 10; i++) s.append(bytesOf(100, i))
    s.takeOutput()
    s.input(encodeAck(250))
    assert.strictEqual(s.unacked, 750)
    assert.strictEqual(s.heldChunks, 8)
    s.input(encodeAck(1000))
    assert.strictEqual(s.unacked, 0)
    assert.strictEqual(s.heldChunks, 0)
  })
})

describe("Replay: output records", () => {
  it("DATA records carry at most maxRecordBytes; END follows the last byte", () => {
    const s = make(4096, 4096, 512)
    s.append(bytesOf(1200))
    s.end()
    const wire: Array<unknown> = []
    for (let i = 0; i < 10 && s.hasOutput; i++) wire.push(...records(s.takeOutput()))
    assert.deepStrictEqual(wire, [
      { _tag: "Data", length: 512 },
      { _tag: "Data", length: 512 },
      { _tag: "Data", length: 176 },
      { _tag: "End", position: 1200 }
    ])
  })

  it("an ACK rides along with DATA whenever something was delivered, without being due", () => {
    const s = make(4096, 100_000)
    s.input(dataRecord(bytesOf(10)))
    s.append(bytesOf(1))
    assert.deepStrictEqual(records(s.takeOutput()), [{ _tag: "Data", length: 1 }], "received is not delivered")
    assert.isFalse(s.deliver(10), "10 bytes delivered do not make an ACK due")
    assert.isFalse(s.hasOutput)
    s.append(bytesOf(3))
    assert.deepStrictEqual(records(s.takeOutput()), [
      { _tag: "Ack", position: 10 },
      { _tag: "Data", length: 3 }
    ])
    s.append(bytesOf(3))
    assert.deepStrictEqual(records(s.takeOutput()), [{ _tag: "Data", length: 3 }], "nothing new to acknowledge")
  })

  it("an ACK is due alone once ackEveryBytes delivered are unacknowledged, and on request", () => {
    const s = make(4096, 256)
    s.input(dataRecord(bytesOf(256)))
    assert.isFalse(s.hasOutput, "received, not delivered: nothing to acknowledge yet")
    assert.isFalse(s.deliver(255))
    assert.isFalse(s.hasOutput)
    assert.isTrue(s.deliver(1))
    assert.isTrue(s.hasOutput)
    assert.deepStrictEqual(records(s.takeOutput()), [{ _tag: "Ack", position: 256 }])
    assert.isFalse(s.hasOutput)
    s.requestAck()
    assert.deepStrictEqual(records(s.takeOutput()), [{ _tag: "Ack", position: 256 }])
  })

  it("large payloads go out by reference (no copy of bulk bytes)", () => {
    const s = make(64 * 1024, 64 * 1024, 64 * 1024)
    const chunk = bytesOf(10_000)
    s.append(chunk)
    const out = s.takeOutput()
    assert.strictEqual(out.length, 2)
    assert.strictEqual(out[1], chunk)
  })

  it("small payloads are copied beside their header: one buffer for one socket write", () => {
    const s = make(4096, 4096, 4096)
    s.input(dataRecord(bytesOf(10)))
    s.deliver(10)
    s.append(bytesOf(1000, 3))
    const out = s.takeOutput()
    assert.strictEqual(out.length, 1)
    assert.deepStrictEqual(records(out), [
      { _tag: "Ack", position: 10 },
      { _tag: "Data", length: 1000 }
    ])
    assert.deepStrictEqual(out[0]!.subarray(9 + 5), bytesOf(1000, 3))
  })
})

describe("Replay: input accounting", () => {
  it("DATA fragments come out in order and count as received", () => {
    const s = make()
    const r = s.input(join([dataRecord(bytesOf(5, 1)), dataRecord(bytesOf(7, 2))]))
    assert.isUndefined(r.error)
    assert.deepStrictEqual(join(r.data), join([bytesOf(5, 1), bytesOf(7, 2)]))
    assert.strictEqual(s.received, 12)
  })

  it("an ACK beyond what was sent is AckBeyondSent", () => {
    const s = make()
    s.append(bytesOf(10))
    s.takeOutput()
    assert.strictEqual(violationKind(s.input(encodeAck(11)).error), "AckBeyondSent")
  })

  it("an ACK of bytes written but not yet transmitted is AckBeyondSent", () => {
    const s = make()
    s.append(bytesOf(10))
    assert.strictEqual(violationKind(s.input(encodeAck(5)).error), "AckBeyondSent")
  })

  it("more undelivered bytes than the agreed capacity is BufferOverrun (a peer that ignores the bound)", () => {
    const s = make(1000)
    assert.isUndefined(s.input(dataRecord(bytesOf(1000))).error, "exactly the capacity is fine")
    s.deliver(1)
    assert.isUndefined(s.input(dataRecord(bytesOf(1))).error)
    assert.strictEqual(violationKind(s.input(dataRecord(bytesOf(1))).error), "BufferOverrun")
  })

  it("an ACK below an earlier one is AckBackwards", () => {
    const s = make()
    s.append(bytesOf(10))
    s.takeOutput()
    s.input(encodeAck(8))
    assert.strictEqual(violationKind(s.input(encodeAck(7)).error), "AckBackwards")
  })

  it("END at a position other than received is EndMismatch; END then DATA is DataAfterEnd", () => {
    const a = make()
    a.input(dataRecord(bytesOf(4)))
    assert.strictEqual(violationKind(a.input(encodeEnd(5)).error), "EndMismatch")
    const b = make()
    b.input(dataRecord(bytesOf(4)))
    assert.isUndefined(b.input(encodeEnd(4)).error)
    assert.isTrue(b.peerEnded)
    assert.isUndefined(b.input(encodeEnd(4)).error, "END repeated after a resume is harmless")
    assert.strictEqual(violationKind(b.input(dataRecord(bytesOf(1))).error), "DataAfterEnd")
  })

  it("ABORT ends the session with the peer's code", () => {
    const s = make()
    const r = s.input(encodeAbort(2))
    assert.strictEqual(r.error?.reason._tag, "Aborted")
    assert.strictEqual(r.error?.reason._tag === "Aborted" && r.error.reason.code, 2)
  })

  it("records before an error are applied; the error stops the rest", () => {
    const s = make()
    const r = s.input(join([dataRecord(bytesOf(3)), Uint8Array.of(0xee), dataRecord(bytesOf(3))]))
    assert.strictEqual(s.received, 3)
    assert.strictEqual(r.data.length, 1)
    assert.strictEqual(r.error?.reason._tag, "Malformed")
  })
})

describe("Replay: rewinding on a new connection", () => {
  it("canRewind accepts exactly [acked, written]", () => {
    const s = make()
    s.append(bytesOf(100))
    s.takeOutput()
    s.input(encodeAck(40))
    assert.isFalse(s.canRewind(39), "bytes before the ACK are gone")
    assert.isTrue(s.canRewind(40))
    assert.isTrue(s.canRewind(100))
    assert.isFalse(s.canRewind(101), "bytes never written")
  })

  it("rewind replays from the peer's position, mid-chunk, and counts the replayed bytes", () => {
    const s = make(4096, 4096, 4096)
    s.append(bytesOf(100, 1))
    s.append(bytesOf(100, 2))
    s.takeOutput()
    assert.strictEqual(s.rewind(150), 50)
    assert.strictEqual(s.replayed, 50)
    const out = join(s.takeOutput())
    assert.deepStrictEqual(out.subarray(5), bytesOf(100, 2).subarray(50))
    assert.strictEqual(s.transmitted, 200)
  })

  it("rewind outside the buffer throws (callers check canRewind first)", () => {
    const s = make()
    s.append(bytesOf(10))
    assert.throws(() => s.rewind(11), RangeError)
  })

  it("a rewind mid-record starts the new connection at a record boundary and drops undelivered input", () => {
    const s = make()
    s.input(dataRecord(bytesOf(3)))
    s.deliver(3)
    s.input(dataRecord(bytesOf(10)).subarray(0, 7))
    assert.isTrue(s.decoder.midRecord)
    assert.strictEqual(s.received, 5)
    s.rewind(0)
    assert.isFalse(s.decoder.midRecord)
    assert.strictEqual(s.received, 3, "the peer sends again from what was delivered")
    const r = s.input(dataRecord(bytesOf(10)))
    assert.isUndefined(r.error)
    assert.strictEqual(s.received, 13)
  })

  it("END is sent again after a rewind", () => {
    const s = make()
    s.append(bytesOf(5))
    s.end()
    s.takeOutput()
    assert.isFalse(s.hasOutput)
    s.rewind(5)
    assert.deepStrictEqual(records(s.takeOutput()), [{ _tag: "End", position: 5 }])
  })

  it("after the peer's END nothing is dropped: its whole direction is held and reported", () => {
    const s = make()
    s.input(join([dataRecord(bytesOf(4)), encodeEnd(4)]))
    s.deliver(2)
    s.dropUndelivered()
    assert.strictEqual(s.received, 4, "all of the peer's bytes are here")
    s.rewind(0)
    assert.isTrue(s.peerEnded)
    assert.isUndefined(s.input(encodeEnd(4)).error, "the END the peer sends again is harmless")
  })

  it("without END, undelivered input is dropped: the position to report falls back to delivered", () => {
    const s = make()
    s.input(dataRecord(bytesOf(10)))
    s.deliver(3)
    s.dropUndelivered()
    assert.strictEqual(s.received, 3)
    assert.isUndefined(s.input(dataRecord(bytesOf(7))).error)
    assert.strictEqual(s.received, 10)
  })
})

/** One direction of a simulated connection: bytes in flight, not yet delivered. */
interface Wire {
  inFlight: Array<number>
}

type Step =
  | { readonly _tag: "write"; readonly side: 0 | 1; readonly size: number }
  | { readonly _tag: "consume"; readonly side: 0 | 1; readonly size: number }
  | { readonly _tag: "send"; readonly side: 0 | 1 }
  | { readonly _tag: "deliver"; readonly side: 0 | 1; readonly size: number }
  | { readonly _tag: "cut"; readonly keepA: number; readonly keepB: number }

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      _tag: fc.constant("write" as const),
      side: fc.constantFrom(0 as const, 1 as const),
      size: fc.integer({ min: 1, max: 700 })
    })
  },
  {
    weight: 4,
    arbitrary: fc.record({ _tag: fc.constant("send" as const), side: fc.constantFrom(0 as const, 1 as const) })
  },
  {
    weight: 4,
    arbitrary: fc.record({
      _tag: fc.constant("deliver" as const),
      side: fc.constantFrom(0 as const, 1 as const),
      size: fc.integer({ min: 1, max: 900 })
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      _tag: fc.constant("cut" as const),
      keepA: fc.nat({ max: 600 }),
      keepB: fc.nat({ max: 600 })
    })
  }
)

describe("Replay: property over a connection cut at random points", () => {
  it("every byte is delivered once, in order, both ways; the buffer never exceeds its bound", () => {
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 120 }),
        fc.integer({ min: 64, max: 2048 }),
        fc.integer({ min: 1, max: 600 }),
        fc.integer({ min: 1, max: 400 }),
        (steps, capacity, ackEvery, maxRecord) => {
          const sides = [
            new ReplayState({ capacity, ackEveryBytes: ackEvery, maxRecordBytes: maxRecord }),
            new ReplayState({ capacity, ackEveryBytes: ackEvery, maxRecordBytes: maxRecord })
          ] as const
          const wires: [Wire, Wire] = [{ inFlight: [] }, { inFlight: [] }]
          const sent: [Array<number>, Array<number>] = [[], []]
          const got: [Array<number>, Array<number>] = [[], []]
          // Received, not yet delivered: what a session has not read.
          const inbox: [Array<number>, Array<number>] = [[], []]
          let seed = 0

          const write = (side: 0 | 1, size: number) => {
            const bytes = bytesOf(size, ++seed)
            const n = sides[side].append(bytes)
            for (let i = 0; i < n; i++) sent[side].push(bytes[i]!)
          }
          const send = (side: 0 | 1) => {
            if (!sides[side].hasOutput) return
            for (const c of sides[side].takeOutput()) wires[side].inFlight.push(...c)
          }
          const deliver = (side: 0 | 1, size: number) => {
            const to = side === 0 ? 1 : 0
            const bytes = Uint8Array.from(wires[side].inFlight.splice(0, size))
            if (bytes.length === 0) return
            const r = sides[to].input(bytes)
            if (r.error !== undefined) throw new Error(`side ${to}: ${r.error.message}`)
            for (const d of r.data) inbox[to].push(...d)
          }
          const consume = (side: 0 | 1, size: number) => {
            const taken = inbox[side].splice(0, size)
            got[side].push(...taken)
            sides[side].deliver(taken.length)
          }
          const cut = (keepA: number, keepB: number) => {
            // Part of what was in flight still arrives (possibly ending mid-record), the rest is lost.
            deliver(0, keepA)
            deliver(1, keepB)
            wires[0].inFlight = []
            wires[1].inFlight = []
            // What was received but not delivered is dropped; the peer sends it again.
            const [a, b] = sides
            a.dropUndelivered()
            b.dropUndelivered()
            inbox[0] = []
            inbox[1] = []
            assert.isTrue(a.canRewind(b.received), "A cannot serve B's position")
            assert.isTrue(b.canRewind(a.received), "B cannot serve A's position")
            const [bReceived, aReceived] = [b.received, a.received]
            a.rewind(bReceived)
            b.rewind(aReceived)
          }

          for (const s of steps) {
            if (s._tag === "write") write(s.side, s.size)
            else if (s._tag === "consume") consume(s.side, s.size)
            else if (s._tag === "send") send(s.side)
            else if (s._tag === "deliver") deliver(s.side, s.size)
            else cut(s.keepA, s.keepB)
            for (const side of sides) {
              assert.isAtMost(side.unacked, capacity)
              assert.isAtMost(side.received - side.delivered, capacity)
            }
          }
          // Drain: send and deliver until both are quiet (bounded: each pass moves at least one record).
          for (let i = 0; i < 10_000; i++) {
            send(0)
            send(1)
            deliver(0, 1 << 20)
            deliver(1, 1 << 20)
            consume(0, 1 << 20)
            consume(1, 1 << 20)
            if (!sides[0].hasOutput && !sides[1].hasOutput) break
          }
          assert.deepStrictEqual(got[1], sent[0], "A → B")
          assert.deepStrictEqual(got[0], sent[1], "B → A")
          assert.strictEqual(sides[1].delivered, sent[0].length)
          assert.strictEqual(sides[0].delivered, sent[1].length)
        }
      ),
      { numRuns: 300 }
    )
  })
})
