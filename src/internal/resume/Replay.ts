/**
 * One side's byte accounting of a resumable session, sans-IO: positions in both directions, the
 * bounded replay buffer of unacknowledged sent bytes, when to acknowledge, and how to continue on
 * a new connection. No Effect, no timers, no sockets: the transport wrapper drives it.
 *
 * Outbound, positions only grow: `acked ≤ transmitted ≤ written`.
 * - `written`: bytes the session handed over. `append` takes at most `space` bytes, so
 *   `written − acked ≤ capacity` always: a peer that never acknowledges stops the writer (the
 *   wrapper waits for space, as for a full window) — bytes are never dropped and the buffer never
 *   grows beyond `capacity` (plus the unacknowledged tail of one chunk it cannot split in memory).
 * - `transmitted`: bytes handed to the current connection. `takeOutput` advances it.
 * - `acked`: the peer confirmed receipt; `[acked, written)` is held for replay, by reference (the
 *   chunks the session writes are fresh and never modified after `write`, as with every transport).
 * Inbound, `delivered ≤ received`: `received` bytes of the peer's direction were decoded,
 * `delivered` of them were handed to the session. ACKs report `delivered` — so what arrived but
 * was not yet read stays in the *peer's* replay buffer, and the peer's bound bounds this side's
 * inbox too: `received − delivered ≤ capacity`, else the peer overran the buffer
 * (`BufferOverrun`). Both sides run with the same `capacity`, the smaller of the two advertised in
 * the hellos. An ACK goes out once `delivered − ackSent ≥ ackEveryBytes`, on request (timer,
 * heartbeat), and piggybacked on any DATA this side sends.
 * Resume: a lost connection drops this side's undelivered input (`received = delivered`: the peer
 * replays it; see {@link ReplayState.dropUndelivered}); both sides exchange their `received` in
 * the handshake; `rewind(peerReceived)` releases what the peer has and makes `transmitted =
 * peerReceived`, so the replay starts exactly at the first byte the peer lacks: every byte is
 * delivered once, in order. A position outside `[acked, written]`
 * cannot be served (the bytes are gone, or were never sent): `canRewind` says so before anything
 * changes.
 *
 * @since 0.1.0
 */
import { Aborted, type ResumeError, resumeError, violation } from "../../resume/ResumeError.ts"
import { allocRecord, encodeEnd, RECORD_HEADER, RecordDecoder, RecordType, writeDataHeader, writeU64 } from "./Wire.ts"

/** Settings of a {@link ReplayState}. */
export interface ReplayOptions {
  /**
   * Unacknowledged outbound bytes held at most (the replay buffer), and received-but-undelivered
   * inbound bytes accepted at most: the same on both sides (the smaller of the two advertised).
   */
  readonly capacity: number
  /** Delivered bytes not yet acknowledged after which an ACK is due. */
  readonly ackEveryBytes: number
  /** Largest outbound DATA record payload. */
  readonly maxRecordBytes: number
}

/** What one chunk of input produced. */
export interface InputResult {
  /** DATA fragments, in order. */
  readonly data: Array<Uint8Array>
  /** Whether an ACK released buffered bytes (writers waiting for space may go on). */
  readonly released: boolean
  /** The first error; records after it are not processed. */
  readonly error: ResumeError | undefined
}

const EMPTY = new Uint8Array(0)

/** DATA payloads up to this size are copied beside their record header instead of sent by reference. */
const COPY_THRESHOLD = 4096

/** Positions, replay buffer and acknowledgement policy of one side. */
export class ReplayState {
  readonly capacity: number
  readonly ackEveryBytes: number
  readonly maxRecordBytes: number
  readonly decoder = new RecordDecoder()

  // Outbound ------------------------------------------------------------------------------------
  /** `[acked, written)` as chunks from `head`; `headSkip` bytes of `chunks[head]` are already acked. */
  private chunks: Array<Uint8Array> = []
  private head = 0
  private headSkip = 0
  /** Where `transmitted` lies: `chunks[cursor]` at `cursorOffset` (`cursor === chunks.length` at the end). */
  private cursor = 0
  private cursorOffset = 0
  acked = 0
  transmitted = 0
  written = 0
  /** The local side half-closed: END follows the last byte. */
  ending = false
  /** END went out on the current connection. */
  endTransmitted = false
  /** Bytes sent again after resumes, over the session's life. */
  replayed = 0

  // Inbound -------------------------------------------------------------------------------------
  /** Bytes of the peer's direction decoded. */
  received = 0
  /** Of those, handed to the session (what ACKs and resume requests report). */
  delivered = 0
  /** The last position this side acknowledged (by ACK or in a resume handshake). */
  ackSent = 0
  /** An ACK goes out with the next output even without DATA. */
  ackDue = false
  /** The peer sent END, at `peerEndAt`. */
  peerEnded = false
  peerEndAt = -1

  constructor(options: ReplayOptions) {
    this.capacity = options.capacity
    this.ackEveryBytes = options.ackEveryBytes
    this.maxRecordBytes = options.maxRecordBytes
  }

  /** Outbound bytes held for replay. */
  get unacked(): number {
    return this.written - this.acked
  }

  /** Bytes `append` accepts now. */
  get space(): number {
    return Math.max(0, this.capacity - (this.written - this.acked))
  }

  /** Takes up to `space` bytes of `chunk` (by reference); returns how many. */
  append(chunk: Uint8Array): number {
    const n = Math.min(chunk.length, this.space)
    if (n === 0) return 0
    this.chunks.push(n === chunk.length ? chunk : chunk.subarray(0, n))
    this.written += n
    return n
  }

  /** Half-close: END after the last byte (idempotent). */
  end(): void {
    this.ending = true
  }

  /** Whether {@link takeOutput} has anything to send. */
  get hasOutput(): boolean {
    return this.ackDue || this.transmitted < this.written || (this.ending && !this.endTransmitted)
  }

  /** Asks for an ACK with the next output (timer, heartbeat). */
  requestAck(): void {
    this.ackDue = true
  }

  /**
   * The next records for the connection, as chunks for one write: an ACK when due (or
   * piggybacked on DATA), one DATA record of at most `maxRecordBytes` (payload by reference), END
   * once everything before it is out.
   */
  takeOutput(): Array<Uint8Array> {
    const pending = this.written - this.transmitted
    const ack = this.ackDue || (pending > 0 && this.delivered > this.ackSent)
    const n = Math.min(pending, this.maxRecordBytes)
    const headerBytes = (ack ? RECORD_HEADER.Ack : 0) + (n > 0 ? RECORD_HEADER.Data : 0)
    // A small payload is copied next to its header: one buffer, one plain socket write (a writev of
    // a header and a payload costs more than copying a few KiB). Large ones go by reference.
    const copy = n > 0 && n <= COPY_THRESHOLD
    const out: Array<Uint8Array> = []
    if (headerBytes > 0) {
      const header = allocRecord(headerBytes + (copy ? n : 0))
      let at = 0
      if (ack) {
        header[0] = RecordType.Ack
        writeU64(header, 1, this.delivered)
        at = RECORD_HEADER.Ack
        this.ackSent = this.delivered
        this.ackDue = false
      }
      if (n > 0) at = writeDataHeader(header, at, n)
      out.push(header)
      if (copy)
        this.takePieces(n, (piece) => {
          header.set(piece, at)
          at += piece.length
        })
    }
    if (!copy) this.takePieces(n, (piece) => out.push(piece))
    this.transmitted += n
    if (this.ending && !this.endTransmitted && this.transmitted === this.written) {
      out.push(encodeEnd(this.written))
      this.endTransmitted = true
    }
    return out
  }

  /** Hands the next `n` untransmitted bytes to `f` as views of the held chunks, advancing the cursor. */
  private takePieces(n: number, f: (piece: Uint8Array) => void): void {
    let left = n
    while (left > 0) {
      const chunk = this.chunks[this.cursor]!
      const available = chunk.length - this.cursorOffset
      const take = Math.min(available, left)
      f(
        this.cursorOffset === 0 && take === chunk.length
          ? chunk
          : chunk.subarray(this.cursorOffset, this.cursorOffset + take)
      )
      left -= take
      if (take === available) {
        this.cursor++
        this.cursorOffset = 0
      } else {
        this.cursorOffset += take
      }
    }
  }

  /** Decodes input of the current connection: DATA out, ACKs applied, END noted. */
  input(chunk: Uint8Array): InputResult {
    this.decoder.push(chunk)
    const data: Array<Uint8Array> = []
    let released = false
    let error: ResumeError | undefined
    while (error === undefined) {
      const record = this.decoder.next()
      if (record === undefined) break
      if (record._tag === "ResumeError") {
        error = record
        break
      }
      switch (record._tag) {
        case "Data":
          if (this.peerEnded) {
            error = violation("DataAfterEnd", `DATA after the peer's END at ${this.received}`)
            break
          }
          this.received += record.bytes.length
          if (this.received - this.delivered > this.capacity) {
            error = violation(
              "BufferOverrun",
              `the peer sent ${this.received - this.delivered} unacknowledged bytes; the buffer is ${this.capacity}`
            )
            break
          }
          data.push(record.bytes)
          break
        case "Ack":
          if (record.position < this.acked) {
            error = violation("AckBackwards", `ACK of ${record.position} after an ACK of ${this.acked}`)
          } else if (record.position > this.transmitted) {
            error = violation("AckBeyondSent", `ACK of ${record.position}; only ${this.transmitted} bytes were sent`)
          } else if (record.position > this.acked) {
            this.release(record.position)
            released = true
          }
          break
        case "End":
          if (record.position !== this.received) {
            error = violation("EndMismatch", `END at ${record.position}, but ${this.received} bytes were received`)
          } else {
            this.peerEnded = true
            this.peerEndAt = record.position
          }
          break
        case "Abort":
          error = resumeError(new Aborted({ code: record.code }))
          break
      }
    }
    return { data, released, error }
  }

  /** The session took `n` received bytes; returns whether an ACK is now due. */
  deliver(n: number): boolean {
    this.delivered += n
    if (this.delivered - this.ackSent >= this.ackEveryBytes) this.ackDue = true
    return this.ackDue
  }

  /** Whether the session can continue with a peer that has received `position` bytes. */
  canRewind(position: number): boolean {
    return position >= this.acked && position <= this.written
  }

  /**
   * Continues on a new connection: the peer has `peerReceived` bytes (checked with
   * {@link canRewind} first) and was told `delivered` in the handshake; undelivered input is
   * dropped (the caller drops its inbox), the peer sends it again. Returns the bytes this side
   * will send again.
   */
  rewind(peerReceived: number): number {
    if (!this.canRewind(peerReceived)) {
      throw new RangeError(`cannot rewind to ${peerReceived} (held: ${this.acked} to ${this.written})`)
    }
    const again = Math.max(0, this.transmitted - peerReceived)
    this.release(peerReceived)
    this.cursor = this.head
    this.cursorOffset = this.headSkip
    this.transmitted = peerReceived
    this.endTransmitted = false
    this.decoder.reset()
    this.dropUndelivered()
    this.ackSent = this.received
    this.ackDue = false
    this.replayed += again
    return again
  }

  /**
   * Forgets input that arrived but was not delivered (the connection it came on is gone): the
   * peer sends it again from `delivered`, so `received` — the position a resume reports — stays
   * fixed while a resume is in flight. After the peer's END nothing is dropped: its direction is
   * complete and held here (no more than `capacity`, since no DATA follows), and the resume
   * reports all of it.
   */
  dropUndelivered(): void {
    if (this.peerEnded) return
    this.received = this.delivered
    this.decoder.reset()
  }

  /** Drops `[acked, position)` from the front of the buffer. */
  private release(position: number): void {
    let drop = position - this.acked
    this.acked = position
    while (drop > 0) {
      const chunk = this.chunks[this.head]!
      const left = chunk.length - this.headSkip
      if (left <= drop) {
        drop -= left
        this.chunks[this.head] = EMPTY
        this.head++
        this.headSkip = 0
      } else {
        this.headSkip += drop
        drop = 0
      }
    }
    if (this.head === this.chunks.length) {
      this.chunks = []
      this.cursor = Math.max(0, this.cursor - this.head)
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head)
      this.cursor = Math.max(0, this.cursor - this.head)
      this.head = 0
    }
  }

  /** Chunks held (for leak checks). */
  get heldChunks(): number {
    return this.chunks.length - this.head
  }
}
