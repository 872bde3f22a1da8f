/**
 * The resumable transport over in-memory connections (TestClock: heartbeats, silence and the
 * window move only when a test advances time): exact delivery across cuts of every kind, the
 * bounded replay buffer and its backpressure, liveness, the window, and ending for good.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import { RecordType } from "../../src/internal/resume/Wire.ts"
import * as Resume from "../../src/resume/Resume.ts"
import { makePair } from "../../src/transport/Memory.ts"
import {
  describe as describeError,
  eventually,
  firstDifference,
  link,
  pattern,
  RawDialer,
  readBytes,
  readMessage,
  readToEnd,
  reconnect,
  resumeFailure,
  settle,
  writeInPieces
} from "./harness.ts"

const TIMEOUT = 20_000
const CONFIG: Partial<Resume.ResumeConfig> = { heartbeatMillis: 1_000, silenceMillis: 5_000, windowMillis: 30_000 }

describe("Resumable transport: a session over one connection", () => {
  it.effect(
    "bytes flow both ways, exactly; positions add up",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const { dialer, accepted } = yield* link(acceptor, CONFIG)
          const up = pattern(300_000, 1)
          const down = pattern(200_000, 2)
          const w1 = yield* Effect.forkChild(writeInPieces(dialer, up, [1000, 7, 65_536, 333]))
          const w2 = yield* Effect.forkChild(writeInPieces(accepted, down, [4096, 1]))
          const gotUp = yield* readBytes(accepted, up.length)
          const gotDown = yield* readBytes(dialer, down.length)
          yield* Fiber.join(w1)
          yield* Fiber.join(w2)
          assert.strictEqual(firstDifference(gotUp, up), -1)
          assert.strictEqual(firstDifference(gotDown, down), -1)
          assert.strictEqual(dialer.stats().written, up.length)
          assert.strictEqual(accepted.stats().received, up.length)
          assert.strictEqual(dialer.stats().received, down.length)
          assert.strictEqual(dialer.status(), "connected")
          assert.deepStrictEqual(acceptor.stats().sessions, 1)
        })
      ),
    TIMEOUT
  )

  it.effect(
    "an acceptor with resumption off declines: both sides run plain over the connection",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: { windowMillis: 0 } })
          const pair = yield* makePair()
          const accepting = yield* Effect.forkChild(acceptor.accept(pair.b))
          const dialed = yield* Resume.dial(pair.a)
          const accepted = yield* Fiber.join(accepting)
          assert.strictEqual(dialed._tag, "Plain")
          assert.strictEqual(accepted._tag, "Plain")
          if (dialed._tag !== "Plain" || accepted._tag !== "Plain") return
          yield* dialed.transport.write([Uint8Array.of(0, 1, 2)])
          // No records: the bytes arrive as written.
          assert.deepStrictEqual(Array.from((yield* accepted.transport.read)!), [0, 1, 2])
        })
      ),
    TIMEOUT
  )
})

/** How a connection is cut. */
type CutKind = "reset-dialler" | "reset-acceptor" | "eof" | "blackhole" | "half-open"

/** A transfer both ways, cut between segments; see {@link runScenario}. */
interface Scenario {
  readonly up: number
  readonly down: number
  readonly upPieces: ReadonlyArray<number>
  readonly downPieces: ReadonlyArray<number>
  readonly cuts: ReadonlyArray<{
    readonly kind: CutKind
    /** Scheduler turns between releasing a segment and the cut (bytes are in flight then). */
    readonly afterTurns: number
    /** A first resume attempt dies mid-handshake. */
    readonly duringHandshake: boolean
    /**
     * Cut only once bytes are in flight dialler → acceptor: sent but not delivered (the acceptor's
     * reader starts only after the first cut, so what arrived before waits undelivered).
     */
    readonly inFlight?: boolean
  }>
  readonly highWaterMark: number
  readonly bufferBytes: number
  readonly maxRecordBytes: number
  readonly seed: number
}

/**
 * Runs `scenario`: both sides write their bytes in segments (one per cut, plus one), each released
 * by the test; after a segment's release the connection is cut, detected, and resumed on a fresh
 * pair. Returns what each side read, and the replayed byte counts.
 */
const runScenario = (scenario: Scenario) =>
  Effect.scoped(
    Effect.gen(function* () {
      const config = { ...CONFIG, bufferBytes: scenario.bufferBytes, maxRecordBytes: scenario.maxRecordBytes }
      const acceptor = yield* Resume.makeAcceptor({ config })
      const { dialer, accepted, pair } = yield* link(acceptor, config, scenario.highWaterMark)
      const up = pattern(scenario.up, scenario.seed)
      const down = pattern(scenario.down, scenario.seed + 1)
      const segments = scenario.cuts.length + 1
      const gates = Array.from({ length: segments }, () => Deferred.makeUnsafe<void>())
      const writeSegmented = (side: Resume.ResumableTransport, bytes: Uint8Array, pieces: ReadonlyArray<number>) =>
        Effect.gen(function* () {
          for (let i = 0; i < segments; i++) {
            yield* Deferred.await(gates[i]!)
            const from = Math.floor((bytes.length * i) / segments)
            const to = Math.floor((bytes.length * (i + 1)) / segments)
            yield* writeInPieces(side, bytes.subarray(from, to), pieces)
          }
        })
      const w1 = yield* Effect.forkChild(writeSegmented(dialer, up, scenario.upPieces))
      const w2 = yield* Effect.forkChild(writeSegmented(accepted, down, scenario.downPieces))
      const lateReader = scenario.cuts[0]?.inFlight === true
      let r1 = lateReader ? undefined : yield* Effect.forkChild(readBytes(accepted, up.length))
      const r2 = yield* Effect.forkChild(readBytes(dialer, down.length))
      let current = pair
      for (let i = 0; i < scenario.cuts.length; i++) {
        const cut = scenario.cuts[i]!
        Deferred.doneUnsafe(gates[i]!, Exit.void)
        yield* settle(cut.afterTurns)
        if (cut.inFlight === true) {
          yield* eventually(() => accepted.stats().received > 50_000, "bytes arrived, undelivered")
        }
        if (cut.kind === "reset-dialler") yield* current.a.reset
        else if (cut.kind === "reset-acceptor") yield* current.b.reset
        else if (cut.kind === "eof") yield* current.a.close
        else yield* current.blackhole("both")
        if (cut.kind === "blackhole") {
          // Nothing fails: the silence is what tells.
          yield* TestClock.adjust(CONFIG.silenceMillis!)
          yield* settle()
        }
        if (cut.kind !== "half-open") {
          yield* eventually(() => dialer.status() === "suspended", "the dialler suspends")
          yield* eventually(() => accepted.status() === "suspended", "the acceptor suspends")
        }
        if (cut.duringHandshake) {
          // The request goes out, the answer never comes back: the attempt fails, the session waits.
          const doomed = yield* makePair()
          const accepting = yield* Effect.forkChild(Effect.exit(acceptor.accept(doomed.b)))
          const attempt = yield* Effect.forkChild(Effect.exit(dialer.resume(doomed.a)))
          yield* doomed.blackhole("bToA")
          yield* settle()
          yield* doomed.a.reset
          const exit = yield* Fiber.join(attempt)
          assert.strictEqual(exit._tag, "Failure", "the attempt fails")
          assert.notStrictEqual(dialer.status(), "ended", "a failed attempt costs only itself")
          yield* Fiber.join(accepting)
        }
        const next = yield* reconnect(acceptor, dialer, scenario.highWaterMark)
        assert.strictEqual(next.accepted._tag, "Resumed")
        current = next.pair
        r1 ??= yield* Effect.forkChild(readBytes(accepted, up.length))
      }
      r1 ??= yield* Effect.forkChild(readBytes(accepted, up.length))
      Deferred.doneUnsafe(gates[segments - 1]!, Exit.void)
      const gotUp = yield* Fiber.join(r1)
      const gotDown = yield* Fiber.join(r2)
      yield* Fiber.join(w1)
      yield* Fiber.join(w2)
      return {
        upDifference: firstDifference(gotUp, up),
        downDifference: firstDifference(gotDown, down),
        resumes: dialer.stats().resumes,
        replayed: dialer.stats().replayedBytes + accepted.stats().replayedBytes
      }
    })
  )

/**
 * Fails a property run that does not finish in 5 s of wall time, naming its scenario (the runs use
 * the TestClock, which a stuck run would never advance).
 */
const hangGuard = <A>(scenario: Scenario, run: Promise<A>): Promise<A> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`scenario did not finish: ${JSON.stringify(scenario)}`)), 5_000)
  })
  return Promise.race([run, guard]).finally(() => clearTimeout(timer))
}

describe("Resumable transport: cuts", () => {
  for (const kind of ["reset-dialler", "reset-acceptor", "eof", "blackhole", "half-open"] as const) {
    it.effect(
      `cut (${kind}) mid-transfer: a resume on a new connection delivers every byte once, in order, both ways`,
      () =>
        Effect.gen(function* () {
          const result = yield* runScenario({
            up: 400_000,
            down: 250_000,
            upPieces: [10_000, 3],
            downPieces: [777],
            cuts: [{ kind, afterTurns: 5, duringHandshake: false, inFlight: true }],
            highWaterMark: 16 * 1024,
            bufferBytes: 4 * 1024 * 1024,
            maxRecordBytes: 4096,
            seed: 3
          })
          assert.strictEqual(result.upDifference, -1, "dialler → acceptor")
          assert.strictEqual(result.downDifference, -1, "acceptor → dialler")
          assert.strictEqual(result.resumes, 1)
          // Bytes were in flight at the cut: something was sent again.
          assert.isAbove(result.replayed, 0)
        }),
      TIMEOUT
    )
  }

  it.effect(
    "a cut after the peer's END loses nothing: bytes received but not yet read are still read, then EOF",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const { dialer, accepted, pair } = yield* link(acceptor, CONFIG)
          const up = pattern(100_000, 5)
          yield* dialer.write([up])
          yield* dialer.closeWrite
          // Everything and the END have arrived; the session has read none of it.
          yield* eventually(() => accepted.stats().received === up.length, "all bytes received")
          yield* settle()
          // The acceptor's connection fails before its reader caught up (an RST after the peer's close).
          yield* pair.b.reset
          yield* eventually(() => accepted.status() !== "connected", "the acceptor notices the cut")
          const got = yield* readToEnd(accepted, up.length)
          assert.strictEqual(got.length, up.length)
          assert.strictEqual(firstDifference(got, up), -1)
        })
      ),
    TIMEOUT
  )

  it.effect(
    "cuts repeated many times, some during the resume handshake itself",
    () =>
      Effect.gen(function* () {
        const kinds: ReadonlyArray<CutKind> = ["reset-dialler", "blackhole", "eof", "reset-acceptor", "half-open"]
        const result = yield* runScenario({
          up: 600_000,
          down: 600_000,
          upPieces: [5000, 17],
          downPieces: [3000],
          cuts: Array.from({ length: 12 }, (_, i) => ({
            kind: kinds[i % kinds.length]!,
            afterTurns: 3 + i,
            duringHandshake: i % 3 === 1
          })),
          highWaterMark: 4096,
          bufferBytes: 256 * 1024,
          maxRecordBytes: 8192,
          seed: 9
        })
        assert.strictEqual(result.upDifference, -1)
        assert.strictEqual(result.downDifference, -1)
        assert.strictEqual(result.resumes, 12)
      }),
    TIMEOUT
  )

  it.effect(
    "property: random sizes, chunking, cut kinds and cut points always deliver the exact bytes once, in order, both ways",
    () =>
      Effect.gen(function* () {
        const services = yield* Effect.context<never>()
        const kind = fc.constantFrom<CutKind>("reset-dialler", "reset-acceptor", "eof", "blackhole", "half-open")
        const scenario: fc.Arbitrary<Scenario> = fc.record({
          up: fc.integer({ min: 0, max: 300_000 }),
          down: fc.integer({ min: 0, max: 300_000 }),
          upPieces: fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 4 }),
          downPieces: fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 4 }),
          cuts: fc.array(
            fc.record({ kind, afterTurns: fc.integer({ min: 0, max: 40 }), duringHandshake: fc.boolean() }),
            { minLength: 1, maxLength: 4 }
          ),
          highWaterMark: fc.constantFrom(1, 1024, 16 * 1024, 256 * 1024),
          bufferBytes: fc.constantFrom(64 * 1024, 100_000, 1024 * 1024),
          maxRecordBytes: fc.constantFrom(1024, 5000, 64 * 1024, 256 * 1024),
          seed: fc.integer({ min: 1, max: 1_000_000 })
        })
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(scenario, (s) =>
              hangGuard(
                s,
                Effect.runPromiseWith(services)(
                  Effect.gen(function* () {
                    const result = yield* runScenario(s)
                    assert.strictEqual(result.upDifference, -1, "dialler → acceptor")
                    assert.strictEqual(result.downDifference, -1, "acceptor → dialler")
                    assert.strictEqual(result.resumes, s.cuts.length)
                  })
                )
              )
            ),
            // A few seconds on an idle machine; the limit leaves room for a loaded one.
            { numRuns: 30, interruptAfterTimeLimit: 40_000, markInterruptAsFailure: true }
          )
        )
      }),
    60_000
  )

  it.effect(
    "while suspended, writes fill the buffer and then wait; reads wait; nothing fails before the window",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const config = { ...CONFIG, bufferBytes: 64 * 1024 }
          const acceptor = yield* Resume.makeAcceptor({ config })
          const { dialer, accepted, pair } = yield* link(acceptor, config)
          yield* pair.a.reset
          yield* eventually(() => dialer.status() === "suspended", "suspended")
          const reading = yield* Effect.forkChild(accepted.read)
          yield* dialer.write([pattern(64 * 1024, 6)])
          const blocked = yield* Effect.forkChild(dialer.write([pattern(10, 7)]))
          yield* settle()
          assert.isUndefined(blocked.pollUnsafe(), "a write beyond the buffer waits")
          assert.isUndefined(reading.pollUnsafe(), "a read waits")
          assert.strictEqual(dialer.stats().unacked, 64 * 1024)
          yield* TestClock.adjust(29_000)
          yield* settle()
          assert.isUndefined(blocked.pollUnsafe())
          assert.strictEqual(dialer.status(), "suspended")
          yield* reconnect(acceptor, dialer)
          yield* Fiber.join(blocked)
          const first = yield* Fiber.join(reading)
          assert.ok(first !== null && first.length > 0)
        })
      ),
    TIMEOUT
  )

  it.effect(
    "cut while the buffer is full (the reader stopped): the resume replays the whole buffer",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const config = { ...CONFIG, bufferBytes: 64 * 1024 }
          const acceptor = yield* Resume.makeAcceptor({ config })
          const { dialer, accepted, pair } = yield* link(acceptor, config, 8 * 1024)
          const up = pattern(256 * 1024, 8)
          const writer = yield* Effect.forkChild(writeInPieces(dialer, up, [4096]))
          yield* eventually(() => dialer.stats().unacked === 64 * 1024, "the buffer fills (nobody reads)")
          yield* settle(50)
          assert.isUndefined(writer.pollUnsafe(), "the writer waits on the full buffer")
          yield* pair.a.reset
          yield* eventually(() => accepted.status() === "suspended", "suspended")
          yield* reconnect(acceptor, dialer, 8 * 1024)
          const got = yield* readBytes(accepted, up.length)
          yield* Fiber.join(writer)
          assert.strictEqual(firstDifference(got, up), -1)
          // The acceptor had received (not delivered) bytes: they were dropped and sent again.
          assert.isAtLeast(dialer.stats().replayedBytes, 1)
        })
      ),
    TIMEOUT
  )
})

describe("Resumable transport: the replay buffer is bounded", () => {
  it.effect(
    "a reader that stops makes the writer wait once bufferBytes are unacknowledged; reading resumes it",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const config = { ...CONFIG, bufferBytes: 64 * 1024, ackEveryBytes: 16 * 1024 }
          const acceptor = yield* Resume.makeAcceptor({ config })
          const { dialer, accepted } = yield* link(acceptor, config, 4096)
          const up = pattern(1024 * 1024, 11)
          const writer = yield* Effect.forkChild(writeInPieces(dialer, up, [8192]))
          yield* eventually(() => dialer.stats().unacked === 64 * 1024, "the writer fills the buffer")
          yield* settle(200)
          assert.isUndefined(writer.pollUnsafe(), "the writer waits")
          assert.strictEqual(dialer.stats().unacked, 64 * 1024, "never beyond the bound")
          const got = yield* readBytes(accepted, up.length)
          yield* Fiber.join(writer)
          assert.strictEqual(firstDifference(got, up), -1)
        })
      ),
    TIMEOUT
  )

  it.effect(
    "a hand-driven peer that swallows DATA and sends only heartbeats of position 0: the buffer stays bounded",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const config = { ...CONFIG, bufferBytes: 64 * 1024 }
          const acceptor = yield* Resume.makeAcceptor({ config })
          const pair = yield* makePair()
          const raw = new RawDialer(64 * 1024)
          const accepting = yield* Effect.forkChild(acceptor.accept(pair.b))
          yield* raw.hello(pair.a)
          const accepted = yield* Fiber.join(accepting)
          if (accepted._tag !== "New") return assert.fail("not a new session")
          const side = accepted.transport
          // The peer reads and discards everything (so nothing backs up below the layer) and never
          // acknowledges a byte; it stays alive with heartbeats that acknowledge nothing.
          let swallowed = 0
          yield* Effect.forkChild(Effect.forever(Effect.map(pair.a.read, (chunk) => (swallowed += chunk?.length ?? 0))))
          const writer = yield* Effect.forkChild(writeInPieces(side, pattern(1024 * 1024, 13), [16_384]))
          for (let i = 0; i < 20; i++) {
            yield* pair.a.write([Uint8Array.of(RecordType.Ack, 0, 0, 0, 0, 0, 0, 0, 0)])
            yield* TestClock.adjust(1_000)
            yield* settle(50)
            assert.isAtMost(side.stats().unacked, 64 * 1024, "never beyond the bound")
          }
          assert.strictEqual(side.stats().unacked, 64 * 1024)
          assert.isUndefined(writer.pollUnsafe(), "the writer waits instead of growing the buffer")
          assert.strictEqual(side.status(), "connected", "heartbeats keep it alive")
          assert.isAtLeast(swallowed, 64 * 1024)
        })
      ),
    TIMEOUT
  )

  it.effect(
    "a hand-driven peer that sends more than the agreed buffer without waiting for ACKs: BufferOverrun",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const config = { ...CONFIG, bufferBytes: 64 * 1024 }
          const acceptor = yield* Resume.makeAcceptor({ config })
          const pair = yield* makePair({ highWaterMark: 1 << 22 })
          const raw = new RawDialer(64 * 1024)
          const accepting = yield* Effect.forkChild(acceptor.accept(pair.b))
          yield* raw.hello(pair.a)
          const accepted = yield* Fiber.join(accepting)
          if (accepted._tag !== "New") return assert.fail("not a new session")
          // Nobody reads the acceptor's transport, so nothing it receives is delivered or acknowledged.
          const record = new Uint8Array(5 + 16 * 1024)
          record[0] = RecordType.Data
          new DataView(record.buffer).setUint32(1, 16 * 1024)
          for (let i = 0; i < 5; i++) yield* pair.a.write([record])
          yield* eventually(() => accepted.transport.status() === "ended", "the session ends")
          const error = yield* accepted.transport.await
          assert.strictEqual(describeError(error), "ProtocolViolation/BufferOverrun")
        })
      ),
    TIMEOUT
  )
})

describe("Resumable transport: liveness and the window", () => {
  it.effect(
    "an idle link stays up: heartbeats keep both sides from presuming it dead",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const { dialer, accepted } = yield* link(acceptor, CONFIG)
          const r1 = yield* Effect.forkChild(dialer.read)
          const r2 = yield* Effect.forkChild(accepted.read)
          for (let i = 0; i < 60; i++) {
            yield* TestClock.adjust(500)
            yield* settle()
          }
          assert.strictEqual(dialer.status(), "connected")
          assert.strictEqual(accepted.status(), "connected")
          assert.isUndefined(r1.pollUnsafe())
          assert.isUndefined(r2.pollUnsafe())
        })
      ),
    TIMEOUT
  )

  it.effect(
    "a silent connection is given up after silenceMillis, not before",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const { dialer, pair } = yield* link(acceptor, CONFIG)
          yield* Effect.forkChild(dialer.read)
          yield* settle()
          yield* pair.blackhole("both")
          yield* TestClock.adjust(4_000)
          yield* settle()
          assert.strictEqual(dialer.status(), "connected")
          yield* TestClock.adjust(1_500)
          yield* settle()
          assert.strictEqual(dialer.status(), "suspended")
          assert.match(dialer.stats().lastLoss, /nothing received for 5000 ms/)
        })
      ),
    TIMEOUT
  )

  it.effect(
    "the window runs out: both sides fail with Expired, the acceptor answers a late resume with Expired",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const { dialer, accepted, pair } = yield* link(acceptor, CONFIG)
          // A second session, dialled by hand, so that its late resume request can be sent afterwards.
          const raw = new RawDialer()
          const rawPair = yield* makePair()
          const rawAccepting = yield* Effect.forkChild(acceptor.accept(rawPair.b))
          yield* raw.hello(rawPair.a)
          yield* Fiber.join(rawAccepting)
          const pendingRead = yield* Effect.forkChild(resumeFailure(accepted.read))
          yield* pair.a.reset
          yield* rawPair.a.reset
          yield* eventually(() => accepted.status() === "suspended" && dialer.status() === "suspended", "suspended")
          yield* TestClock.adjust(29_000)
          yield* settle()
          assert.strictEqual(accepted.status(), "suspended")
          assert.strictEqual(acceptor.stats().suspended, 2)
          yield* TestClock.adjust(2_000)
          yield* settle()
          assert.strictEqual(accepted.status(), "ended")
          assert.strictEqual(dialer.status(), "ended")
          assert.strictEqual(describeError(yield* Fiber.join(pendingRead)), "Expired")
          assert.strictEqual(describeError(yield* resumeFailure(dialer.write([Uint8Array.of(1)]))), "Expired")
          assert.strictEqual(acceptor.stats().sessions, 0)
          // A dialler that comes back late hears why.
          const late = yield* makePair()
          yield* Effect.forkChild(Effect.exit(acceptor.accept(late.b)))
          yield* late.a.write([raw.request(1, 0)])
          const { message } = yield* readMessage(late.a, ["Refused"])
          assert.deepStrictEqual(message, { _tag: "Refused", reason: "Expired" })
          assert.strictEqual(acceptor.stats().refused.Expired, 1)
        })
      ),
    TIMEOUT
  )
})

describe("Resumable transport: ending for good", () => {
  it.effect(
    "close flushes the buffer and END: the peer reads every byte, then end of input; the ticket is gone",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const { dialer, accepted } = yield* link(acceptor, CONFIG)
          const up = pattern(100_000, 14)
          yield* dialer.write([up])
          yield* dialer.close
          assert.strictEqual(firstDifference(yield* readToEnd(accepted, up.length), up), -1)
          assert.strictEqual(dialer.status(), "ended")
          yield* accepted.close
          yield* eventually(() => acceptor.stats().sessions === 0, "the registry forgets the closed session")
        })
      ),
    TIMEOUT
  )

  it.effect(
    "reset sends ABORT: the peer fails at once with Aborted instead of waiting out its window",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const { dialer, accepted } = yield* link(acceptor, CONFIG)
          const pendingRead = yield* Effect.forkChild(resumeFailure(accepted.read))
          yield* dialer.reset
          assert.strictEqual(describeError(yield* Fiber.join(pendingRead)), "Aborted")
          assert.strictEqual(accepted.status(), "ended")
        })
      ),
    TIMEOUT
  )

  it.effect(
    "a record that breaks the accounting (ACK beyond sent) ends the session with ProtocolViolation and ABORT",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const pair = yield* makePair()
          const raw = new RawDialer()
          const accepting = yield* Effect.forkChild(acceptor.accept(pair.b))
          yield* raw.hello(pair.a)
          const accepted = yield* Fiber.join(accepting)
          if (accepted._tag !== "New") return assert.fail("not new")
          const reading = yield* Effect.forkChild(resumeFailure(accepted.transport.read))
          yield* pair.a.write([Uint8Array.of(RecordType.Ack, 0, 0, 0, 0, 0, 0, 0, 9)])
          assert.strictEqual(describeError(yield* Fiber.join(reading)), "ProtocolViolation/AckBeyondSent")
          const abort = yield* pair.a.read
          assert.deepStrictEqual(Array.from(abort!), [RecordType.Abort, 1])
        })
      ),
    TIMEOUT
  )
})
