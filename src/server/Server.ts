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
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Exit, FiberSet, Layer, Scope } from "effect"
import { Histogram } from "../internal/observability/Histogram.ts"
import { endNow, type MuxStream } from "../internal/session/Stream.ts"
import * as Events from "../observability/Events.ts"
import type { SessionConfig } from "../session/Config.ts"
import type { MuxError } from "../session/MuxError.ts"
import * as Session from "../session/Session.ts"
import { type SpliceStats, splice, startDirectSplice } from "../transport/Splice.ts"
import * as Tcp from "../transport/Tcp.ts"
import { type Transport, TransportError } from "../transport/Transport.ts"

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
  /** A backend dial failed. */
  dialFailed(): void
  /** The server's clock (milliseconds), to time a dial. */
  now(): number
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
export const forward =
  (target: Tcp.TcpAddress): Handler =>
  (stream, serving) =>
    Effect.callback<void, TransportError | MuxError>((resume) => {
      // What an interruption must do at each point: cancel the dial; then reset the splice and
      // close the backend (also when the splice has just ended and its resume is still queued).
      let onInterrupt: Effect.Effect<void> = Effect.void
      let dialled = false
      const started = serving.now()
      const cancelDial = Tcp.dialWith(target, undefined, (result) => {
        dialled = true
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
        const streamPort = stream.directPort()
        const backendPort = backend.directPort?.()
        if (streamPort === undefined || backendPort === undefined) {
          resume(Effect.ensuring(splice(stream, backend, serving), backend.close))
          return
        }
        const stop = startDirectSplice(streamPort, backendPort, serving, (error) =>
          resume(Effect.andThen(backend.close, error === undefined ? Effect.void : Effect.fail(error)))
        )
        onInterrupt = Effect.andThen(Effect.sync(stop), backend.close)
      })
      if (!dialled) onInterrupt = Effect.sync(cancelDial)
      return Effect.suspend(() => onInterrupt)
    })

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerOptions {
  /** Where proxies connect (default 127.0.0.1:7001). */
  readonly listen?: Tcp.TcpAddress
  /** What serves each stream (default: {@link echo}). */
  readonly handler?: Handler
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
}

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
}

/** Server-wide counters the per-stream {@link Serving} records report to. */
class Counters {
  bytesUp = 0
  bytesDown = 0
  dialFailures = 0
  readonly dialLatency = new Histogram()
  readonly live = new Set<StreamServing>()
  readonly clock: Clock.Clock
  constructor(clock: Clock.Clock) {
    this.clock = clock
  }
}

/** A class rather than a closure per stream: an idle forwarded stream holds just this record. */
class StreamServing implements Serving {
  aToB = 0
  bToA = 0
  readonly counters: Counters
  constructor(counters: Counters) {
    this.counters = counters
  }
  dialed(millis: number): void {
    this.counters.dialLatency.observe(millis / 1000)
  }
  dialFailed(): void {
    this.counters.dialFailures++
  }
  now(): number {
    return this.counters.clock.currentTimeMillisUnsafe()
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
  const listen = options.listen ?? DEFAULT_LISTEN
  const handler = options.handler ?? echo
  const maxSessions = options.maxSessions ?? 64
  const maxHandshakes = options.maxHandshakes ?? 1024
  const drainMillis = options.drainMillis ?? 10_000
  const events = yield* Events.current
  const scope = yield* Effect.scope
  const counters = new Counters(yield* Clock.Clock)
  const sessions = new Set<Session.Session>()
  let streams = 0
  let handled = 0
  let failed = 0
  let refusedLinks = 0

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

  // Not `Effect.exit` around the handler: it would swallow an interruption (a server shutting down
  // then left streams neither served nor reset).
  const serveStream = (stream: MuxStream, peer: string) => {
    const serving = new StreamServing(counters)
    return Effect.onExit(
      Effect.suspend(() => {
        streams++
        counters.live.add(serving)
        return handler(stream, serving)
      }),
      (exit) => Effect.suspend(() => handlerDone(stream, serving, peer, exit))
    )
  }

  const refused = (peer: string, code: Events.RefusalCode, reason: string) => {
    refusedLinks++
    Events.publish(events, { _tag: "ClientRefused", role: "server", peer, code, reason })
    return Effect.logWarning(`server: refusing link from ${peer}: ${reason}`)
  }



  // A link holds a `maxSessions` slot only once its handshake succeeded: peers still handshaking (or
  // stalling in it) have their own bound, so they cannot crowd out authenticated proxies.
  let linkCount = 0
  let handshaking = 0
  const serveLink = (accepted: Transport) =>
    Effect.gen(function* () {
      let transport = accepted
      if (options.handshake !== undefined) {
        handshaking++
        transport = yield* options.handshake(accepted).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              handshaking--
            })
          )
        )
      }
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
      const session = yield* Session.make(transport, {
        client: false,
        ...(options.session === undefined ? {} : { config: options.session }),
        onEvent: Events.forSession(events, "server", peer)
      })
      sessions.add(session)
      Events.publish(events, { _tag: "LinkUp", role: "server", peer })
      yield* Effect.logInfo(`server: link from ${peer}`)
      // Handlers fail with their own errors, logged and acted upon in `handlerDone`: never joined.
      const handlers = yield* FiberSet.make<void, unknown>()
      const error = yield* Effect.flip(
        Effect.forever(
          Effect.flatMap(session.acceptUnscoped, (stream) => FiberSet.run(handlers, serveStream(stream, peer)))
        )
      )
      yield* FiberSet.awaitEmpty(handlers).pipe(Effect.timeoutOption(drainMillis))
      sessions.delete(session)
      const reason = session.isClosed() ? (yield* session.await).message : error.message
      Events.publish(events, { _tag: "LinkDown", role: "server", peer, reason })
      yield* Effect.logInfo(`server: link from ${peer} ended: ${reason}`)
    }).pipe(
      Effect.scoped,
      Effect.catch((error) => Effect.logWarning(`server: link from ${accepted.remoteAddress} failed: ${error.message}`))
    )

  const links = yield* FiberSet.make<void, never>()
  const admit = (transport: Transport) =>
    Effect.suspend(() => {
      const full = options.handshake === undefined ? linkCount >= maxSessions : handshaking >= maxHandshakes
      if (full) {
        const [code, what] =
          options.handshake === undefined
            ? (["maxSessions", `${maxSessions} links`] as const)
            : (["maxHandshakes", `${maxHandshakes} handshakes`] as const)
        return Effect.andThen(refused(transport.remoteAddress, code, `${what} already`), transport.reset)
      }
      return Effect.asVoid(FiberSet.run(links, Effect.ensuring(serveLink(transport), transport.close)))
    })

  const listenerScope = yield* Scope.fork(scope)
  const server = yield* (options.listener ?? Tcp.listen)(listen).pipe(Scope.provide(listenerScope))
  yield* Effect.forkIn(Effect.ignore(Effect.forever(Effect.flatMap(server.accept, admit))), scope)

  yield* Effect.addFinalizer(() =>
    Effect.gen(function* () {
      yield* Scope.close(listenerScope, Exit.void)
      for (const session of sessions) yield* session.goAway
      if (sessions.size > 0) {
        yield* Effect.logInfo(`server: draining ${sessions.size} link(s) for up to ${drainMillis} ms`)
        yield* FiberSet.awaitEmpty(links).pipe(Effect.timeoutOption(drainMillis))
      }
    })
  )

  const service: ServerService = {
    address: server.address,
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
        dialFailures: counters.dialFailures
      }
    },
    sessions: () => Array.from(sessions),
    settings: { maxSessions, maxHandshakes, drainMillis, session: options.session ?? {} },
    dialLatency: counters.dialLatency
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
