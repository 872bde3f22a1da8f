/**
 * The read-only facts of a running proxy or server that operators look at: its links (peer, age,
 * round-trip time, streams, buffered bytes), its services with their traffic, its limits, and
 * whether it is ready. Pull metrics, the admin endpoint's `/status` and `/ready`, and the
 * dashboard are all computed from one {@link Observed}.
 *
 * Invariants: reading the facts never changes the component (no stream is opened, nothing is
 * reset) and costs nothing on its data path — every figure is a counter the component keeps
 * anyway, summed when read. Nothing secret is exposed: no token, no key, no TLS file path.
 *
 * @since 0.1.0
 */
import type { Histogram } from "../internal/observability/Histogram.ts"
import type { ProxyService } from "../proxy/Proxy.ts"
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
  /** The proxy's listen address, or the server's target (`echo` for the embedded echo service). */
  readonly address: string
  /** Streams of this service open now. */
  readonly streams: number
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
  /** Where the component accepts connections. */
  readonly listen: string
  /** The proxy's upstream; undefined on a server. */
  readonly upstream: string | undefined
  /** The links up now (the proxy's current session, or every link of its pool; every session of a server). */
  readonly sessions: () => ReadonlyArray<Session>
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
    services: () => {
      const stats = proxy.stats()
      return [
        {
          name: DEFAULT_SERVICE,
          address: listen,
          streams: stats.clients,
          bytesUp: stats.bytesUp,
          bytesDown: stats.bytesDown
        }
      ]
    },
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
 * The facts of a running server; `target` names where its streams go (`echo` by default).
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
  return {
    role: "server",
    listen: formatAddress(server.address),
    upstream: undefined,
    sessions: () => server.sessions().filter((session) => !session.isClosed()),
    services: () => {
      const stats = server.stats()
      return [
        {
          name: DEFAULT_SERVICE,
          address: options.target ?? "echo",
          streams: stats.streams,
          bytesUp: stats.bytesUp,
          bytesDown: stats.bytesDown
        }
      ]
    },
    limits: () => limits,
    readiness: () => {
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
