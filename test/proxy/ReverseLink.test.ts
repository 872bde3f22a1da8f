/**
 * Links dialled from the server's side (`plait server --connect` to `plait proxy --link-listen`),
 * over real TCP loopback: the proxy still accepts the clients and opens the streams; TLS and the
 * token work the same as in the other direction; a cut link fails its streams promptly and the
 * server redials with backoff; a server with the wrong token never gets a link.
 *
 * A relay between the two (a plain TCP forwarder run by the test) is what gets cut.
 */
import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect, PubSub, type Scope } from "effect"
import * as Events from "../../src/observability/Events.ts"
import * as Proxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import * as Auth from "../../src/transport/Auth.ts"
import type * as Tcp from "../../src/transport/Tcp.ts"
import * as Tls from "../../src/transport/Tls.ts"
import {
  connectProbe,
  eventually,
  type HardeningError,
  pattern,
  quiet,
  sameBytes,
  startBackend
} from "../hardening/harness.ts"
import { makePki } from "../security/certs.ts"

const loopback = { host: "127.0.0.1", port: 0 }
const pki = makePki()
const TOKEN = "a-long-random-token-for-the-reverse-link"

/** A TCP relay to `target` on a free port; `cut` resets every connection through it. */
const relay = (
  target: () => number
): Effect.Effect<{ port: number; cut: () => void; connections: () => number }, HardeningError, Scope.Scope> =>
  Effect.gen(function* () {
    const pairs = new Set<[net.Socket, net.Socket]>()
    let connections = 0
    const backend = yield* startBackend((inbound) => {
      connections++
      const outbound = net.connect({ host: "127.0.0.1", port: target(), allowHalfOpen: true })
      const pair: [net.Socket, net.Socket] = [inbound, outbound]
      pairs.add(pair)
      outbound.on("error", () => inbound.destroy())
      outbound.on("close", () => {
        pairs.delete(pair)
        inbound.destroy()
      })
      inbound.on("close", () => outbound.destroy())
      inbound.pipe(outbound)
      outbound.pipe(inbound)
    })
    return {
      port: backend.port,
      connections: () => connections,
      cut: () => {
        for (const [a, b] of pairs) {
          a.resetAndDestroy()
          b.resetAndDestroy()
        }
      }
    }
  })

/** Sends `bytes` through `port`, half-closes, returns what came back (bounded). */
const roundTrip = (port: number, bytes: Uint8Array) =>
  Effect.scoped(
    Effect.gen(function* () {
      const client = yield* connectProbe(port)
      yield* client.send(bytes)
      client.socket.end()
      const got = yield* client.take(bytes.length, 10_000)
      yield* client.closed(10_000)
      return got
    })
  )

const secured = {
  listener: (address: Tcp.TcpAddress) => Tls.listen(address, { cert: pki.server.cert, key: pki.server.key }),
  handshake: Auth.server(TOKEN)
}
const securedDial = (port: number, token = TOKEN) =>
  Tls.connect({ host: "127.0.0.1", port }, { ca: pki.ca.cert, servername: "localhost" }).pipe(
    Effect.flatMap(Auth.client(token))
  )

describe("Reverse links: the server dials the proxy", () => {
  it.live("plain: the proxy accepts the link and opens the streams; two services reach their backends", () =>
    Effect.gen(function* () {
      const backend = yield* startBackend((socket) => socket.pipe(socket))
      const proxy = yield* Proxy.make({
        listen: loopback,
        linkListen: { listen: loopback },
        services: { echo2: loopback }
      })
      const linkPort = proxy.linkAddress!.port
      const bus = yield* PubSub.unbounded<Events.PlaitEvent>()
      const seen = yield* PubSub.subscribe(bus)
      const server = yield* Server.make({
        connect: { address: { host: "127.0.0.1", port: linkPort } },
        handler: { target: { host: "127.0.0.1", port: backend.port } },
        services: { echo2: Server.echo }
      }).pipe(Effect.provideService(Events.Events, bus))
      assert.isFalse(server.listening)
      yield* eventually("the reverse link", () => proxy.link.generation() === 1, 5_000)
      for (const [port, seed] of [
        [proxy.address.port, 1],
        [proxy.addresses().echo2!.port, 2]
      ] as const) {
        const sent = pattern(200 * 1024, seed)
        assert.ok(sameBytes(yield* roundTrip(port, sent), sent))
      }
      assert.strictEqual(server.link?.generation(), 1)
      assert.strictEqual(server.stats().sessions, 1)
      const ups = (yield* PubSub.takeAll(seen)).filter((event) => event._tag === "LinkUp")
      assert.deepStrictEqual(
        ups.map((event) => event.role),
        ["server"],
        "the dialled link is announced once"
      )
    }).pipe(Effect.scoped, quiet)
  )

  it.live(
    "with TLS and a token: streams work; the link is cut, its client reset at once, the server redials, new clients work",
    () =>
      Effect.gen(function* () {
        const proxy = yield* Proxy.make({
          listen: loopback,
          linkListen: { listen: loopback, ...secured },
          linkWaitMillis: 5_000
        })
        const linkPort = proxy.linkAddress!.port
        const cutter = yield* relay(() => linkPort)
        yield* Server.make({
          connect: {
            address: { host: "127.0.0.1", port: cutter.port },
            dial: securedDial(cutter.port),
            retry: { initialMillis: 50, maxMillis: 200 }
          }
        })
        yield* eventually("the first link", () => proxy.link.generation() === 1, 10_000)
        const sent = pattern(100 * 1024, 3)
        assert.ok(sameBytes(yield* roundTrip(proxy.address.port, sent), sent))

        // A client mid-transfer when the link is cut.
        const mid = yield* connectProbe(proxy.address.port)
        yield* mid.send(pattern(1000, 4))
        yield* mid.take(1000, 5_000)
        const cutAt = Date.now()
        cutter.cut()
        const end = yield* mid.closed(5_000)
        assert.strictEqual(end.kind, "error", "reset, never a clean EOF")
        assert.isAtMost(end.at - cutAt, 3_000)
        yield* eventually(
          "the redialled link",
          () => proxy.link.current()?.isOpen() === true && proxy.link.generation() >= 2,
          10_000
        )
        assert.isAtLeast(cutter.connections(), 2)
        const after = pattern(300 * 1024, 5)
        assert.ok(sameBytes(yield* roundTrip(proxy.address.port, after), after))
      }).pipe(Effect.scoped, quiet),
    30_000
  )

  it.live(
    "a server with the wrong token gets no link (it keeps retrying, backed off); clients of the proxy are refused",
    () =>
      Effect.gen(function* () {
        const proxy = yield* Proxy.make({
          listen: loopback,
          linkListen: { listen: loopback, ...secured },
          linkWaitMillis: 300
        })
        const linkPort = proxy.linkAddress!.port
        const server = yield* Server.make({
          connect: {
            address: { host: "127.0.0.1", port: linkPort },
            dial: securedDial(linkPort, "not-the-token-at-all-but-long"),
            retry: { initialMillis: 50, maxMillis: 100 }
          }
        })
        yield* eventually(
          "a few refused attempts",
          () => proxy.link.lastError().includes("wrong token") || undefined,
          5_000,
          () => proxy.link.lastError()
        )
        assert.strictEqual(proxy.link.generation(), 0)
        assert.strictEqual(server.link?.generation(), 0)
        const client = yield* connectProbe(proxy.address.port)
        yield* client.send(pattern(10, 1))
        assert.strictEqual((yield* client.closed(5_000)).kind, "error")
      }).pipe(Effect.scoped, quiet)
  )
})
