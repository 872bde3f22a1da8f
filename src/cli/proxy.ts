/**
 * `plait proxy`: accepts client TCP connections and carries each over one multiplexed link to a
 * plait server. Run with `npm run proxy -- [options]`, `bun run proxy [options]` or
 * `deno task proxy [options]`; `--help` lists the options. See `Main.ts` for logs, signals and exit
 * codes.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as PlaitProxy from "../proxy/Proxy.ts"
import * as Auth from "../transport/Auth.ts"
import * as Tcp from "../transport/Tcp.ts"
import * as Tls from "../transport/Tls.ts"
import { configError, isLoopback, run, withObservability } from "./Main.ts"
import { formatAddress, parseProxyArgs, sessionOptions } from "./Options.ts"
import * as Security from "./Security.ts"

run({
  name: "proxy",
  parse: parseProxyArgs,
  // Proxy.make logs `proxy: listening on HOST:PORT, upstream HOST:PORT` once it is bound.
  start: (config) =>
    withObservability(
      Effect.gen(function* () {
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
        yield* PlaitProxy.make({
          listen: config.listen,
          upstream: config.upstream,
          dial,
          session: sessionOptions(config),
          linkWaitMillis: config.linkWaitMillis,
          maxClients: config.maxClients,
          drainMillis: config.drainMillis
        })
      })
    )
})
