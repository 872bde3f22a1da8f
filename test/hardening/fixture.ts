/**
 * The server-under-attack fixture shared by the hardening tests: an echo backend, a server
 * forwarding to it, and a proxy with a steady byte-exact healthy workload through it; attackers dial
 * the server's link port directly and decode what it sends.
 *
 * Invariants: every wait is bounded (the constants below); `verify` proves the healthy link was
 * never lost, kept every echo byte-exact within {@link HEALTHY_BOUND}, and that the server's
 * sessions, streams, backend connections and this process's file descriptors are back at the
 * baseline after an attack.
 */
import { assert } from "@effect/vitest"
import { Effect, Scope } from "effect"
import { Flags, FrameType, INITIAL_WINDOW } from "../../src/protocol/Constants.ts"
import { encodeFrame, type Frame, ping, windowUpdate } from "../../src/protocol/Frame.ts"
import * as Proxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import type { SessionConfig } from "../../src/session/Config.ts"
import {
  type Backend,
  concatBytes,
  connectProbe,
  describeFrame,
  eventually,
  fdCount,
  type HardeningError,
  type Healthy,
  type Probe,
  startEchoBackend,
  startHealthy
} from "./harness.ts"

export const TEST_TIMEOUT = 20_000
/** Every healthy echo round trip must finish within this (generous: 2 shared cores, one event loop). */
export const HEALTHY_BOUND = 2_000
/** An attacker gets its outcome (GO_AWAY(1) and close, an RST, a pong) within this. */
export const OUTCOME_BOUND = 3_000
/** Counters return to the baseline within this after an attacker is gone. */
export const SETTLE_BOUND = 5_000
export const HEALTHY_CLIENTS = 4
export const MAX_WINDOW = 4 * 1024 * 1024
export const KiB = 1024

export const enc = (...frames: ReadonlyArray<Frame | Uint8Array>): Uint8Array =>
  concatBytes(frames.map((f) => (f instanceof Uint8Array ? f : encodeFrame(f))))

export interface Fixture {
  readonly backend: Backend
  readonly server: Server.ServerService
  readonly proxy: Proxy.ProxyService
  readonly healthy: Healthy
  readonly baseline: { readonly sessions: number; readonly streams: number; readonly backendOpen: number }
  readonly baselineFds: number | undefined
  /** A raw TCP connection to the server's link port, decoding what the server sends. */
  readonly attacker: (options?: { readonly paused?: boolean }) => Effect.Effect<Probe, HardeningError, never>
  /** Server sessions and handlers, backend connections back at the baseline. */
  readonly settled: Effect.Effect<void, HardeningError>
  /** `settled`, plus file descriptors back at the baseline and the healthy workload still going. */
  readonly verify: Effect.Effect<void, HardeningError>
}

/**
 * An echo backend, a server forwarding to it, a proxy with a healthy workload through it. The
 * attackers' sockets live in the test's scope.
 */
export const setup = (
  options: {
    readonly session?: Partial<SessionConfig>
    readonly maxSessions?: number
    readonly negotiationTimeoutMillis?: number
  } = {}
) =>
  Effect.gen(function* () {
    const testScope = yield* Effect.scope
    const backend = yield* startEchoBackend
    const server = yield* Server.make({
      listen: { host: "127.0.0.1", port: 0 },
      handler: Server.forward({ host: "127.0.0.1", port: backend.port }),
      drainMillis: 1_000,
      ...(options.session === undefined ? {} : { session: options.session }),
      ...(options.maxSessions === undefined ? {} : { maxSessions: options.maxSessions }),
      ...(options.negotiationTimeoutMillis === undefined
        ? {}
        : { negotiationTimeoutMillis: options.negotiationTimeoutMillis })
    })
    const proxy = yield* Proxy.make({ listen: { host: "127.0.0.1", port: 0 }, upstream: server.address })
    const healthy = yield* startHealthy(proxy.address.port, {
      clients: HEALTHY_CLIENTS,
      maxBlock: 16 * KiB,
      boundMillis: HEALTHY_BOUND,
      pauseMillis: 2
    })
    yield* healthy.progressed(HEALTHY_CLIENTS * 5, 10_000)
    const baseline = {
      sessions: server.stats().sessions,
      streams: server.stats().streams,
      backendOpen: backend.open()
    }
    assert.deepStrictEqual(baseline, { sessions: 1, streams: HEALTHY_CLIENTS, backendOpen: HEALTHY_CLIENTS })
    const baselineFds = fdCount()

    const current = () => ({
      sessions: server.stats().sessions,
      streams: server.stats().streams,
      backendOpen: backend.open()
    })
    const settled = eventually(
      "server stats and backend connections back at the baseline",
      () => {
        const now = current()
        return (
          now.sessions === baseline.sessions &&
          now.streams === baseline.streams &&
          now.backendOpen === baseline.backendOpen
        )
      },
      SETTLE_BOUND,
      () => `(baseline ${JSON.stringify(baseline)}, now ${JSON.stringify(current())})`
    )
    const verify = Effect.gen(function* () {
      yield* settled
      if (baselineFds !== undefined) {
        yield* eventually(
          "file descriptors back at the baseline",
          () => (fdCount() ?? 0) <= baselineFds,
          SETTLE_BOUND,
          () => `(baseline ${baselineFds}, now ${fdCount()})`
        )
      }
      // The workload is still going, byte-exact and within the bound.
      yield* healthy.progressed(HEALTHY_CLIENTS * 3, 10_000)
      assert.deepStrictEqual(healthy.failures(), [])
      assert.isAtMost(healthy.maxLatency(), HEALTHY_BOUND)
      assert.strictEqual(proxy.link.generation(), 1, "the healthy link was never lost")
    })
    const fixture: Fixture = {
      backend,
      server,
      proxy,
      healthy,
      baseline,
      baselineFds,
      attacker: (o = {}) => connectProbe(server.address.port, { frames: true, ...o }).pipe(Scope.provide(testScope)),
      settled,
      verify
    }
    return fixture
  })

export const summary = (f: Frame) => ({ type: f.type, flags: f.flags, streamId: f.streamId, length: f.length })

export const GO_AWAY_1 = { type: FrameType.GoAway, flags: 0, streamId: 0, length: 1 }

/** The defined outcome of a session-fatal violation: GO_AWAY(1) as the last frame, then FIN, promptly. */
export const expectGoAwayAndClose = (attacker: Probe, sentAt: number) =>
  Effect.gen(function* () {
    const end = yield* attacker.closed(OUTCOME_BOUND)
    assert.isUndefined(attacker.badFrames(), "the server writes valid yamux")
    const frames = attacker.frames()
    const last = frames.at(-1)
    assert.isDefined(last, `a GO_AWAY before the close ${attacker.describe()}`)
    assert.deepStrictEqual(summary(last!), GO_AWAY_1, `last frame ${describeFrame(last!)}`)
    assert.strictEqual(frames.filter((f) => f.type === FrameType.GoAway).length, 1)
    assert.strictEqual(end.kind, "eof", `the link is closed, not reset ${attacker.describe()}`)
    assert.isAtMost(end.at - sentAt, OUTCOME_BOUND)
  })

/** The attacker's session still answers: a ping gets its pong. */
export const expectPong = (attacker: Probe, opaque: number) =>
  Effect.gen(function* () {
    yield* attacker.send(encodeFrame(ping(Flags.SYN, opaque)))
    yield* attacker.until(
      `pong ${opaque}`,
      () =>
        attacker.frames().some((f) => f.type === FrameType.Ping && f.flags === Flags.ACK && f.length === opaque)
          ? true
          : undefined,
      OUTCOME_BOUND
    )
  })

/** The attacker opens stream `id` (WINDOW_UPDATE|SYN); waits for the ACK and the backend connection. */
export const openStream = (fixture: Fixture, attacker: Probe, id: number) =>
  Effect.gen(function* () {
    const before = fixture.backend.accepted()
    yield* attacker.send(encodeFrame(windowUpdate(id, Flags.SYN, 0)))
    const ack = yield* attacker.until(
      `ACK of stream ${id}`,
      () => attacker.frames().find((f) => f.streamId === id && (f.flags & Flags.ACK) !== 0),
      OUTCOME_BOUND
    )
    assert.deepStrictEqual(summary(ack), {
      type: FrameType.WindowUpdate,
      flags: Flags.ACK,
      streamId: id,
      length: MAX_WINDOW - INITIAL_WINDOW
    })
    yield* eventually("the backend connection of the stream", () => fixture.backend.accepted() > before, OUTCOME_BOUND)
  })

/** DATA payload bytes the server sent on stream `id`, in order. */
export const streamBytes = (attacker: Probe, id: number): Uint8Array =>
  concatBytes(
    attacker
      .frames()
      .filter((f) => f.streamId === id && f.type === FrameType.Data)
      .map((f) => f.payload)
  )

export const hasFlag = (attacker: Probe, id: number, flag: number) =>
  attacker.frames().some((f) => f.streamId === id && (f.flags & flag) !== 0)
