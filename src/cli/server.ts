/**
 * `plait server`: accepts links from plait proxies and serves every stream by forwarding it to
 * `--target`, or with the embedded echo service when there is no target. Run with
 * `npm run server -- [options]`, `bun run server [options]` or `deno task server [options]`; `--help`
 * lists the options. See `Main.ts` for logs, signals and exit codes.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as Server from "../server/Server.ts"
import * as Auth from "../transport/Auth.ts"
import * as Tls from "../transport/Tls.ts"
import { configError, isLoopback, run, withObservability } from "./Main.ts"
import { formatAddress, parseServerArgs, sessionOptions } from "./Options.ts"
import * as Security from "./Security.ts"

run({
  name: "server",
  parse: parseServerArgs,
  start: (config) =>
    withObservability(
      Effect.gen(function* () {
        const tls = yield* Security.serverOptionsFromFlags(config).pipe(Effect.mapError(configError("server")))
        const token = yield* Security.tokenFromFlags(config, {}).pipe(Effect.mapError(configError("server")))
        const auth = token === undefined ? undefined : Auth.makeServer(token)
        if (!isLoopback(config.listen.host) && tls === undefined && auth === undefined) {
          yield* Effect.logWarning(
            `server: WARNING: listening on ${formatAddress(config.listen)}, beyond loopback, without TLS or a token: anyone who can reach this port can open streams to ${config.target === undefined ? "this server" : formatAddress(config.target)} (see --tls-cert/--tls-key, --token)`
          )
        }
        const server = yield* Server.make({
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
        yield* Effect.logInfo(`server: listening on ${formatAddress(server.address)}${security.join("")}, ${serving}`)
      })
    )
})
