/**
 * A session over a real TCP socket reads it by callbacks (the socket's `DirectPort`), not by a fiber
 * per chunk. What must not change: bytes in equal bytes out on every stream, `maxSessionBuffer`
 * stops reading the link (TCP pushes back on the peer) until readers catch up, the peer's FIN
 * ends the session as closed, a reset link fails it with the transport's error.
 *
 * Invariants: loopback only, port 0; every wait is bounded (`poll` with a deadline, test timeouts);
 * both sockets belong to the test's scope.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import type { MuxStream } from "../../src/internal/session/Stream.ts"
import type { SessionConfig } from "../../src/session/Config.ts"
import * as Session from "../../src/session/Session.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import { firstDifference, randomBytes } from "../transport/helpers.ts"

const TEST_TIMEOUT = 30_000

/** Polls `check` every 5 ms for up to 10 s; fails naming `what`. */
const poll = (what: string, check: () => boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 2000; i++) {
      if (check()) return
      yield* Effect.sleep(5)
    }
    return yield* Effect.die(new Error(`timed out waiting for ${what}`))
  })

/** A connected pair of TCP transports on loopback, closed with the scope. */
const tcpPair = Effect.gen(function* () {
  const server = yield* Tcp.listen({ host: "127.0.0.1", port: 0 })
  const dialled = yield* Effect.forkChild(Tcp.connect(server.address))
  const accepted = yield* Effect.acquireRelease(server.accept, (t) => t.close)
  const dialler = yield* Fiber.join(dialled)
  return { dialler, accepted }
})

const sessions = (config: Partial<SessionConfig> = {}) =>
  Effect.gen(function* () {
    const { dialler, accepted } = yield* tcpPair
    const base = { keepaliveIntervalMillis: 0, drainTimeoutMillis: 0, ...config }
    const client = yield* Session.make(dialler, { client: true, config: base })
    const server = yield* Session.make(accepted, { client: false, config: base })
    return { client, server, dialler, accepted }
  })

/** Reads a stream until EOF (bounded by `limit` bytes). */
const readUpTo = (stream: MuxStream, limit: number) =>
  Effect.gen(function* () {
    const parts: Array<Uint8Array> = []
    let total = 0
    while (total <= limit) {
      const chunk = yield* stream.read
      if (chunk === null) break
      parts.push(chunk.slice())
      total += chunk.length
    }
    return Buffer.concat(parts)
  })

describe("session over a socket, read by callbacks", () => {
  it.live(
    "four streams of 1 MiB each way, byte-exact",
    () =>
      Effect.gen(function* () {
        const { client, server } = yield* sessions()
        const size = 1024 * 1024
        const serveOne = Effect.gen(function* () {
          const s = yield* server.acceptUnscoped
          const bytes = yield* readUpTo(s, size)
          yield* s.write([bytes])
          yield* s.closeWrite
        })
        const servers = yield* Effect.forkChild(
          Effect.all([serveOne, serveOne, serveOne, serveOne], { concurrency: 4 })
        )
        const results = yield* Effect.all(
          [1, 2, 3, 4].map((seed) =>
            Effect.gen(function* () {
              const s = yield* client.openUnscoped
              const payload = randomBytes(size, seed)
              const back = yield* Effect.forkChild(readUpTo(s, size))
              for (let at = 0; at < size; at += 100_000) yield* s.write([payload.subarray(at, at + 100_000)])
              yield* s.closeWrite
              return firstDifference(yield* Fiber.join(back), payload)
            })
          ),
          { concurrency: 4 }
        )
        yield* Fiber.join(servers)
        assert.deepStrictEqual(results, [-1, -1, -1, -1])
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.live(
    "maxSessionBuffer: unread streams stop the link being read; reading them resumes it, nothing lost",
    () =>
      Effect.gen(function* () {
        const limit = 256 * 1024
        const { client, server } = yield* sessions({ maxSessionBuffer: limit, maxWindow: 1024 * 1024 })
        const size = 1024 * 1024
        const payloads = [11, 12, 13].map((seed) => randomBytes(size, seed))
        const writers = yield* Effect.forkChild(
          Effect.all(
            payloads.map((payload) =>
              Effect.gen(function* () {
                const s = yield* client.openUnscoped
                yield* s.write([payload])
                yield* s.closeWrite
              })
            ),
            { concurrency: 3 }
          )
        )
        const accepted: Array<MuxStream> = []
        for (let i = 0; i < 3; i++) accepted.push(yield* server.acceptUnscoped)
        yield* poll("the server to stop reading its link", () => server.stats().readsPaused)
        assert.isAbove(server.stats().bufferedBytes, limit)
        // Nobody read: the buffer stays where the pause left it (the socket is not read meanwhile).
        const held = server.stats().bufferedBytes
        yield* Effect.sleep(50)
        assert.strictEqual(server.stats().bufferedBytes, held)
        const got = yield* Effect.all(
          accepted.map((s) => readUpTo(s, size)),
          { concurrency: 3 }
        )
        yield* Fiber.join(writers)
        // Streams were accepted in open order, which is the order of `payloads` (ids 1, 3, 5).
        const order = accepted.map((s) => (s.id - 1) / 2)
        assert.deepStrictEqual(
          got.map((bytes, i) => firstDifference(bytes, payloads[order[i]!]!)),
          [-1, -1, -1]
        )
        assert.isFalse(server.stats().readsPaused)
        assert.strictEqual(server.stats().limits.maxSessionBuffer, 1)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.live(
    "the peer's FIN ends the session as closed; a reset link fails it with the transport's error",
    () =>
      Effect.gen(function* () {
        const a = yield* sessions()
        yield* a.dialler.closeWrite
        const closed = yield* a.server.await
        assert.strictEqual(closed.reason._tag, "SessionClosed")
        assert.include(closed.message, "the peer closed the link")

        const b = yield* sessions()
        yield* b.dialler.reset
        const failed = yield* b.server.await
        assert.strictEqual(failed.reason._tag, "TransportFailed")
        assert.isTrue(b.server.isClosed())
        // The client side learns it too (its own socket was reset under it).
        const exit = yield* Effect.exit(b.client.openUnscoped)
        assert.isTrue(Exit.isFailure(exit))
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )
})
