/**
 * A real {@link Session} on one end of an in-memory pair, and a raw yamux peer on the other end that
 * the test drives frame by frame: it sends whatever bytes it likes (valid frames, hostile headers,
 * one byte at a time) and decodes what the session writes back.
 *
 * Invariants:
 * - Every wait is bounded (`timeoutMillis`, default 2 s of real time, also under `TestClock`: the
 *   deadline runs on the live clock) and fails with a {@link RawPeerTimeout} that lists what arrived,
 *   so a broken session fails a test instead of hanging it.
 * - A background fiber reads the raw side eagerly (unless paused) and decodes every frame the session
 *   writes; frames are kept in arrival order in `received` and consumed through a cursor by
 *   `nextFrame`/`expectFrame`/`sync`.
 * - `sync` is a barrier: a PING whose pong proves the session has processed everything sent before it
 *   (control frames it queued in response come before the pong, since the control lane is FIFO).
 * - The session's keepalive is off unless the test configures it, so the raw side sees only frames the
 *   test provokes. On scope exit the session is aborted (or closed, with `onExit: "close"`) and the
 *   raw side reset, so no test waits for a drain deadline.
 */
import { Clock, Data, Effect, Fiber, type Scope } from "effect"
import { Signal } from "../../src/internal/session/Signal.ts"
import { Flags, FrameType, HEADER_SIZE } from "../../src/protocol/Constants.ts"
import { Decoder, FrameError } from "../../src/protocol/Decoder.ts"
import { encodeFrame, type Frame, ping } from "../../src/protocol/Frame.ts"
import type { ConfigError, SessionConfig } from "../../src/session/Config.ts"
import type { MuxError } from "../../src/session/MuxError.ts"
import * as Session from "../../src/session/Session.ts"
import { type MemoryPair, makePair } from "../../src/transport/Memory.ts"
import type { Transport, TransportError } from "../../src/transport/Transport.ts"

/** A bounded wait of the raw peer ran out. */
export class RawPeerTimeout extends Data.TaggedError("RawPeerTimeout")<{
  readonly message: string
}> {}

/** How the raw side's input ended. */
export type LinkEnd =
  /** The session closed or half-closed the link: the raw side read EOF. */
  | { readonly _tag: "Eof" }
  /** The link was reset (or the raw side's read failed). */
  | { readonly _tag: "Error"; readonly message: string }
  /** The session wrote bytes that are not valid yamux. */
  | { readonly _tag: "BadFrames"; readonly error: FrameError }

/** Fields to match a frame on; omitted fields match anything. */
export interface FrameMatch {
  readonly type?: FrameType
  readonly flags?: number
  readonly streamId?: number
  readonly length?: number
}

/** Options of {@link make}. */
export interface RawPeerOptions {
  /** The session's role; default `false` (the session listens, the raw peer dials with odd ids). */
  readonly client?: boolean
  /** Session settings; `keepaliveIntervalMillis` defaults to 0 here. */
  readonly config?: Partial<SessionConfig>
  /** Memory pair high-water mark per direction. */
  readonly highWaterMark?: number
  /** Bound on every wait, in real milliseconds (default 2000). */
  readonly timeoutMillis?: number
  /** Answer the session's pings automatically (default false). */
  readonly answerPings?: boolean
  /** What happens to the session when the test's scope ends (default "abort"). */
  readonly onExit?: "abort" | "close"
}

/** A session under test and the raw peer facing it. */
export interface RawPeer {
  readonly session: Session.Session
  readonly pair: MemoryPair
  /** The raw side of the link. */
  readonly transport: Transport
  /** Lifecycle events the session reported, in order. */
  readonly events: ReadonlyArray<Session.SessionEvent>
  /** Every frame the session wrote so far, in order. */
  readonly received: ReadonlyArray<Frame>
  /** Index in `received` of the next frame `nextFrame` returns. */
  readonly cursor: () => number
  /** How the raw side's input ended, if it has. */
  readonly end: () => LinkEnd | undefined
  /** Sends frames and byte strings in one transport write. */
  readonly send: (...items: ReadonlyArray<Frame | Uint8Array>) => Effect.Effect<void, TransportError>
  /**
   * Sends the bytes in writes of `chunkSize` bytes, each one only after the session has read the
   * previous one, so the session really sees them split.
   */
  readonly sendSplit: (bytes: Uint8Array, chunkSize?: number) => Effect.Effect<void, TransportError | RawPeerTimeout>
  /** The next frame after the cursor (waits, bounded). */
  readonly nextFrame: Effect.Effect<Frame, RawPeerTimeout>
  /** The next `n` frames after the cursor. */
  readonly nextFrames: (n: number) => Effect.Effect<Array<Frame>, RawPeerTimeout>
  /** Skips frames until one matches; fails if the link ends or the wait runs out first. */
  readonly expectFrame: (match: FrameMatch) => Effect.Effect<Frame, RawPeerTimeout>
  /**
   * Barrier: sends a PING and waits for its pong; returns the frames received before the pong (from
   * the cursor) and moves the cursor past it. Proves the session is alive and has handled every frame
   * sent before.
   */
  readonly sync: Effect.Effect<Array<Frame>, RawPeerTimeout | TransportError>
  /** Waits (bounded) until the raw side's input ends. */
  readonly closed: Effect.Effect<LinkEnd, RawPeerTimeout>
  /** Waits (bounded) for the session to end; returns its reason. */
  readonly awaitSession: Effect.Effect<MuxError, RawPeerTimeout>
  /** Waits (bounded) until `check` returns a value; re-checked whenever a frame arrives or the link ends. */
  readonly waitUntil: <A>(what: string, check: () => A | undefined) => Effect.Effect<A, RawPeerTimeout>
  /** Polls (bounded) until `check` holds, yielding between checks; for state outside the raw peer. */
  readonly poll: (what: string, check: () => boolean) => Effect.Effect<void, RawPeerTimeout>
  /** Stops reading the raw side after the read in flight (to exert backpressure on the session). */
  readonly pauseReading: () => void
  /** Resumes reading. */
  readonly resumeReading: () => void
}

/** A 12-byte header with any field values, including ones `writeHeader` cannot produce (version ≠ 0). */
export const header = (fields: {
  readonly version?: number
  readonly type: number
  readonly flags?: number
  readonly streamId?: number
  readonly length?: number
}): Uint8Array => {
  const out = new Uint8Array(HEADER_SIZE)
  const view = new DataView(out.buffer)
  view.setUint8(0, fields.version ?? 0)
  view.setUint8(1, fields.type)
  view.setUint16(2, fields.flags ?? 0)
  view.setUint32(4, fields.streamId ?? 0)
  view.setUint32(8, fields.length ?? 0)
  return out
}

/** A short description of a frame for messages. */
export const describeFrame = (f: Frame): string => {
  const type = ["DATA", "WINDOW_UPDATE", "PING", "GO_AWAY"][f.type] ?? `type${f.type}`
  const flags = (["SYN", "ACK", "FIN", "RST"] as const).filter((_, i) => (f.flags & (1 << i)) !== 0).join("|")
  return `${type}${flags ? `[${flags}]` : ""}(${f.streamId}, ${f.length})`
}

/** Whether `frame` has every field given in `match`. */
export const matches = (frame: Frame, match: FrameMatch): boolean =>
  (match.type === undefined || frame.type === match.type) &&
  (match.flags === undefined || frame.flags === match.flags) &&
  (match.streamId === undefined || frame.streamId === match.streamId) &&
  (match.length === undefined || frame.length === match.length)

/** Runs `effect` on the live clock when the fiber's clock is a TestClock (so bounds are real time). */
const onLiveClock = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withFiber((fiber) => {
    const clock = fiber.getRef(Clock.Clock) as Clock.Clock & {
      readonly withLive?: <B, E2, R2>(e: Effect.Effect<B, E2, R2>) => Effect.Effect<B, E2, R2>
    }
    return typeof clock.withLive === "function" ? clock.withLive(effect) : effect
  })

const PING_BASE = 0x7a00_0000

/** Starts a session on one end of a memory pair and returns the raw peer facing it. */
export const make = (options: RawPeerOptions = {}): Effect.Effect<RawPeer, ConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    const timeoutMillis = options.timeoutMillis ?? 2_000
    const pair = yield* makePair(options.highWaterMark === undefined ? {} : { highWaterMark: options.highWaterMark })
    const events: Array<Session.SessionEvent> = []
    const session = yield* Session.make(pair.a, {
      client: options.client ?? false,
      config: { keepaliveIntervalMillis: 0, ...options.config },
      onEvent: (event) => events.push(event)
    })
    const raw = pair.b
    const received: Array<Frame> = []
    const signal = new Signal()
    const gate = new Signal()
    const decoder = new Decoder()
    let cursor = 0
    let end: LinkEnd | undefined
    let paused = false
    let nextPing = PING_BASE

    const describeState = () => {
      const recent = received
        .slice(Math.max(cursor - 3, 0))
        .slice(0, 20)
        .map(describeFrame)
      return `cursor ${cursor} of ${received.length}; from cursor-3: [${recent.join(", ")}]; link end: ${
        end === undefined ? "open" : end._tag === "BadFrames" ? `bad frames (${end.error.message})` : end._tag
      }`
    }

    const timeoutError = (what: string) =>
      new RawPeerTimeout({ message: `no ${what} within ${timeoutMillis} ms (${describeState()})` })

    const waitUntil = <A>(what: string, check: () => A | undefined): Effect.Effect<A, RawPeerTimeout> =>
      onLiveClock(
        Effect.suspend(function loop(): Effect.Effect<A> {
          const value = check()
          return value !== undefined ? Effect.succeed(value) : Effect.flatMap(signal.wait, loop)
        }).pipe(Effect.timeoutOrElse({ duration: timeoutMillis, orElse: () => Effect.fail(timeoutError(what)) }))
      )

    const poll = (what: string, check: () => boolean): Effect.Effect<void, RawPeerTimeout> =>
      onLiveClock(
        Effect.gen(function* () {
          const deadline = Date.now() + timeoutMillis
          // Bounded by the deadline; yields so the session's fibers and the pair's microtasks run.
          while (!check()) {
            if (Date.now() > deadline) return yield* Effect.fail(timeoutError(what))
            yield* Effect.yieldNow
          }
        })
      )

    const send = (...items: ReadonlyArray<Frame | Uint8Array>): Effect.Effect<void, TransportError> =>
      raw.write(items.map((item) => (item instanceof Uint8Array ? item : encodeFrame(item))))

    const reader = Effect.gen(function* () {
      while (true) {
        if (paused) {
          yield* gate.wait
          continue
        }
        const chunk = yield* raw.read
        if (chunk === null) {
          end = { _tag: "Eof" }
          signal.notify()
          return
        }
        decoder.push(chunk)
        const pongs: Array<Uint8Array> = []
        // Bounded: each frame consumes at least one header of this chunk or an earlier one.
        for (let i = 0; i <= chunk.length / HEADER_SIZE + 1; i++) {
          const frame = decoder.next()
          if (frame === undefined) break
          if (frame instanceof FrameError) {
            end = { _tag: "BadFrames", error: frame }
            signal.notify()
            return
          }
          received.push(frame)
          if (options.answerPings && frame.type === FrameType.Ping && (frame.flags & Flags.SYN) !== 0) {
            pongs.push(encodeFrame(ping(Flags.ACK, frame.length)))
          }
        }
        signal.notify()
        if (pongs.length > 0) yield* raw.write(pongs)
      }
    }).pipe(
      Effect.catch((error: TransportError) =>
        Effect.sync(() => {
          end = { _tag: "Error", message: error.message }
          signal.notify()
        })
      )
    )

    const readerFiber = yield* Effect.forkScoped(reader)

    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        if (options.onExit === "close") {
          yield* session.close.pipe(Effect.timeoutOption(timeoutMillis), onLiveClock)
        }
        yield* session.abort
        yield* Fiber.interrupt(readerFiber)
        yield* raw.reset
      })
    )

    const endedBefore = (what: string) =>
      new RawPeerTimeout({ message: `link ended before ${what} (${describeState()})` })

    /** Waits for `take` to find something; fails early once the link has ended and nothing was found. */
    const takeOrEnd = <A>(what: string, take: () => A | undefined): Effect.Effect<A, RawPeerTimeout> =>
      waitUntil(what, () => {
        const value = take()
        if (value !== undefined) return { value }
        return end !== undefined ? { value: undefined } : undefined
      }).pipe(
        Effect.flatMap(({ value }) => (value !== undefined ? Effect.succeed(value) : Effect.fail(endedBefore(what))))
      )

    const nextFrame: Effect.Effect<Frame, RawPeerTimeout> = takeOrEnd("the next frame", () =>
      cursor < received.length ? received[cursor++] : undefined
    )

    const expectFrame = (match: FrameMatch): Effect.Effect<Frame, RawPeerTimeout> =>
      takeOrEnd(`a frame matching ${JSON.stringify(match)}`, () => {
        while (cursor < received.length) {
          const frame = received[cursor++]!
          if (matches(frame, match)) return frame
        }
        return undefined
      })

    const nextFrames = (n: number): Effect.Effect<Array<Frame>, RawPeerTimeout> =>
      takeOrEnd(`${n} more frames`, () => {
        if (received.length - cursor < n) return undefined
        const out = received.slice(cursor, cursor + n)
        cursor += n
        return out
      })

    const sync: Effect.Effect<Array<Frame>, RawPeerTimeout | TransportError> = Effect.gen(function* () {
      const opaque = nextPing++
      yield* send(ping(Flags.SYN, opaque))
      const index = yield* takeOrEnd(`pong ${opaque}`, () => {
        for (let i = cursor; i < received.length; i++) {
          const f = received[i]!
          if (f.type === FrameType.Ping && f.flags === Flags.ACK && f.length === opaque) return i
        }
        return undefined
      })
      const before = received.slice(cursor, index)
      cursor = index + 1
      return before
    })

    const sendSplit = (bytes: Uint8Array, chunkSize = 1): Effect.Effect<void, TransportError | RawPeerTimeout> =>
      Effect.gen(function* () {
        for (let offset = 0; offset < bytes.length; offset += chunkSize) {
          yield* raw.write([bytes.subarray(offset, offset + chunkSize)])
          yield* poll(`session to read byte ${offset}`, () => pair.buffered().toA === 0 || session.isClosed())
        }
      })

    const closed = waitUntil("end of the link", () => end)

    const awaitSession: Effect.Effect<MuxError, RawPeerTimeout> = onLiveClock(
      session.await.pipe(
        Effect.timeoutOrElse({
          duration: timeoutMillis,
          orElse: () => Effect.fail(timeoutError("end of the session"))
        })
      )
    )

    return {
      session,
      pair,
      transport: raw,
      events,
      received,
      cursor: () => cursor,
      end: () => end,
      send,
      sendSplit,
      nextFrame,
      nextFrames,
      expectFrame,
      sync,
      closed,
      awaitSession,
      waitUntil,
      poll,
      pauseReading: () => {
        paused = true
      },
      resumeReading: () => {
        paused = false
        gate.notify()
      }
    } satisfies RawPeer
  })
