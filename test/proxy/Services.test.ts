/**
 * Named services at the proxy, over real TCP loopback with plain `node:net` clients: one listener
 * per service, the client's real address (IPv4 and IPv6) reaching the server's handler through the
 * open message, PROXY protocol from a load balancer in front (on: parsed, its addresses travel; a
 * malformed or missing header closes that client only; off: plain bytes), reloading listeners, and
 * a named service over a plain yamux server.
 *
 * The PROXY headers here come from plait's own encoder; an independent implementation (haproxy)
 * sends and parses them in test/e2e/ProxyProtocol.test.ts.
 */
import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import * as Proxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import type { MuxStream } from "../../src/session/MuxStream.ts"
import * as Session from "../../src/session/Session.ts"
import * as Endpoint from "../../src/transport/Endpoint.ts"
import * as ProxyProtocol from "../../src/transport/ProxyProtocol.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import { HardeningError, pattern, sameBytes, startBackend } from "../hardening/harness.ts"

const loopback = { host: "127.0.0.1", port: 0 }

/** Echoes a stream until its FIN, then half-closes: what a bare yamux server here does with each stream. */
const echoStream = (stream: MuxStream): Effect.Effect<void, unknown> =>
  Effect.flatMap(stream.read, (chunk) =>
    chunk === null ? stream.closeWrite : Effect.andThen(stream.write([chunk]), echoStream(stream))
  )
const ep = (address: string, port: number) => Endpoint.make(address, port)!

interface Talked {
  readonly data: Uint8Array
  readonly end: "eof" | "error"
  /** The client's own port (what the far side should see as the source port). */
  readonly localPort: number
}

/**
 * A plain `node:net` client to `host:port`: sends `bytes` (in `parts`), half-closes, and reads to
 * the end, bounded by `timeoutMs`.
 */
const talk = (
  address: Tcp.TcpAddress,
  parts: ReadonlyArray<Uint8Array>,
  options: { readonly end?: boolean; readonly timeoutMs?: number } = {}
): Effect.Effect<Talked, HardeningError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<{ socket: net.Socket; result: Talked }, HardeningError>((resume) => {
      const socket = net.connect({ host: address.host, port: address.port, allowHalfOpen: true })
      const chunks: Array<Buffer> = []
      let localPort = 0
      let done = false
      const finish = (end: "eof" | "error") => {
        if (done) return
        done = true
        clearTimeout(timer)
        resume(Effect.succeed({ socket, result: { data: new Uint8Array(Buffer.concat(chunks)), end, localPort } }))
      }
      const timer = setTimeout(
        () =>
          resume(
            Effect.fail(new HardeningError({ message: `client of ${Tcp.formatAddress(address)}: no end in time` }))
          ),
        options.timeoutMs ?? 10_000
      )
      socket.on("connect", () => {
        localPort = socket.localPort ?? 0
        for (const part of parts) socket.write(part)
        if (options.end !== false) socket.end()
      })
      socket.on("data", (chunk: Buffer) => chunks.push(chunk))
      socket.on("end", () => finish("eof"))
      socket.on("error", () => finish("error"))
      socket.on("close", () => finish("error"))
      return Effect.sync(() => {
        clearTimeout(timer)
        socket.destroy()
      })
    }),
    ({ socket }) => Effect.sync(() => socket.destroy())
  ).pipe(Effect.map(({ result }) => result))

/** A handler answering with what it was told about its stream, as JSON. */
const whoAmI: Server.Handler = (stream, serving) =>
  stream.write([
    new TextEncoder().encode(
      JSON.stringify({ service: serving.service, source: serving.source, destination: serving.destination })
    )
  ])

const json = (talked: Talked) => JSON.parse(new TextDecoder().decode(talked.data))

describe("Proxy services", () => {
  it.live("two services through one proxy and one link reach their own backends, byte-exact", () =>
    Effect.gen(function* () {
      const seen: Record<string, Array<string>> = { alpha: [], beta: [] }
      const backendFor = (name: string) =>
        startBackend((socket) => {
          const chunks: Array<Buffer> = []
          socket.on("data", (chunk: Buffer) => {
            chunks.push(chunk)
            socket.write(chunk)
          })
          socket.on("end", () => {
            seen[name]!.push(Buffer.concat(chunks).toString("hex"))
            socket.end()
          })
        })
      const alpha = yield* backendFor("alpha")
      const beta = yield* backendFor("beta")
      const server = yield* Server.make({
        listen: loopback,
        services: {
          alpha: { target: { host: "127.0.0.1", port: alpha.port } },
          beta: { target: { host: "127.0.0.1", port: beta.port } }
        }
      })
      const proxy = yield* Proxy.make({
        listen: loopback,
        upstream: server.address,
        services: { alpha: loopback, beta: loopback }
      })
      const addresses = proxy.addresses()
      const jobs = Array.from({ length: 10 }, (_, i) => ({
        service: i % 2 === 0 ? "alpha" : "beta",
        bytes: pattern(1 + ((i * 77_777) % (500 * 1024)), 300 + i)
      }))
      const results = yield* Effect.forEach(jobs, (job) => Effect.scoped(talk(addresses[job.service]!, [job.bytes])), {
        concurrency: "unbounded"
      })
      results.forEach((result, i) => {
        assert.strictEqual(result.end, "eof", `client ${i}`)
        assert.ok(sameBytes(result.data, jobs[i]!.bytes), `client ${i}: bytes differ`)
      })
      for (const name of ["alpha", "beta"]) {
        const want = jobs.filter((j) => j.service === name).map((j) => Buffer.from(j.bytes).toString("hex"))
        assert.deepStrictEqual([...seen[name]!].sort(), want.sort(), `${name} got exactly its own clients' bytes`)
      }
      assert.strictEqual(proxy.link.generation(), 1)
    }).pipe(Effect.scoped)
  )

  it.live("the server's handler sees the client's real address and port, IPv4 and IPv6", () =>
    Effect.gen(function* () {
      const server = yield* Server.make({ listen: loopback, handler: whoAmI, services: { six: whoAmI } })
      const proxy = yield* Proxy.make({
        listen: loopback,
        upstream: server.address,
        services: { six: { host: "::1", port: 0 } }
      })
      const v4 = yield* Effect.scoped(talk(proxy.address, []))
      assert.deepStrictEqual(json(v4), {
        service: "default",
        source: { family: "IPv4", address: "127.0.0.1", port: v4.localPort },
        destination: { family: "IPv4", address: "127.0.0.1", port: proxy.address.port }
      })
      const six = proxy.addresses().six!
      const v6 = yield* Effect.scoped(talk(six, []))
      assert.deepStrictEqual(json(v6), {
        service: "six",
        source: { family: "IPv6", address: "::1", port: v6.localPort },
        destination: { family: "IPv6", address: "::1", port: six.port }
      })
    }).pipe(Effect.scoped)
  )

  it.live(
    "accept-proxy-protocol: v1 and v2 headers' addresses travel, the client's bytes after them arrive intact",
    () =>
      Effect.gen(function* () {
        const server = yield* Server.make({
          listen: loopback,
          handler: (stream, serving) =>
            Effect.gen(function* () {
              const body = yield* stream.readAll
              yield* stream.write([
                new TextEncoder().encode(
                  `${JSON.stringify({ source: serving.source, destination: serving.destination })}\n`
                ),
                body
              ])
            })
        })
        const proxy = yield* Proxy.make({ listen: loopback, upstream: server.address, acceptProxyProtocol: true })
        const body = pattern(70_000, 9)
        const cases = [
          ProxyProtocol.encodeV1(ep("203.0.113.7", 61000), ep("198.51.100.1", 443)),
          ProxyProtocol.encodeV2(ep("2001:db8::7", 61001), ep("2001:db8::1", 443))
        ]
        for (const [i, header] of cases.entries()) {
          // The header and the first bytes in one write, as a load balancer often sends them.
          const talked = yield* Effect.scoped(
            talk(proxy.address, [new Uint8Array([...header, ...body.subarray(0, 10)]), body.subarray(10)])
          )
          const text = Buffer.from(talked.data)
          const newline = text.indexOf(0x0a)
          const told = JSON.parse(text.subarray(0, newline).toString())
          const parsed = ProxyProtocol.parse(header) as Extract<ProxyProtocol.ParseResult, { _tag: "Complete" }>
          assert.deepStrictEqual(
            told,
            { source: parsed.header.source, destination: parsed.header.destination },
            `case ${i}`
          )
          assert.ok(sameBytes(talked.data.subarray(newline + 1), body), `case ${i}: the client's bytes`)
        }
        // LOCAL (a health check) carries no address: the connection's own is used.
        const local = yield* Effect.scoped(talk(proxy.address, [ProxyProtocol.encodeV2(undefined)]))
        assert.strictEqual(JSON.parse(Buffer.from(local.data).toString().split("\n")[0]!).source.address, "127.0.0.1")
      }).pipe(Effect.scoped)
  )

  it.live("accept-proxy-protocol: a malformed or missing header closes that client only", () =>
    Effect.gen(function* () {
      const server = yield* Server.make({ listen: loopback })
      const proxy = yield* Proxy.make({
        listen: loopback,
        upstream: server.address,
        acceptProxyProtocol: true,
        proxyProtocolTimeoutMillis: 300
      })
      const good = new Uint8Array([...ProxyProtocol.encodeV1(ep("192.0.2.1", 1), ep("192.0.2.2", 2)), 1, 2, 3])
      // A healthy client held open across the bad ones.
      const healthy = net.connect({ host: "127.0.0.1", port: proxy.address.port, allowHalfOpen: true })
      yield* Effect.addFinalizer(() => Effect.sync(() => healthy.destroy()))
      const echoed: Array<Buffer> = []
      healthy.on("data", (chunk: Buffer) => echoed.push(chunk))
      healthy.write(good)
      const bad = [
        new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        new TextEncoder().encode("PROXY TCP4 1.2.3.4 nonsense\r\n"),
        new TextEncoder().encode(`PROXY UNKNOWN ${"x".repeat(120)}\r\n`)
      ]
      for (const bytes of bad) {
        const talked = yield* Effect.scoped(talk(proxy.address, [bytes]))
        assert.strictEqual(talked.end, "error", "reset, not a clean end")
        assert.strictEqual(talked.data.length, 0)
      }
      // Missing: connected, silent, never ends its write side.
      const silent = yield* Effect.scoped(talk(proxy.address, [], { end: false }))
      assert.strictEqual(silent.end, "error")
      assert.strictEqual(proxy.stats().refused, 4)
      healthy.write(Uint8Array.of(4, 5))
      healthy.end()
      yield* Effect.callback<void>((resume) => {
        healthy.on("end", () => resume(Effect.void))
      }).pipe(Effect.timeout(5_000))
      assert.deepStrictEqual(Array.from(Buffer.concat(echoed)), [1, 2, 3, 4, 5])
    }).pipe(Effect.scoped)
  )

  it.live("without accept-proxy-protocol a PROXY header is plain bytes, carried untouched", () =>
    Effect.gen(function* () {
      const server = yield* Server.make({ listen: loopback })
      const proxy = yield* Proxy.make({ listen: loopback, upstream: server.address })
      const header = ProxyProtocol.encodeV2(ep("192.0.2.1", 1), ep("192.0.2.2", 2))
      const talked = yield* Effect.scoped(talk(proxy.address, [header, pattern(100, 1)]))
      assert.ok(sameBytes(talked.data, new Uint8Array([...header, ...pattern(100, 1)])))
    }).pipe(Effect.scoped)
  )

  it.live(
    "reload: an added service listens, a removed one stops accepting while its client finishes, others untouched",
    () =>
      Effect.gen(function* () {
        const server = yield* Server.make({ listen: loopback, services: { a: Server.echo, b: Server.echo, c: whoAmI } })
        const proxy = yield* Proxy.make({
          listen: loopback,
          upstream: server.address,
          services: { a: loopback, b: loopback }
        })
        const before = proxy.addresses()
        // A client of "b", open across the reload.
        const lingering = net.connect({ host: "127.0.0.1", port: before.b!.port, allowHalfOpen: true })
        yield* Effect.addFinalizer(() => Effect.sync(() => lingering.destroy()))
        const got: Array<Buffer> = []
        lingering.on("data", (chunk: Buffer) => got.push(chunk))
        lingering.write(Uint8Array.of(1, 2, 3))
        yield* Effect.callback<void>((resume) => {
          lingering.once("data", () => resume(Effect.void))
        }).pipe(Effect.timeout(5_000))
        const summary = yield* proxy.reload({
          default: before.default!,
          a: { host: "127.0.0.1", port: before.a!.port },
          c: loopback
        })
        assert.deepStrictEqual(summary, { added: ["c"], removed: ["b"], changed: [], unchanged: ["default", "a"] })
        const after = proxy.addresses()
        assert.deepStrictEqual(Object.keys(after).sort(), ["a", "c", "default"])
        assert.deepStrictEqual(after.a, before.a, "an unchanged service keeps its listener")
        // The removed listener is closed; its client still finishes.
        const refused = yield* Effect.exit(Effect.scoped(talk(before.b!, [pattern(10, 1)])))
        assert.isTrue(
          refused._tag === "Failure" || refused.value.end === "error",
          "nobody accepts on the removed address"
        )
        lingering.write(Uint8Array.of(4))
        lingering.end()
        yield* Effect.callback<void>((resume) => {
          lingering.on("end", () => resume(Effect.void))
        }).pipe(Effect.timeout(5_000))
        assert.deepStrictEqual(Array.from(Buffer.concat(got)), [1, 2, 3, 4])
        // The added service works.
        assert.strictEqual(json(yield* Effect.scoped(talk(after.c!, []))).service, "c")
        const a = yield* Effect.scoped(talk(after.a!, [pattern(1000, 2)]))
        assert.ok(sameBytes(a.data, pattern(1000, 2)))
        // A bind failure changes nothing: the default address is taken by the proxy itself.
        const failed = yield* Effect.flip(proxy.reload({ ...after, d: after.a! }))
        assert.strictEqual(failed.operation, "listen")
        assert.deepStrictEqual(Object.keys(proxy.addresses()).sort(), ["a", "c", "default"])
        assert.strictEqual(proxy.link.generation(), 1)
      }).pipe(Effect.scoped)
  )

  it.live("a client of a named service over a plain yamux server is reset, the default service still works", () =>
    Effect.gen(function* () {
      const listener = yield* Tcp.listen(loopback)
      yield* Effect.forkScoped(
        Effect.gen(function* () {
          const session = yield* Session.make(yield* listener.accept, { client: false })
          while (true) {
            const stream = yield* session.acceptUnscoped
            yield* Effect.forkChild(echoStream(stream))
          }
        }).pipe(Effect.scoped, Effect.ignore)
      )
      const proxy = yield* Proxy.make({ listen: loopback, upstream: listener.address, services: { named: loopback } })
      const named = yield* Effect.scoped(talk(proxy.addresses().named!, [pattern(10, 1)]))
      assert.strictEqual(named.end, "error")
      const plain = yield* Effect.scoped(talk(proxy.address, [pattern(1000, 1)]))
      assert.ok(sameBytes(plain.data, pattern(1000, 1)))
    }).pipe(Effect.scoped)
  )
})
