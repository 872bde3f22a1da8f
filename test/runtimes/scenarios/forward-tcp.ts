/**
 * Cross-runtime scenario: the forwarding path as deployed — client ⇄ proxy ⇄ one link ⇄ server ⇄
 * backend, every hop real TCP loopback — where both ends are direct splices (socket ⇄ stream with
 * no fiber per chunk). Checks bytes both ways with half-close, that a backend reset reaches the
 * client as a reset (never a clean EOF), and that a client reset reaches the backend.
 */
import * as net from "node:net"
import { Effect, Exit } from "effect"
import * as Proxy from "../../../src/proxy/Proxy.ts"
import * as Server from "../../../src/server/Server.ts"
import { readAll } from "../../../src/transport/Splice.ts"
import * as Tcp from "../../../src/transport/Tcp.ts"
import { check, echoClients, pattern, runScenario } from "../lib.ts"

const loopback = { host: "127.0.0.1", port: 0 }

/** The first bytes that make the backend reset a connection. */
const RESET = new TextEncoder().encode("RESET")

/**
 * A plain `node:net` backend: echoes, except that a connection whose first bytes are {@link RESET}
 * is reset at once (no {@link pattern} starts so: its consecutive bytes differ by 131). Counts
 * connections closed by an error (the client side's reset reaching it).
 */
const backend = Effect.acquireRelease(
  Effect.callback<{ readonly server: net.Server; readonly port: number; readonly errors: () => number }>((resume) => {
    let errors = 0
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on("error", () => {
        errors++
      })
      socket.once("data", (first: Uint8Array) => {
        if (RESET.every((byte, i) => first[i] === byte)) {
          socket.resetAndDestroy()
          return
        }
        socket.write(first)
        socket.pipe(socket)
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address() as net.AddressInfo
      resume(Effect.succeed({ server, port: address.port, errors: () => errors }))
    })
  }),
  ({ server }) => Effect.sync(() => server.close())
)

runScenario(
  "forward-tcp",
  Effect.gen(function* () {
    const target = yield* backend
    const server = yield* Server.make({
      listen: loopback,
      handler: Server.forward({ host: "127.0.0.1", port: target.port })
    })
    const proxy = yield* Proxy.make({ listen: loopback, upstream: server.address })

    const clients = 32
    yield* check(
      yield* echoClients(proxy.address, clients, (i) => 400_000 + i * 313, 64_000),
      `${clients} clients × ~400 KB through proxy, link, server and backend, byte-exact, with half-close`
    )

    // The backend resets: the client must see a failed read, not a clean EOF.
    const reset = yield* Effect.scoped(
      Effect.gen(function* () {
        const client = yield* Tcp.connect(proxy.address)
        yield* client.write([RESET])
        return yield* Effect.exit(readAll(client))
      })
    )
    yield* check(Exit.isFailure(reset), "a backend reset reaches the client as a reset (no clean EOF)")

    // The client resets mid-stream: the backend connection must end with an error, not linger.
    const before = target.errors()
    yield* Effect.scoped(
      Effect.gen(function* () {
        const client = yield* Tcp.connect(proxy.address)
        yield* client.write([pattern(1000, 7)])
        const echoed = yield* client.read
        yield* check(echoed !== null && echoed.length > 0, "echo before the client's reset")
        yield* client.reset
      })
    )
    const deadline = Date.now() + 10_000
    while (target.errors() === before && Date.now() < deadline) yield* Effect.sleep(10)
    yield* check(target.errors() > before, "a client reset reaches the backend as a reset")
    yield* check(proxy.link.generation() === 1, "one link carried everything")
  })
)
