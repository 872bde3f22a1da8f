/**
 * Frames and header encoding: the sans-IO half that turns frames into bytes.
 *
 * Invariants: a header is exactly {@link HEADER_SIZE} big-endian bytes; only DATA frames carry
 * payload bytes on the wire (for the other types `length` is a value, not a byte count); encoding
 * never copies a payload — callers send header and payload as separate chunks.
 *
 * @since 0.1.0
 */
import { FrameType, HEADER_SIZE } from "./Constants.ts"

/**
 * A decoded or to-be-encoded yamux frame.
 *
 * @since 0.1.0
 * @category models
 */
export interface Frame {
  readonly type: FrameType
  readonly flags: number
  readonly streamId: number
  /** DATA: payload size; WINDOW_UPDATE: credit delta; PING: opaque value; GO_AWAY: code. */
  readonly length: number
  /** DATA payload (empty for every other type). */
  readonly payload: Uint8Array
}

const EMPTY = new Uint8Array(0)

/**
 * An empty payload, shared so control frames allocate nothing for it.
 *
 * @since 0.1.0
 * @category constants
 */
export const emptyPayload: Uint8Array = EMPTY

/**
 * Writes a 12-byte header into `target` at `offset`; returns the offset after it.
 *
 * @since 0.1.0
 * @category encoding
 */
export const writeHeader = (
  target: Uint8Array,
  offset: number,
  type: FrameType,
  flags: number,
  streamId: number,
  length: number
): number => {
  target[offset] = 0
  target[offset + 1] = type
  target[offset + 2] = (flags >>> 8) & 0xff
  target[offset + 3] = flags & 0xff
  target[offset + 4] = (streamId >>> 24) & 0xff
  target[offset + 5] = (streamId >>> 16) & 0xff
  target[offset + 6] = (streamId >>> 8) & 0xff
  target[offset + 7] = streamId & 0xff
  target[offset + 8] = (length >>> 24) & 0xff
  target[offset + 9] = (length >>> 16) & 0xff
  target[offset + 10] = (length >>> 8) & 0xff
  target[offset + 11] = length & 0xff
  return offset + HEADER_SIZE
}

/**
 * Encodes one header into a fresh 12-byte array.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeHeader = (type: FrameType, flags: number, streamId: number, length: number): Uint8Array => {
  const out = new Uint8Array(HEADER_SIZE)
  writeHeader(out, 0, type, flags, streamId, length)
  return out
}

/**
 * Encodes a whole frame (header then payload) into one array; for tests and small control frames.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeFrame = (frame: Frame): Uint8Array => {
  const payload = frame.type === FrameType.Data ? frame.payload : EMPTY
  const out = new Uint8Array(HEADER_SIZE + payload.length)
  writeHeader(out, 0, frame.type, frame.flags, frame.streamId, frame.length)
  out.set(payload, HEADER_SIZE)
  return out
}

/**
 * Builds a DATA frame; `length` is taken from the payload.
 *
 * @since 0.1.0
 * @category constructors
 */
export const data = (streamId: number, flags: number, payload: Uint8Array): Frame => ({
  type: FrameType.Data,
  flags,
  streamId,
  length: payload.length,
  payload
})

/**
 * Builds a WINDOW_UPDATE frame granting `delta` bytes (also the carrier of control-only flags).
 *
 * @since 0.1.0
 * @category constructors
 */
export const windowUpdate = (streamId: number, flags: number, delta: number): Frame => ({
  type: FrameType.WindowUpdate,
  flags,
  streamId,
  length: delta,
  payload: EMPTY
})

/**
 * Builds a PING frame (flags SYN to ask, ACK to answer) on stream 0.
 *
 * @since 0.1.0
 * @category constructors
 */
export const ping = (flags: number, opaque: number): Frame => ({
  type: FrameType.Ping,
  flags,
  streamId: 0,
  length: opaque >>> 0,
  payload: EMPTY
})

/**
 * Builds a GO_AWAY frame carrying `code` on stream 0.
 *
 * @since 0.1.0
 * @category constructors
 */
export const goAway = (code: number): Frame => ({
  type: FrameType.GoAway,
  flags: 0,
  streamId: 0,
  length: code,
  payload: EMPTY
})
