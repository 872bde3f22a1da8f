/**
 * `plait proxy`: accepts client TCP connections and carries each over one multiplexed link to a
 * plait server. Run with `npm run proxy -- [options]`, `bun run proxy [options]` or
 * `deno task proxy [options]`; `--help` lists the options. See `Main.ts` for logs, signals and exit
 * codes.
 *
 * @since 0.1.0
 */
import * as PlaitProxy from "../proxy/Proxy.ts"
import { run, withObservability } from "./Main.ts"
import { parseProxyArgs, sessionOptions } from "./Options.ts"

run({
  name: "proxy",
  parse: parseProxyArgs,
  // Proxy.make logs `proxy: listening on HOST:PORT, upstream HOST:PORT` once it is bound.
  start: (config) =>
    withObservability(
      PlaitProxy.make({
        listen: config.listen,
        upstream: config.upstream,
        session: sessionOptions(config),
        linkWaitMillis: config.linkWaitMillis,
        maxClients: config.maxClients,
        drainMillis: config.drainMillis
      })
    )
})
