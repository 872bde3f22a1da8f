/**
 * Shared helpers of the session reliability suite: session pairs over the in-memory transport, a raw
 * yamux peer (frames written with `Frame.ts`, the session's output decoded with the `Decoder`),
 * deterministic payloads, typed-failure extraction and bounded polling.
 *
 * Every loop here is bounded so a broken session fails a test instead of hanging it.
 */
import { assert } from "@effect/vitest"
import { Effect, Exit, Fiber, type Scope } from "effect"
import { TestClock } from "effect/testing"
import type { MuxStream } from "../../../src/internal/session/Stream.ts"
import { Flags, FrameType } from "../../../src/protocol/Constants.ts"
import { Decoder, FrameError } from "../../../src/protocol/Decoder.ts"
import { encodeFrame, type Frame, ping } from "../../../src/protocol/Frame.ts"
import type { SessionConfig } from "../../../src/session/Config.ts"
import type { MuxError, MuxErrorReason } from "../../../src/session/MuxError.ts"
import * as Session from "../../../src/session/Session.ts"
import { type MemoryPair, makePair } from "../../../src/transport/Memory.ts"
import type { Transport, TransportError } from "../../../src/transport/Transport.ts"

/** Session stats with nothing open, queued, buffered or waiting. */
export const emptyStats = {
  streams: 0,
  acceptBacklog: 0,
  unackedOpens: 0,
  bufferedBytes: 0,
  pendingPings: 0,
  waiters: 0
} as const

/** The counters of {@link emptyStats} from a session's stats (other fields ignored). */
export const counters = (session: Session.Session) => {
  const s = session.stats()
  return {
    streams: s.streams,
    acceptBacklog: s.acceptBacklog,
    unackedOpens: s.unackedOpens,
    bufferedBytes: s.bufferedBytes,
    pendingPings: s.pendingPings,
    waiters: s.waiters
  }
}

/** Asserts a session holds nothing: no stream, backlog, un-ACKed open, buffered byte, ping or waiter. */
export const assertIdle = (session: Session.Session, what = "session"): void =>
  assert.deepStrictEqual(counters(session), emptyStats, `${what} holds nothing`)

/** A reason tag of {@link MuxError}. */
export type ReasonTag = MuxErrorReason["_tag"]

/** A client and a server session over one in-memory pair. */
export interface SessionPair {
  readonly pair: MemoryPair
  readonly client: Session.Session
  readonly server: Session.Session
  /** Lifecycle events of each side, when `recordEvents` was set. */
  readonly events: { readonly client: Array<Session.SessionEvent>; readonly server: Array<Session.SessionEvent> }
}

/**
 * The flood budgets lifted, for stress tests that open, reset and ping far faster than any peer
 * would on purpose (they test bookkeeping, not abuse; the budgets have their own tests).
 */
export const unbudgeted: Partial<SessionConfig> = {
  maxPingsPerSecond: 1_000_000_000,
  maxRefusedSynsPerSecond: 1_000_000_000,
  maxResetsPerSecond: 1_000_000_000,
  maxWindowUpdatesPerSecond: 1_000_000_000
}

/** Options of {@link sessionPair}. */
export interface SessionPairOptions {
  readonly highWaterMark?: number
  readonly config?: Partial<SessionConfig>
  readonly clientConfig?: Partial<SessionConfig>
  readonly serverConfig?: Partial<SessionConfig>
  readonly recordEvents?: boolean
}

/** Starts a client session on `pair.a` and a server session on `pair.b`, both tied to the scope. */
export const sessionPair = (options: SessionPairOptions = {}): Effect.Effect<SessionPair, never, Scope.Scope> =>
  Effect.gen(function* () {
    const pair = yield* makePair(options.highWaterMark === undefined ? {} : { highWaterMark: options.highWaterMark })
    const events = { client: [] as Array<Session.SessionEvent>, server: [] as Array<Session.SessionEvent> }
    const record = options.recordEvents === true
    const client = yield* Session.make(pair.a, {
      client: true,
      config: { ...options.config, ...options.clientConfig },
      ...(record ? { onEvent: (e: Session.SessionEvent) => events.client.push(e) } : {})
    })
    const server = yield* Session.make(pair.b, {
      client: false,
      config: { ...options.config, ...options.serverConfig },
      ...(record ? { onEvent: (e: Session.SessionEvent) => events.server.push(e) } : {})
    })
    yield* abortOnExit(client)
    yield* abortOnExit(server)
    return { pair, client, server, events }
  }).pipe(Effect.orDie)

/**
 * Aborts `session` when the scope closes, before the session's own finalizer runs. The session's
 * finalizer is a graceful close that waits for open streams up to the drain timeout, which under the
 * TestClock never elapses on its own; tests that want the graceful path call `close` themselves.
 */
export const abortOnExit = (session: Session.Session): Effect.Effect<void, never, Scope.Scope> =>
  Effect.addFinalizer(() => session.abort)

/** `n` deterministic bytes (xorshift32 from `seed`), so a failure reproduces. */
export const payload = (n: number, seed: number): Uint8Array => {
  let state = seed >>> 0 || 0x9e3779b9
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    state ^= state << 13
    state >>>= 0
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    out[i] = state
  }
  return out
}

/** A seeded PRNG returning integers in [0, 2^32) (shared with the transport tests). */
export { rng } from "../../transport/helpers.ts"

/** Index of the first differing byte, or -1 when equal (lengths included). */
export const firstDifference = (a: Uint8Array, b: Uint8Array): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return a.length === b.length ? -1 : n
}

/** Asserts two byte arrays are equal, reporting the first difference instead of dumping them. */
export const assertBytes = (actual: Uint8Array, expected: Uint8Array, what: string): void => {
  const at = firstDifference(actual, expected)
  assert.strictEqual(at, -1, `${what}: ${actual.length} vs ${expected.length} bytes, first difference at ${at}`)
}

/** Writes `bytes` in pieces of `piece` bytes. */
export const writeAll = (stream: MuxStream, bytes: Uint8Array, piece = 64 * 1024): Effect.Effect<void, MuxError> =>
  Effect.gen(function* () {
    for (let o = 0; o < bytes.length; o += piece) yield* stream.write([bytes.subarray(o, o + piece)])
  })

/** Echoes every byte back until the peer's FIN, then sends FIN. */
export const echo = (stream: MuxStream, maxBytes = 1 << 30): Effect.Effect<number, MuxError> =>
  Effect.gen(function* () {
    let total = 0
    while (total <= maxBytes) {
      const chunk = yield* stream.read
      if (chunk === null) break
      total += chunk.length
      yield* stream.write([chunk])
    }
    yield* stream.closeWrite
    return total
  })

/** The typed failure of `effect` (a defect or success fails the test). */
export const failureOf = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<E> =>
  Effect.flatMap(Effect.exit(effect), (exit) => {
    if (Exit.isFailure(exit)) {
      const failures = exit.cause.reasons.filter((r) => r._tag === "Fail")
      if (failures.length > 0) return Effect.succeed((failures[0] as { readonly error: E }).error)
      return Effect.die(new Error(`expected a typed failure, got ${String(exit.cause)}`))
    }
    return Effect.die(new Error("expected a failure, got a success"))
  })

/** The `reason._tag` of the {@link MuxError} `effect` fails with. */
export const reasonOf = <A>(effect: Effect.Effect<A, MuxError>): Effect.Effect<ReasonTag> =>
  Effect.map(failureOf(effect), (error) => error.reason._tag)

/** The reason tag a forked fiber failed with. */
export const fiberReason = <A>(fiber: Fiber.Fiber<A, MuxError>): Effect.Effect<ReasonTag> => reasonOf(Fiber.join(fiber))

/** Lets other fibers and the memory transport's microtask wake-ups run (`n` scheduler turns). */
export const settle = (n = 10): Effect.Effect<void> =>
  Effect.gen(function* () {
    for (let i = 0; i < n; i++) yield* Effect.yieldNow
  })

/**
 * Polls `condition` between scheduler turns, at most `turns` times; fails the test with `what` when
 * it never holds. Works under the TestClock (no timers) and live.
 */
export const eventually = (condition: () => boolean, what: string, turns = 10_000): Effect.Effect<void> =>
  Effect.gen(function* () {
    for (let i = 0; i < turns; i++) {
      if (condition()) return
      yield* Effect.yieldNow
    }
    return yield* Effect.die(new Error(`never happened: ${what}`))
  })

/** Whether a forked fiber has not completed yet. */
export const isRunning = <A, E>(fiber: Fiber.Fiber<A, E>): boolean => fiber.pollUnsafe() === undefined

/**
 * Advances the TestClock by `total` ms in steps of `step` ms, settling after each step so frames in
 * flight through the memory pair (woken on microtasks, which the TestClock does not track) arrive
 * before the clock moves on.
 */
export const advance = (total: number, step = 1_000): Effect.Effect<void> =>
  Effect.gen(function* () {
    let left = total
    while (left > 0) {
      const d = Math.min(step, left)
      yield* TestClock.adjust(d)
      yield* settle()
      left -= d
    }
  })

/**
 * A hand-driven yamux peer on one end of a memory pair: writes frames encoded with `Frame.ts`,
 * decodes what the session sends with the `Decoder`.
 */
export class RawPeer {
  readonly transport: Transport
  readonly decoder = new Decoder()
  readonly pending: Array<Frame> = []
  private nextOpaque = 0x7000_0000

  constructor(transport: Transport) {
    this.transport = transport
  }

  /** Writes frames, one transport write. */
  send(...frames: ReadonlyArray<Frame>): Effect.Effect<void, TransportError> {
    return this.transport.write(frames.map(encodeFrame))
  }

  /** The next frame from the session (`undefined` at EOF). */
  get next(): Effect.Effect<Frame | undefined, TransportError> {
    return Effect.gen({ self: this }, function* () {
      for (let guard = 0; guard < 1_000_000; guard++) {
        const queued = this.pending.shift()
        if (queued !== undefined) return queued
        const frame = this.decoder.next()
        if (frame instanceof FrameError) return yield* Effect.die(new Error(`session sent bad bytes: ${frame.message}`))
        if (frame !== undefined) return copy(frame)
        const chunk = yield* this.transport.read
        if (chunk === null) return undefined
        this.decoder.push(chunk)
      }
      return yield* Effect.die(new Error("RawPeer.next: no frame after a million reads"))
    })
  }

  /**
   * A barrier: sends a PING and returns every frame the session sent before its pong. Control frames
   * leave in order, so whatever the session queued before it processed the ping is included.
   * Pings from the session are answered and not returned.
   */
  get sync(): Effect.Effect<Array<Frame>, TransportError> {
    return Effect.gen({ self: this }, function* () {
      const opaque = this.nextOpaque++
      yield* this.send(ping(Flags.SYN, opaque))
      const seen: Array<Frame> = []
      for (let guard = 0; guard < 1_000_000; guard++) {
        const frame = yield* this.next
        if (frame === undefined) return yield* Effect.die(new Error("RawPeer.sync: EOF before the pong"))
        if (frame.type === FrameType.Ping && (frame.flags & Flags.ACK) !== 0 && frame.length === opaque) return seen
        if (frame.type === FrameType.Ping && (frame.flags & Flags.SYN) !== 0) {
          yield* this.send(ping(Flags.ACK, frame.length))
          continue
        }
        seen.push(frame)
      }
      return yield* Effect.die(new Error("RawPeer.sync: no pong"))
    })
  }

  /** Reads frames until one matches, returning it and queueing nothing (the others are dropped). */
  until(match: (frame: Frame) => boolean, what: string): Effect.Effect<Frame, TransportError> {
    return Effect.gen({ self: this }, function* () {
      for (let guard = 0; guard < 1_000_000; guard++) {
        const frame = yield* this.next
        if (frame === undefined) return yield* Effect.die(new Error(`RawPeer.until: EOF before ${what}`))
        if (match(frame)) return frame
      }
      return yield* Effect.die(new Error(`RawPeer.until: never saw ${what}`))
    })
  }
}

/** Payload views alias the decoder's input; copy so frames stay valid. */
const copy = (frame: Frame): Frame =>
  frame.payload.length === 0 ? frame : { ...frame, payload: frame.payload.slice() }

/** Frame description for assertion messages. */
export const describeFrame = (f: Frame): string => `type=${f.type} flags=${f.flags} id=${f.streamId} length=${f.length}`

/** Runs `effect` with a live-clock deadline, failing the test with `what` if it takes longer. */
export const within = <A, E, R>(millis: number, what: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  effect.pipe(
    Effect.timeoutOrElse({
      duration: millis,
      orElse: () => Effect.die(new Error(`${what}: not done within ${millis} ms`))
    })
  )
