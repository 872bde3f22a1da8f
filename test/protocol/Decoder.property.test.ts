/**
 * Property tests for the incremental decoder: split invariance, robustness against garbage, and
 * agreement with a one-shot reference model written from hashicorp/yamux spec.md.
 *
 * Invariants: every decode loop is bounded by a budget derived from the input size (each frame
 * consumes at least 12 bytes), so a decoder that stopped making progress fails the property instead
 * of hanging; run counts are modest so the file finishes in well under 3 s.
 */
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { Flags, FrameType, HEADER_SIZE } from "../../src/protocol/Constants.ts"
import {
  Decoder,
  type DecoderOptions,
  FrameError,
  type FrameErrorKind,
  type Header
} from "../../src/protocol/Decoder.ts"
import { data, encodeFrame, type Frame, goAway, ping, windowUpdate } from "../../src/protocol/Frame.ts"
import { type GoldenFrame, toGoldenFrame, toHex } from "./fixtures/goldens.ts"

const U32_MAX = 0xffff_ffff

// ---------------------------------------------------------------------------------------------
// Generators

const u32 = fc.integer({ min: 0, max: U32_MAX })
const streamId = fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: U32_MAX }))
const streamFlags = fc.integer({ min: 0, max: 0xf })

/** Any frame the spec allows, built with the public constructors. */
const validFrame: fc.Arbitrary<Frame> = fc.oneof(
  fc
    .record({ id: streamId, flags: streamFlags, payload: fc.uint8Array({ maxLength: 48 }) })
    .map(({ flags, id, payload }) => data(id, flags, payload)),
  fc
    .record({ id: streamId, flags: streamFlags, delta: u32 })
    .map(({ delta, flags, id }) => windowUpdate(id, flags, delta)),
  fc
    .record({ flags: fc.constantFrom(0, Flags.SYN, Flags.ACK, Flags.SYN | Flags.ACK), opaque: u32 })
    .map(({ flags, opaque }) => ping(flags, opaque)),
  fc.record({ code: fc.oneof(fc.integer({ min: 0, max: 2 }), u32), flags: streamFlags }).map(({ code, flags }) => ({
    ...goAway(code),
    flags
  }))
)

/** Raw cut positions; reduced modulo the input length when applied. */
const cuts = fc.array(fc.nat(), { maxLength: 24 })

/** Header-shaped bytes with every field drawn near the validity boundaries, plus trailing bytes. */
const nearlyValidToken = fc
  .record({
    version: fc.constantFrom(0, 0, 0, 0, 0, 1, 0xff),
    type: fc.integer({ min: 0, max: 5 }),
    flags: fc.oneof(streamFlags, streamFlags, fc.integer({ min: 0, max: 0xffff })),
    streamId: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 8 }), u32),
    length: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }), u32),
    tail: fc.uint8Array({ maxLength: 40 }),
    exact: fc.boolean()
  })
  .map((t) => {
    // Half the time a small DATA frame gets exactly its payload, so decoding goes on to the next token.
    const tail =
      t.exact && t.length <= 40 ? concat(t.tail, new Uint8Array(40)).subarray(0, t.type === 0 ? t.length : 0) : t.tail
    return concat(rawHeader(t.version, t.type, t.flags, t.streamId, t.length), tail)
  })

/** Arbitrary bytes: pure noise, or a run of nearly valid frames (which reaches the deeper checks). */
const garbage = fc.oneof(
  { arbitrary: fc.uint8Array({ maxLength: 200 }), weight: 1 },
  {
    arbitrary: fc.array(nearlyValidToken, { minLength: 1, maxLength: 6 }).map((tokens) => concat(...tokens)),
    weight: 3
  }
)

/** Decoder settings: default or tiny maxDataLength, with or without a validate hook. */
const settings = fc.record({ maxDataLength: fc.constantFrom(undefined, 0, 16, 64), hook: fc.boolean() })

// ---------------------------------------------------------------------------------------------
// Helpers

function rawHeader(version: number, type: number, flags: number, id: number, length: number): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE)
  const view = new DataView(out.buffer)
  view.setUint8(0, version)
  view.setUint8(1, type)
  view.setUint16(2, flags)
  view.setUint32(4, id)
  view.setUint32(8, length)
  return out
}

function concat(...parts: Array<Uint8Array>): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

/** Splits `bytes` at the given raw cut points (mod length + 1); empty pieces are kept on purpose. */
const split = (bytes: Uint8Array, rawCuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = [...new Set(rawCuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let start = 0
  for (const p of points) {
    out.push(bytes.subarray(start, p))
    start = p
  }
  out.push(bytes.subarray(start))
  return out
}

/** The hook used when `settings.hook` is on: a stand-in window check with an arbitrary rule. */
const hookRejects = (h: Header): boolean => h.type === FrameType.Data && h.streamId % 7 === 3 && h.length > 8

const decoderOptions = (s: { readonly maxDataLength: number | undefined; readonly hook: boolean }): DecoderOptions => ({
  ...(s.maxDataLength === undefined ? {} : { maxDataLength: s.maxDataLength }),
  ...(s.hook
    ? {
        validate: (h: Header) =>
          hookRejects(h)
            ? new FrameError({ kind: "WindowExceeded", streamId: h.streamId, length: h.length, limit: 8 })
            : undefined
      }
    : {})
})

interface Outcome {
  readonly frames: Array<GoldenFrame>
  readonly error: FrameErrorKind | undefined
}

/**
 * Pushes `chunks` one by one, draining after each, and checks the shape of every result on the way.
 * Throws if the decoder needs more `next()` calls than the input could possibly hold frames.
 */
const drive = (options: DecoderOptions, chunks: ReadonlyArray<Uint8Array>): Outcome => {
  const decoder = new Decoder(options)
  const total = chunks.reduce((n, c) => n + c.length, 0)
  let budget = Math.floor(total / HEADER_SIZE) + chunks.length + 1
  const frames: Array<GoldenFrame> = []
  for (const chunk of chunks) {
    decoder.push(chunk)
    for (;;) {
      if (budget-- <= 0) throw new Error("decoder did not reach undefined or an error within its budget")
      const next = decoder.next()
      if (next === undefined) break
      if (next instanceof FrameError) {
        // Terminal and sticky: the same instance again, even after more input.
        decoder.push(Uint8Array.of(0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0))
        expect(decoder.next()).toBe(next)
        expect(decoder.error).toBe(next)
        expect(decoder.pendingBytes).toBe(0)
        return { frames, error: next.kind }
      }
      expect(next.type === 0 || next.type === 1 || next.type === 2 || next.type === 3).toBe(true)
      expect(next.payload).toBeInstanceOf(Uint8Array)
      expect(next.payload.length).toBe(next.type === FrameType.Data ? next.length : 0)
      frames.push(toGoldenFrame(next))
    }
  }
  return { frames, error: undefined }
}

/**
 * One-shot reference decoder written straight from the spec's rules (plus plait's maxDataLength and
 * hook), independent of the incremental decoder's buffering.
 */
const reference = (bytes: Uint8Array, options: DecoderOptions): Outcome => {
  const max = options.maxDataLength ?? 16 * 1024 * 1024
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const frames: Array<GoldenFrame> = []
  let at = 0
  while (at + HEADER_SIZE <= bytes.length) {
    const version = view.getUint8(at)
    const type = view.getUint8(at + 1)
    const flags = view.getUint16(at + 2)
    const id = view.getUint32(at + 4)
    const length = view.getUint32(at + 8)
    const fail = (error: FrameErrorKind): Outcome => ({ frames, error })
    if (version !== 0) return fail("BadVersion")
    if (type > 3) return fail("BadType")
    if ((flags & ~0xf) !== 0) return fail("BadFlags")
    if ((type === 0 || type === 1) && id === 0) return fail("BadStreamId")
    if (type === 0 && length > max) return fail("FrameTooLarge")
    if ((type === 2 || type === 3) && id !== 0) return fail("BadStreamId")
    if (type === 2 && (flags & 0xc) !== 0) return fail("BadFlags")
    const header = { type: type as 0 | 1 | 2 | 3, flags, streamId: id, length }
    const hookError = options.validate?.(header)
    if (hookError !== undefined) return fail(hookError.kind)
    const payloadLength = type === 0 ? length : 0
    if (at + HEADER_SIZE + payloadLength > bytes.length) break
    const payload = bytes.subarray(at + HEADER_SIZE, at + HEADER_SIZE + payloadLength)
    frames.push({ ...header, payloadHex: toHex(payload) })
    at += HEADER_SIZE + payloadLength
  }
  return { frames, error: undefined }
}

/**
 * {@link drive} for a decoder in `fragments` mode: the parts of each DATA frame are checked (a view
 * of an input chunk, SYN/ACK only on the first, FIN/RST only on the last, `inFrame` until the last)
 * and joined back into one frame; a frame whose last part has not come yet is left out, as the
 * whole-frame decoder leaves it out.
 */
const driveParts = (options: DecoderOptions, chunks: ReadonlyArray<Uint8Array>): Outcome => {
  const decoder = new Decoder({ ...options, fragments: true })
  const total = chunks.reduce((n, c) => n + c.length, 0)
  let budget = Math.floor(total / HEADER_SIZE) + 2 * chunks.length + 1
  const frames: Array<GoldenFrame> = []
  let open: { header: GoldenFrame; parts: Array<Uint8Array> } | undefined
  for (const chunk of chunks) {
    decoder.push(chunk)
    for (;;) {
      if (budget-- <= 0) throw new Error("decoder did not reach undefined or an error within its budget")
      const next = decoder.next()
      if (next === undefined) break
      if (next instanceof FrameError) {
        expect(open).toBeUndefined()
        expect(decoder.inFrame).toBe(false)
        return { frames, error: next.kind }
      }
      if (next.type !== FrameType.Data || (open === undefined && !decoder.inFrame)) {
        expect(open).toBeUndefined()
        if (next.payload.length > 0) expect(next.payload.buffer).toBe(chunk.buffer)
        frames.push(toGoldenFrame(next))
        continue
      }
      // A part: a non-empty view of the chunk just pushed (parts never span chunks).
      expect(next.payload.length).toBeGreaterThan(0)
      expect(next.payload.length).toBe(next.length)
      expect(next.payload.buffer).toBe(chunk.buffer)
      if (open === undefined) {
        expect(next.flags & (Flags.FIN | Flags.RST)).toBe(0)
        open = { header: { ...toGoldenFrame(next), payloadHex: "" }, parts: [] }
      } else {
        expect(next.streamId).toBe(open.header.streamId)
        if (decoder.inFrame) expect(next.flags).toBe(0)
        else expect(next.flags & (Flags.SYN | Flags.ACK)).toBe(0)
      }
      open.parts.push(next.payload.slice())
      if (!decoder.inFrame) {
        const payload = concat(...open.parts)
        frames.push({
          ...open.header,
          flags: open.header.flags | next.flags,
          length: payload.length,
          payloadHex: toHex(payload)
        })
        open = undefined
      }
    }
  }
  return { frames, error: undefined }
}

const runs = { numRuns: 200 }

// ---------------------------------------------------------------------------------------------
// Properties

describe("Decoder properties", () => {
  it("valid frames decode to the same frames at any split points", () => {
    fc.assert(
      fc.property(fc.array(validFrame, { maxLength: 12 }), cuts, (frames, rawCuts) => {
        const bytes = concat(...frames.map(encodeFrame))
        const outcome = drive({}, split(bytes, rawCuts))
        expect(outcome.error).toBeUndefined()
        expect(outcome.frames).toEqual(frames.map(toGoldenFrame))
      }),
      runs
    )
  })

  it("valid frames decode to the same frames when fed one byte at a time", () => {
    fc.assert(
      fc.property(fc.array(validFrame, { minLength: 1, maxLength: 6 }), (frames) => {
        const bytes = concat(...frames.map(encodeFrame))
        const chunks = Array.from(bytes, (_, i) => bytes.subarray(i, i + 1))
        expect(drive({}, chunks)).toEqual({ frames: frames.map(toGoldenFrame), error: undefined })
      }),
      { numRuns: 50 }
    )
  })

  it("garbage never throws, the loop terminates, and the result does not depend on the splits", () => {
    fc.assert(
      fc.property(garbage, cuts, settings, (bytes, rawCuts, s) => {
        const options = decoderOptions(s)
        const whole = drive(options, [bytes])
        const pieces = drive(options, split(bytes, rawCuts))
        expect(pieces).toEqual(whole)
      }),
      runs
    )
  })

  it("garbage decodes exactly as the one-shot reference model says", () => {
    fc.assert(
      fc.property(garbage, cuts, settings, (bytes, rawCuts, s) => {
        const options = decoderOptions(s)
        expect(drive(options, split(bytes, rawCuts))).toEqual(reference(bytes, options))
      }),
      runs
    )
  })

  it("a valid prefix followed by garbage yields the prefix frames, then more frames or an error", () => {
    fc.assert(
      fc.property(fc.array(validFrame, { maxLength: 6 }), garbage, cuts, settings, (frames, junk, rawCuts, s) => {
        const options = decoderOptions(s)
        const prefix = frames.map(toGoldenFrame)
        const bytes = concat(...frames.map(encodeFrame), junk)
        const outcome = drive(options, split(bytes, rawCuts))
        const expected = reference(bytes, options)
        expect(outcome).toEqual(expected)
        // The prefix survives unless a prefix frame itself broke a setting (tiny maxDataLength, hook).
        const prefixAllowed = reference(concat(...frames.map(encodeFrame)), options).error === undefined
        if (prefixAllowed) expect(outcome.frames.slice(0, prefix.length)).toEqual(prefix)
        if (outcome.frames.length < prefix.length) expect(outcome.error).toBeDefined()
      }),
      runs
    )
  })

  it("fragments: valid frames at any split points join back into the same frames, every part uncopied", () => {
    fc.assert(
      fc.property(fc.array(validFrame, { maxLength: 12 }), cuts, (frames, rawCuts) => {
        const bytes = concat(...frames.map(encodeFrame))
        expect(driveParts({}, split(bytes, rawCuts))).toEqual({ frames: frames.map(toGoldenFrame), error: undefined })
      }),
      runs
    )
  })

  it("fragments: garbage decodes as the whole-frame decoder decodes it, at any split points", () => {
    fc.assert(
      fc.property(garbage, cuts, settings, (bytes, rawCuts, s) => {
        const options = decoderOptions(s)
        expect(driveParts(options, split(bytes, rawCuts))).toEqual(drive(options, [bytes]))
      }),
      runs
    )
  })

  it("the reference model itself accepts every valid frame sequence (sanity check of the oracle)", () => {
    fc.assert(
      fc.property(fc.array(validFrame, { maxLength: 8 }), (frames) => {
        expect(reference(concat(...frames.map(encodeFrame)), {})).toEqual({
          frames: frames.map(toGoldenFrame),
          error: undefined
        })
      }),
      { numRuns: 50 }
    )
  })
})
