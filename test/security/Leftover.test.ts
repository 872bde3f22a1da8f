import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Auth from "../../src/transport/Auth.ts"
import { readAll } from "../../src/transport/Splice.ts"
import * as Tcp from "../../src/transport/Tcp.ts"

const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)

describe("Auth.withLeftover over a TCP transport", () => {
  it.live("regression: every operation of a class-based transport survives the wrapper", () =>
    Effect.gen(function* () {
      const server = yield* Tcp.listen({ host: "127.0.0.1", port: 0 })
      const dialed = yield* Tcp.connect(server.address)
      const accepted = yield* server.accept
      const wrapped = Auth.withLeftover(dialed, text("left over"))
      assert.strictEqual(decode((yield* wrapped.read)!), "left over")
      // write, closeWrite and remoteAddress reach the socket (an object spread lost them).
      yield* wrapped.write([text("after the handshake")])
      yield* wrapped.closeWrite
      assert.strictEqual(decode(yield* readAll(accepted)), "after the handshake")
      assert.strictEqual(wrapped.remoteAddress, dialed.remoteAddress)
      yield* accepted.write([text("reply")])
      yield* accepted.closeWrite
      assert.strictEqual(decode(yield* readAll(wrapped)), "reply")
      yield* wrapped.reset
      yield* accepted.close
    }).pipe(Effect.scoped, Effect.timeout(10_000))
  )
})
