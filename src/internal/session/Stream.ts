/**
 * The implementation of {@link MuxStream}: one client's bytes, both ways, with its own credit windows.
 *
 * Invariants:
 * - All state is private (`#` fields). Three parties reach it, each through its own narrow view:
 *   users through {@link MuxStream} (read, write, half-close, reset), the session core through
 *   {@link CoreStream} (frames in, acceptance, timers, death), the writer through
 *   {@link OutboundStream} (how much may be framed, and taking those bytes). Nobody edits a
 *   stream's queues or windows from outside.
 * - State changes go through {@link StreamState.transition} only, in one private method.
 * - The receive buffer never holds more than the window granted to the peer: DATA is checked
 *   against `recvWindow` at header time (by the session) before it reaches `onData`.
 * - Credit is returned (WINDOW_UPDATE) once half the window has been consumed by the reader, so a
 *   reader that stops reading stops its peer after at most one window — and stalls nobody else.
 * - `write` queues bytes for the session's writer and waits only while more than
 *   `writeBufferSize` bytes are queued; the writer frames them as the peer's window allows.
 * - Every wait ends when the stream is reset, the session dies, or the fiber is interrupted.
 * - Spliced (as a {@link DirectPort}), DATA goes from the session's read step straight to the
 *   listener and is credited at once; a paused listener leaves it queued and uncredited, so a slow
 *   socket on the other side of a splice stops this stream's peer after one window, like a slow
 *   reader. Wake-ups that would re-enter the core mid-step (`writable`) go through a microtask.
 *
 * @since 0.1.0
 */
import { Effect, Exit, type Scope } from "effect"
import { Flags, FrameType } from "../../protocol/Constants.ts"
import type { SessionConfig } from "../../session/Config.ts"
import { type MuxError, muxError, StreamClosed, StreamReset } from "../../session/MuxError.ts"
import type { MuxStream } from "../../session/MuxStream.ts"

export type {
  /** The public interface this module implements (re-exported for the modules that import it from here). */
  MuxStream
} from "../../session/MuxStream.ts"

import { readAll } from "../../transport/Splice.ts"
import type { DirectListener, DirectPort } from "../../transport/Transport.ts"
import { defer, Signal } from "./Signal.ts"
import { canReceive, canWrite, isTerminal, type StreamEvent, type StreamState, transition } from "./StreamState.ts"

/** What a stream needs from its session; implemented by the session core. */
export interface StreamHost {
  readonly config: SessionConfig
  /** Queues a control frame (header only) ahead of all data. */
  control(type: FrameType, flags: number, streamId: number, length: number): void
  /** The stream has DATA or a FIN that the writer may send. */
  ready(stream: OutboundStream): void
  /** The stream reached a terminal state: drop it from the registry. */
  release(stream: CoreStream): void
  /** The stream queued its FIN (`closeWrite`): start its close timeout. */
  closing(stream: CoreStream): void
  /** `bytes` entered receive buffers (session-wide accounting). */
  buffered(bytes: number): void
  /** `bytes` left a receive buffer (session-wide accounting). */
  consumed(bytes: number): void
  /** Whether window auto-tuning may grow a stream's receive window now (session memory headroom). */
  canGrowWindow(): boolean
  /** The reason the session died, once it has. */
  failure(): MuxError | undefined
}

/** The stream as the session core drives it: frames in, acceptance, timers, and death. */
export interface CoreStream {
  readonly id: number
  readonly local: boolean
  readonly state: StreamState
  /** Whether the peer has ACKed our SYN (streams it opened count as ACKed). */
  readonly acked: boolean
  /** When the peer's SYN arrived (Clock ms; 0 for streams we opened), for the rapid-reset budget. */
  readonly openedAt: number
  /** Credit the peer still has for sending to us (checked at header time). */
  readonly recvWindow: number
  /** A FIN is queued behind the stream's bytes. */
  readonly finPending: boolean
  /** `accept` took it: SendAck, and the window grows to `window` (advertised with the ACK). */
  accept(window: number): void
  /** The peer's ACK arrived; `true` the first time for a stream we opened. */
  onAck(): boolean
  /** DATA arrived (already checked against `recvWindow`); a stream past the peer's FIN is reset. */
  onData(payload: Uint8Array): void
  /** The peer granted `delta` more bytes; `false` if the window would overflow 2^32-1. */
  onCredit(delta: number): boolean
  /** The peer's FIN arrived. */
  onFin(): void
  /** The peer's RST arrived. */
  onRst(): void
  /**
   * Time without DATA either way: adds `elapsedMillis` unless there was activity since the last
   * call (then it starts over at 0), and returns the total. For the idle sweep; the data path
   * only bumps a counter, it never reads the clock.
   */
  idleFor(elapsedMillis: number): number
  /** Half-closes the write side (FIN after the queued bytes). */
  finish(): void
  /** Sends RST (unless the session is dead) and fails local operations. */
  resetNow(remoteCause: boolean): void
  /** The peer never ACKed: RST and fail every operation with `error`. */
  failOpen(error: MuxError): void
  /** The session died: every pending and future operation fails with `error`. */
  failWith(error: MuxError): void
}

/** The stream as the writer's outbox sees it: what may be framed now, and taking it. */
export interface OutboundStream {
  readonly id: number
  /** The stream sits in the outbox's ring; set and cleared by the outbox only. */
  inReady: boolean
  /** Reset: nothing of it goes out any more. */
  readonly isReset: boolean
  /** Bytes queued and not yet framed. */
  readonly queued: number
  /** Bytes the writer may frame now: what is queued, within the peer's window. */
  readonly sendable: number
  /** A FIN is to follow the queued bytes. */
  readonly finPending: boolean
  /** Removes `n` ≤ `sendable` bytes from the front of the queue (views of the queued chunks). */
  takeOutbound(n: number): Array<Uint8Array>
  /** The writer framed our FIN: the state changes now (and a closed stream is released). */
  finSent(): void
}

/** Read-only internals of a stream, for tests and diagnostics. */
export interface StreamSnapshot {
  readonly state: StreamState
  readonly acked: boolean
  readonly recvWindow: number
  readonly sendWindow: number
  readonly windowSize: number
  readonly queued: number
  readonly finPending: boolean
  readonly inReady: boolean
  readonly recvBuffered: number
}

const EMPTY: Array<Uint8Array> = []

/**
 * A multiplexed stream. As a {@link Transport} it plugs into the same pumps as a socket; as a
 * {@link DirectPort} a splice moves its bytes from the session's core straight to a socket.
 */
export class MuxStreamImpl implements MuxStream, CoreStream, OutboundStream, DirectPort<MuxError> {
  readonly id: number
  readonly local: boolean
  readonly openedAt: number
  /** @internal The outbox's ring mark (see {@link OutboundStream.inReady}). */
  inReady = false

  readonly #host: StreamHost
  #state: StreamState
  #acked: boolean

  /** Credit the peer still has for sending to us. */
  #recvWindow: number
  /**
   * The receive window this stream aims for: `maxWindow`, or with auto-tuning a size that starts
   * at 256 KiB and doubles (up to `maxWindow`) each time its reader consumes half of it.
   */
  #windowSize: number
  /** Consumed bytes not yet returned as credit. */
  #pendingCredit = 0
  #recvQueue: Array<Uint8Array> = EMPTY
  #recvHead = 0
  /** Bytes buffered for the reader. */
  #recvBuffered = 0
  /** Nobody will read again: data is discarded and credited at once. */
  #readerGone = false

  /** Credit we have for sending to the peer. */
  #sendWindow: number
  /** Queued outbound chunks, consumed from `#outHead`/`#outOffset`. */
  #outQueue: Array<Uint8Array> = EMPTY
  #outHead = 0
  #outOffset = 0
  /** Bytes queued and not yet framed. */
  #outQueued = 0
  /** A FIN is to follow the queued bytes. */
  #finPending = false
  /** Bumped by every DATA frame in or out (idle timeout). */
  #activity = 0
  /** `#activity` at the last idle sweep. */
  #seenActivity = 0
  /** Time without activity, accumulated by the idle sweep. */
  #idleMillis = 0

  #failure: MuxError | undefined = undefined
  #readSignal: Signal | undefined = undefined
  #writeSignal: Signal | undefined = undefined
  #listener: DirectListener<MuxError> | undefined = undefined
  #inputPaused = false
  /** `send` was refused for want of room: tell the listener once the queue drains. */
  #wantWritable = false
  #endDelivered = false

  constructor(
    host: StreamHost,
    id: number,
    local: boolean,
    state: StreamState,
    recvWindow: number,
    sendWindow: number,
    openedAt = 0
  ) {
    this.#host = host
    this.id = id
    this.local = local
    this.openedAt = openedAt
    this.#state = state
    this.#acked = !local
    this.#recvWindow = recvWindow
    this.#windowSize = recvWindow
    this.#sendWindow = sendWindow
  }

  /** The one place where the state changes: through the state machine, or not at all. */
  #apply(event: StreamEvent): boolean {
    const t = transition(this.#state, event)
    if (t.outcome !== "ok") return false
    this.#state = t.state
    return true
  }

  // ---------------------------------------------------------------------------------------------
  // Read-only views
  // ---------------------------------------------------------------------------------------------

  /** Where the stream comes from, for logs (a getter: no string held per idle stream). */
  get remoteAddress(): string {
    return `stream ${this.id}`
  }
  get state(): StreamState {
    return this.#state
  }
  get acked(): boolean {
    return this.#acked
  }
  get recvWindow(): number {
    return this.#recvWindow
  }
  get finPending(): boolean {
    return this.#finPending
  }
  get isReset(): boolean {
    return this.#state === "Reset"
  }
  get queued(): number {
    return this.#outQueued
  }
  get sendable(): number {
    const window = this.#sendWindow
    return window <= 0 ? 0 : Math.min(window, this.#outQueued)
  }

  /** The internals, read-only, for tests and diagnostics. */
  snapshot(): StreamSnapshot {
    return {
      state: this.#state,
      acked: this.#acked,
      recvWindow: this.#recvWindow,
      sendWindow: this.#sendWindow,
      windowSize: this.#windowSize,
      queued: this.#outQueued,
      finPending: this.#finPending,
      inReady: this.inReady,
      recvBuffered: this.#recvBuffered
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Public API (Effect)
  // ---------------------------------------------------------------------------------------------

  // The Effect-valued members are getters, not fields: an idle stream then carries no closures
  // (thousands of idle proxied connections are the memory budget's main cost).

  /** Next bytes from the peer, `null` once the peer has sent FIN and everything was read. */
  get read(): Effect.Effect<Uint8Array | null, MuxError> {
    return Effect.suspend(() => this.#readLoop())
  }

  /** Queues bytes for sending; waits while more than `writeBufferSize` bytes are queued. */
  write(chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, MuxError> {
    return Effect.suspend(() => {
      const refused = this.#writeRefusal()
      if (refused !== undefined) return Effect.fail(refused)
      for (let i = 0; i < chunks.length; i++) this.#enqueue(chunks[i]!)
      return this.#outQueued > this.#host.config.writeBufferSize ? this.#awaitDrained() : Effect.void
    })
  }

  #enqueue(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    if (this.#outQueue === EMPTY) this.#outQueue = []
    this.#outQueue.push(chunk)
    this.#outQueued += chunk.length
    if (this.#sendWindow > 0) this.#host.ready(this)
  }

  /** Sends FIN after the queued bytes: the peer reads EOF; we may still read. */
  get closeWrite(): Effect.Effect<void> {
    return Effect.sync(() => this.finish())
  }

  /** FIN, then waits for the peer's FIN; resets the stream if that takes longer than the close timeout. */
  get close(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.finish()
      return this.#awaitTerminal().pipe(
        Effect.timeoutOrElse({
          duration: this.#host.config.closeTimeoutMillis,
          orElse: () => Effect.sync(() => this.resetNow(false))
        })
      )
    })
  }

  /** Aborts the stream both ways (RST). */
  get reset(): Effect.Effect<void> {
    return Effect.sync(() => this.resetNow(false))
  }

  /** Reads everything until the peer's FIN (for tests and small handlers). */
  get readAll(): Effect.Effect<Uint8Array, MuxError> {
    return readAll(this)
  }

  // ---------------------------------------------------------------------------------------------
  // DirectPort: called from I/O callbacks and microtasks, never from inside a core step, except
  // that input and events are delivered from the core (listeners must not re-enter it).
  // ---------------------------------------------------------------------------------------------

  /** This stream as a {@link DirectPort}, unless a fiber is reading it or a splice holds it. */
  directPort(): DirectPort<MuxError> | undefined {
    return this.#listener === undefined && (this.#readSignal === undefined || this.#readSignal.size === 0)
      ? this
      : undefined
  }

  attach(listener: DirectListener<MuxError>): void {
    this.#listener = listener
    this.#inputPaused = true
  }

  detach(): void {
    this.#listener = undefined
    this.#inputPaused = false
    this.#wantWritable = false
  }

  pauseInput(): void {
    this.#inputPaused = true
  }

  resumeInput(): void {
    this.#inputPaused = false
    this.#deliver()
  }

  send(chunk: Uint8Array): boolean {
    const refused = this.#writeRefusal()
    if (refused !== undefined) {
      this.#listener?.failure(refused)
      return true
    }
    this.#enqueue(chunk)
    if (this.#outQueued <= this.#host.config.writeBufferSize) return true
    this.#wantWritable = true
    return false
  }

  sendEnd(): void {
    this.finish()
  }

  abort(): void {
    this.resetNow(false)
  }

  /** Hands buffered input, then the end or the failure, to the listener while it is not paused. */
  #deliver(): void {
    const listener = this.#listener
    if (listener === undefined) return
    while (!this.#inputPaused) {
      const chunk = this.#takeChunk()
      if (chunk === undefined) break
      listener.input(chunk)
      if (this.#listener !== listener) return
    }
    if (this.#inputPaused || this.#recvHead !== this.#recvQueue.length) return
    if (this.#failure !== undefined) listener.failure(this.#failure)
    else if (!canReceive(this.#state) && !this.#endDelivered) {
      this.#endDelivered = true
      listener.inputEnd()
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Waiting
  // ---------------------------------------------------------------------------------------------

  #readLoop(): Effect.Effect<Uint8Array | null, MuxError> {
    const chunk = this.#takeChunk()
    if (chunk !== undefined) return Effect.succeed(chunk)
    if (this.#failure !== undefined) return Effect.fail(this.#failure)
    if (!canReceive(this.#state)) return Effect.succeed(null)
    if (this.#readSignal === undefined) this.#readSignal = new Signal()
    return Effect.flatMap(this.#readSignal.wait, () => this.#readLoop())
  }

  #awaitDrained(): Effect.Effect<void, MuxError> {
    if (this.#failure !== undefined) return Effect.fail(this.#failure)
    if (this.#outQueued <= this.#host.config.writeBufferSize) return Effect.void
    if (this.#writeSignal === undefined) this.#writeSignal = new Signal()
    return Effect.flatMap(this.#writeSignal.wait, () => this.#awaitDrained())
  }

  #awaitTerminal(): Effect.Effect<void> {
    if (isTerminal(this.#state)) return Effect.void
    if (this.#readSignal === undefined) this.#readSignal = new Signal()
    return Effect.flatMap(this.#readSignal.wait, () => this.#awaitTerminal())
  }

  #writeRefusal(): MuxError | undefined {
    if (this.#failure !== undefined) return this.#failure
    if (!canWrite(this.#state) || this.#finPending) return muxError(new StreamClosed({ streamId: this.id }))
    return undefined
  }

  #takeChunk(): Uint8Array | undefined {
    if (this.#recvHead === this.#recvQueue.length) return undefined
    const chunk = this.#recvQueue[this.#recvHead]!
    this.#recvQueue[this.#recvHead] = chunk.subarray(0, 0)
    this.#recvHead++
    if (this.#recvHead === this.#recvQueue.length) {
      this.#recvQueue = EMPTY
      this.#recvHead = 0
    }
    this.#consume(chunk.length)
    return chunk
  }

  #consume(n: number): void {
    this.#recvBuffered -= n
    // Counted out here even after a clean close (release does not touch buffers): one exit per byte.
    this.#host.consumed(n)
    this.#pendingCredit += n
    this.#returnCredit(true)
  }

  /**
   * Returns the consumed bytes as credit once they reach half the window. With auto-tuning (and
   * `grow`, i.e. a real reader) the window also doubles: a reader that keeps up earns a larger one;
   * one that stalls never grows past where it stalled, so stalled streams pin little memory.
   */
  #returnCredit(grow: boolean): void {
    if (this.#pendingCredit < this.#windowSize >>> 1 || !canReceive(this.#state)) return
    let growth = 0
    const config = this.#host.config
    const max = config.maxWindow
    if (grow && config.windowAutoTune && this.#windowSize < max && this.#host.canGrowWindow()) {
      growth = Math.min(this.#windowSize, max - this.#windowSize)
      this.#windowSize += growth
    }
    const credit = this.#pendingCredit + growth
    this.#host.control(FrameType.WindowUpdate, 0, this.id, credit)
    this.#recvWindow += credit
    this.#pendingCredit = 0
  }

  // ---------------------------------------------------------------------------------------------
  // CoreStream: events from the session core (synchronous)
  // ---------------------------------------------------------------------------------------------

  accept(window: number): void {
    this.#apply("SendAck")
    const delta = window - this.#windowSize
    this.#recvWindow += delta
    this.#windowSize = window
    this.#host.control(FrameType.WindowUpdate, Flags.ACK, this.id, delta)
  }

  onAck(): boolean {
    if (this.#acked) return false
    this.#acked = true
    this.#apply("RecvAck")
    return true
  }

  onData(payload: Uint8Array): void {
    const outcome = transition(this.#state, "RecvData").outcome
    if (outcome === "reset") {
      // DATA after the peer's own FIN: that stream is broken, the session is not.
      this.resetNow(true)
      return
    }
    if (outcome !== "ok" || payload.length === 0) return
    const n = payload.length
    this.#activity++
    this.#recvWindow -= n
    if (this.#readerGone) {
      this.#pendingCredit += n
      this.#returnCredit(false)
      return
    }
    const listener = this.#listener
    if (listener !== undefined && !this.#inputPaused && this.#recvHead === this.#recvQueue.length) {
      // Spliced and keeping up: straight through, credited at once, never queued or counted.
      this.#pendingCredit += n
      this.#returnCredit(true)
      listener.input(payload)
      return
    }
    this.#recvBuffered += n
    this.#host.buffered(n)
    if (this.#recvQueue === EMPTY) this.#recvQueue = []
    this.#recvQueue.push(payload)
    this.#readSignal?.notify()
  }

  onCredit(delta: number): boolean {
    if (delta === 0) return true
    const next = this.#sendWindow + delta
    if (next > 0xffff_ffff) return false
    const wasBlocked = this.#sendWindow <= 0
    this.#sendWindow = next
    if (wasBlocked && this.#outQueued > 0) this.#host.ready(this)
    return true
  }

  onFin(): void {
    if (!this.#apply("RecvFin")) return
    this.#readSignal?.notify()
    if (this.#listener !== undefined && !this.#inputPaused) this.#deliver()
    if (isTerminal(this.#state)) this.#host.release(this)
  }

  onRst(): void {
    if (!this.#apply("RecvRst")) return
    this.failWith(muxError(new StreamReset({ streamId: this.id, remote: true })))
    this.#host.release(this)
  }

  idleFor(elapsedMillis: number): number {
    if (this.#activity !== this.#seenActivity) {
      this.#seenActivity = this.#activity
      this.#idleMillis = 0
    } else {
      this.#idleMillis += elapsedMillis
    }
    return this.#idleMillis
  }

  failWith(error: MuxError): void {
    if (this.#failure === undefined) this.#failure = error
    this.#apply("SendRst")
    if (this.#recvBuffered > 0) {
      // Dropped unread bytes leave the session's buffer accounting here, exactly once.
      this.#host.consumed(this.#recvBuffered)
      this.#recvBuffered = 0
    }
    this.#recvQueue = EMPTY
    this.#recvHead = 0
    this.#outQueue = EMPTY
    this.#outHead = 0
    this.#outOffset = 0
    this.#outQueued = 0
    this.#finPending = false
    this.#readSignal?.notify()
    this.#writeSignal?.notify()
    this.#listener?.failure(error)
  }

  finish(): void {
    if (this.#finPending || !canWrite(this.#state)) return
    if (transition(this.#state, "SendFin").outcome !== "ok") return
    // The state changes when the writer sends the FIN (after the queued bytes), not now: a stream
    // released here could no longer receive the credit its queued bytes wait for (they and the FIN
    // would never go out when the peer had half-closed first).
    this.#finPending = true
    this.#host.ready(this)
    this.#host.closing(this)
  }

  resetNow(remoteCause: boolean): void {
    if (this.#state === "Reset") return
    if (this.#state === "Closed") {
      // Both FINs are out: nothing to abort on the wire, but unread bytes must still be let go.
      this.abandonReads()
      return
    }
    if (this.#host.failure() === undefined) this.#host.control(FrameType.WindowUpdate, Flags.RST, this.id, 0)
    this.failWith(muxError(new StreamReset({ streamId: this.id, remote: remoteCause })))
    this.#host.release(this)
  }

  failOpen(error: MuxError): void {
    if (isTerminal(this.#state)) return
    if (this.#host.failure() === undefined) this.#host.control(FrameType.WindowUpdate, Flags.RST, this.id, 0)
    this.failWith(error)
    this.#host.release(this)
  }

  /** Ends the reader's interest: unread bytes are dropped, later ones credited at once. */
  abandonReads(): void {
    this.#readerGone = true
    if (this.#recvBuffered > 0) {
      const n = this.#recvBuffered
      this.#recvQueue = EMPTY
      this.#recvHead = 0
      this.#recvBuffered = 0
      this.#host.consumed(n)
      this.#pendingCredit += n
      this.#returnCredit(false)
    }
  }

  // ---------------------------------------------------------------------------------------------
  // OutboundStream: the writer takes what it frames
  // ---------------------------------------------------------------------------------------------

  takeOutbound(n: number): Array<Uint8Array> {
    const pieces: Array<Uint8Array> = []
    if (n === 0) return pieces
    let left = n
    const queue = this.#outQueue
    while (left > 0) {
      const chunk = queue[this.#outHead]!
      const available = chunk.length - this.#outOffset
      if (available <= left) {
        pieces.push(this.#outOffset === 0 ? chunk : chunk.subarray(this.#outOffset))
        left -= available
        queue[this.#outHead] = chunk.subarray(0, 0)
        this.#outHead++
        this.#outOffset = 0
      } else {
        pieces.push(chunk.subarray(this.#outOffset, this.#outOffset + left))
        this.#outOffset += left
        left = 0
      }
    }
    if (this.#outHead === queue.length) {
      this.#outQueue = EMPTY
      this.#outHead = 0
    } else if (this.#outHead > 64 && this.#outHead * 2 > queue.length) {
      this.#outQueue = queue.slice(this.#outHead)
      this.#outHead = 0
    }
    this.#activity++
    this.#outQueued -= n
    this.#sendWindow -= n
    if (this.#outQueued <= this.#host.config.writeBufferSize) {
      this.#writeSignal?.notify()
      const listener = this.#listener
      if (this.#wantWritable && listener !== undefined) {
        this.#wantWritable = false
        // Deferred: the writer is mid-batch, and the listener resumes input that may enqueue here.
        defer(() => listener.writable())
      }
    }
    return pieces
  }

  finSent(): void {
    this.#finPending = false
    if (!this.#apply("SendFin")) return
    if (isTerminal(this.#state)) this.#host.release(this)
  }
}

/** The implementation behind a stream a session made, or `undefined` for a foreign implementation. */
export const internals = (stream: MuxStream): MuxStreamImpl | undefined =>
  stream instanceof MuxStreamImpl ? stream : undefined

/** The read-only internals of a stream a session made (for tests and diagnostics). */
export const snapshotOf = (stream: MuxStream): StreamSnapshot => {
  const s = internals(stream)
  if (s === undefined) throw new TypeError(`stream ${stream.id} was not made by a plait session`)
  return s.snapshot()
}

/**
 * Ends a stream the way its scope would, synchronously: `success` sends FIN (the stream lingers
 * until the peer's FIN or the close timeout) and lets go of unread input; otherwise RST. For
 * callers on the per-stream hot path (the server's handler runner) that must not allocate an Effect.
 */
export const endNow = (stream: MuxStream, success: boolean): void => {
  const s = internals(stream)
  if (s === undefined) {
    Effect.runFork(success ? stream.closeWrite : stream.reset)
  } else if (success) {
    s.finish()
    s.abandonReads()
  } else {
    s.resetNow(false)
  }
}

/** {@link endNow} as an Effect, from an exit: what a stream's scope does when it closes. */
export const endStream = (stream: MuxStream, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
  const s = internals(stream)
  if (s === undefined) return Exit.isSuccess(exit) ? stream.closeWrite : stream.reset
  return Effect.sync(() => endNow(s, Exit.isSuccess(exit)))
}

/**
 * Ties a stream to a scope: normal exit sends FIN (the stream lingers until the peer's FIN or the
 * close timeout), any other exit sends RST.
 */
export const scopedStream = <S extends MuxStream>(stream: S): Effect.Effect<S, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.succeed(stream), endStream)
