import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { MainLive, program } from "../examples/embedded.ts"

describe("examples/embedded.ts", () => {
  it.live("serves streams from an in-process handler over one link", () =>
    Effect.gen(function* () {
      const answers = yield* program.pipe(Effect.provide(MainLive))
      assert.deepStrictEqual(answers, ["HELLO", "FROM", "PLAIT"])
    }).pipe(Effect.timeout(10_000))
  )
})
