import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import * as Socket from "effect/socket/Socket"
import { toSocket, toStream } from "../../src/session/Adapters.ts"
import * as Session from "../../src/session/Session.ts"
import { makePair } from "../../src/transport/Memory.ts"

const text = new TextEncoder()
const decode = (chunks: ReadonlyArray<Uint8Array>) => new TextDecoder().decode(Buffer.concat(chunks))

const sessions = Effect.gen(function* () {
  const pair = yield* makePair()
  const client = yield* Session.make(pair.a, { client: true })
  const server = yield* Session.make(pair.b, { client: false })
  return { client, server }
})

describe("stream adapters", () => {
  it.effect("toStream yields the peer's bytes and ends at its FIN", () =>
    Effect.gen(function* () {
      const { client, server } = yield* sessions
      const opened = yield* client.open
      yield* opened.write([text.encode("hello "), text.encode("world")])
      yield* opened.closeWrite
      const accepted = yield* server.accept
      const chunks = yield* Stream.runCollect(toStream(accepted))
      assert.strictEqual(decode(chunks), "hello world")
    }).pipe(Effect.scoped, Effect.timeout(5_000))
  )

  it.effect("toSocket: Socket code reads, writes strings, and sees a clean close", () =>
    Effect.gen(function* () {
      const { client, server } = yield* sessions
      const opened = yield* client.open
      const accepted = yield* server.accept
      const socket = toSocket(accepted)
      // Socket side: echo one message upper-cased, then close the writer (FIN).
      const served = yield* Effect.forkChild(
        Effect.scoped(
          Effect.gen(function* () {
            const reader = yield* socket.reader
            const writer = yield* socket.writer
            const first = yield* reader.pull
            yield* writer.write(decode(first as ReadonlyArray<Uint8Array>).toUpperCase())
            const end = yield* Effect.flip(reader.pull)
            return end.reason._tag
          })
        )
      )
      yield* opened.write([text.encode("ping")])
      const reply = yield* opened.read
      assert.strictEqual(decode([reply!]), "PING")
      yield* opened.closeWrite
      assert.strictEqual(yield* Fiber.join(served), "SocketCloseError")
      // The writer's scope closed: the stream is half-closed towards us.
      assert.strictEqual(yield* opened.read, null)
    }).pipe(Effect.scoped, Effect.timeout(5_000))
  )

  it.effect("toSocket: a reset stream is a read error", () =>
    Effect.gen(function* () {
      const { client, server } = yield* sessions
      const opened = yield* client.open
      yield* opened.write([text.encode("x")])
      const accepted = yield* server.accept
      const reader = yield* toSocket(accepted).reader
      yield* reader.pull
      yield* opened.reset
      const error = yield* Effect.flip(reader.pull)
      assert.isTrue(Socket.isSocketError(error))
      assert.strictEqual(error.reason._tag, "SocketReadError")
    }).pipe(Effect.scoped, Effect.timeout(5_000))
  )
})
