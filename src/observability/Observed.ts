/**
 * The read-only facts of a running proxy or server that operators look at: its links (peer, age,
 * round-trip time, streams, buffered bytes), its services with their traffic, its limits, and
 * whether it is ready. Pull metrics, the admin endpoint's `/status` and `/ready`, and the
 * dashboard are all computed from one {@link Observed}.
 *
 * Invariants: reading the facts never changes the component (no stream is opened, nothing is
 * reset) and costs nothing on its data path — every figure is a counter the component keeps
 * anyway, summed when read. Nothing secret is exposed: no token, no key, no TLS file path.
 * Services are the component's own per-service counters (`stats().services`): every service
 * configured since start, a removed one marked inactive with its totals kept until restart.
 * Readiness: a proxy is ready while a link is up; a server that dials its proxy (`connect`) while
 * its dialled link is up; a listening server while it is below `maxSessions` (a server that does
 * both is ready while either holds).
 *
 * @since 0.1.0
 */
import type { Histogram } from "../internal/observability/Histogram.ts"
import type { ProxyService, ServiceStats } from "../proxy/Proxy.ts"
import type { ServerService } from "../server/Server.ts"
import { type SessionConfig, validateSessionConfig } from "../session/Config.ts"
import type { Session } from "../session/Session.ts"
import { formatAddress } from "../transport/Tcp.ts"
import { DEFAULT_SERVICE } from "./Events.ts"

/**
 * One service as seen by the proxy (where its clients connect) or the server (where its streams go).
 *
 * @since 0.1.0
 * @category models
 */
export interface ServiceFacts {
  readonly name: string
  /**
   * The proxy's listen address, or the server's target (`echo` for the embedded echo service,
   * `handler` for an Effect function).
   */
  readonly address: string
  /** Whether the service is configured now; false once a reload removed it (its totals stay). */
  readonly active: boolean
  /** Streams of this service open now. */
  readonly streams: number
  /** Streams opened since start, and of those the ones that ended cleanly and by RST. */
  readonly opened: number
  readonly closed: number
  readonly reset: number
  /** Bytes toward the backend (client → server) and back, since start. */
  readonly bytesUp: number
  readonly bytesDown: number
}

/**
 * Whether a component should get traffic, and why not.
 *
 * @since 0.1.0
 * @category models
 */
export type Readiness = { readonly ready: true } | { readonly ready: false; readonly reason: string }

/**
 * What a proxy or a server lets its operators see.
 *
 * @since 0.1.0
 * @category models
 */
export interface Observed {
  readonly role: "proxy" | "server"
  /** Where the component accepts connections (`none` for a server that only dials out). */
  readonly listen: string
  /** The proxy's upstream(s); on a server that dials its proxy (`connect`), the proxy; else undefined. */
  readonly upstream: string | undefined
  /** The links up now (the proxy's current session, or every link of its pool; every session of a server). */
  readonly sessions: () => ReadonlyArray<Session>
  /** Every service configured since start, in the order they were first configured. */
  readonly services: () => ReadonlyArray<ServiceFacts>
  /** The limits in force, by name (counts, bytes, milliseconds). */
  readonly limits: () => Readonly<Record<string, number>>
  readonly readiness: () => Readiness
  /** Links established after the first (proxy), 0 on a server. */
  readonly reconnects: () => number
  /** Failed backend dials (server), 0 on a proxy. */
  readonly dialFailures: () => number
  /** Seconds until a client's stream was open (proxy). */
  readonly openLatency: Histogram | undefined
  /** Seconds per successful backend dial (server). */
  readonly dialLatency: Histogram | undefined
}

/** The session settings shown as limits (the rest are tuning, not limits). */
const SESSION_LIMITS = [
  "maxStreams",
  "acceptBacklog",
  "maxUnackedOpens",
  "maxWindow",
  "maxSessionBuffer",
  "keepaliveIntervalMillis",
  "keepaliveTimeoutMillis",
  "idleTimeoutMillis"
] as const satisfies ReadonlyArray<keyof SessionConfig>

const sessionLimits = (session: Partial<SessionConfig>): Record<string, number> => {
  // The component has already validated these; an invalid set cannot be running.
  const config = validateSessionConfig(session)
  const out: Record<string, number> = {}
  if ("setting" in config) return out
  for (const key of SESSION_LIMITS) out[key] = config[key]
  return out
}

const facts = (s: ServiceStats, address: string): ServiceFacts => ({
  name: s.name,
  address,
  active: s.active,
  streams: s.open,
  opened: s.opened,
  closed: s.closed,
  reset: s.reset,
  bytesUp: s.bytesUp,
  bytesDown: s.bytesDown
})

/**
 * The facts of a running proxy.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromProxy = (proxy: ProxyService): Observed => {
  const settings = proxy.settings
  const limits = {
    maxClients: settings.maxClients,
    linkWaitMillis: settings.linkWaitMillis,
    drainMillis: settings.drainMillis,
    ...sessionLimits(settings.session)
  }
  const listen = formatAddress(proxy.address)
  const upstream = settings.upstreams.map(formatAddress).join(",")
  const pool = proxy.pool
  return {
    role: "proxy",
    listen,
    upstream,
    sessions: () => {
      if (pool !== undefined) return pool.sessions()
      const session = proxy.link.current()
      return session === undefined || session.isClosed() ? [] : [session]
    },
    services: () => proxy.stats().services.map((s) => facts(s, s.address)),
    limits: () => limits,
    readiness: () =>
      proxy.link.current()?.isOpen() === true
        ? { ready: true }
        : { ready: false, reason: `no link to ${upstream}: ${proxy.link.lastError()}` },
    reconnects: () => (pool !== undefined ? pool.reconnects() : Math.max(0, proxy.link.generation() - 1)),
    dialFailures: () => 0,
    openLatency: proxy.openLatency,
    dialLatency: undefined
  }
}

/**
 * The facts of a running server. Each service's address is its target (`echo`, `handler` for an
 * Effect function); `target`, when given, replaces the default service's (a label of the caller's).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromServer = (server: ServerService, options: { readonly target?: string } = {}): Observed => {
  const settings = server.settings
  const limits = {
    maxSessions: settings.maxSessions,
    maxHandshakes: settings.maxHandshakes,
    drainMillis: settings.drainMillis,
    ...sessionLimits(settings.session)
  }
  const dialled = server.link
  // Without `listening`, `server.address` is the proxy's link address the server dials.
  const listen = server.listening ? formatAddress(server.address) : "none"
  const upstream = dialled !== undefined && !server.listening ? formatAddress(server.address) : undefined
  return {
    role: "server",
    listen,
    upstream,
    sessions: () => server.sessions().filter((session) => !session.isClosed()),
    services: () =>
      server
        .stats()
        .services.map((s) =>
          facts(s, s.name === DEFAULT_SERVICE && options.target !== undefined ? options.target : s.address)
        ),
    limits: () => limits,
    readiness: () => {
      // Dialling: a server whose proxy cannot reach it gets no streams, whatever its slots.
      if (dialled !== undefined) {
        if (dialled.current()?.isOpen() === true) return { ready: true }
        if (!server.listening) {
          return { ready: false, reason: `no link to ${upstream ?? "the proxy"}: ${dialled.lastError()}` }
        }
      }
      const links = server.stats().sessions
      return links < settings.maxSessions
        ? { ready: true }
        : { ready: false, reason: `${links} of ${settings.maxSessions} links in use (--max-sessions)` }
    },
    reconnects: () => 0,
    dialFailures: () => server.stats().dialFailures,
    openLatency: undefined,
    dialLatency: server.dialLatency
  }
}
