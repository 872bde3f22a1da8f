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
 * - Each listener belongs to a service (`listen` to the default one, `services` to named ones); a
 *   client's stream names its listener's service and carries the client's address in its open
 *   message (when the link agreed on them). With `acceptProxyProtocol`, a client's first bytes must
 *   be a PROXY protocol header (from a load balancer in front), read within a deadline; its
 *   addresses then travel instead, and a malformed or missing header closes that client only.
 *   With `proxyProtocolFrom`, only those sources may send one: any other client of such a listener
 *   is reset before a byte of it is read. Without `acceptProxyProtocol`, a header is plain bytes.
 * - `reload` changes the listeners without touching unchanged ones: new services start listening
 *   (all of them or none: a bind failure changes nothing), removed ones stop accepting while their
 *   clients finish, a moved one listens on its new address before the old one closes.
 * - With `linkListen`, the link is accepted from a server that dials this proxy instead of dialled
 *   to `upstream`; everything else is the same.
 * - With several `upstreams` or `links` above 1, the link is a {@link LinkPool.LinkPool}: each client's
 *   stream goes to the live link with the fewest streams, a lost link resets only its own clients,
 *   and new clients use the other links at once; with one upstream and one link it is the single
 *   supervised link, as before.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Exit, FiberSet, Layer, LogLevel, Scope } from "effect"
import * as Client from "../client/Client.ts"
import type * as Link from "../client/Link.ts"
import * as LinkListener from "../client/LinkListener.ts"
import * as LinkPool from "../client/LinkPool.ts"
import { ClientLimit, ClientProxyHeader, ProxyError } from "../client/ProxyError.ts"
import { Histogram } from "../internal/observability/Histogram.ts"
import { type ServiceStats, ServiceTallies, type ServiceTally } from "../internal/observability/ServiceTally.ts"
import type { MuxStream } from "../internal/session/Stream.ts"
import * as Cidr from "../internal/transport/Cidr.ts"
import * as Events from "../observability/Events.ts"
import type { SessionConfig } from "../session/Config.ts"
import * as Endpoint from "../transport/Endpoint.ts"
import * as OpenMessage from "../transport/OpenMessage.ts"
import * as ProxyProtocol from "../transport/ProxyProtocol.ts"
import { type SpliceStats, splice } from "../transport/Splice.ts"
import * as Tcp from "../transport/Tcp.ts"
import { type Transport, TransportError } from "../transport/Transport.ts"

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
  /**
   * Several servers, instead of `upstream`: a host name counts once per address it resolves to. With
   * more than one, or `links` above 1, the proxy keeps a {@link LinkPool.LinkPool}.
   */
  readonly upstreams?: ReadonlyArray<Tcp.TcpAddress>
  /** Links kept open, spread over the upstreams (default 1). */
  readonly links?: number
  /** How the pool dials one of its servers (TLS, token); default plain TCP. `dial` is for one link only. */
  readonly dialUpstream?: (upstream: LinkPool.Upstream) => Effect.Effect<Transport, TransportError, Scope.Scope>
  /** The pool's own settings (name resolution, health pings, rebalancing, dial timeout). */
  readonly pool?: Omit<LinkPool.PoolOptions, "servers" | "links" | "dial" | "session" | "retry">
  readonly session?: Partial<SessionConfig>
  readonly retry?: Link.RetryOptions
  /**
   * Resumption of the dialled link(s) (`Link.LinkOptions.resume`; `docs/resume.md`): a lost
   * connection pauses the clients instead of resetting them, up to the window.
   */
  readonly resume?: Link.LinkOptions["resume"]
  /** How long a new client waits for a link before it is closed (default 10 s). */
  readonly linkWaitMillis?: number
  /** Client connections carried at once; more are refused (default 10 000). */
  readonly maxClients?: number
  /** On shutdown, how long open clients may finish (default 10 s). */
  readonly drainMillis?: number
  /**
   * Named services: where their clients connect. A `default` entry replaces `listen`. Names: 1 to
   * 63 letters, digits, `.`, `_`, `-`.
   */
  readonly services?: Readonly<Record<string, Tcp.TcpAddress | ServiceListen>>
  /** Every client starts with a PROXY protocol header (v1 or v2) from a load balancer (default false). */
  readonly acceptProxyProtocol?: boolean
  /** How long a client's PROXY protocol header may take (default 5 s). */
  readonly proxyProtocolTimeoutMillis?: number
  /**
   * Where a PROXY protocol header may come from (the load balancers): CIDR blocks or single
   * addresses (`10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`). A client that must send a header and
   * connects from anywhere else is reset before a byte of it is read, logged and counted (refusal
   * code `untrustedSource`). Default: any source, so the listener must be reachable only from the
   * load balancer (whoever reaches it can claim to be any client). An invalid entry fails `make`.
   */
  readonly proxyProtocolFrom?: ReadonlyArray<string>
  /** Accept the link from a server that dials this proxy (`plait server --connect`) instead of dialling `upstream`. */
  readonly linkListen?: LinkListener.LinkListenOptions
}

/**
 * Where one service's clients connect, and whether they come through a PROXY-protocol load balancer.
 *
 * @since 0.2.0
 * @category models
 */
export interface ServiceListen {
  readonly listen: Tcp.TcpAddress
  /** Overrides the proxy-wide `acceptProxyProtocol` for this service. */
  readonly acceptProxyProtocol?: boolean
}

/**
 * What a {@link ProxyService.reload} changed, by service name.
 *
 * @since 0.2.0
 * @category models
 */
export interface ProxyReloadSummary {
  readonly added: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
  readonly changed: ReadonlyArray<string>
  readonly unchanged: ReadonlyArray<string>
}

export type {
  /**
   * One service's counters: streams opened, closed, reset and open now, bytes each way, and where
   * it listens (every service since start; `active` false once a reload removed it).
   *
   * @since 0.2.0
   * @category models
   */
  ServiceStats
} from "../internal/observability/ServiceTally.ts"

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
  /**
   * The same by service, for every service configured since start (a removed one keeps its
   * totals until the proxy stops). A stream counts once its client's stream is open.
   */
  readonly services: ReadonlyArray<ServiceStats>
}

/**
 * The limits a proxy runs with, for status pages (read-only).
 *
 * @since 0.1.0
 * @category models
 */
export interface ProxySettings {
  /** The first of `upstreams`. */
  readonly upstream: Tcp.TcpAddress
  readonly upstreams: ReadonlyArray<Tcp.TcpAddress>
  /** Links kept open (1 unless a pool). */
  readonly links: number
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
  /** The supervised link (the pool, when there is one). */
  readonly link: Link.Link
  /** The pool of links, with several upstreams or `links` above 1. */
  readonly pool: LinkPool.LinkPool | undefined
  readonly stats: () => ProxyStats
  readonly settings: ProxySettings
  /** Seconds from a client's arrival until its stream was open (link wait and open backpressure). */
  readonly openLatency: Histogram
  /** The bound address of each service's listener. */
  readonly addresses: () => Readonly<Record<string, Tcp.TcpAddress>>
  /** With `linkListen`: the bound address servers connect to. */
  readonly linkAddress: Tcp.TcpAddress | undefined
  /**
   * Replaces the services (the `default` entry included; `listen` is not consulted again): see the
   * module invariants. Fails, changing nothing, on an invalid name or an address that cannot be bound.
   */
  readonly reload: (
    services: Readonly<Record<string, Tcp.TcpAddress | ServiceListen>>
  ) => Effect.Effect<ProxyReloadSummary, TransportError>
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

/** One service's listener: what was asked for, what is bound, and the scope that holds it. */
class Listening {
  readonly name: string
  readonly listen: Tcp.TcpAddress
  /** Read per client, so a reload that flips only this needs no new listener. */
  acceptProxyProtocol: boolean
  readonly bound: Tcp.TcpAddress
  readonly scope: Scope.Closeable
  /** The service's counters (shared with a listener that replaces this one on a reload). */
  readonly tally: ServiceTally
  constructor(
    name: string,
    listen: Tcp.TcpAddress,
    acceptProxyProtocol: boolean,
    bound: Tcp.TcpAddress,
    scope: Scope.Closeable,
    tally: ServiceTally
  ) {
    this.name = name
    this.listen = listen
    this.acceptProxyProtocol = acceptProxyProtocol
    this.bound = bound
    this.scope = scope
    this.tally = tally
  }
}

/** One client connection as its actor sees it. */
class Carrying {
  readonly client: Transport
  readonly listening: Listening
  readonly stats: SpliceStats = { aToB: 0, bToA: 0 }
  /** Set once the stream is open (the client is then carried, not refused). */
  stream: MuxStream | undefined = undefined
  /** When the client arrived (Clock milliseconds), for the open latency. */
  readonly arrived: number
  constructor(client: Transport, listening: Listening, arrived: number) {
    this.client = client
    this.listening = listening
    this.arrived = arrived
  }
}

const isWildcard = (host: string) => host === "0.0.0.0" || host === "::" || host === ""

/** The address a client of `bound` connected to, in the client's family (the port at least). */
const destinationOf = (bound: Tcp.TcpAddress, source: Endpoint.Endpoint | undefined): Endpoint.Endpoint | undefined => {
  if (source === undefined) return undefined
  const exact = isWildcard(bound.host) ? undefined : Endpoint.make(bound.host, bound.port)
  return exact !== undefined && exact.family === source.family
    ? exact
    : { ...Endpoint.unspecified(source.family), port: bound.port }
}

const specOf = (
  spec: Tcp.TcpAddress | ServiceListen,
  acceptProxyProtocol: boolean
): { readonly listen: Tcp.TcpAddress; readonly acceptProxyProtocol: boolean } =>
  "listen" in spec
    ? { listen: spec.listen, acceptProxyProtocol: spec.acceptProxyProtocol ?? acceptProxyProtocol }
    : { listen: spec, acceptProxyProtocol }

const sameAddress = (a: Tcp.TcpAddress, b: Tcp.TcpAddress) => a.host === b.host && a.port === b.port

const refusalCode = (error: ProxyError): Events.RefusalCode => {
  switch (error.reason._tag) {
    case "LinkUnavailable":
      return "linkUnavailable"
    case "OpenFailed":
      return error.reason.cause.reason._tag === "OpenThrottled" ? "resetRate" : "openFailed"
    case "ClientLimit":
      return "maxClients"
    case "ClientProxyHeader":
      return error.reason.cause.reason._tag === "Untrusted" ? "untrustedSource" : "openFailed"
    case "ServiceUnsupported":
      return "openFailed"
  }
}

/** The IP of a transport's `host:port` remote address (IPv6 without brackets), or "" when it has none. */
const hostOf = (remoteAddress: string): string => {
  const colon = remoteAddress.lastIndexOf(":")
  const host = colon < 0 ? remoteAddress : remoteAddress.slice(0, colon)
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host
}

/**
 * Starts a proxy that lives as long as the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function* (options: ProxyOptions = {}) {
  const listen = options.listen ?? DEFAULT_LISTEN
  const upstreams =
    options.upstreams !== undefined && options.upstreams.length > 0
      ? options.upstreams
      : [options.upstream ?? DEFAULT_UPSTREAM]
  const upstream = upstreams[0]!
  const links = Math.max(1, Math.floor(options.links ?? 1))
  const linkWaitMillis = options.linkWaitMillis ?? 10_000
  const maxClients = options.maxClients ?? 10_000
  const drainMillis = options.drainMillis ?? 10_000
  const events = yield* Events.current
  const scope = yield* Effect.scope
  const clock = yield* Clock.Clock

  const acceptProxyProtocol = options.acceptProxyProtocol ?? false
  const headerTimeoutMillis = options.proxyProtocolTimeoutMillis ?? ProxyProtocol.DEFAULT_TIMEOUT_MILLIS
  const trusted = options.proxyProtocolFrom === undefined ? undefined : Cidr.parse(options.proxyProtocolFrom)
  if (trusted !== undefined && "error" in trusted) {
    return yield* new TransportError({ operation: "listen", message: `proxyProtocolFrom ${trusted.error}` })
  }
  const initial: Record<string, Tcp.TcpAddress | ServiceListen> = {
    [OpenMessage.DEFAULT_SERVICE]: listen,
    ...options.services
  }
  for (const name of Object.keys(initial)) {
    const invalid = OpenMessage.validateServiceName(name)
    if (invalid !== undefined) {
      return yield* new TransportError({ operation: "listen", message: `service ${JSON.stringify(name)}: ${invalid}` })
    }
  }
  const accepted = options.linkListen === undefined ? undefined : yield* LinkListener.listen(options.linkListen)
  const pool =
    accepted !== undefined || (upstreams.length === 1 && links === 1)
      ? undefined
      : yield* LinkPool.make({
          ...options.pool,
          servers: upstreams,
          links,
          ...(options.dialUpstream === undefined ? {} : { dial: options.dialUpstream }),
          ...(options.session === undefined ? {} : { session: options.session }),
          ...(options.retry === undefined ? {} : { retry: options.retry }),
          ...(options.resume === undefined ? {} : { resume: options.resume })
        })
  const opener = yield* Client.make({
    upstream,
    linkWaitMillis,
    ...(accepted === undefined ? {} : { link: accepted }),
    ...(pool === undefined ? {} : { link: pool }),
    ...(options.dial === undefined ? {} : { dial: options.dial }),
    ...(options.session === undefined ? {} : { session: options.session }),
    ...(options.retry === undefined ? {} : { retry: options.retry }),
    ...(options.resume === undefined ? {} : { resume: options.resume })
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
  const tallies = new ServiceTallies()

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
  const open = (carrying: Carrying, header: ProxyProtocol.Received | undefined) => {
    const { client, listening } = carrying
    // The client's own endpoints, unless a load balancer's header says whom it relays.
    const source = header?.header.source ?? Endpoint.parse(client.remoteAddress)
    const destination =
      header?.header.source !== undefined ? header.header.destination : destinationOf(listening.bound, source)
    return Effect.flatMap(opener.openServiceUnscoped(listening.name, { source, destination }), (stream) => {
      carried++
      carrying.stream = stream
      listening.tally.started()
      openLatency.observe((clock.currentTimeMillisUnsafe() - carrying.arrived) / 1000)
      const rest = header?.rest
      if (rest === undefined || rest.length === 0) return splice(client, stream, carrying.stats)
      // Bytes that came with the header are the client's first: they go before the splice's.
      carrying.stats.aToB += rest.length
      return Effect.andThen(stream.write([rest]), splice(client, stream, carrying.stats))
    })
  }

  const carry = (carrying: Carrying) => {
    if (!carrying.listening.acceptProxyProtocol) return open(carrying, undefined)
    const remote = carrying.client.remoteAddress
    if (trusted !== undefined && !trusted.has(hostOf(remote))) {
      // Refused before reading: an untrusted peer's header would let it claim any client address.
      const cause = new ProxyProtocol.ProxyProtocolError({ reason: new ProxyProtocol.Untrusted({ source: remote }) })
      return Effect.fail(new ProxyError({ reason: new ClientProxyHeader({ cause }) }))
    }
    return ProxyProtocol.readHeader(carrying.client, { timeoutMillis: headerTimeoutMillis }).pipe(
      Effect.mapError((cause) => new ProxyError({ reason: new ClientProxyHeader({ cause }) })),
      Effect.flatMap((header) => open(carrying, header))
    )
  }

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
    carrying.listening.tally.ended(exit._tag === "Success", stats.aToB, stats.bToA)
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

  const actor = (client: Transport, listening: Listening) =>
    Effect.suspend(() => {
      if (clients >= maxClients)
        return refuse(client, new ProxyError({ reason: new ClientLimit({ limit: maxClients }) }))
      clients++
      const carrying = new Carrying(client, listening, clock.currentTimeMillisUnsafe())
      live.add(carrying)
      return Effect.onExit(carry(carrying), (exit) => finish(carrying, exit))
    })

  // Actors fail with their splice's error (already logged and acted upon in `finish`): never joined.
  const actors = yield* FiberSet.make<void, unknown>()
  // Each listener has a scope of its own (closed to stop accepting); its clients' actors live in
  // `actors`, so closing a listener never touches a carried client.
  const listeners = new Map<string, Listening>()
  const upstreamText =
    accepted !== undefined
      ? "links accepted from servers"
      : pool !== undefined
        ? `${links} link(s) over upstreams ${upstreams.map(formatAddress).join(",")}`
        : `upstream ${formatAddress(upstream)}`
  const startListener = (
    name: string,
    spec: { readonly listen: Tcp.TcpAddress; readonly acceptProxyProtocol: boolean }
  ) =>
    Effect.gen(function* () {
      const listenerScope = yield* Scope.fork(scope)
      const server = yield* Tcp.listen(spec.listen).pipe(
        Scope.provide(listenerScope),
        Effect.onError(() => Scope.close(listenerScope, Exit.void))
      )
      const tally = tallies.of(name)
      const listening = new Listening(name, spec.listen, spec.acceptProxyProtocol, server.address, listenerScope, tally)
      const acceptLoop = Effect.forever(
        Effect.flatMap(server.accept, (client) => FiberSet.run(actors, actor(client, listening)))
      )
      yield* Effect.forkIn(Effect.ignore(acceptLoop), listenerScope)
      const pp = !spec.acceptProxyProtocol
        ? ""
        : trusted === undefined
          ? ", PROXY protocol from clients"
          : `, PROXY protocol from ${trusted.entries.join(",")}`
      yield* Effect.logInfo(
        name === OpenMessage.DEFAULT_SERVICE
          ? `proxy: listening on ${formatAddress(server.address)}, ${upstreamText}${pp}`
          : `proxy: service ${name} listening on ${formatAddress(server.address)}${pp}`
      )
      return listening
    })
  for (const [name, spec] of Object.entries(initial)) {
    const listening = yield* startListener(name, specOf(spec, acceptProxyProtocol))
    listeners.set(name, listening)
    tallies.configure(name, formatAddress(listening.bound))
  }

  const reload = (services: Readonly<Record<string, Tcp.TcpAddress | ServiceListen>>) =>
    Effect.gen(function* () {
      for (const name of Object.keys(services)) {
        const invalid = OpenMessage.validateServiceName(name)
        if (invalid !== undefined) {
          return yield* new TransportError({
            operation: "listen",
            message: `service ${JSON.stringify(name)}: ${invalid}`
          })
        }
      }
      const added: Array<string> = []
      const changed: Array<string> = []
      const unchanged: Array<string> = []
      const flagOnly: Array<[Listening, boolean]> = []
      const started = new Map<string, Listening>()
      // Bind every new address first: one failure closes what was bound and changes nothing.
      const bindAll = Effect.gen(function* () {
        for (const [name, raw] of Object.entries(services)) {
          const spec = specOf(raw, acceptProxyProtocol)
          const old = listeners.get(name)
          // The same address as asked for before, or the one it was bound to (port 0 → its real port).
          if (old !== undefined && (sameAddress(old.listen, spec.listen) || sameAddress(old.bound, spec.listen))) {
            if (old.acceptProxyProtocol === spec.acceptProxyProtocol) unchanged.push(name)
            else {
              changed.push(name)
              flagOnly.push([old, spec.acceptProxyProtocol])
            }
            continue
          }
          ;(old === undefined ? added : changed).push(name)
          started.set(name, yield* startListener(name, spec))
        }
      })
      yield* bindAll.pipe(
        Effect.onError(() =>
          Effect.forEach(started.values(), (listening) => Scope.close(listening.scope, Exit.void), { discard: true })
        )
      )
      for (const [listening, flag] of flagOnly) listening.acceptProxyProtocol = flag
      const removed: Array<string> = []
      for (const [name, listening] of listeners) {
        if (!(name in services)) {
          removed.push(name)
          tallies.remove(name)
        }
        if (!(name in services) || started.has(name)) {
          yield* Scope.close(listening.scope, Exit.void)
          listeners.delete(name)
        }
      }
      for (const [name, listening] of started) {
        listeners.set(name, listening)
        tallies.configure(name, formatAddress(listening.bound))
      }
      yield* Effect.logInfo(
        `proxy: services reloaded: ${added.length} added, ${removed.length} removed, ${changed.length} changed, ${unchanged.length} unchanged`
      )
      const summary: ProxyReloadSummary = { added, removed, changed, unchanged }
      return summary
    })

  yield* Effect.addFinalizer(() =>
    Effect.gen(function* () {
      for (const listening of listeners.values()) yield* Scope.close(listening.scope, Exit.void)
      if (clients > 0) {
        yield* Effect.logInfo(`proxy: draining ${clients} client(s) for up to ${drainMillis} ms`)
        yield* FiberSet.awaitEmpty(actors).pipe(Effect.timeoutOption(drainMillis))
      }
    })
  )

  const addresses = () => {
    const out: Record<string, Tcp.TcpAddress> = {}
    for (const [name, listening] of listeners) out[name] = listening.bound
    return out
  }
  const service: ProxyService = {
    address: (listeners.get(OpenMessage.DEFAULT_SERVICE) ?? listeners.values().next().value!).bound,
    link,
    pool,
    stats: () => {
      let up = bytesUp
      let down = bytesDown
      for (const { stats } of live) {
        up += stats.aToB
        down += stats.bToA
      }
      const services = tallies.stats((add) => {
        for (const { listening, stats, stream } of live) {
          if (stream !== undefined) add(listening.tally, stats.aToB, stats.bToA)
        }
      })
      return { clients, carried, refused, bytesUp: up, bytesDown: down, services }
    },
    settings: {
      upstream,
      upstreams,
      links: pool?.size ?? 1,
      linkWaitMillis,
      maxClients,
      drainMillis,
      session: options.session ?? {}
    },
    openLatency,
    addresses,
    linkAddress: accepted?.address,
    reload
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
