/**
 * Reliability case 8, "half-close differs between implementations": after one side's FIN the other
 * side still writes (more than a window, so credit keeps flowing on a half-closed stream), the
 * half-closed side still reads it all, and the stream ends cleanly once both FINs are through.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import {
  assertBytes,
  assertIdle,
  eventually,
  payload,
  reasonOf,
  type SessionPair,
  sessionPair,
  within,
  writeAll
} from "./helpers.ts"

const MiB = 1024 * 1024

/** Both sessions forget the stream once both FINs are through. */
const bothReleased = (sp: SessionPair) =>
  eventually(() => sp.client.stats().streams === 0 && sp.server.stats().streams === 0, "both sides released")

describe("half-close differs between implementations", () => {
  it.live(
    "client FIN → server still writes its answer → client reads it → server FIN",
    () =>
      Effect.gen(function* () {
        const sp = yield* sessionPair()
        const request = payload(300_000, 1)
        // Larger than the window: the server's writes need credit from a client that already sent FIN.
        const answer = payload(6 * MiB, 2)
        const server = yield* Effect.forkChild(
          Effect.gen(function* () {
            const s = yield* sp.server.acceptUnscoped
            const got = yield* s.readAll
            assertBytes(got, request, "request")
            assert.strictEqual(s.state, "RemoteClosed")
            yield* writeAll(s, answer)
            yield* s.closeWrite
          })
        )
        const c = yield* sp.client.openUnscoped
        yield* writeAll(c, request)
        yield* c.closeWrite
        assert.strictEqual(yield* reasonOf(c.write([payload(1, 0)])), "StreamClosed", "no write after FIN")
        const got = yield* c.readAll
        assertBytes(got, answer, "answer read after our own FIN")
        yield* Fiber.join(server)
        assert.strictEqual(c.state, "Closed")
        yield* bothReleased(sp)
        assertIdle(sp.client)
        assertIdle(sp.server)
      }).pipe(Effect.scoped, (e) => within(10_000, "half-close", e)),
    15_000
  )

  it.live(
    "mirror: server FIN → client still writes → server reads it → client FIN",
    () =>
      Effect.gen(function* () {
        const sp = yield* sessionPair()
        const greeting = payload(200_000, 3)
        const upload = payload(6 * MiB, 4)
        const server = yield* Effect.forkChild(
          Effect.gen(function* () {
            const s = yield* sp.server.acceptUnscoped
            yield* writeAll(s, greeting)
            yield* s.closeWrite
            const got = yield* s.readAll
            assertBytes(got, upload, "upload read by the side that sent FIN first")
            assert.strictEqual(s.state, "Closed")
          })
        )
        const c = yield* sp.client.openUnscoped
        // The open itself (SYN) carries no data: the server speaks first.
        const got = yield* c.readAll
        assertBytes(got, greeting, "greeting")
        assert.strictEqual(c.state, "RemoteClosed")
        yield* writeAll(c, upload)
        yield* c.closeWrite
        yield* Fiber.join(server)
        yield* bothReleased(sp)
        assertIdle(sp.client)
        assertIdle(sp.server)
      }).pipe(Effect.scoped, (e) => within(10_000, "half-close mirror", e)),
    15_000
  )

  it.live(
    "both FINs cross while each side still has a window's worth in flight",
    () =>
      Effect.gen(function* () {
        const sp = yield* sessionPair()
        const up = payload(5 * MiB, 5)
        const down = payload(5 * MiB, 6)
        const c = yield* sp.client.openUnscoped
        const cw = yield* Effect.forkChild(Effect.andThen(writeAll(c, up), c.closeWrite))
        const s = yield* sp.server.acceptUnscoped
        const sw = yield* Effect.forkChild(Effect.andThen(writeAll(s, down), s.closeWrite))
        const [gotUp, gotDown] = yield* Effect.all([s.readAll, c.readAll], { concurrency: 2 })
        yield* Fiber.join(cw)
        yield* Fiber.join(sw)
        assertBytes(gotUp, up, "client → server")
        assertBytes(gotDown, down, "server → client")
        yield* bothReleased(sp)
        assertIdle(sp.client)
        assertIdle(sp.server)
      }).pipe(Effect.scoped, (e) => within(10_000, "crossing FINs", e)),
    15_000
  )

  it.live(
    "a scoped stream's normal exit is a FIN: the peer still answers and the answer is not lost",
    () =>
      Effect.gen(function* () {
        const sp = yield* sessionPair()
        const request = payload(50_000, 7)
        const answer = payload(2 * MiB, 8)
        const server = yield* Effect.forkChild(
          Effect.scoped(
            Effect.gen(function* () {
              const s = yield* sp.server.accept
              assertBytes(yield* s.readAll, request, "request")
              yield* writeAll(s, answer)
            })
          )
        )
        const got = yield* Effect.scoped(
          Effect.gen(function* () {
            const c = yield* sp.client.open
            yield* writeAll(c, request)
            yield* c.closeWrite
            return yield* c.readAll
          })
        )
        assertBytes(got, answer, "answer")
        yield* Fiber.join(server)
        yield* bothReleased(sp)
        assertIdle(sp.client)
        assertIdle(sp.server)
      }).pipe(Effect.scoped, (e) => within(10_000, "scoped half-close", e)),
    15_000
  )
})
