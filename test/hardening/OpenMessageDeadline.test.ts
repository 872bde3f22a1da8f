/**
 * The stream open message (services) is the third partial input a peer could trickle: a message
 * stalled at every byte position — none at all, inside the 3-byte prefix, inside the body — fails
 * `OpenMessage.read` with a `Timeout` (a violation: the server ends that link with GO_AWAY(1)) once
 * the deadline has passed, and not before. On the TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as Endpoint from "../../src/transport/Endpoint.ts"
import * as OpenMessage from "../../src/transport/OpenMessage.ts"

const DEADLINE = 500

/** A stream that delivers `bytes` in one read and then nothing, ever (a peer that stalled). */
const stalledAfter = (bytes: Uint8Array) => {
  let delivered = bytes.length === 0
  return {
    read: Effect.suspend(() => {
      if (delivered) return Effect.never
      delivered = true
      return Effect.succeed(bytes)
    })
  }
}

describe("deadline on the stream open message", () => {
  const message = OpenMessage.encode({
    service: "db",
    source: Endpoint.make("192.0.2.7", 40000),
    destination: Endpoint.make("198.51.100.1", 5432)
  })

  it.effect(
    `a message stalled at each of its ${message.length} byte positions times out after the deadline, not before`,
    () =>
      Effect.gen(function* () {
        for (let k = 0; k < message.length; k++) {
          const reading = yield* Effect.forkChild(
            Effect.flip(OpenMessage.read(stalledAfter(message.subarray(0, k)), { timeoutMillis: DEADLINE }))
          )
          yield* Effect.yieldNow
          yield* TestClock.adjust(DEADLINE - 1)
          assert.isUndefined(reading.pollUnsafe(), `still waiting just before the deadline (${k} bytes)`)
          yield* TestClock.adjust(1)
          const error = yield* Fiber.join(reading)
          assert.strictEqual(error.reason._tag, "Timeout", `${k} bytes: ${error.message}`)
          assert.isTrue(error.isViolation, "a stalled open message ends the link (GO_AWAY(1))")
        }
      })
  )

  it.effect("the whole message within the deadline is read", () =>
    Effect.gen(function* () {
      const received = yield* OpenMessage.read(stalledAfter(message), { timeoutMillis: DEADLINE })
      assert.strictEqual(received.message.service, "db")
      assert.strictEqual(received.rest.length, 0)
    })
  )
})
