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
import { run, withObservability } from "./Main.ts"
import { formatAddress, parseServerArgs, sessionOptions } from "./Options.ts"

run({
  name: "server",
  parse: parseServerArgs,
  start: (config) =>
    withObservability(
      Effect.gen(function* () {
        const server = yield* Server.make({
          listen: config.listen,
          handler: config.target === undefined ? Server.echo : Server.forward(config.target),
          session: sessionOptions(config),
          maxSessions: config.maxSessions,
          drainMillis: config.drainMillis
        })
        const serving =
          config.target === undefined
            ? "serving the embedded echo service (no --target)"
            : `forwarding streams to target ${formatAddress(config.target)}`
        yield* Effect.logInfo(`server: listening on ${formatAddress(server.address)}, ${serving}`)
      })
    )
})
