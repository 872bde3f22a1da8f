/**
 * The resumable transport: ONE {@link Transport} for the yamux session that outlives the TCP
 * connections beneath it. It drives a {@link ReplayState} (positions, replay buffer, ACKs) over
 * whichever connection is attached, and pauses while none is.
 *
 * Invariants:
 * - `read` delivers the peer's byte sequence exactly once, in order: bytes come only from the
 *   current connection (a chunk read off a connection that was given up is dropped), and a new
 *   connection starts at the position this side reported in the resume handshake: what was
 *   delivered. Input that arrived but was not read is dropped when its connection is lost (the
 *   peer sends it again), so that position cannot move while a resume is in flight.
 * - `write` hands bytes to the replay buffer (by reference) and completes while it has room; when
 *   it is full the writer waits, as for a full window — never dropping, never growing the buffer.
 * - One reader and one writer fiber per connection. The reader never stops: ACKs, END and ABORT
 *   take effect whether or not the session reads, so a side that only writes, or a session that
 *   paused its reads, still gets its buffer acknowledged; DATA waits in an inbox that the peer's
 *   own bound keeps below `capacity` (ACKs report delivered bytes only). ACKs never wait for
 *   buffer space, so two sides with full buffers still acknowledge each other.
 * - Losing a connection (a read or write failure, EOF without END, or silence: nothing received
 *   for `silenceMillis`) suspends: reads and writes wait (writes only once the buffer is full),
 *   the connection is reset and released, and the window starts. `attach`
 *   continues on a new connection; when the window runs out first, the transport fails for good
 *   with `Expired` and every pending and later operation fails with a `TransportError` whose cause
 *   is the {@link ResumeError} — the session above then fails as it does on a lost link today.
 * - Liveness lives here, beneath the session: each side sends an ACK as a heartbeat after
 *   `heartbeatMillis` without output, so silence means a dead connection. The session above must
 *   run without its own keepalive (a suspended link would otherwise look dead to it).
 * - Ending for good is explicit on the wire: `close` flushes the buffer and sends END; `reset` and
 *   local protocol errors send ABORT before closing the connection, so the peer fails promptly
 *   instead of waiting out its window.
 * - Time is read only through Effect's Clock (one timer fiber per transport), so tests drive
 *   heartbeats, silence and the window with TestClock.
 *
 * @since 0.1.0
 */
import { type Clock, Deferred, Effect, Exit, type Fiber, type Scope } from "effect"
import { Closed, Expired, type ResumeError, resumeError } from "../../resume/ResumeError.ts"
import { type Transport, TransportError } from "../../transport/Transport.ts"
import { Signal } from "../session/Signal.ts"
import { ReplayState } from "./Replay.ts"
import { AbortCode, encodeAbort } from "./Wire.ts"

/** The settings a {@link Resumable} runs with (validated by the public module). */
export interface ResumableSettings {
  readonly bufferBytes: number
  readonly ackEveryBytes: number
  readonly maxRecordBytes: number
  readonly windowMillis: number
  readonly heartbeatMillis: number
  readonly silenceMillis: number
}

/** Where a resumable transport stands. */
export type ResumeStatus = "connected" | "suspended" | "ended"

/** A lifecycle event, for logs and metrics (never on the data path). */
export type ResumeEvent =
  | { readonly _tag: "Lost"; readonly reason: string }
  | {
      readonly _tag: "Resumed"
      /** Bytes this side sends again. */
      readonly replayedBytes: number
      /** From the loss to this resume. */
      readonly pausedMillis: number
    }
  | { readonly _tag: "Ended"; readonly error: ResumeError }

/** Counters and positions of one resumable transport. */
export interface ResumeStats {
  readonly status: ResumeStatus
  /** Bytes written by the session / sent on some connection / acknowledged by the peer. */
  readonly written: number
  readonly transmitted: number
  readonly acked: number
  /** Bytes of the peer's direction received / handed to the session. */
  readonly received: number
  readonly delivered: number
  /** Bytes held for replay. */
  readonly unacked: number
  /** Bytes sent again after resumes. */
  readonly replayedBytes: number
  /** Successful resumes. */
  readonly resumes: number
  /** What ended the last connection. */
  readonly lastLoss: string
}

/** How long a closing transport may take to flush its buffer and END before the connection is reset. */
const FLUSH_MILLIS = 2_000
/** How long an ABORT may take to be written before the connection is reset anyway. */
const ABORT_WRITE_MILLIS = 1_000

/** One TCP (or TLS, or in-memory) connection attached to the transport. */
class Connection {
  readonly transport: Transport
  readonly release: Effect.Effect<void>
  readonly detached = Deferred.makeUnsafe<void>()
  /** Sent before any record (the acceptor's ResumeAccept). */
  preamble: Uint8Array | undefined
  lastSent: number
  lastReceived: number
  writer: Fiber.Fiber<void> | undefined = undefined
  constructor(transport: Transport, release: Effect.Effect<void>, preamble: Uint8Array | undefined, now: number) {
    this.transport = transport
    this.release = release
    this.preamble = preamble
    this.lastSent = now
    this.lastReceived = now
  }
}

const asTransportError = (operation: "read" | "write", error: ResumeError): TransportError =>
  new TransportError({ operation, message: `resumable link: ${error.message}`, cause: error })

/** The resumable transport's state and fibers. Create with {@link makeResumable}. */
export class Resumable implements Transport {
  readonly state: ReplayState
  readonly settings: ResumableSettings
  readonly eventLoopDriven: boolean
  readonly done = Deferred.makeUnsafe<ResumeError>()
  status: ResumeStatus = "suspended"
  failure: ResumeError | undefined = undefined
  resumes = 0
  lostAt = 0
  lastLoss = "not connected yet"
  private conn: Connection | undefined = undefined
  private address: string
  private inbox: Array<Uint8Array> = []
  private inboxHead = 0
  private attachedOnce = false
  /** Attach, loss, end: supervisors. */
  private readonly statusSignal = new Signal()
  /** Input arrived (or the end): the session's reader. */
  private readonly inboxSignal = new Signal()
  /** Buffer space freed (or the end): writers waiting for room. */
  private readonly spaceSignal = new Signal()
  /** Output is due: the current connection's writer. */
  private readonly outSignal = new Signal()
  private readonly scope: Scope.Scope
  private readonly clock: Clock.Clock
  private readonly onEvent: ((event: ResumeEvent) => void) | undefined

  constructor(
    settings: ResumableSettings,
    scope: Scope.Scope,
    clock: Clock.Clock,
    first: Transport,
    onEvent: ((event: ResumeEvent) => void) | undefined
  ) {
    this.settings = settings
    this.state = new ReplayState({
      capacity: settings.bufferBytes,
      ackEveryBytes: settings.ackEveryBytes,
      maxRecordBytes: settings.maxRecordBytes
    })
    this.scope = scope
    this.clock = clock
    this.onEvent = onEvent
    this.eventLoopDriven = first.eventLoopDriven === true
    this.address = first.remoteAddress
  }

  get remoteAddress(): string {
    return this.address
  }

  private now(): number {
    return this.clock.currentTimeMillisUnsafe()
  }

  // Transport -------------------------------------------------------------------------------------

  readonly read: Effect.Effect<Uint8Array | null, TransportError> = Effect.suspend(() => this.readStep())

  private readStep(): Effect.Effect<Uint8Array | null, TransportError> {
    if (this.inboxHead < this.inbox.length) {
      const chunk = this.inbox[this.inboxHead]!
      this.inbox[this.inboxHead++] = undefined as unknown as Uint8Array
      if (this.inboxHead === this.inbox.length) {
        this.inbox = []
        this.inboxHead = 0
      }
      if (this.state.deliver(chunk.length)) this.outSignal.notify()
      return Effect.succeed(chunk)
    }
    // The peer's direction is complete: its end stands even if the session ended since.
    if (this.state.peerEnded) return Effect.succeed(null)
    if (this.failure !== undefined) return Effect.fail(asTransportError("read", this.failure))
    return Effect.flatMap(this.inboxSignal.wait, () => this.read)
  }

  /** Reads connection `c` until it is given up: records take effect at once, DATA goes to the inbox. */
  private readLoop(c: Connection): Effect.Effect<void> {
    const loop: Effect.Effect<void> = Effect.suspend(() => {
      if (this.conn !== c) return Effect.void
      return Effect.matchEffect(c.transport.read, {
        onFailure: (error) => this.lose(c, `read failed: ${error.message}`),
        onSuccess: (chunk) => {
          if (chunk === null) {
            // After END, EOF is the peer closing the session; without it, a lost connection.
            if (!this.state.peerEnded) return this.lose(c, "the connection closed without END")
            return this.end(
              resumeError(new Closed({ message: "the peer closed the resumable link" })),
              "close",
              AbortCode.Aborted
            )
          }
          // Bytes of a connection already given up: the new one replays from our reported position.
          if (this.conn !== c) return Effect.void
          c.lastReceived = this.now()
          const wasEnded = this.state.peerEnded
          const result = this.state.input(chunk)
          for (let i = 0; i < result.data.length; i++) this.inbox.push(result.data[i]!)
          if (result.data.length > 0 || this.state.peerEnded !== wasEnded) this.inboxSignal.notify()
          if (result.released) this.spaceSignal.notify()
          if (this.state.hasOutput) this.outSignal.notify()
          if (result.error !== undefined) {
            const aborted = result.error.reason._tag === "Aborted"
            return this.end(result.error, aborted ? "close" : "abort", AbortCode.ProtocolError)
          }
          return loop
        }
      })
    })
    return loop
  }

  write(chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, TransportError> {
    let index = 0
    let offset = 0
    const step = (): Effect.Effect<void, TransportError> => {
      if (this.failure !== undefined) return Effect.fail(asTransportError("write", this.failure))
      if (this.state.ending) {
        return Effect.fail(new TransportError({ operation: "write", message: "write after closeWrite" }))
      }
      let appended = false
      while (index < chunks.length) {
        const chunk = chunks[index]!
        const piece = offset === 0 ? chunk : chunk.subarray(offset)
        const n = this.state.append(piece)
        if (n > 0) appended = true
        if (n === piece.length) {
          index++
          offset = 0
          continue
        }
        offset += n
        if (appended) this.outSignal.notify()
        return Effect.flatMap(this.spaceSignal.wait, step)
      }
      if (appended) this.outSignal.notify()
      return Effect.void
    }
    return Effect.suspend(step)
  }

  readonly closeWrite: Effect.Effect<void> = Effect.sync(() => {
    if (this.failure !== undefined) return
    this.state.end()
    this.outSignal.notify()
  })

  /**
   * Ends for good after the buffer and END go out on the current connection (in the background,
   * bounded by {@link FLUSH_MILLIS}); returns at once, as closing a socket does.
   */
  readonly close: Effect.Effect<void> = Effect.suspend(() => {
    if (this.failure !== undefined) return Effect.void
    this.state.end()
    return this.end(resumeError(new Closed({ message: "the resumable link was closed" })), "close", AbortCode.Aborted)
  })

  /** Ends for good: ABORT to the peer (in the background, bounded), then the connection closes. */
  readonly reset: Effect.Effect<void> = Effect.suspend(() =>
    this.end(resumeError(new Closed({ message: "the resumable link was reset" })), "abort", AbortCode.Aborted)
  )

  // Connections -----------------------------------------------------------------------------------

  /** Whether a peer that has received (been delivered) `position` bytes can be served. */
  canRewind(position: number): boolean {
    return this.failure === undefined && this.state.canRewind(position)
  }

  /**
   * Continues on `transport`, whose peer has received `peerReceived` bytes (the caller checked
   * {@link canRewind} in the same synchronous step). Any current connection is given up. The
   * `preamble` (the acceptor's ResumeAccept, given this side's position) goes out before any
   * record. The returned `start` forks the connection's reader and writer; `detached` completes
   * once this connection is detached (lost, replaced, ended). `release` runs after the connection
   * is closed or reset.
   */
  attachUnsafe(
    transport: Transport,
    peerReceived: number,
    release: Effect.Effect<void>,
    preamble?: (ownReceived: number) => Uint8Array
  ): { readonly start: Effect.Effect<void>; readonly detached: Effect.Effect<void> } {
    const previous = this.conn
    const now = this.now()
    const replayed = this.state.rewind(peerReceived)
    // Computed after the rewind: a replaced connection's undelivered input was just dropped.
    const c = new Connection(transport, release, preamble?.(this.state.received), now)
    // Undelivered input is dropped with the rewind: the peer replays it from `delivered`.
    this.inbox = []
    this.inboxHead = 0
    if (previous !== undefined) this.lastLoss = "replaced by a resumed connection"
    if (this.attachedOnce) {
      this.resumes++
      this.onEvent?.({
        _tag: "Resumed",
        replayedBytes: replayed,
        pausedMillis: previous === undefined ? now - this.lostAt : 0
      })
    }
    this.attachedOnce = true
    this.conn = c
    this.status = "connected"
    this.address = transport.remoteAddress
    this.statusSignal.notify()
    this.outSignal.notify()
    this.spaceSignal.notify()
    const replaced = previous === undefined ? Effect.void : this.detach(previous, "reset")
    // Forked in the transport's scope: reader and writer belong to the connection, not the caller.
    const start = Effect.andThen(
      replaced,
      Effect.flatMap(Effect.forkIn(this.writeLoop(c), this.scope), (fiber) =>
        Effect.andThen(
          Effect.sync(() => {
            c.writer = fiber
          }),
          Effect.asVoid(Effect.forkIn(this.readLoop(c), this.scope))
        )
      )
    )
    return { start, detached: Deferred.await(c.detached) }
  }

  /** Waits until the transport is no longer connected (lost or ended). */
  readonly awaitNotConnected: Effect.Effect<ResumeStatus> = Effect.suspend(() =>
    this.status !== "connected"
      ? Effect.succeed(this.status)
      : Effect.flatMap(this.statusSignal.wait, () => this.awaitNotConnected)
  )

  private writeLoop(c: Connection): Effect.Effect<void> {
    const loop: Effect.Effect<void, TransportError> = Effect.suspend(() => {
      if (this.conn !== c) return Effect.void
      if (c.preamble !== undefined) {
        const preamble = c.preamble
        c.preamble = undefined
        c.lastSent = this.now()
        return Effect.andThen(c.transport.write([preamble]), loop)
      }
      if (!this.state.hasOutput) return Effect.andThen(this.outSignal.wait, loop)
      const batch = this.state.takeOutput()
      c.lastSent = this.now()
      return Effect.andThen(c.transport.write(batch), loop)
    })
    return loop.pipe(Effect.catch((error) => this.lose(c, `write failed: ${error.message}`)))
  }

  /** Gives up connection `c` (when still current): suspends and starts the window. */
  lose(c: Connection, reason: string): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.conn !== c) return Effect.void
      this.conn = undefined
      this.status = "suspended"
      this.lostAt = this.now()
      this.lastLoss = reason
      // What arrived but was not read is sent again after the resume: `delivered`, the position
      // a resume request reports, must not move while one is in flight.
      this.state.dropUndelivered()
      this.inbox = []
      this.inboxHead = 0
      this.statusSignal.notify()
      this.outSignal.notify()
      this.onEvent?.({ _tag: "Lost", reason })
      return this.detach(c, "reset")
    })
  }

  /** Gives up the current connection, if any (a supervisor saw it fail). */
  loseCurrent(reason: string): Effect.Effect<void> {
    return Effect.suspend(() => (this.conn === undefined ? Effect.void : this.lose(this.conn, reason)))
  }

  private detach(c: Connection, how: "reset" | "close"): Effect.Effect<void> {
    return Effect.uninterruptible(
      (how === "reset" ? c.transport.reset : c.transport.close).pipe(
        Effect.andThen(c.release),
        Effect.ensuring(Deferred.done(c.detached, Exit.void))
      )
    )
  }

  /**
   * Ends for good with `error`; returns at once. `close`: the buffer and END go out, then the
   * connection closes; `abort`: ABORT(`code`) goes out, then it closes; `drop`: it is reset.
   */
  end(error: ResumeError, how: "abort" | "close" | "drop", code: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.failure !== undefined) return Effect.void
      this.failure = error
      this.status = "ended"
      const c = this.conn
      this.conn = undefined
      this.statusSignal.notify()
      this.inboxSignal.notify()
      this.spaceSignal.notify()
      this.outSignal.notify()
      Deferred.doneUnsafe(this.done, Exit.succeed(error))
      this.onEvent?.({ _tag: "Ended", error })
      if (c === undefined) return Effect.void
      if (how === "drop") return this.detach(c, "reset")
      if (how === "abort") return this.lastWords(c, c.transport.write([encodeAbort(code)]), ABORT_WRITE_MILLIS)
      const flush: Effect.Effect<void, TransportError> = Effect.suspend(() =>
        this.state.hasOutput ? Effect.andThen(c.transport.write(this.state.takeOutput()), flush) : Effect.void
      )
      return this.lastWords(c, flush, FLUSH_MILLIS)
    })
  }

  /**
   * Sends `words` on `c`, then closes it; never waits for it. The fiber starts at once, so the
   * bytes are queued on the transport before this returns (behind whatever the connection's
   * writer queued: each transport write is queued whole); after `millis`, or when the transport's
   * scope closes first, the connection is closed without waiting further.
   */
  private lastWords(c: Connection, words: Effect.Effect<void, TransportError>, millis: number): Effect.Effect<void> {
    return Effect.asVoid(
      Effect.forkIn(
        words.pipe(
          Effect.timeoutOption(millis),
          Effect.ignore,
          Effect.andThen(this.detach(c, "close")),
          // The transport's scope closing: close (not reset), so that what was queued still goes out.
          Effect.onInterrupt(() => this.detach(c, "close"))
        ),
        this.scope,
        { startImmediately: true }
      )
    )
  }

  /** Heartbeats, delayed ACKs, silence and the window; runs for the transport's life. */
  timer(): Effect.Effect<void> {
    const { heartbeatMillis, silenceMillis, windowMillis } = this.settings
    const tick = Math.max(1, Math.floor(Math.min(heartbeatMillis, silenceMillis, windowMillis) / 4))
    const step: Effect.Effect<void> = Effect.suspend(() => {
      if (this.failure !== undefined) return Effect.void
      const now = this.now()
      const c = this.conn
      let action: Effect.Effect<void> = Effect.void
      if (c !== undefined) {
        if (now - c.lastReceived >= silenceMillis) {
          action = this.lose(c, `nothing received for ${silenceMillis} ms`)
        } else if (now - c.lastSent >= heartbeatMillis || this.state.delivered > this.state.ackSent) {
          // A heartbeat, or the ACK of a tail below `ackEveryBytes`: either way an ACK.
          this.state.requestAck()
          this.outSignal.notify()
        }
      } else if (this.status === "suspended" && now - this.lostAt >= windowMillis) {
        action = this.end(
          resumeError(new Expired({ windowMillis, lastLoss: this.lastLoss })),
          "drop",
          AbortCode.Aborted
        )
      }
      return Effect.andThen(action, Effect.andThen(Effect.sleep(tick), step))
    })
    return step
  }

  /** Counters and positions. */
  stats(): ResumeStats {
    const s = this.state
    return {
      status: this.status,
      written: s.written,
      transmitted: s.transmitted,
      acked: s.acked,
      received: s.received,
      delivered: s.delivered,
      unacked: s.unacked,
      replayedBytes: s.replayed,
      resumes: this.resumes,
      lastLoss: this.lastLoss
    }
  }
}
