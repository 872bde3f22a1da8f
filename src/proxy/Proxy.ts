/**
 * The proxy: accepts client TCP connections and carries each over its own stream of the one
 * persistent link to the server.
 *
 * Invariants:
 * - Each client connection is a fiber actor: it waits (bounded) for the link, opens a stream — the
 *   SYN that registers its id with the server — and splices client and stream both ways with
 *   backpressure end to end and half-close passed through.
 * - A client whose stream fails (link lost, stream reset) is reset promptly, never left hanging; a
 *   client that cannot get a link within `linkWaitMillis`, or whose stream cannot be opened, is
 *   reset (never a clean EOF) with a logged reason.
 * - Shutdown stops accepting, lets open clients finish up to `drainMillis`, then resets the rest and
 *   closes the link with GO_AWAY(0).
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Exit, FiberSet, Layer, LogLevel, Scope } from "effect"
import * as Client from "../client/Client.ts"
import type * as Link from "../client/Link.ts"
import { ClientLimit, ProxyError } from "../client/ProxyError.ts"
import { Histogram } from "../internal/observability/Histogram.ts"
import type { MuxStream } from "../internal/session/Stream.ts"
import * as Events from "../observability/Events.ts"
import type { SessionConfig } from "../session/Config.ts"
import { type SpliceStats, splice } from "../transport/Splice.ts"
import * as Tcp from "../transport/Tcp.ts"
import type { Transport, TransportError } from "../transport/Transport.ts"

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProxyOptions {
  /** Where clients connect (default 127.0.0.1:7000). */
  readonly listen?: Tcp.TcpAddress
  /** The server's link address (default 127.0.0.1:7001). */
  readonly upstream?: Tcp.TcpAddress
  /** Replaces the plain TCP dial (TLS, authentication); `upstream` is then only used in logs. */
  readonly dial?: Effect.Effect<Transport, TransportError, Scope.Scope>
  readonly session?: Partial<SessionConfig>
  readonly retry?: Link.RetryOptions
  /** How long a new client waits for a link before it is closed (default 10 s). */
  readonly linkWaitMillis?: number
  /** Client connections carried at once; more are refused (default 10 000). */
  readonly maxClients?: number
  /** On shutdown, how long open clients may finish (default 10 s). */
  readonly drainMillis?: number
}

/**
 * Counters of a running proxy.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProxyStats {
  /** Client connections open now. */
  readonly clients: number
  /** Client connections carried since start. */
  readonly carried: number
  /** Client connections refused or closed without a stream. */
  readonly refused: number
  /** Bytes from clients to the server, and back (connections still open included). */
  readonly bytesUp: number
  readonly bytesDown: number
}

/**
 * The limits a proxy runs with, for status pages (read-only).
 *
 * @since 0.1.0
 * @category models
 */
export interface ProxySettings {
  readonly upstream: Tcp.TcpAddress
  readonly linkWaitMillis: number
  readonly maxClients: number
  readonly drainMillis: number
  readonly session: Partial<SessionConfig>
}

/**
 * A running proxy.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProxyService {
  /** The bound client address (the real port when 0 was asked for). */
  readonly address: Tcp.TcpAddress
  /** The supervised link. */
  readonly link: Link.Link
  readonly stats: () => ProxyStats
  readonly settings: ProxySettings
  /** Seconds from a client's arrival until its stream was open (link wait and open backpressure). */
  readonly openLatency: Histogram
}

/**
 * Default client listen address.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_LISTEN: Tcp.TcpAddress = { host: "127.0.0.1", port: 7000 }
/**
 * Default server address.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_UPSTREAM: Tcp.TcpAddress = Client.DEFAULT_UPSTREAM

/**
 * Formats an address as `host:port` (IPv6 in brackets).
 *
 * @since 0.1.0
 * @category utils
 */
export const formatAddress = Tcp.formatAddress

/** One client connection as its actor sees it. */
class Carrying {
  readonly client: Transport
  readonly stats: SpliceStats = { aToB: 0, bToA: 0 }
  /** Set once the stream is open (the client is then carried, not refused). */
  stream: MuxStream | undefined = undefined
  /** When the client arrived (Clock milliseconds), for the open latency. */
  readonly arrived: number
  constructor(client: Transport, arrived: number) {
    this.client = client
    this.arrived = arrived
  }
}

const refusalCode = (error: ProxyError): Events.RefusalCode => {
  switch (error.reason._tag) {
    case "LinkUnavailable":
      return "linkUnavailable"
    case "OpenFailed":
      return "openFailed"
    case "ClientLimit":
      return "maxClients"
  }
}

/**
 * Starts a proxy that lives as long as the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function* (options: ProxyOptions = {}) {
  const listen = options.listen ?? DEFAULT_LISTEN
  const upstream = options.upstream ?? DEFAULT_UPSTREAM
  const linkWaitMillis = options.linkWaitMillis ?? 10_000
  const maxClients = options.maxClients ?? 10_000
  const drainMillis = options.drainMillis ?? 10_000
  const events = yield* Events.current
  const scope = yield* Effect.scope
  const clock = yield* Clock.Clock

  const opener = yield* Client.make({
    upstream,
    linkWaitMillis,
    ...(options.dial === undefined ? {} : { dial: options.dial }),
    ...(options.session === undefined ? {} : { session: options.session }),
    ...(options.retry === undefined ? {} : { retry: options.retry })
  })
  const link = opener.link

  let clients = 0
  let carried = 0
  let refused = 0
  let bytesUp = 0
  let bytesDown = 0
  // Open connections, so that byte totals include long-lived ones (summed when stats are read,
  // never on the data path).
  const live = new Set<Carrying>()
  const openLatency = new Histogram()

  // Log lines name the client; annotating each line (not the whole actor) keeps an idle actor lean.
  const log = (client: Transport, line: Effect.Effect<void>) =>
    Effect.annotateLogs(line, { client: client.remoteAddress })

  const refuse = (client: Transport, error: ProxyError) =>
    Effect.suspend(() => {
      refused++
      Events.publish(events, {
        _tag: "ClientRefused",
        role: "proxy",
        peer: client.remoteAddress,
        code: refusalCode(error),
        reason: error.message
      })
      return Effect.andThen(
        log(client, Effect.logWarning(`closing client: ${error.message}`)),
        // Reset, never FIN: the client may have sent a request that went nowhere, and a clean EOF
        // would present that as a complete (empty) answer.
        client.reset
      )
    })

  // What an idle actor holds while parked in `splice` is what every idle connection costs, so the
  // actor is one exit frame around the splice (no scope, no catch frame, no generator) pointing
  // at one small record; the outcome — refusal, error or clean end — is sorted out in `finish`.
  const carry = (carrying: Carrying) =>
    Effect.flatMap(opener.openUnscoped, (stream) => {
      carried++
      carrying.stream = stream
      openLatency.observe((clock.currentTimeMillisUnsafe() - carrying.arrived) / 1000)
      return splice(carrying.client, stream, carrying.stats)
    })

  const finish = (carrying: Carrying, exit: Exit.Exit<void, unknown>): Effect.Effect<void> => {
    clients--
    live.delete(carrying)
    const { client, stats, stream } = carrying
    if (stream === undefined) {
      const error = Exit.findErrorOption(exit)
      return error._tag === "Some" && error.value instanceof ProxyError
        ? Effect.andThen(refuse(client, error.value), client.close)
        : client.close
    }
    bytesUp += stats.aToB
    bytesDown += stats.bToA
    // A failed splice has already reset both sides; only the log line differs, and it is built only
    // when debug logging is on (at thousands of connections per second, it would cost otherwise).
    return Effect.flatMap(LogLevel.isEnabled("Debug"), (debug) => {
      if (!debug) return client.close
      const line =
        exit._tag === "Failure"
          ? Effect.logDebug(`stream ${stream.id} ended with an error; client reset`, exit.cause)
          : Effect.logDebug(`stream ${stream.id} closed (${stats.aToB} bytes up, ${stats.bToA} down)`)
      return Effect.andThen(log(client, line), client.close)
    })
  }

  const actor = (client: Transport) =>
    Effect.suspend(() => {
      if (clients >= maxClients)
        return refuse(client, new ProxyError({ reason: new ClientLimit({ limit: maxClients }) }))
      clients++
      const carrying = new Carrying(client, clock.currentTimeMillisUnsafe())
      live.add(carrying)
      return Effect.onExit(carry(carrying), (exit) => finish(carrying, exit))
    })

  // Actors fail with their splice's error (already logged and acted upon in `finish`): never joined.
  const actors = yield* FiberSet.make<void, unknown>()
  const listenerScope = yield* Scope.fork(scope)
  const server = yield* Tcp.listen(listen).pipe(Scope.provide(listenerScope))
  yield* Effect.logInfo(`proxy: listening on ${formatAddress(server.address)}, upstream ${formatAddress(upstream)}`)

  const acceptLoop = Effect.forever(Effect.flatMap(server.accept, (client) => FiberSet.run(actors, actor(client))))
  yield* Effect.forkIn(Effect.ignore(acceptLoop), scope)

  yield* Effect.addFinalizer(() =>
    Effect.gen(function* () {
      yield* Scope.close(listenerScope, Exit.void)
      if (clients > 0) {
        yield* Effect.logInfo(`proxy: draining ${clients} client(s) for up to ${drainMillis} ms`)
        yield* FiberSet.awaitEmpty(actors).pipe(Effect.timeoutOption(drainMillis))
      }
    })
  )

  const service: ProxyService = {
    address: server.address,
    link,
    stats: () => {
      let up = bytesUp
      let down = bytesDown
      for (const { stats } of live) {
        up += stats.aToB
        down += stats.bToA
      }
      return { clients, carried, refused, bytesUp: up, bytesDown: down }
    },
    settings: {
      upstream,
      linkWaitMillis,
      maxClients,
      drainMillis,
      session: options.session ?? {}
    },
    openLatency
  }
  return service
})

/**
 * The proxy as a service.
 *
 * @since 0.1.0
 * @category services
 */
export class TcpProxy extends Context.Service<TcpProxy, ProxyService>()("plait/proxy/TcpProxy") {}

/**
 * A layer running the proxy for the layer's lifetime (publishing on {@link Events.Events} when provided).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: ProxyOptions = {}): Layer.Layer<TcpProxy, TransportError> =>
  Layer.effect(TcpProxy, make(options))
