/**
 * Cross-runtime scenario: the whole stack over real TCP loopback — a server (echo) and a proxy in
 * this process, 64 concurrent clients, each payload larger than the initial window, byte-exact,
 * with half-close; then one session driven directly (open, ping, window-sized echo).
 */
import { Effect, Fiber } from "effect"
import * as Proxy from "../../../src/proxy/Proxy.ts"
import * as Server from "../../../src/server/Server.ts"
import * as Session from "../../../src/session/Session.ts"
import { readAll } from "../../../src/transport/Splice.ts"
import * as Tcp from "../../../src/transport/Tcp.ts"
import { check, echoClients, equal, pattern, runScenario } from "../lib.ts"

const loopback = { host: "127.0.0.1", port: 0 }

runScenario(
  "session-tcp",
  Effect.gen(function* () {
    const server = yield* Server.make({ listen: loopback })
    const proxy = yield* Proxy.make({ listen: loopback, upstream: server.address })

    const clients = 64
    yield* check(
      yield* echoClients(proxy.address, clients, (i) => 300_000 + i * 517, 50_000),
      `${clients} clients × ~300 KB echoed byte-exact through the proxy, with half-close`
    )
    yield* check(proxy.link.generation() === 1, "one TCP link carried every client")
    yield* check(proxy.stats().carried === clients, `proxy carried ${clients} client connections`)

    const transport = yield* Tcp.connect(server.address)
    const session = yield* Session.make(transport, { client: true })
    const rtt = yield* session.ping
    yield* check(rtt >= 0, `ping over a direct session answered (${rtt} ms)`)
    const big = pattern(8 * 1024 * 1024, 99)
    const echoed = yield* Effect.scoped(
      Effect.gen(function* () {
        const stream = yield* session.open
        const reader = yield* Effect.forkChild(readAll(stream))
        yield* stream.write([big])
        yield* stream.closeWrite
        return yield* Fiber.join(reader)
      })
    )
    yield* check(equal(echoed, big), "8 MiB on one stream (twice the window, plus buffers) echoed byte-exact")
  })
)
