/**
 * The reverse direction through the CLI, over real processes: `plait server --connect` (behind NAT)
 * dials `plait proxy --link-listen` with TLS (the proxy presents the certificate, the server verifies
 * it against the CA) and a token; clients of the proxy reach the server's backend byte-exact. The
 * link runs through a relay in the test process, which cuts it: the client in flight is reset, the
 * server redials on its own, and new clients work. A server with the wrong token never gets a link.
 */
import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  connect,
  listeningPort,
  payload,
  pemFiles,
  roundTrip,
  sameBytes,
  spawnCli,
  startBackend,
  startEchoBackend
} from "./helpers.ts"

const TOKEN = "reverse-link-token-0123456789abcdef"

describe("e2e: links dialled by the server", () => {
  it.live(
    "TLS + token, server@deno dials proxy@node through a relay; the relay cuts the link: the client is reset, the server redials",
    () =>
      Effect.gen(function* () {
        const pem = yield* pemFiles
        const backend = yield* startEchoBackend
        const proxy = yield* spawnCli("node", "proxy", [
          "--listen",
          "127.0.0.1:0",
          "--link-listen",
          "127.0.0.1:0",
          "--tls-cert",
          pem.serverCert,
          "--tls-key",
          pem.serverKey,
          "--token",
          TOKEN,
          "--link-wait",
          "5s"
        ])
        const linkPort = Number(
          (yield* proxy.waitForLine(/link: accepting links from servers at 127\.0\.0\.1:(\d+)/))[1]
        )
        const clientPort = yield* listeningPort(proxy)
        // The relay: every connection through it is forwarded to the proxy's link port, and can be cut.
        const pairs = new Set<net.Socket>()
        const relay = yield* startBackend((inbound) => {
          const outbound = net.connect({ host: "127.0.0.1", port: linkPort })
          pairs.add(inbound).add(outbound)
          outbound.on("error", () => inbound.destroy())
          outbound.on("close", () => inbound.destroy())
          inbound.on("close", () => outbound.destroy())
          inbound.pipe(outbound)
          outbound.pipe(inbound)
        })
        const server = yield* spawnCli("deno", "server", [
          "--connect",
          `127.0.0.1:${relay.port}`,
          "--tls-ca",
          pem.ca,
          "--tls-servername",
          "localhost",
          "--token",
          TOKEN,
          "--target",
          `127.0.0.1:${backend.port}`
        ])
        yield* server.waitForLine(/dialling the proxy at 127\.0\.0\.1:\d+, TLS, token/)
        yield* proxy.waitForLine(/link: up from/)
        const first = payload(300 * 1024, 1)
        const echoed = yield* roundTrip(clientPort, first)
        assert.ok(sameBytes(echoed.data, first), "byte-exact over the reverse link")

        // A client in flight when the link is cut.
        const inFlight = yield* connect(clientPort)
        yield* inFlight.write(payload(1000, 2))
        yield* inFlight.waitForBytes(1000)
        for (const socket of pairs) socket.resetAndDestroy()
        const cut = yield* inFlight.result("5 seconds")
        assert.strictEqual(cut.end, "error", "reset, never a clean EOF")

        // The server redials on its own: a second "link: up" on both sides, and clients work again.
        yield* Effect.gen(function* () {
          const deadline = Date.now() + 15_000
          // Bounded by the deadline: the count of a log line, which has no event of its own here.
          while (server.lines().filter((line) => line.includes("link: up to")).length < 2) {
            if (Date.now() > deadline) return yield* Effect.die(new Error(`no redial\n${server.output()}`))
            yield* Effect.sleep("20 millis")
          }
        })
        const after = payload(100 * 1024, 3)
        const again = yield* roundTrip(clientPort, after)
        assert.ok(sameBytes(again.data, after), `after the redial\n${proxy.output()}`)
        assert.isUndefined(
          [...proxy.lines(), ...server.lines()].find((line) => line.includes(TOKEN)),
          "the token never appears in a log line"
        )
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a server with the wrong token (server@bun) gets no link; the proxy's clients are closed after --link-wait",
    () =>
      Effect.gen(function* () {
        const proxy = yield* spawnCli("node", "proxy", [
          "--listen",
          "127.0.0.1:0",
          "--link-listen",
          "127.0.0.1:0",
          "--token",
          TOKEN,
          "--link-wait",
          "500ms"
        ])
        const linkPort = Number(
          (yield* proxy.waitForLine(/link: accepting links from servers at 127\.0\.0\.1:(\d+)/))[1]
        )
        const clientPort = yield* listeningPort(proxy)
        const server = yield* spawnCli("bun", "server", [
          "--connect",
          `127.0.0.1:${linkPort}`,
          "--token",
          "a-different-token-that-is-long-enough"
        ])
        yield* proxy.waitForLine(/link: connection from .* refused: .*wrong token/)
        yield* server.waitForLine(/link: dial attempt \d+ to .* failed: .*rejected our token/)
        const refused = yield* roundTrip(clientPort, payload(10, 1))
        assert.strictEqual(refused.end, "error")
        assert.strictEqual(refused.data.length, 0)
        assert.isUndefined(proxy.lines().find((line) => line.includes("link: up")))
      }).pipe(Effect.scoped)
  )
})
