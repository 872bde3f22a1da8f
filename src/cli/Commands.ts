/**
 * What `plait proxy` and `plait server` do once their config is validated: the transports they dial
 * or listen with (TLS, token), the warnings about unprotected links, and the service itself. Both run
 * under `Main.run` (logs, signals, exit codes, SIGHUP) and are reached through `bin.ts`.
 *
 * Invariants: a problem with a file or secret named by a setting (TLS files, the token) is an
 * `OptionsError` naming the flag (exit 2), found before anything listens; the warnings name the
 * address and the flags that would fix them, never a secret.
 *
 * @since 0.1.0
 */
import * as net from "node:net"
import { Effect, Redacted, type Scope } from "effect"
import * as Admin from "../admin/Admin.ts"
import type * as LinkListener from "../client/LinkListener.ts"
import type * as Events from "../observability/Events.ts"
import * as Observed from "../observability/Observed.ts"
import * as PlaitProxy from "../proxy/Proxy.ts"
import * as Server from "../server/Server.ts"
import * as Auth from "../transport/Auth.ts"
import * as Tcp from "../transport/Tcp.ts"
import * as Tls from "../transport/Tls.ts"
import {
  type Command,
  type Commands,
  changedKeys,
  configError,
  isLoopback,
  type Running,
  withObservability
} from "./Main.ts"
import {
  type AnySetting,
  type CommonConfig,
  configKey,
  formatAddress,
  OptionsError,
  type ProxyConfig,
  proxySettings,
  resumeOptions,
  type ServerConfig,
  type Settings,
  serverSettings,
  sessionOptions
} from "./Options.ts"
import * as Security from "./Security.ts"

/** The proxy's service table: the default service on `--listen`, the named ones on theirs. */
const proxyServices = (config: ProxyConfig): Record<string, PlaitProxy.ServiceListen> => {
  const out: Record<string, PlaitProxy.ServiceListen> = {
    [Server.DEFAULT_SERVICE]: { listen: config.listen, acceptProxyProtocol: config.acceptProxyProtocol }
  }
  for (const service of config.services) {
    out[service.name] = { listen: service.listen, acceptProxyProtocol: config.acceptProxyProtocol }
  }
  return out
}

/** The server's service table: the default service (`--target`, or the echo), and the named ones. */
const serverServices = (config: ServerConfig): Record<string, Server.Service> => {
  const out: Record<string, Server.Service> = {
    [Server.DEFAULT_SERVICE]:
      config.target === undefined ? Server.echo : { target: config.target, dialTimeoutMillis: config.dialTimeoutMillis }
  }
  for (const service of config.services) {
    out[service.name] =
      service.proxyProtocol === undefined
        ? { target: service.target, dialTimeoutMillis: config.dialTimeoutMillis }
        : { target: service.target, proxyProtocol: service.proxyProtocol, dialTimeoutMillis: config.dialTimeoutMillis }
  }
  return out
}

/**
 * What a SIGHUP can change while running: the services (added, removed, moved) and, on the server,
 * the backend dial timeout. Other changed settings are listed as taking effect at the next start.
 */
const reloadWith = <C>(
  command: string,
  settings: Settings<C>,
  initial: C,
  live: ReadonlyArray<keyof C & string>,
  apply: (config: C) => Effect.Effect<unknown, unknown>
): Running<C> => {
  let current = initial
  return {
    reload: (next) =>
      Effect.gen(function* () {
        yield* apply(next)
        const later = changedKeys(settings, current, next).filter(
          (key) => !live.some((field) => configKey(settings[field] as AnySetting) === key)
        )
        current = next
        if (later.length > 0) {
          yield* Effect.logWarning(`${command}: ${later.join(", ")} changed: they take effect at the next start`)
        }
      })
  }
}

/** Admin tokens shorter than this draw a warning (as the link token does). */
const MIN_ADMIN_TOKEN_LENGTH = 16

/**
 * Starts the admin endpoint when `--admin` is given. `--admin-token` without `--admin` is refused
 * (exit 2) rather than ignored: the operator meant to guard something.
 */
const startAdmin = (
  command: string,
  config: CommonConfig,
  observed: Observed.Observed
): Effect.Effect<void, OptionsError | Admin.AdminError, Scope.Scope | Events.Events> =>
  Effect.gen(function* () {
    if (config.admin === undefined) {
      if (config.adminToken === undefined) return
      return yield* new OptionsError({
        command,
        setting: "--admin-token",
        detail: "--admin-token needs --admin HOST:PORT (there is no admin endpoint to guard)"
      })
    }
    if (config.adminToken !== undefined && config.adminToken.length < MIN_ADMIN_TOKEN_LENGTH) {
      yield* Effect.logWarning(
        `${command}: --admin-token is shorter than ${MIN_ADMIN_TOKEN_LENGTH} characters: use a long random one`
      )
    }
    yield* Admin.make(observed, {
      listen: config.admin,
      ...(config.adminToken === undefined ? {} : { token: Redacted.make(config.adminToken) })
    })
  })

/**
 * The proxy's `--link-listen`: servers dial in. The TLS flags serve TLS as a server's do
 * (`--tls-cert`/`--tls-key`, `--tls-ca` for client certificates); the token is checked as a server
 * checks it. `--tls` alone or `--tls-servername` (dialling flags) are refused, naming the flag.
 */
const acceptedLink = (config: ProxyConfig, token: string | undefined) =>
  Effect.gen(function* () {
    if (config.tlsServername !== undefined) {
      return yield* new OptionsError({
        command: "proxy",
        setting: "--tls-servername",
        detail: "--tls-servername is for dialling; with --link-listen the server checks this proxy's certificate"
      })
    }
    if (config.tls && config.tlsCert === undefined) {
      return yield* new OptionsError({
        command: "proxy",
        setting: "--tls",
        detail: "with --link-listen, TLS is served: give --tls-cert and --tls-key"
      })
    }
    const tls = yield* Security.serverOptionsFromFlags(config).pipe(Effect.mapError(configError("proxy")))
    const address = config.linkListen!
    if (!isLoopback(address.host) && token === undefined) {
      yield* Effect.logWarning(
        `proxy: WARNING: accepting links on ${formatAddress(address)}, beyond loopback, without a token: whoever connects there first gets this proxy's client streams (see --token, and --tls-cert/--tls-key)`
      )
    }
    const auth = token === undefined ? undefined : Auth.makeServer(token)
    const options: LinkListener.LinkListenOptions = {
      listen: address,
      ...(tls === undefined ? {} : { listener: (at: Tcp.TcpAddress) => Tls.listen(at, tls) }),
      ...(auth === undefined ? {} : { handshake: auth.handshake })
    }
    return options
  })

/**
 * The server's `--connect`: it dials the proxy. The TLS flags dial with TLS as a proxy's do
 * (`--tls`, `--tls-ca`, `--tls-cert`/`--tls-key` for a client certificate, `--tls-servername`).
 */
const dialledLink = (config: ServerConfig, token: string | undefined) =>
  Effect.gen(function* () {
    const address = config.connect!
    const tls = yield* Security.clientOptionsFromFlags(config).pipe(Effect.mapError(configError("server")))
    if (!isLoopback(address.host) && tls === undefined && token === undefined) {
      yield* Effect.logWarning(
        `server: the link to ${formatAddress(address)} leaves this machine without TLS or a token: traffic is readable and unauthenticated (see --tls, --token)`
      )
    }
    const plain = tls === undefined ? Tcp.connect(address) : Tls.connect(address, tls)
    const options: Server.ConnectOptions = {
      address,
      dial: token === undefined ? plain : Effect.flatMap(plain, Auth.client(token))
    }
    return options
  })

/**
 * `plait proxy`: accepts client TCP connections and carries each over one multiplexed link to a
 * plait server.
 *
 * @since 0.1.0
 * @category commands
 */
export const proxy: Command<ProxyConfig> = {
  name: "proxy",
  // Proxy.make logs `proxy: listening on HOST:PORT, upstream HOST:PORT` once it is bound.
  start: (config) =>
    withObservability(
      Effect.gen(function* () {
        const token = yield* Security.tokenFromFlags(config, {}).pipe(Effect.mapError(configError("proxy")))
        const linkListen = config.linkListen === undefined ? undefined : yield* acceptedLink(config, token)
        const tls =
          linkListen === undefined
            ? yield* Security.clientOptionsFromFlags(config).pipe(Effect.mapError(configError("proxy")))
            : undefined
        if (linkListen !== undefined && config.links > 1) {
          return yield* new OptionsError({
            command: "proxy",
            setting: "--links",
            detail: "--links is for dialled links; with --link-listen, each server that dials in brings its own link"
          })
        }
        // One server of the pool, or the one upstream: TLS checks the certificate for the host as
        // configured, also when the pool dials an address that host name resolved to.
        const dialTo = (address: Tcp.TcpAddress, host: string) => {
          const named = tls !== undefined && tls.servername === undefined && net.isIP(host) === 0
          const plain =
            tls === undefined ? Tcp.connect(address) : Tls.connect(address, named ? { ...tls, servername: host } : tls)
          return token === undefined ? plain : Effect.flatMap(plain, Auth.client(token))
        }
        const upstream = config.upstream[0]!
        if (!isLoopback(config.listen.host)) {
          yield* Effect.logWarning(
            `proxy: listening on ${formatAddress(config.listen)}, beyond loopback: anyone who can reach it can use the tunnel`
          )
        }
        if (config.proxyProtocolFrom !== undefined && !config.acceptProxyProtocol) {
          return yield* new OptionsError({
            command: "proxy",
            setting: "--proxy-protocol-from",
            detail:
              "--proxy-protocol-from needs --accept-proxy-protocol (it names who may send the PROXY protocol header)"
          })
        }
        // A header is believed: whoever reaches such a listener can claim to be any client.
        const open = [config.listen, ...config.services.map((service) => service.listen)].filter(
          (address) => !isLoopback(address.host)
        )
        if (config.acceptProxyProtocol && config.proxyProtocolFrom === undefined && open.length > 0) {
          yield* Effect.logWarning(
            `proxy: accepting PROXY protocol headers from any source on ${open.map(formatAddress).join(", ")}: whoever reaches it can claim any client address; make it reachable only from the load balancer, or name it with --proxy-protocol-from`
          )
        }
        const remote = config.upstream.filter((address) => !isLoopback(address.host))
        if (linkListen === undefined && remote.length > 0 && tls === undefined && token === undefined) {
          yield* Effect.logWarning(
            `proxy: the link to ${remote.map(formatAddress).join(",")} leaves this machine without TLS or a token: traffic is readable and unauthenticated (see --tls, --token)`
          )
        }
        const running = yield* PlaitProxy.make({
          listen: config.listen,
          upstream,
          upstreams: config.upstream,
          links: config.links,
          dial: dialTo(upstream, upstream.host),
          dialUpstream: (pooled) => dialTo(pooled.address, pooled.host),
          services: proxyServices(config),
          acceptProxyProtocol: config.acceptProxyProtocol,
          ...(config.proxyProtocolFrom === undefined ? {} : { proxyProtocolFrom: config.proxyProtocolFrom }),
          ...(linkListen === undefined ? {} : { linkListen }),
          session: sessionOptions(config),
          ...resumeFlag(config, token),
          linkWaitMillis: config.linkWaitMillis,
          maxClients: config.maxClients,
          drainMillis: config.drainMillis
        })
        yield* startAdmin("proxy", config, Observed.fromProxy(running))
        return reloadWith("proxy", proxySettings, config, ["listen", "services", "acceptProxyProtocol"], (next) =>
          running.reload(proxyServices(next))
        )
      })
    )
}

/** `resume` for Proxy/Server options, absent with `--resume-window 0`. */
const resumeFlag = (config: CommonConfig, token: string | undefined) => {
  const resume = resumeOptions(config, token)
  return resume === undefined ? {} : { resume }
}

/**
 * `plait server`: accepts links from plait proxies and serves every stream by forwarding it to
 * `--target`, or with the embedded echo service when there is no target.
 *
 * @since 0.1.0
 * @category commands
 */
export const server: Command<ServerConfig> = {
  name: "server",
  start: (config) =>
    withObservability(
      Effect.gen(function* () {
        const token = yield* Security.tokenFromFlags(config, {}).pipe(Effect.mapError(configError("server")))
        if (config.connect === undefined && (config.tls || config.tlsServername !== undefined)) {
          return yield* new OptionsError({
            command: "server",
            setting: config.tls ? "--tls" : "--tls-servername",
            detail: `${config.tls ? "--tls" : "--tls-servername"} is for dialling (with --connect); a listening server serves TLS with --tls-cert/--tls-key`
          })
        }
        const connect = config.connect === undefined ? undefined : yield* dialledLink(config, token)
        const tls =
          connect === undefined
            ? yield* Security.serverOptionsFromFlags(config).pipe(Effect.mapError(configError("server")))
            : undefined
        const auth = token === undefined || connect !== undefined ? undefined : Auth.makeServer(token)
        if (connect === undefined && !isLoopback(config.listen.host) && tls === undefined && auth === undefined) {
          yield* Effect.logWarning(
            `server: WARNING: listening on ${formatAddress(config.listen)}, beyond loopback, without TLS or a token: anyone who can reach this port can open streams to ${config.target === undefined ? "this server" : formatAddress(config.target)} (see --tls-cert/--tls-key, --token)`
          )
        }
        const services = serverServices(config)
        const listening = yield* Server.make({
          ...(connect === undefined ? { listen: config.listen } : { connect }),
          services,
          session: sessionOptions(config),
          ...resumeFlag(config, token),
          maxSessions: config.maxSessions,
          drainMillis: config.drainMillis,
          ...(tls === undefined ? {} : { listener: (address) => Tls.listen(address, tls) }),
          ...(auth === undefined ? {} : { handshake: auth.handshake })
        })
        const serving =
          config.target === undefined
            ? "serving the embedded echo service (no --target)"
            : `forwarding streams to target ${formatAddress(config.target)}`
        const dialTls =
          config.tls || config.tlsCa !== undefined || config.tlsCert !== undefined || config.tlsServername !== undefined
        const security =
          connect === undefined
            ? [tls === undefined ? "" : tls.ca === undefined ? ", TLS" : ", mutual TLS", auth ? ", token" : ""]
            : [dialTls ? ", TLS" : "", token === undefined ? "" : ", token"]
        const named = config.services.map((service) =>
          service.proxyProtocol === undefined
            ? `${service.name} → ${formatAddress(service.target)}`
            : `${service.name} → ${formatAddress(service.target)} (PROXY protocol ${service.proxyProtocol})`
        )
        yield* Effect.logInfo(
          `server: ${connect === undefined ? "listening on" : "dialling the proxy at"} ${formatAddress(listening.address)}${security.join("")}, ${serving}${named.length === 0 ? "" : `; services: ${named.join(", ")}`}`
        )
        yield* startAdmin(
          "server",
          config,
          Observed.fromServer(listening, config.target === undefined ? {} : { target: formatAddress(config.target) })
        )
        // The dial timeout travels in every forwarded service's entry: a changed one replaces those
        // entries (Server.reload), so new streams dial with it at once.
        return reloadWith("server", serverSettings, config, ["target", "services", "dialTimeoutMillis"], (next) =>
          listening.reload(serverServices(next))
        )
      })
    )
}

/**
 * Both commands, as `Main.run` takes them.
 *
 * @since 0.1.0
 * @category commands
 */
export const commands: Commands = { proxy, server }
