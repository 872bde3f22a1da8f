/**
 * The server's deadline on a stream's open message runs only while the session reads the link, as
 * the partial-frame deadline does. A session paused on `maxSessionBuffer` (streams whose handlers do
 * not read hold its buffer) cannot receive the message, so the time it spends paused must not count:
 * otherwise a healthy peer whose SYN arrived in the last chunk before the pause, and its open message
 * in the next, is thrown out with GO_AWAY(1) for a "late" message it had long sent.
 *
 * A negotiated raw yamux peer (it agreed on open messages) drives a real server over an in-memory
 * link, on the TestClock: the chunks the session reads are exactly the peer's writes. Every wait is
 * bounded on the live clock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { TestClock } from "effect/testing"
import { Flags, FrameType } from "../../src/protocol/Constants.ts"
import { Decoder, FrameError } from "../../src/protocol/Decoder.ts"
import { data, encodeFrame, type Frame, windowUpdate } from "../../src/protocol/Frame.ts"
import * as Server from "../../src/server/Server.ts"
import type { MuxError } from "../../src/session/MuxError.ts"
import type { MuxStream } from "../../src/session/MuxStream.ts"
import { makePair } from "../../src/transport/Memory.ts"
import * as Negotiation from "../../src/transport/Negotiation.ts"
import * as OpenMessage from "../../src/transport/OpenMessage.ts"
import type { Transport } from "../../src/transport/Transport.ts"
import { concatBytes, describeFrame, HardeningError, pattern, sameBytes } from "./harness.ts"

const TEST_TIMEOUT = 20_000
/** Bound (live clock) on each wait. */
const BOUND = 5_000
const OPEN_TIMEOUT = 1_000
const SESSION_BUFFER = 256 * 1024
/** Bytes each sink stream leaves unread: two of them are more than the session buffer. */
const UNREAD = 200 * 1024
const KiB = 1024

/** Polls `check` (yielding, so the server's fibers run) until it holds; bounded on the live clock. */
const until = (what: string, check: () => boolean, detail: () => string = () => "") =>
  TestClock.withLive(
    Effect.gen(function* () {
      const deadline = Date.now() + BOUND
      // Bounded by the deadline.
      while (!check()) {
        if (Date.now() > deadline) {
          return yield* new HardeningError({ message: `${what}: not within ${BOUND} ms ${detail()}` })
        }
        yield* Effect.yieldNow
      }
    })
  )

/** Moves the TestClock on in steps, letting the server's sweepers run at each. */
const advance = (millis: number, step = 50) =>
  Effect.gen(function* () {
    for (let t = 0; t < millis; t += step) {
      yield* TestClock.adjust(Math.min(step, millis - t))
      yield* Effect.yieldNow
    }
  })

/** Decodes every frame the server writes on `transport` into `frames`. */
const readFrames = (transport: Transport, frames: Array<Frame>) =>
  Effect.gen(function* () {
    const decoder = new Decoder()
    while (true) {
      const chunk = yield* transport.read
      if (chunk === null) return
      decoder.push(chunk)
      // Bounded: every frame consumes at least one header of the input.
      while (true) {
        const frame = decoder.next()
        if (frame === undefined) break
        if (frame instanceof FrameError) return yield* new HardeningError({ message: frame.message })
        frames.push(frame)
      }
    }
  })

/** Reads a stream to its end, discarding the bytes. */
const discard = (stream: MuxStream): Effect.Effect<void, MuxError> =>
  Effect.flatMap(stream.read, (chunk) => (chunk === null ? Effect.void : discard(stream)))

/** `n` bytes for stream `id` in DATA frames of at most 64 KiB. */
const dataFrames = (id: number, n: number, seed: number): Array<Frame> => {
  const bytes = pattern(n, seed)
  const out: Array<Frame> = []
  for (let offset = 0; offset < n; offset += 64 * KiB) out.push(data(id, 0, bytes.subarray(offset, offset + 64 * KiB)))
  return out
}

/**
 * A server with services `sink` (a backend that reads nothing until `release`) and `echo`, its one
 * link in memory to a raw peer that negotiated open messages; two sink streams have sent their open
 * messages and run. Then one chunk: more unread sink bytes than the session buffers, and stream 5's
 * SYN last — the session reads it whole, accepts stream 5 (its deadline starts) and stops reading.
 */
const pausedWithStream5 = Effect.gen(function* () {
  const pair = yield* makePair({ highWaterMark: 4 * 1024 * KiB })
  let handedOut = false
  const release = yield* Deferred.make<void>()
  const sink: Server.Handler = (stream) => Effect.andThen(Deferred.await(release), discard(stream))
  const server = yield* Server.make({
    listen: { host: "127.0.0.1", port: 0 },
    // One in-memory link, then none.
    listener: (address) =>
      Effect.succeed({
        address,
        accept: Effect.suspend(() => {
          if (handedOut) return Effect.never
          handedOut = true
          return Effect.succeed(pair.a)
        })
      }),
    services: { sink, echo: Server.echo },
    openMessageTimeoutMillis: OPEN_TIMEOUT,
    session: { keepaliveIntervalMillis: 0, maxSessionBuffer: SESSION_BUFFER }
  })
  // However the test ends, the server stops: the sinks are released and the TestClock moves on
  // (boundedly) while the server drains, so a failed assertion fails at once instead of the
  // server's shutdown waiting for a clock nobody advances.
  yield* Effect.addFinalizer(() =>
    Effect.andThen(
      Deferred.succeed(release, undefined),
      Effect.forkDetach(Effect.repeat(Effect.andThen(TestClock.adjust(100), Effect.yieldNow), { times: 600 }))
    )
  )
  const negotiated = yield* Negotiation.dialer({ role: "proxy" })(pair.b)
  assert.strictEqual(negotiated.agreement.streamOpen, 1, "the peer agreed on open messages")
  const raw = negotiated.transport
  const frames: Array<Frame> = []
  yield* Effect.forkScoped(readFrames(raw, frames))
  const send = (...items: ReadonlyArray<Frame>) => raw.write(items.map(encodeFrame))
  const seen = () => frames.map(describeFrame).join(", ")
  const acked = (id: number) => () => frames.some((f) => f.streamId === id && (f.flags & Flags.ACK) !== 0)
  const session = () => server.sessions()[0]

  yield* send(data(1, Flags.SYN, open("sink")), data(3, Flags.SYN, open("sink")))
  yield* until("both sink handlers running", () => server.stats().streams === 2)
  yield* send(...dataFrames(1, UNREAD, 1), ...dataFrames(3, UNREAD, 3), windowUpdate(5, Flags.SYN, 0))
  yield* until("stream 5 accepted", acked(5), seen)
  yield* until("the session paused", () => session()?.stats().readsPaused === true)
  assert.strictEqual(session()!.readingSince(), -1)
  return {
    server,
    frames,
    send,
    seen,
    acked,
    release: Deferred.succeed(release, undefined),
    session: () => session()!,
    goAways: () => frames.filter((f) => f.type === FrameType.GoAway).map(describeFrame),
    /** What the server wrote on stream `id`, once `n` bytes of it are there. */
    echoed: (id: number, n: number) =>
      Effect.gen(function* () {
        const payloads = () =>
          frames.filter((f) => f.streamId === id && f.type === FrameType.Data && f.length > 0).map((f) => f.payload)
        yield* until(
          `${n} bytes back on stream ${id}`,
          () => payloads().reduce((sum, p) => sum + p.length, 0) >= n,
          seen
        )
        return concatBytes(payloads())
      })
  }
})

const open = (service: string) => OpenMessage.encode({ service, source: undefined, destination: undefined })

describe("open-message deadline while the session is paused on maxSessionBuffer", () => {
  it.effect(
    "a stream whose open message waits behind the pause is served, not a violation; once reading, a missing message still times out",
    () =>
      Effect.gen(function* () {
        const t = yield* pausedWithStream5
        // Stream 5's open message, sent right behind: it waits in the link while the session is paused.
        const hello = pattern(3 * KiB, 5)
        yield* t.send(data(5, 0, concatBytes([open("echo"), hello])))
        // Three times the deadline passes while the session does not read.
        yield* advance(3 * OPEN_TIMEOUT)
        assert.deepStrictEqual(t.goAways(), [], "no GO_AWAY while the session was paused")
        assert.strictEqual(t.server.stats().openViolations, 0)
        assert.isFalse(t.session().isClosed())

        // The backends read: the buffer drains, the session reads again, stream 5 is served byte-exact.
        yield* t.release
        assert.isTrue(sameBytes(yield* t.echoed(5, hello.length), hello), "stream 5 echoed byte-exact")
        assert.isFalse(t.session().stats().readsPaused)
        assert.strictEqual(t.server.stats().openViolations, 0)

        // The deadline still holds while the session reads: stream 7 never sends its open message.
        yield* t.send(windowUpdate(7, Flags.SYN, 0))
        yield* until("stream 7 accepted", t.acked(7), t.seen)
        yield* advance(OPEN_TIMEOUT - 100)
        assert.deepStrictEqual(t.goAways(), [], "not before the deadline")
        yield* advance(600)
        yield* until("GO_AWAY(1) for stream 7's missing open message", () => t.goAways().length > 0, t.seen)
        assert.deepStrictEqual(t.goAways(), ["GO_AWAY(0, 1)"])
        assert.strictEqual(t.server.stats().openViolations, 1)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.effect(
    "a pause that ended before the deadline fired still does not count: the deadline runs from when reading resumed",
    () =>
      Effect.gen(function* () {
        const t = yield* pausedWithStream5
        // Most of the deadline passes paused; then the backends read and the session reads again.
        yield* advance(OPEN_TIMEOUT - 100)
        yield* t.release
        yield* until("the session reading again", () => t.session().readingSince() >= 0)
        const resumedAt = t.session().readingSince()
        // Past the deadline counted from the accept, within the one counted from the resume.
        yield* advance(500)
        assert.deepStrictEqual(t.goAways(), [], "not a violation 1.4 deadlines after the accept")
        const hello = pattern(2 * KiB, 6)
        yield* t.send(data(5, 0, concatBytes([open("echo"), hello])))
        assert.isTrue(sameBytes(yield* t.echoed(5, hello.length), hello), "stream 5 echoed byte-exact")
        assert.strictEqual(t.server.stats().openViolations, 0)
        assert.isAtLeast(resumedAt, OPEN_TIMEOUT - 100)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )
})
