import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import * as Tcp from "../../src/transport/Tcp.ts"
import type { Transport } from "../../src/transport/Transport.ts"
import { type CaseEnv, contractCases, eventually, failureOf } from "./contract.ts"
import { decode, firstDifference, randomBytes, readAll, readExactly, text, writeChunked } from "./helpers.ts"

const HOST = "127.0.0.1"
const TIMEOUT = 30_000
const env: CaseEnv = { tick: Effect.sleep("2 millis") }

/** A connected loopback pair: `a` dialled, `b` accepted. Both closed with the scope. */
const tcpPair = (options?: Tcp.TcpOptions) =>
  Effect.gen(function* () {
    const server = yield* Tcp.listen({ host: HOST, port: 0, ...options })
    const [a, b] = yield* Effect.all([Tcp.connect(server.address, options), server.accept], { concurrency: 2 })
    yield* Effect.addFinalizer(() => b.close)
    return { a, b, server }
  })

/** Echoes until EOF, then half-closes. */
const echo = (t: Transport) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1_000_000; i++) {
      const chunk = yield* t.read
      if (chunk === null) break
      yield* t.write([chunk])
    }
    yield* t.closeWrite
  })

describe("Tcp transport: contract", () => {
  for (const c of contractCases) {
    it.live(c.name, () => Effect.flatMap(tcpPair(), (pair) => c.run(pair, env)), TIMEOUT)
  }
  it.live(
    "bytes in equal bytes out with a 1 KiB read high-water mark",
    () =>
      Effect.gen(function* () {
        const { a, b } = yield* tcpPair({ readHighWaterMark: 1024 })
        const data = randomBytes(3 * 1024 * 1024, 5)
        const [got] = yield* Effect.all([readAll(b), writeChunked(a, data, 6).pipe(Effect.andThen(a.closeWrite))], {
          concurrency: "unbounded"
        })
        assert.strictEqual(firstDifference(got, data), -1)
      }),
    TIMEOUT
  )
})

describe("Tcp transport", () => {
  it.live(
    "backpressure: a peer that does not read stalls the writer, reading releases it",
    () =>
      Effect.gen(function* () {
        const { a, b } = yield* tcpPair()
        // One read first, so b is flowing: it must pause by itself at the high-water mark.
        yield* a.write([text("x")])
        assert.strictEqual(decode(yield* readExactly(b, 1)), "x")
        const chunk = new Uint8Array(64 * 1024).fill(1)
        const total = 96 * 1024 * 1024
        let written = 0
        const writer = yield* Effect.forkChild(
          Effect.gen(function* () {
            while (written < total) {
              yield* a.write([chunk])
              written += chunk.length
            }
            yield* a.closeWrite
          })
        )
        // Stalled = no progress for 50 consecutive ticks; bounded by the poll limit.
        let last = -1
        let still = 0
        yield* eventually(
          env,
          () => {
            still = written === last ? still + 1 : 0
            last = written
            return still >= 50
          },
          "writer stalls",
          5000
        )
        assert.isUndefined(writer.pollUnsafe(), "writer finished although nobody read")
        // Kernel buffers on loopback plus our 256 KiB: a few MiB, far below the total.
        assert.isBelow(written, 64 * 1024 * 1024, `writer got ${written} bytes out before stalling`)
        let received = 0
        for (let i = 0; i < 1_000_000; i++) {
          const got = yield* b.read
          if (got === null) break
          received += got.length
        }
        yield* Fiber.join(writer)
        assert.strictEqual(received, total)
      }),
    TIMEOUT
  )

  it.live(
    "closing the connect scope closes the socket: the peer reads the bytes, then EOF",
    () =>
      Effect.gen(function* () {
        const server = yield* Tcp.listen({ host: HOST, port: 0 })
        yield* Effect.scoped(
          Effect.gen(function* () {
            const client = yield* Tcp.connect(server.address)
            yield* client.write([text("goodbye")])
          })
        )
        const accepted = yield* server.accept
        yield* Effect.addFinalizer(() => accepted.close)
        assert.strictEqual(decode(yield* readAll(accepted)), "goodbye")
      }),
    TIMEOUT
  )

  it.live(
    "close with a silent peer: the socket is destroyed after the grace period",
    () =>
      Effect.gen(function* () {
        const { a, b } = yield* tcpPair({ closeGraceMillis: 50 })
        yield* a.close
        assert.strictEqual(yield* b.read, null)
        // b never sends FIN; after 50 ms a's socket is gone and b's writes start failing.
        let failed = false
        for (let i = 0; i < 2000 && !failed; i++) {
          failed = Exit.isFailure(yield* Effect.exit(b.write([new Uint8Array(1024)])))
          if (!failed) yield* env.tick
        }
        assert.isTrue(failed, "writes to a closed peer kept succeeding")
      }),
    TIMEOUT
  )

  it.live(
    "connect to a closed port fails with a connect TransportError",
    () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const server = yield* Tcp.listen({ host: HOST, port: 0 }).pipe(Scope.provide(scope))
        yield* Scope.close(scope, Exit.void)
        const error = yield* failureOf(Effect.scoped(Tcp.connect(server.address)))
        assert.strictEqual(error.operation, "connect")
        assert.include(error.message, `${server.address.port}`)
      }),
    TIMEOUT
  )

  it.live(
    "listen on a port in use fails with a listen TransportError",
    () =>
      Effect.gen(function* () {
        const server = yield* Tcp.listen({ host: HOST, port: 0 })
        const error = yield* failureOf(Effect.scoped(Tcp.listen({ host: HOST, port: server.address.port })))
        assert.strictEqual(error.operation, "listen")
      }),
    TIMEOUT
  )

  it.live(
    "a pending accept fails when the server's scope closes",
    () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const server = yield* Tcp.listen({ host: HOST, port: 0 }).pipe(Scope.provide(scope))
        const pendingAccept = yield* Effect.forkChild(server.accept)
        yield* env.tick
        yield* Scope.close(scope, Exit.void)
        const error = yield* failureOf(Fiber.join(pendingAccept))
        assert.strictEqual(error.operation, "listen")
        yield* failureOf(server.accept)
      }),
    TIMEOUT
  )

  it.live(
    "closing the server ends unaccepted connections and leaves accepted ones alone",
    () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const server = yield* Tcp.listen({ host: HOST, port: 0 }).pipe(Scope.provide(scope))
        const first = yield* Tcp.connect(server.address)
        const accepted = yield* server.accept
        yield* Effect.addFinalizer(() => accepted.close)
        const waiting = yield* Tcp.connect(server.address)
        yield* Scope.close(scope, Exit.void)
        // Reset (queued in the server) or refused/closed (not yet accepted): either way it ends.
        const outcome = yield* Effect.exit(waiting.read)
        assert.isTrue(Exit.isFailure(outcome) || outcome.value === null, `unexpected ${String(outcome)}`)
        yield* first.write([text("still here")])
        assert.strictEqual(decode(yield* readExactly(accepted, 10)), "still here")
      }),
    TIMEOUT
  )

  it.live(
    "serve: 16 concurrent clients each get their own bytes echoed",
    () =>
      Effect.gen(function* () {
        const server = yield* Tcp.listen({ host: HOST, port: 0 })
        yield* Effect.forkScoped(Tcp.serve(server, (t) => Effect.orDie(echo(t)).pipe(Effect.ignore)))
        const client = (i: number) =>
          Effect.scoped(
            Effect.gen(function* () {
              const t = yield* Tcp.connect(server.address)
              const data = randomBytes(256 * 1024 + i, 100 + i)
              const [got] = yield* Effect.all(
                [readAll(t), writeChunked(t, data, i, 16 * 1024).pipe(Effect.andThen(t.closeWrite))],
                { concurrency: "unbounded" }
              )
              assert.strictEqual(firstDifference(got, data), -1, `client ${i}`)
            })
          )
        yield* Effect.all(
          Array.from({ length: 16 }, (_, i) => client(i)),
          { concurrency: "unbounded" }
        )
      }),
    TIMEOUT
  )

  it.live(
    "serve closes a connection when its handler ends",
    () =>
      Effect.gen(function* () {
        const server = yield* Tcp.listen({ host: HOST, port: 0 })
        yield* Effect.forkScoped(Tcp.serve(server, (t) => t.write([text("hi")]).pipe(Effect.ignore)))
        const t = yield* Tcp.connect(server.address)
        assert.strictEqual(decode(yield* readAll(t)), "hi")
      }),
    TIMEOUT
  )

  it.live(
    "remoteAddress is host:port of the peer",
    () =>
      Effect.gen(function* () {
        const { a, b, server } = yield* tcpPair()
        assert.strictEqual(a.remoteAddress, `${HOST}:${server.address.port}`)
        assert.match(b.remoteAddress, /^127\.0\.0\.1:\d+$/)
      }),
    TIMEOUT
  )

  it.live(
    "fromSocket wraps an already connected net.Socket (the path TLS takes)",
    () =>
      Effect.gen(function* () {
        const server = yield* Tcp.listen({ host: HOST, port: 0 })
        yield* Effect.forkScoped(Tcp.serve(server, (t) => Effect.orDie(echo(t)).pipe(Effect.ignore)))
        const socket = yield* Effect.callback<net.Socket>((resume) => {
          const s = net.connect({ host: HOST, port: server.address.port, allowHalfOpen: true }, () =>
            resume(Effect.succeed(s))
          )
          return Effect.sync(() => s.destroy())
        })
        const t = yield* Tcp.fromSocket(socket)
        yield* Effect.addFinalizer(() => t.close)
        const data = randomBytes(1024 * 1024, 7)
        const [got] = yield* Effect.all([readAll(t), writeChunked(t, data, 8).pipe(Effect.andThen(t.closeWrite))], {
          concurrency: "unbounded"
        })
        assert.strictEqual(firstDifference(got, data), -1)
      }),
    TIMEOUT
  )
})
