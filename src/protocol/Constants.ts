/**
 * Every yamux wire constant, each with a note of when it is used.
 *
 * Invariants: values match hashicorp/yamux `spec.md` byte for byte; nothing here
 * depends on Effect or on a runtime, so the codec and tests share one source of truth.
 *
 * @since 0.1.0
 */

/**
 * The only protocol version yamux defines; any other value is a protocol error.
 *
 * @since 0.1.0
 * @category constants
 */
export const VERSION = 0

/**
 * Size of every frame header on the wire.
 *
 * @since 0.1.0
 * @category constants
 */
export const HEADER_SIZE = 12

/**
 * Frame types (byte 1 of the header).
 *
 * @since 0.1.0
 * @category constants
 */
export const FrameType = {
  /** Carries `length` payload bytes for one stream. */
  Data: 0,
  /** Grants `length` more bytes of receive window to the peer (a delta, not an absolute). */
  WindowUpdate: 1,
  /** Session liveness: SYN asks, ACK answers with the same opaque value. */
  Ping: 2,
  /** Session shutdown notice; `length` carries a {@link GoAwayCode}. */
  GoAway: 3
} as const

/**
 * A frame type value.
 *
 * @since 0.1.0
 * @category models
 */
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

/**
 * Flag bits (bytes 2-3 of the header). Several may be set at once.
 *
 * @since 0.1.0
 * @category constants
 */
export const Flags = {
  /** Opens a stream (DATA/WINDOW_UPDATE) or asks for a pong (PING). */
  SYN: 1,
  /** Accepts a stream (DATA/WINDOW_UPDATE) or answers a ping (PING). */
  ACK: 2,
  /** Half-closes the sender's direction of a stream. */
  FIN: 4,
  /** Aborts a stream in both directions. */
  RST: 8
} as const

/**
 * Bitmask of all flags defined by the spec; other bits are a protocol error.
 *
 * @since 0.1.0
 * @category constants
 */
export const ALL_FLAGS = 0xf

/**
 * GO_AWAY codes (the `length` field of a GO_AWAY frame).
 *
 * @since 0.1.0
 * @category constants
 */
export const GoAwayCode = {
  /** Graceful shutdown: no new streams, existing ones drain. */
  Normal: 0,
  /** The peer broke the protocol. */
  ProtocolError: 1,
  /** The sender failed internally. */
  InternalError: 2
} as const

/**
 * A GO_AWAY code value.
 *
 * @since 0.1.0
 * @category models
 */
export type GoAwayCode = (typeof GoAwayCode)[keyof typeof GoAwayCode]

/**
 * Stream 0 is the session itself: only PING and GO_AWAY use it.
 *
 * @since 0.1.0
 * @category constants
 */
export const SESSION_STREAM_ID = 0

/**
 * Largest stream id representable in the 32-bit field; ids are never reused.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_STREAM_ID = 0xffff_ffff

/**
 * Largest value of the 32-bit length field (also the largest window).
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_UINT32 = 0xffff_ffff

/**
 * The receive window every stream starts with, fixed by the spec.
 *
 * @since 0.1.0
 * @category constants
 */
export const INITIAL_WINDOW = 256 * 1024

/**
 * Largest DATA payload plait sends in one frame, so streams interleave fairly.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_FRAME = 64 * 1024
