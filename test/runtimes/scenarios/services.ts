/**
 * Cross-runtime scenario: issue #11's features on the runtime under test, every hop real TCP
 * loopback. Two services over one link reach two backends byte-exact with no crossing; the client's
 * real address and port arrive at a backend in a PROXY protocol v2 header and at an in-process
 * handler through the open message, also via a PROXY v1 header accepted from a "load balancer"; a
 * link dialled by the server carries streams the proxy opens; reloading both ends adds and removes
 * services without touching the unchanged one.
 */
import * as net from "node:net"
import { Effect, Fiber } from "effect"
import * as Proxy from "../../../src/proxy/Proxy.ts"
import * as Server from "../../../src/server/Server.ts"
import * as Endpoint from "../../../src/transport/Endpoint.ts"
import * as ProxyProtocol from "../../../src/transport/ProxyProtocol.ts"
import { readAll } from "../../../src/transport/Splice.ts"
import * as Tcp from "../../../src/transport/Tcp.ts"
import { check, equal, pattern, runScenario } from "../lib.ts"

const loopback = { host: "127.0.0.1", port: 0 }

/** A `node:net` backend that echoes and keeps every connection's bytes. */
const backend = Effect.acquireRelease(
  Effect.callback<{ readonly server: net.Server; readonly port: number; readonly seen: Array<Uint8Array> }>(
    (resume) => {
      const seen: Array<Uint8Array> = []
      const server = net.createServer({ allowHalfOpen: true }, (socket) => {
        const chunks: Array<Buffer> = []
        socket.on("error", () => socket.destroy())
        socket.on("data", (chunk: Buffer) => {
          chunks.push(chunk)
          socket.write(chunk)
        })
        socket.on("end", () => {
          seen.push(new Uint8Array(Buffer.concat(chunks)))
          socket.end()
        })
      })
      server.listen(0, "127.0.0.1", () =>
        resume(Effect.succeed({ server, port: (server.address() as net.AddressInfo).port, seen }))
      )
    }
  ),
  ({ server }) => Effect.sync(() => server.close())
)

/** One client: connects with plait's TCP transport, sends `bytes`, half-closes, reads to the end. */
const exchange = (address: Tcp.TcpAddress, bytes: Uint8Array) =>
  Effect.scoped(
    Effect.gen(function* () {
      const client = yield* Tcp.connect(address)
      const reader = yield* Effect.forkChild(readAll(client))
      yield* client.write([bytes])
      yield* client.closeWrite
      return yield* Fiber.join(reader)
    })
  )

const whoAmI: Server.Handler = (stream, serving) =>
  Effect.andThen(
    readAll(stream),
    stream.write([new TextEncoder().encode(JSON.stringify({ service: serving.service, source: serving.source }))])
  )

runScenario(
  "services",
  Effect.gen(function* () {
    const a = yield* backend
    const b = yield* backend
    const pp = yield* backend
    const server = yield* Server.make({
      listen: loopback,
      services: {
        alpha: { target: { host: "127.0.0.1", port: a.port } },
        beta: { target: { host: "127.0.0.1", port: b.port } },
        pp: { target: { host: "127.0.0.1", port: pp.port }, proxyProtocol: "v2" },
        who: whoAmI
      }
    })
    const proxy = yield* Proxy.make({
      listen: loopback,
      upstream: server.address,
      services: { alpha: loopback, beta: loopback, pp: loopback, who: { listen: loopback, acceptProxyProtocol: true } }
    })
    const at = proxy.addresses()

    // Two services, byte-exact, no crossing.
    const jobs = Array.from({ length: 12 }, (_, i) => ({
      service: i % 2 === 0 ? "alpha" : "beta",
      bytes: pattern(1 + ((i * 65_537) % (400 * 1024)), 10 + i)
    }))
    const got = yield* Effect.forEach(jobs, (job) => exchange(at[job.service]!, job.bytes), {
      concurrency: "unbounded"
    })
    yield* check(
      got.every((bytes, i) => equal(bytes, jobs[i]!.bytes)),
      "12 clients over two services echoed byte-exact"
    )
    const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")
    const wantOf = (service: string) =>
      jobs
        .filter((job) => job.service === service)
        .map((job) => hex(job.bytes))
        .sort()
    yield* check(
      JSON.stringify(a.seen.map(hex).sort()) === JSON.stringify(wantOf("alpha")) &&
        JSON.stringify(b.seen.map(hex).sort()) === JSON.stringify(wantOf("beta")),
      "each backend saw exactly its service's clients"
    )

    // PROXY v2 toward a backend: the real client address and port.
    yield* exchange(at.pp!, pattern(5000, 1))
    const header = ProxyProtocol.parse(pp.seen[0] ?? new Uint8Array(0))
    yield* check(
      header._tag === "Complete" &&
        header.header.version === 2 &&
        header.header.source?.address === "127.0.0.1" &&
        header.header.destination?.port === at.pp!.port &&
        equal(pp.seen[0]!.subarray(header.length), pattern(5000, 1)),
      "the backend got a v2 header with the client's address, then its bytes"
    )

    // A PROXY v1 header from a "load balancer": its source reaches the handler.
    const lb = ProxyProtocol.encodeV1(Endpoint.make("192.0.2.44", 4444), Endpoint.make("192.0.2.1", 80))
    const told = JSON.parse(new TextDecoder().decode(yield* exchange(at.who!, lb)))
    yield* check(
      told.service === "who" && told.source?.address === "192.0.2.44" && told.source?.port === 4444,
      "a PROXY v1 header's source reached the handler through the open message"
    )

    // The reverse direction: the server dials a proxy that listens for links.
    const reverse = yield* Proxy.make({ listen: loopback, linkListen: { listen: loopback } })
    yield* Server.make({ connect: { address: reverse.linkAddress! }, handler: Server.echo })
    const reverseBytes = pattern(256 * 1024, 99)
    yield* check(
      equal(yield* exchange(reverse.address, reverseBytes), reverseBytes),
      "a server-dialled link carried a stream"
    )

    // Reload both ends: "beta" goes, "gamma" comes, "alpha" is untouched.
    const serverSummary = yield* server.reload({
      default: Server.echo,
      alpha: { target: { host: "127.0.0.1", port: a.port } },
      gamma: Server.echo
    })
    const proxySummary = yield* proxy.reload({ default: at.default!, alpha: at.alpha!, gamma: loopback })
    yield* check(
      serverSummary.added.join() === "gamma" &&
        serverSummary.removed.join() === "beta,pp,who" &&
        proxySummary.added.join() === "gamma" &&
        proxySummary.unchanged.includes("alpha") &&
        proxy.addresses().alpha!.port === at.alpha!.port,
      "reload added gamma, removed beta, kept alpha's listener"
    )
    const after = pattern(70_000, 5)
    yield* check(
      equal(yield* exchange(proxy.addresses().gamma!, after), after) && equal(yield* exchange(at.alpha!, after), after),
      "the added service and the unchanged one carry streams after the reload"
    )
    yield* check(proxy.link.generation() === 1, "one link carried everything")
  })
)
