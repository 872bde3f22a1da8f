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
 * - A connection is always read: ACKs, END and ABORT take effect whether or not the session reads,
 *   so a side that only writes, or a session that paused its reads, still gets its buffer
 *   acknowledged; DATA waits in an inbox that the peer's own bound keeps below `capacity` (ACKs
 *   report delivered bytes only). ACKs never wait for buffer space, so two sides with full buffers
 *   still acknowledge each other.
 * - Two ways to drive a connection, one behaviour. A transport with a callback-level port (TCP,
 *   TLS) is read by callback and written with synchronous sends: a chunk costs the session one
 *   fiber resumption, as on a plain link, and the session's own `write` sends at once when the
 *   socket has room. Any other transport (in-memory pairs, wrappers) gets a reader and a writer
 *   fiber. Either way one writer fiber per connection sends what the session's writes did not:
 *   heartbeats, delayed ACKs, replays, backlog.
 * - Losing a connection (a read or write failure, EOF without END, or silence: nothing received
 *   for `silenceMillis`) suspends: reads and writes wait (writes only once the buffer is full),
 *   the connection is reset and released, and the window starts. `attach` continues on a new
 *   connection; when the window runs out first, the transport fails for good with `Expired` and
 *   every pending and later operation fails with a `TransportError` whose cause is the
 *   {@link ResumeError} — the session above then fails as it does on a lost link today.
 * - Liveness lives here, beneath the session: each side sends an ACK as a heartbeat after
 *   `heartbeatMillis` without output, so silence means a dead connection. The session above must
 *   run without its own keepalive (a suspended link would otherwise look dead to it).
 * - Ending for good is explicit on the wire: `close` flushes the buffer and sends END; `reset` and
 *   local protocol errors send ABORT before closing the connection, so the peer fails promptly
 *   instead of waiting out its window. Neither waits for the peer.
 * - Time is read only through Effect's Clock (one timer fiber per transport), so tests drive
 *   heartbeats, silence and the window with TestClock.
 *
 * @since 0.1.0
 */
import { type Clock, type Context, Deferred, Effect, Exit, type Fiber, type Scope } from "effect"
import { Closed, Expired, type ResumeError, resumeError } from "../../resume/ResumeError.ts"
import { type DirectPort, type Transport, TransportError } from "../../transport/Transport.ts"
import { defer, Signal } from "../session/Signal.ts"
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
  /** The transport's callback-level port, when it has one: read by callback, written by `send`. */
  readonly port: DirectPort<TransportError> | undefined
  readonly release: Effect.Effect<void>
  readonly detached = Deferred.makeUnsafe<void>()
  /** Sent before any record (the acceptor's ResumeAccept). */
  preamble: Uint8Array | undefined
  lastSent: number
  lastReceived: number
  writer: Fiber.Fiber<void> | undefined = undefined
  /** Without a port: a transport write is in flight (by the writer fiber or inline). */
  busy = false
  /** With a port: `send` reported the socket above its high-water mark; writers wait for `writable`. */
  blocked = false
  readonly writable = new Signal()
  constructor(transport: Transport, release: Effect.Effect<void>, preamble: Uint8Array | undefined, now: number) {
    this.transport = transport
    this.port = transport.directPort?.()
    this.release = release
    this.preamble = preamble
    this.lastSent = now
    this.lastReceived = now
  }
}

const asTransportError = (operation: "read" | "write", error: ResumeError): TransportError =>
  new TransportError({ operation, message: `resumable link: ${error.message}`, cause: error })

/** The resumable transport's state and fibers. Create with `Resume.dial` or an acceptor. */
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
  /** The session's read, parked for input (see {@link wakeReader}). */
  private pendingRead: ((effect: Effect.Effect<Uint8Array | null, TransportError>) => void) | undefined = undefined
  /** Buffer space freed (or the end): writers waiting for room. */
  private readonly spaceSignal = new Signal()
  /** Output is due: the current connection's writer fiber. */
  private readonly outSignal = new Signal()
  private readonly scope: Scope.Scope
  private readonly clock: Clock.Clock
  /** Runs effects from port callbacks (losses, the end), which cannot wait. */
  private readonly run: <A, E>(effect: Effect.Effect<A, E>) => void
  private readonly onEvent: ((event: ResumeEvent) => void) | undefined

  constructor(
    settings: ResumableSettings,
    scope: Scope.Scope,
    clock: Clock.Clock,
    services: Context.Context<never>,
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
    const fork = Effect.runForkWith(services)
    this.run = (effect) => {
      fork(effect)
    }
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

  // Transport: the session's side -------------------------------------------------------------------

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
    return this.parkedRead
  }

  /** The session's read, parked until input (or the end) arrives; one at a time, as on any transport. */
  private readonly parkedRead: Effect.Effect<Uint8Array | null, TransportError> = Effect.callback((resume) => {
    this.pendingRead = resume
    return Effect.sync(() => {
      if (this.pendingRead === resume) this.pendingRead = undefined
    })
  })

  /**
   * Resumes a parked session read. `now`: synchronously — only at the very end of processing a
   * connection's input, when nothing of this transport's state is half-updated (the session then
   * routes its frames on this stack, as on a socket's data callback); otherwise on the wake-up
   * microtask.
   */
  private wakeReader(now: boolean): void {
    const resume = this.pendingRead
    if (resume === undefined) return
    this.pendingRead = undefined
    if (now) resume(this.read)
    else defer(() => resume(this.read))
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
      return appended ? this.sendInline() : Effect.void
    }
    return Effect.suspend(step)
  }

  /**
   * Sends the next record from the caller's fiber (the session's writer) when the connection can
   * take it now: one fiber hop fewer per batch. Otherwise, and for any backlog beyond one record,
   * the writer fiber is woken. A failed send loses the connection, never the caller's bytes (they
   * are in the replay buffer): the caller's write succeeds.
   */
  private sendInline(): Effect.Effect<void> {
    const c = this.conn
    if (c === undefined || c.busy || c.blocked || c.preamble !== undefined) {
      this.outSignal.notify()
      return Effect.void
    }
    const batch = this.state.takeOutput()
    c.lastSent = this.now()
    if (c.port !== undefined && batch.length === 1) {
      if (!c.port.send(batch[0]!)) c.blocked = true
      if (this.state.hasOutput) this.outSignal.notify()
      return Effect.void
    }
    return this.writeOn(c, batch)
  }

  /**
   * Queues `batch` on a port connection: one buffer with a synchronous `send`, several with the
   * transport's corked write (one system call for the lot; it waits only for backpressure).
   */
  private sendOnPort(
    c: Connection,
    port: DirectPort<TransportError>,
    batch: ReadonlyArray<Uint8Array>
  ): Effect.Effect<void> {
    if (batch.length !== 1) return this.writeOn(c, batch)
    if (!port.send(batch[0]!)) c.blocked = true
    return Effect.void
  }

  /** Writes `batch` on a fiber-driven connection; a failure loses the connection (the bytes are kept). */
  private writeOn(c: Connection, batch: ReadonlyArray<Uint8Array>): Effect.Effect<void> {
    c.busy = true
    // On interruption the batch was already queued on the transport whole.
    return Effect.onExit(
      Effect.catch(c.transport.write(batch), (error) => this.lose(c, `write failed: ${error.message}`)),
      () =>
        Effect.sync(() => {
          c.busy = false
          if (this.state.hasOutput) this.outSignal.notify()
        })
    )
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

  // Connections ---------------------------------------------------------------------------------

  /** Whether a peer that has received (been delivered) `position` bytes can be served. */
  canRewind(position: number): boolean {
    return this.failure === undefined && this.state.canRewind(position)
  }

  /**
   * Continues on `transport`, whose peer has received `peerReceived` bytes (the caller checked
   * {@link canRewind} in the same synchronous step). Any current connection is given up. The
   * `preamble` (the acceptor's ResumeAccept, given this side's position) goes out before any
   * record; `leftover` is input that arrived behind the handshake. The returned `start` starts
   * reading and writing the connection; `detached` completes once it is detached (lost, replaced,
   * ended). `release` runs after the connection is closed or reset.
   */
  attachUnsafe(
    transport: Transport,
    peerReceived: number,
    release: Effect.Effect<void>,
    options: { readonly preamble?: (ownReceived: number) => Uint8Array; readonly leftover?: Uint8Array } = {}
  ): { readonly start: Effect.Effect<void>; readonly detached: Effect.Effect<void> } {
    const previous = this.conn
    const now = this.now()
    const replayed = this.state.rewind(peerReceived)
    // Undelivered input is dropped with the rewind: the peer replays it from `delivered`. After the
    // peer's END nothing is replayed (its direction is complete and counted as received), so what
    // waits in the inbox is all the session will get: it stays.
    if (!this.state.peerEnded) {
      this.inbox = []
      this.inboxHead = 0
    }
    if (previous !== undefined) this.lastLoss = "replaced by a resumed connection"
    // Computed after the rewind: a replaced connection's undelivered input was just dropped.
    const c = new Connection(transport, release, options.preamble?.(this.state.received), now)
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
    const leftover = options.leftover
    // Forked in the transport's scope: the fibers belong to the connection, not to the caller.
    const start = Effect.andThen(
      replaced,
      Effect.suspend(() => {
        if (this.conn !== c) return Effect.void
        if (leftover !== undefined && leftover.length > 0) {
          const ended = this.receive(c, leftover)
          if (ended !== undefined) return ended
        }
        const port = c.port
        if (port !== undefined) port.attach(this.listenerFor(c, port))
        return Effect.flatMap(Effect.forkIn(this.writeLoop(c), this.scope), (fiber) => {
          c.writer = fiber
          if (port !== undefined) {
            // Delivers what the socket buffered (synchronously, into `receive`), then lets input flow.
            port.resumeInput()
            return Effect.void
          }
          return Effect.asVoid(Effect.forkIn(this.readLoop(c), this.scope))
        })
      })
    )
    return { start, detached: Deferred.await(c.detached) }
  }

  /**
   * Takes a chunk of `c`'s input: records take effect, DATA goes to the inbox, a parked session
   * read is resumed (last, with the state settled). Returns the effect that ends the session when
   * the input broke the protocol or the peer aborted.
   */
  private receive(c: Connection, chunk: Uint8Array): Effect.Effect<void> | undefined {
    c.lastReceived = this.now()
    const wasEnded = this.state.peerEnded
    const result = this.state.input(chunk)
    for (let i = 0; i < result.data.length; i++) this.inbox.push(result.data[i]!)
    if (result.released) this.spaceSignal.notify()
    if (this.state.hasOutput) this.outSignal.notify()
    if (result.error !== undefined) {
      const aborted = result.error.reason._tag === "Aborted"
      return this.end(result.error, aborted ? "close" : "abort", AbortCode.ProtocolError)
    }
    if (result.data.length > 0 || this.state.peerEnded !== wasEnded) this.wakeReader(true)
    return undefined
  }

  /** The effect of `c`'s input ending: after END the peer closed the session, else `c` is lost. */
  private inputEnded(c: Connection): Effect.Effect<void> {
    if (!this.state.peerEnded) return this.lose(c, "the connection closed without END")
    return this.end(
      resumeError(new Closed({ message: "the peer closed the resumable link" })),
      "close",
      AbortCode.Aborted
    )
  }

  /** Callbacks of a port connection: the same steps as {@link readLoop}, without a fiber. */
  private listenerFor(c: Connection, port: DirectPort<TransportError>) {
    return {
      input: (chunk: Uint8Array) => {
        // Bytes of a connection already given up: the new one replays from our reported position.
        if (this.conn !== c) return
        const ended = this.receive(c, chunk)
        if (ended !== undefined) this.run(ended)
      },
      inputEnd: () => {
        if (this.conn === c) this.run(this.inputEnded(c))
      },
      writable: () => {
        c.blocked = false
        c.writable.notify()
        if (this.state.hasOutput) this.outSignal.notify()
      },
      failure: (error: TransportError) => {
        port.detach()
        this.run(this.lose(c, `connection failed: ${error.message}`))
      }
    }
  }

  /** Reads a fiber-driven connection until it is given up. */
  private readLoop(c: Connection): Effect.Effect<void> {
    const loop: Effect.Effect<void> = Effect.suspend(() => {
      if (this.conn !== c) return Effect.void
      return Effect.matchEffect(c.transport.read, {
        onFailure: (error) => this.lose(c, `read failed: ${error.message}`),
        onSuccess: (chunk) => {
          if (chunk === null) return this.inputEnded(c)
          // Bytes of a connection already given up: the new one replays from our reported position.
          if (this.conn !== c) return Effect.void
          return this.receive(c, chunk) ?? loop
        }
      })
    })
    return loop
  }

  /** Waits until the transport is no longer connected (lost or ended). */
  readonly awaitNotConnected: Effect.Effect<ResumeStatus> = Effect.suspend(() =>
    this.status !== "connected"
      ? Effect.succeed(this.status)
      : Effect.flatMap(this.statusSignal.wait, () => this.awaitNotConnected)
  )

  /** Sends what the session's own writes did not (preamble, heartbeats, ACKs, replays, backlog). */
  private writeLoop(c: Connection): Effect.Effect<void> {
    const loop: Effect.Effect<void> = Effect.suspend(() => {
      if (this.conn !== c) return Effect.void
      if (c.blocked) return Effect.andThen(c.writable.wait, loop)
      if (c.busy) return Effect.andThen(this.outSignal.wait, loop)
      let batch: Array<Uint8Array>
      if (c.preamble !== undefined) {
        batch = [c.preamble]
        c.preamble = undefined
      } else if (this.state.hasOutput) {
        batch = this.state.takeOutput()
      } else {
        return Effect.andThen(this.outSignal.wait, loop)
      }
      c.lastSent = this.now()
      if (c.port !== undefined) return Effect.andThen(this.sendOnPort(c, c.port, batch), loop)
      return Effect.andThen(this.writeOn(c, batch), loop)
    })
    return loop
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
      // After the peer's END nothing is dropped or sent again: the inbox is the rest of its bytes.
      this.state.dropUndelivered()
      if (!this.state.peerEnded) {
        this.inbox = []
        this.inboxHead = 0
      }
      this.statusSignal.notify()
      this.outSignal.notify()
      c.writable.notify()
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
      Effect.suspend(() => {
        c.port?.detach()
        return how === "reset" ? c.transport.reset : c.transport.close
      }).pipe(Effect.andThen(c.release), Effect.ensuring(Deferred.done(c.detached, Exit.void)))
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
      this.wakeReader(false)
      this.spaceSignal.notify()
      this.outSignal.notify()
      Deferred.doneUnsafe(this.done, Exit.succeed(error))
      this.onEvent?.({ _tag: "Ended", error })
      if (c === undefined) return Effect.void
      if (how === "drop") return this.detach(c, "reset")
      if (how === "abort") return this.lastWords(c, [encodeAbort(code)], false, ABORT_WRITE_MILLIS)
      return this.lastWords(c, undefined, true, FLUSH_MILLIS)
    })
  }

  /**
   * Sends `first` and, with `flush`, everything still due (the buffer's rest, then END) on `c`,
   * then closes it; never waits for it. The fiber starts at once, so the bytes are queued on the
   * transport before this returns (behind whatever was queued: each batch is queued whole); after
   * `millis`, or when the transport's scope closes first, the connection is closed without waiting
   * further.
   */
  private lastWords(
    c: Connection,
    first: ReadonlyArray<Uint8Array> | undefined,
    flush: boolean,
    millis: number
  ): Effect.Effect<void> {
    const send = (batch: ReadonlyArray<Uint8Array>): Effect.Effect<void, TransportError> => {
      if (c.port === undefined || batch.length !== 1) return c.transport.write(batch)
      c.port.send(batch[0]!)
      return Effect.void
    }
    const drain: Effect.Effect<void, TransportError> = Effect.suspend(() =>
      flush && this.state.hasOutput ? Effect.andThen(send(this.state.takeOutput()), drain) : Effect.void
    )
    const words =
      first === undefined
        ? drain
        : Effect.andThen(
            Effect.suspend(() => send(first)),
            drain
          )
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
