/**
 * Faults around a real proxy and server (separate `plait` processes): the backend refuses, resets or
 * half-closes; the server is killed and restarted; the link is black-holed; a client vanishes while
 * its window is full. Each ends in a prompt, defined outcome for the clients concerned — never a
 * hang — and nothing is left open at the backend.
 *
 * Clients and backends are plain `node:net` sockets in the test process; processes are killed with
 * their scope (see ../e2e/helpers.ts), also when a test fails.
 */
import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { type RuntimeName, startProxy, startServer } from "../e2e/helpers.ts"
import {
  concatBytes,
  connectProbe,
  eventually,
  HardeningError,
  note,
  type Probe,
  pattern,
  sameBytes,
  startBackend,
  startEchoBackend
} from "./harness.ts"

const TEST_TIMEOUT = 30_000
/** A client concerned by a fault is closed within this. */
const PROMPT = 3_000
/** Slack on top of keepalive interval + timeout for a black-holed link to be declared dead. */
const KEEPALIVE_SLACK = 2_000

const target = (port: number) => ["--target", `127.0.0.1:${port}`]

/** Starts a server (forwarding to `targetPort`) and a proxy in front of it. */
const tunnel = (
  runtimes: { readonly server: RuntimeName; readonly proxy: RuntimeName },
  targetPort: number,
  extra: ReadonlyArray<string> = []
) =>
  Effect.gen(function* () {
    const server = yield* startServer(runtimes.server, [...target(targetPort), ...extra])
    const proxy = yield* startProxy(runtimes.proxy, server.port, extra)
    return { server, proxy }
  })

/** Sends `bytes`, half-closes, and reads everything back (bounded). */
const roundTrip = (port: number, bytes: Uint8Array) =>
  Effect.scoped(
    Effect.gen(function* () {
      const client = yield* connectProbe(port)
      yield* client.send(bytes)
      client.socket.end()
      const end = yield* client.closed(10_000)
      return { end, data: client.drain() }
    })
  )

describe("Faults: the backend", () => {
  it.live(
    "refuses (nobody listens at --target) → every client is reset promptly with no data (proxy@node, server@node)",
    () =>
      Effect.gen(function* () {
        const gone = yield* startBackend(() => {})
        yield* gone.close
        const { proxy } = yield* tunnel({ server: "node", proxy: "node" }, gone.port)
        // The proxy opens each stream as soon as its client connects, so the reset can beat the
        // client's own connect callback or its first write: any of those counts as "reset".
        const sentAt = Date.now()
        const ends = yield* Effect.forEach(
          [1, 2, 3],
          (i) =>
            Effect.scoped(
              Effect.gen(function* () {
                const client = yield* connectProbe(proxy.port)
                yield* client.send(pattern(10_000, i))
                const end = yield* client.closed(PROMPT)
                return { kind: end.kind, at: end.at, received: client.received(), describe: client.describe() }
              })
            ).pipe(
              Effect.catchIf(
                (error) => /ECONNRESET|EPIPE/.test(error.message),
                () =>
                  Effect.succeed({ kind: "error" as const, at: Date.now(), received: 0, describe: "reset at connect" })
              )
            ),
          { concurrency: "unbounded" }
        )
        for (const end of ends) {
          assert.strictEqual(end.kind, "error", `reset, not a clean EOF ${end.describe}`)
          assert.strictEqual(end.received, 0)
          assert.isAtMost(end.at - sentAt, PROMPT)
        }
        yield* note(
          `backend refuses: clients reset ${Math.max(...ends.map((end) => end.at)) - sentAt} ms after connecting`
        )
      }),
    TEST_TIMEOUT
  )

  it.live(
    "resets mid-stream → the client, which has its first bytes, is reset promptly (proxy@node, server@bun)",
    () =>
      Effect.gen(function* () {
        const first = pattern(50_000, 7)
        // Echoes nothing: answers a request with 50 000 bytes and then stays silent until the test
        // aborts the connection (RST) while the client is mid-stream.
        const sockets: Array<net.Socket> = []
        const backend = yield* startBackend((socket) => {
          sockets.push(socket)
          socket.once("data", () => socket.write(first))
          socket.resume()
        })
        const { proxy } = yield* tunnel({ server: "bun", proxy: "node" }, backend.port)
        const client = yield* connectProbe(proxy.port)
        yield* client.send(pattern(1000, 8))
        const got = yield* client.take(first.length, 10_000)
        assert.ok(sameBytes(got, first), "the bytes before the reset are exact")
        // The client is still sending when the backend dies.
        yield* client.send(pattern(100_000, 9))
        assert.strictEqual(sockets.length, 1)
        const resetAt = Date.now()
        sockets[0]!.resetAndDestroy()
        const end = yield* client.closed(PROMPT)
        assert.strictEqual(end.kind, "error", `reset, not a clean EOF ${client.describe()}`)
        assert.isAtMost(end.at - resetAt, PROMPT)
        assert.strictEqual(client.received(), first.length, "nothing after the reset")
        yield* note(`backend reset: client reset ${end.at - resetAt} ms later`)
        yield* eventually("the backend connection gone", () => backend.open() === 0, PROMPT)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "half-closes (shuts its write side, keeps reading) → the client reads EOF, can still send, and the backend receives every byte (proxy@deno, server@node)",
    () =>
      Effect.gen(function* () {
        const greeting = pattern(70_000, 21)
        const upload = pattern(600_000, 22)
        const uploads: Array<Uint8Array> = []
        let backendSawEnd = false
        const backend = yield* startBackend((socket) => {
          const chunks: Array<Buffer> = []
          socket.on("data", (chunk: Buffer) => chunks.push(chunk))
          socket.on("end", () => {
            backendSawEnd = true
            uploads.push(concatBytes(chunks))
            socket.end()
          })
          // Everything it has to say, then FIN; it keeps reading.
          socket.end(greeting)
        })
        const { proxy } = yield* tunnel({ server: "node", proxy: "deno" }, backend.port)
        const client = yield* connectProbe(proxy.port, { endOnEof: false })
        const eof = yield* client.closed(PROMPT + 2_000)
        assert.strictEqual(eof.kind, "eof", client.describe())
        assert.ok(sameBytes(client.drain(), greeting), "the greeting arrives whole before the EOF")
        // Still writable after the EOF: the upload goes all the way to the backend.
        yield* client.send(upload)
        client.socket.end()
        yield* eventually("the backend to see the client's FIN", () => backendSawEnd, 10_000)
        assert.strictEqual(uploads.length, 1)
        assert.strictEqual(uploads[0]!.length, upload.length)
        assert.ok(sameBytes(uploads[0]!, upload), "the backend receives the upload byte-exact")
        yield* eventually("the client connection fully closed", () => client.socket.destroyed, PROMPT)
        yield* eventually("the backend connection closed", () => backend.open() === 0, PROMPT)
      }),
    TEST_TIMEOUT
  )
})

describe("Faults: the server and the link", () => {
  it.live(
    "server killed (SIGKILL) and restarted → its clients are reset promptly, the proxy redials, waiting and new clients get through (proxy@node, server@node)",
    () =>
      Effect.gen(function* () {
        const backend = yield* startEchoBackend
        const first = yield* startServer("node", target(backend.port), { name: "server#1@node" })
        const proxy = yield* startProxy("node", first.port)
        // Five clients mid-transfer: each streams 2 MiB and reads the echo as it comes.
        const clients = yield* Effect.forEach([0, 1, 2, 3, 4], () => connectProbe(proxy.port))
        yield* Effect.forEach(clients, (client, i) => Effect.sync(() => client.socket.write(pattern(2 << 20, 40 + i))))
        yield* Effect.forEach(clients, (client) =>
          client.until("some echo", () => (client.received() >= 64 * 1024 ? true : undefined), 10_000)
        )
        yield* first.process.signal("SIGKILL")
        const killedAt = Date.now()
        for (const client of clients) {
          const end = yield* client.closed(PROMPT)
          assert.strictEqual(end.kind, "error", `reset, not a clean EOF ${client.describe()}`)
          assert.isAtMost(end.at - killedAt, PROMPT)
        }
        yield* note(
          `server SIGKILL: clients reset within ${Math.max(...clients.map((c) => c.end()!.at)) - killedAt} ms`
        )
        yield* first.process.waitForExit("5 seconds")
        yield* proxy.process.waitForLine(/link: down/, "5 seconds")
        // A client arriving while there is no server waits for the redial (within --link-wait).
        const early = pattern(300_000, 50)
        const waiting = yield* Effect.forkChild(roundTrip(proxy.port, early))
        const second = yield* startServer("node", target(backend.port), { port: first.port, name: "server#2@node" })
        assert.strictEqual(second.port, first.port)
        yield* proxy.process.waitForLine(/link: up to .*\(session 2\)/, "10 seconds")
        const late = pattern(300_000, 51)
        const results = [
          { sent: early, result: yield* Fiber.await(waiting) },
          { sent: late, result: yield* Effect.exit(roundTrip(proxy.port, late)) }
        ]
        for (const { result, sent } of results) {
          assert.strictEqual(result._tag, "Success")
          if (result._tag === "Success") {
            assert.strictEqual(result.value.end.kind, "eof")
            assert.ok(sameBytes(result.value.data, sent), "byte-exact through the redialled link")
          }
        }
        yield* eventually("every backend connection closed", () => backend.open() === 0, PROMPT)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "link black-holed (a relay stops forwarding, closes nothing) → keepalive detects it within interval + timeout, the clients are reset, the proxy redials (proxy@bun, server@node, 1s/1s)",
    () =>
      Effect.gen(function* () {
        const backend = yield* startEchoBackend
        // Without resumption (on by default, it would pause these clients and resume the session:
        // test/resume/Process.test.ts covers that); here the keepalive's own verdict is the point.
        const keepalive = ["--keepalive-interval", "1s", "--keepalive-timeout", "1s", "--resume-window", "0"]
        const server = yield* startServer("node", [...target(backend.port), ...keepalive])
        const relay = yield* startRelay(server.port)
        const proxy = yield* startProxy("bun", relay.port, keepalive)
        // Three clients keep echo traffic going up to the freeze, so the link is busy, not idle.
        const clients = yield* Effect.forEach([0, 1, 2], () => connectProbe(proxy.port))
        let rounds = 0
        const traffic = (client: Probe, i: number) =>
          Effect.gen(function* () {
            for (let round = 0; round < 100_000; round++) {
              const bytes = pattern(4096, i * 1000 + round)
              yield* client.send(bytes)
              const got = yield* client.take(bytes.length, 10_000)
              if (!sameBytes(got, bytes)) return yield* new HardeningError({ message: `client ${i}: wrong echo` })
              rounds++
            }
          }).pipe(Effect.ignore)
        yield* Effect.forEach(clients, (client, i) => Effect.forkChild(traffic(client, i)))
        yield* eventually("echo traffic through the relay", () => rounds >= 30, 10_000)
        assert.strictEqual(backend.open(), 3)
        relay.freeze()
        const frozenAt = Date.now()
        const bound = 1_000 + 1_000 + KEEPALIVE_SLACK
        for (const client of clients) {
          const end = yield* client.closed(bound + 1_000)
          assert.strictEqual(end.kind, "error", `reset, not a clean EOF ${client.describe()}`)
          assert.isAtMost(end.at - frozenAt, bound, "detected within interval + timeout + slack")
        }
        yield* note(
          `black hole: clients reset ${Math.max(...clients.map((c) => c.end()!.at)) - frozenAt} ms after the freeze`
        )
        yield* proxy.process.waitForLine(/link: down \(KeepaliveTimeout: no pong within 1000 ms/, "2 seconds")
        // Redialled through the relay (new connections are forwarded again); new clients work.
        yield* proxy.process.waitForLine(/link: up to .*\(session 2\)/, "10 seconds")
        const sent = pattern(200_000, 60)
        const result = yield* roundTrip(proxy.port, sent)
        assert.strictEqual(result.end.kind, "eof")
        assert.ok(sameBytes(result.data, sent))
        // The server's side of the dead link is dropped by its own keepalive: backends released.
        yield* eventually("the black-holed streams' backend connections closed", () => backend.open() === 0, bound)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "a client vanishes while its window is full (the backend keeps sending) → its stream is reset and the backend connection closed (proxy@bun, server@deno, 256KiB windows)",
    () =>
      Effect.gen(function* () {
        // Writes 64 KiB chunks for as long as the connection takes them.
        let written = 0
        let blockedSince: number | undefined
        const chunk = pattern(64 * 1024, 70)
        const backend = yield* startBackend((socket) => {
          const pump = () => {
            while (!socket.destroyed) {
              written += chunk.length
              if (!socket.write(chunk)) {
                blockedSince = Date.now()
                socket.once("drain", () => {
                  blockedSince = undefined
                  pump()
                })
                return
              }
            }
          }
          pump()
        })
        const window = ["--max-window", "256KiB"]
        const { proxy } = yield* tunnel({ server: "deno", proxy: "bun" }, backend.port, window)
        const client = yield* connectProbe(proxy.port, { paused: true })
        // Full all the way back: the backend has been unable to write for a while.
        yield* eventually(
          "the backend held back by flow control",
          () => blockedSince !== undefined && Date.now() - blockedSince >= 300 && written >= 256 * 1024,
          10_000,
          () => `(written ${written})`
        )
        assert.strictEqual(backend.open(), 1)
        assert.strictEqual(client.received(), 0)
        const writtenAtStall = written
        const vanishedAt = Date.now()
        client.socket.destroy()
        yield* eventually("the backend connection closed", () => backend.open() === 0, PROMPT)
        assert.isAtMost(Date.now() - vanishedAt, PROMPT)
        yield* note(
          `vanished client: backend connection closed ${Date.now() - vanishedAt} ms later; backend wrote ${writtenAtStall} bytes before the stall`
        )
        // Flow control held: the backend wrote a bounded amount (windows plus socket buffers).
        assert.isAtMost(writtenAtStall, 64 * 1024 * 1024, `${writtenAtStall} bytes written before the stall`)
        // The tunnel is fine for the next client.
        const sent = pattern(1000, 71)
        const next = yield* connectProbe(proxy.port)
        yield* next.send(sent)
        const got = yield* next.take(64 * 1024, 5_000)
        assert.ok(sameBytes(got, chunk), "the next client gets its own fresh stream")
      }),
    TEST_TIMEOUT
  )
})

// ---------------------------------------------------------------------------------------------
// A freezable TCP relay

interface Relay {
  readonly port: number
  /** Stops forwarding on every current connection, both ways, without closing anything. */
  readonly freeze: () => void
}

/**
 * Forwards each connection to `targetPort`. After `freeze`, the connections open at that moment
 * are black holes: nothing is read or forwarded, no FIN or RST is passed on. Later connections are
 * forwarded normally. Everything is destroyed with the scope.
 */
const startRelay = (targetPort: number) =>
  Effect.gen(function* () {
    const pairs = new Set<{ frozen: boolean; readonly a: net.Socket; readonly b: net.Socket }>()
    const server = net.createServer({ allowHalfOpen: true }, (down) => {
      const up = net.connect({ host: "127.0.0.1", port: targetPort, allowHalfOpen: true })
      const pair = { frozen: false, a: down, b: up }
      pairs.add(pair)
      const forward = (from: net.Socket, to: net.Socket) => {
        from.on("data", (data: Buffer) => {
          if (!pair.frozen) to.write(data)
        })
        from.on("end", () => {
          if (!pair.frozen) to.end()
        })
        from.on("error", () => {})
        from.on("close", () => {
          if (!pair.frozen) to.destroy()
        })
      }
      forward(down, up)
      forward(up, down)
    })
    const port = yield* Effect.acquireRelease(
      Effect.callback<number, HardeningError>((resume) => {
        server.once("error", (error) => resume(Effect.fail(new HardeningError({ message: `relay: ${error.message}` }))))
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as net.AddressInfo).port)))
      }),
      () =>
        Effect.sync(() => {
          for (const pair of pairs) {
            pair.a.destroy()
            pair.b.destroy()
          }
          server.close()
        })
    )
    const relay: Relay = {
      port,
      freeze: () => {
        for (const pair of pairs) {
          pair.frozen = true
          pair.a.pause()
          pair.b.pause()
        }
      }
    }
    return relay
  })
