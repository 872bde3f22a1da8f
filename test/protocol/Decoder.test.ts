/**
 * Incremental decoder: header validation, terminal errors, zero-copy payloads, chunking and byte
 * accounting.
 *
 * Invariants: raw headers are built with a `DataView` here, not with the encoder under test, so a
 * bug shared by encoder and decoder cannot hide; every error is checked by `kind`, never by message.
 */
import { describe, expect, it } from "vitest"
import { Flags, FrameType, HEADER_SIZE, INITIAL_WINDOW } from "../../src/protocol/Constants.ts"
import {
  checkHeader,
  DEFAULT_MAX_DATA_LENGTH,
  Decoder,
  type DecoderOptions,
  FrameError,
  type Header
} from "../../src/protocol/Decoder.ts"
import type { Frame } from "../../src/protocol/Frame.ts"
import { fromHex, goldens, toGoldenFrame, toHex } from "./fixtures/goldens.ts"

/** A raw 12-byte header with every field free, including ones the encoder would never produce. */
const rawHeader = (version: number, type: number, flags: number, streamId: number, length: number): Uint8Array => {
  const out = new Uint8Array(HEADER_SIZE)
  const view = new DataView(out.buffer)
  view.setUint8(0, version)
  view.setUint8(1, type)
  view.setUint16(2, flags)
  view.setUint32(4, streamId)
  view.setUint32(8, length)
  return out
}

const concat = (...parts: Array<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

const expectFrame = (result: Frame | FrameError | undefined): Frame => {
  if (result === undefined) throw new Error("expected a frame, got undefined (needs more input)")
  if (result instanceof FrameError) throw new Error(`expected a frame, got ${result.kind}: ${result.message}`)
  return result
}

const expectError = (result: Frame | FrameError | undefined): FrameError => {
  if (!(result instanceof FrameError)) throw new Error(`expected a FrameError, got ${JSON.stringify(result)}`)
  expect(result._tag).toBe("FrameError")
  return result
}

/** Feeds one header only (no payload bytes at all) and returns the decoder's answer. */
const decodeHeaderOnly = (header: Uint8Array, options?: DecoderOptions): Frame | FrameError | undefined => {
  const decoder = new Decoder(options)
  decoder.push(header)
  return decoder.next()
}

describe("header validation", () => {
  it("BadVersion: any version but 0, detected from the header alone", () => {
    for (const version of [1, 0x7f, 0xff]) {
      const error = expectError(decodeHeaderOnly(rawHeader(version, FrameType.Data, 0, 1, 100)))
      expect(error.kind).toBe("BadVersion")
    }
  })

  it("BadType: types above GO_AWAY", () => {
    for (const type of [4, 5, 0x80, 0xff]) {
      const error = expectError(decodeHeaderOnly(rawHeader(0, type, 0, 1, 0)))
      expect(error.kind).toBe("BadType")
    }
  })

  it("BadFlags: bits outside SYN|ACK|FIN|RST on any type", () => {
    const cases: Array<[number, number, number]> = [
      [FrameType.Data, 0x10, 1],
      [FrameType.WindowUpdate, 0x8000, 1],
      [FrameType.Ping, 0x0100, 0],
      [FrameType.GoAway, 0x20, 0]
    ]
    for (const [type, flags, streamId] of cases) {
      const error = expectError(decodeHeaderOnly(rawHeader(0, type, flags, streamId, 0)))
      expect(error.kind, `type ${type} flags ${flags}`).toBe("BadFlags")
    }
  })

  it("BadFlags: PING with FIN or RST", () => {
    for (const flags of [Flags.FIN, Flags.RST, Flags.SYN | Flags.FIN, Flags.ACK | Flags.RST]) {
      const error = expectError(decodeHeaderOnly(rawHeader(0, FrameType.Ping, flags, 0, 7)))
      expect(error.kind).toBe("BadFlags")
    }
  })

  it("BadStreamId: DATA and WINDOW_UPDATE on stream 0", () => {
    expect(expectError(decodeHeaderOnly(rawHeader(0, FrameType.Data, 0, 0, 4))).kind).toBe("BadStreamId")
    expect(expectError(decodeHeaderOnly(rawHeader(0, FrameType.Data, Flags.SYN, 0, 0))).kind).toBe("BadStreamId")
    expect(expectError(decodeHeaderOnly(rawHeader(0, FrameType.WindowUpdate, 0, 0, 1))).kind).toBe("BadStreamId")
    expect(expectError(decodeHeaderOnly(rawHeader(0, FrameType.WindowUpdate, Flags.FIN, 0, 0))).kind).toBe(
      "BadStreamId"
    )
  })

  it("BadStreamId: PING and GO_AWAY on a non-zero stream, naming the stream", () => {
    const pingError = expectError(decodeHeaderOnly(rawHeader(0, FrameType.Ping, Flags.SYN, 1, 0)))
    expect(pingError.kind).toBe("BadStreamId")
    expect(pingError.streamId).toBe(1)
    const goAwayError = expectError(decodeHeaderOnly(rawHeader(0, FrameType.GoAway, 0, 0xffff_ffff, 0)))
    expect(goAwayError.kind).toBe("BadStreamId")
    expect(goAwayError.streamId).toBe(0xffff_ffff)
  })

  it("FrameTooLarge: DATA above maxDataLength fails from the header alone; the maximum itself passes", () => {
    const tooLarge = expectError(decodeHeaderOnly(rawHeader(0, FrameType.Data, 0, 3, 1025), { maxDataLength: 1024 }))
    expect(tooLarge.kind).toBe("FrameTooLarge")
    expect(tooLarge.streamId).toBe(3)
    // Exactly the maximum is accepted: no error, just waiting for the payload.
    expect(decodeHeaderOnly(rawHeader(0, FrameType.Data, 0, 3, 1024), { maxDataLength: 1024 })).toBeUndefined()
  })

  it("FrameTooLarge: the default bound is 16 MiB and a u32-max length is refused", () => {
    expect(DEFAULT_MAX_DATA_LENGTH).toBe(16 * 1024 * 1024)
    const atDefault = rawHeader(0, FrameType.Data, 0, 1, DEFAULT_MAX_DATA_LENGTH)
    expect(decodeHeaderOnly(atDefault)).toBeUndefined()
    const overDefault = rawHeader(0, FrameType.Data, 0, 1, DEFAULT_MAX_DATA_LENGTH + 1)
    expect(expectError(decodeHeaderOnly(overDefault)).kind).toBe("FrameTooLarge")
    expect(expectError(decodeHeaderOnly(rawHeader(0, FrameType.Data, 0, 1, 0xffff_ffff))).kind).toBe("FrameTooLarge")
  })

  it("the length of non-DATA frames is a value, never checked against maxDataLength", () => {
    const frame = expectFrame(
      decodeHeaderOnly(rawHeader(0, FrameType.WindowUpdate, 0, 1, 0xffff_ffff), { maxDataLength: 16 })
    )
    expect(frame.length).toBe(0xffff_ffff)
    expect(frame.payload.length).toBe(0)
  })

  it("checks run in order version, type, flags, stream id", () => {
    expect(expectError(decodeHeaderOnly(rawHeader(1, 9, 0xff, 0, 0))).kind).toBe("BadVersion")
    expect(expectError(decodeHeaderOnly(rawHeader(0, 9, 0xff, 0, 0))).kind).toBe("BadType")
    expect(expectError(decodeHeaderOnly(rawHeader(0, FrameType.Data, 0xff, 0, 0))).kind).toBe("BadFlags")
  })

  it("accepts every flag combination on DATA/WINDOW_UPDATE and SYN/ACK combinations on PING", () => {
    for (let flags = 0; flags <= 0xf; flags++) {
      expect(checkHeader({ type: FrameType.Data, flags, streamId: 1, length: 0 }, 10)).toBeUndefined()
      expect(checkHeader({ type: FrameType.WindowUpdate, flags, streamId: 2, length: 0 }, 10)).toBeUndefined()
    }
    for (const flags of [0, Flags.SYN, Flags.ACK, Flags.SYN | Flags.ACK]) {
      expect(checkHeader({ type: FrameType.Ping, flags, streamId: 0, length: 0 }, 10)).toBeUndefined()
    }
  })
})

describe("validate hook", () => {
  const windowCheck = (calls: Array<Header>) => (header: Header) => {
    calls.push(header)
    return header.type === FrameType.Data && header.length > INITIAL_WINDOW
      ? new FrameError({
          kind: "WindowExceeded",
          streamId: header.streamId,
          length: header.length,
          limit: INITIAL_WINDOW
        })
      : undefined
  }

  it("rejects an oversized DATA frame from its header alone, before any payload arrives", () => {
    const calls: Array<Header> = []
    const decoder = new Decoder({ validate: windowCheck(calls) })
    decoder.push(rawHeader(0, FrameType.Data, 0, 5, INITIAL_WINDOW + 1))
    const error = expectError(decoder.next())
    expect(error.kind).toBe("WindowExceeded")
    expect(error.streamId).toBe(5)
    expect(calls).toEqual([{ type: FrameType.Data, flags: 0, streamId: 5, length: INITIAL_WINDOW + 1 }])
    expect(decoder.error).toBe(error)
    expect(decoder.pendingBytes).toBe(0)
  })

  it("returns the hook's own error instance", () => {
    const mine = new FrameError({ kind: "UnexpectedFrame", streamId: 9 })
    const decoder = new Decoder({ validate: () => mine })
    decoder.push(fromHex(goldens.fin.hex))
    expect(decoder.next()).toBe(mine)
  })

  it("is called once per header, for every frame type, and passes frames it accepts", () => {
    const calls: Array<Header> = []
    const decoder = new Decoder({ validate: windowCheck(calls) })
    const names = ["data", "windowUpdateSyn", "pingSyn", "goAwayNormal", "dataEmptyFin"] as const
    for (const name of names) decoder.push(fromHex(goldens[name].hex))
    for (const name of names) expect(toGoldenFrame(expectFrame(decoder.next()))).toEqual(goldens[name].frame)
    expect(decoder.next()).toBeUndefined()
    expect(calls.map((h) => h.type)).toEqual([0, 1, 2, 3, 0])
  })

  it("is called once even when the payload arrives byte by byte", () => {
    const calls: Array<Header> = []
    const decoder = new Decoder({ validate: windowCheck(calls) })
    const bytes = fromHex(goldens.data.hex)
    const results: Array<Frame | FrameError | undefined> = []
    for (let i = 0; i < bytes.length; i++) {
      decoder.push(bytes.subarray(i, i + 1))
      results.push(decoder.next())
    }
    expect(calls).toHaveLength(1)
    expect(results.slice(0, -1).every((r) => r === undefined)).toBe(true)
    expect(toGoldenFrame(expectFrame(results.at(-1)))).toEqual(goldens.data.frame)
  })

  it("is not called when the static checks already failed", () => {
    const calls: Array<Header> = []
    const decoder = new Decoder({ validate: windowCheck(calls) })
    decoder.push(rawHeader(0, FrameType.Data, 0, 0, 1))
    expect(expectError(decoder.next()).kind).toBe("BadStreamId")
    expect(calls).toEqual([])
  })
})

describe("terminal errors", () => {
  it("the first error is sticky: same instance from next() and error, later input ignored", () => {
    const decoder = new Decoder()
    decoder.push(rawHeader(3, FrameType.Data, 0, 1, 0))
    const error = expectError(decoder.next())
    expect(error.kind).toBe("BadVersion")
    expect(decoder.error).toBe(error)
    decoder.push(fromHex(goldens.pingSyn.hex))
    expect(decoder.pendingBytes).toBe(0)
    for (let i = 0; i < 3; i++) expect(decoder.next()).toBe(error)
  })

  it("frames before the bad header are still delivered, then the error", () => {
    const decoder = new Decoder()
    decoder.push(
      concat(fromHex(goldens.dataSyn.hex), fromHex(goldens.pingAck.hex), rawHeader(0, 7, 0, 1, 0), new Uint8Array(20))
    )
    expect(toGoldenFrame(expectFrame(decoder.next()))).toEqual(goldens.dataSyn.frame)
    expect(toGoldenFrame(expectFrame(decoder.next()))).toEqual(goldens.pingAck.frame)
    const error = expectError(decoder.next())
    expect(error.kind).toBe("BadType")
    expect(decoder.next()).toBe(error)
    expect(decoder.pendingBytes).toBe(0)
  })

  it("no error before a full header is known: 11 bad bytes just wait", () => {
    const decoder = new Decoder()
    decoder.push(new Uint8Array(11).fill(0xff))
    expect(decoder.next()).toBeUndefined()
    expect(decoder.error).toBeUndefined()
    decoder.push(Uint8Array.of(0xff))
    expect(expectError(decoder.next()).kind).toBe("BadVersion")
  })
})

describe("payload buffering", () => {
  it("a payload inside one chunk is a zero-copy view of that chunk", () => {
    const bytes = fromHex(goldens.dataHighStreamId.hex)
    // Place the frame at a non-zero offset of a larger buffer, as a socket read would.
    const backing = new Uint8Array(bytes.length + 8)
    backing.set(bytes, 4)
    const chunk = backing.subarray(4, 4 + bytes.length)
    const decoder = new Decoder()
    decoder.push(chunk)
    const frame = expectFrame(decoder.next())
    expect(toGoldenFrame(frame)).toEqual(goldens.dataHighStreamId.frame)
    expect(frame.payload.buffer).toBe(backing.buffer)
    expect(frame.payload.byteOffset).toBe(4 + HEADER_SIZE)
    // A view, so writes to the chunk show through.
    chunk[HEADER_SIZE] = 0x55
    expect(frame.payload[0]).toBe(0x55)
  })

  it("a header split across chunks does not force a payload copy", () => {
    const bytes = fromHex(goldens.data.hex)
    const headerA = bytes.slice(0, 5)
    const headerB = bytes.slice(5, HEADER_SIZE)
    const payload = bytes.slice(HEADER_SIZE)
    const decoder = new Decoder()
    decoder.push(headerA)
    expect(decoder.next()).toBeUndefined()
    decoder.push(headerB)
    expect(decoder.next()).toBeUndefined()
    decoder.push(payload)
    const frame = expectFrame(decoder.next())
    expect(toHex(frame.payload)).toBe("68656c6c6f")
    expect(frame.payload.buffer).toBe(payload.buffer)
  })

  it("a payload spanning chunks is copied once into a fresh array", () => {
    const header = rawHeader(0, FrameType.Data, Flags.ACK, 2, 10)
    const parts = [Uint8Array.of(0, 1, 2), Uint8Array.of(3, 4, 5, 6), Uint8Array.of(7, 8, 9)]
    const decoder = new Decoder()
    decoder.push(header)
    expect(decoder.next()).toBeUndefined()
    decoder.push(parts[0]!)
    expect(decoder.next()).toBeUndefined()
    decoder.push(parts[1]!)
    expect(decoder.next()).toBeUndefined()
    decoder.push(parts[2]!)
    const frame = expectFrame(decoder.next())
    expect(frame).toMatchObject({ type: FrameType.Data, flags: Flags.ACK, streamId: 2, length: 10 })
    expect(toHex(frame.payload)).toBe("00010203040506070809")
    for (const part of parts) expect(frame.payload.buffer).not.toBe(part.buffer)
    // A copy, so later writes to the input leave the frame intact.
    for (const part of parts) part.fill(0xee)
    expect(toHex(frame.payload)).toBe("00010203040506070809")
  })

  it("a payload and the next frame share one chunk", () => {
    const decoder = new Decoder()
    const header = fromHex(goldens.dataAckFin.hex).subarray(0, HEADER_SIZE)
    decoder.push(header)
    expect(decoder.next()).toBeUndefined()
    decoder.push(concat(Uint8Array.of(0x2a), fromHex(goldens.goAwayInternalError.hex)))
    expect(toGoldenFrame(expectFrame(decoder.next()))).toEqual(goldens.dataAckFin.frame)
    expect(toGoldenFrame(expectFrame(decoder.next()))).toEqual(goldens.goAwayInternalError.frame)
    expect(decoder.next()).toBeUndefined()
  })

  it("a 0-length DATA frame is returned as soon as its header is complete", () => {
    for (const flags of [0, Flags.FIN, Flags.SYN, Flags.RST]) {
      const decoder = new Decoder({ maxDataLength: 0 })
      decoder.push(rawHeader(0, FrameType.Data, flags, 11, 0))
      const frame = expectFrame(decoder.next())
      expect(frame).toMatchObject({ type: FrameType.Data, flags, streamId: 11, length: 0 })
      expect(frame.payload.length).toBe(0)
      expect(decoder.pendingBytes).toBe(0)
      expect(decoder.next()).toBeUndefined()
    }
  })

  it("control frames with a large length consume no payload bytes", () => {
    const decoder = new Decoder()
    decoder.push(concat(fromHex(goldens.windowUpdateMaxDelta.hex), fromHex(goldens.pingSyn.hex)))
    expect(toGoldenFrame(expectFrame(decoder.next()))).toEqual(goldens.windowUpdateMaxDelta.frame)
    expect(toGoldenFrame(expectFrame(decoder.next()))).toEqual(goldens.pingSyn.frame)
    expect(decoder.next()).toBeUndefined()
  })

  it("empty chunks are ignored", () => {
    const decoder = new Decoder()
    decoder.push(new Uint8Array(0))
    expect(decoder.pendingBytes).toBe(0)
    expect(decoder.next()).toBeUndefined()
    decoder.push(fromHex(goldens.pingAck.hex))
    decoder.push(new Uint8Array(0))
    expect(toGoldenFrame(expectFrame(decoder.next()))).toEqual(goldens.pingAck.frame)
  })
})

describe("fragments", () => {
  it("a payload spanning chunks comes out in parts, each a view of its chunk, flags split head/tail", () => {
    const flags = Flags.SYN | Flags.ACK | Flags.FIN
    const header = rawHeader(0, FrameType.Data, flags, 3, 10)
    const parts = [Uint8Array.of(0, 1, 2), Uint8Array.of(3, 4, 5, 6), Uint8Array.of(7, 8, 9)]
    const calls: Array<Header> = []
    const decoder = new Decoder({ fragments: true, validate: (h) => void calls.push(h) })
    decoder.push(header)
    expect(decoder.next()).toBeUndefined()
    expect(decoder.progress).toEqual({ part: "body", received: 0, expected: 10, streamId: 3 })
    const seen: Array<Frame> = []
    for (const part of parts) {
      decoder.push(part)
      const frame = expectFrame(decoder.next())
      seen.push(frame)
      // Zero-copy: writes to the input show through.
      expect(frame.payload.buffer).toBe(part.buffer)
      expect(frame.length).toBe(part.length)
      expect(decoder.inFrame).toBe(part !== parts[2])
      expect(decoder.next()).toBeUndefined()
      if (part !== parts[2]) expect(decoder.partial).toBe("body")
    }
    expect(seen.map((f) => f.flags)).toEqual([Flags.SYN | Flags.ACK, 0, Flags.FIN])
    expect(seen.every((f) => f.streamId === 3 && f.type === FrameType.Data)).toBe(true)
    expect(toHex(concat(...seen.map((f) => f.payload)))).toBe("00010203040506070809")
    expect(calls).toHaveLength(1)
    expect(decoder.partial).toBeUndefined()
    expect(decoder.pendingBytes).toBe(0)
  })

  it("progress counts the body bytes already returned in parts", () => {
    const decoder = new Decoder({ fragments: true })
    decoder.push(concat(rawHeader(0, FrameType.Data, 0, 1, 100), new Uint8Array(30)))
    expect(expectFrame(decoder.next()).length).toBe(30)
    expect(decoder.next()).toBeUndefined()
    expect(decoder.progress).toEqual({ part: "body", received: 30, expected: 100, streamId: 1 })
  })

  it("a payload inside one chunk is one frame with every flag; the next frame follows in the same chunk", () => {
    const decoder = new Decoder({ fragments: true })
    const bytes = concat(rawHeader(0, FrameType.Data, Flags.ACK | Flags.RST, 5, 4), Uint8Array.of(1, 2, 3, 4))
    decoder.push(concat(bytes, fromHex(goldens.pingSyn.hex)))
    const frame = expectFrame(decoder.next())
    expect(frame).toMatchObject({ type: FrameType.Data, flags: Flags.ACK | Flags.RST, streamId: 5, length: 4 })
    expect(decoder.inFrame).toBe(false)
    expect(toGoldenFrame(expectFrame(decoder.next()))).toEqual(goldens.pingSyn.frame)
    expect(decoder.next()).toBeUndefined()
  })
})

describe("pendingBytes", () => {
  it("counts bytes pushed and not yet consumed into a frame or a parsed header", () => {
    const decoder = new Decoder()
    const frame = fromHex(goldens.data.hex) // 12 + 5 bytes
    const ping = fromHex(goldens.pingSyn.hex) // 12 bytes
    expect(decoder.pendingBytes).toBe(0)
    decoder.push(frame.subarray(0, 7))
    expect(decoder.pendingBytes).toBe(7)
    expect(decoder.next()).toBeUndefined()
    expect(decoder.pendingBytes).toBe(7)
    decoder.push(frame.subarray(7, 14))
    expect(decoder.pendingBytes).toBe(14)
    // The header is now parsed and held, leaving 2 of the 5 payload bytes buffered.
    expect(decoder.next()).toBeUndefined()
    expect(decoder.pendingBytes).toBe(2)
    decoder.push(concat(frame.subarray(14), ping))
    expect(decoder.pendingBytes).toBe(2 + 3 + 12)
    expectFrame(decoder.next())
    expect(decoder.pendingBytes).toBe(12)
    expectFrame(decoder.next())
    expect(decoder.pendingBytes).toBe(0)
    expect(decoder.next()).toBeUndefined()
    expect(decoder.pendingBytes).toBe(0)
  })

  it("drops to 0 on a terminal error", () => {
    const decoder = new Decoder({ maxDataLength: 4 })
    decoder.push(concat(rawHeader(0, FrameType.Data, 0, 1, 5), new Uint8Array(5)))
    expect(decoder.pendingBytes).toBe(17)
    expect(expectError(decoder.next()).kind).toBe("FrameTooLarge")
    expect(decoder.pendingBytes).toBe(0)
  })
})

describe("decoder reuse across many frames", () => {
  it("decodes a long run of small frames pushed one frame per chunk without retaining them", () => {
    const decoder = new Decoder()
    const bytes = fromHex(goldens.dataSyn.hex)
    for (let i = 0; i < 1000; i++) {
      decoder.push(bytes)
      expect(toGoldenFrame(expectFrame(decoder.next()))).toEqual(goldens.dataSyn.frame)
      expect(decoder.pendingBytes).toBe(0)
    }
    expect(decoder.next()).toBeUndefined()
  })

  it("keeps its chunk queue bounded when chunk boundaries never line up with frames", () => {
    // Regression: the queue only reset when fully drained, so a stream whose every chunk ends
    // mid-header kept one spent slot per chunk forever. The queue is private; reading its length
    // is the only way to observe the leak.
    const frame = concat(rawHeader(0, FrameType.Data, 0, 1, 20), new Uint8Array(20).fill(7))
    const count = 2000
    const stream = new Uint8Array(frame.length * count)
    for (let i = 0; i < count; i++) stream.set(frame, i * frame.length)
    const decoder = new Decoder()
    const queue = () => (decoder as unknown as { chunks: Array<Uint8Array> }).chunks.length
    let frames = 0
    let maxQueue = 0
    // A 5-byte first chunk, then frame-sized chunks: every boundary falls inside a header.
    decoder.push(stream.subarray(0, 5))
    for (let offset = 5; offset < stream.length; offset += frame.length) {
      decoder.push(stream.subarray(offset, Math.min(offset + frame.length, stream.length)))
      for (let k = 0; k < 3; k++) {
        const next = decoder.next()
        if (next === undefined) break
        expect(toHex(expectFrame(next).payload)).toBe("07".repeat(20))
        frames++
      }
      maxQueue = Math.max(maxQueue, queue())
    }
    expect(frames).toBe(count)
    expect(maxQueue).toBeLessThanOrEqual(64)
  })
})
