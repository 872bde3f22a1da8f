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
import { Context, Effect, Exit, FiberSet, Layer, Scope } from "effect"
import { endNow, type MuxStream } from "../internal/session/Stream.ts"
import * as Events from "../observability/Events.ts"
import type { SessionConfig } from "../session/Config.ts"
import type { MuxError } from "../session/MuxError.ts"
import * as Session from "../session/Session.ts"
import { pump, splice, startDirectSplice } from "../transport/Splice.ts"
import * as Tcp from "../transport/Tcp.ts"
import { type Transport, TransportError } from "../transport/Transport.ts"

/** Serves one stream. Success ends the stream with FIN, failure with RST. */
export type Handler<R = never> = (stream: MuxStream) => Effect.Effect<void, unknown, R>

/** The embedded echo service: every byte back, FIN after the client's FIN. */
export const echo: Handler = (stream) => pump(stream, stream)

/**
 * Forwards each stream to a fresh TCP connection to `target`; a failed dial resets the stream.
 *
 * Dial and splice are one callback-level state machine under a single `Effect.callback`: the
 * handler is parked here for the stream's whole life, so what it holds (no scope, no nested
 * frames) is what every idle forwarded stream costs. Interruption cancels the dial or resets both
 * sides. A stream that cannot be spliced directly (a fiber already reads it) falls back to pumps.
 */
export const forward =
  (target: Tcp.TcpAddress): Handler =>
  (stream) =>
    Effect.callback<void, TransportError | MuxError>((resume) => {
      // What an interruption must do at each point: cancel the dial; then reset the splice and
      // close the backend (also when the splice has just ended and its resume is still queued).
      let onInterrupt: Effect.Effect<void> = Effect.void
      let dialled = false
      const cancelDial = Tcp.dialWith(target, undefined, (result) => {
        dialled = true
        onInterrupt = Effect.void
        if (result instanceof TransportError) {
          resume(
            Effect.andThen(
              Effect.logWarning(`stream ${stream.id}: backend dial failed: ${result.message}`),
              Effect.fail(result)
            )
          )
          return
        }
        const backend = result
        const streamPort = stream.directPort()
        const backendPort = backend.directPort?.()
        if (streamPort === undefined || backendPort === undefined) {
          resume(Effect.ensuring(splice(stream, backend), backend.close))
          return
        }
        const stop = startDirectSplice(streamPort, backendPort, { aToB: 0, bToA: 0 }, (error) =>
          resume(Effect.andThen(backend.close, error === undefined ? Effect.void : Effect.fail(error)))
        )
        onInterrupt = Effect.andThen(Effect.sync(stop), backend.close)
      })
      if (!dialled) onInterrupt = Effect.sync(cancelDial)
      return Effect.suspend(() => onInterrupt)
    })

/** Options of {@link make}. */
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

/** Counters of a running server. */
export interface ServerStats {
  readonly sessions: number
  readonly streams: number
  readonly handled: number
  readonly failed: number
  readonly refusedLinks: number
}

/** A running server. */
export interface ServerService {
  /** The bound link address (the real port when 0 was asked for). */
  readonly address: Tcp.TcpAddress
  readonly stats: () => ServerStats
}

/** Default link listen address. */
export const DEFAULT_LISTEN: Tcp.TcpAddress = { host: "127.0.0.1", port: 7001 }

/** Starts a server that lives as long as the scope. */
export const make = Effect.fnUntraced(function* (options: ServerOptions = {}) {
  const listen = options.listen ?? DEFAULT_LISTEN
  const handler = options.handler ?? echo
  const maxSessions = options.maxSessions ?? 64
  const maxHandshakes = options.maxHandshakes ?? 1024
  const drainMillis = options.drainMillis ?? 10_000
  const events = yield* Events.current
  const scope = yield* Effect.scope
  const sessions = new Set<Session.Session>()
  let streams = 0
  let handled = 0
  let failed = 0
  let refusedLinks = 0

  const handlerDone = (stream: MuxStream, peer: string, exit: Exit.Exit<void, unknown>): Effect.Effect<void> => {
    streams--
    handled++
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
  const serveStream = (stream: MuxStream, peer: string) =>
    Effect.onExit(
      Effect.suspend(() => {
        streams++
        return handler(stream)
      }),
      (exit) => Effect.suspend(() => handlerDone(stream, peer, exit))
    )

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
        refusedLinks++
        yield* Effect.logWarning(`server: refusing link from ${accepted.remoteAddress}: ${maxSessions} links already`)
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
        refusedLinks++
        const what = options.handshake === undefined ? `${maxSessions} links` : `${maxHandshakes} handshakes`
        return Effect.andThen(
          Effect.logWarning(`server: refusing link from ${transport.remoteAddress}: ${what} already`),
          transport.reset
        )
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
    stats: () => ({ sessions: sessions.size, streams, handled, failed, refusedLinks })
  }
  return service
})

/** The server as a service. */
export class Server extends Context.Service<Server, ServerService>()("plait/server/Server") {}

/** A layer running the server for the layer's lifetime. */
export const layer = (options: ServerOptions = {}): Layer.Layer<Server, TransportError> =>
  Layer.effect(Server, make(options))
