/**
 * Named services at the server, over real TCP loopback: routing by the stream's open message,
 * byte-exact and without crossing; what each bad open message gets (RST for an unknown name,
 * GO_AWAY(1) for that link only for a malformed, truncated or late one, nothing for a stream reset
 * by its opener); plain yamux peers on the default service; PROXY protocol headers to backends;
 * reloading the service table.
 *
 * The raw plait peers here are a session over a negotiated connection, writing open messages (or
 * garbage) by hand, so that the server is tested against bytes, not against plait's own client.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Logger } from "effect"
import * as Client from "../../src/client/Client.ts"
import * as Server from "../../src/server/Server.ts"
import type { MuxStream } from "../../src/session/MuxStream.ts"
import * as Session from "../../src/session/Session.ts"
import * as Endpoint from "../../src/transport/Endpoint.ts"
import * as Negotiation from "../../src/transport/Negotiation.ts"
import * as OpenMessage from "../../src/transport/OpenMessage.ts"
import * as ProxyProtocol from "../../src/transport/ProxyProtocol.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import { eventually, pattern, sameBytes, startBackend } from "../hardening/harness.ts"

const loopback = { host: "127.0.0.1", port: 0 }

/** Echoes a stream until its FIN, then half-closes: what a bare yamux server here does with each stream. */
const echoStream = (stream: MuxStream): Effect.Effect<void, unknown> =>
  Effect.flatMap(stream.read, (chunk) =>
    chunk === null ? stream.closeWrite : Effect.andThen(stream.write([chunk]), echoStream(stream))
  )
const ep = (address: string, port: number) => Endpoint.make(address, port)!
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

/** Fails with a message instead of hanging (every test has a vitest timeout too). */
const bounded = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>, millis = 10_000) =>
  effect.pipe(
    Effect.timeoutOrElse({ duration: millis, orElse: () => Effect.die(new Error(`${what}: not within ${millis} ms`)) })
  )

/** Writes `bytes`, half-closes, and reads the stream to its end. */
const exchange = (stream: MuxStream, bytes: Uint8Array) =>
  Effect.gen(function* () {
    const reader = yield* Effect.forkChild(stream.readAll)
    for (let at = 0; at < bytes.length; at += 32 * 1024) yield* stream.write([bytes.subarray(at, at + 32 * 1024)])
    yield* stream.closeWrite
    return yield* Fiber.join(reader)
  })

/** A backend that echoes and records every connection's bytes (keyed by connection number). */
const recordingEcho = Effect.gen(function* () {
  const received: Array<Array<Buffer>> = []
  const backend = yield* startBackend((socket) => {
    const chunks: Array<Buffer> = []
    received.push(chunks)
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk)
      socket.write(chunk)
    })
    socket.on("end", () => socket.end())
  })
  return { ...backend, received: () => received.map((chunks) => new Uint8Array(Buffer.concat(chunks))) }
})

/** A plait peer by hand: a negotiated session to `address` on which the test writes open messages itself. */
const rawPeer = (address: Tcp.TcpAddress) =>
  Effect.gen(function* () {
    const transport = yield* Tcp.connect(address)
    const negotiated = yield* Negotiation.dialer({ role: "proxy" })(transport)
    assert.strictEqual(negotiated.agreement.streamOpen, 1)
    return yield* Session.make(negotiated.transport, { client: true, config: { drainTimeoutMillis: 500 } })
  })

const open = (service: string, source?: Endpoint.Endpoint, destination?: Endpoint.Endpoint) =>
  OpenMessage.encode({ service, source, destination })

describe("Server services", () => {
  it.live(
    "two services over one link reach their own backends byte-exact, and no byte of one reaches the other",
    () =>
      Effect.gen(function* () {
        const a = yield* recordingEcho
        const b = yield* recordingEcho
        const server = yield* Server.make({
          listen: loopback,
          services: {
            alpha: { target: { host: "127.0.0.1", port: a.port } },
            beta: { target: { host: "127.0.0.1", port: b.port } }
          }
        })
        const client = yield* Client.make({ upstream: server.address })
        const STREAMS = 12
        const sizes = Array.from({ length: STREAMS }, (_, i) => 1 + ((i * 97_331) % (600 * 1024)))
        const results = yield* bounded(
          "round trips",
          Effect.forEach(
            sizes,
            (size, i) => {
              const service = i % 2 === 0 ? "alpha" : "beta"
              const sent = pattern(size, 1000 + i)
              return Effect.scoped(
                Effect.flatMap(client.openService(service), (stream) =>
                  Effect.map(exchange(stream, sent), (got) => ({ service, sent, ok: sameBytes(got, sent) }))
                )
              )
            },
            { concurrency: "unbounded" }
          )
        )
        assert.deepStrictEqual(
          results.map((r) => r.ok),
          sizes.map(() => true)
        )
        // Each backend saw exactly its own service's payloads, one per connection, nothing else.
        for (const [backend, service] of [
          [a, "alpha"],
          [b, "beta"]
        ] as const) {
          const want = results.filter((r) => r.service === service).map((r) => Buffer.from(r.sent).toString("hex"))
          const got = backend.received().map((bytes) => Buffer.from(bytes).toString("hex"))
          assert.deepStrictEqual(got.sort(), want.sort(), service)
        }
        assert.strictEqual(client.link.generation(), 1, "one link carried both services")
        assert.strictEqual(server.stats().unknownService, 0)
      }).pipe(Effect.scoped),
    20_000
  )

  it.live("an unknown service: that stream is reset, logged with the name, counted; the link lives on", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      const logger = Logger.make((options) => lines.push(String(options.message)))
      const server = yield* Server.make({ listen: loopback, services: { known: Server.echo } }).pipe(
        Effect.provide(Logger.layer([logger]))
      )
      const client = yield* Client.make({ upstream: server.address })
      const refused = yield* Effect.scoped(
        Effect.flatMap(client.openService("nobody-here"), (stream) => Effect.flip(exchange(stream, pattern(10, 1))))
      )
      assert.strictEqual(refused.reason._tag, "StreamReset")
      assert.strictEqual(server.stats().unknownService, 1)
      assert.isTrue(
        lines.some((line) => line.includes('unknown service "nobody-here"')),
        lines.join("\n")
      )
      const echoed = yield* Effect.scoped(
        Effect.flatMap(client.openService("known"), (s) => exchange(s, pattern(99, 2)))
      )
      assert.ok(sameBytes(echoed, pattern(99, 2)))
      assert.strictEqual(client.link.generation(), 1)
      assert.strictEqual(server.stats().sessions, 1)
    }).pipe(Effect.scoped)
  )

  it.live("a handler gets the stream's service and the client's address from the open message", () =>
    Effect.gen(function* () {
      const info: Server.Handler = (stream, serving) =>
        stream.write([
          new TextEncoder().encode(
            JSON.stringify({ service: serving.service, source: serving.source, destination: serving.destination })
          )
        ])
      const server = yield* Server.make({ listen: loopback, services: { info } })
      const client = yield* Client.make({ upstream: server.address })
      const got = yield* Effect.scoped(
        Effect.flatMap(
          client.openService("info", { source: ep("2001:db8::5", 4444), destination: ep("2001:db8::1", 443) }),
          (stream) => exchange(stream, new Uint8Array(0))
        )
      )
      assert.deepStrictEqual(JSON.parse(text(got)), {
        service: "info",
        source: { family: "IPv6", address: "2001:db8::5", port: 4444 },
        destination: { family: "IPv6", address: "2001:db8::1", port: 443 }
      })
    }).pipe(Effect.scoped)
  )

  it.live("bytes that arrive with the open message reach an in-process handler first, in order", () =>
    Effect.gen(function* () {
      const server = yield* Server.make({ listen: loopback, services: { echo: Server.echo } })
      const peer = yield* rawPeer(server.address)
      const stream = yield* peer.open
      // One write: the open message and the first data travel in the same DATA frame.
      yield* stream.write([open("echo"), new TextEncoder().encode("first"), new TextEncoder().encode("-second")])
      yield* stream.closeWrite
      assert.strictEqual(text(yield* bounded("echo", stream.readAll)), "first-second")
    }).pipe(Effect.scoped)
  )

  it.live("malformed, oversized, truncated and late open messages end that link with GO_AWAY(1), and only it", () =>
    Effect.gen(function* () {
      const server = yield* Server.make({ listen: loopback, openMessageTimeoutMillis: 300 })
      const healthy = yield* Client.make({ upstream: server.address })
      const cases: ReadonlyArray<readonly [string, (stream: MuxStream) => Effect.Effect<void, unknown>]> = [
        ["bad version", (s) => s.write([Uint8Array.of(9, 0, 5, 3, 0x61, 0x62, 0x63, 0)])],
        ["oversized", (s) => s.write([Uint8Array.of(1, 0x10, 0x00)])],
        ["bad name", (s) => s.write([Uint8Array.of(1, 0, 4, 2, 0x2f, 0x2f, 0)])],
        ["truncated", (s) => Effect.andThen(s.write([open("default").subarray(0, 5)]), s.closeWrite)],
        ["late", () => Effect.void]
      ]
      for (const [name, send] of cases) {
        const peer = yield* rawPeer(server.address)
        const stream = yield* peer.open
        yield* send(stream)
        const error = yield* bounded(name, peer.await)
        assert.strictEqual(error.reason._tag, "RemoteGoAway", `${name}: ${error.message}`)
        assert.strictEqual((error.reason as { code?: number }).code, 1, name)
        // The healthy link was not touched.
        const echoed = yield* Effect.scoped(Effect.flatMap(healthy.open, (s) => exchange(s, pattern(1000, 3))))
        assert.ok(sameBytes(echoed, pattern(1000, 3)), name)
      }
      assert.strictEqual(healthy.link.generation(), 1)
      assert.strictEqual(server.stats().openViolations, cases.length)
    }).pipe(Effect.scoped)
  )

  it.live("a stream reset by its opener before its open message is dropped, not a violation", () =>
    Effect.gen(function* () {
      const server = yield* Server.make({ listen: loopback })
      const peer = yield* rawPeer(server.address)
      const early = yield* peer.openUnscoped
      yield* early.reset
      const stream = yield* peer.open
      yield* stream.write([open("default"), new TextEncoder().encode("after a reset")])
      yield* stream.closeWrite
      assert.strictEqual(text(yield* bounded("echo", stream.readAll)), "after a reset")
      assert.isFalse(peer.isClosed())
      assert.strictEqual(server.stats().openViolations, 0)
    }).pipe(Effect.scoped)
  )

  it.live("a plain yamux peer (no negotiation, no open message) reaches the default service", () =>
    Effect.gen(function* () {
      const server = yield* Server.make({ listen: loopback, services: { other: Server.echo } })
      const transport = yield* Tcp.connect(server.address)
      const session = yield* Session.make(transport, { client: true })
      const stream = yield* session.open
      const sent = pattern(300 * 1024, 4)
      assert.ok(sameBytes(yield* bounded("echo", exchange(stream, sent)), sent))
    }).pipe(Effect.scoped)
  )

  it.live("over a plain yamux server only the default service is reachable: others fail with ServiceUnsupported", () =>
    Effect.gen(function* () {
      // A bare session as the server: it answers the probe like any ping, and never sends a hello.
      const listener = yield* Tcp.listen(loopback)
      const served = yield* Deferred.make<Session.Session>()
      yield* Effect.forkChild(
        Effect.gen(function* () {
          const session = yield* Session.make(yield* listener.accept, { client: false })
          yield* Deferred.succeed(served, session)
          while (true) {
            const stream = yield* session.accept
            yield* Effect.forkChild(echoStream(stream))
          }
        }).pipe(Effect.scoped, Effect.ignore)
      )
      const client = yield* Client.make({ upstream: listener.address })
      const error = yield* Effect.flip(Effect.scoped(client.openService("web")))
      assert.strictEqual(error.reason._tag, "ServiceUnsupported")
      assert.include(error.message, "plain yamux peer")
      yield* Deferred.await(served)
      const invalid = yield* Effect.flip(Effect.scoped(client.openService("not a name")))
      assert.strictEqual(invalid.reason._tag, "ServiceUnsupported")
    }).pipe(Effect.scoped)
  )

  for (const version of ["v1", "v2"] as const) {
    it.live(
      `proxy-protocol=${version}: the backend gets a header with the client's address, then the stream's bytes`,
      () =>
        Effect.gen(function* () {
          const seen: Array<Uint8Array> = []
          const done = yield* Deferred.make<void>()
          const backend = yield* startBackend((socket) => {
            const chunks: Array<Buffer> = []
            socket.on("data", (chunk: Buffer) => chunks.push(chunk))
            socket.on("end", () => {
              seen.push(new Uint8Array(Buffer.concat(chunks)))
              socket.end()
              if (seen.length === 2) Deferred.doneUnsafe(done, Effect.void)
            })
          })
          const server = yield* Server.make({
            listen: loopback,
            services: { pp: { target: { host: "127.0.0.1", port: backend.port }, proxyProtocol: version } }
          })
          const client = yield* Client.make({ upstream: server.address })
          const clients = [
            { source: ep("192.0.2.10", 50000), destination: ep("192.0.2.1", 8443) },
            { source: ep("2001:db8::10", 50001), destination: ep("2001:db8::1", 8443) }
          ]
          for (const [i, addresses] of clients.entries()) {
            yield* Effect.scoped(
              Effect.flatMap(client.openService("pp", addresses), (s) => exchange(s, pattern(5000, i)))
            )
          }
          yield* bounded("backend", Deferred.await(done))
          for (const [i, addresses] of clients.entries()) {
            const bytes = seen.find((b) => {
              const parsed = ProxyProtocol.parse(b)
              return parsed._tag === "Complete" && parsed.header.source?.port === addresses.source.port
            })
            assert.isDefined(bytes, `client ${i}`)
            const parsed = ProxyProtocol.parse(bytes!) as Extract<ProxyProtocol.ParseResult, { _tag: "Complete" }>
            assert.strictEqual(parsed.header.version, version === "v1" ? 1 : 2)
            assert.deepStrictEqual(parsed.header.source, addresses.source)
            assert.deepStrictEqual(parsed.header.destination, addresses.destination)
            assert.ok(
              sameBytes(bytes!.subarray(parsed.length), pattern(5000, i)),
              `client ${i}: bytes after the header`
            )
          }
        }).pipe(Effect.scoped)
    )
  }

  it.live(
    "reload: added services start, removed ones stop taking streams while open ones finish, unchanged are untouched",
    () =>
      Effect.gen(function* () {
        const a = yield* recordingEcho
        const b = yield* recordingEcho
        const keep: Server.Handler = Server.echo
        const server = yield* Server.make({
          listen: loopback,
          services: {
            keep,
            gone: { target: { host: "127.0.0.1", port: a.port } },
            moved: { target: { host: "127.0.0.1", port: a.port } }
          }
        })
        const client = yield* Client.make({ upstream: server.address })
        // A stream of the service about to be removed, open across the reload.
        const lingering = yield* client.openServiceUnscoped("gone")
        yield* lingering.write([pattern(1000, 5)])
        // Its open message has been read and its backend dialled: it belongs to "gone" for good.
        yield* eventually("the lingering stream's backend", () => a.received()[0]?.length === 1000, 5_000)
        const summary = yield* server.reload({
          default: Server.echo,
          keep,
          moved: { target: { host: "127.0.0.1", port: b.port } },
          fresh: { target: { host: "127.0.0.1", port: b.port }, proxyProtocol: "v1" }
        })
        assert.deepStrictEqual(summary, {
          added: ["fresh"],
          removed: ["gone"],
          changed: ["moved"],
          unchanged: ["default", "keep"]
        })
        assert.deepStrictEqual([...server.services()].sort(), ["default", "fresh", "keep", "moved"])
        // The lingering stream still finishes byte-exact.
        yield* lingering.write([pattern(1000, 6)])
        yield* lingering.closeWrite
        const finished = yield* bounded("lingering", lingering.readAll)
        assert.ok(sameBytes(finished, new Uint8Array([...pattern(1000, 5), ...pattern(1000, 6)])))
        // New streams: the removed service is unknown, the moved one reaches its new backend.
        const refused = yield* Effect.flip(
          Effect.scoped(Effect.flatMap(client.openService("gone"), (s) => exchange(s, pattern(5, 7))))
        )
        assert.strictEqual(refused.reason._tag, "StreamReset")
        yield* Effect.scoped(Effect.flatMap(client.openService("moved"), (s) => exchange(s, pattern(64, 8))))
        yield* eventually("the moved service's new backend", () => b.received().length === 1, 5_000)
        const bad = yield* Effect.flip(server.reload({ "no/slash": Server.echo }))
        assert.include(bad.message, "no/slash")
        assert.deepStrictEqual(
          [...server.services()].sort(),
          ["default", "fresh", "keep", "moved"],
          "a bad table changed nothing"
        )
        assert.strictEqual(client.link.generation(), 1)
      }).pipe(Effect.scoped)
  )
})
