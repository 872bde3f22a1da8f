import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as Session from "../../src/session/Session.ts"
import { makePair } from "../../src/transport/Memory.ts"

const bytes = (n: number, seed: number) => {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff
  return out
}

describe("Session smoke", () => {
  it.live("echo on one stream, larger than the window", () =>
    Effect.gen(function* () {
      const pair = yield* makePair()
      const client = yield* Session.make(pair.a, { client: true })
      const server = yield* Session.make(pair.b, { client: false })
      const echo = yield* Effect.forkChild(
        Effect.scoped(
          Effect.gen(function* () {
            const s = yield* server.accept
            while (true) {
              const chunk = yield* s.read
              if (chunk === null) break
              yield* s.write([chunk])
            }
          })
        )
      )
      const payload = bytes(3 * 1024 * 1024, 7)
      const got = yield* Effect.scoped(
        Effect.gen(function* () {
          const s = yield* client.open
          const reader = yield* Effect.forkChild(s.readAll)
          for (let o = 0; o < payload.length; o += 100_000) yield* s.write([payload.subarray(o, o + 100_000)])
          yield* s.closeWrite
          return yield* Fiber.join(reader)
        })
      )
      yield* Fiber.join(echo)
      assert.strictEqual(got.length, payload.length)
      assert.deepStrictEqual(got, payload)
      const rtt = yield* client.ping
      assert.isAtLeast(rtt, 0)
    }).pipe(Effect.scoped, Effect.timeout(10_000))
  )
})
