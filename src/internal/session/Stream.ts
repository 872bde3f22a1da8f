/**
 * A multiplexed stream: one client's bytes, both ways, with its own credit windows.
 *
 * Invariants:
 * - The receive buffer never holds more than the window granted to the peer: DATA is checked
 *   against `recvWindow` at header time (by the session) before it reaches {@link MuxStream.onData}.
 * - Credit is returned (WINDOW_UPDATE) once half the window has been consumed by the reader, so a
 *   reader that stops reading stops its peer after at most one window — and stalls nobody else.
 * - `write` queues bytes for the session's writer and waits only while more than
 *   `writeBufferSize` bytes are queued; the writer frames them as the peer's window allows.
 * - Every wait ends when the stream is reset, the session dies, or the fiber is interrupted.
 * - State changes go through {@link transition} only.
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
import { readAll } from "../../transport/Splice.ts"
import type { DirectListener, DirectPort, Transport } from "../../transport/Transport.ts"
import { defer, Signal } from "./Signal.ts"
import { canReceive, canWrite, isTerminal, type StreamState, transition } from "./StreamState.ts"

/** What a stream needs from its session; implemented by the session core. */
export interface StreamHost {
  readonly config: SessionConfig
  /** Queues a control frame (header only) ahead of all data. */
  control(type: FrameType, flags: number, streamId: number, length: number): void
  /** The stream has DATA or a FIN that the writer may send. */
  ready(stream: MuxStream): void
  /** The stream reached a terminal state: drop it from the registry. */
  release(stream: MuxStream): void
  /** The stream queued its FIN (`closeWrite`): start its close timeout. */
  closing(stream: MuxStream): void
  /** `bytes` left a receive buffer (session-wide accounting). */
  consumed(bytes: number): void
  /** Whether window auto-tuning may grow a stream's receive window now (session memory headroom). */
  canGrowWindow(): boolean
  /** The reason the session died, once it has. */
  failure(): MuxError | undefined
}

const EMPTY: Array<Uint8Array> = []

/**
 * A multiplexed stream. As a {@link Transport} it plugs into the same pumps as a socket; as a
 * {@link DirectPort} a splice moves its bytes from the session's core straight to a socket.
 */
export class MuxStream implements Transport<MuxError>, DirectPort<MuxError> {
  /** The yamux stream id. */
  readonly id: number
  /** Whether this side opened the stream. */
  readonly local: boolean
  /** Where the stream comes from, for logs (a getter: no string held per idle stream). */
  get remoteAddress(): string {
    return `stream ${this.id}`
  }
  /** @internal */
  readonly host: StreamHost
  /** Current lifecycle state. */
  state: StreamState
  /** Whether the peer has ACKed (for locally opened streams). */
  acked: boolean

  /** @internal credit the peer still has for sending to us */
  recvWindow: number
  /**
   * @internal the receive window this stream aims for: `maxWindow`, or with auto-tuning a size that
   * starts at 256 KiB and doubles (up to `maxWindow`) each time its reader consumes half of it
   */
  windowSize: number
  /** @internal consumed bytes not yet returned as credit */
  private pendingCredit = 0
  /** @internal */
  private recvQueue: Array<Uint8Array> = EMPTY
  private recvHead = 0
  /** @internal bytes buffered for the reader */
  recvBuffered = 0
  /** @internal set once nobody will read again: data is discarded and credited at once */
  readerGone = false

  /** @internal credit we have for sending to the peer */
  sendWindow: number
  /** @internal queued outbound chunks, consumed from `outHead`/`outOffset` */
  outQueue: Array<Uint8Array> = EMPTY
  /** @internal */
  outHead = 0
  /** @internal */
  outOffset = 0
  /** @internal bytes queued and not yet framed */
  outQueued = 0
  /** @internal a FIN is to follow the queued bytes */
  finPending = false
  /** @internal the stream sits in the writer's round-robin ring */
  inReady = false
  /** @internal the open-timeout deadline (ms), 0 when none (close deadlines live in the session) */
  deadline = 0
  /** @internal bumped by every DATA frame in or out (idle timeout) */
  activity = 0
  /** @internal `activity` at the last idle sweep */
  seenActivity = 0
  /** @internal time without activity, accumulated by the idle sweep */
  idleMillis = 0

  private failure: MuxError | undefined = undefined
  private readSignal: Signal | undefined = undefined
  private writeSignal: Signal | undefined = undefined
  private listener: DirectListener<MuxError> | undefined = undefined
  private inputPaused = false
  /** `send` was refused for want of room: tell the listener once the queue drains. */
  private wantWritable = false
  private endDelivered = false

  constructor(
    host: StreamHost,
    id: number,
    local: boolean,
    state: StreamState,
    recvWindow: number,
    sendWindow: number
  ) {
    this.host = host
    this.id = id
    this.local = local
    this.state = state
    this.acked = !local
    this.recvWindow = recvWindow
    this.windowSize = recvWindow
    this.sendWindow = sendWindow
  }

  // ---------------------------------------------------------------------------------------------
  // Public API (Effect)
  // ---------------------------------------------------------------------------------------------

  // The Effect-valued members are getters, not fields: an idle stream then carries no closures
  // (thousands of idle proxied connections are the memory budget's main cost).

  /** Next bytes from the peer, `null` once the peer has sent FIN and everything was read. */
  get read(): Effect.Effect<Uint8Array | null, MuxError> {
    return Effect.suspend(() => this.readLoop())
  }

  /** Queues bytes for sending; waits while more than `writeBufferSize` bytes are queued. */
  write(chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, MuxError> {
    return Effect.suspend(() => {
      const refused = this.writeRefusal()
      if (refused !== undefined) return Effect.fail(refused)
      for (let i = 0; i < chunks.length; i++) this.enqueue(chunks[i]!)
      return this.outQueued > this.host.config.writeBufferSize ? this.awaitDrained() : Effect.void
    })
  }

  private enqueue(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    if (this.outQueue === EMPTY) this.outQueue = []
    this.outQueue.push(chunk)
    this.outQueued += chunk.length
    if (this.sendWindow > 0) this.host.ready(this)
  }

  /** Sends FIN after the queued bytes: the peer reads EOF; we may still read. */
  get closeWrite(): Effect.Effect<void> {
    return Effect.sync(() => this.finish())
  }

  /** FIN, then waits for the peer's FIN; resets the stream if that takes longer than the close timeout. */
  get close(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.finish()
      return this.awaitTerminal().pipe(
        Effect.timeoutOrElse({
          duration: this.host.config.closeTimeoutMillis,
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
    return this.listener === undefined && (this.readSignal === undefined || this.readSignal.size === 0)
      ? this
      : undefined
  }

  /** @internal */
  attach(listener: DirectListener<MuxError>): void {
    this.listener = listener
    this.inputPaused = true
  }

  /** @internal */
  detach(): void {
    this.listener = undefined
    this.inputPaused = false
    this.wantWritable = false
  }

  /** @internal */
  pauseInput(): void {
    this.inputPaused = true
  }

  /** @internal */
  resumeInput(): void {
    this.inputPaused = false
    this.deliver()
  }

  /** @internal */
  send(chunk: Uint8Array): boolean {
    const refused = this.writeRefusal()
    if (refused !== undefined) {
      this.listener?.failure(refused)
      return true
    }
    this.enqueue(chunk)
    if (this.outQueued <= this.host.config.writeBufferSize) return true
    this.wantWritable = true
    return false
  }

  /** @internal */
  sendEnd(): void {
    this.finish()
  }

  /** @internal */
  abort(): void {
    this.resetNow(false)
  }

  /** Hands buffered input, then the end or the failure, to the listener while it is not paused. */
  private deliver(): void {
    const listener = this.listener
    if (listener === undefined) return
    while (!this.inputPaused) {
      const chunk = this.takeChunk()
      if (chunk === undefined) break
      listener.input(chunk)
      if (this.listener !== listener) return
    }
    if (this.inputPaused || this.recvHead !== this.recvQueue.length) return
    if (this.failure !== undefined) listener.failure(this.failure)
    else if (!canReceive(this.state) && !this.endDelivered) {
      this.endDelivered = true
      listener.inputEnd()
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Waiting
  // ---------------------------------------------------------------------------------------------

  private readLoop(): Effect.Effect<Uint8Array | null, MuxError> {
    const chunk = this.takeChunk()
    if (chunk !== undefined) return Effect.succeed(chunk)
    if (this.failure !== undefined) return Effect.fail(this.failure)
    if (!canReceive(this.state)) return Effect.succeed(null)
    if (this.readSignal === undefined) this.readSignal = new Signal()
    return Effect.flatMap(this.readSignal.wait, () => this.readLoop())
  }

  private awaitDrained(): Effect.Effect<void, MuxError> {
    if (this.failure !== undefined) return Effect.fail(this.failure)
    if (this.outQueued <= this.host.config.writeBufferSize) return Effect.void
    if (this.writeSignal === undefined) this.writeSignal = new Signal()
    return Effect.flatMap(this.writeSignal.wait, () => this.awaitDrained())
  }

  private awaitTerminal(): Effect.Effect<void> {
    if (isTerminal(this.state)) return Effect.void
    if (this.readSignal === undefined) this.readSignal = new Signal()
    return Effect.flatMap(this.readSignal.wait, () => this.awaitTerminal())
  }

  private writeRefusal(): MuxError | undefined {
    if (this.failure !== undefined) return this.failure
    if (!canWrite(this.state) || this.finPending) return muxError(new StreamClosed({ streamId: this.id }))
    return undefined
  }

  private takeChunk(): Uint8Array | undefined {
    if (this.recvHead === this.recvQueue.length) return undefined
    const chunk = this.recvQueue[this.recvHead]!
    this.recvQueue[this.recvHead] = chunk.subarray(0, 0)
    this.recvHead++
    if (this.recvHead === this.recvQueue.length) {
      this.recvQueue = EMPTY
      this.recvHead = 0
    }
    this.consume(chunk.length)
    return chunk
  }

  private consume(n: number): void {
    this.recvBuffered -= n
    // Counted out here even after a clean close (release does not touch buffers): one exit per byte.
    this.host.consumed(n)
    this.pendingCredit += n
    this.returnCredit(true)
  }

  /**
   * Returns the consumed bytes as credit once they reach half the window. With auto-tuning (and
   * `grow`, i.e. a real reader) the window also doubles: a reader that keeps up earns a larger one;
   * one that stalls never grows past where it stalled, so stalled streams pin little memory.
   */
  private returnCredit(grow: boolean): void {
    if (this.pendingCredit < this.windowSize >>> 1 || !canReceive(this.state)) return
    let growth = 0
    const max = this.host.config.maxWindow
    if (grow && this.host.config.windowAutoTune === 1 && this.windowSize < max && this.host.canGrowWindow()) {
      growth = Math.min(this.windowSize, max - this.windowSize)
      this.windowSize += growth
    }
    const credit = this.pendingCredit + growth
    this.host.control(FrameType.WindowUpdate, 0, this.id, credit)
    this.recvWindow += credit
    this.pendingCredit = 0
  }

  // ---------------------------------------------------------------------------------------------
  // Events from the session core (synchronous)
  // ---------------------------------------------------------------------------------------------

  /** @internal DATA arrived (already checked against `recvWindow`). */
  onData(payload: Uint8Array): void {
    if (payload.length === 0) return
    this.activity++
    this.recvWindow -= payload.length
    if (this.readerGone) {
      this.pendingCredit += payload.length
      this.returnCredit(false)
      return
    }
    this.recvBuffered += payload.length
    const listener = this.listener
    if (listener !== undefined && !this.inputPaused && this.recvHead === this.recvQueue.length) {
      // Spliced and keeping up: straight through, credited at once, never queued.
      this.consume(payload.length)
      listener.input(payload)
      return
    }
    if (this.recvQueue === EMPTY) this.recvQueue = []
    this.recvQueue.push(payload)
    this.readSignal?.notify()
  }

  /** @internal The peer granted `delta` more bytes; returns false if the window would overflow. */
  onCredit(delta: number): boolean {
    if (delta === 0) return true
    const next = this.sendWindow + delta
    if (next > 0xffff_ffff) return false
    const wasBlocked = this.sendWindow <= 0
    this.sendWindow = next
    if (wasBlocked && this.outQueued > 0) this.host.ready(this)
    return true
  }

  /** @internal Applies a lifecycle event; returns the outcome for the session to act on. */
  apply(event: "RecvAck" | "RecvFin" | "RecvRst" | "SendAck"): "ok" | "ignore" | "reset" | "refuse" {
    const t = transition(this.state, event)
    if (t.outcome !== "ok") return t.outcome
    this.state = t.state
    if (event === "RecvAck") this.acked = true
    if (event === "RecvRst") {
      this.failWith(muxError(new StreamReset({ streamId: this.id, remote: true })))
      this.host.release(this)
      return "ok"
    }
    if (event === "RecvFin") {
      this.readSignal?.notify()
      if (this.listener !== undefined && !this.inputPaused) this.deliver()
    }
    if (isTerminal(this.state)) this.host.release(this)
    return "ok"
  }

  /** @internal The writer framed `n` queued bytes. */
  drained(n: number): void {
    this.activity++
    this.outQueued -= n
    this.sendWindow -= n
    if (this.outQueued <= this.host.config.writeBufferSize) {
      this.writeSignal?.notify()
      const listener = this.listener
      if (this.wantWritable && listener !== undefined) {
        this.wantWritable = false
        // Deferred: the writer is mid-batch, and the listener resumes input that may enqueue here.
        defer(() => listener.writable())
      }
    }
  }

  /** @internal The writer sent our FIN: now the state changes (and a closed stream is released). */
  finSent(): void {
    this.finPending = false
    const t = transition(this.state, "SendFin")
    if (t.outcome !== "ok") return
    this.state = t.state
    if (isTerminal(this.state)) this.host.release(this)
  }

  /** @internal The session died: every pending and future operation fails with `error`. */
  failWith(error: MuxError): void {
    if (this.failure === undefined) this.failure = error
    this.state = "Reset"
    if (this.recvBuffered > 0) {
      // Dropped unread bytes leave the session's buffer accounting here, exactly once.
      this.host.consumed(this.recvBuffered)
      this.recvBuffered = 0
    }
    this.recvQueue = EMPTY
    this.recvHead = 0
    this.outQueue = EMPTY
    this.outHead = 0
    this.outOffset = 0
    this.outQueued = 0
    this.finPending = false
    this.readSignal?.notify()
    this.writeSignal?.notify()
    this.listener?.failure(error)
  }

  /** Half-closes the write side (idempotent; refused silently once reset). */
  finish(): void {
    if (this.finPending || !canWrite(this.state)) return
    if (transition(this.state, "SendFin").outcome !== "ok") return
    // The state changes when the writer sends the FIN (after the queued bytes), not now: a stream
    // released here could no longer receive the credit its queued bytes wait for (they and the FIN
    // would never go out when the peer had half-closed first).
    this.finPending = true
    this.host.ready(this)
    this.host.closing(this)
  }

  /** @internal Sends RST (unless the session is dead) and fails local operations. */
  resetNow(remoteCause: boolean): void {
    if (this.state === "Reset") return
    if (this.state === "Closed") {
      // Both FINs are out: nothing to abort on the wire, but unread bytes must still be let go.
      this.abandonReads()
      return
    }
    if (this.host.failure() === undefined) this.host.control(FrameType.WindowUpdate, Flags.RST, this.id, 0)
    this.failWith(muxError(new StreamReset({ streamId: this.id, remote: remoteCause })))
    this.host.release(this)
  }

  /** @internal The peer never ACKed: RST this stream and fail its operations with `error`. */
  failOpen(error: MuxError): void {
    if (isTerminal(this.state)) return
    if (this.host.failure() === undefined) this.host.control(FrameType.WindowUpdate, Flags.RST, this.id, 0)
    this.failWith(error)
    this.host.release(this)
  }

  /** @internal Ends the reader's interest: unread bytes are dropped, later ones credited at once. */
  abandonReads(): void {
    this.readerGone = true
    if (this.recvBuffered > 0) {
      const n = this.recvBuffered
      this.recvQueue = EMPTY
      this.recvHead = 0
      this.recvBuffered = 0
      this.host.consumed(n)
      this.pendingCredit += n
      this.returnCredit(false)
    }
  }
}

/**
 * Ties a stream to a scope: normal exit sends FIN (the stream lingers until the peer's FIN or the
 * close timeout), any other exit sends RST.
 */
export const scopedStream = (stream: MuxStream): Effect.Effect<MuxStream, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.succeed(stream), (s, exit) =>
    Effect.sync(() => {
      if (Exit.isSuccess(exit)) {
        s.finish()
        s.abandonReads()
      } else {
        s.resetNow(false)
      }
    })
  )
