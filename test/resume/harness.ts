/**
 * Helpers for the resumable-transport tests: a dialler and an acceptor joined by in-memory pairs
 * (a fresh pair per connection), bounded readers and writers, and a hand-driven dialler that
 * speaks the handshake itself (to send forged, replayed or foreign requests).
 *
 * Every loop is bounded by a byte budget or an iteration cap, so a broken layer fails a test
 * instead of hanging it.
 */
import { assert } from "@effect/vitest"
import { Effect, Fiber, type Scope } from "effect"
import { acceptHello } from "../../src/internal/resume/Handshake.ts"
import { type KeyShare, makeKeyShare, resumeProof } from "../../src/internal/resume/Keys.ts"
import {
  encodeMessage,
  FLAG_RESUME,
  type Message,
  parseMessage,
  type ServerHello
} from "../../src/internal/resume/Wire.ts"
import * as Resume from "../../src/resume/Resume.ts"
import { ResumeError } from "../../src/resume/ResumeError.ts"
import { type MemoryPair, makePair } from "../../src/transport/Memory.ts"
import type { Transport, TransportError } from "../../src/transport/Transport.ts"

/** A linked dialler and acceptor-side transport over a first memory pair. */
export interface Linked {
  readonly dialer: Resume.DialerTransport
  readonly accepted: Resume.ResumableTransport
  readonly pair: MemoryPair
}

/** Dials and accepts one resumable session over a fresh memory pair. */
export const link = (
  acceptor: Resume.Acceptor,
  config?: Partial<Resume.ResumeConfig>,
  highWaterMark?: number
): Effect.Effect<Linked, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const pair = yield* makePair(highWaterMark === undefined ? {} : { highWaterMark })
    const accepting = yield* Effect.forkChild(acceptor.accept(pair.b))
    const dialed = yield* Resume.dial(pair.a, config === undefined ? {} : { config })
    const accepted = yield* Fiber.join(accepting)
    assert.strictEqual(dialed._tag, "Resumable")
    assert.strictEqual(accepted._tag, "New")
    if (dialed._tag !== "Resumable" || accepted._tag !== "New") return yield* Effect.die("not resumable")
    return { dialer: dialed.transport, accepted: accepted.transport, pair }
  })

/** Resumes `dialer` over a fresh pair; returns the pair and what the acceptor made of it. */
export const reconnect = (
  acceptor: Resume.Acceptor,
  dialer: Resume.DialerTransport,
  highWaterMark?: number
): Effect.Effect<{ readonly pair: MemoryPair; readonly accepted: Resume.Accepted }, TransportError, Scope.Scope> =>
  Effect.gen(function* () {
    const pair = yield* makePair(highWaterMark === undefined ? {} : { highWaterMark })
    const accepting = yield* Effect.forkChild(Effect.exit(acceptor.accept(pair.b)))
    const resumed = yield* Effect.exit(dialer.resume(pair.a))
    const accepted = yield* Fiber.join(accepting)
    if (resumed._tag === "Failure") return yield* Effect.failCause(resumed.cause)
    if (accepted._tag === "Failure") return yield* Effect.failCause(accepted.cause)
    return { pair, accepted: accepted.value }
  })

/** Reads until `n` bytes or end of input (bounded by `n`). */
export const readBytes = (transport: Transport, n: number): Effect.Effect<Uint8Array, TransportError> =>
  Effect.gen(function* () {
    const out = new Uint8Array(n)
    let at = 0
    while (at < n) {
      const chunk = yield* transport.read
      if (chunk === null) return out.subarray(0, at)
      assert.isAtMost(at + chunk.length, n, "more bytes than were sent")
      out.set(chunk, at)
      at += chunk.length
    }
    return out
  })

/** Reads to end of input, at most `limit` bytes. */
export const readToEnd = (transport: Transport, limit: number): Effect.Effect<Uint8Array, TransportError> =>
  Effect.gen(function* () {
    const chunks: Array<Uint8Array> = []
    let total = 0
    while (true) {
      const chunk = yield* transport.read
      if (chunk === null) break
      total += chunk.length
      assert.isAtMost(total, limit, "more bytes than were sent")
      chunks.push(chunk)
    }
    const out = new Uint8Array(total)
    let at = 0
    for (const c of chunks) {
      out.set(c, at)
      at += c.length
    }
    return out
  })

/** Writes `bytes` in pieces of the given sizes (cycled). */
export const writeInPieces = (
  transport: Transport,
  bytes: Uint8Array,
  sizes: ReadonlyArray<number>
): Effect.Effect<void, TransportError> =>
  Effect.gen(function* () {
    let at = 0
    for (let i = 0; at < bytes.length; i++) {
      const n = Math.max(1, sizes[i % sizes.length]!)
      yield* transport.write([bytes.subarray(at, Math.min(bytes.length, at + n))])
      at += n
    }
  })

/** Lets microtask-driven work (memory pairs, signals) run. */
export const settle = (n = 20): Effect.Effect<void> =>
  Effect.gen(function* () {
    for (let i = 0; i < n; i++) yield* Effect.yieldNow
  })

/** Polls `condition` between scheduler turns, at most `turns` times. */
export const eventually = (condition: () => boolean, what: string, turns = 20_000): Effect.Effect<void> =>
  Effect.gen(function* () {
    for (let i = 0; i < turns; i++) {
      if (condition()) return
      yield* Effect.yieldNow
    }
    return yield* Effect.die(new Error(`never happened: ${what}`))
  })

/** The resume error behind a failed effect (a success or another failure fails the test). */
export const resumeFailure = <A, R>(
  effect: Effect.Effect<A, TransportError, R>
): Effect.Effect<ResumeError, never, R> =>
  Effect.matchEffect(effect, {
    onSuccess: () => Effect.die(new Error("succeeded, expected a resume error")),
    onFailure: (error) => {
      const cause = Resume.resumeErrorOf(error)
      return cause === undefined ? Effect.die(new Error(`not a resume error: ${error.message}`)) : Effect.succeed(cause)
    }
  })

/** The tag (and kind or reason) of a resume error, e.g. `Refused/BadProof`. */
export const describe = (error: ResumeError): string => {
  const r = error.reason
  if (r._tag === "Refused") return `Refused/${r.reason}`
  if (r._tag === "Malformed" || r._tag === "ProtocolViolation") return `${r._tag}/${r.kind}`
  return r._tag
}

/** A dialler speaking the handshake by hand: it keeps the secret, so tests can forge and replay. */
export class RawDialer {
  share: KeyShare = makeKeyShare()
  ticket: Uint8Array = new Uint8Array(16)
  secret: Uint8Array = new Uint8Array(32)
  readonly bufferBytes: number
  constructor(bufferBytes = 4 * 1024 * 1024) {
    this.bufferBytes = bufferBytes
  }

  /** Opens a session over `transport`; returns the transport positioned at the data phase. */
  hello(transport: Transport): Effect.Effect<void, unknown> {
    return Effect.gen({ self: this }, function* () {
      const hello = encodeMessage({
        _tag: "ClientHello",
        flags: FLAG_RESUME,
        bufferBytes: this.bufferBytes,
        key: this.share.publicKey
      })
      yield* transport.write([hello])
      const { message, bytes } = yield* readMessage(transport, ["ServerHello"])
      const outcome = acceptHello(this.share, hello, this.bufferBytes, message as ServerHello, bytes, {
        token: new Uint8Array(0),
        binding: new Uint8Array(0)
      })
      if (outcome._tag !== "Granted") return yield* Effect.die(`hello not granted: ${outcome._tag}`)
      this.ticket = outcome.ticket
      this.secret = outcome.secret
    })
  }

  /** A resume request with a valid proof (unless `forge`). */
  request(attempt: number, received: number, forge = false): Uint8Array {
    return encodeMessage({
      _tag: "ResumeRequest",
      ticket: this.ticket,
      attempt,
      received,
      proof: forge
        ? new Uint8Array(32).fill(7)
        : resumeProof(this.secret, this.ticket, attempt, received, new Uint8Array(0))
    })
  }
}

/** Reads exactly one handshake message (bounded: a message is at most 100 bytes). */
export const readMessage = (
  transport: Transport,
  expected: ReadonlyArray<Message["_tag"]>
): Effect.Effect<{ readonly message: Message; readonly bytes: Uint8Array }, unknown> =>
  Effect.gen(function* () {
    let buffered = new Uint8Array(0)
    for (let i = 0; i < 200; i++) {
      const parsed = parseMessage(buffered, expected)
      if (parsed instanceof ResumeError) return yield* Effect.die(parsed)
      if (parsed !== undefined) return { message: parsed.message, bytes: buffered.slice(0, parsed.consumed) }
      const chunk = yield* transport.read
      if (chunk === null) return yield* Effect.die("closed during a handshake message")
      const joined = new Uint8Array(buffered.length + chunk.length)
      joined.set(buffered, 0)
      joined.set(chunk, buffered.length)
      buffered = joined
    }
    return yield* Effect.die("no message within 200 reads")
  })

/** `n` deterministic pseudo-random bytes. */
export const pattern = (n: number, seed: number): Uint8Array => {
  let state = seed >>> 0 || 0x9e3779b9
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    state ^= state << 13
    state >>>= 0
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    out[i] = state & 0xff
  }
  return out
}

/** Index of the first differing byte, or -1. */
export const firstDifference = (a: Uint8Array, b: Uint8Array): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return a.length === b.length ? -1 : n
}
