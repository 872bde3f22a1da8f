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
import { Effect, Redacted, type Scope } from "effect"
import * as Admin from "../admin/Admin.ts"
import type * as Events from "../observability/Events.ts"
import * as Observed from "../observability/Observed.ts"
import * as PlaitProxy from "../proxy/Proxy.ts"
import * as Server from "../server/Server.ts"
import * as Auth from "../transport/Auth.ts"
import * as Tcp from "../transport/Tcp.ts"
import * as Tls from "../transport/Tls.ts"
import { type Command, type Commands, configError, isLoopback, withObservability } from "./Main.ts"
import {
  type CommonConfig,
  formatAddress,
  OptionsError,
  type ProxyConfig,
  type ServerConfig,
  sessionOptions
} from "./Options.ts"
import * as Security from "./Security.ts"

/** Named services are configured here first; until the proxy and server serve them, say so and stop. */
const refuseServices = (command: string, count: number) =>
  count === 0
    ? Effect.void
    : Effect.fail(
        new OptionsError({
          command,
          setting: "--service",
          detail:
            "--service (or the config file's services) is not supported by this build yet: only the default service (--listen/--target) is served"
        })
      )

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
        yield* refuseServices("proxy", config.services.length)
        const tls = yield* Security.clientOptionsFromFlags(config).pipe(Effect.mapError(configError("proxy")))
        const token = yield* Security.tokenFromFlags(config, {}).pipe(Effect.mapError(configError("proxy")))
        const plain = tls === undefined ? Tcp.connect(config.upstream) : Tls.connect(config.upstream, tls)
        const dial = token === undefined ? plain : Effect.flatMap(plain, Auth.client(token))
        if (!isLoopback(config.listen.host)) {
          yield* Effect.logWarning(
            `proxy: listening on ${formatAddress(config.listen)}, beyond loopback: anyone who can reach it can use the tunnel`
          )
        }
        if (!isLoopback(config.upstream.host) && tls === undefined && token === undefined) {
          yield* Effect.logWarning(
            `proxy: the link to ${formatAddress(config.upstream)} leaves this machine without TLS or a token: traffic is readable and unauthenticated (see --tls, --token)`
          )
        }
        const running = yield* PlaitProxy.make({
          listen: config.listen,
          upstream: config.upstream,
          dial,
          session: sessionOptions(config),
          linkWaitMillis: config.linkWaitMillis,
          maxClients: config.maxClients,
          drainMillis: config.drainMillis
        })
        yield* startAdmin("proxy", config, Observed.fromProxy(running))
      })
    )
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
        yield* refuseServices("server", config.services.length)
        const tls = yield* Security.serverOptionsFromFlags(config).pipe(Effect.mapError(configError("server")))
        const token = yield* Security.tokenFromFlags(config, {}).pipe(Effect.mapError(configError("server")))
        const auth = token === undefined ? undefined : Auth.makeServer(token)
        if (!isLoopback(config.listen.host) && tls === undefined && auth === undefined) {
          yield* Effect.logWarning(
            `server: WARNING: listening on ${formatAddress(config.listen)}, beyond loopback, without TLS or a token: anyone who can reach this port can open streams to ${config.target === undefined ? "this server" : formatAddress(config.target)} (see --tls-cert/--tls-key, --token)`
          )
        }
        const listening = yield* Server.make({
          listen: config.listen,
          handler: config.target === undefined ? Server.echo : Server.forward(config.target),
          session: sessionOptions(config),
          maxSessions: config.maxSessions,
          drainMillis: config.drainMillis,
          ...(tls === undefined ? {} : { listener: (address) => Tls.listen(address, tls) }),
          ...(auth === undefined ? {} : { handshake: auth.handshake })
        })
        const serving =
          config.target === undefined
            ? "serving the embedded echo service (no --target)"
            : `forwarding streams to target ${formatAddress(config.target)}`
        const security = [
          tls === undefined ? "" : tls.ca === undefined ? ", TLS" : ", mutual TLS",
          auth ? ", token" : ""
        ]
        yield* Effect.logInfo(
          `server: listening on ${formatAddress(listening.address)}${security.join("")}, ${serving}`
        )
        yield* startAdmin(
          "server",
          config,
          Observed.fromServer(listening, config.target === undefined ? {} : { target: formatAddress(config.target) })
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
