/**
 * A multiplexed stream as its users see it: one client's bytes, both ways, with its own credit
 * windows. Streams are made by a session (`open`, `accept`); the implementation (buffers, windows,
 * the writer's queue) lives in `internal/session/Stream.ts`, keeps its state private and is driven
 * by the session alone.
 *
 * Invariants:
 * - A stream is a {@link Transport}: `read` yields `null` once the peer's FIN was read, `write`
 *   waits only while more than `writeBufferSize` bytes are queued, `closeWrite` is FIN, `reset` RST.
 * - `state` is the stream's place in the yamux lifecycle, read-only: it changes only through the
 *   session's state machine.
 * - Every wait ends when the stream is reset, the session dies, or the fiber is interrupted.
 *
 * @since 0.1.0
 */
import type { Effect, Exit, Scope } from "effect"
import { endStream, scopedStream as scoped } from "../internal/session/Stream.ts"
import type { StreamState } from "../internal/session/StreamState.ts"
import type { DirectPort, Transport } from "../transport/Transport.ts"
import type { MuxError } from "./MuxError.ts"

export type {
  /**
   * Where a stream is in its life: `SynSent`, `SynReceived`, `Established`, `LocalClosed` (we sent
   * FIN), `RemoteClosed` (the peer did), `Closed` (both did) or `Reset`.
   *
   * @since 0.1.0
   * @category models
   */
  StreamState
} from "../internal/session/StreamState.ts"

/**
 * A multiplexed stream. As a {@link Transport} it plugs into the same pumps as a socket; its
 * `directPort` lets a splice move its bytes from the session's core straight to a socket.
 *
 * @since 0.1.0
 * @category models
 */
export interface MuxStream extends Transport<MuxError> {
  /** The yamux stream id: odd when the dialling side opened it, even for the listening side. */
  readonly id: number
  /** Whether this side opened the stream. */
  readonly local: boolean
  /** Where the stream is in its lifecycle. */
  readonly state: StreamState
  /** Reads everything until the peer's FIN (for tests and small handlers). */
  readonly readAll: Effect.Effect<Uint8Array, MuxError>
  /** FIN, then waits for the peer's FIN; resets the stream if that takes longer than the close timeout. */
  readonly close: Effect.Effect<void>
  /** The stream as a callback-level port, unless a fiber is reading it or a splice holds it. */
  readonly directPort: () => DirectPort<MuxError> | undefined
}

/**
 * The stream bound to the current scope: scope exit closes it (FIN, then the stream lingers until
 * the peer's FIN or the close timeout), interruption or failure resets it (RST).
 *
 * @since 0.1.0
 * @category constructors
 */
export const scopedStream: <S extends MuxStream>(stream: S) => Effect.Effect<S, never, Scope.Scope> = scoped

/**
 * Ends a stream the way its scope would, for code that owns a stream without a scope (a server's
 * handler runner): a successful `exit` sends FIN and lets go of unread input, any other sends RST.
 *
 * @since 0.1.0
 * @category combinators
 */
export const endWith: (stream: MuxStream, exit: Exit.Exit<unknown, unknown>) => Effect.Effect<void> = endStream
