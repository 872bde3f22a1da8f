/**
 * The writer's queue: what the one writer fiber of a session sends next.
 *
 * Invariants:
 * - Control frames (ACKs, credit, pings, RST, GO_AWAY) always go out before any DATA queued with
 *   them, so a saturated link still answers pings and returns credit.
 * - DATA is scheduled round-robin, one frame of at most `maxFrameSize` bytes per ready stream per
 *   turn, never beyond the stream's send window; a stream's FIN follows its last byte,
 *   on a WINDOW_UPDATE of its own (never DATA|FIN: see `takeBatch`).
 * - A batch is a list of chunks for one transport write; small payloads are copied next to their
 *   headers, large ones are passed by reference (no copy of bulk bytes).
 * - Sans-IO: no Effect in the scheduling; the session wakes the writer through {@link Outbox.signal}.
 * - The outbox never touches a stream's queue or windows: it asks how much is `sendable` and takes
 *   that many bytes through {@link OutboundStream.takeOutbound}; its only mark on a stream is
 *   `inReady` (membership of the ring).
 *
 * @since 0.1.0
 */
import { Flags, FrameType, HEADER_SIZE } from "../../protocol/Constants.ts"
import { writeHeader } from "../../protocol/Frame.ts"
import { Signal } from "./Signal.ts"
import type { OutboundStream } from "./Stream.ts"

/** Payload pieces up to this size are copied beside their header instead of sent by reference. */
const COPY_THRESHOLD = 2048

interface Planned {
  readonly streamId: number
  readonly type: FrameType
  readonly flags: number
  readonly length: number
  readonly pieces: Array<Uint8Array>
}

/** A session's outbound frame queue with a control lane and round-robin data lanes. */
export class Outbox {
  /** Wakes the writer fiber. */
  readonly signal = new Signal()
  private control: Uint8Array = new Uint8Array(HEADER_SIZE * 16)
  private controlLen = 0
  private ring: Array<OutboundStream> = []
  private ringHead = 0
  private readonly maxFrameSize: number
  private readonly maxBatchBytes: number

  private readonly perTurn: boolean

  /**
   * `perTurn`: wake the writer once per event-loop turn (after all of the turn's socket reads), so
   * their frames share one write; only for transports fed by the event loop.
   */
  constructor(maxFrameSize: number, maxBatchBytes: number, perTurn = false) {
    this.maxFrameSize = maxFrameSize
    this.maxBatchBytes = maxBatchBytes
    this.perTurn = perTurn
  }

  private wake(): void {
    if (this.perTurn) this.signal.notifyLater()
    else this.signal.notify()
  }

  /** Whether anything waits to be written. */
  get hasWork(): boolean {
    return this.controlLen > 0 || this.ringHead < this.ring.length
  }

  /** Control bytes waiting to be written. */
  get controlBytes(): number {
    return this.controlLen
  }

  /** Streams waiting in the data ring (for tests). */
  get readyStreams(): number {
    return this.ring.length - this.ringHead
  }

  /** Queues a header-only control frame. */
  pushControl(type: FrameType, flags: number, streamId: number, length: number): void {
    if (this.controlLen + HEADER_SIZE > this.control.length) {
      const grown = new Uint8Array(this.control.length * 2)
      grown.set(this.control.subarray(0, this.controlLen))
      this.control = grown
    }
    this.controlLen = writeHeader(this.control, this.controlLen, type, flags, streamId, length)
    this.wake()
  }

  /** Puts a stream with sendable DATA or a pending FIN into the ring (once). */
  ready(stream: OutboundStream): void {
    if (stream.inReady) return
    stream.inReady = true
    this.ring.push(stream)
    this.wake()
  }

  /** Drops everything queued (the session is dead). */
  clear(): void {
    this.controlLen = 0
    for (let i = this.ringHead; i < this.ring.length; i++) this.ring[i]!.inReady = false
    this.ring = []
    this.ringHead = 0
  }

  /** Takes the next batch of chunks to write; empty when there is nothing to send. */
  takeBatch(): Array<Uint8Array> {
    const planned: Array<Planned> = []
    let budget = this.maxBatchBytes
    let arenaBytes = this.controlLen
    // A frame costs its header plus its payload; a batch never exceeds maxBatchBytes of DATA frames.
    while (budget > HEADER_SIZE && this.ringHead < this.ring.length) {
      const s = this.ring[this.ringHead]!
      this.ring[this.ringHead] = undefined as unknown as OutboundStream
      this.ringHead++
      s.inReady = false
      if (s.isReset) continue
      const n = Math.min(this.maxFrameSize, s.sendable, budget - HEADER_SIZE)
      // FIN goes on its own WINDOW_UPDATE right after the last DATA frame, as hashicorp/yamux and
      // go-yamux send it, never on DATA: libp2p-yamux (JS) handles a DATA frame's flags before its
      // payload and drops the bytes of a DATA|FIN frame. With no room left in this batch, it waits.
      const fin = s.finPending && n === s.queued && (n === 0 || budget - n - HEADER_SIZE >= HEADER_SIZE)
      if (n === 0 && !fin) continue
      const pieces = s.takeOutbound(n)
      if (fin) s.finSent()
      if (n > 0) {
        planned.push({ streamId: s.id, type: FrameType.Data, flags: 0, length: n, pieces })
        arenaBytes += HEADER_SIZE
        for (let i = 0; i < pieces.length; i++) {
          if (pieces[i]!.length <= COPY_THRESHOLD) arenaBytes += pieces[i]!.length
        }
        budget -= n + HEADER_SIZE
      }
      if (fin) {
        planned.push({ streamId: s.id, type: FrameType.WindowUpdate, flags: Flags.FIN, length: 0, pieces: [] })
        arenaBytes += HEADER_SIZE
        budget -= HEADER_SIZE
      }
      if (s.sendable > 0 || s.finPending) {
        s.inReady = true
        this.ring.push(s)
      }
    }
    if (this.ringHead === this.ring.length) {
      this.ring = []
      this.ringHead = 0
    } else if (this.ringHead > 1024 && this.ringHead * 2 > this.ring.length) {
      this.ring = this.ring.slice(this.ringHead)
      this.ringHead = 0
    }
    if (arenaBytes === 0) return []
    const arena = new Uint8Array(arenaBytes)
    let pos = 0
    if (this.controlLen > 0) {
      arena.set(this.control.subarray(0, this.controlLen))
      pos = this.controlLen
      this.controlLen = 0
    }
    const out: Array<Uint8Array> = []
    let segment = 0
    for (let f = 0; f < planned.length; f++) {
      const frame = planned[f]!
      pos = writeHeader(arena, pos, frame.type, frame.flags, frame.streamId, frame.length)
      for (let i = 0; i < frame.pieces.length; i++) {
        const piece = frame.pieces[i]!
        if (piece.length <= COPY_THRESHOLD) {
          arena.set(piece, pos)
          pos += piece.length
        } else {
          if (pos > segment) out.push(arena.subarray(segment, pos))
          segment = pos
          out.push(piece)
        }
      }
    }
    if (pos > segment) out.push(arena.subarray(segment, pos))
    return out
  }
}
