/**
 * Scenario: the TCP transport on this runtime. Echo of 16 MiB byte-exact with random chunking, half-
 * close in both directions, reset seen by the peer, and read backpressure (a flowing reader that
 * stops reading stalls its writer) — the behaviours whose `node:net` emulation differs most between
 * Node, Bun and Deno.
 */
import { Effect, Exit, Fiber } from "effect"
import * as Tcp from "../../../src/transport/Tcp.ts"
import type { Transport } from "../../../src/transport/Transport.ts"
import {
  decode,
  firstDifference,
  randomBytes,
  readAll,
  readExactly,
  text,
  writeChunked
} from "../../transport/helpers.ts"
import { check, runScenario } from "../lib.ts"

const HOST = "127.0.0.1"

const echo = (t: Transport) =>
  Effect.gen(function* () {
    for (let i = 0; i < 10_000_000; i++) {
      const chunk = yield* t.read
      if (chunk === null) break
      yield* t.write([chunk])
    }
    yield* t.closeWrite
  })

/** Connects a client and accepts its server side; both closed with the scope. */
const pair = (server: Tcp.TcpServer) =>
  Effect.gen(function* () {
    const [client, accepted] = yield* Effect.all([Tcp.connect(server.address), server.accept], { concurrency: 2 })
    yield* Effect.addFinalizer(() => accepted.close)
    return { client, accepted }
  })

runScenario(
  "tcp-transport",
  Effect.gen(function* () {
    const echoServer = yield* Tcp.listen({ host: HOST, port: 0 })
    yield* check(echoServer.address.port > 0, `listening on ${HOST}:${echoServer.address.port}`)
    yield* Effect.forkScoped(Tcp.serve(echoServer, (t) => echo(t).pipe(Effect.ignore)))

    // 1. Echo, byte-exact, with both gathered and single-chunk writes.
    yield* Effect.scoped(
      Effect.gen(function* () {
        const client = yield* Tcp.connect(echoServer.address)
        const data = randomBytes(16 * 1024 * 1024, 42)
        const [back] = yield* Effect.all(
          [readAll(client), writeChunked(client, data, 7).pipe(Effect.andThen(client.closeWrite))],
          { concurrency: "unbounded" }
        )
        yield* check(firstDifference(back, data) === -1, "16 MiB echoed byte-exact through a random chunking")
      })
    )

    const server = yield* Tcp.listen({ host: HOST, port: 0 })

    // 2. Half-close client → server: the server reads EOF and still answers.
    yield* Effect.scoped(
      Effect.gen(function* () {
        const { client, accepted } = yield* pair(server)
        yield* client.write([text("request")])
        yield* client.closeWrite
        const request = decode(yield* readAll(accepted))
        yield* accepted.write([text("response to "), text(request)])
        yield* accepted.closeWrite
        const response = decode(yield* readAll(client))
        yield* check(response === "response to request", "client FIN → server reads EOF, answers, client reads it")
      })
    )

    // 3. Half-close server → client: the client reads EOF and keeps sending.
    yield* Effect.scoped(
      Effect.gen(function* () {
        const { client, accepted } = yield* pair(server)
        yield* accepted.write([text("banner")])
        yield* accepted.closeWrite
        const banner = decode(yield* readAll(client))
        yield* client.write([text("still talking")])
        yield* client.closeWrite
        const got = decode(yield* readAll(accepted))
        yield* check(banner === "banner" && got === "still talking", "server FIN → client reads EOF and still writes")
      })
    )

    // 4. Reset: the peer's parked read fails promptly.
    yield* Effect.scoped(
      Effect.gen(function* () {
        const { client, accepted } = yield* pair(server)
        const parked = yield* Effect.forkChild(client.read)
        yield* Effect.sleep("10 millis")
        yield* accepted.reset
        const exit = yield* Fiber.await(parked).pipe(Effect.timeoutOption("5 seconds"))
        const failed =
          exit._tag === "Some" &&
          Exit.isFailure(exit.value) &&
          exit.value.cause.reasons.some((r) => r._tag === "Fail" && r.error._tag === "TransportError")
        yield* check(failed, "reset → the peer's pending read fails with TransportError")
      })
    )

    // 5. Backpressure: a reader that stops reading stalls the writer well before 64 MiB.
    yield* Effect.scoped(
      Effect.gen(function* () {
        const { client, accepted } = yield* pair(server)
        yield* client.write([text("x")])
        yield* readExactly(accepted, 1)
        const total = 64 * 1024 * 1024
        const chunk = new Uint8Array(64 * 1024)
        let written = 0
        const writer = yield* Effect.forkChild(
          Effect.gen(function* () {
            while (written < total) {
              yield* client.write([chunk])
              written += chunk.length
            }
            yield* client.closeWrite
          })
        )
        let last = -1
        let still = 0
        for (let i = 0; i < 3000 && still < 50; i++) {
          yield* Effect.sleep("2 millis")
          still = written === last ? still + 1 : 0
          last = written
        }
        const stalledAt = written
        yield* check(
          still >= 50 && writer.pollUnsafe() === undefined && stalledAt < 48 * 1024 * 1024,
          `writer stalls at ${(stalledAt / 1048576).toFixed(1)} MiB while the peer does not read`
        )
        const received = (yield* readAll(accepted)).length
        yield* Fiber.join(writer)
        yield* check(received === total, "reading again releases the writer; all 64 MiB arrive")
      })
    )
  })
)
