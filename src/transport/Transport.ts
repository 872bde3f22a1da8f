/**
 * The byte pipe a session runs over.
 *
 * Invariants:
 * - `read` is pull-based: the adapter stops reading from the OS while nobody pulls, so a session
 *   whose buffers are full exerts backpressure all the way to the peer's socket.
 * - `read` returns `null` exactly once the peer has half-closed (EOF) and all bytes were delivered.
 * - `write` completes once the bytes are accepted by the OS (or an in-memory peer) within the
 *   adapter's high-water mark; it never resolves for bytes that were dropped.
 * - `closeWrite` half-closes (TCP FIN); `close` ends both directions gracefully; `reset` aborts
 *   (TCP RST where the runtime allows it). All three are idempotent and never fail.
 * - Every operation is interruptible and ends promptly once the transport is closed or reset.
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import { Data } from "effect"

/**
 * Why a transport operation failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class TransportError extends Data.TaggedError("TransportError")<{
  readonly operation: "read" | "write" | "connect" | "listen" | "handshake"
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * A bidirectional byte pipe: a TCP socket, a TLS socket, an in-memory pair — or, with `E` set to the
 * session's error, a multiplexed stream, so one pump serves both legs of a proxied connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface Transport<E = TransportError> {
  /** Next bytes from the peer; `null` at end of input. */
  readonly read: Effect.Effect<Uint8Array | null, E>
  /** Sends the chunks in order (gathered into as few OS writes as the runtime allows). */
  readonly write: (chunks: ReadonlyArray<Uint8Array>) => Effect.Effect<void, E>
  /** Half-closes the write side (TCP FIN). */
  readonly closeWrite: Effect.Effect<void>
  /** Closes both directions gracefully. */
  readonly close: Effect.Effect<void>
  /** Aborts the connection (TCP RST where supported). */
  readonly reset: Effect.Effect<void>
  /** A human-readable peer address for logs, e.g. `127.0.0.1:53122`. */
  readonly remoteAddress: string
  /**
   * Its reads complete from event-loop I/O callbacks (a socket), never from microtasks alone: a
   * session may then defer its writer to the end of the event-loop turn and send everything that
   * turn queued in one write. Unset (an in-memory pair) keeps the writer on microtask wake-ups.
   */
  readonly eventLoopDriven?: boolean
  /**
   * The transport's callback-level port, when it has one and nobody is reading it: {@link splice}
   * then joins two such transports with no fiber per chunk. `undefined` falls back to fiber pumps.
   */
  readonly directPort?: () => DirectPort<E> | undefined
}

/**
 * Receives a {@link DirectPort}'s events. Called synchronously from I/O callbacks or from a session's
 * core step, so it must not run fibers or wait; it may call the ports' own methods.
 * @since 0.1.0
 * @category models
 */
export interface DirectListener<E> {
  /** Bytes from the peer, in order. */
  readonly input: (chunk: Uint8Array) => void
  /** The peer half-closed and every byte was delivered. Called once. */
  readonly inputEnd: () => void
  /** Output that was refused by {@link DirectPort.send} (returned `false`) has drained. */
  readonly writable: () => void
  /** The port failed (reset, closed under us, session lost). */
  readonly failure: (error: E) => void
}

/**
 * A transport driven by callbacks instead of fibers: the hot path of a proxied connection, where a
 * fiber hop per chunk costs more than the bytes. Input flows to the attached listener while resumed;
 * output is accepted synchronously with a high-water verdict.
 *
 * @since 0.1.0
 * @category models
 */
export interface DirectPort<E> {
  /** Routes input and events to `listener` (none delivered until {@link DirectPort.resumeInput}). */
  readonly attach: (listener: DirectListener<E>) => void
  /** Stops routing events; the transport returns to `read`/`write`. */
  readonly detach: () => void
  /** Stops input (backpressure on the peer) until {@link DirectPort.resumeInput}. */
  readonly pauseInput: () => void
  /** Delivers buffered input (and end or failure) to the listener, then lets input flow. */
  readonly resumeInput: () => void
  /** Queues bytes for the peer; `false` when above the high-water mark (then `writable` follows). */
  readonly send: (chunk: Uint8Array) => boolean
  /** Half-closes the output after the queued bytes (FIN). */
  readonly sendEnd: () => void
  /** Aborts both directions (RST). */
  readonly abort: () => void
}
