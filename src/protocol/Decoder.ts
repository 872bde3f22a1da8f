/**
 * Incremental frame decoder: bytes in, frames out. Sans-IO: no sockets, no Effect, no timers.
 *
 * Invariants:
 * - Input may be split at any byte; the frames produced do not depend on the split.
 * - Every header is validated the moment its 12 bytes are known (version, type, flags, stream-id
 *   rules, DATA length against the maximum and the caller's `validate` hook, which checks the
 *   receive window) — before a single payload byte is buffered.
 * - The first error is terminal: the decoder returns the same {@link FrameError} from then on.
 * - A payload that lies inside one input chunk is a zero-copy view of it; only payloads that span
 *   chunks are copied (once). With `fragments`, nothing is ever copied: a DATA payload that spans
 *   chunks comes out as several DATA frames of the same stream, in order, each a view of one
 *   chunk (the header's SYN/ACK ride on the first, FIN/RST on the last; see
 *   {@link DecoderOptions.fragments}).
 * - A {@link FrameError} carries the facts as fields (kind, stream id, length, limit, value); its
 *   message is derived from them, so nobody ever parses it back.
 *
 * @since 0.1.0
 */
import { ALL_FLAGS, Flags, FrameType, HEADER_SIZE, VERSION } from "./Constants.ts"
import { emptyPayload, type Frame } from "./Frame.ts"

/**
 * Why a byte sequence is not valid yamux.
 *
 * @since 0.1.0
 * @category models
 */
export type FrameErrorKind =
  /** Byte 0 is not {@link VERSION}; `value` is the version seen. */
  | "BadVersion"
  /** Byte 1 names no frame type; `value` is the type seen. */
  | "BadType"
  /** Flag bits the spec does not define, or FIN/RST on a PING; `value` is the flags field. */
  | "BadFlags"
  /** DATA/WINDOW_UPDATE on stream 0, or PING/GO_AWAY on another stream. */
  | "BadStreamId"
  /** DATA longer than the decoder's hard bound; `length` and `limit` say by how much. */
  | "FrameTooLarge"
  /** DATA longer than the stream's receive window (the caller's `validate` hook); `length`, `limit`. */
  | "WindowExceeded"
  /** A frame the caller's `validate` hook refuses for another reason. */
  | "UnexpectedFrame"

/**
 * The fields of a {@link FrameError}; what does not apply to a kind is left out.
 *
 * @since 0.1.0
 * @category models
 */
export interface FrameErrorFields {
  readonly kind: FrameErrorKind
  /** The header's stream id (0 when the header was refused before it was read, i.e. BadVersion). */
  readonly streamId?: number
  /** The header's frame type, when it was read. */
  readonly frameType?: number
  /** The header's length field, for the kinds about it (`FrameTooLarge`, `WindowExceeded`). */
  readonly length?: number
  /** The bound the length broke: the decoder's maximum, or the stream's receive window. */
  readonly limit?: number
  /** The offending field's value: the version, the type or the flags. */
  readonly value?: number
}

const TYPE_NAMES = ["DATA", "WINDOW_UPDATE", "PING", "GO_AWAY"] as const

const typeName = (type: number | undefined): string =>
  type === undefined ? "frame" : (TYPE_NAMES[type] ?? `frame type ${type}`)

/**
 * A terminal parse error: the peer sent bytes that are not a valid frame here. Everything a caller
 * acts on is a field (`kind`, `streamId`, `length`, `limit`, `value`); `message` is derived from them
 * for logs and is never parsed.
 *
 * @since 0.1.0
 * @category errors
 */
export class FrameError {
  readonly _tag = "FrameError"
  readonly kind: FrameErrorKind
  readonly streamId: number
  readonly frameType: number | undefined
  readonly length: number | undefined
  readonly limit: number | undefined
  readonly value: number | undefined
  constructor(fields: FrameErrorFields) {
    this.kind = fields.kind
    this.streamId = fields.streamId ?? 0
    this.frameType = fields.frameType
    this.length = fields.length
    this.limit = fields.limit
    this.value = fields.value
  }

  /** A one-line description for logs, built from the fields. */
  get message(): string {
    switch (this.kind) {
      case "BadVersion":
        return `unsupported version ${this.value}`
      case "BadType":
        return `unknown frame type ${this.value}`
      case "BadFlags":
        return this.frameType === FrameType.Ping && ((this.value ?? 0) & ~ALL_FLAGS) === 0
          ? "PING with FIN or RST"
          : `unknown flag bits 0x${((this.value ?? 0) & ~ALL_FLAGS).toString(16)} on ${typeName(this.frameType)}`
      case "BadStreamId":
        return `${typeName(this.frameType)} on stream ${this.streamId}`
      case "FrameTooLarge":
        return `DATA length ${this.length} exceeds the maximum ${this.limit}`
      case "WindowExceeded":
        return `stream ${this.streamId}: DATA of ${this.length} bytes exceeds the receive window of ${this.limit}`
      default:
        return `unexpected ${typeName(this.frameType)} on stream ${this.streamId}`
    }
  }
}

/**
 * A decoded frame header, before any payload.
 *
 * @since 0.1.0
 * @category models
 */
export interface Header {
  readonly type: FrameType
  readonly flags: number
  readonly streamId: number
  readonly length: number
}

/**
 * Decoder options.
 *
 * @since 0.1.0
 * @category models
 */
export interface DecoderOptions {
  /** Largest DATA payload accepted at all (default: 16 MiB, a hard sanity bound). */
  readonly maxDataLength?: number
  /**
   * Called once per header after the static checks; return an error to fail the stream of input
   * (the session uses it to check DATA length against the stream's receive window).
   */
  readonly validate?: (header: Header) => FrameError | undefined
  /**
   * Deliver a DATA payload as it arrives instead of whole (default false). A payload that spans
   * input chunks is then returned as consecutive DATA frames of its stream, one per chunk it lies
   * in, each a zero-copy view (`length` is that part's size): the first carries the header's SYN
   * and ACK, the last its FIN and RST, any between no flags; {@link Decoder.inFrame} tells whether
   * the frame just returned was such a part with more to come. The header is still validated once,
   * before any of it. For the session, whose streams take DATA in pieces anyway: a frame that
   * spans socket reads (most do, when frames and reads are both 64 KiB) costs no copy and no
   * allocation.
   */
  readonly fragments?: boolean
}

/**
 * Default hard bound on one DATA frame's payload.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_DATA_LENGTH = 16 * 1024 * 1024

/**
 * Checks the rules that need no session state; returns an error or undefined.
 *
 * @since 0.1.0
 * @category decoding
 */
export const checkHeader = (h: Header, maxDataLength: number): FrameError | undefined => {
  const where = { streamId: h.streamId, frameType: h.type }
  if (h.type > FrameType.GoAway) return new FrameError({ kind: "BadType", ...where, value: h.type })
  if ((h.flags & ~ALL_FLAGS) !== 0) return new FrameError({ kind: "BadFlags", ...where, value: h.flags })
  switch (h.type) {
    case FrameType.Data:
    case FrameType.WindowUpdate:
      if (h.streamId === 0) return new FrameError({ kind: "BadStreamId", ...where })
      if (h.type === FrameType.Data && h.length > maxDataLength) {
        return new FrameError({ kind: "FrameTooLarge", ...where, length: h.length, limit: maxDataLength })
      }
      return undefined
    case FrameType.Ping:
      if (h.streamId !== 0) return new FrameError({ kind: "BadStreamId", ...where })
      if ((h.flags & (Flags.FIN | Flags.RST)) !== 0)
        return new FrameError({ kind: "BadFlags", ...where, value: h.flags })
      return undefined
    default:
      if (h.streamId !== 0) return new FrameError({ kind: "BadStreamId", ...where })
      return undefined
  }
}

/** The flags a fragmented DATA frame carries on its last part (the rest ride on its first). */
const TAIL_FLAGS = Flags.FIN | Flags.RST

/** Spent chunk slots tolerated before the queue is compacted. */
const COMPACT_AFTER = 32

const readU32 = (b: Uint8Array, o: number): number =>
  ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0

/**
 * An incremental yamux frame decoder.
 *
 * @since 0.1.0
 * @category decoding
 */
export class Decoder {
  private readonly maxDataLength: number
  private readonly validate: ((header: Header) => FrameError | undefined) | undefined
  private readonly fragments: boolean
  /** With `fragments`: payload bytes of the current DATA frame already returned. */
  private delivered = 0
  /** With `fragments`: the frame last returned is a part, and more of its payload is to come. */
  private partOpen = false
  /** Unconsumed input chunks, consumed front to back. */
  private chunks: Array<Uint8Array> = []
  private head = 0
  private offset = 0
  private buffered = 0
  private header: Header | undefined = undefined
  private failure: FrameError | undefined = undefined
  private readonly scratch = new Uint8Array(HEADER_SIZE)

  constructor(options: DecoderOptions = {}) {
    this.maxDataLength = options.maxDataLength ?? DEFAULT_MAX_DATA_LENGTH
    this.validate = options.validate
    this.fragments = options.fragments === true
  }

  /**
   * With `fragments`: whether the frame last returned by {@link Decoder.next} is a part of a DATA
   * frame whose payload has more to come (its FIN/RST, if any, ride on a later part).
   */
  get inFrame(): boolean {
    return this.partOpen
  }

  /** Bytes received but not yet returned as frames. */
  get pendingBytes(): number {
    return this.buffered
  }

  /**
   * Where the input stops, between calls to {@link Decoder.next} that returned `undefined`: inside a
   * frame's header (some of its 12 bytes buffered), inside its body (header complete, payload not),
   * or at a frame boundary (`undefined`). Deadlines on partial input key on it.
   */
  get partial(): "header" | "body" | undefined {
    if (this.header !== undefined) return "body"
    return this.buffered > 0 && this.failure === undefined ? "header" : undefined
  }

  /**
   * How far the partial frame got (see {@link Decoder.partial}): bytes of the incomplete part
   * buffered, bytes it needs, and the stream of a DATA frame whose body is incomplete.
   */
  get progress():
    | {
        readonly part: "header" | "body"
        readonly received: number
        readonly expected: number
        readonly streamId: number
      }
    | undefined {
    const part = this.partial
    if (part === undefined) return undefined
    const header = this.header
    return header === undefined
      ? { part, received: this.buffered, expected: HEADER_SIZE, streamId: 0 }
      : { part, received: this.delivered + this.buffered, expected: header.length, streamId: header.streamId }
  }

  /** The terminal error, once one occurred. */
  get error(): FrameError | undefined {
    return this.failure
  }

  /** Appends input. Chunks are retained (not copied) until their bytes are consumed. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0 || this.failure !== undefined) return
    if (this.head === this.chunks.length) {
      this.chunks = [chunk]
      this.head = 0
      this.offset = 0
    } else {
      this.chunks.push(chunk)
    }
    this.buffered += chunk.length
  }

  /**
   * The next frame, `undefined` when more input is needed, or the terminal {@link FrameError}.
   */
  next(): Frame | FrameError | undefined {
    if (this.failure !== undefined) return this.failure
    let header = this.header
    if (header === undefined) {
      if (this.buffered < HEADER_SIZE) return undefined
      const bytes = this.take(HEADER_SIZE, true)
      if (bytes[0] !== VERSION) return this.fail(new FrameError({ kind: "BadVersion", value: bytes[0]! }))
      header = {
        type: bytes[1] as FrameType,
        flags: (bytes[2]! << 8) | bytes[3]!,
        streamId: readU32(bytes, 4),
        length: readU32(bytes, 8)
      }
      const bad = checkHeader(header, this.maxDataLength) ?? this.validate?.(header)
      if (bad !== undefined) return this.fail(bad)
      if (header.type !== FrameType.Data || header.length === 0) {
        return {
          type: header.type,
          flags: header.flags,
          streamId: header.streamId,
          length: header.length,
          payload: emptyPayload
        }
      }
      this.header = header
    }
    if (this.fragments) return this.nextPart(header)
    if (this.buffered < header.length) return undefined
    this.header = undefined
    return {
      type: header.type,
      flags: header.flags,
      streamId: header.streamId,
      length: header.length,
      payload: this.take(header.length, false)
    }
  }

  /** The next part of the DATA frame `header` (fragments mode): what the first chunk holds of it. */
  private nextPart(header: Header): Frame | undefined {
    if (this.buffered === 0) return undefined
    const first = this.chunks[this.head]!
    const rest = header.length - this.delivered
    const n = Math.min(rest, first.length - this.offset)
    const head = this.delivered === 0
    const last = n === rest
    const payload = first.subarray(this.offset, this.offset + n)
    this.offset += n
    this.buffered -= n
    if (this.offset === first.length) this.advance()
    if (last) {
      this.header = undefined
      this.delivered = 0
    } else {
      this.delivered += n
    }
    this.partOpen = !last
    const flags = head && last ? header.flags : head ? header.flags & ~TAIL_FLAGS : last ? header.flags & TAIL_FLAGS : 0
    return { type: header.type, flags, streamId: header.streamId, length: n, payload }
  }

  private fail(error: FrameError): FrameError {
    this.failure = error
    this.partOpen = false
    this.delivered = 0
    this.header = undefined
    this.chunks = []
    this.head = 0
    this.buffered = 0
    return error
  }

  /** Removes `n` buffered bytes; a view when they lie in one chunk, else a copy (or `scratch`). */
  private take(n: number, useScratch: boolean): Uint8Array {
    this.buffered -= n
    const first = this.chunks[this.head]!
    const available = first.length - this.offset
    if (available >= n) {
      const view = first.subarray(this.offset, this.offset + n)
      this.offset += n
      if (this.offset === first.length) this.advance()
      return view
    }
    const out = useScratch ? this.scratch : new Uint8Array(n)
    let filled = 0
    while (filled < n) {
      const chunk = this.chunks[this.head]!
      const count = Math.min(chunk.length - this.offset, n - filled)
      out.set(chunk.subarray(this.offset, this.offset + count), filled)
      filled += count
      this.offset += count
      if (this.offset === chunk.length) this.advance()
    }
    return out
  }

  private advance(): void {
    this.chunks[this.head] = emptyPayload
    this.head++
    this.offset = 0
    if (this.head === this.chunks.length) {
      this.chunks = []
      this.head = 0
    } else if (this.head >= COMPACT_AFTER && this.head * 2 >= this.chunks.length) {
      // When chunk boundaries never line up with frame boundaries the queue never fully drains, so
      // without this the array of spent slots would grow for the life of the connection. Copying
      // at most `head` live slots each time keeps the cost amortised O(1) per chunk.
      this.chunks = this.chunks.slice(this.head)
      this.head = 0
    }
  }
}
