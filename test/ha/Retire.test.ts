/**
 * `Session.retire`, the server's graceful shutdown: GO_AWAY(0) with a PING behind it. A proxy that
 * opened a stream before it read the GO_AWAY has its SYN cross the GO_AWAY on the wire; such SYNs
 * arrive before the PING's answer (the wire is FIFO both ways) and are served, so a server rotation
 * refuses no client. SYNs after the answer (or after the keepalive timeout without one) get RST.
 *
 * A raw yamux peer drives the session frame by frame; every wait is bounded.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { Flags, FrameType, GoAwayCode } from "../../src/protocol/Constants.ts"
import { data, type Frame, ping, windowUpdate } from "../../src/protocol/Frame.ts"
import * as RawPeer from "../session/rawPeer.ts"

const TEST_TIMEOUT = 20_000
const BOUND = 5_000

const summary = (f: Frame) => ({ type: f.type, flags: f.flags, streamId: f.streamId, length: f.length })
/** The RSTs among frames (ACKs of accepted streams come in between). */
const resets = (frames: ReadonlyArray<Frame>) => frames.filter((f) => (f.flags & Flags.RST) !== 0).map(summary)
const text = (value: string) => new TextEncoder().encode(value)
const bounded = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.timeoutOrElse({ duration: BOUND, orElse: () => Effect.die(new Error(`${what} timed out`)) }))

describe("Session.retire", () => {
  it.live(
    "SYNs that cross the GO_AWAY (before the PING's answer) are served byte-exact, the backlog too; later SYNs get RST",
    () =>
      Effect.gen(function* () {
        const peer = yield* RawPeer.make({ timeoutMillis: BOUND })
        // Stream 1 waits in the accept backlog when the session retires.
        yield* peer.send(windowUpdate(1, Flags.SYN, 0))
        yield* peer.sync
        assert.strictEqual(peer.session.stats().acceptBacklog, 1)
        yield* peer.session.retire
        const [goAway, fence] = yield* peer.nextFrames(2)
        assert.deepStrictEqual(summary(goAway!), { type: FrameType.GoAway, flags: 0, streamId: 0, length: 0 })
        assert.strictEqual(fence!.type, FrameType.Ping)
        assert.strictEqual(fence!.flags, Flags.SYN)
        assert.isFalse(peer.session.isOpen(), "no new opens from this side")
        // The peer had not read the GO_AWAY yet: stream 3 was on its way, with data.
        yield* peer.send(windowUpdate(3, Flags.SYN, 0), data(3, Flags.FIN, text("crossed")))
        const noRst = yield* peer.sync
        assert.deepStrictEqual(resets(noRst), [], "neither the backlog nor the crossing SYN is refused")
        const first = yield* bounded("accept 1", peer.session.acceptUnscoped)
        assert.strictEqual(first.id, 1)
        const second = yield* bounded("accept 3", peer.session.acceptUnscoped)
        assert.strictEqual(second.id, 3)
        assert.strictEqual(new TextDecoder().decode(yield* bounded("read 3", second.readAll)), "crossed")
        // An acceptor waiting now is parked until the fence closes, then told the session is closing.
        const waiting = yield* Effect.forkChild(Effect.flip(peer.session.acceptUnscoped))
        yield* peer.send(ping(Flags.ACK, fence!.length))
        const closing = yield* bounded("accept after the fence", Fiber.join(waiting))
        assert.strictEqual(closing.reason._tag, "SessionClosed")
        // The peer has read the GO_AWAY now: a SYN from it is refused.
        yield* peer.send(windowUpdate(5, Flags.SYN, 0))
        const refused = yield* peer.sync
        assert.deepStrictEqual(resets(refused), [
          { type: FrameType.WindowUpdate, flags: Flags.RST, streamId: 5, length: 0 }
        ])
        // The streams accepted before carry on both ways.
        yield* second.write([text("answer")])
        yield* second.closeWrite
        const answer = yield* peer.expectFrame({ streamId: 3, type: FrameType.Data })
        assert.isTrue(answer.length > 0)
      }),
    TEST_TIMEOUT
  )

  it.effect(
    "without an answer to its PING, the fence closes after the keepalive timeout (TestClock)",
    () =>
      Effect.gen(function* () {
        const peer = yield* RawPeer.make({
          timeoutMillis: BOUND,
          config: { keepaliveTimeoutMillis: 3_000, timerResolutionMillis: 100 }
        })
        yield* peer.session.retire
        yield* peer.nextFrames(2)
        yield* TestClock.adjust(2_000)
        yield* peer.send(windowUpdate(1, Flags.SYN, 0))
        const before = yield* peer.sync
        assert.deepStrictEqual(resets(before), [])
        const accepted = yield* bounded("accept 1", peer.session.acceptUnscoped)
        assert.strictEqual(accepted.id, 1)
        yield* TestClock.adjust(1_200)
        yield* peer.send(windowUpdate(3, Flags.SYN, 0))
        const after = yield* peer.sync
        assert.deepStrictEqual(resets(after), [
          { type: FrameType.WindowUpdate, flags: Flags.RST, streamId: 3, length: 0 }
        ])
        const error = yield* Effect.flip(bounded("accept", peer.session.acceptUnscoped))
        assert.strictEqual(error.reason._tag, "SessionClosed")
      }),
    TEST_TIMEOUT
  )

  it.live(
    "goAway (no fence) still refuses at once: the difference is only retire's",
    () =>
      Effect.gen(function* () {
        const peer = yield* RawPeer.make({ timeoutMillis: BOUND })
        yield* peer.session.goAway
        const goAway = yield* peer.nextFrame
        assert.strictEqual(goAway.length, GoAwayCode.Normal)
        yield* peer.send(windowUpdate(1, Flags.SYN, 0))
        const refused = yield* peer.sync
        assert.deepStrictEqual(refused.map(summary), [
          { type: FrameType.WindowUpdate, flags: Flags.RST, streamId: 1, length: 0 }
        ])
      }),
    TEST_TIMEOUT
  )
})
