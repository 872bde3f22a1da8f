/**
 * The one error of the resumption domain: `ResumeError`, whose `reason` says what happened.
 *
 * Invariants: every reason says whether a *fresh* session may succeed where this one failed
 * (`isRetryable`), and every reason has a defined outcome:
 * - `Malformed`, `ProtocolViolation`, `Aborted`, `Expired`, `Refused`, `PeerUnverified`,
 *   `Closed`: the resumable session is over for good. The transport beneath the yamux session
 *   fails with a `TransportError` whose `cause` is this error, so the session fails as it does on
 *   a lost link today: every stream is reset promptly, the proxy's link dials a fresh session.
 * - A lost *connection* is not an error of this domain: the resumable transport suspends and
 *   waits for a resume, bounded by the resume window (then `Expired`).
 * Callers match on `error.reason._tag`.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * Why bytes are not this protocol: a handshake message or a data-phase record that cannot be
 * parsed. Terminal for the connection it arrived on; in the data phase, for the whole session.
 *
 * @since 0.1.0
 * @category errors
 */
export type MalformedKind =
  /** The four magic bytes of a handshake message are not `PLRS`. */
  | "BadMagic"
  /** A handshake message of a version this side does not speak. */
  | "BadVersion"
  /** An unknown message or record type, or one that is not allowed at this point. */
  | "BadType"
  /** A handshake body whose length is not the one its type defines. */
  | "BadLength"
  /** A DATA record that is empty or longer than the largest record payload (1 MiB). */
  | "BadRecordLength"
  /** A 64-bit position beyond 2^53-1 (the largest this implementation counts). */
  | "PositionTooLarge"
  /** A refusal code this side does not know. */
  | "BadRefusal"
  /** The peer closed the connection in the middle of a message. */
  | "Truncated"

/**
 * The peer sent bytes that are not the resumption protocol.
 *
 * @since 0.1.0
 * @category errors
 */
export class Malformed extends Data.TaggedError("Malformed")<{
  readonly kind: MalformedKind
  readonly message: string
}> {
  /** A peer that sends garbage will do so again; a fresh session (or a fixed peer) may not. */
  get isRetryable(): boolean {
    return true
  }
}

/**
 * How a data-phase record broke the byte accounting.
 *
 * @since 0.1.0
 * @category errors
 */
export type ViolationKind =
  /** An ACK for bytes never sent on this connection. */
  | "AckBeyondSent"
  /** An ACK below an earlier one (positions only grow). */
  | "AckBackwards"
  /** END at a position other than the bytes received. */
  | "EndMismatch"
  /** DATA after the peer's END. */
  | "DataAfterEnd"
  /** More unacknowledged bytes than the agreed buffer: a peer that does not honour the bound. */
  | "BufferOverrun"

/**
 * The peer's positions contradict each other: a buggy or hostile peer.
 *
 * @since 0.1.0
 * @category errors
 */
export class ProtocolViolation extends Data.TaggedError("ProtocolViolation")<{
  readonly kind: ViolationKind
  readonly message: string
}> {
  get isRetryable(): boolean {
    return true
  }
}

/**
 * Why a server refused a resume request. Each has a one-byte wire code (see `docs/resume.md`).
 *
 * @since 0.1.0
 * @category errors
 */
export type RefusalReason =
  /** No session with that ticket (never issued, ended for good, or the server restarted). */
  | "UnknownTicket"
  /** The session existed but its resume window ran out. */
  | "Expired"
  /** The proof does not verify: the requester does not hold the session's secret. */
  | "BadProof"
  /** The requester asks for bytes no longer in the server's replay buffer, or never sent. */
  | "PositionIncompatible"
  /** A valid proof for an attempt number already used: a recorded request played again. */
  | "Replayed"
  /** Too many failed proofs for this ticket: it is revoked and its session ended. */
  | "TooManyAttempts"
  /** The server does not resume sessions (resumption disabled, or an unknown version). */
  | "Unsupported"

/**
 * The server refused to resume the session.
 *
 * @since 0.1.0
 * @category errors
 */
export class Refused extends Data.TaggedError("Refused")<{
  readonly reason: RefusalReason
}> {
  /** The old session is gone; a fresh one can be started at once. */
  get isRetryable(): boolean {
    return true
  }
  override get message(): string {
    return `resume refused: ${refusalText[this.reason]}`
  }
}

/**
 * Human-readable text of each refusal, for logs.
 *
 * @since 0.1.0
 * @category errors
 */
export const refusalText: { readonly [K in RefusalReason]: string } = {
  UnknownTicket: "the server knows no session with this ticket (restarted, or the session ended)",
  Expired: "the session's resume window ran out",
  BadProof: "the proof of the session secret does not verify",
  PositionIncompatible: "the requested position is no longer in the replay buffer",
  Replayed: "this resume attempt was already used (a replayed request)",
  TooManyAttempts: "too many failed attempts: the ticket is revoked",
  Unsupported: "the server does not resume sessions"
}

/**
 * The accepting peer could not prove it holds the session secret (a different token, or a machine
 * in the middle): the dialler refuses to continue over it.
 *
 * @since 0.1.0
 * @category errors
 */
export class PeerUnverified extends Data.TaggedError("PeerUnverified")<{
  readonly message: string
}> {
  get isRetryable(): boolean {
    return true
  }
}

/**
 * No resume completed within the resume window after the connection was lost.
 *
 * @since 0.1.0
 * @category errors
 */
export class Expired extends Data.TaggedError("Expired")<{
  readonly windowMillis: number
  /** What ended the last connection. */
  readonly lastLoss: string
}> {
  get isRetryable(): boolean {
    return true
  }
  override get message(): string {
    return `the link was not resumed within ${this.windowMillis} ms (last loss: ${this.lastLoss})`
  }
}

/**
 * The peer ended the resumable session for good (its session failed or was aborted).
 *
 * @since 0.1.0
 * @category errors
 */
export class Aborted extends Data.TaggedError("Aborted")<{
  readonly code: number
}> {
  get isRetryable(): boolean {
    return true
  }
  override get message(): string {
    return `the peer aborted the session (code ${this.code})`
  }
}

/**
 * The resumable transport was closed or reset locally.
 *
 * @since 0.1.0
 * @category errors
 */
export class Closed extends Data.TaggedError("Closed")<{
  readonly message: string
}> {
  get isRetryable(): boolean {
    return false
  }
}

/**
 * Every reason a resumable session can end.
 *
 * @since 0.1.0
 * @category errors
 */
export type ResumeErrorReason = Malformed | ProtocolViolation | Refused | PeerUnverified | Expired | Aborted | Closed

/**
 * The error of the resumption layer. Match on `reason._tag`.
 *
 * @since 0.1.0
 * @category errors
 */
export class ResumeError extends Data.TaggedError("ResumeError")<{
  readonly reason: ResumeErrorReason
}> {
  /** Whether a fresh session may succeed. */
  get isRetryable(): boolean {
    return this.reason.isRetryable
  }
  override get message(): string {
    return `${this.reason._tag}: ${this.reason.message}`
  }
}

/**
 * Why a resume failed, as a bounded code (metrics labels): the refusal's reason, `Expired` (no
 * resume within the window) or `PeerUnverified` (the peer could not prove the session secret).
 *
 * @since 0.1.0
 * @category errors
 */
export type ResumeFailureCode = RefusalReason | "Expired" | "PeerUnverified"

/**
 * The failure code of `error` when it is a failed resume (else `undefined`: the session ended for
 * another reason — closed, aborted, a protocol violation).
 *
 * @since 0.1.0
 * @category errors
 */
export const failureCode = (error: ResumeError): ResumeFailureCode | undefined => {
  const reason = error.reason
  if (reason._tag === "Refused") return reason.reason
  if (reason._tag === "Expired" || reason._tag === "PeerUnverified") return reason._tag
  return undefined
}

/**
 * Wraps a reason into a {@link ResumeError}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resumeError = (reason: ResumeErrorReason): ResumeError => new ResumeError({ reason })

/**
 * A {@link Malformed} {@link ResumeError}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const malformed = (kind: MalformedKind, message: string): ResumeError =>
  resumeError(new Malformed({ kind, message }))

/**
 * A {@link ProtocolViolation} {@link ResumeError}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const violation = (kind: ViolationKind, message: string): ResumeError =>
  resumeError(new ProtocolViolation({ kind, message }))
