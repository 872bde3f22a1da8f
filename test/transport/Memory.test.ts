import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { makePair } from "../../src/transport/Memory.ts"
import { type CaseEnv, contractCases, eventually, failureOf } from "./contract.ts"
import { decode, firstDifference, randomBytes, readAll, readExactly, text } from "./helpers.ts"

// Everything here runs under it.effect, i.e. with the TestClock: the pair must need no real timers.
const env: CaseEnv = { tick: Effect.yieldNow }
const TIMEOUT = 20_000

describe("Memory transport: contract", () => {
  for (const c of contractCases) {
    it.effect(c.name, () => Effect.flatMap(makePair(), (pair) => c.run(pair, env)), TIMEOUT)
    // Cases that write before reading in one fiber would (rightly) block on a 1-byte pipe.
    if (!c.writesBeforeReading) {
      it.effect(
        `${c.name} (highWaterMark 1)`,
        () => Effect.flatMap(makePair({ highWaterMark: 1 }), (pair) => c.run(pair, env)),
        TIMEOUT
      )
    }
  }
})

describe("Memory transport", () => {
  it.effect(
    "backpressure: a writer waits while the peer's unread bytes exceed the high-water mark",
    () =>
      Effect.gen(function* () {
        const pair = yield* makePair({ highWaterMark: 1024 })
        yield* pair.a.write([new Uint8Array(1024)]) // exactly at the mark: completes
        const blocked = yield* Effect.forkChild(pair.a.write([new Uint8Array(10)]))
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
        assert.isUndefined(blocked.pollUnsafe(), "write completed although the peer reads nothing")
        assert.deepStrictEqual(pair.buffered(), { toA: 0, toB: 1034 })
        const got = yield* pair.b.read
        assert.strictEqual(got!.length, 1034)
        yield* Fiber.join(blocked)
        assert.deepStrictEqual(pair.buffered(), { toA: 0, toB: 0 })
      }),
    TIMEOUT
  )

  it.effect(
    "a writer blocked on a full pipe fails promptly when the peer resets",
    () =>
      Effect.gen(function* () {
        const pair = yield* makePair({ highWaterMark: 16 })
        const blocked = yield* Effect.forkChild(pair.a.write([new Uint8Array(100)]))
        for (let i = 0; i < 5; i++) yield* Effect.yieldNow
        assert.isUndefined(blocked.pollUnsafe())
        yield* pair.b.reset
        const error = yield* failureOf(Fiber.join(blocked))
        assert.strictEqual(error.operation, "write")
      }),
    TIMEOUT
  )

  it.effect(
    "a writer blocked on a full pipe fails promptly when it closes its own side",
    () =>
      Effect.gen(function* () {
        const pair = yield* makePair({ highWaterMark: 16 })
        const blocked = yield* Effect.forkChild(pair.a.write([new Uint8Array(100)]))
        yield* eventually(env, () => pair.buffered().toB === 100, "bytes buffered")
        yield* pair.a.close
        yield* failureOf(Fiber.join(blocked))
        // The bytes were accepted before the close, so the peer still gets them, then EOF.
        assert.strictEqual((yield* readAll(pair.b)).length, 100)
      }),
    TIMEOUT
  )

  it.effect(
    "interrupting a blocked write leaves the transport usable",
    () =>
      Effect.gen(function* () {
        const pair = yield* makePair({ highWaterMark: 4 })
        const blocked = yield* Effect.forkChild(pair.a.write([text("12345678")]))
        for (let i = 0; i < 5; i++) yield* Effect.yieldNow
        yield* Fiber.interrupt(blocked)
        assert.strictEqual(decode((yield* pair.b.read)!), "12345678")
        yield* pair.a.write([text("9")])
        assert.strictEqual(decode(yield* readExactly(pair.b, 1)), "9")
      }),
    TIMEOUT
  )

  it.effect(
    "writes after the peer closed fail; the closer's earlier bytes are still delivered",
    () =>
      Effect.gen(function* () {
        const pair = yield* makePair()
        yield* pair.b.write([text("sent before close")])
        yield* pair.b.close
        const error = yield* failureOf(pair.a.write([text("too late")]))
        assert.strictEqual(error.operation, "write")
        assert.strictEqual(decode(yield* readAll(pair.a)), "sent before close")
      }),
    TIMEOUT
  )

  it.effect(
    "reset drops bytes still buffered towards the peer",
    () =>
      Effect.gen(function* () {
        const pair = yield* makePair()
        yield* pair.a.write([text("never read")])
        yield* pair.a.reset
        yield* failureOf(pair.b.read)
      }),
    TIMEOUT
  )

  it.effect(
    "a reader never aliases the writer's memory",
    () =>
      Effect.gen(function* () {
        const pair = yield* makePair()
        const source = text("abc")
        yield* pair.a.write([source])
        source[0] = 0x7a
        assert.strictEqual(decode((yield* pair.b.read)!), "abc")
      }),
    TIMEOUT
  )

  it.effect(
    "blackhole: writes are accepted and dropped, reads never complete, even hours later",
    () =>
      Effect.gen(function* () {
        const pair = yield* makePair({ highWaterMark: 8 })
        const blockedA = yield* Effect.forkChild(pair.a.write([new Uint8Array(64)]))
        for (let i = 0; i < 5; i++) yield* Effect.yieldNow
        assert.isUndefined(blockedA.pollUnsafe())
        yield* pair.blackhole()
        // The writer parked on a full pipe is released: its bytes were "sent" into the void.
        yield* Fiber.join(blockedA)
        const parkedA = yield* Effect.forkChild(pair.a.read)
        yield* pair.a.write([new Uint8Array(1 << 20)])
        yield* pair.b.write([new Uint8Array(1 << 20)])
        // Neither FIN nor RST crosses the black hole.
        yield* pair.b.closeWrite
        yield* pair.b.reset
        yield* TestClock.adjust("2 hours")
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
        assert.isUndefined(parkedA.pollUnsafe(), "a read completed through a black hole")
        assert.deepStrictEqual(pair.buffered(), { toA: 0, toB: 0 })
        // A local close still ends the local side's own pending read.
        yield* pair.a.close
        const error = yield* failureOf(Fiber.join(parkedA))
        assert.strictEqual(error.operation, "read")
      }),
    TIMEOUT
  )

  it.effect(
    "blackhole in one direction: a→b is cut, b→a still flows",
    () =>
      Effect.gen(function* () {
        const pair = yield* makePair()
        yield* pair.blackhole("aToB")
        yield* pair.a.write([text("lost")])
        yield* pair.b.write([text("kept")])
        assert.strictEqual(decode((yield* pair.a.read)!), "kept")
        assert.strictEqual(pair.buffered().toB, 0)
      }),
    TIMEOUT
  )

  it.effect(
    "echo through a pair does not nest fibers (100k round trips without stack growth)",
    () =>
      Effect.gen(function* () {
        const pair = yield* makePair()
        const rounds = 100_000
        const echo = Effect.gen(function* () {
          for (let i = 0; i < rounds; i++) {
            const chunk = yield* pair.b.read
            if (chunk === null) return
            yield* pair.b.write([chunk])
          }
        })
        const echoFiber = yield* Effect.forkChild(echo)
        const one = new Uint8Array([7])
        for (let i = 0; i < rounds; i++) {
          yield* pair.a.write([one])
          const back = yield* pair.a.read
          assert.strictEqual(back?.[0], 7)
        }
        yield* Fiber.join(echoFiber)
      }),
    TIMEOUT
  )

  it.effect(
    "random data through pipes with a tiny high-water mark stays byte-exact",
    () =>
      Effect.gen(function* () {
        const pair = yield* makePair({ highWaterMark: 7 })
        const data = randomBytes(200_000, 99)
        const writer = Effect.gen(function* () {
          for (let offset = 0; offset < data.length; offset += 333) {
            yield* pair.a.write([data.subarray(offset, offset + 100), data.subarray(offset + 100, offset + 333)])
          }
          yield* pair.a.closeWrite
        })
        const [got] = yield* Effect.all([readAll(pair.b), writer], { concurrency: "unbounded" })
        assert.strictEqual(firstDifference(got, data), -1)
      }),
    TIMEOUT
  )
})
