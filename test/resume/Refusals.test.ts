/**
 * Every refusal of a resume gets its defined outcome — a `Refused` message with its reason, the
 * connection closed, the dialler's session over at once where it cannot continue — and a healthy
 * session on the same acceptor carries on untouched throughout.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { MAX_FAILED_PROOFS } from "../../src/internal/resume/Handshake.ts"
import { encodeMessage } from "../../src/internal/resume/Wire.ts"
import * as Resume from "../../src/resume/Resume.ts"
import { makePair } from "../../src/transport/Memory.ts"
import { TransportError } from "../../src/transport/Transport.ts"
import {
  describe as describeError,
  eventually,
  firstDifference,
  link,
  pattern,
  RawDialer,
  readBytes,
  readMessage,
  reconnect,
  resumeFailure,
  settle
} from "./harness.ts"

const TIMEOUT = 20_000
const CONFIG: Partial<Resume.ResumeConfig> = { heartbeatMillis: 1_000, silenceMillis: 5_000, windowMillis: 30_000 }

/** A healthy session next to the one under attack: it must keep exchanging bytes. */
const healthy = (acceptor: Resume.Acceptor) =>
  Effect.gen(function* () {
    const { dialer, accepted } = yield* link(acceptor, CONFIG)
    let round = 0
    return {
      check: Effect.gen(function* () {
        round++
        const bytes = pattern(20_000, round)
        yield* dialer.write([bytes])
        assert.strictEqual(firstDifference(yield* readBytes(accepted, bytes.length), bytes), -1, "healthy session")
        assert.strictEqual(dialer.status(), "connected")
        assert.strictEqual(accepted.status(), "connected")
      })
    }
  })

/** A raw session: a hand-driven dialler whose acceptor-side transport is returned. */
const rawSession = (acceptor: Resume.Acceptor) =>
  Effect.gen(function* () {
    const pair = yield* makePair()
    const raw = new RawDialer()
    const accepting = yield* Effect.forkChild(acceptor.accept(pair.b))
    yield* raw.hello(pair.a)
    const accepted = yield* Fiber.join(accepting)
    if (accepted._tag !== "New") return yield* Effect.die("not a new session")
    return { raw, pair, accepted: accepted.transport }
  })

/** Sends `request` on a fresh connection; returns the acceptor's answer and the accept's exit. */
const attempt = (acceptor: Resume.Acceptor, request: Uint8Array) =>
  Effect.gen(function* () {
    const pair = yield* makePair()
    const accepting = yield* Effect.forkChild(Effect.exit(acceptor.accept(pair.b)))
    yield* pair.a.write([request])
    const { message } = yield* readMessage(pair.a, ["ResumeAccept", "Refused"])
    const exit = yield* Fiber.join(accepting)
    return { message, exit, pair }
  })

describe("Resume refusals: each has its outcome, and nobody else is disturbed", () => {
  it.effect(
    "server restarted (state gone): UnknownTicket; the dialler's session ends at once",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const before = yield* Resume.makeAcceptor({ config: CONFIG })
          const { dialer, pair } = yield* link(before, CONFIG)
          const pendingRead = yield* Effect.forkChild(resumeFailure(dialer.read))
          yield* pair.a.reset
          yield* eventually(() => dialer.status() === "suspended", "suspended")
          const restarted = yield* Resume.makeAcceptor({ config: CONFIG })
          const other = yield* healthy(restarted)
          const error = yield* resumeFailure(Effect.asVoid(reconnect(restarted, dialer)))
          assert.strictEqual(describeError(error), "Refused/UnknownTicket")
          assert.strictEqual(dialer.status(), "ended")
          assert.strictEqual(describeError(yield* Fiber.join(pendingRead)), "Refused/UnknownTicket")
          assert.strictEqual(restarted.stats().refused.UnknownTicket, 1)
          yield* other.check
        })
      ),
    TIMEOUT
  )

  it.effect(
    "a forged proof: BadProof, counted, the session still resumable by its owner",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const other = yield* healthy(acceptor)
          const { raw, accepted } = yield* rawSession(acceptor)
          const forged = yield* attempt(acceptor, raw.request(1, 0, true))
          assert.deepStrictEqual(forged.message, { _tag: "Refused", reason: "BadProof" })
          assert.strictEqual(forged.exit._tag, "Failure")
          assert.strictEqual(acceptor.stats().refused.BadProof, 1)
          assert.notStrictEqual(accepted.status(), "ended")
          yield* other.check
          const genuine = yield* attempt(acceptor, raw.request(1, 0))
          assert.strictEqual(genuine.message._tag, "ResumeAccept")
          yield* other.check
        })
      ),
    TIMEOUT
  )

  it.effect(
    "a ticket from another session (its id with a proof keyed by a different secret): BadProof",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const other = yield* healthy(acceptor)
          const mine = yield* rawSession(acceptor)
          const theirs = yield* rawSession(acceptor)
          // Session A's ticket, session B's secret.
          const mixed = new RawDialer()
          mixed.ticket = mine.raw.ticket
          mixed.secret = theirs.raw.secret
          const result = yield* attempt(acceptor, mixed.request(1, 0))
          assert.deepStrictEqual(result.message, { _tag: "Refused", reason: "BadProof" })
          assert.notStrictEqual(mine.accepted.status(), "ended")
          assert.notStrictEqual(theirs.accepted.status(), "ended")
          yield* other.check
        })
      ),
    TIMEOUT
  )

  it.effect(
    "a recorded request played again: Replayed, and the session is untouched",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const other = yield* healthy(acceptor)
          const { raw, accepted } = yield* rawSession(acceptor)
          const request = raw.request(1, 0)
          const first = yield* attempt(acceptor, request)
          assert.strictEqual(first.message._tag, "ResumeAccept")
          const again = yield* attempt(acceptor, request)
          assert.deepStrictEqual(again.message, { _tag: "Refused", reason: "Replayed" })
          assert.strictEqual(acceptor.stats().refused.Replayed, 1)
          assert.strictEqual(accepted.status(), "connected", "still on the genuine resumed connection")
          yield* other.check
        })
      ),
    TIMEOUT
  )

  it.effect(
    `${MAX_FAILED_PROOFS} forged proofs revoke the ticket: TooManyAttempts, that session ends (reset), others go on`,
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const other = yield* healthy(acceptor)
          const { raw, accepted } = yield* rawSession(acceptor)
          for (let i = 1; i < MAX_FAILED_PROOFS; i++) {
            const r = yield* attempt(acceptor, raw.request(i, 0, true))
            assert.deepStrictEqual(r.message, { _tag: "Refused", reason: "BadProof" })
          }
          const last = yield* attempt(acceptor, raw.request(99, 0, true))
          assert.deepStrictEqual(last.message, { _tag: "Refused", reason: "TooManyAttempts" })
          assert.strictEqual(accepted.status(), "ended")
          assert.strictEqual(describeError(yield* accepted.await), "Refused/TooManyAttempts")
          const late = yield* attempt(acceptor, raw.request(100, 0))
          assert.deepStrictEqual(late.message, { _tag: "Refused", reason: "UnknownTicket" })
          yield* other.check
        })
      ),
    TIMEOUT
  )

  it.effect(
    "a position the buffer cannot serve (beyond what was sent): PositionIncompatible, that session ends",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const other = yield* healthy(acceptor)
          const { raw, accepted } = yield* rawSession(acceptor)
          yield* accepted.write([pattern(1000, 1)])
          // The genuine dialler's proof, for bytes the acceptor never sent.
          const result = yield* attempt(acceptor, raw.request(1, 5000))
          assert.deepStrictEqual(result.message, { _tag: "Refused", reason: "PositionIncompatible" })
          assert.strictEqual(describeError(yield* accepted.await), "Refused/PositionIncompatible")
          yield* other.check
        })
      ),
    TIMEOUT
  )

  it.effect(
    "buffer positions incompatible on the dialler's side (the acceptor claims bytes never sent): the session ends",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          // A hand-driven acceptor: it answers a genuine request with a valid-looking accept for
          // bytes the dialler never wrote. Its proof cannot verify (no secret), so the dialler stops.
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const { dialer, pair } = yield* link(acceptor, CONFIG)
          yield* pair.a.reset
          yield* eventually(() => dialer.status() === "suspended", "suspended")
          const fake = yield* makePair()
          yield* Effect.forkChild(
            Effect.gen(function* () {
              yield* readMessage(fake.b, ["ResumeRequest"])
              yield* fake.b.write([
                encodeMessage({ _tag: "ResumeAccept", received: 1 << 20, proof: new Uint8Array(32) })
              ])
            })
          )
          const error = yield* resumeFailure(Effect.asVoid(dialer.resume(fake.a)))
          assert.strictEqual(describeError(error), "PeerUnverified")
          assert.strictEqual(dialer.status(), "ended")
        })
      ),
    TIMEOUT
  )

  it.effect(
    "an unknown ticket (never issued): UnknownTicket, nothing else happens",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const other = yield* healthy(acceptor)
          const stranger = new RawDialer()
          stranger.ticket = pattern(16, 77)
          const result = yield* attempt(acceptor, stranger.request(1, 0))
          assert.deepStrictEqual(result.message, { _tag: "Refused", reason: "UnknownTicket" })
          assert.strictEqual(acceptor.stats().sessions, 1)
          yield* other.check
        })
      ),
    TIMEOUT
  )

  it.effect(
    "garbage where a resume handshake belongs: a handshake error, no session, no message",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const other = yield* healthy(acceptor)
          const pair = yield* makePair()
          const accepting = yield* Effect.forkChild(Effect.exit(acceptor.accept(pair.b)))
          yield* pair.a.write([Uint8Array.of(0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0)])
          const exit = yield* Fiber.join(accepting)
          assert.strictEqual(exit._tag, "Failure")
          assert.strictEqual(acceptor.stats().sessions, 1)
          yield* other.check
        })
      ),
    TIMEOUT
  )
})

describe("keepResumed: the dialler's supervisor", () => {
  it.effect(
    "each loss is followed by a redial and a resume; failed redials are retried",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const acceptor = yield* Resume.makeAcceptor({ config: CONFIG })
          const { dialer, accepted, pair } = yield* link(acceptor, CONFIG)
          const pairs = [pair]
          let dials = 0
          const redial = Effect.gen(function* () {
            dials++
            // Every other dial fails outright (the server is briefly unreachable).
            if (dials % 2 === 1) {
              return yield* new TransportError({ operation: "connect", message: "refused" })
            }
            const next = yield* makePair()
            pairs.push(next)
            yield* Effect.forkChild(Effect.exit(acceptor.accept(next.b)))
            return next.a
          })
          const failures: Array<string> = []
          yield* Effect.forkChild(
            Resume.keepResumed(dialer, redial, {
              onAttemptFailed: (error) => Effect.sync(() => failures.push(error.message))
            })
          )
          for (let cut = 0; cut < 3; cut++) {
            yield* pairs[pairs.length - 1]!.a.reset
            // The retry after a failed dial waits its backoff (50 ms): time moves in small steps.
            for (let i = 0; i < 100 && dialer.stats().resumes < cut + 1; i++) {
              yield* TestClock.adjust(10)
              yield* settle()
            }
            assert.strictEqual(dialer.stats().resumes, cut + 1, `resume ${cut + 1}`)
            const bytes = pattern(10_000, cut)
            yield* dialer.write([bytes])
            assert.strictEqual(firstDifference(yield* readBytes(accepted, bytes.length), bytes), -1)
          }
          assert.strictEqual(failures.length, 3, "one failed dial per loss, retried")
        })
      ),
    TIMEOUT
  )
})
