/**
 * An Effect application that embeds plait: a server whose streams are served by an in-process
 * Effect handler, a proxy in front of it, and a client service that opens streams directly —
 * no TCP client anywhere in the application's own code.
 *
 * Run: `npx node examples/embedded.ts` (or `bun examples/embedded.ts`, `deno run -A examples/embedded.ts`).
 */
import { Effect, Layer } from "effect"
// Only the public entry point, as an application that installed the package writes `from "plait"`
// (test/package/Consumer.test.ts runs this file that way, from the packed tarball).
import { Client, Events, Metrics, type MuxStream, Server } from "../src/index.ts"

/** A stream handler: reads one request until the client's FIN, answers it upper-cased. */
const shout = (stream: MuxStream.MuxStream) =>
  Effect.gen(function* () {
    const request = new TextDecoder().decode(yield* stream.readAll)
    yield* stream.write([new TextEncoder().encode(request.toUpperCase())])
  })

/** The server, serving streams with `shout` on a free loopback port. */
const ServerLive = Server.layer({ listen: { host: "127.0.0.1", port: 0 }, handler: shout })

/** A client holding one supervised link to wherever that server is listening. */
const ClientLive = Layer.unwrap(Effect.map(Server.Server, (server) => Client.layer({ upstream: server.address })))

/** Opens a few streams concurrently over the one link and prints the answers. */
export const program = Effect.gen(function* () {
  const client = yield* Client.Client
  const answers = yield* Effect.forEach(
    ["hello", "from", "plait"],
    (word) =>
      Effect.scoped(
        Effect.gen(function* () {
          const stream = yield* client.open
          yield* stream.write([new TextEncoder().encode(word)])
          yield* stream.closeWrite
          return new TextDecoder().decode(yield* stream.readAll)
        })
      ),
    { concurrency: "unbounded" }
  )
  yield* Effect.logInfo(`answers: ${answers.join(" ")} (links used: ${client.link.generation()})`)
  return answers
})

/** Everything wired: events and metrics shared by the server and the client. */
export const MainLive = ClientLive.pipe(
  Layer.provideMerge(ServerLive),
  Layer.provideMerge(Metrics.layer),
  Layer.provideMerge(Events.Events.layer)
)

if (import.meta.main) {
  Effect.runFork(program.pipe(Effect.provide(MainLive)))
}
