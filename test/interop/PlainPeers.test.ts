/**
 * Plain yamux peers against plait's proxy and server (not just its session), both directions, with
 * services configured on the plait side: the link negotiation falls back to plain yamux and every
 * stream goes to the default service, exactly as before negotiation existed.
 *
 * Two independent implementations: `@chainsafe/libp2p-yamux` (JS, in this process) and
 * hashicorp/yamux from Debian (Go, the bench's `yamux proxy|server` pair, built offline by
 * bench/native/build.ts, run as real processes and killed by each test's scope).
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { buildNative, type NativeBuild } from "../../bench/native/build.ts"
import * as Proxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import { spawnProcess, roundTrip as tunnelRoundTrip } from "../e2e/helpers.ts"
import { pattern, sameBytes, startBackend } from "../hardening/harness.ts"
import { mismatch, payload } from "./harness.ts"
import { dialLibp2p, EchoMode, roundTrip as libp2pRoundTrip, listenLibp2p, serveEcho } from "./libp2p.ts"

const loopback = { host: "127.0.0.1", port: 0 }
const STREAMS = 16

/** Fails with a message instead of hanging. */
const bounded = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>, millis = 20_000) =>
  effect.pipe(
    Effect.timeoutOrElse({ duration: millis, orElse: () => Effect.die(new Error(`${what}: not within ${millis} ms`)) })
  )

const sizeOf = (i: number) => 1 + ((i * 104_729) % (700 * 1024))

let native: NativeBuild
beforeAll(() => {
  native = buildNative()
}, 240_000)

describe("plain yamux peers against plait's proxy and server", () => {
  it.live("libp2p-yamux dials a plait server that has services: every stream reaches the default one", () =>
    Effect.gen(function* () {
      const backend = yield* startBackend((socket) => socket.pipe(socket))
      const server = yield* Server.make({
        listen: loopback,
        handler: { target: { host: "127.0.0.1", port: backend.port } },
        services: { other: Server.echo }
      })
      const peer = yield* dialLibp2p(server.address.port)
      const results = yield* bounded(
        "round trips",
        Effect.forEach(
          Array.from({ length: STREAMS }, (_, i) => i),
          (i) => {
            const want = payload(sizeOf(i), i + 1, EchoMode.Streaming)
            return Effect.map(
              Effect.promise(() => libp2pRoundTrip(peer.muxer, want)),
              (got) => mismatch(`stream ${i}`, got, want)
            )
          },
          { concurrency: "unbounded" }
        )
      )
      assert.deepStrictEqual(
        results.filter((r) => r !== undefined),
        []
      )
      assert.strictEqual(backend.accepted(), STREAMS, "each stream was forwarded to the default service's target")
      assert.strictEqual(server.stats().unknownService, 0)
      assert.strictEqual(server.stats().openViolations, 0)
    }).pipe(Effect.scoped)
  )

  it.live("a plait proxy dials a libp2p-yamux server: clients of the default service echo byte-exact", () =>
    Effect.gen(function* () {
      const errors: Array<unknown> = []
      const { port } = yield* listenLibp2p((peer) => serveEcho(peer.muxer, (e) => errors.push(e)))
      const proxy = yield* Proxy.make({ listen: loopback, upstream: { host: "127.0.0.1", port } })
      const results = yield* bounded(
        "clients",
        Effect.forEach(
          Array.from({ length: STREAMS }, (_, i) => i),
          (i) => {
            const want = payload(sizeOf(i), 100 + i, i % 2 === 0 ? EchoMode.Streaming : EchoMode.AfterEof)
            return Effect.map(tunnelRoundTrip(proxy.address.port, want), (got) =>
              got.end === "eof" ? mismatch(`client ${i}`, got.data, want) : `client ${i}: ${got.end} ${got.error}`
            )
          },
          { concurrency: "unbounded" }
        )
      )
      assert.deepStrictEqual(
        results.filter((r) => r !== undefined),
        []
      )
      assert.deepStrictEqual(errors, [])
      assert.strictEqual(proxy.link.generation(), 1)
    }).pipe(Effect.scoped)
  )

  it.live("hashicorp/yamux (Go) proxy dials a plait server: its clients reach the default service", () =>
    Effect.gen(function* () {
      const backend = yield* startBackend((socket) => socket.pipe(socket))
      const server = yield* Server.make({
        listen: loopback,
        handler: { target: { host: "127.0.0.1", port: backend.port } },
        services: { other: Server.echo }
      })
      const go = yield* spawnProcess("yamux-go proxy", native.bin.yamux, [
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        `127.0.0.1:${server.address.port}`
      ])
      const port = Number((yield* go.waitForLine(/listening on 127\.0\.0\.1:(\d+)/))[1])
      const results = yield* bounded(
        "clients",
        Effect.forEach(
          Array.from({ length: STREAMS }, (_, i) => i),
          (i) => {
            const want = pattern(sizeOf(i), 200 + i)
            return Effect.map(tunnelRoundTrip(port, want), (got) =>
              got.end === "eof" && sameBytes(got.data, want)
                ? undefined
                : `client ${i}: ${got.end}, ${got.data.length} bytes`
            )
          },
          { concurrency: "unbounded" }
        )
      )
      assert.deepStrictEqual(
        results.filter((r) => r !== undefined),
        [],
        go.output()
      )
      assert.strictEqual(backend.accepted(), STREAMS)
      assert.strictEqual(server.stats().openViolations, 0)
    }).pipe(Effect.scoped)
  )

  it.live("a plait proxy dials a hashicorp/yamux (Go) server: default clients work, named ones are reset", () =>
    Effect.gen(function* () {
      const backend = yield* startBackend((socket) => socket.pipe(socket))
      const go = yield* spawnProcess("yamux-go server", native.bin.yamux, [
        "server",
        "--listen",
        "127.0.0.1:0",
        "--target",
        `127.0.0.1:${backend.port}`
      ])
      const port = Number((yield* go.waitForLine(/listening on 127\.0\.0\.1:(\d+)/))[1])
      const proxy = yield* Proxy.make({
        listen: loopback,
        upstream: { host: "127.0.0.1", port },
        services: { named: loopback }
      })
      const results = yield* bounded(
        "clients",
        Effect.forEach(
          Array.from({ length: STREAMS }, (_, i) => i),
          (i) => {
            const want = pattern(sizeOf(i), 300 + i)
            return Effect.map(tunnelRoundTrip(proxy.address.port, want), (got) =>
              got.end === "eof" && sameBytes(got.data, want)
                ? undefined
                : `client ${i}: ${got.end}, ${got.data.length} bytes`
            )
          },
          { concurrency: "unbounded" }
        )
      )
      assert.deepStrictEqual(
        results.filter((r) => r !== undefined),
        [],
        go.output()
      )
      const named = yield* tunnelRoundTrip(proxy.addresses().named!.port, pattern(10, 1))
      assert.strictEqual(named.end, "error", "a named service is not reachable over plain yamux")
      assert.strictEqual(proxy.link.generation(), 1)
    }).pipe(Effect.scoped)
  )
})
