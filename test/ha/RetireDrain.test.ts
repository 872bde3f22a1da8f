/**
 * A retired session (a server's shutdown: GO_AWAY(0) and a fence PING behind it) must not hold its
 * close for SYNs nobody will accept. `retire` keeps the accept backlog and admits SYNs that cross
 * its GO_AWAY while the fence is open; once the session is being closed there is no acceptor left,
 * so `close` resets that backlog and shuts the fence, and its drain waits only for streams that are
 * being served — ending as soon as none is left, not at the drain timeout.
 *
 * Regression: the 1000-client isolation test's server restart took the session's whole drain
 * timeout (30 s) whenever the proxy's SYNs reached the server after its drain deadline had
 * interrupted the accept loop but before the proxy answered the fence PING: they sat in the backlog
 * of a session whose close waited for them, the old server never finished stopping, the new one
 * could not start, and the proxy's redials were refused meanwhile.
 *
 * Every wait is bounded on the live clock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Flags, FrameType } from "../../src/protocol/Constants.ts"
import { data, type Frame, ping, windowUpdate } from "../../src/protocol/Frame.ts"
import * as Server from "../../src/server/Server.ts"
import { enc } from "../hardening/fixture.ts"
import { connectProbe } from "../hardening/harness.ts"
import * as RawPeer from "../session/rawPeer.ts"

const TEST_TIMEOUT = 20_000
/** Bound (live clock) on each wait; well below the 30 s drain timeout the bug waited out. */
const BOUND = 5_000
const DRAIN_TIMEOUT = 30_000

const isReset = (f: Frame, streamId: number) => f.streamId === streamId && (f.flags & Flags.RST) !== 0
const isAck = (f: Frame, streamId: number) => f.streamId === streamId && (f.flags & Flags.ACK) !== 0
const text = (value: string) => new TextEncoder().encode(value)

/** `effect` bounded by {@link BOUND}; the failure names what did not happen. */
const within = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.timeoutOrElse({ duration: BOUND, orElse: () => Effect.die(new Error(`${what}: not within ${BOUND} ms`)) })
  )

/** {@link within} on the live clock (the session under test runs on the TestClock). */
const live = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>) => TestClock.withLive(within(what, effect))

describe("Session.retire, then close", () => {
  it.effect(
    "close resets the backlog and the SYNs that crossed the GO_AWAY, refuses later SYNs, and ends once the served stream does (TestClock: no drain timeout)",
    () =>
      Effect.gen(function* () {
        const peer = yield* RawPeer.make({ timeoutMillis: BOUND, config: { drainTimeoutMillis: DRAIN_TIMEOUT } })
        // Stream 1 is being served when the session retires.
        yield* peer.send(windowUpdate(1, Flags.SYN, 0))
        const served = yield* live("accept 1", peer.session.acceptUnscoped)
        assert.strictEqual(served.id, 1)
        yield* peer.session.retire
        yield* peer.expectFrame({ type: FrameType.GoAway, length: 0 })
        yield* peer.expectFrame({ type: FrameType.Ping, flags: Flags.SYN })
        // The fence PING stays unanswered (a busy peer): streams 3 and 5 crossed the GO_AWAY and wait
        // in the backlog, and nobody accepts them any more.
        yield* peer.send(windowUpdate(3, Flags.SYN, 0), data(5, Flags.SYN, text("crossed")))
        const crossed = yield* peer.sync
        assert.deepStrictEqual(
          crossed.filter((f) => isReset(f, 3) || isReset(f, 5)),
          [],
          "the crossing SYNs are admitted while the fence is open"
        )
        assert.strictEqual(peer.session.stats().acceptBacklog, 2)

        const closing = yield* Effect.forkChild(peer.session.close)
        yield* peer.expectFrame({ streamId: 3, flags: Flags.RST })
        yield* peer.expectFrame({ streamId: 5, flags: Flags.RST })
        assert.strictEqual(peer.session.stats().acceptBacklog, 0)
        // The fence is shut: a SYN from now on is refused at once.
        yield* peer.send(windowUpdate(7, Flags.SYN, 0))
        const later = yield* peer.sync
        assert.isTrue(
          later.some((f) => isReset(f, 7)),
          `SYN 7 refused (${later.map(RawPeer.describeFrame).join(", ")})`
        )
        // The served stream still holds the drain (a second of drain time passes, nothing ends)...
        yield* TestClock.adjust(1_000)
        assert.isUndefined(closing.pollUnsafe(), "close waits for the stream being served")
        assert.isFalse(peer.session.isClosed())
        // ...and once it ends both ways, close completes with no further drain time.
        yield* peer.send(data(1, Flags.FIN, text("bye")))
        assert.strictEqual(new TextDecoder().decode(yield* live("read 1", served.readAll)), "bye")
        yield* served.closeWrite
        yield* live("close after the last stream", Fiber.join(closing))
        const reason = yield* peer.awaitSession
        assert.strictEqual(reason.reason._tag, "SessionClosed")
        assert.strictEqual(peer.session.stats().streams, 0)
      }),
    TEST_TIMEOUT
  )

  it.effect(
    "a retired session with only a backlog closes at once, its fence PING unanswered (TestClock: no time passes)",
    () =>
      Effect.gen(function* () {
        const peer = yield* RawPeer.make({ timeoutMillis: BOUND, config: { drainTimeoutMillis: DRAIN_TIMEOUT } })
        yield* peer.send(windowUpdate(1, Flags.SYN, 0))
        yield* peer.sync
        yield* peer.session.retire
        yield* peer.send(windowUpdate(3, Flags.SYN, 0))
        yield* peer.sync
        assert.strictEqual(peer.session.stats().acceptBacklog, 2)
        yield* live("close", peer.session.close)
        assert.isTrue(peer.session.isClosed())
        yield* peer.closed
        const frames = peer.received
        assert.isTrue(
          frames.some((f) => isReset(f, 1)) && frames.some((f) => isReset(f, 3)),
          frames.map(RawPeer.describeFrame).join(", ")
        )
        assert.isFalse(
          frames.some((f) => isAck(f, 1) || isAck(f, 3)),
          "neither stream was accepted"
        )
      }),
    TEST_TIMEOUT
  )
})

describe("Server shutdown with a retired link", () => {
  it.live(
    "a SYN that reaches the server after its drain deadline is refused and the shutdown ends within the drain, not the session's drain timeout",
    () =>
      Effect.gen(function* () {
        const started = yield* Deferred.make<void>()
        const interrupted = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        // Stream 1's handler takes its time to stop once interrupted: the window in which a SYN reaches
        // a session whose accept loop is gone but whose fence is still open (its PING unanswered).
        const handler: Server.Handler = () =>
          Effect.andThen(Deferred.succeed(started, undefined), Effect.never).pipe(
            Effect.onInterrupt(() => Effect.andThen(Deferred.succeed(interrupted, undefined), Deferred.await(release)))
          )
        const serverScope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(serverScope, Exit.void))
        const server = yield* Server.make({
          listen: { host: "127.0.0.1", port: 0 },
          handler,
          drainMillis: 300,
          // The library's defaults (a 30 s drain, a 10 s fence), without keepalive pings of its own.
          session: { keepaliveIntervalMillis: 0, drainTimeoutMillis: DRAIN_TIMEOUT }
        }).pipe(Scope.provide(serverScope))
        const peer = yield* connectProbe(server.address.port, { frames: true })
        yield* peer.send(enc(windowUpdate(1, Flags.SYN, 0)))
        yield* within("stream 1 served", Deferred.await(started))

        const stopping = yield* Effect.forkChild(Scope.close(serverScope, Exit.void))
        yield* peer.until(
          "GO_AWAY(0) and the fence PING",
          () => (peer.frames().some((f) => f.type === FrameType.Ping && f.flags === Flags.SYN) ? true : undefined),
          BOUND
        )
        assert.isTrue(peer.frames().some((f) => f.type === FrameType.GoAway && f.length === 0))
        // The server's drain deadline has passed: its accept loop is gone, stream 1's handler stops.
        yield* within("the drain deadline", Deferred.await(interrupted))
        yield* peer.send(enc(windowUpdate(3, Flags.SYN, 0), ping(Flags.SYN, 0x5eed)))
        yield* peer.until(
          "the pong behind SYN 3",
          () => (peer.frames().some((f) => f.type === FrameType.Ping && f.length === 0x5eed) ? true : undefined),
          BOUND
        )
        yield* Deferred.succeed(release, undefined)
        // Bounded well below the session's 30 s drain timeout, which the stranded SYN used to hold.
        yield* within("the end of the shutdown", Fiber.join(stopping))
        yield* peer.until("SYN 3 refused", () => (peer.frames().some((f) => isReset(f, 3)) ? true : undefined), BOUND)
        assert.isFalse(
          peer.frames().some((f) => isAck(f, 3)),
          "stream 3 was never accepted"
        )
        const end = yield* peer.closed(BOUND)
        assert.strictEqual(end.kind, "eof", `the link is closed, not reset ${peer.describe()}`)
      }),
    TEST_TIMEOUT
  )
})
