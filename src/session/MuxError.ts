/**
 * The one error of the multiplexing domain: `MuxError`, whose `reason` says what happened.
 *
 * Invariants: every reason knows the GO_AWAY code a session sends when that reason ends it, and
 * whether retrying the operation (typically on a new session) can help. Callers match on
 * `error.reason._tag`.
 *
 * @since 0.1.0
 */
import { Data } from "effect"
import { GoAwayCode } from "../protocol/Constants.ts"

/**
 * The peer sent bytes or frames that break the yamux protocol.
 *
 * @since 0.1.0
 * @category errors
 */
export class ProtocolError extends Data.TaggedError("ProtocolError")<{
  readonly kind: string
  readonly message: string
  readonly streamId: number
}> {
  /** GO_AWAY code a session sends when this ends it. */
  get goAwayCode(): number {
    return GoAwayCode.ProtocolError
  }
  /** A peer that breaks the protocol will do so again. */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The peer sent more DATA than the stream's receive window allowed.
 *
 * @since 0.1.0
 * @category errors
 */
export class WindowExceeded extends Data.TaggedError("WindowExceeded")<{
  readonly streamId: number
  readonly length: number
  readonly window: number
}> {
  get goAwayCode(): number {
    return GoAwayCode.ProtocolError
  }
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    return `stream ${this.streamId}: DATA of ${this.length} bytes exceeds the receive window of ${this.window}`
  }
}

/**
 * The stream was reset, by the peer (`remote`) or locally.
 *
 * @since 0.1.0
 * @category errors
 */
export class StreamReset extends Data.TaggedError("StreamReset")<{
  readonly streamId: number
  readonly remote: boolean
}> {
  get goAwayCode(): number {
    return GoAwayCode.Normal
  }
  /** A reset stream's bytes are gone; only the application can decide to start over. */
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    return `stream ${this.streamId} was reset ${this.remote ? "by the peer" : "locally"}`
  }
}

/**
 * The stream's write side is already closed (FIN sent); nothing more can be written.
 *
 * @since 0.1.0
 * @category errors
 */
export class StreamClosed extends Data.TaggedError("StreamClosed")<{
  readonly streamId: number
}> {
  get goAwayCode(): number {
    return GoAwayCode.Normal
  }
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    return `stream ${this.streamId}: write after close`
  }
}

/**
 * The peer sent GO_AWAY: no new streams on this session (code 0), or the session ended (other codes).
 *
 * @since 0.1.0
 * @category errors
 */
export class RemoteGoAway extends Data.TaggedError("RemoteGoAway")<{
  readonly code: number
}> {
  get goAwayCode(): number {
    return GoAwayCode.Normal
  }
  /** A new session may accept what this one refused. */
  get isRetryable(): boolean {
    return true
  }
  override get message(): string {
    return `the peer sent GO_AWAY(${this.code})`
  }
}

/**
 * The session is closed (locally, or the peer ended the link).
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionClosed extends Data.TaggedError("SessionClosed")<{
  readonly message: string
}> {
  get goAwayCode(): number {
    return GoAwayCode.Normal
  }
  get isRetryable(): boolean {
    return true
  }
}

/**
 * No frame and no pong arrived within keepalive interval + timeout: the link is presumed dead.
 *
 * @since 0.1.0
 * @category errors
 */
export class KeepaliveTimeout extends Data.TaggedError("KeepaliveTimeout")<{
  readonly timeoutMillis: number
}> {
  get goAwayCode(): number {
    return GoAwayCode.InternalError
  }
  get isRetryable(): boolean {
    return true
  }
  override get message(): string {
    return `no pong within ${this.timeoutMillis} ms: the link is presumed dead`
  }
}

/**
 * The peer did not ACK a stream within the open timeout; that stream was reset.
 *
 * @since 0.1.0
 * @category errors
 */
export class OpenTimeout extends Data.TaggedError("OpenTimeout")<{
  readonly streamId: number
  readonly timeoutMillis: number
}> {
  get goAwayCode(): number {
    return GoAwayCode.Normal
  }
  get isRetryable(): boolean {
    return true
  }
  override get message(): string {
    return `stream ${this.streamId} was not acknowledged within ${this.timeoutMillis} ms`
  }
}

/**
 * Every stream id of this session has been used; open streams on a new session.
 *
 * @since 0.1.0
 * @category errors
 */
export class StreamsExhausted extends Data.TaggedError("StreamsExhausted")<{}> {
  get goAwayCode(): number {
    return GoAwayCode.Normal
  }
  get isRetryable(): boolean {
    return true
  }
  override get message(): string {
    return "stream ids exhausted on this session"
  }
}

/**
 * This side reset so many streams it had just opened (a proxy's clients connecting and resetting at
 * once) that one more would bring the peer's rapid-reset budget (`maxResetsPerSecond`, assumed equal
 * to ours) within reach, which would end the session for every stream on it: no new stream opens
 * until the current second is over. Open streams are untouched.
 *
 * @since 0.1.0
 * @category errors
 */
export class OpenThrottled extends Data.TaggedError("OpenThrottled")<{
  /** Streams this side opened and reset within a second of opening, in the current window. */
  readonly resets: number
}> {
  get goAwayCode(): number {
    return GoAwayCode.Normal
  }
  get isRetryable(): boolean {
    return true
  }
  override get message(): string {
    return `${this.resets} streams opened and reset within a second: no new stream until the second is over (the peer's rapid-reset budget would end the session)`
  }
}

/**
 * The transport beneath the session failed (socket error, reset, EOF mid-frame).
 *
 * @since 0.1.0
 * @category errors
 */
export class TransportFailed extends Data.TaggedError("TransportFailed")<{
  readonly message: string
  readonly cause?: unknown
}> {
  get goAwayCode(): number {
    return GoAwayCode.InternalError
  }
  get isRetryable(): boolean {
    return true
  }
}

/**
 * A flood budget a session enforces on its peer (see `SessionConfig`).
 *
 * @since 0.1.0
 * @category models
 */
export type FloodBudget =
  | "maxPingsPerSecond"
  | "maxRefusedSynsPerSecond"
  | "maxResetsPerSecond"
  | "maxWindowUpdatesPerSecond"
  | "maxControlBacklog"

const BUDGET_WHAT: { readonly [K in FloodBudget]: string } = {
  maxPingsPerSecond: "pings in one second",
  maxRefusedSynsPerSecond: "SYNs that had to be refused in one second",
  maxResetsPerSecond: "RSTs of streams it had just opened in one second",
  maxWindowUpdatesPerSecond: "credit-only WINDOW_UPDATEs and empty DATA frames in one second",
  maxControlBacklog: "control frames queued without reading them"
}

/**
 * The peer exceeded a flood budget (pings, refused SYNs, rapid resets, empty frames per second,
 * or unread control frames): the session sent GO_AWAY(1) and closed.
 *
 * @since 0.1.0
 * @category errors
 */
export class BudgetExceeded extends Data.TaggedError("BudgetExceeded")<{
  /** Which budget. */
  readonly budget: FloodBudget
  /** Its configured value. */
  readonly limit: number
}> {
  get goAwayCode(): number {
    return GoAwayCode.ProtocolError
  }
  /** A peer that floods once will flood again. */
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    return `the peer exceeded ${this.budget}: more than ${this.limit} ${BUDGET_WHAT[this.budget]}`
  }
}

/**
 * A frame header or body started arriving and did not complete within `frameTimeoutMillis`: the
 * session sent GO_AWAY(1) and closed.
 *
 * @since 0.1.0
 * @category errors
 */
export class FrameTimeout extends Data.TaggedError("FrameTimeout")<{
  /** Which part of the frame was incomplete. */
  readonly part: "header" | "body"
  /** The DATA frame's stream (0 for a header). */
  readonly streamId: number
  /** Bytes of that part received. */
  readonly received: number
  /** Bytes of that part expected (12 for a header). */
  readonly expected: number
  readonly timeoutMillis: number
}> {
  get goAwayCode(): number {
    return GoAwayCode.ProtocolError
  }
  /** The peer (or the path) is too slow for the deadline; a new session may fare better. */
  get isRetryable(): boolean {
    return true
  }
  override get message(): string {
    const what = this.part === "header" ? "a frame header" : `the body of a DATA frame on stream ${this.streamId}`
    return `${what} stalled at ${this.received} of ${this.expected} bytes for ${this.timeoutMillis} ms`
  }
}

/**
 * Every reason a multiplexing operation can fail.
 *
 * @since 0.1.0
 * @category models
 */
export type MuxErrorReason =
  | ProtocolError
  | WindowExceeded
  | StreamReset
  | StreamClosed
  | RemoteGoAway
  | SessionClosed
  | KeepaliveTimeout
  | OpenTimeout
  | StreamsExhausted
  | TransportFailed
  | BudgetExceeded
  | FrameTimeout
  | OpenThrottled

/**
 * The error of every session and stream operation. Match on `reason._tag`.
 *
 * @since 0.1.0
 * @category errors
 */
export class MuxError extends Data.TaggedError("MuxError")<{
  readonly reason: MuxErrorReason
}> {
  /** GO_AWAY code for the reason. */
  get goAwayCode(): number {
    return this.reason.goAwayCode
  }
  /** Whether retrying (on a new session where relevant) can help. */
  get isRetryable(): boolean {
    return this.reason.isRetryable
  }
  override get message(): string {
    return `${this.reason._tag}: ${this.reason.message}`
  }
}

/**
 * Wraps a reason into a {@link MuxError}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const muxError = (reason: MuxErrorReason): MuxError => new MuxError({ reason })
