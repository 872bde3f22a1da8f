/**
 * The server: accepts links from proxies, each its own yamux session, and hands every stream to a
 * handler — a backend TCP target, the embedded echo, or any Effect function.
 *
 * Invariants:
 * - Links are independent: a misbehaving peer ends its own session (GO_AWAY(1)) and nobody else's.
 * - Every stream runs its handler in its own fiber. A handler that succeeds ends its stream with FIN;
 *   one that fails or is interrupted ends it with RST (logged with the stream id and peer).
 * - A link's scope outlives its handlers: when the session stops accepting (GO_AWAY, link loss) the
 *   running handlers finish or fail on their own before the link is closed, bounded by `drainMillis`.
 * - Shutdown stops accepting links, sends GO_AWAY(0) on every session, drains up to `drainMillis`.
 * - Streams are routed by service. Every link is negotiated after its handshake, inside the session's
 *   transport (`Negotiation.acceptInline`: the session and its slot exist at once, whatever the
 *   peer sends first); when the peer agreed on open messages, each stream's first bytes name its service
 *   and client, read within `openMessageTimeoutMillis` (of the session reading the link: time it
 *   spends paused on `maxSessionBuffer` does not count) before the handler runs. A malformed,
 *   oversized, truncated or late open message is a protocol violation: GO_AWAY(1) for that link
 *   only. A stream for a service this server does not have is reset, logged with the name and
 *   counted; the link lives on. Streams of a plain yamux peer go to the default service.
 * - `reload` swaps the service table atomically: a new stream sees the old table or the new one,
 *   never a mix. Streams already running keep the handler they started with, so a removed service
 *   stops taking streams while its open ones finish, and an unchanged one is not touched.
 * - With `resume` (window above 0), links that offer resumption get a resumable session: the
 *   negotiation then runs before the session (a connection that resumes a broken session starts
 *   none, it is attached to that session and held until it is lost), broken sessions wait in a
 *   registry for the window, and negotiations and resume handshakes hold `maxHandshakes` slots,
 *   never `maxSessions` ones — so a resume is never refused because its own broken session holds
 *   the last slot. GO_AWAY and shutdown still end sessions for good.
 * - With `connect`, the server dials a proxy instead of (or as well as) listening, through the same
 *   supervised, redialled `Link` a proxy uses: the TCP direction is reversed, the roles are not (the
 *   proxy opens the streams, the server serves them).
 *
 * @since 0.1.0
 */
import { Clock, Context, Data, Duration, Effect, Exit, FiberSet, Layer, Scope } from "effect"
import * as Link from "../client/Link.ts"
import { Histogram } from "../internal/observability/Histogram.ts"
import { type ServiceStats, ServiceTallies, type ServiceTally } from "../internal/observability/ServiceTally.ts"
import { endNow, type MuxStream } from "../internal/session/Stream.ts"
import * as Events from "../observability/Events.ts"
import * as Resume from "../resume/Resume.ts"
import * as ResumeError from "../resume/ResumeError.ts"
import type { SessionConfig } from "../session/Config.ts"
import type { MuxError } from "../session/MuxError.ts"
import * as Session from "../session/Session.ts"
import type * as Endpoint from "../transport/Endpoint.ts"
import * as Negotiation from "../transport/Negotiation.ts"
import * as OpenMessage from "../transport/OpenMessage.ts"
import * as ProxyProtocol from "../transport/ProxyProtocol.ts"
import { readAll, type SpliceStats, splice, startDirectSplice } from "../transport/Splice.ts"
import * as Tcp from "../transport/Tcp.ts"
import { type DirectPort, type Transport, TransportError } from "../transport/Transport.ts"

/**
 * What the server hands a handler with each stream, for its metrics: the bytes the handler moved
 * (`aToB` read from the stream, `bToA` written to it — a splice counts into it per read, so the
 * totals include streams still open) and the outcome of backend dials. One small object per stream.
 *
 * @since 0.1.0
 * @category models
 */
export interface Serving extends SpliceStats {
  /** A backend dial succeeded after `millis`. */
  dialed(millis: number): void
  /** A backend dial failed (`timedOut`: it did not connect within its deadline). */
  dialFailed(timedOut?: boolean): void
  /** The server's clock (milliseconds), to time a dial. */
  now(): number
  /**
   * Runs `f` once `millis` have passed on the server's Clock, unless the returned function is
   * called first (for deadlines inside callback-level handlers, such as a backend dial's).
   */
  after(millis: number, f: () => void): () => void
  /** The service the stream is for: the open message's, or `default` without one. */
  readonly service: string
  /** The client's address as the proxy saw it, when the open message carried one. */
  readonly source: Endpoint.Endpoint | undefined
  /** The address the client connected to, when the open message carried one. */
  readonly destination: Endpoint.Endpoint | undefined
  /** The link the stream came over (its peer's address), for logs. */
  readonly peer: string
}

/**
 * Serves one stream. Success ends the stream with FIN, failure with RST.
 *
 * @since 0.1.0
 * @category models
 */
export type Handler<R = never> = (stream: MuxStream, serving: Serving) => Effect.Effect<void, unknown, R>

/**
 * The embedded echo service: every byte back, FIN after the client's FIN.
 *
 * @since 0.1.0
 * @category handlers
 */
export const echo: Handler = (stream, serving) => {
  const loop: Effect.Effect<void, MuxError> = Effect.flatMap(stream.read, (chunk): Effect.Effect<void, MuxError> => {
    if (chunk === null) return stream.closeWrite
    serving.aToB += chunk.length
    serving.bToA += chunk.length
    return Effect.flatMap(stream.write([chunk]), () => loop)
  })
  return loop
}

/**
 * Forwards each stream to a fresh TCP connection to `target`; a failed dial resets the stream.
 *
 * Dial and splice are one callback-level state machine under a single `Effect.callback`: the
 * handler is parked here for the stream's whole life, so what it holds (no scope, no nested
 * frames) is what every idle forwarded stream costs. Interruption cancels the dial or resets both
 * sides. A stream that cannot be spliced directly (a fiber already reads it) falls back to pumps.
 *
 * @since 0.1.0
 * @category handlers
 */
export const forward = (target: Tcp.TcpAddress, options: ForwardOptions = {}): Handler => {
  const version = options.proxyProtocol
  const dialTimeout = options.dialTimeoutMillis ?? DEFAULT_DIAL_TIMEOUT_MILLIS
  const timedOut = (): TransportError =>
    new TransportError({
      operation: "connect",
      message: `cannot connect to ${Tcp.formatAddress(target)}: no answer within ${dialTimeout} ms`
    })
  const handler: Handler = (stream, serving) =>
    Effect.callback<void, TransportError | MuxError>((resume) => {
      // What an interruption must do at each point: cancel the dial; then reset the splice and
      // close the backend (also when the splice has just ended and its resume is still queued).
      let onInterrupt: Effect.Effect<void> = Effect.void
      let dialled = false
      const started = serving.now()
      // The dial's deadline, on the server's Clock (one sweeper for every pending dial).
      const deadline = serving.after(dialTimeout, () => {
        if (dialled) return
        dialled = true
        onInterrupt = Effect.void
        cancelDial()
        serving.dialFailed(true)
        const error = timedOut()
        resume(
          Effect.andThen(
            Effect.logWarning(`stream ${stream.id}: backend dial failed: ${error.message}`),
            Effect.fail(error)
          )
        )
      })
      const cancelDial = Tcp.dialWith(target, undefined, (result) => {
        if (dialled) return
        dialled = true
        deadline()
        onInterrupt = Effect.void
        if (result instanceof TransportError) {
          serving.dialFailed()
          resume(
            Effect.andThen(
              Effect.logWarning(`stream ${stream.id}: backend dial failed: ${result.message}`),
              Effect.fail(result)
            )
          )
          return
        }
        serving.dialed(serving.now() - started)
        const backend = result
        // Before any byte of the stream: the PROXY protocol header, then what arrived behind the
        // open message (queued on the backend socket, in order, ahead of the splice's bytes).
        const head: Array<Uint8Array> = []
        if (version !== undefined) head.push(ProxyProtocol.encode(version, serving.source, serving.destination))
        const pending = takePending(serving)
        if (pending !== undefined) {
          serving.aToB += pending.length
          head.push(pending)
        }
        const streamPort = stream.directPort()
        const backendPort = backend.directPort?.()
        if (streamPort === undefined || backendPort === undefined) {
          const written = head.length === 0 ? Effect.void : backend.write(head)
          resume(Effect.ensuring(Effect.andThen(written, splice(stream, backend, serving)), backend.close))
          return
        }
        for (const bytes of head) backendPort.send(bytes)
        const stop = startDirectSplice(streamPort, backendPort, serving, (error) =>
          resume(Effect.andThen(backend.close, error === undefined ? Effect.void : Effect.fail(error)))
        )
        onInterrupt = Effect.andThen(Effect.sync(stop), backend.close)
      })
      if (!dialled) {
        onInterrupt = Effect.sync(() => {
          deadline()
          cancelDial()
        })
      }
      return Effect.suspend(() => onInterrupt)
    })
  ;(handler as { [kTakesPending]?: true })[kTakesPending] = true
  return handler
}

/**
 * Options of {@link forward}.
 *
 * @since 0.2.0
 * @category models
 */
export interface ForwardOptions {
  /** Prepend a PROXY protocol header (haproxy's v1 or v2) with the client's address to each connection. */
  readonly proxyProtocol?: ProxyProtocol.Version
  /**
   * A backend dial that has not connected within this long is abandoned: the stream is reset and
   * the dial counted as failed (default {@link DEFAULT_DIAL_TIMEOUT_MILLIS}), so a black-holed
   * backend cannot hold streams open.
   */
  readonly dialTimeoutMillis?: number
}

/**
 * Default bound on one backend dial: 10 s.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_DIAL_TIMEOUT_MILLIS = 10_000

/**
 * A service that forwards its streams to a backend.
 *
 * @since 0.2.0
 * @category models
 */
export interface Target extends ForwardOptions {
  readonly target: Tcp.TcpAddress
}

/**
 * What serves a service's streams: an Effect handler, or a backend to forward to.
 *
 * @since 0.2.0
 * @category models
 */
export type Service = Handler | Target

/**
 * The name of the service of streams that name none (plain yamux peers, `Client.open`).
 *
 * @since 0.2.0
 * @category constants
 */
export const DEFAULT_SERVICE = OpenMessage.DEFAULT_SERVICE

/**
 * What a {@link ServerService.reload} changed, by service name.
 *
 * @since 0.2.0
 * @category models
 */
export interface ReloadSummary {
  readonly added: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
  readonly changed: ReadonlyArray<string>
  readonly unchanged: ReadonlyArray<string>
}

/**
 * Where and how a server dials out to a proxy (`plait server --connect`).
 *
 * @since 0.2.0
 * @category models
 */
export interface ConnectOptions {
  /** The proxy's link address (its `--link-listen`). */
  readonly address: Tcp.TcpAddress
  /** Replaces the plain TCP dial (TLS, token). */
  readonly dial?: Effect.Effect<Transport, TransportError, Scope.Scope>
  readonly retry?: Link.RetryOptions
}

/** Marks handlers that deliver the bytes behind an open message themselves ({@link forward}). */
const kTakesPending = Symbol.for("plait/server/Server/takesPending")

/** The bytes that arrived behind the stream's open message, taken once. */
const takePending = (serving: Serving): Uint8Array | undefined => {
  if (!(serving instanceof StreamServing)) return undefined
  const pending = serving.pending
  serving.pending = undefined
  return pending
}

/**
 * A stream whose first read returns bytes already taken off it (those behind its open message),
 * for handlers that read the stream themselves. Everything else is the stream's own.
 */
class PrefixedStream implements MuxStream {
  readonly inner: MuxStream
  private pending: Uint8Array | undefined
  constructor(inner: MuxStream, pending: Uint8Array) {
    this.inner = inner
    this.pending = pending
  }
  get id() {
    return this.inner.id
  }
  get local() {
    return this.inner.local
  }
  get state() {
    return this.inner.state
  }
  get remoteAddress() {
    return this.inner.remoteAddress
  }
  get read(): Effect.Effect<Uint8Array | null, MuxError> {
    return Effect.suspend(() => {
      const pending = this.pending
      if (pending === undefined) return this.inner.read
      this.pending = undefined
      return Effect.succeed(pending)
    })
  }
  write(chunks: ReadonlyArray<Uint8Array>) {
    return this.inner.write(chunks)
  }
  get closeWrite() {
    return this.inner.closeWrite
  }
  get close() {
    return this.inner.close
  }
  get reset() {
    return this.inner.reset
  }
  get readAll(): Effect.Effect<Uint8Array, MuxError> {
    return readAll(this)
  }
  directPort(): DirectPort<MuxError> | undefined {
    return this.pending === undefined ? this.inner.directPort() : undefined
  }
}

const sameTarget = (a: Service, b: Service): boolean =>
  typeof a === "function" || typeof b === "function"
    ? a === b
    : a.target.host === b.target.host &&
      a.target.port === b.target.port &&
      a.proxyProtocol === b.proxyProtocol &&
      a.dialTimeoutMillis === b.dialTimeoutMillis

/** One service as the table holds it: what was asked for, the handler made of it once, its counters. */
interface Entry {
  readonly spec: Service
  readonly handler: Handler
  readonly tally: ServiceTally
}

/** Where a service's streams go, for status pages: the target, `echo`, or `handler`. */
const whereTo = (spec: Service): string =>
  typeof spec === "function" ? (spec === echo ? "echo" : "handler") : Tcp.formatAddress(spec.target)

const entryOf = (spec: Service, tally: ServiceTally): Entry => ({
  spec,
  tally,
  handler:
    typeof spec === "function"
      ? spec
      : forward(spec.target, {
          ...(spec.proxyProtocol === undefined ? {} : { proxyProtocol: spec.proxyProtocol }),
          ...(spec.dialTimeoutMillis === undefined ? {} : { dialTimeoutMillis: spec.dialTimeoutMillis })
        })
})

/** Checks every name of a service table; the first invalid one, with why. */
const invalidName = (services: Readonly<Record<string, Service>>): string | undefined => {
  for (const name of Object.keys(services)) {
    const invalid = OpenMessage.validateServiceName(name)
    if (invalid !== undefined) return `service ${JSON.stringify(name)}: ${invalid}`
  }
  return undefined
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerOptions {
  /** Where proxies connect (default 127.0.0.1:7001; with `connect` and no `listen`, nowhere). */
  readonly listen?: Tcp.TcpAddress
  /** What serves the default service's streams (default: {@link echo}). */
  readonly handler?: Service
  /**
   * Named services, each served by a handler or forwarded to a target. A `default` entry replaces
   * `handler`. Names: 1 to 63 letters, digits, `.`, `_`, `-`.
   */
  readonly services?: Readonly<Record<string, Service>>
  /** Dial out to a proxy and serve the streams it opens (reverse direction). */
  readonly connect?: ConnectOptions
  /** How long a stream's open message may take once the stream is accepted (default 10 s). */
  readonly openMessageTimeoutMillis?: number
  /** Bound on each link's negotiation (default 10 s). */
  readonly negotiationTimeoutMillis?: number
  readonly session?: Partial<SessionConfig>
  /** Links served at once; more are refused (default 64). */
  readonly maxSessions?: number
  /** Links still in their `handshake` at once; more are refused (default 1024). */
  readonly maxHandshakes?: number
  /** On shutdown, how long open streams may finish (default 10 s). */
  readonly drainMillis?: number
  /** Replaces the plain TCP listener (e.g. a TLS listener); receives the listen address. */
  readonly listener?: (address: Tcp.TcpAddress) => Effect.Effect<Tcp.TcpServer, TransportError, Scope.Scope>
  /** Runs on each accepted link before the session starts (authentication). */
  readonly handshake?: (transport: Transport) => Effect.Effect<Transport, TransportError, Scope.Scope>
  /**
   * Resumption (`docs/resume.md`): offered to links when set and its window is above 0. `token`
   * is the link's `--token` (it keys each session's secret).
   */
  readonly resume?: { readonly config?: Partial<Resume.ResumeConfig>; readonly token?: string }
}

export type {
  /**
   * One service's counters: streams routed to it (opened), closed, reset and open now, bytes each
   * way, and where its streams go (every service since start; `active` false once a reload removed it).
   *
   * @since 0.2.0
   * @category models
   */
  ServiceStats
} from "../internal/observability/ServiceTally.ts"

/**
 * Counters of a running server.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerStats {
  readonly sessions: number
  readonly streams: number
  readonly handled: number
  readonly failed: number
  readonly refusedLinks: number
  /** Bytes from proxies to the handlers, and back (streams still open included). */
  readonly bytesUp: number
  readonly bytesDown: number
  /** Backend dials that failed. */
  readonly dialFailures: number
  /** Of those, dials abandoned at `dialTimeoutMillis` (a black-holed backend). */
  readonly dialTimeouts: number
  /** Streams reset because they named a service this server does not have. */
  readonly unknownService: number
  /** Links ended with GO_AWAY(1) for a malformed, truncated or late open message. */
  readonly openViolations: number
  /**
   * Streams and bytes by service, for every service configured since start (a removed one keeps its
   * totals until the server stops). A stream counts once it is routed to its service's handler:
   * streams for an unknown service, or whose open message failed, are not in any.
   */
  readonly services: ReadonlyArray<ServiceStats>
}

/**
 * The limits a server runs with, for status pages (read-only).
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerSettings {
  readonly maxSessions: number
  readonly maxHandshakes: number
  readonly drainMillis: number
  readonly session: Partial<SessionConfig>
}

/**
 * A running server.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerService {
  /** The bound link address (the real port when 0 was asked for). */
  readonly address: Tcp.TcpAddress
  readonly stats: () => ServerStats
  /** The links served now. */
  readonly sessions: () => ReadonlyArray<Session.Session>
  readonly settings: ServerSettings
  /** Seconds each successful backend dial took. */
  readonly dialLatency: Histogram
  /** Whether the server listens for links (false when it only dials out with `connect`). */
  readonly listening: boolean
  /** The outbound link, with `connect`. */
  readonly link: Link.Link | undefined
  /** The names of the services served now. */
  readonly services: () => ReadonlyArray<string>
  /**
   * Replaces the service table (the `default` entry included: a table without one resets plain
   * yamux streams): added services take new streams at once, removed ones stop taking them (their
   * open streams finish), unchanged ones (the same handler, or the same target and PROXY protocol
   * version) are not touched. Fails on an invalid name, changing nothing.
   */
  readonly reload: (services: Readonly<Record<string, Service>>) => Effect.Effect<ReloadSummary, ServiceError>
}

/**
 * A service table that cannot be used.
 *
 * @since 0.2.0
 * @category errors
 */
export class ServiceError extends Data.TaggedError("ServiceError")<{ readonly message: string }> {}

/** Server-wide counters the per-stream {@link Serving} records report to. */
class Counters {
  bytesUp = 0
  bytesDown = 0
  dialFailures = 0
  dialTimeouts = 0
  readonly dialLatency = new Histogram()
  readonly live = new Set<StreamServing>()
  readonly clock: Clock.Clock
  readonly deadlines: Deadlines
  constructor(clock: Clock.Clock) {
    this.clock = clock
    this.deadlines = new Deadlines(clock)
  }
}

/**
 * The deadlines of a server's handlers (backend dials): one sweeper fiber on the server's Clock
 * for all of them, running only while some are pending, instead of a timer fiber per dial (the
 * connection rate pays for every allocation here). A deadline fires within a quarter of its length
 * after it is due (at most a second late).
 */
class Deadlines {
  readonly #clock: Clock.Clock
  readonly #pending = new Map<number, { readonly at: number; readonly f: () => void }>()
  #next = 0
  #tick = 1_000
  #sweeping = false

  constructor(clock: Clock.Clock) {
    this.#clock = clock
  }

  add(millis: number, f: () => void): () => void {
    const key = this.#next++
    this.#pending.set(key, { at: this.#clock.currentTimeMillisUnsafe() + millis, f })
    const tick = Math.max(10, Math.min(1_000, millis >>> 2))
    if (tick < this.#tick) this.#tick = tick
    if (!this.#sweeping) {
      this.#sweeping = true
      Effect.runFork(this.#sweep())
    }
    return () => {
      this.#pending.delete(key)
    }
  }

  #sweep(): Effect.Effect<void> {
    return Effect.flatMap(this.#clock.sleep(Duration.millis(this.#tick)), () => {
      const now = this.#clock.currentTimeMillisUnsafe()
      for (const [key, entry] of this.#pending) {
        if (entry.at > now) continue
        this.#pending.delete(key)
        entry.f()
      }
      if (this.#pending.size > 0) return this.#sweep()
      this.#sweeping = false
      this.#tick = 1_000
      return Effect.void
    })
  }
}

/** A class rather than a closure per stream: an idle forwarded stream holds just this record. */
class StreamServing implements Serving {
  aToB = 0
  bToA = 0
  readonly counters: Counters
  readonly peer: string
  service: string = DEFAULT_SERVICE
  source: Endpoint.Endpoint | undefined = undefined
  destination: Endpoint.Endpoint | undefined = undefined
  /** Bytes that arrived behind the open message, for a handler that takes them ({@link forward}). */
  pending: Uint8Array | undefined = undefined
  /** The counters of the service the stream was routed to, once it was. */
  tally: ServiceTally | undefined = undefined
  constructor(counters: Counters, peer: string) {
    this.counters = counters
    this.peer = peer
  }
  dialed(millis: number): void {
    this.counters.dialLatency.observe(millis / 1000)
  }
  dialFailed(timedOut = false): void {
    this.counters.dialFailures++
    if (timedOut) this.counters.dialTimeouts++
  }
  now(): number {
    return this.counters.clock.currentTimeMillisUnsafe()
  }
  after(millis: number, f: () => void): () => void {
    return this.counters.deadlines.add(millis, f)
  }
}

/**
 * Default link listen address.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_LISTEN: Tcp.TcpAddress = { host: "127.0.0.1", port: 7001 }

/**
 * Starts a server that lives as long as the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function* (options: ServerOptions = {}) {
  const listening = options.connect === undefined || options.listen !== undefined
  const listen = options.listen ?? DEFAULT_LISTEN
  const openTimeoutMillis = options.openMessageTimeoutMillis ?? OpenMessage.DEFAULT_TIMEOUT_MILLIS
  const negotiate = Negotiation.acceptInline({
    role: "server",
    ...(options.negotiationTimeoutMillis === undefined ? {} : { timeoutMillis: options.negotiationTimeoutMillis })
  })
  const negotiateFirst = Negotiation.acceptor({
    role: "server",
    resume: true,
    ...(options.negotiationTimeoutMillis === undefined ? {} : { timeoutMillis: options.negotiationTimeoutMillis })
  })
  const initial: Record<string, Service> = { [DEFAULT_SERVICE]: options.handler ?? echo, ...options.services }
  const invalid = invalidName(initial)
  if (invalid !== undefined) return yield* Effect.die(new ServiceError({ message: invalid }))
  // The service table is replaced whole on reload, never edited in place: a stream looks its
  // service up once, in one table.
  const tallies = new ServiceTallies()
  let table = new Map<string, Entry>(
    Object.entries(initial).map(([name, spec]) => [name, entryOf(spec, tallies.configure(name, whereTo(spec)))])
  )
  const maxSessions = options.maxSessions ?? 64
  const maxHandshakes = options.maxHandshakes ?? 1024
  const drainMillis = options.drainMillis ?? 10_000
  const events = yield* Events.current
  const resumeConfig =
    options.resume === undefined ? undefined : Resume.linkConfig(options.session, options.resume.config)
  const resumption =
    resumeConfig === undefined || (resumeConfig.windowMillis ?? Resume.defaults.windowMillis) === 0
      ? undefined
      : yield* Resume.makeAcceptor({
          config: resumeConfig,
          ...(options.resume?.token === undefined ? {} : { token: options.resume.token }),
          onEvent: (event, _ticket, peer) => Events.forResume(events, "server", () => peer)(event),
          onRefused: (reason, peer) =>
            Events.publish(events, {
              _tag: "ResumeFailed",
              role: "server",
              peer,
              reason,
              detail: ResumeError.refusalText[reason]
            })
        }).pipe(Effect.orDie)
  const scope = yield* Effect.scope
  const counters = new Counters(yield* Clock.Clock)
  const sessions = new Set<Session.Session>()
  let streams = 0
  let handled = 0
  let failed = 0
  let refusedLinks = 0
  let unknownService = 0
  let openViolations = 0
  /** Unknown names seen, for throttled warnings (bounded: past 1024 names they share one count). */
  const unknownNames = new Map<string, number>()

  const handlerDone = (
    stream: MuxStream,
    serving: StreamServing,
    peer: string,
    exit: Exit.Exit<void, unknown>
  ): Effect.Effect<void> => {
    streams--
    handled++
    counters.live.delete(serving)
    counters.bytesUp += serving.aToB
    counters.bytesDown += serving.bToA
    serving.tally?.ended(Exit.isSuccess(exit), serving.aToB, serving.bToA)
    if (Exit.isSuccess(exit)) {
      endNow(stream, true)
      return Effect.void
    }
    failed++
    endNow(stream, false)
    return Exit.hasInterrupts(exit)
      ? Effect.void
      : Effect.annotateLogs(Effect.logDebug(`stream ${stream.id}: handler failed; stream reset`, exit.cause), {
          peer,
          stream: stream.id
        })
  }

  const warnUnknown = (stream: MuxStream, serving: StreamServing) =>
    Effect.suspend(() => {
      unknownService++
      const key = unknownNames.size >= 1024 && !unknownNames.has(serving.service) ? "(others)" : serving.service
      const count = (unknownNames.get(key) ?? 0) + 1
      unknownNames.set(key, count)
      // The first of each name, then one line per thousand: a flood of bad names logs a few lines.
      if (count !== 1 && count % 1000 !== 0) return Effect.void
      return Effect.annotateLogs(
        Effect.logWarning(
          `server: stream ${stream.id}: unknown service ${JSON.stringify(serving.service)}; stream reset (${count} so far)`
        ),
        { peer: serving.peer, stream: stream.id }
      )
    })

  const violation = (session: Session.Session, stream: MuxStream, peer: string, error: OpenMessage.OpenMessageError) =>
    Effect.suspend(() => {
      openViolations++
      return Effect.andThen(
        Effect.annotateLogs(
          Effect.logWarning(`server: link from ${peer} ended with GO_AWAY(1): stream ${stream.id}: ${error.message}`),
          { peer, stream: stream.id }
        ),
        session.violation("OpenMessage", `stream ${stream.id}: ${error.message}`)
      )
    })

  // Not `Effect.exit` around the handler: it would swallow an interruption (a server shutting down
  // then left streams neither served nor reset).
  const runHandler = (stream: MuxStream, serving: StreamServing, entry: Entry, rest: Uint8Array | undefined) =>
    Effect.onExit(
      Effect.suspend(() => {
        const handler = entry.handler
        streams++
        counters.live.add(serving)
        serving.tally = entry.tally
        entry.tally.started()
        if (rest === undefined || rest.length === 0) return handler(stream, serving)
        if ((handler as { [kTakesPending]?: true })[kTakesPending] === true) {
          serving.pending = rest
          return handler(stream, serving)
        }
        return handler(new PrefixedStream(stream, rest), serving)
      }),
      (exit) => Effect.suspend(() => handlerDone(stream, serving, serving.peer, exit))
    )

  const serveStream = (session: Session.Session, stream: MuxStream, peer: string, streamOpen: number) => {
    const serving = new StreamServing(counters, peer)
    if (streamOpen === 0) {
      const entry = table.get(DEFAULT_SERVICE)
      if (entry !== undefined) return runHandler(stream, serving, entry, undefined)
      endNow(stream, false)
      return warnUnknown(stream, serving)
    }
    // The open message's deadline is one entry of the server's shared sweeper (no timer fiber per
    // stream): when it expires the stream is reset, and the failed read is reported as late. Like
    // the session's partial-frame deadline it runs only while the session reads the link: paused on
    // maxSessionBuffer (other streams' unread bytes), the session cannot have received the message,
    // so the deadline is re-armed to run from when reading resumed, never counted while paused.
    const acceptedAt = serving.now()
    let expired = false
    let cancel: () => void
    const due = (): void => {
      const now = serving.now()
      const since = session.readingSince()
      const left = (since < 0 ? now : Math.max(acceptedAt, since)) + openTimeoutMillis - now
      if (left > 0) {
        cancel = serving.after(left, due)
        return
      }
      expired = true
      endNow(stream, false)
    }
    cancel = serving.after(openTimeoutMillis, due)
    const deadline = { millis: openTimeoutMillis, expired: () => expired }
    return OpenMessage.read(stream, { timeoutMillis: 0, deadline }).pipe(
      Effect.matchEffect({
        onFailure: (error) => {
          cancel()
          endNow(stream, false)
          return error.isViolation ? violation(session, stream, peer, error) : Effect.void
        },
        onSuccess: ({ message, rest }) => {
          cancel()
          serving.service = message.service
          serving.source = message.source
          serving.destination = message.destination
          const entry = table.get(message.service)
          if (entry === undefined) {
            endNow(stream, false)
            return warnUnknown(stream, serving)
          }
          return runHandler(stream, serving, entry, rest)
        }
      })
    )
  }

  const refused = (peer: string, code: Events.RefusalCode, reason: string) => {
    refusedLinks++
    Events.publish(events, { _tag: "ClientRefused", role: "server", peer, code, reason })
    return Effect.logWarning(`server: refusing link from ${peer}: ${reason}`)
  }

  /** Serves the streams of one session until it stops accepting, then lets them drain (bounded). */
  // `announce`: publish LinkUp/LinkDown here; a dialled link (`connect`) has its Link do that.
  const serveSession = (
    session: Session.Session,
    peer: string,
    agreement: () => Negotiation.Agreement,
    announce = true
  ) =>
    Effect.gen(function* () {
      sessions.add(session)
      if (announce) Events.publish(events, { _tag: "LinkUp", role: "server", peer })
      // Handlers fail with their own errors, logged and acted upon in `handlerDone`: never joined.
      const handlers = yield* FiberSet.make<void, unknown>()
      const error = yield* Effect.flip(
        Effect.forever(
          Effect.flatMap(session.acceptUnscoped, (stream) =>
            // The agreement is settled before the session reads any frame, so before any stream.
            FiberSet.run(handlers, serveStream(session, stream, peer, agreement().streamOpen))
          )
        )
      )
      yield* FiberSet.awaitEmpty(handlers).pipe(Effect.timeoutOption(drainMillis))
      sessions.delete(session)
      const reason = session.isClosed() ? (yield* session.await).message : error.message
      if (announce) Events.publish(events, { _tag: "LinkDown", role: "server", peer, reason })
      yield* Effect.logInfo(`server: link ${announce ? "from" : "to"} ${peer} ended: ${reason}`)
    }).pipe(Effect.scoped)

  // A link holds a `maxSessions` slot only once its handshake succeeded: peers still handshaking (or
  // stalling in it) have their own bound, so they cannot crowd out authenticated proxies.
  let linkCount = 0
  let handshaking = 0
  // With resumption the negotiation (and the resume hello) run before the session, as handshakes.
  const handshaken = options.handshake !== undefined || resumption !== undefined
  const serveLink = (accepted: Transport) =>
    Effect.gen(function* () {
      let transport = accepted
      let link: Resume.AcceptedLink | undefined
      if (handshaken) {
        handshaking++
        const handshake = options.handshake
        const steps = Effect.gen(function* () {
          if (handshake !== undefined) transport = yield* handshake(accepted)
          if (resumption === undefined) return undefined
          return yield* Resume.acceptLink(resumption, yield* negotiateFirst(transport), options.session)
        })
        link = yield* steps.pipe(
          Effect.ensuring(
            Effect.sync(() => {
              handshaking--
            })
          )
        )
      }
      // A resumed connection belongs to a session that already holds its slot.
      if (link?._tag === "Resumed") return yield* link.detached
      if (linkCount >= maxSessions) {
        yield* refused(accepted.remoteAddress, "maxSessions", `${maxSessions} links already`)
        return yield* accepted.reset
      }
      linkCount++
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          linkCount--
        })
      )
      const peer = transport.remoteAddress
      if (link !== undefined) {
        const negotiated = link
        const session = yield* Session.make(negotiated.transport, {
          client: false,
          ...(negotiated.session === undefined ? {} : { config: negotiated.session }),
          onEvent: Events.forSession(events, "server", peer)
        })
        yield* Effect.logInfo(
          `server: link from ${peer}${negotiated.resumable === undefined ? "" : ` (resumable ${negotiated.resumable.ticket})`}`
        )
        return yield* serveSession(session, peer, () => negotiated.agreement)
      }
      // The negotiation runs inside the session's transport: the session (and its slot) exists at
      // once, whatever the peer does first.
      const inline = negotiate(transport)
      const session = yield* Session.make(inline.transport, {
        client: false,
        ...(options.session === undefined ? {} : { config: options.session }),
        onEvent: Events.forSession(events, "server", peer)
      })
      yield* Effect.logInfo(`server: link from ${peer}`)
      yield* serveSession(session, peer, inline.agreement)
    }).pipe(
      Effect.scoped,
      Effect.catch((error) => Effect.logWarning(`server: link from ${accepted.remoteAddress} failed: ${error.message}`))
    )

  const links = yield* FiberSet.make<void, never>()
  const admit = (transport: Transport) =>
    Effect.suspend(() => {
      const full = !handshaken ? linkCount >= maxSessions : handshaking >= maxHandshakes
      if (full) {
        const [code, what] = !handshaken
          ? (["maxSessions", `${maxSessions} links`] as const)
          : (["maxHandshakes", `${maxHandshakes} handshakes`] as const)
        return Effect.andThen(refused(transport.remoteAddress, code, `${what} already`), transport.reset)
      }
      return Effect.asVoid(FiberSet.run(links, Effect.ensuring(serveLink(transport), transport.close)))
    })

  const listenerScope = yield* Scope.fork(scope)
  const server = listening
    ? yield* (options.listener ?? Tcp.listen)(listen).pipe(Scope.provide(listenerScope))
    : undefined
  if (server !== undefined) {
    yield* Effect.forkIn(Effect.ignore(Effect.forever(Effect.flatMap(server.accept, admit))), scope)
  }

  // Reverse direction: a supervised link to the proxy, each of its sessions served like an
  // accepted one (redialled with backoff; its sessions drain under the link's scope).
  const link =
    options.connect === undefined
      ? undefined
      : yield* Link.make({
          dial: options.connect.dial ?? Tcp.connect(options.connect.address),
          upstream: Tcp.formatAddress(options.connect.address),
          role: "server",
          ...(options.session === undefined ? {} : { session: options.session }),
          ...(options.resume === undefined ? {} : { resume: options.resume }),
          ...(options.connect.retry === undefined ? {} : { retry: options.connect.retry }),
          ...(options.negotiationTimeoutMillis === undefined
            ? {}
            : { negotiationTimeoutMillis: options.negotiationTimeoutMillis }),
          onSession: (session, agreement) => serveSession(session, session.remoteAddress, () => agreement, false)
        })

  yield* Effect.addFinalizer(() =>
    Effect.gen(function* () {
      yield* Scope.close(listenerScope, Exit.void)
      // retire, not goAway: a proxy's SYN already on its way when the GO_AWAY leaves is still
      // served, so a rotation refuses no client (the proxy moves later ones to its other links).
      for (const session of sessions) yield* session.retire
      if (sessions.size > 0) {
        yield* Effect.logInfo(`server: draining ${sessions.size} link(s) for up to ${drainMillis} ms`)
        yield* FiberSet.awaitEmpty(links).pipe(Effect.timeoutOption(drainMillis))
      }
    })
  )

  const service: ServerService = {
    address: server?.address ?? options.connect!.address,
    stats: () => {
      let bytesUp = counters.bytesUp
      let bytesDown = counters.bytesDown
      for (const serving of counters.live) {
        bytesUp += serving.aToB
        bytesDown += serving.bToA
      }
      return {
        sessions: sessions.size,
        streams,
        handled,
        failed,
        refusedLinks,
        bytesUp,
        bytesDown,
        dialFailures: counters.dialFailures,
        dialTimeouts: counters.dialTimeouts,
        unknownService,
        openViolations,
        services: tallies.stats((add) => {
          for (const serving of counters.live) {
            if (serving.tally !== undefined) add(serving.tally, serving.aToB, serving.bToA)
          }
        })
      }
    },
    sessions: () => Array.from(sessions),
    settings: { maxSessions, maxHandshakes, drainMillis, session: options.session ?? {} },
    dialLatency: counters.dialLatency,
    listening,
    link,
    services: () => Array.from(table.keys()),
    reload: (services) =>
      Effect.suspend(() => {
        const bad = invalidName(services)
        if (bad !== undefined) return Effect.fail(new ServiceError({ message: bad }))
        const next = new Map<string, Entry>()
        const added: Array<string> = []
        const changed: Array<string> = []
        const unchanged: Array<string> = []
        for (const [name, spec] of Object.entries(services)) {
          const old = table.get(name)
          if (old === undefined) added.push(name)
          else if (sameTarget(old.spec, spec)) unchanged.push(name)
          else changed.push(name)
          // An unchanged service keeps its entry (and its handler) as it was.
          next.set(name, old !== undefined && sameTarget(old.spec, spec) ? old : entryOf(spec, tallies.of(name)))
        }
        const removed = Array.from(table.keys()).filter((name) => !next.has(name))
        table = next
        for (const [name, entry] of next) tallies.configure(name, whereTo(entry.spec))
        for (const name of removed) tallies.remove(name)
        const summary: ReloadSummary = { added, removed, changed, unchanged }
        return Effect.as(
          Effect.logInfo(
            `server: services reloaded: ${added.length} added, ${removed.length} removed, ${changed.length} changed, ${unchanged.length} unchanged`
          ),
          summary
        )
      })
  }
  return service
})

/**
 * The server as a service.
 *
 * @since 0.1.0
 * @category services
 */
export class Server extends Context.Service<Server, ServerService>()("plait/server/Server") {}

/**
 * A layer running the server for the layer's lifetime.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: ServerOptions = {}): Layer.Layer<Server, TransportError> =>
  Layer.effect(Server, make(options))
