/**
 * Graceful shutdown on every runtime: SIGTERM stops accepting, lets in-flight clients finish and
 * exits 0; a second signal during the drain exits at once (code 130 for SIGINT).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type Client, connect, isRefused, payload, runtimes, sameBytes, startProxy, startServer } from "./helpers.ts"

const HALF = 256 * 1024

/** A client that sent the first half of its payload and got it echoed back: a stream in flight. */
const inFlight = (port: number, seed: number) =>
  Effect.gen(function* () {
    const sent = payload(2 * HALF, seed)
    const client = yield* connect(port)
    yield* client.write(sent.subarray(0, HALF))
    yield* client.waitForBytes(HALF)
    return { client, sent }
  })

/** Sends the rest, half-closes and checks the whole echo came back. */
const finish = ({ client, sent }: { readonly client: Client; readonly sent: Uint8Array }) =>
  Effect.gen(function* () {
    yield* client.write(sent.subarray(HALF))
    yield* client.end
    const result = yield* client.result("10 seconds")
    assert.strictEqual(result.end, "eof")
    assert.ok(sameBytes(result.data, sent), `echo of ${sent.length} bytes (got ${result.data.length})`)
  })

describe("e2e: signals", () => {
  for (const runtime of runtimes) {
    it.live(
      `${runtime}: SIGTERM drains in-flight clients and exits 0; a second signal exits at once`,
      () =>
        Effect.gen(function* () {
          const drain = ["--drain-timeout", "20s"]
          const server = yield* startServer(runtime, drain)
          const proxy = yield* startProxy(runtime, server.port, drain)

          // The proxy: two clients in flight, SIGTERM, no new clients, both finish, exit 0.
          const a = yield* inFlight(proxy.port, 1)
          const b = yield* inFlight(proxy.port, 2)
          yield* proxy.process.signal("SIGTERM")
          yield* proxy.process.waitForLine(/proxy: SIGTERM received: shutting down/)
          yield* proxy.process.waitForLine(/proxy: draining 2 client\(s\)/)
          assert.isTrue(yield* isRefused(proxy.port), "the proxy should stop accepting")
          yield* finish(a)
          yield* finish(b)
          const proxyExit = yield* proxy.process.waitForExit("10 seconds")
          assert.deepStrictEqual(proxyExit, { code: 0, signal: null }, proxy.process.output())
          yield* proxy.process.waitForLine(/proxy: stopped/)

          // The server: one client finishes during the drain, another keeps it waiting until SIGINT.
          const proxy2 = yield* startProxy(runtime, server.port, drain)
          const c = yield* inFlight(proxy2.port, 3)
          const d = yield* inFlight(proxy2.port, 4)
          yield* server.process.signal("SIGTERM")
          yield* server.process.waitForLine(/server: draining 1 link\(s\)/)
          yield* finish(c)
          assert.isUndefined(server.process.exited(), "the server should still drain the open stream")
          const forcedAt = Date.now()
          yield* server.process.signal("SIGINT")
          const serverExit = yield* server.process.waitForExit("3 seconds")
          assert.isBelow(Date.now() - forcedAt, 3_000)
          assert.deepStrictEqual(serverExit, { code: 130, signal: null }, server.process.output())
          yield* server.process.waitForLine(/server: second signal \(SIGINT\): exiting at once/)
          // The stream left open is cut, not completed.
          const cut = yield* d.client.result("5 seconds")
          assert.isBelow(cut.data.length, d.sent.length)
        }),
      30_000
    )
  }
})
