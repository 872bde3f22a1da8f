import { describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { sessionPair, settle, reasonOf } from "./helpers.ts"

describe("scratch", () => {
  it.effect("transport reset", () => Effect.gen(function* () {
    const sp = yield* sessionPair({})
    const c = yield* sp.client.openUnscoped
    yield* sp.server.acceptUnscoped
    const f = yield* Effect.forkChild(c.read)
    yield* settle()
    yield* sp.pair.b.reset
    console.log(yield* reasonOf(Fiber.join(f)), sp.client.isClosed(), sp.client.stats(), sp.server.isClosed(), sp.server.stats())
    yield* settle()
    console.log(sp.client.isClosed(), sp.client.stats(), (yield* sp.client.await).message)
  }), 3000)
})
