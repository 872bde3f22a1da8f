/**
 * Frame encoding against hand-written golden bytes: every golden encodes to exactly its bytes (through
 * each encoding entry point) and decodes back to the same frame.
 *
 * Invariants: expectations come only from `fixtures/goldens.ts` and spec literals, never from the
 * encoder under test.
 */
import { describe, expect, it } from "vitest"
import {
  ALL_FLAGS,
  DEFAULT_MAX_FRAME,
  Flags,
  FrameType,
  GoAwayCode,
  HEADER_SIZE,
  INITIAL_WINDOW,
  MAX_STREAM_ID,
  MAX_UINT32,
  SESSION_STREAM_ID,
  VERSION
} from "../../src/protocol/Constants.ts"
import { Decoder, FrameError } from "../../src/protocol/Decoder.ts"
import {
  data,
  emptyPayload,
  encodeFrame,
  encodeHeader,
  type Frame,
  goAway,
  ping,
  windowUpdate,
  writeHeader
} from "../../src/protocol/Frame.ts"
import { allGoldens, fromHex, type GoldenFrame, goldens, toGoldenFrame, toHex } from "./fixtures/goldens.ts"

/** Builds a golden's frame with the public constructor a caller would use for it. */
const construct = (g: GoldenFrame): Frame => {
  switch (g.type) {
    case 0:
      return data(g.streamId, g.flags, fromHex(g.payloadHex))
    case 1:
      return windowUpdate(g.streamId, g.flags, g.length)
    case 2:
      return ping(g.flags, g.length)
    case 3:
      return goAway(g.length)
  }
}

const decodeAll = (bytes: Uint8Array): Array<Frame | FrameError> => {
  const decoder = new Decoder()
  decoder.push(bytes)
  const out: Array<Frame | FrameError> = []
  // Bounded: every frame consumes at least HEADER_SIZE bytes.
  for (let i = 0; i <= bytes.length / HEADER_SIZE + 1; i++) {
    const next = decoder.next()
    if (next === undefined) break
    out.push(next)
    if (next instanceof FrameError) break
  }
  return out
}

describe("Constants", () => {
  it("match the values in hashicorp/yamux spec.md", () => {
    expect(VERSION).toBe(0)
    expect(HEADER_SIZE).toBe(12)
    expect(FrameType).toEqual({ Data: 0, WindowUpdate: 1, Ping: 2, GoAway: 3 })
    expect(Flags).toEqual({ SYN: 1, ACK: 2, FIN: 4, RST: 8 })
    expect(ALL_FLAGS).toBe(Flags.SYN | Flags.ACK | Flags.FIN | Flags.RST)
    expect(GoAwayCode).toEqual({ Normal: 0, ProtocolError: 1, InternalError: 2 })
    expect(SESSION_STREAM_ID).toBe(0)
    expect(MAX_STREAM_ID).toBe(2 ** 32 - 1)
    expect(MAX_UINT32).toBe(2 ** 32 - 1)
    expect(INITIAL_WINDOW).toBe(256 * 1024)
    expect(DEFAULT_MAX_FRAME).toBeLessThanOrEqual(INITIAL_WINDOW)
  })
})

describe("golden fixtures", () => {
  it("are well-formed: header is 12 bytes, DATA length equals its payload, control frames carry none", () => {
    for (const [name, g] of allGoldens) {
      const bytes = fromHex(g.hex)
      const payload = fromHex(g.frame.payloadHex)
      expect(bytes.length, name).toBe(12 + payload.length)
      if (g.frame.type === 0) expect(g.frame.length, name).toBe(payload.length)
      else expect(payload.length, name).toBe(0)
    }
  })
})

describe("encoding", () => {
  it.each(allGoldens)("%s: encodeFrame produces exactly the golden bytes", (_name, g) => {
    expect(toHex(encodeFrame(construct(g.frame)))).toBe(toHex(fromHex(g.hex)))
  })

  it.each(allGoldens)("%s: the constructor builds the golden frame", (_name, g) => {
    expect(toGoldenFrame(construct(g.frame))).toEqual(g.frame)
  })

  it.each(allGoldens)("%s: encodeHeader produces the golden's first 12 bytes", (_name, g) => {
    const f = g.frame
    expect(toHex(encodeHeader(f.type, f.flags, f.streamId, f.length))).toBe(toHex(fromHex(g.hex).subarray(0, 12)))
  })

  it.each(allGoldens)("%s: writeHeader at an offset writes only its 12 bytes", (_name, g) => {
    const f = g.frame
    const target = new Uint8Array(3 + HEADER_SIZE + 5).fill(0xaa)
    const end = writeHeader(target, 3, f.type, f.flags, f.streamId, f.length)
    expect(end).toBe(3 + HEADER_SIZE)
    expect(toHex(target.subarray(0, 3))).toBe("aaaaaa")
    expect(toHex(target.subarray(3, end))).toBe(toHex(fromHex(g.hex).subarray(0, 12)))
    expect(toHex(target.subarray(end))).toBe("aaaaaaaaaa")
  })

  it("encodeFrame writes no payload for non-DATA frames even if one is attached", () => {
    const frame: Frame = { ...windowUpdate(1, Flags.SYN, 0), payload: Uint8Array.of(1, 2, 3) }
    expect(toHex(encodeFrame(frame))).toBe(toHex(fromHex(goldens.hashicorpOpen.hex)))
  })

  it("control-frame constructors share the empty payload and put PING/GO_AWAY on stream 0", () => {
    expect(windowUpdate(1, 0, 1).payload).toBe(emptyPayload)
    expect(ping(Flags.SYN, 1).payload).toBe(emptyPayload)
    expect(goAway(GoAwayCode.Normal).payload).toBe(emptyPayload)
    expect(ping(Flags.SYN, 1).streamId).toBe(0)
    expect(goAway(GoAwayCode.ProtocolError).streamId).toBe(0)
  })

  it("ping normalises a negative opaque value to its unsigned 32-bit form", () => {
    expect(ping(Flags.SYN, -1).length).toBe(0xffff_ffff)
    expect(toHex(encodeFrame(ping(Flags.ACK, 0xdead_beef | 0)))).toBe(toHex(fromHex(goldens.pingAck.hex)))
  })

  it("data takes its length from the payload and does not copy it", () => {
    const payload = Uint8Array.of(9, 8, 7)
    const frame = data(11, 0, payload)
    expect(frame.length).toBe(3)
    expect(frame.payload).toBe(payload)
  })

  it("encodeHeader returns a fresh array per call", () => {
    const a = encodeHeader(FrameType.Ping, Flags.SYN, 0, 1)
    const b = encodeHeader(FrameType.Ping, Flags.SYN, 0, 1)
    expect(a).not.toBe(b)
    a[11] = 99
    expect(b[11]).toBe(1)
  })
})

describe("decoding goldens", () => {
  it.each(allGoldens)("%s: decodes back to the golden frame", (_name, g) => {
    const out = decodeAll(fromHex(g.hex))
    expect(out).toHaveLength(1)
    const frame = out[0]!
    if (frame instanceof FrameError) throw new Error(`unexpected ${frame.kind}: ${frame.message}`)
    expect(toGoldenFrame(frame)).toEqual(g.frame)
  })

  it("decodes all goldens back to back, in order, from one buffer", () => {
    const parts = allGoldens.map(([, g]) => fromHex(g.hex))
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
    let offset = 0
    for (const p of parts) {
      all.set(p, offset)
      offset += p.length
    }
    const out = decodeAll(all)
    expect(out.map((f) => (f instanceof FrameError ? f.kind : toGoldenFrame(f)))).toEqual(
      allGoldens.map(([, g]) => g.frame)
    )
  })

  it.each(allGoldens)("%s: encode ∘ decode is the identity on the golden bytes", (_name, g) => {
    const [frame] = decodeAll(fromHex(g.hex))
    if (frame === undefined || frame instanceof FrameError) throw new Error("golden did not decode")
    expect(toHex(encodeFrame(frame))).toBe(toHex(fromHex(g.hex)))
  })
})
