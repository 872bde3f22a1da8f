/**
 * The behaviour every {@link Transport} must show, written once and run against each adapter
 * (TCP on loopback, the in-memory pair). Each case gets two connected ends `a` and `b` and a `tick`
 * that lets I/O progress (a few ms of real time for TCP, a scheduler yield for memory).
 *
 * Cases never wait on time to observe an event: they join fibers, or poll a condition a bounded
 * number of ticks.
 */
import { assert } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Option } from "effect"
import type { Transport, TransportError } from "../../src/transport/Transport.ts"
import { concatAll, decode, firstDifference, randomBytes, readAll, readExactly, text, writeChunked } from "./helpers.ts"

/** Two connected ends. */
export interface Ends {
  readonly a: Transport
  readonly b: Transport
}

/** What a case may use besides the ends. */
export interface CaseEnv {
  /** Lets pending I/O progress once. */
  readonly tick: Effect.Effect<void>
}

/** One contract case. */
export interface ContractCase {
  readonly name: string
  /** The case writes more than a few bytes before it reads, in one fiber: it needs some buffering. */
  readonly writesBeforeReading?: boolean
  readonly run: (ends: Ends, env: CaseEnv) => Effect.Effect<void, TransportError>
}

/** Runs `effect`, expecting a typed TransportError; returns it. */
export const failureOf = <A>(effect: Effect.Effect<A, TransportError>): Effect.Effect<TransportError> =>
  Effect.exit(effect).pipe(
    Effect.map((exit) => {
      if (Exit.isSuccess(exit)) return assert.fail(`expected a TransportError, got success ${String(exit.value)}`)
      const error = Cause.findErrorOption(exit.cause)
      if (Option.isNone(error)) return assert.fail(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
      assert.strictEqual(error.value._tag, "TransportError")
      return error.value
    })
  )

/** Polls `condition` up to `limit` ticks. */
export const eventually = (env: CaseEnv, condition: () => boolean, what: string, limit = 2000): Effect.Effect<void> =>
  Effect.gen(function* () {
    for (let i = 0; i < limit; i++) {
      if (condition()) return
      yield* env.tick
    }
    assert.fail(`condition not reached after ${limit} ticks: ${what}`)
  })

const assertBytes = (actual: Uint8Array, expected: Uint8Array) => {
  const diff = firstDifference(actual, expected)
  assert.strictEqual(diff, -1, `bytes differ at ${diff} (got ${actual.length}, expected ${expected.length})`)
}

/** The shared cases. */
export const contractCases: ReadonlyArray<ContractCase> = [
  {
    name: "bytes in equal bytes out, both directions at once (4 MiB each, random chunking)",
    run: ({ a, b }) =>
      Effect.gen(function* () {
        const toB = randomBytes(4 * 1024 * 1024, 1)
        const toA = randomBytes(4 * 1024 * 1024, 2)
        const [gotB, gotA] = yield* Effect.all(
          [
            readAll(b),
            readAll(a),
            writeChunked(a, toB, 11).pipe(Effect.andThen(a.closeWrite)),
            writeChunked(b, toA, 12).pipe(Effect.andThen(b.closeWrite))
          ],
          { concurrency: "unbounded" }
        )
        assertBytes(gotB, toB)
        assertBytes(gotA, toA)
      })
  },
  {
    name: "one 8 MiB chunk in a single write arrives intact",
    run: ({ a, b }) =>
      Effect.gen(function* () {
        const data = randomBytes(8 * 1024 * 1024, 3)
        const [got] = yield* Effect.all([readAll(b), a.write([data]).pipe(Effect.andThen(a.closeWrite))], {
          concurrency: "unbounded"
        })
        assertBytes(got, data)
      })
  },
  {
    name: "a slow reader gets every byte in order (buffered chunks are coalesced)",
    run: ({ a, b }, env) =>
      Effect.gen(function* () {
        const data = randomBytes(2 * 1024 * 1024, 9)
        const reader = Effect.gen(function* () {
          const chunks: Array<Uint8Array> = []
          for (let i = 0; i < 1_000_000; i++) {
            const chunk = yield* b.read
            if (chunk === null) break
            chunks.push(chunk)
            // Let several writes pile up before the next read.
            yield* env.tick
          }
          return concatAll(chunks)
        })
        const [got] = yield* Effect.all(
          [reader, writeChunked(a, data, 10, 8 * 1024).pipe(Effect.andThen(a.closeWrite))],
          {
            concurrency: "unbounded"
          }
        )
        assertBytes(got, data)
      })
  },
  {
    name: "many tiny writes keep their order",
    run: ({ a, b }) =>
      Effect.gen(function* () {
        const data = randomBytes(20_000, 4)
        const writer = Effect.gen(function* () {
          for (let i = 0; i < data.length; i += 2)
            yield* a.write([data.subarray(i, i + 1), data.subarray(i + 1, i + 2)])
          yield* a.closeWrite
        })
        const [got] = yield* Effect.all([readAll(b), writer], { concurrency: "unbounded" })
        assertBytes(got, data)
      })
  },
  {
    name: "half-close a→b: b reads the bytes then EOF, and can still answer",
    writesBeforeReading: true,
    run: ({ a, b }) =>
      Effect.gen(function* () {
        yield* a.write([text("question")])
        yield* a.closeWrite
        assert.strictEqual(decode(yield* readAll(b)), "question")
        yield* b.write([text("answer "), text("after FIN")])
        yield* b.closeWrite
        assert.strictEqual(decode(yield* readAll(a)), "answer after FIN")
      })
  },
  {
    name: "half-close b→a: a reads the bytes then EOF, and can still answer",
    writesBeforeReading: true,
    run: ({ a, b }) =>
      Effect.gen(function* () {
        yield* b.write([text("ping")])
        yield* b.closeWrite
        assert.strictEqual(decode(yield* readAll(a)), "ping")
        yield* a.write([text("pong")])
        yield* a.closeWrite
        assert.strictEqual(decode(yield* readAll(b)), "pong")
      })
  },
  {
    name: "EOF: a read parked before the FIN gets null, and every later read gets null",
    run: ({ a, b }, env) =>
      Effect.gen(function* () {
        const pending = yield* Effect.forkChild(b.read)
        yield* env.tick
        yield* a.closeWrite
        assert.strictEqual(yield* Fiber.join(pending), null)
        assert.strictEqual(yield* b.read, null)
        assert.strictEqual(yield* b.read, null)
      })
  },
  {
    name: "write after closeWrite fails with a write TransportError",
    run: ({ a }) =>
      Effect.gen(function* () {
        yield* a.closeWrite
        const error = yield* failureOf(a.write([text("late")]))
        assert.strictEqual(error.operation, "write")
      })
  },
  {
    name: "reset is seen by the peer's pending read as a TransportError",
    run: ({ a, b }, env) =>
      Effect.gen(function* () {
        const pending = yield* Effect.forkChild(b.read)
        yield* env.tick
        yield* a.reset
        const error = yield* failureOf(Fiber.join(pending))
        assert.strictEqual(error.operation, "read")
      })
  },
  {
    name: "writes fail once the peer has reset",
    run: ({ a, b }, env) =>
      Effect.gen(function* () {
        yield* a.reset
        const chunk = new Uint8Array(1024)
        let failed: TransportError | undefined
        for (let i = 0; i < 500 && failed === undefined; i++) {
          const exit = yield* Effect.exit(b.write([chunk]))
          if (Exit.isFailure(exit)) failed = yield* failureOf(exit)
          else yield* env.tick
        }
        assert.isDefined(failed, "write kept succeeding after the peer reset")
        assert.strictEqual(failed!.operation, "write")
      })
  },
  {
    name: "a local reset fails the local pending read promptly",
    run: ({ a }, env) =>
      Effect.gen(function* () {
        const pending = yield* Effect.forkChild(a.read)
        yield* env.tick
        yield* a.reset
        yield* failureOf(Fiber.join(pending))
        yield* failureOf(a.write([text("x")]))
      })
  },
  {
    name: "interrupting a pending read loses no bytes",
    writesBeforeReading: true,
    run: ({ a, b }, env) =>
      Effect.gen(function* () {
        const pending = yield* Effect.forkChild(b.read)
        yield* env.tick
        yield* Fiber.interrupt(pending)
        yield* a.write([text("after interrupt")])
        assert.strictEqual(decode(yield* readExactly(b, "after interrupt".length)), "after interrupt")
      })
  },
  {
    name: "a second concurrent read is refused, the first still gets the bytes",
    run: ({ a, b }, env) =>
      Effect.gen(function* () {
        const first = yield* Effect.forkChild(b.read)
        yield* env.tick
        const error = yield* failureOf(b.read)
        assert.strictEqual(error.operation, "read")
        yield* a.write([text("x")])
        const got = yield* Fiber.join(first)
        assert.strictEqual(got === null ? null : decode(got), "x")
      })
  },
  {
    name: "close fails the local pending read; the peer gets the bytes sent before it, then EOF",
    writesBeforeReading: true,
    run: ({ a, b }, env) =>
      Effect.gen(function* () {
        const pending = yield* Effect.forkChild(a.read)
        yield* env.tick
        yield* a.write([text("last words")])
        yield* a.close
        yield* failureOf(Fiber.join(pending))
        assert.strictEqual(decode(yield* readAll(b)), "last words")
      })
  },
  {
    name: "closeWrite, close and reset are idempotent and never fail",
    run: ({ a, b }) =>
      Effect.gen(function* () {
        yield* a.closeWrite
        yield* a.closeWrite
        yield* a.close
        yield* a.close
        yield* a.reset
        yield* a.reset
        yield* a.closeWrite
        yield* b.reset
        yield* b.close
        yield* b.closeWrite
      })
  }
]
