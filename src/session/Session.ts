/**
 * A yamux session over one transport: opens and accepts streams, routes frames, keeps the link alive.
 *
 * Invariants:
 * - One reader decodes frames and routes each in O(1) through the registry keyed by stream id;
 *   it never waits on a single stream (DATA is checked against the stream's window at header time
 *   and lands in that stream's buffer, in parts when it spans reads). It pauses reading the link
 *   only when the session as a whole buffers more than `maxSessionBuffer` bytes. The reader is a
 *   fiber until the transport offers a `DirectPort` (a socket, once any bytes read ahead by a
 *   handshake are consumed); from then on the socket's `'data'` callback feeds the core directly.
 * - Abuse ends the session with GO_AWAY(1), counted under its {@link SessionLimit} and reported once
 *   (a `LimitReached` event with the reason): more pings, refused SYNs, rapid resets (RST of a stream
 *   opened less than a second before) or credit-only frames per second than the flood budgets
 *   allow; more than `maxControlBacklog` control frames queued for a peer that does not read them;
 *   a frame header or body left incomplete for `frameTimeoutMillis`. The budgets cost a counter and
 *   a window start each, read against the time of the chunk being decoded; the deadline is checked
 *   by the timer sweep, and time the session spends not reading (its own backpressure) never counts.
 * - One writer fiber per link drains the {@link Outbox}: control first, DATA round-robin, one
 *   transport write per batch, one fiber wake-up per batch.
 * - Ids are never reused: odd for the dialling side, even for the listening side. A SYN of the wrong
 *   parity, a duplicate SYN for a live id, a frame for a never-opened id, DATA beyond the window and
 *   credit beyond 2^32-1 are protocol errors: GO_AWAY(1), then the session closes.
 * - When the session dies, every stream and every waiter fails with the same typed {@link MuxError};
 *   nothing waits forever. Graceful close sends GO_AWAY(0) and drains under a deadline; `retire`
 *   (a server's shutdown) also accepts the SYNs that crossed its GO_AWAY, fenced by a PING behind it,
 *   until the session is closed: `close` accepts nothing more (backlog reset, fence shut), so its
 *   drain waits only for streams someone serves and ends as soon as none is left.
 * - Time is read only through Effect's Clock, so tests drive keepalive and timeouts with TestClock.
 *
 * @since 0.1.0
 */
import { Clock, Deferred, Effect, Exit, Fiber, type Scope } from "effect"
import { RateBudget } from "../internal/session/Budget.ts"
import { Outbox } from "../internal/session/Outbox.ts"
import { defer, Signal } from "../internal/session/Signal.ts"
import {
  type CoreStream,
  MuxStreamImpl,
  type OutboundStream,
  type StreamHost,
  scopedStream
} from "../internal/session/Stream.ts"
import { Flags, FrameType, GoAwayCode, HEADER_SIZE, INITIAL_WINDOW, MAX_STREAM_ID } from "../protocol/Constants.ts"
import { Decoder, FrameError, type Header } from "../protocol/Decoder.ts"
import type { Frame } from "../protocol/Frame.ts"
import type { DirectListener, DirectPort, Transport, TransportError } from "../transport/Transport.ts"
import { type ConfigError, makeSessionConfig, type SessionConfig } from "./Config.ts"
import {
  BudgetExceeded,
  type FloodBudget,
  FrameTimeout,
  KeepaliveTimeout,
  type MuxError,
  muxError,
  OpenThrottled,
  OpenTimeout,
  ProtocolError,
  RemoteGoAway,
  SessionClosed,
  StreamsExhausted,
  TransportFailed,
  WindowExceeded
} from "./MuxError.ts"
import type { MuxStream } from "./MuxStream.ts"

/**
 * A lifecycle event of a session, for logs and metrics (never on the data path).
 *
 * @since 0.1.0
 * @category models
 */
export type SessionEvent =
  | { readonly _tag: "StreamOpened"; readonly streamId: number; readonly local: boolean }
  | { readonly _tag: "StreamClosed"; readonly streamId: number; readonly reset: boolean }
  | { readonly _tag: "GoAwayReceived"; readonly code: number }
  /** Every stream id has been used: the session sent GO_AWAY(0) and takes no new opens. */
  | { readonly _tag: "StreamsExhausted" }
  /** A limit was reached; `detail` says what happened when the limit ended the session. */
  | { readonly _tag: "LimitReached"; readonly limit: SessionLimit; readonly streamId: number; readonly detail?: string }
  | { readonly _tag: "SessionClosed"; readonly error: MuxError }

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionOptions {
  /** The dialling side (odd stream ids). */
  readonly client: boolean
  /** Overrides of the defaults; validated. */
  readonly config?: Partial<SessionConfig>
  /** Receives lifecycle events synchronously; must not throw or block. */
  readonly onEvent?: (event: SessionEvent) => void
  /** The first stream id this side opens (default 1 or 2); a seam for testing id exhaustion. */
  readonly firstStreamId?: number
}

/**
 * A limit whose reach has a defined outcome (see {@link SessionCounters}).
 *
 * @since 0.1.0
 * @category models
 */
export type SessionLimit =
  /** Inbound SYN while `acceptBacklog` streams wait for `accept`: the stream is refused with RST. */
  | "acceptBacklog"
  /** Inbound SYN while `maxStreams` streams are open: the stream is refused with RST. */
  | "maxStreams"
  /** A stream without traffic for `idleTimeoutMillis`: it is reset. */
  | "idleTimeout"
  /** `maxSessionBuffer` bytes buffered: the session stops reading the link until readers catch up. */
  | "maxSessionBuffer"
  /** A frame header or body incomplete for `frameTimeoutMillis`: GO_AWAY(1), the session closes. */
  | "frameTimeout"
  /** More PINGs in one second than `maxPingsPerSecond`: GO_AWAY(1), the session closes. */
  | "maxPingsPerSecond"
  /** More refused SYNs in one second than `maxRefusedSynsPerSecond`: GO_AWAY(1), the session closes. */
  | "maxRefusedSynsPerSecond"
  /** More rapid resets in one second than `maxResetsPerSecond`: GO_AWAY(1), the session closes. */
  | "maxResetsPerSecond"
  /** More credit-only frames in one second than `maxWindowUpdatesPerSecond`: GO_AWAY(1), the session closes. */
  | "maxWindowUpdatesPerSecond"
  /** More than `maxControlBacklog` control frames unread by the peer: GO_AWAY(1), the session closes. */
  | "maxControlBacklog"

/**
 * How often each limit was reached over the session's life.
 *
 * @since 0.1.0
 * @category models
 */
export type SessionCounters = { readonly [K in SessionLimit]: number }

/**
 * Counters for tests, leak checks and metrics.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionStats {
  readonly limits: SessionCounters
  readonly streams: number
  readonly acceptBacklog: number
  readonly unackedOpens: number
  readonly bufferedBytes: number
  readonly pendingPings: number
  readonly waiters: number
  /** The session has stopped reading the link (`maxSessionBuffer`) until readers catch up. */
  readonly readsPaused: boolean
}

/**
 * A running yamux session.
 *
 * @since 0.1.0
 * @category models
 */
export interface Session {
  /** Opens a stream; scope exit sends FIN, interruption or failure sends RST. */
  readonly open: Effect.Effect<MuxStream, MuxError, Scope.Scope>
  /** Opens a stream the caller closes or resets itself. */
  readonly openUnscoped: Effect.Effect<MuxStream, MuxError>
  /** Accepts the next inbound stream (ACKing it); scope exit sends FIN, interruption RST. */
  readonly accept: Effect.Effect<MuxStream, MuxError, Scope.Scope>
  /** Accepts the next inbound stream; the caller closes or resets it. */
  readonly acceptUnscoped: Effect.Effect<MuxStream, MuxError>
  /** Sends a ping and returns the round-trip time in milliseconds. */
  readonly ping: Effect.Effect<number, MuxError>
  /** Sends GO_AWAY(0): the peer may open no more streams; existing streams carry on. */
  readonly goAway: Effect.Effect<void>
  /**
   * Sends GO_AWAY(0) and a PING right behind it, for a shutdown that refuses no one: streams the
   * peer opened before it read the GO_AWAY (their SYNs arrive before the PING's answer, or within
   * `keepaliveTimeoutMillis` if none comes) are still accepted, as is the backlog; later SYNs get
   * RST. Existing streams carry on. `accept` fails once that window has closed and the backlog is empty.
   */
  readonly retire: Effect.Effect<void>
  /**
   * GO_AWAY(0) (unless sent already), drain open streams up to the drain timeout, then close the
   * link. Streams still waiting to be accepted are reset, also after a `retire`: nobody accepts them now.
   */
  readonly close: Effect.Effect<void>
  /** Ends the session at once: streams fail, the link is reset. */
  readonly abort: Effect.Effect<void>
  /**
   * Ends the session for a protocol violation found above it (a malformed stream open message):
   * GO_AWAY(1), then the link closes; every stream fails with a `ProtocolError` of `kind`.
   */
  readonly violation: (kind: string, message: string) => Effect.Effect<void>
  /** Completes with the reason once the session has ended. */
  readonly await: Effect.Effect<MuxError>
  /** Whether the session has ended. */
  readonly isClosed: () => boolean
  /** Whether new streams can be opened (not closed, no GO_AWAY either way). */
  readonly isOpen: () => boolean
  /**
   * Since when (Clock milliseconds) the session has been reading the link without a pause, or -1
   * while its reads are paused on `maxSessionBuffer`. A deadline on what the peer sends (a stream's
   * open message, above the session) runs from here, as the partial-frame deadline does: time the
   * session spends not reading never counts against the peer.
   */
  readonly readingSince: () => number
  /** Current counters. */
  readonly stats: () => SessionStats
  /** The validated configuration. */
  readonly config: SessionConfig
  /** The transport's peer address. */
  readonly remoteAddress: string
  /** When the session started (Clock milliseconds since the epoch), for status pages. */
  readonly startedAt: number
}

/** A stream the peer resets within this long of opening it counts against `maxResetsPerSecond`. */
const RAPID_RESET_MILLIS = 1_000

/** How long a dying session's writer may take to flush its last frames (GO_AWAY) before the link is closed. */
const FLUSH_TIMEOUT_MILLIS = 1_000

class SessionCore implements StreamHost {
  readonly config: SessionConfig
  readonly streams = new Map<number, MuxStreamImpl>()
  readonly outbox: Outbox
  readonly decoder: Decoder
  readonly acceptQueue: Array<MuxStreamImpl> = []
  readonly acceptSignal = new Signal()
  readonly openSignal = new Signal()
  readonly readGate = new Signal()
  readonly drainSignal = new Signal()
  /** Streams opened and not yet ACKed, by open deadline (insertion order is deadline order). */
  readonly openTimers = new Map<CoreStream, number>()
  /** Streams with a FIN queued, by close deadline (insertion order is deadline order). */
  readonly closeTimers = new Map<CoreStream, number>()
  readonly pings = new Map<number, { readonly sentAt: number; readonly done: Deferred.Deferred<number, MuxError> }>()
  readonly done = Deferred.makeUnsafe<MuxError>()
  readonly client: boolean
  readonly clock: Clock.Clock
  readonly onEvent: ((event: SessionEvent) => void) | undefined
  readonly transport: Transport
  nextId: number
  maxPeerId = 0
  nextPing = 1
  unacked = 0
  bufferedBytes = 0
  lastReceived: number
  lastSweep: number
  /** The read loop is paused on `maxSessionBuffer` (counted once per pause). */
  bufferFull = false
  goAwayReceived = false
  readonly limits: { [K in SessionLimit]: number } = {
    acceptBacklog: 0,
    maxStreams: 0,
    idleTimeout: 0,
    maxSessionBuffer: 0,
    frameTimeout: 0,
    maxPingsPerSecond: 0,
    maxRefusedSynsPerSecond: 0,
    maxResetsPerSecond: 0,
    maxWindowUpdatesPerSecond: 0,
    maxControlBacklog: 0
  }
  readonly pingBudget: RateBudget
  readonly refusedSynBudget: RateBudget
  readonly resetBudget: RateBudget
  readonly creditBudget: RateBudget
  /**
   * RSTs this side sends on streams it opened less than a second before. A proxy passes its clients'
   * behaviour on: clients that connect and reset at once would make it trip the peer's
   * `maxResetsPerSecond`, ending the session for every stream on it. So this side stops opening for
   * the rest of a second once it has sent half that budget (half: the peer's windows need not line
   * up with ours, and two of ours can overlap one of its).
   */
  readonly sentResetBudget: RateBudget
  /** `maxControlBacklog` in bytes of the outbox's control lane. */
  readonly maxControlBytes: number
  /**
   * When the frame the decoder is inside (header or body) started arriving (ms), -1 at a frame
   * boundary or while reads are paused: the partial-frame deadline runs from here.
   */
  partialSince = -1
  /** `partialSince` of a deadline the last sweep found expired: it trips on the next sweep. */
  partialExpired = -1
  /** The rest of the DATA frame being decoded in parts goes nowhere (its first part did not). */
  dropping = false
  /** The read loop waits on the read gate (the session's own backpressure). */
  readsPaused = false
  /** When the read loop last started or resumed reading (ms), -1 while it is paused. */
  readingSince: number
  goAwaySent = false
  /**
   * While defined, the opaque of the PING `retire` sent right behind its GO_AWAY(0): SYNs arriving
   * before its answer (or `fenceDeadline`) were sent before the peer read the GO_AWAY (the wire is
   * FIFO both ways), so they crossed it and are accepted rather than refused.
   */
  fence: number | undefined = undefined
  fenceDeadline = 0
  fault: MuxError | undefined = undefined
  /** The session ended cleanly: flush queued control frames (GO_AWAY) and close, rather than reset. */
  graceful = false

  constructor(transport: Transport, config: SessionConfig, options: SessionOptions, clock: Clock.Clock) {
    this.transport = transport
    this.config = config
    this.client = options.client
    this.onEvent = options.onEvent
    this.clock = clock
    this.nextId = options.firstStreamId ?? (options.client ? 1 : 2)
    this.outbox = new Outbox(config.maxFrameSize, config.maxBatchBytes, transport.eventLoopDriven === true)
    // Fragments: a DATA frame that spans socket reads reaches its stream piece by piece, uncopied.
    this.decoder = new Decoder({ validate: (h) => this.validate(h), fragments: true })
    this.lastReceived = clock.currentTimeMillisUnsafe()
    this.lastSweep = this.lastReceived
    this.readingSince = this.lastReceived
    this.pingBudget = new RateBudget(config.maxPingsPerSecond)
    this.refusedSynBudget = new RateBudget(config.maxRefusedSynsPerSecond)
    this.resetBudget = new RateBudget(config.maxResetsPerSecond)
    this.creditBudget = new RateBudget(config.maxWindowUpdatesPerSecond)
    this.sentResetBudget = new RateBudget(Math.max(1, Math.floor(config.maxResetsPerSecond / 2)))
    this.maxControlBytes = config.maxControlBacklog * HEADER_SIZE
  }

  // StreamHost ----------------------------------------------------------------------------------

  control(type: FrameType, flags: number, streamId: number, length: number): void {
    if (this.fault !== undefined) return
    if ((flags & Flags.RST) !== 0) {
      const s = this.streams.get(streamId)
      if (s?.local === true) {
        const now = this.clock.currentTimeMillisUnsafe()
        if (now - s.openedAt < RAPID_RESET_MILLIS) this.sentResetBudget.hit(now)
      }
    }
    this.outbox.pushControl(type, flags, streamId, length)
  }

  ready(stream: OutboundStream): void {
    if (this.fault === undefined) this.outbox.ready(stream)
  }

  release(stream: CoreStream): void {
    if (this.streams.get(stream.id) !== stream) return
    this.streams.delete(stream.id)
    if (stream.local && !stream.acked) this.unacked--
    // A stream that dies in the accept backlog (RST, or DATA after FIN) gives its slot back at once.
    if (!stream.local && this.acceptQueue.length > 0) {
      const i = this.acceptQueue.indexOf(stream as MuxStreamImpl)
      if (i >= 0) this.acceptQueue.splice(i, 1)
    }
    this.openTimers.delete(stream)
    this.closeTimers.delete(stream)
    // One slot freed: one opener (a burst of waiting opens would otherwise be woken per slot).
    this.openSignal.notifyOne()
    if (this.streams.size === 0) this.drainSignal.notify()
    this.onEvent?.({ _tag: "StreamClosed", streamId: stream.id, reset: stream.state === "Reset" })
  }

  /** The window advertised with SYN/ACK: all of `maxWindow`, or 256 KiB when auto-tuning. */
  get windowAtOpen(): number {
    return this.config.windowAutoTune ? INITIAL_WINDOW : this.config.maxWindow
  }

  canGrowWindow(): boolean {
    return this.bufferedBytes < this.config.maxSessionBuffer >>> 1
  }

  buffered(bytes: number): void {
    // A dead session counts nothing (its total was zeroed).
    if (this.fault === undefined) this.bufferedBytes += bytes
  }

  consumed(bytes: number): void {
    // A dead session counts nothing (its total was zeroed; a released stream may still be read).
    if (this.fault !== undefined) return
    const wasPaused = this.bufferedBytes > this.config.maxSessionBuffer
    this.bufferedBytes -= bytes
    if (wasPaused && this.bufferedBytes <= this.config.maxSessionBuffer) this.readGate.notify()
  }

  closing(stream: CoreStream): void {
    // Called from `finish`: the FIN is queued (the state changes once it is sent).
    if (this.fault !== undefined || !stream.finPending) return
    this.closeTimers.set(stream, this.clock.currentTimeMillisUnsafe() + this.config.closeTimeoutMillis)
  }

  failure(): MuxError | undefined {
    return this.fault
  }

  // Inbound -------------------------------------------------------------------------------------

  /** Header-time check: DATA must fit the stream's receive window. */
  validate(h: Header): FrameError | undefined {
    if (h.type !== FrameType.Data || h.length === 0) return undefined
    const s = this.streams.get(h.streamId)
    const window = s !== undefined ? s.recvWindow : (h.flags & Flags.SYN) !== 0 ? INITIAL_WINDOW : undefined
    if (window !== undefined && h.length > window) {
      return new FrameError({
        kind: "WindowExceeded",
        streamId: h.streamId,
        frameType: h.type,
        length: h.length,
        limit: window
      })
    }
    return undefined
  }

  /** Decodes and routes every complete frame in `chunk`; returns a protocol failure, if any. */
  feed(chunk: Uint8Array): MuxError | undefined {
    const now = this.clock.currentTimeMillisUnsafe()
    this.lastReceived = now
    this.decoder.push(chunk)
    let completed = false
    while (this.fault === undefined) {
      const frame = this.decoder.next()
      if (frame === undefined) break
      if (frame instanceof FrameError) return frameFailure(frame)
      const more = this.decoder.inFrame
      if (!more) completed = true
      // A DATA frame in parts (see `Decoder`'s fragments): a frame whose first part went nowhere
      // (refused, or for a stream that is gone) has its later parts, and their flags, dropped too,
      // as a whole frame would be.
      if (this.dropping) {
        if (!more) this.dropping = false
        continue
      }
      const error = more ? this.routeHead(frame) : this.route(frame)
      if (error !== undefined) return error
      // Checked per frame, so a flood is cut off within the chunk that carries it.
      if (this.outbox.controlBytes > this.maxControlBytes) return this.exceeded("maxControlBacklog")
    }
    // The partial frame (if any) started in this chunk when a frame completed in it; otherwise it
    // is the one that was already pending.
    if (this.decoder.partial === undefined) this.partialSince = -1
    else if (completed || this.partialSince < 0) this.partialSince = now
    return undefined
  }

  /**
   * Routes a part of a DATA frame with more of it to come (`Decoder.inFrame`): like
   * {@link SessionCore.route}, and when the part reached no stream, the rest of the frame is dropped.
   */
  routeHead(frame: Frame): MuxError | undefined {
    const error = this.routeStream(frame)
    if (error === undefined && this.streams.get(frame.streamId)?.isReset !== false) this.dropping = true
    return error
  }

  /** A flood budget was exceeded: counted, reported once with the reason, and the session's end. */
  exceeded(budget: FloodBudget): MuxError {
    const limit = this.config[budget]
    const error = muxError(new BudgetExceeded({ budget, limit }))
    this.limitReached(budget, 0, `${error.reason.message}; the link was closed with GO_AWAY(1)`)
    return error
  }

  /** The read loop stops (`true`) or resumes reading: a partial frame's deadline waits meanwhile. */
  pauseReads(paused: boolean): void {
    const now = this.clock.currentTimeMillisUnsafe()
    this.readsPaused = paused
    this.readingSince = paused ? -1 : now
    this.partialExpired = -1
    this.partialSince = paused || this.decoder.partial === undefined ? -1 : now
  }

  route(frame: Frame): MuxError | undefined {
    switch (frame.type) {
      case FrameType.Data:
      case FrameType.WindowUpdate:
        return this.routeStream(frame)
      case FrameType.Ping:
        if ((frame.flags & Flags.SYN) !== 0) {
          if (this.pingBudget.hit(this.lastReceived)) return this.exceeded("maxPingsPerSecond")
          this.control(FrameType.Ping, Flags.ACK, 0, frame.length)
        } else if ((frame.flags & Flags.ACK) !== 0) {
          if (frame.length === this.fence) this.closeFence()
          const pending = this.pings.get(frame.length)
          // An unsolicited pong is ignored (design choice: hashicorp does the same).
          if (pending !== undefined) {
            this.pings.delete(frame.length)
            const rtt = this.clock.currentTimeMillisUnsafe() - pending.sentAt
            defer(() => Deferred.doneUnsafe(pending.done, Exit.succeed(rtt)))
          }
        }
        return undefined
      default:
        return this.remoteGoAway(frame.length)
    }
  }

  remoteGoAway(code: number): MuxError | undefined {
    this.onEvent?.({ _tag: "GoAwayReceived", code })
    if (code !== GoAwayCode.Normal) return muxError(new RemoteGoAway({ code }))
    this.goAwayReceived = true
    this.openSignal.notify()
    this.acceptSignal.notify()
    return undefined
  }

  routeStream(frame: Frame): MuxError | undefined {
    const id = frame.streamId
    const flags = frame.flags
    const now = this.lastReceived
    // Frames that carry nothing but credit (or nothing at all) cost a lookup each: budgeted.
    if (flags === 0 && (frame.type === FrameType.WindowUpdate || frame.length === 0)) {
      if (this.creditBudget.hit(now)) return this.exceeded("maxWindowUpdatesPerSecond")
    }
    let s = this.streams.get(id)
    if ((flags & Flags.SYN) !== 0) {
      if (s !== undefined) return protocolError("DuplicateSyn", `SYN for stream ${id}, which is already open`, id)
      if ((id & 1) === (this.client ? 1 : 0)) {
        return protocolError("BadStreamId", `SYN for stream ${id}, which has this side's parity`, id)
      }
      if (id > this.maxPeerId) this.maxPeerId = id
      const limit: SessionLimit | undefined =
        this.acceptQueue.length >= this.config.acceptBacklog
          ? "acceptBacklog"
          : this.streams.size >= this.config.maxStreams
            ? "maxStreams"
            : undefined
      if ((this.goAwaySent && this.fence === undefined) || limit !== undefined) {
        // Refused: RST now; the frame's flags and payload go nowhere. Refusals for a limit are
        // budgeted (while draining after our GO_AWAY(0), a peer's SYNs in flight are no abuse).
        if (limit !== undefined) {
          if (this.refusedSynBudget.hit(now)) return this.exceeded("maxRefusedSynsPerSecond")
          this.limitReached(limit, id)
        }
        this.control(FrameType.WindowUpdate, Flags.RST, id, 0)
        return undefined
      }
      s = new MuxStreamImpl(this, id, false, "SynReceived", INITIAL_WINDOW, INITIAL_WINDOW, now)
      this.streams.set(id, s)
      this.acceptQueue.push(s)
      this.acceptSignal.notify()
      this.onEvent?.({ _tag: "StreamOpened", streamId: id, local: false })
    } else if (s === undefined) {
      const ours = (id & 1) === (this.client ? 1 : 0)
      if (ours ? id >= this.nextId : id > this.maxPeerId) {
        return protocolError("UnknownStream", `frame for stream ${id}, which was never opened`, id)
      }
      // A late frame for a stream that is gone: dropped. A late RST of one the peer opened is
      // budgeted like a rapid reset (its age is unknown; healthy peers send few).
      if ((flags & Flags.RST) !== 0 && !ours && this.resetBudget.hit(now)) return this.exceeded("maxResetsPerSecond")
      return undefined
    }
    // On a RST the length is no credit (go-yamux puts an error code there): accept any value.
    if (frame.type === FrameType.WindowUpdate && (flags & Flags.RST) === 0 && !s.onCredit(frame.length)) {
      return protocolError("WindowOverflow", `stream ${id}: send window credit overflows 2^32-1`, id)
    }
    if ((flags & Flags.ACK) !== 0 && s.onAck()) {
      this.unacked--
      this.openTimers.delete(s)
      this.openSignal.notifyOne()
    }
    if (frame.type === FrameType.Data && frame.length > 0) {
      s.onData(frame.payload)
      // DATA after the peer's FIN reset the stream (not the session); its flags go nowhere.
      if (s.isReset) return undefined
    }
    if ((flags & Flags.FIN) !== 0) s.onFin()
    if ((flags & Flags.RST) !== 0) {
      // Rapid reset: open, RST, repeat: each costs an accept (and a backend dial) and frees its slot.
      if (!s.local && now - s.openedAt < RAPID_RESET_MILLIS && this.resetBudget.hit(now)) {
        return this.exceeded("maxResetsPerSecond")
      }
      s.onRst()
    }
    return undefined
  }

  // Local operations ----------------------------------------------------------------------------

  tryOpen(): MuxStreamImpl | MuxError | undefined {
    if (this.fault !== undefined) return this.fault
    if (this.goAwayReceived) return muxError(new RemoteGoAway({ code: GoAwayCode.Normal }))
    if (this.goAwaySent) return muxError(new SessionClosed({ message: "the session is closing" }))
    if (this.unacked >= this.config.maxUnackedOpens || this.streams.size >= this.config.maxStreams) return undefined
    const now = this.clock.currentTimeMillisUnsafe()
    if (this.sentResetBudget.full(now)) return muxError(new OpenThrottled({ resets: this.sentResetBudget.count }))
    const id = this.nextId
    if (id > MAX_STREAM_ID) {
      // Never reuse an id: close the session for new streams (its open ones drain) so that the owner
      // moves to a new session; this and later opens fail with a retryable StreamsExhausted.
      if (!this.goAwaySent) {
        this.sendGoAway()
        this.onEvent?.({ _tag: "StreamsExhausted" })
      }
      return muxError(new StreamsExhausted())
    }
    this.nextId += 2
    const s = new MuxStreamImpl(this, id, true, "SynSent", this.windowAtOpen, INITIAL_WINDOW, now)
    this.streams.set(id, s)
    this.unacked++
    this.openTimers.set(s, now + this.config.openTimeoutMillis)
    this.control(FrameType.WindowUpdate, Flags.SYN, id, this.windowAtOpen - INITIAL_WINDOW)
    this.onEvent?.({ _tag: "StreamOpened", streamId: id, local: true })
    return s
  }

  tryAccept(): MuxStreamImpl | MuxError | undefined {
    while (this.acceptQueue.length > 0) {
      const s = this.acceptQueue.shift()!
      if (s.isReset) continue
      s.accept(this.windowAtOpen)
      return s
    }
    if (this.fault !== undefined) return this.fault
    if (this.goAwayReceived) return muxError(new RemoteGoAway({ code: GoAwayCode.Normal }))
    if (this.goAwaySent) {
      // Retiring: SYNs that crossed our GO_AWAY may still arrive until the fence closes.
      return this.fence === undefined ? muxError(new SessionClosed({ message: "the session is closing" })) : undefined
    }
    return undefined
  }

  sendGoAway(): void {
    if (this.goAwaySent || this.fault !== undefined) return
    this.goAwaySent = true
    this.control(FrameType.GoAway, 0, 0, GoAwayCode.Normal)
    this.stopAccepting()
    this.openSignal.notify()
  }

  /**
   * No stream will be accepted any more: the backlog is reset and later SYNs are refused (the fence
   * of a `retire`, if open, is closed). Nobody accepts them now; left in the registry they would hold
   * a drain until its deadline (a retired server's close waited the whole drain timeout for them).
   */
  stopAccepting(): void {
    this.fence = undefined
    // Emptied first: each reset releases its stream, which would edit the queue mid-iteration.
    for (const s of this.acceptQueue.splice(0)) s.resetNow(false)
    this.acceptSignal.notify()
  }

  /** GO_AWAY(0) and the fence PING behind it (see {@link Session.retire}); the backlog stays. */
  retire(): void {
    if (this.goAwaySent || this.fault !== undefined) return
    this.goAwaySent = true
    this.control(FrameType.GoAway, 0, 0, GoAwayCode.Normal)
    const opaque = this.nextPing
    this.nextPing = (this.nextPing + 1) >>> 0 || 1
    this.fence = opaque
    this.fenceDeadline = this.clock.currentTimeMillisUnsafe() + this.config.keepaliveTimeoutMillis
    this.control(FrameType.Ping, Flags.SYN, 0, opaque)
    this.openSignal.notify()
  }

  /** No SYN can cross our GO_AWAY any more: accept fails once the backlog is empty. */
  closeFence(): void {
    if (this.fence === undefined) return
    this.fence = undefined
    this.acceptSignal.notify()
  }

  /**
   * Ends the session: every stream and waiter fails with `error`. Idempotent. `goAwayCode` is sent
   * first when given; `graceful` closes the link after flushing instead of resetting it.
   */
  die(error: MuxError, goAwayCode: number | undefined, graceful: boolean): void {
    if (this.fault !== undefined) return
    this.graceful = graceful || goAwayCode !== undefined
    // A peer thrown out for a violation gets its GO_AWAY(1) before anything still queued for it
    // (pongs, credit, RSTs: moot now), so it can read why even when it left a backlog unread.
    if (goAwayCode === GoAwayCode.ProtocolError) this.outbox.clear()
    if (goAwayCode !== undefined) this.outbox.pushControl(FrameType.GoAway, 0, 0, goAwayCode)
    this.fault = error
    // Settle the bookkeeping before waking anyone (wake-ups and Deferreds are deferred to a
    // microtask, so no waiter runs inside this call).
    const streams = Array.from(this.streams.values())
    const pings = Array.from(this.pings.values())
    this.streams.clear()
    this.acceptQueue.length = 0
    this.openTimers.clear()
    this.closeTimers.clear()
    this.unacked = 0
    this.pings.clear()
    // `consumed` ignores a dead session, so the streams' dropped bytes need no accounting here.
    for (const s of streams) s.failWith(error)
    this.bufferedBytes = 0
    defer(() => {
      for (const p of pings) Deferred.doneUnsafe(p.done, Exit.fail(error))
    })
    this.acceptSignal.notify()
    this.openSignal.notify()
    this.readGate.notify()
    this.drainSignal.notify()
    this.outbox.signal.notify()
    defer(() => Deferred.doneUnsafe(this.done, Exit.succeed(error)))
    this.onEvent?.({ _tag: "SessionClosed", error })
  }

  limitReached(limit: SessionLimit, streamId: number, detail?: string): void {
    this.limits[limit]++
    this.onEvent?.(
      detail === undefined
        ? { _tag: "LimitReached", limit, streamId }
        : { _tag: "LimitReached", limit, streamId, detail }
    )
  }

  /**
   * Ends the session when a frame has been incomplete for `frameTimeoutMillis`. A deadline found
   * expired trips on the next sweep if that frame is still incomplete: the read loop gets its turn
   * in between, so bytes that were waiting behind a blocked event loop are not mistaken for a stall.
   */
  checkPartialFrame(now: number): void {
    const timeout = this.config.frameTimeoutMillis
    const since = this.partialSince
    if (timeout === 0 || since < 0 || this.readsPaused || now - since < timeout) return
    if (this.partialExpired !== since) {
      this.partialExpired = since
      return
    }
    const progress = this.decoder.progress
    if (progress === undefined) return
    const reason = new FrameTimeout({ ...progress, timeoutMillis: timeout })
    this.limitReached("frameTimeout", progress.streamId, `${reason.message}; the link was closed with GO_AWAY(1)`)
    this.die(muxError(reason), GoAwayCode.ProtocolError, false)
  }

  /** Resets streams whose open or close deadline has passed, and streams idle for too long. */
  sweep(now: number): void {
    this.checkPartialFrame(now)
    if (this.fault !== undefined) return
    if (this.fence !== undefined && now >= this.fenceDeadline) this.closeFence()
    const idleTimeout = this.config.idleTimeoutMillis
    if (idleTimeout > 0) {
      // Activity counters instead of timestamps: the data path never reads the clock.
      const elapsed = now - this.lastSweep
      for (const s of this.streams.values()) {
        if (s.idleFor(elapsed) >= idleTimeout) {
          this.limitReached("idleTimeout", s.id)
          s.resetNow(false)
        }
      }
    }
    this.lastSweep = now
    for (const [s, deadline] of this.openTimers) {
      if (deadline > now) break
      this.openTimers.delete(s)
      s.failOpen(muxError(new OpenTimeout({ streamId: s.id, timeoutMillis: this.config.openTimeoutMillis })))
    }
    for (const [s, deadline] of this.closeTimers) {
      if (deadline > now) break
      this.closeTimers.delete(s)
      s.resetNow(false)
    }
  }

  /** Whether the read loop must stop reading the link; counts a `maxSessionBuffer` hit once per pause. */
  shouldPauseReads(): boolean {
    if (this.bufferedBytes > this.config.maxSessionBuffer) {
      if (!this.bufferFull) {
        this.bufferFull = true
        this.limitReached("maxSessionBuffer", 0)
      }
      return true
    }
    this.bufferFull = false
    return false
  }
}

const protocolError = (kind: string, message: string, streamId: number): MuxError =>
  muxError(new ProtocolError({ kind, message, streamId }))

const frameFailure = (error: FrameError): MuxError =>
  error.kind === "WindowExceeded"
    ? muxError(
        new WindowExceeded({
          streamId: error.streamId,
          length: error.length ?? 0,
          window: error.limit ?? INITIAL_WINDOW
        })
      )
    : protocolError(error.kind, error.message, error.streamId)

const transportFailure = (error: TransportError): MuxError =>
  muxError(new TransportFailed({ message: error.message, cause: error }))

const linkClosed = (): MuxError => muxError(new SessionClosed({ message: "the peer closed the link" }))

/**
 * The session's input when its transport offers a {@link DirectPort} (a socket): each chunk goes
 * from the socket's `'data'` handler straight into the core, with no fiber resumed per read. The
 * read loop hands over to it once nothing is left to read through the transport's `read` (bytes a
 * handshake read ahead). Backpressure as in the loop: over `maxSessionBuffer` the port is paused,
 * and resumed from the read gate's wake-up (a microtask, never inside a core step).
 */
class LinkInput implements DirectListener<TransportError> {
  readonly core: SessionCore
  readonly port: DirectPort<TransportError>
  constructor(core: SessionCore, port: DirectPort<TransportError>) {
    this.core = core
    this.port = port
  }

  input(chunk: Uint8Array): void {
    const core = this.core
    if (core.fault !== undefined) return
    const error = core.feed(chunk)
    if (error !== undefined) core.die(error, error.goAwayCode, false)
    else if (core.shouldPauseReads()) {
      core.pauseReads(true)
      this.port.pauseInput()
      this.waitGate()
    }
  }

  private waitGate(): void {
    this.core.readGate.onNotify(() => this.gate())
  }

  /** The read gate opened (or the session died): read again once the buffer is below the limit. */
  private gate(): void {
    const core = this.core
    if (core.fault !== undefined) return
    if (core.shouldPauseReads()) {
      this.waitGate()
      return
    }
    core.pauseReads(false)
    this.port.resumeInput()
  }

  inputEnd(): void {
    this.core.die(linkClosed(), undefined, true)
  }

  writable(): void {}

  failure(error: TransportError): void {
    this.core.die(transportFailure(error), undefined, false)
  }
}

/**
 * Starts a session over `transport`. The session lives as long as the scope: closing the scope
 * closes the session gracefully (GO_AWAY(0), drain, close the link).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function* (
  transport: Transport,
  options: SessionOptions
): Effect.fn.Return<Session, ConfigError, Scope.Scope> {
  const config = yield* makeSessionConfig(options.config)
  const clock = yield* Clock.Clock
  const core = new SessionCore(transport, config, options, clock)
  const startedAt = clock.currentTimeMillisUnsafe()
  const scope = yield* Effect.scope

  const readLoop = Effect.gen(function* () {
    while (core.fault === undefined) {
      if (core.shouldPauseReads()) {
        core.pauseReads(true)
        yield* core.readGate.wait
        if (!core.shouldPauseReads()) core.pauseReads(false)
        continue
      }
      // A socket underneath, with nothing left to read through `read`: callbacks from here on.
      const port = transport.directPort?.()
      if (port !== undefined) {
        port.attach(new LinkInput(core, port))
        port.resumeInput()
        return
      }
      const chunk = yield* transport.read
      if (chunk === null) {
        core.die(linkClosed(), undefined, true)
        return
      }
      const error = core.feed(chunk)
      if (error !== undefined) core.die(error, error.goAwayCode, false)
    }
  }).pipe(
    Effect.catch((error: TransportError) => Effect.sync(() => core.die(transportFailure(error), undefined, false)))
  )

  const writeLoop = Effect.gen(function* () {
    while (core.fault === undefined || core.graceful) {
      if (!core.outbox.hasWork) {
        if (core.fault !== undefined) return
        yield* core.outbox.signal.wait
        continue
      }
      const batch = core.outbox.takeBatch()
      if (!core.shouldPauseReads()) core.readGate.notify()
      if (batch.length > 0) yield* transport.write(batch)
    }
  }).pipe(
    Effect.catch((error: TransportError) => Effect.sync(() => core.die(transportFailure(error), undefined, false)))
  )

  const ping: Effect.Effect<number, MuxError> = Effect.suspend(() => {
    if (core.fault !== undefined) return Effect.fail(core.fault)
    const opaque = core.nextPing
    core.nextPing = (core.nextPing + 1) >>> 0 || 1
    const done = Deferred.makeUnsafe<number, MuxError>()
    core.pings.set(opaque, { sentAt: clock.currentTimeMillisUnsafe(), done })
    core.control(FrameType.Ping, Flags.SYN, 0, opaque)
    return Deferred.await(done).pipe(Effect.onInterrupt(() => Effect.sync(() => core.pings.delete(opaque))))
  })

  const keepalive = Effect.gen(function* () {
    const interval = config.keepaliveIntervalMillis
    while (core.fault === undefined) {
      const idle = clock.currentTimeMillisUnsafe() - core.lastReceived
      if (idle < interval) {
        yield* Effect.sleep(interval - idle)
        continue
      }
      const answered = yield* ping.pipe(
        Effect.timeoutOption(config.keepaliveTimeoutMillis),
        Effect.catch(() => Effect.succeedNone)
      )
      if (answered._tag === "None" && core.fault === undefined) {
        core.die(muxError(new KeepaliveTimeout({ timeoutMillis: config.keepaliveTimeoutMillis })), undefined, false)
      }
    }
  })

  const timers = Effect.gen(function* () {
    while (core.fault === undefined) {
      yield* Effect.sleep(config.timerResolutionMillis)
      core.sweep(clock.currentTimeMillisUnsafe())
    }
  })

  /** Retries `attempt` each time `signal` fires until it gives a stream or an error. */
  const waitForStream = (
    attempt: () => MuxStreamImpl | MuxError | undefined,
    signal: Signal
  ): Effect.Effect<MuxStream, MuxError> =>
    Effect.suspend(function loop(): Effect.Effect<MuxStream, MuxError> {
      const result = attempt()
      if (result === undefined) return Effect.flatMap(signal.wait, loop)
      return result instanceof MuxStreamImpl ? Effect.succeed(result) : Effect.fail(result)
    })

  const openUnscoped = waitForStream(() => core.tryOpen(), core.openSignal)
  const acceptUnscoped = waitForStream(() => core.tryAccept(), core.acceptSignal)

  const awaitDrained: Effect.Effect<void> = Effect.suspend(function loop(): Effect.Effect<void> {
    if (core.streams.size === 0 || core.fault !== undefined) return Effect.void
    return Effect.flatMap(core.drainSignal.wait, loop)
  })

  const readFiber = yield* Effect.forkIn(readLoop, scope)
  const writeFiber = yield* Effect.forkIn(writeLoop, scope)
  const fibers = [readFiber, writeFiber]
  if (config.keepaliveIntervalMillis > 0) fibers.push(yield* Effect.forkIn(keepalive, scope))
  fibers.push(yield* Effect.forkIn(timers, scope))

  // Once the session is dead, however it died, the link goes: flushed and closed if the end was
  // clean, reset otherwise. The writer gets a bounded moment to flush (a peer that stopped reading
  // must not hold the link open).
  const reaper = yield* Effect.forkIn(
    Effect.gen(function* () {
      yield* Deferred.await(core.done)
      if (core.graceful) yield* Fiber.await(writeFiber).pipe(Effect.timeoutOption(FLUSH_TIMEOUT_MILLIS))
      yield* Fiber.interruptAll(fibers)
      if (core.graceful) {
        // A writer stuck behind a peer that does not read never got to the last control frames
        // (the GO_AWAY): they are handed to the transport behind the stuck batch, without waiting,
        // so a peer that reads again before the close grace runs out still learns why.
        const rest = core.outbox.takeBatch()
        if (rest.length > 0) yield* Effect.forkDetach(Effect.ignore(transport.write(rest)), { startImmediately: true })
      }
      yield* core.graceful ? transport.close : transport.reset
    }),
    scope
  )

  const close: Effect.Effect<void> = Effect.gen(function* () {
    if (core.fault === undefined) {
      core.sendGoAway()
      // After a `retire` the GO_AWAY went out already, but its fence and backlog still wait for an
      // acceptor: a session being closed has none, so they end now rather than at the drain deadline.
      core.stopAccepting()
      yield* awaitDrained.pipe(Effect.timeoutOption(config.drainTimeoutMillis))
      core.die(muxError(new SessionClosed({ message: "the session was closed" })), undefined, true)
    }
    yield* Fiber.await(reaper)
  })

  const abort: Effect.Effect<void> = Effect.gen(function* () {
    core.die(muxError(new SessionClosed({ message: "the session was aborted" })), undefined, false)
    yield* Fiber.await(reaper)
  })

  const violation = (kind: string, message: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      core.die(protocolError(kind, message, 0), GoAwayCode.ProtocolError, false)
      return Effect.asVoid(Fiber.await(reaper))
    })

  yield* Effect.addFinalizer(() => close)

  return {
    open: Effect.flatMap(openUnscoped, scopedStream),
    openUnscoped,
    accept: Effect.flatMap(acceptUnscoped, scopedStream),
    acceptUnscoped,
    ping,
    goAway: Effect.sync(() => core.sendGoAway()),
    retire: Effect.sync(() => core.retire()),
    close,
    abort,
    violation,
    await: Deferred.await(core.done),
    isClosed: () => core.fault !== undefined,
    isOpen: () => core.fault === undefined && !core.goAwayReceived && !core.goAwaySent,
    readingSince: () => core.readingSince,
    stats: () => ({
      limits: { ...core.limits },
      streams: core.streams.size,
      acceptBacklog: core.acceptQueue.length,
      unackedOpens: core.unacked,
      bufferedBytes: core.bufferedBytes,
      pendingPings: core.pings.size,
      waiters: core.acceptSignal.size + core.openSignal.size + core.drainSignal.size,
      readsPaused: core.readsPaused
    }),
    config,
    remoteAddress: transport.remoteAddress,
    startedAt
  } satisfies Session
})
