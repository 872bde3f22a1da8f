/**
 * Streams that survive the loss of the link: a resumption layer between the transport and the
 * yamux session, for plait peers that both negotiated it (plain yamux peers never see it).
 *
 * The dialling side ({@link dial}) opens a resumable session on its first connection and gets a
 * {@link DialerTransport}: one transport for the session's whole life. When a connection is lost
 * it redials and calls `resume` (or lets {@link keepResumed} do both); the accepting side
 * ({@link makeAcceptor}) keeps each broken session for the resume window in a registry keyed by
 * ticket and attaches the new connection to it. Streams, windows and stream ids are untouched:
 * clients and backends see a pause, not a reset. Wire format and security argument:
 * `docs/resume.md`.
 *
 * Invariants:
 * - Every byte written before, during and after a loss is delivered once, in order (see
 *   `internal/resume/Resumable.ts`); the replay buffer is bounded per direction and a full buffer
 *   stops the writer, never drops.
 * - A resume attempt is one round trip, bounded by `handshakeTimeoutMillis`. A refusal ends the
 *   session for good at once (its streams are reset promptly and the dialler starts a fresh one);
 *   a transport failure during an attempt only costs that attempt. Attempts continue until the
 *   window runs out.
 * - A request that does not prove the session secret changes nothing but a counter (after
 *   {@link MAX_FAILED_PROOFS} the ticket is revoked), and never reaches another session: a forged,
 *   replayed or foreign ticket gets a `Refused` message and a closed connection.
 * - The session above must run without its own keepalive: liveness is the layer's heartbeat.
 *
 * @since 0.1.0
 */
import { Clock, Deferred, Effect, Exit, Scope } from "effect"
import {
  acceptHello,
  answerHello,
  judgeResume,
  MAX_FAILED_PROOFS as MAX_PROOFS,
  makeTicketState,
  type TicketState
} from "../internal/resume/Handshake.ts"
import { acceptProof, makeKeyShare, resumeProof, sameProof, ticketKey, ticketLabel } from "../internal/resume/Keys.ts"
import {
  type ResumeEvent as InternalEvent,
  type ResumeStats as InternalStats,
  type ResumeStatus as InternalStatus,
  Resumable
} from "../internal/resume/Resumable.ts"
import {
  AbortCode,
  encodeAbort,
  encodeMessage,
  FLAG_RESUME,
  MAX_RECORD_PAYLOAD,
  type Message,
  parseMessage,
  type ServerHello
} from "../internal/resume/Wire.ts"
import { ConfigError, type SessionConfig, defaults as sessionDefaults } from "../session/Config.ts"
import { withLeftover } from "../transport/Auth.ts"
import type * as Negotiation from "../transport/Negotiation.ts"
import { type Transport, TransportError } from "../transport/Transport.ts"
import {
  Closed,
  failureCode as codeOf,
  PeerUnverified,
  type RefusalReason,
  Refused,
  ResumeError,
  type ResumeFailureCode,
  refusalText,
  resumeError
} from "./ResumeError.ts"

/**
 * Failed proofs for one ticket after which it is revoked and its session ended.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_FAILED_PROOFS: number = MAX_PROOFS

/**
 * Where a resumable transport stands: a connection is attached, none is (waiting for a resume),
 * or the session is over.
 *
 * @since 0.1.0
 * @category models
 */
export type ResumeStatus = InternalStatus

/**
 * Positions and counters of one resumable transport.
 *
 * @since 0.1.0
 * @category models
 */
export type ResumeStats = InternalStats

/**
 * A lifecycle event of one resumable transport: a connection lost, a resume, the end.
 *
 * @since 0.1.0
 * @category models
 */
export type ResumeEvent = InternalEvent

/**
 * Every tunable of the layer. Durations in milliseconds, sizes in bytes.
 *
 * @since 0.1.0
 * @category config
 */
export interface ResumeConfig {
  /** How long a broken session waits to be resumed (`--resume-window`; 0 disables resumption). */
  readonly windowMillis: number
  /** Replay buffer per direction (`--resume-buffer`): unacknowledged bytes held at most. */
  readonly bufferBytes: number
  /** Idle time after which a heartbeat (an ACK) is sent. */
  readonly heartbeatMillis: number
  /** Nothing received for this long while reading: the connection is presumed dead. */
  readonly silenceMillis: number
  /** Unacknowledged received bytes after which an ACK is sent (0: a quarter of the buffer). */
  readonly ackEveryBytes: number
  /** Largest DATA record sent. */
  readonly maxRecordBytes: number
  /** Bound on one handshake (a new session or a resume attempt). */
  readonly handshakeTimeoutMillis: number
}

/**
 * Documented defaults.
 *
 * @since 0.1.0
 * @category config
 */
export const defaults: ResumeConfig = {
  windowMillis: 30_000,
  bufferBytes: 4 * 1024 * 1024,
  heartbeatMillis: 1_000,
  silenceMillis: 10_000,
  ackEveryBytes: 0,
  maxRecordBytes: 256 * 1024,
  handshakeTimeoutMillis: 10_000
}

const DAY = 86_400_000

const rules: { readonly [K in keyof ResumeConfig]: { min: number; max: number; unit: string } } = {
  windowMillis: { min: 0, max: DAY, unit: "ms" },
  bufferBytes: { min: 64 * 1024, max: 0xffff_ffff, unit: "bytes" },
  heartbeatMillis: { min: 1, max: DAY, unit: "ms" },
  silenceMillis: { min: 2, max: DAY, unit: "ms" },
  ackEveryBytes: { min: 0, max: 0xffff_ffff, unit: "bytes" },
  maxRecordBytes: { min: 1024, max: MAX_RECORD_PAYLOAD, unit: "bytes" },
  handshakeTimeoutMillis: { min: 1, max: DAY, unit: "ms" }
}

/**
 * Validates a partial configuration over the defaults; every refusal names the setting.
 *
 * @since 0.1.0
 * @category config
 */
export const validateResumeConfig = (input: Partial<ResumeConfig> = {}): ResumeConfig | ConfigError => {
  const merged: Record<string, unknown> = { ...defaults }
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue
    if (!(key in rules)) return new ConfigError({ setting: key, message: `unknown resume setting ${key}` })
    merged[key] = value
  }
  for (const key of Object.keys(rules) as Array<keyof ResumeConfig>) {
    const rule = rules[key]
    const value = merged[key]
    if (typeof value !== "number" || !Number.isInteger(value) || value < rule.min || value > rule.max) {
      return new ConfigError({
        setting: key,
        message: `${key} must be an integer from ${rule.min} to ${rule.max} ${rule.unit} (got ${String(value)})`
      })
    }
  }
  const config = merged as unknown as ResumeConfig
  if (config.silenceMillis <= config.heartbeatMillis) {
    return new ConfigError({
      setting: "silenceMillis",
      message: `silenceMillis (${config.silenceMillis}) must exceed heartbeatMillis (${config.heartbeatMillis})`
    })
  }
  if (config.ackEveryBytes > config.bufferBytes / 2) {
    return new ConfigError({
      setting: "ackEveryBytes",
      message: `ackEveryBytes (${config.ackEveryBytes}) must be at most half of bufferBytes (${config.bufferBytes})`
    })
  }
  return config
}

/** The settings of one session: `capacity` is the smaller of both sides' buffers. */
const settingsOf = (config: ResumeConfig, windowMillis: number, capacity: number) => ({
  bufferBytes: capacity,
  ackEveryBytes: Math.min(
    config.ackEveryBytes > 0 ? config.ackEveryBytes : Math.floor(capacity / 4),
    Math.floor(capacity / 2)
  ),
  maxRecordBytes: config.maxRecordBytes,
  windowMillis,
  heartbeatMillis: config.heartbeatMillis,
  silenceMillis: config.silenceMillis
})

const configOrFail = (input: Partial<ResumeConfig> | undefined): Effect.Effect<ResumeConfig, ConfigError> =>
  Effect.suspend(() => {
    const result = validateResumeConfig(input)
    return result instanceof ConfigError ? Effect.fail(result) : Effect.succeed(result)
  })

/**
 * The one transport a session runs over for its whole life, across connections.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResumableTransport extends Transport {
  /** Where it stands now. */
  readonly status: () => ResumeStatus
  /** Positions and counters. */
  readonly stats: () => ResumeStats
  /** The first 4 bytes of the ticket in hex, for logs (the ticket itself is never logged). */
  readonly ticket: string
  /** The resume window in effect (the lower of both sides' for a dialler). */
  readonly windowMillis: number
  /** Completes once no connection is attached (lost: a resume is due; or ended). */
  readonly awaitLoss: Effect.Effect<ResumeStatus>
  /** Completes with the reason once the session is over for good. */
  readonly await: Effect.Effect<ResumeError>
}

/**
 * The dialling side's resumable transport: it can continue on a new connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface DialerTransport extends ResumableTransport {
  /**
   * One resume attempt over `transport` (a fresh connection, after TLS, token and negotiation).
   * Succeeds once the session continues on it; `detached` completes when that connection is given
   * up, after `release` ran. Fails with a `handshake` {@link TransportError}: a refusal
   * (its cause a {@link ResumeError}) has ended the session; any other failure cost only this
   * attempt. `binding`: channel binding of `transport` (a TLS exporter), when both sides use one.
   */
  readonly resume: (
    transport: Transport,
    options?: { readonly release?: Effect.Effect<void>; readonly binding?: Uint8Array }
  ) => Effect.Effect<{ readonly detached: Effect.Effect<void> }, TransportError>
  /**
   * Gives the session up (the peer cannot resume it, e.g. it no longer offers resumption): it
   * ends at once with `Refused(reason)`.
   */
  readonly abandon: (reason: RefusalReason) => Effect.Effect<void>
}

const viewOf = <Extra extends object>(
  r: Resumable,
  ticket: string,
  windowMillis: number,
  extra: Extra
): ResumableTransport & Extra => {
  const base: ResumableTransport = {
    read: r.read,
    write: (chunks) => r.write(chunks),
    closeWrite: r.closeWrite,
    close: r.close,
    reset: r.reset,
    get remoteAddress() {
      return r.remoteAddress
    },
    ...(r.eventLoopDriven ? { eventLoopDriven: true } : {}),
    status: () => r.status,
    stats: () => r.stats(),
    ticket,
    windowMillis,
    awaitLoss: r.awaitNotConnected,
    await: Deferred.await(r.done)
  }
  return Object.assign(base, extra)
}

const makeResumable = (
  config: ResumeConfig,
  windowMillis: number,
  capacity: number,
  first: Transport,
  leftover: Uint8Array,
  onEvent: ((event: ResumeEvent) => void) | undefined
): Effect.Effect<Resumable, never, Scope.Scope> =>
  Effect.gen(function* () {
    // The timer and every connection's fibers live in a scope of their own, created now: whatever
    // the caller adds to its scope afterwards (the session, whose close still writes through this
    // transport) is finalized before them, even fibers of connections resumed much later.
    const own = yield* Scope.fork(yield* Effect.scope)
    const clock = yield* Clock.Clock
    const services = yield* Effect.context<never>()
    const r = new Resumable(settingsOf(config, windowMillis, capacity), own, clock, services, first, onEvent)
    yield* r.attachUnsafe(first, 0, Effect.void, { leftover }).start
    yield* Effect.forkIn(r.timer(), own)
    // Runs before `own` closes: an ABORT queued here still goes out (its connection is closed, not reset).
    yield* Effect.addFinalizer(() =>
      r.end(resumeError(new Closed({ message: "the link's scope closed" })), "abort", AbortCode.Aborted)
    )
    return r
  })

/** Read afresh after a yield (TypeScript would keep an earlier narrowing). */
const failureOf = (r: Resumable): ResumeError | undefined => r.failure

// Reading handshake messages ---------------------------------------------------------------------

const tokenBytes = (token: string | Uint8Array | undefined): Uint8Array =>
  token === undefined ? new Uint8Array(0) : typeof token === "string" ? new TextEncoder().encode(token) : token

const handshakeError = (message: string, cause?: unknown): TransportError =>
  new TransportError({ operation: "handshake", message, ...(cause === undefined ? {} : { cause }) })

/** Reads one handshake message at a time off a transport, keeping what arrives behind it. */
class MessageReader {
  private buffered: Uint8Array = new Uint8Array(0)
  private readonly transport: Transport
  constructor(transport: Transport) {
    this.transport = transport
  }

  /** The next message, of one of the `expected` types; bounded by the message's fixed size. */
  next(
    expected: ReadonlyArray<Message["_tag"]>
  ): Effect.Effect<{ readonly message: Message; readonly bytes: Uint8Array }, TransportError> {
    const peer = this.transport.remoteAddress
    const step = (): Effect.Effect<{ readonly message: Message; readonly bytes: Uint8Array }, TransportError> => {
      const parsed = parseMessage(this.buffered, expected)
      if (parsed instanceof ResumeError) {
        return Effect.fail(handshakeError(`resume handshake with ${peer}: ${parsed.message}`, parsed))
      }
      if (parsed !== undefined) {
        const bytes = this.buffered.slice(0, parsed.consumed)
        this.buffered = this.buffered.subarray(parsed.consumed)
        return Effect.succeed({ message: parsed.message, bytes })
      }
      // Every pass adds at least one byte; a message is at most 100 bytes.
      return Effect.flatMap(
        this.transport.read.pipe(
          Effect.mapError((error) => handshakeError(`resume handshake with ${peer} failed: ${error.message}`, error))
        ),
        (chunk) => {
          if (chunk === null) {
            return Effect.fail(handshakeError(`${peer} closed the connection during the resume handshake`))
          }
          const joined = new Uint8Array(this.buffered.length + chunk.length)
          joined.set(this.buffered, 0)
          joined.set(chunk, this.buffered.length)
          this.buffered = joined
          return step()
        }
      )
    }
    return Effect.suspend(step)
  }

  rest(): Uint8Array {
    return this.buffered
  }
}

const send = (transport: Transport, bytes: Uint8Array, what: string) =>
  transport
    .write([bytes])
    .pipe(
      Effect.mapError((error) =>
        handshakeError(`cannot send the ${what} to ${transport.remoteAddress}: ${error.message}`, error)
      )
    )

const bounded = <A>(timeoutMillis: number, what: string, effect: Effect.Effect<A, TransportError>) =>
  effect.pipe(
    Effect.timeoutOrElse({
      duration: timeoutMillis,
      orElse: () => Effect.fail(handshakeError(`${what} did not complete within ${timeoutMillis} ms`))
    })
  )

const refusedError = (peer: string, reason: RefusalReason): TransportError => {
  const error = resumeError(new Refused({ reason }))
  return handshakeError(`${peer}: ${error.reason.message}`, error)
}

/**
 * The failure code of a session's end, when it was a failed resume.
 *
 * @since 0.1.0
 * @category errors
 */
export const failureCode: (error: ResumeError) => ResumeFailureCode | undefined = codeOf

/**
 * A redial's failure meaning the peer no longer offers resumption: `keepResumed` gives the
 * session up at once (`Refused`/`Unsupported`).
 *
 * @since 0.1.0
 * @category errors
 */
export const unsupportedError = (peer: string): TransportError => refusedError(peer, "Unsupported")

/**
 * The {@link ResumeError} behind a transport error raised by this layer, if any.
 *
 * @since 0.1.0
 * @category errors
 */
export const resumeErrorOf = (error: TransportError): ResumeError | undefined =>
  error.cause instanceof ResumeError ? error.cause : undefined

// The dialling side --------------------------------------------------------------------------------

/**
 * Options of {@link dial}.
 *
 * @since 0.1.0
 * @category dialling
 */
export interface DialOptions {
  readonly config?: Partial<ResumeConfig>
  /** The link's `--token`, when one is configured: it keys the session secret. */
  readonly token?: string | Uint8Array
  /** Channel binding of this first connection (a TLS exporter), when both sides use one. */
  readonly binding?: Uint8Array
  /** Receives lifecycle events synchronously; must not throw or block. */
  readonly onEvent?: (event: ResumeEvent) => void
}

/**
 * What {@link dial} produced: a resumable session, or a plain one when the acceptor declined.
 *
 * @since 0.1.0
 * @category dialling
 */
export type Dialed =
  | { readonly _tag: "Resumable"; readonly transport: DialerTransport }
  | { readonly _tag: "Plain"; readonly transport: Transport }

/**
 * Opens a resumable session over a fresh connection (after TLS, token and link negotiation agreed
 * on resumption). The resumable transport lives as long as the scope.
 *
 * @since 0.1.0
 * @category dialling
 */
export const dial = (
  transport: Transport,
  options: DialOptions = {}
): Effect.Effect<Dialed, TransportError | ConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    const config = yield* configOrFail(options.config)
    const peer = transport.remoteAddress
    const token = tokenBytes(options.token)
    const share = makeKeyShare()
    const hello = encodeMessage({
      _tag: "ClientHello",
      flags: FLAG_RESUME,
      bufferBytes: config.bufferBytes,
      key: share.publicKey
    })
    const reader = new MessageReader(transport)
    const reply = yield* bounded(
      config.handshakeTimeoutMillis,
      `the resume hello with ${peer}`,
      Effect.andThen(send(transport, hello, "resume hello"), reader.next(["ServerHello"]))
    )
    const outcome = acceptHello(share, hello, config.bufferBytes, reply.message as ServerHello, reply.bytes, {
      token,
      binding: options.binding ?? new Uint8Array(0)
    })
    if (outcome._tag === "Declined") {
      const plain: Dialed = { _tag: "Plain", transport: withLeftover(transport, reader.rest()) }
      return plain
    }
    if (outcome._tag === "Unverified") {
      const error = resumeError(new PeerUnverified({ message: outcome.message }))
      return yield* handshakeError(`${peer}: ${outcome.message}`, error)
    }
    const windowMillis = Math.min(config.windowMillis || outcome.windowMillis, outcome.windowMillis)
    const r = yield* makeResumable(config, windowMillis, outcome.capacity, transport, reader.rest(), options.onEvent)
    const { ticket, secret } = outcome
    let attempt = 0

    const resume: DialerTransport["resume"] = (next, resumeOptions = {}) =>
      Effect.gen(function* () {
        const ended = failureOf(r)
        if (ended !== undefined) return yield* handshakeError(ended.message, ended)
        yield* r.loseCurrent("replaced by a new connection")
        const nextPeer = next.remoteAddress
        const binding = resumeOptions.binding ?? new Uint8Array(0)
        attempt++
        const thisAttempt = attempt
        const received = r.state.received
        const request = encodeMessage({
          _tag: "ResumeRequest",
          ticket,
          attempt: thisAttempt,
          received,
          proof: resumeProof(secret, ticket, thisAttempt, received, binding)
        })
        const replyReader = new MessageReader(next)
        const answer = yield* bounded(
          config.handshakeTimeoutMillis,
          `the resume request to ${nextPeer}`,
          Effect.andThen(send(next, request, "resume request"), replyReader.next(["ResumeAccept", "Refused"]))
        )
        const message = answer.message
        if (message._tag === "Refused") {
          yield* r.end(resumeError(new Refused({ reason: message.reason })), "drop", AbortCode.Aborted)
          return yield* refusedError(nextPeer, message.reason)
        }
        if (message._tag !== "ResumeAccept") return yield* handshakeError("unexpected message")
        const endedMeanwhile = failureOf(r)
        if (endedMeanwhile !== undefined) return yield* handshakeError(endedMeanwhile.message, endedMeanwhile)
        const expected = acceptProof(secret, ticket, thisAttempt, received, message.received, binding)
        if (!sameProof(message.proof, expected)) {
          const text = `${nextPeer} could not prove it holds the session secret; resume abandoned`
          yield* r.end(resumeError(new PeerUnverified({ message: text })), "drop", AbortCode.Aborted)
          return yield* handshakeError(text, failureOf(r))
        }
        if (r.state.received !== received || !r.canRewind(message.received)) {
          // The server lacks bytes this side no longer holds: tell it, and give up the session.
          yield* Effect.ignore(next.write([encodeAbort(AbortCode.PositionIncompatible)]))
          yield* r.end(resumeError(new Refused({ reason: "PositionIncompatible" })), "drop", AbortCode.Aborted)
          return yield* refusedError(nextPeer, "PositionIncompatible")
        }
        const attached = r.attachUnsafe(next, message.received, resumeOptions.release ?? Effect.void, {
          leftover: replyReader.rest()
        })
        yield* attached.start
        return { detached: attached.detached }
      })

    const abandon = (reason: RefusalReason) => r.end(resumeError(new Refused({ reason })), "drop", AbortCode.Aborted)
    const dialed: Dialed = {
      _tag: "Resumable",
      transport: viewOf(r, ticketLabel(ticket), windowMillis, { resume, abandon })
    }
    return dialed
  }).pipe(Effect.onExit((exit) => (Exit.isFailure(exit) ? transport.close : Effect.void)))

/**
 * Options of {@link keepResumed}.
 *
 * @since 0.1.0
 * @category dialling
 */
export interface KeepResumedOptions {
  /** First delay between failed attempts (default 50 ms; the first attempt is immediate). */
  readonly initialMillis?: number
  /** Largest delay (default 1 s). */
  readonly maxMillis?: number
  /** Channel binding of a fresh connection, when the link uses one. */
  readonly bindingOf?: (transport: Transport) => Uint8Array | undefined
  /** Called after each failed attempt (for logs). */
  readonly onAttemptFailed?: (error: TransportError, attempt: number) => Effect.Effect<void>
  /** Called when a connection is lost, with what ended it (for logs). */
  readonly onLoss?: (reason: string) => Effect.Effect<void>
  /** Called after a successful resume, with the attempts it took (for logs). */
  readonly onResumed?: (attempts: number) => Effect.Effect<void>
}

/**
 * Keeps a dialler's session resumed: each time its connection is lost, redials with `redial` and
 * resumes, retrying with capped backoff until a resume succeeds or the session ends (window run
 * out, refusal). Two redial failures give the session up at once instead of waiting out the
 * window: one with a `Refused` {@link ResumeError} as its cause (the peer no longer offers
 * resumption), and a connection refused at the TCP level (`ECONNREFUSED`: nothing listens where
 * the session's peer was, so the process that held the session is gone — a partition times out
 * or goes silent instead). Returns when the session is over; run it in a fiber next to the
 * session.
 *
 * @since 0.1.0
 * @category dialling
 */
export const keepResumed = (
  transport: DialerTransport,
  redial: Effect.Effect<Transport, TransportError, Scope.Scope>,
  options: KeepResumedOptions = {}
): Effect.Effect<void> => {
  const initial = options.initialMillis ?? 50
  const max = options.maxMillis ?? 1_000
  const attemptOnce = Effect.gen(function* () {
    const scope = yield* Scope.make()
    const release = Scope.close(scope, Exit.void)
    const result = yield* Effect.exit(
      redial.pipe(
        Scope.provide(scope),
        Effect.flatMap((next) => {
          const binding = options.bindingOf?.(next)
          return transport.resume(next, { release, ...(binding === undefined ? {} : { binding }) })
        })
      )
    )
    if (Exit.isFailure(result)) yield* release
    return result
  })
  const resumeLoop: Effect.Effect<void> = Effect.gen(function* () {
    for (let n = 0; transport.status() === "suspended"; n++) {
      if (n > 0) yield* Effect.sleep(Math.min(max, initial * 2 ** Math.min(n - 1, 20)))
      if (transport.status() !== "suspended") return
      const result = yield* attemptOnce
      if (Exit.isSuccess(result)) {
        if (options.onResumed !== undefined) yield* options.onResumed(n + 1)
        return
      }
      const error = Exit.findErrorOption(result)
      if (error._tag === "Some") {
        if (options.onAttemptFailed !== undefined) yield* options.onAttemptFailed(error.value, n + 1)
        const cause = resumeErrorOf(error.value)
        const gone = cause?.reason._tag === "Refused" ? cause.reason.reason : peerGone(error.value)
        if (gone !== undefined && transport.status() === "suspended") yield* transport.abandon(gone)
      }
    }
  })
  return Effect.gen(function* () {
    while (true) {
      const status = yield* transport.awaitLoss
      if (status === "ended") return
      if (options.onLoss !== undefined) yield* options.onLoss(transport.stats().lastLoss)
      yield* resumeLoop
    }
  })
}

// Links -------------------------------------------------------------------------------------------

/**
 * The layer's settings for a link whose session runs with `session`: liveness moves beneath the
 * session, so unless `resume` sets them, silence is the session's keepalive timeout and heartbeats
 * go four times within it (at most once a second).
 *
 * @since 0.1.0
 * @category links
 */
export const linkConfig = (
  session: Partial<SessionConfig> | undefined,
  resume: Partial<ResumeConfig> | undefined
): Partial<ResumeConfig> => {
  const silenceMillis = resume?.silenceMillis ?? session?.keepaliveTimeoutMillis ?? defaults.silenceMillis
  const heartbeatMillis = resume?.heartbeatMillis ?? Math.max(1, Math.min(1_000, Math.floor(silenceMillis / 4)))
  return { ...resume, silenceMillis, heartbeatMillis }
}

/**
 * The session settings over a resumable transport: no yamux keepalive (a suspended link carries
 * nothing by design; the layer's heartbeat judges the connection), and a partial-frame deadline
 * that a suspension cannot trip (it grows by the resume window, which bounds a suspension anyway).
 *
 * @since 0.1.0
 * @category links
 */
export const sessionConfig = (
  session: Partial<SessionConfig> | undefined,
  windowMillis: number
): Partial<SessionConfig> => {
  const frame = session?.frameTimeoutMillis ?? sessionDefaults.frameTimeoutMillis
  return {
    ...session,
    keepaliveIntervalMillis: 0,
    frameTimeoutMillis: frame === 0 ? 0 : frame + windowMillis
  }
}

/**
 * What a server makes of a negotiated connection ({@link acceptLink}).
 *
 * @since 0.1.0
 * @category links
 */
export type AcceptedLink =
  /** Start a session over `transport` with `session` settings (resumable or plain). */
  | {
      readonly _tag: "Session"
      readonly transport: Transport
      readonly agreement: Negotiation.Agreement
      readonly session: Partial<SessionConfig> | undefined
      readonly resumable: ResumableTransport | undefined
    }
  /** The connection continues an existing session: hold it until `detached`, start nothing. */
  | { readonly _tag: "Resumed"; readonly ticket: string; readonly detached: Effect.Effect<void> }

/**
 * The server's step after the link negotiation: a connection that agreed on resumption goes
 * through the acceptor (a new resumable session, or a resume of one); any other runs plain.
 *
 * @since 0.1.0
 * @category links
 */
export const acceptLink = (
  acceptor: Acceptor,
  negotiated: Negotiation.Negotiated,
  session: Partial<SessionConfig> | undefined
): Effect.Effect<AcceptedLink, TransportError, Scope.Scope> => {
  const plain = (transport: Transport): AcceptedLink => ({
    _tag: "Session",
    transport,
    agreement: negotiated.agreement,
    session,
    resumable: undefined
  })
  if (!negotiated.agreement.resume) return Effect.succeed(plain(negotiated.transport))
  return Effect.map(acceptor.accept(negotiated.transport), (accepted): AcceptedLink => {
    if (accepted._tag === "Resumed") return accepted
    if (accepted._tag === "Plain") return plain(accepted.transport)
    return {
      _tag: "Session",
      transport: accepted.transport,
      agreement: negotiated.agreement,
      session: sessionConfig(session, accepted.transport.windowMillis),
      resumable: accepted.transport
    }
  })
}

/** A dial refused at the TCP level: the peer's process (and with it the session) is gone. */
const peerGone = (error: TransportError): RefusalReason | undefined =>
  error.operation === "connect" && (error.cause as { code?: unknown } | undefined)?.code === "ECONNREFUSED"
    ? "UnknownTicket"
    : undefined

// The accepting side -------------------------------------------------------------------------------

/**
 * Options of {@link makeAcceptor}.
 *
 * @since 0.1.0
 * @category accepting
 */
export interface AcceptorOptions {
  readonly config?: Partial<ResumeConfig>
  /** The link's `--token`, when one is configured: it keys the session secret. */
  readonly token?: string | Uint8Array
  /** Receives each session's lifecycle events, with its ticket label and current peer address. */
  readonly onEvent?: (event: ResumeEvent, ticket: string, peer: string) => void
  /** Called for each refused resume request (after it was logged and counted). */
  readonly onRefused?: (reason: RefusalReason, peer: string) => void
  /** Expired tickets remembered (to answer `Expired` rather than `UnknownTicket`); default 4096. */
  readonly maxTombstones?: number
}

/**
 * What the acceptor made of a connection.
 *
 * @since 0.1.0
 * @category accepting
 */
export type Accepted =
  /** A new resumable session: run a yamux session over `transport` (it lives as long as the scope). */
  | { readonly _tag: "New"; readonly transport: ResumableTransport }
  /** Resumption declined (disabled here): run a plain session over `transport`. */
  | { readonly _tag: "Plain"; readonly transport: Transport }
  /**
   * The connection continues an existing session; nothing else to start. `detached` completes
   * once the connection is given up (hold the connection's resources until then).
   */
  | { readonly _tag: "Resumed"; readonly ticket: string; readonly detached: Effect.Effect<void> }

/**
 * Counters of an acceptor.
 *
 * @since 0.1.0
 * @category accepting
 */
export interface AcceptorStats {
  /** Resumable sessions alive (connected or suspended). */
  readonly sessions: number
  /** Of those, waiting for a resume. */
  readonly suspended: number
  /** Successful resumes. */
  readonly resumes: number
  /** Refused resume requests, by reason. */
  readonly refused: { readonly [K in RefusalReason]: number }
}

/**
 * The accepting side: the registry of resumable sessions.
 *
 * @since 0.1.0
 * @category accepting
 */
export interface Acceptor {
  /**
   * Reads the dialler's first message (after TLS, token and negotiation agreed on resumption):
   * a hello starts a session, a resume request is judged. A refused request fails with a
   * `handshake` {@link TransportError} (cause: a `Refused` {@link ResumeError}) after telling the
   * dialler why; the caller closes the connection. `binding`: this connection's channel binding.
   */
  readonly accept: (
    transport: Transport,
    options?: { readonly binding?: Uint8Array }
  ) => Effect.Effect<Accepted, TransportError, Scope.Scope>
  readonly stats: () => AcceptorStats
  /** The validated configuration. */
  readonly config: ResumeConfig
}

interface Entry {
  readonly state: TicketState
  readonly resumable: Resumable
}

/**
 * Makes the accepting side's registry.
 *
 * @since 0.1.0
 * @category accepting
 */
export const makeAcceptor = (options: AcceptorOptions = {}): Effect.Effect<Acceptor, ConfigError> =>
  Effect.gen(function* () {
    const config = yield* configOrFail(options.config)
    const token = tokenBytes(options.token)
    const maxTombstones = options.maxTombstones ?? 4096
    const entries = new Map<string, Entry>()
    const tombstones = new Map<string, true>()
    let resumes = 0
    const refused: { [K in RefusalReason]: number } = {
      UnknownTicket: 0,
      Expired: 0,
      BadProof: 0,
      PositionIncompatible: 0,
      Replayed: 0,
      TooManyAttempts: 0,
      Unsupported: 0
    }

    const refuse = (transport: Transport, reason: RefusalReason, label: string) =>
      Effect.gen(function* () {
        refused[reason]++
        options.onRefused?.(reason, transport.remoteAddress)
        yield* Effect.logWarning(
          `resume: refused a resume of session ${label} from ${transport.remoteAddress}: ${refusalText[reason]}`
        )
        yield* Effect.ignore(send(transport, encodeMessage({ _tag: "Refused", reason }), "refusal"))
        return yield* refusedError(transport.remoteAddress, reason)
      })

    const accept: Acceptor["accept"] = (transport, acceptOptions = {}) =>
      Effect.gen(function* () {
        const peer = transport.remoteAddress
        const binding = acceptOptions.binding ?? new Uint8Array(0)
        const reader = new MessageReader(transport)
        const first = yield* bounded(
          config.handshakeTimeoutMillis,
          `the resume handshake from ${peer}`,
          reader.next(["ClientHello", "ResumeRequest"])
        )
        const message = first.message
        if (message._tag === "ClientHello") {
          const answer = answerHello(message, first.bytes, makeKeyShare(), { token, binding }, config)
          yield* send(transport, answer.bytes, "resume hello")
          if (answer.session === undefined) {
            const plain: Accepted = { _tag: "Plain", transport: withLeftover(transport, reader.rest()) }
            return plain
          }
          const key = ticketKey(answer.session.ticket)
          const label = ticketLabel(answer.session.ticket)
          const onEvent = options.onEvent
          // Events name the connection the session is on when they happen.
          let current: Resumable | undefined
          const r = yield* makeResumable(
            config,
            config.windowMillis,
            answer.session.capacity,
            transport,
            reader.rest(),
            onEvent === undefined ? undefined : (event) => onEvent(event, label, current?.remoteAddress ?? peer)
          )
          current = r
          entries.set(key, { state: makeTicketState(answer.session.ticket, answer.session.secret), resumable: r })
          // The registry forgets a session when it ends; an expired one leaves a tombstone.
          yield* Effect.forkDetach(
            Effect.flatMap(Deferred.await(r.done), (error) =>
              Effect.sync(() => {
                entries.delete(key)
                if (error.reason._tag === "Expired") {
                  tombstones.set(key, true)
                  if (tombstones.size > maxTombstones) tombstones.delete(tombstones.keys().next().value!)
                }
              })
            )
          )
          const accepted: Accepted = {
            _tag: "New",
            transport: viewOf(r, label, config.windowMillis, {})
          }
          return accepted
        }
        if (message._tag !== "ResumeRequest") return yield* handshakeError("unexpected message")
        const key = ticketKey(message.ticket)
        const label = ticketLabel(message.ticket)
        const entry = entries.get(key)
        if (entry === undefined)
          return yield* refuse(transport, tombstones.has(key) ? "Expired" : "UnknownTicket", label)
        // Judged and attached in one synchronous step: no other attempt can interleave.
        const r = entry.resumable
        const verdict = judgeResume(entry.state, message, binding, (position) => r.canRewind(position))
        if (verdict._tag === "Refuse") {
          if (verdict.fatal)
            yield* r.end(resumeError(new Refused({ reason: verdict.reason })), "abort", AbortCode.Aborted)
          return yield* refuse(transport, verdict.reason, label)
        }
        const preamble = (own: number) =>
          encodeMessage({
            _tag: "ResumeAccept",
            received: own,
            proof: acceptProof(entry.state.secret, message.ticket, message.attempt, message.received, own, binding)
          })
        const attached = r.attachUnsafe(transport, message.received, Effect.void, {
          preamble,
          leftover: reader.rest()
        })
        resumes++
        yield* attached.start
        yield* Effect.logInfo(`resume: session ${label} resumed from ${peer}`)
        const resumed: Accepted = { _tag: "Resumed", ticket: label, detached: attached.detached }
        return resumed
      })

    const acceptor: Acceptor = {
      accept,
      config,
      stats: () => {
        let suspended = 0
        for (const entry of entries.values()) if (entry.resumable.status === "suspended") suspended++
        return { sessions: entries.size, suspended, resumes, refused: { ...refused } }
      }
    }
    return acceptor
  })
