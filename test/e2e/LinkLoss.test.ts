/**
 * The link dies under load (the server process is killed with SIGKILL): every proxied client is
 * closed promptly, and once a server is back on the same port the proxy redials and carries new
 * clients.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { connect, payload, roundTrip, sameBytes, startProxy, startServer } from "./helpers.ts"

const CLIENTS = 20
const EACH = 4 * 1024 * 1024
/** How long after the kill every client must have been closed. */
const CLOSE_BOUND = "5 seconds"

describe("e2e: link loss", () => {
  it.live(
    "kill -9 of the server mid-transfer closes every client within 5 s; a restarted server is redialled (proxy@node, server@bun)",
    () =>
      Effect.gen(function* () {
        const first = yield* startServer("bun", [], { name: "server#1@bun" })
        // Keepalive stays at its 30 s default: the loss must be noticed from the TCP connection itself.
        const proxy = yield* startProxy("node", first.port)

        // Every client streams 4 MiB into the echo and reads the echo as it comes.
        const clients = yield* Effect.forEach(
          Array.from({ length: CLIENTS }, (_, i) => i),
          (i) =>
            Effect.gen(function* () {
              const client = yield* connect(proxy.port)
              client.socket.write(payload(EACH, 500 + i))
              return client
            }),
          { concurrency: "unbounded" }
        )
        // All of them are mid-transfer: some echo back, far from all of it.
        yield* Effect.forEach(clients, (client) => client.waitForBytes(64 * 1024), { concurrency: "unbounded" })
        yield* first.process.signal("SIGKILL")
        const killedAt = Date.now()
        yield* first.process.waitForExit("5 seconds")

        const results = yield* Effect.forEach(clients, (client) => client.result(CLOSE_BOUND), {
          concurrency: "unbounded"
        })
        const closedWithin = Date.now() - killedAt
        assert.isAtMost(closedWithin, Duration.toMillis(Duration.fromInputUnsafe(CLOSE_BOUND)))
        for (const result of results) {
          // Reset, or EOF without the full echo: never a clean, complete answer.
          assert.ok(
            result.end === "error" || result.data.length < EACH,
            `end ${result.end}, ${result.data.length} bytes`
          )
        }
        yield* proxy.process.waitForLine(/link: down/)

        // A new server on the same port: clients that arrive now wait for the redial and get through.
        const second = yield* startServer("bun", [], { port: first.port, name: "server#2@bun" })
        assert.strictEqual(second.port, first.port)
        const fresh = yield* Effect.forEach(
          Array.from({ length: 10 }, (_, i) => payload(100 * 1024 + i, 900 + i)),
          (sent) => Effect.map(roundTrip(proxy.port, sent, "20 seconds"), (got) => ({ sent, got })),
          { concurrency: "unbounded" }
        )
        for (const { sent, got } of fresh) {
          assert.strictEqual(got.end, "eof")
          assert.ok(sameBytes(got.data, sent))
        }
        yield* proxy.process.waitForLine(/link: up to .*\(session 2\)/)
      }),
    45_000
  )
})
