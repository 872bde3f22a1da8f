/**
 * The resumption wire format against hand-written golden bytes: every message and record encodes
 * to its fixture and decodes back, split at every byte; every malformed input gets its typed kind.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  encodeAbort,
  encodeAck,
  encodeEnd,
  encodeMessage,
  MAX_RECORD_PAYLOAD,
  type Message,
  type MessageType,
  parseMessage,
  RecordDecoder,
  type WireRecord,
  writeDataHeader
} from "../../src/internal/resume/Wire.ts"
import { ResumeError } from "../../src/resume/ResumeError.ts"
import { fromHex, malformedGoldens, messageGoldens, recordGoldens, toHex } from "./fixtures/goldens.ts"

const ALL: ReadonlyArray<keyof typeof MessageType> = [
  "ClientHello",
  "ServerHello",
  "ResumeRequest",
  "ResumeAccept",
  "Refused"
]

/** A fixture's message with its hex fields turned into bytes. */
const toMessage = (fields: Record<string, unknown>): Message => {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(fields)) {
    out[k] = typeof v === "string" && k !== "_tag" && k !== "reason" ? fromHex(v) : v
  }
  return out as unknown as Message
}

/** A message with its byte fields as hex, for comparison with a fixture. */
const toFields = (message: Message): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(message)) out[k] = v instanceof Uint8Array ? toHex(v) : v
  return out
}

const recordFields = (record: WireRecord): Record<string, unknown> =>
  record._tag === "Data" ? { _tag: "Data", bytes: toHex(record.bytes) } : { ...record }

/** Feeds `bytes` to a fresh decoder in pieces cut at `cuts`; returns records (DATA fragments joined). */
const decodeRecords = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<WireRecord | ResumeError> => {
  const decoder = new RecordDecoder()
  const out: Array<WireRecord | ResumeError> = []
  let data: Array<number> = []
  const drain = () => {
    for (let i = 0; i < 1000; i++) {
      const r = decoder.next()
      if (r === undefined) return
      if (r._tag === "Data") {
        data.push(...r.bytes)
        continue
      }
      if (data.length > 0) {
        out.push({ _tag: "Data", bytes: Uint8Array.from(data) })
        data = []
      }
      out.push(r)
      if (r._tag === "ResumeError") return
    }
  }
  let from = 0
  for (const cut of [...cuts, bytes.length]) {
    decoder.push(bytes.subarray(from, cut))
    from = cut
    drain()
  }
  if (data.length > 0) out.push({ _tag: "Data", bytes: Uint8Array.from(data) })
  return out
}

describe("Resume wire: handshake messages", () => {
  for (const [name, golden] of Object.entries(messageGoldens)) {
    it(`${name}: encodes to the golden bytes (${golden.description})`, () => {
      assert.strictEqual(toHex(encodeMessage(toMessage(golden.message))), toHex(fromHex(golden.hex)))
    })

    it(`${name}: decodes from the golden bytes split at every byte`, () => {
      const bytes = fromHex(golden.hex)
      for (let n = 0; n < bytes.length; n++) {
        assert.isUndefined(parseMessage(bytes.subarray(0, n), ALL), `complete after ${n} of ${bytes.length} bytes`)
      }
      const parsed = parseMessage(bytes, ALL)
      assert.ok(parsed !== undefined && !(parsed instanceof ResumeError), "golden did not parse")
      assert.strictEqual(parsed.consumed, bytes.length)
      assert.deepStrictEqual(toFields(parsed.message), golden.message)
    })
  }

  it("bytes behind a message are not consumed (they belong to the data phase)", () => {
    const bytes = fromHex(`${messageGoldens.resumeAccept!.hex} 01 00000002 6869`)
    const parsed = parseMessage(bytes, ["ResumeAccept", "Refused"])
    assert.ok(parsed !== undefined && !(parsed instanceof ResumeError))
    assert.strictEqual(parsed.consumed, bytes.length - 7)
  })

  it("a message type not expected at this point is BadType, named", () => {
    const result = parseMessage(fromHex(messageGoldens.clientHello!.hex), ["ResumeAccept", "Refused"])
    assert.ok(result instanceof ResumeError)
    assert.strictEqual(result.reason._tag, "Malformed")
    assert.strictEqual(result.reason._tag === "Malformed" && result.reason.kind, "BadType")
    assert.match(result.message, /expected ResumeAccept or Refused, got message type ClientHello/)
  })

  it("encoding refuses fields of the wrong size or out of range (a programming error)", () => {
    assert.throws(
      () => encodeMessage({ _tag: "ClientHello", flags: 1, bufferBytes: 1 << 20, key: new Uint8Array(31) }),
      RangeError
    )
    assert.throws(
      () =>
        encodeMessage({
          _tag: "ResumeAccept",
          received: Number.MAX_SAFE_INTEGER + 1,
          proof: new Uint8Array(32)
        }),
      RangeError
    )
    assert.throws(() => encodeMessage({ _tag: "ResumeAccept", received: -1, proof: new Uint8Array(32) }), RangeError)
  })
})

describe("Resume wire: data-phase records", () => {
  const encoders: Record<string, () => Uint8Array> = {
    data: () => {
      const out = new Uint8Array(7)
      writeDataHeader(out, 0, 2)
      out.set([0x68, 0x69], 5)
      return out
    },
    ack: () => encodeAck(65_536),
    ackLarge: () => encodeAck(Number.MAX_SAFE_INTEGER),
    end: () => encodeEnd(5),
    abort: () => encodeAbort(1)
  }
  for (const [name, golden] of Object.entries(recordGoldens)) {
    it(`${name}: encodes to the golden bytes (${golden.description})`, () => {
      assert.strictEqual(toHex(encoders[name]!()), toHex(fromHex(golden.hex)))
    })
    it(`${name}: decodes from the golden bytes split at every byte`, () => {
      const bytes = fromHex(golden.hex)
      for (let cut = 0; cut <= bytes.length; cut++) {
        const got = decodeRecords(bytes, [cut])
        assert.strictEqual(got.length, 1, `cut at ${cut}`)
        assert.deepStrictEqual(recordFields(got[0] as WireRecord), golden.record, `cut at ${cut}`)
      }
    })
  }

  it("all records back to back decode the same at any two cut points", () => {
    const all = fromHex(
      Object.values(recordGoldens)
        .map((g) => g.hex)
        .join(" ")
    )
    const expected = Object.values(recordGoldens).map((g) => g.record)
    for (let a = 0; a <= all.length; a++) {
      for (let b = a; b <= all.length; b += 3) {
        const got = decodeRecords(all, [a, b])
        assert.deepStrictEqual(
          got.map((r) => recordFields(r as WireRecord)),
          expected,
          `cuts ${a}, ${b}`
        )
      }
    }
  })

  it("a DATA payload inside one input chunk is a view of it (no copy)", () => {
    const input = fromHex("01 00000003 616263")
    const decoder = new RecordDecoder()
    decoder.push(input)
    const r = decoder.next()
    assert.ok(r !== undefined && r._tag === "Data")
    assert.strictEqual(r.bytes.buffer, input.buffer)
    assert.strictEqual(r.bytes.byteOffset, 5)
  })

  it("the largest DATA record (1 MiB) is accepted, streamed out as it arrives", () => {
    const header = new Uint8Array(5)
    writeDataHeader(header, 0, MAX_RECORD_PAYLOAD)
    const decoder = new RecordDecoder()
    decoder.push(header)
    assert.isUndefined(decoder.next())
    decoder.push(new Uint8Array(1000))
    const first = decoder.next()
    assert.ok(first !== undefined && first._tag === "Data")
    assert.strictEqual(first.bytes.length, 1000)
    assert.isTrue(decoder.midRecord)
  })
})

describe("Resume wire: malformed input gets a typed kind", () => {
  for (const golden of malformedGoldens) {
    it(`${golden.description} → ${golden.kind}`, () => {
      const bytes = fromHex(golden.hex)
      const result =
        golden.layer === "message"
          ? parseMessage(bytes, ALL)
          : (() => {
              const d = new RecordDecoder()
              d.push(bytes)
              return d.next()
            })()
      assert.ok(result instanceof ResumeError, `not refused: ${String(result)}`)
      assert.strictEqual(result.reason._tag, "Malformed")
      assert.strictEqual<string | false>(result.reason._tag === "Malformed" && result.reason.kind, golden.kind)
    })
  }

  it("garbage is refused at its first bad byte, before a body is buffered", () => {
    assert.ok(parseMessage(fromHex("00"), ALL) instanceof ResumeError)
    assert.ok(parseMessage(fromHex("504c52 00"), ALL) instanceof ResumeError)
    assert.ok(parseMessage(fromHex("504c5253 07"), ALL) instanceof ResumeError)
    assert.ok(parseMessage(fromHex("504c5253 01 44"), ALL) instanceof ResumeError)
  })

  it("the first record error is terminal: later input changes nothing", () => {
    const d = new RecordDecoder()
    d.push(fromHex("ff"))
    const first = d.next()
    assert.ok(first instanceof ResumeError)
    d.push(fromHex(recordGoldens.ack!.hex))
    assert.strictEqual(d.next(), first)
  })

  it("plain yamux where the handshake belongs says so", () => {
    const result = parseMessage(fromHex("00 01 0001 00000001 00040000"), ALL)
    assert.ok(result instanceof ResumeError)
    assert.match(result.message, /plain yamux/)
  })
})
