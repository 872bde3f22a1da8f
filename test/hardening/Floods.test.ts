/**
 * Flood budgets and partial-input deadlines against a running server over real TCP, with a healthy
 * proxy session on the same server running a byte-exact echo workload (the shared fixture).
 *
 * Each budget, at its default: one more than the budget within a second (one burst) gets the
 * attacker GO_AWAY(1) as its last frame and the link closed, counted under the budget's `limit`
 * (and published once on the event bus with the reason); exactly the budget leaves the attacker's
 * session alive. The healthy session is never disturbed and nothing is left behind (`verify`).
 * Rapid reset: 10 000 open+RST pairs end the session and cost the server no more backend
 * connections than the accept backlog. Deadlines: attackers stalled at every byte position of a
 * frame header and of a DATA body, all at once, each get GO_AWAY(1) after `frameTimeoutMillis`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric } from "effect"
import * as Events from "../../src/observability/Events.ts"
import * as Metrics from "../../src/observability/Metrics.ts"
import { Flags, FrameType, HEADER_SIZE } from "../../src/protocol/Constants.ts"
import { data, encodeFrame, type Frame, ping, windowUpdate } from "../../src/protocol/Frame.ts"
import * as Proxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import { defaults, type SessionConfig } from "../../src/session/Config.ts"
import * as Auth from "../../src/transport/Auth.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import {
  enc,
  expectGoAwayAndClose,
  expectPong,
  type Fixture,
  GO_AWAY_1,
  OUTCOME_BOUND,
  openStream,
  SETTLE_BOUND,
  setup,
  summary,
  TEST_TIMEOUT
} from "./fixture.ts"
import {
  connectProbe,
  eventually,
  note,
  type Probe,
  pattern,
  quiet,
  startEchoBackend,
  startHealthy
} from "./harness.ts"

/** How an attack is made: what to send for `n` events of the budget, on a fresh attacker. */
interface BudgetCase {
  readonly budget: "maxPingsPerSecond" | "maxRefusedSynsPerSecond" | "maxResetsPerSecond" | "maxWindowUpdatesPerSecond"
  readonly what: string
  /** Server session settings the case needs besides the defaults. */
  readonly session?: Partial<SessionConfig>
  /** Prepares the attacker (e.g. opens a stream) before the burst. */
  readonly prepare?: (fixture: Fixture, attacker: Probe) => Effect.Effect<void, unknown>
  /** The bytes of `n` budgeted events (`trip`: the burst is meant to trip the budget). */
  readonly burst: (n: number, trip: boolean) => Uint8Array
  /** How the session shows it is alive after the burst, without spending the budget itself. */
  readonly alive: "ping" | "open"
}

const odd = (i: number, from = 1) => from + 2 * i

/** The accept backlog of the refused-SYN case: room for the healthy proxy's opens. */
const BACKLOG = 8
/**
 * Extra SYNs when the refused-SYN burst is to trip: the server accepts from its backlog between
 * two reads, so a burst split across reads could otherwise fall a few refusals short.
 */
const SPLIT_MARGIN = 8

const cases: ReadonlyArray<BudgetCase> = [
  {
    budget: "maxPingsPerSecond",
    what: "pings",
    burst: (n) => enc(...Array.from({ length: n }, (_, i) => ping(Flags.SYN, i + 1))),
    alive: "open"
  },
  {
    budget: "maxRefusedSynsPerSecond",
    what: `SYNs refused for a full accept backlog (${BACKLOG}; the first ${BACKLOG} SYNs fill it)`,
    session: { acceptBacklog: BACKLOG },
    burst: (n, trip) =>
      enc(
        ...Array.from({ length: BACKLOG + n + (trip ? SPLIT_MARGIN : 0) }, (_, i) =>
          windowUpdate(odd(i, 101), Flags.SYN, 0)
        )
      ),
    alive: "ping"
  },
  {
    budget: "maxResetsPerSecond",
    what: "open + RST pairs",
    burst: (n) =>
      enc(
        ...Array.from({ length: n }, (_, i) => [
          windowUpdate(odd(i, 101), Flags.SYN, 0),
          windowUpdate(odd(i, 101), Flags.RST, 0)
        ]).flat()
      ),
    alive: "ping"
  },
  {
    budget: "maxWindowUpdatesPerSecond",
    what: "credit-only WINDOW_UPDATEs and empty DATA frames on an open stream",
    prepare: (fixture, attacker) => openStream(fixture, attacker, 1),
    burst: (n) =>
      enc(
        ...Array.from(
          { length: n },
          (_, i): Frame => (i % 2 === 0 ? windowUpdate(1, 0, 0) : data(1, 0, new Uint8Array(0)))
        )
      ),
    alive: "ping"
  }
]

/** The event bus and metrics wired to an isolated registry, so a test can read the counters. */
const observed = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, Exclude<R, Events.Events>> =>
  effect.pipe(
    Effect.provide(Layer.provideMerge(Metrics.layer, Events.Events.layer)),
    Effect.provideService(Metric.MetricRegistry, new Map())
  )

const limitCount = (limit: string) =>
  Effect.map(
    Metric.value(Metric.withAttributes(Metrics.limitsReached, { role: "server", limit })),
    (state) => state.count
  )

describe("Floods: each budget at its default, tripped and just below, the healthy session untouched", () => {
  for (const c of cases) {
    const limit = defaults[c.budget]

    it.live(
      `${c.budget}: ${limit + 1} ${c.what} in one burst → GO_AWAY(1) and close, counted under limit=${c.budget}`,
      () =>
        observed(
          Effect.gen(function* () {
            const fixture = yield* setup(c.session === undefined ? {} : { session: c.session })
            const attacker = yield* fixture.attacker()
            if (c.prepare !== undefined) yield* c.prepare(fixture, attacker)
            const sentAt = Date.now()
            yield* attacker.send(c.burst(limit + 1, true))
            yield* expectGoAwayAndClose(attacker, sentAt)
            // The metrics subscriber takes the bus in batches: bounded polling.
            const deadline = Date.now() + SETTLE_BOUND
            while ((yield* limitCount(c.budget)) < 1 && Date.now() < deadline) yield* Effect.sleep(5)
            assert.strictEqual(yield* limitCount(c.budget), 1, "counted once")
            yield* fixture.verify
          })
        ).pipe(quiet),
      TEST_TIMEOUT
    )

    it.live(
      `${c.budget}: ${limit} ${c.what} in one burst → the session lives`,
      () =>
        Effect.gen(function* () {
          const fixture = yield* setup(c.session === undefined ? {} : { session: c.session })
          const attacker = yield* fixture.attacker()
          if (c.prepare !== undefined) yield* c.prepare(fixture, attacker)
          yield* attacker.send(c.burst(limit, false))
          // A pong (or an ACK) after the burst: the session has handled all of it and is still there.
          if (c.alive === "ping") yield* expectPong(attacker, 0x5151)
          else yield* openStream(fixture, attacker, 1)
          assert.isFalse(
            attacker.frames().some((f) => f.type === FrameType.GoAway),
            attacker.describe()
          )
          assert.isUndefined(attacker.end())
          attacker.socket.end()
          yield* attacker.closed(OUTCOME_BOUND)
          yield* fixture.verify
        }).pipe(quiet),
      TEST_TIMEOUT
    )
  }
})

describe("Floods: rapid reset", () => {
  it.live(
    "10 000 open+RST pairs → the session ends with GO_AWAY(1); the backend saw no more connections than the accept backlog",
    () =>
      Effect.gen(function* () {
        const fixture = yield* setup()
        const attacker = yield* fixture.attacker()
        const acceptedBefore = fixture.backend.accepted()
        const pairs = 10_000
        const perWrite = 100
        const sentAt = Date.now()
        // Writes of 100 pairs, back to back, as fast as the socket takes them (bounded by `pairs`),
        // until the server has closed the link.
        for (let i = 0; i < pairs && attacker.end() === undefined; i += perWrite) {
          yield* attacker.send(
            enc(
              ...Array.from({ length: perWrite }, (_, j) => [
                windowUpdate(odd(i + j), Flags.SYN, 0),
                windowUpdate(odd(i + j), Flags.RST, 0)
              ]).flat()
            )
          )
        }
        yield* expectGoAwayAndClose(attacker, sentAt)
        const backendConnections = fixture.backend.accepted() - acceptedBefore
        yield* note(`rapid reset: ${backendConnections} backend connections for ${pairs} open+RST pairs`)
        assert.isAtMost(backendConnections, defaults.acceptBacklog)
        yield* fixture.verify
      }).pipe(quiet),
    TEST_TIMEOUT
  )
})

describe("Floods: deadlines on partial input", () => {
  const timeout = 400
  const negotiation = 200
  const session = { frameTimeoutMillis: timeout, timerResolutionMillis: 50 }
  const body = 16

  it.live(
    `attackers stalled at every byte of a header (1..11 of 12) and of a ${body}-byte DATA body (0..${body - 1}) each get GO_AWAY(1) after ${timeout} ms`,
    () =>
      Effect.gen(function* () {
        // A first byte of 0 is also how the link probe starts: until the negotiation's deadline
        // says "plain yamux", that one byte is the negotiation's to bound, not the session's.
        const fixture = yield* setup({ session, negotiationTimeoutMillis: negotiation })
        const header = encodeFrame(windowUpdate(1, Flags.SYN, 0))
        const frame = encodeFrame(data(1, Flags.SYN, new Uint8Array(body).fill(3)))
        const stalls = [
          ...Array.from({ length: HEADER_SIZE - 1 }, (_, k) => ({
            what: `header byte ${k + 1}`,
            bytes: header.subarray(0, k + 1)
          })),
          ...Array.from({ length: body }, (_, j) => ({
            what: `body byte ${j}`,
            bytes: frame.subarray(0, HEADER_SIZE + j)
          }))
        ]
        const attackers = yield* Effect.forEach(stalls, () => fixture.attacker())
        const sentAt = Date.now()
        yield* Effect.forEach(attackers, (attacker, i) => attacker.send(stalls[i]!.bytes), { concurrency: "unbounded" })
        for (let i = 0; i < attackers.length; i++) {
          const attacker = attackers[i]!
          const end = yield* attacker.closed(timeout + OUTCOME_BOUND)
          assert.isAtLeast(end.at - sentAt, timeout, `${stalls[i]!.what}: not before the deadline`)
          const last = attacker.frames().at(-1)
          assert.deepStrictEqual(last && summary(last), GO_AWAY_1, `${stalls[i]!.what}: ${attacker.describe()}`)
          assert.strictEqual(end.kind, "eof", `${stalls[i]!.what}: closed, not reset`)
        }
        yield* fixture.verify
      }).pipe(quiet),
    TEST_TIMEOUT
  )

  it.live(
    "a peer that completes each frame within the deadline (a byte every 10 ms) is served byte-exact",
    () =>
      Effect.gen(function* () {
        const fixture = yield* setup({ session })
        const attacker = yield* fixture.attacker()
        yield* openStream(fixture, attacker, 1)
        const payload = new Uint8Array(8).fill(5)
        const wire = encodeFrame(data(1, 0, payload))
        // 20 bytes, 10 ms apart: the frame completes in about half the deadline.
        for (let i = 0; i < wire.length; i++) {
          yield* attacker.send(wire.subarray(i, i + 1))
          yield* Effect.sleep(10)
        }
        yield* attacker.until(
          "the echo",
          () =>
            attacker.frames().filter((f) => f.streamId === 1 && f.type === FrameType.Data).length > 0
              ? true
              : undefined,
          OUTCOME_BOUND
        )
        assert.isUndefined(attacker.end())
        yield* expectPong(attacker, 9)
        attacker.socket.end()
        yield* attacker.closed(OUTCOME_BOUND)
        yield* fixture.verify
      }).pipe(quiet),
    TEST_TIMEOUT
  )
})

describe("Floods: the token handshake is bounded too", () => {
  const timeout = 300

  it.live(
    `peers stalled at every byte of their auth answer (0..${Auth.ANSWER_LENGTH - 1} of ${Auth.ANSWER_LENGTH}) are closed after ${timeout} ms, take no session slot, are counted; a proxy with the token is served meanwhile`,
    () =>
      Effect.gen(function* () {
        const token = "a long shared secret for the hardening test"
        const backend = yield* startEchoBackend
        const auth = Auth.makeServer(token, { timeoutMillis: timeout })
        const server = yield* Server.make({
          listen: { host: "127.0.0.1", port: 0 },
          handler: Server.forward({ host: "127.0.0.1", port: backend.port }),
          handshake: auth.handshake,
          drainMillis: 1_000
        })
        const proxy = yield* Proxy.make({
          listen: { host: "127.0.0.1", port: 0 },
          upstream: server.address,
          dial: Tcp.connect(server.address).pipe(Effect.flatMap(Auth.client(token)))
        })
        const healthy = yield* startHealthy(proxy.address.port, {
          clients: 2,
          maxBlock: 4096,
          boundMillis: 2_000,
          pauseMillis: 2
        })
        yield* healthy.progressed(10, 10_000)
        const peers = yield* Effect.forEach(
          Array.from({ length: Auth.ANSWER_LENGTH }, (_, i) => i),
          () => connectProbe(server.address.port)
        )
        // Each reads the challenge, then sends the first i bytes of an answer and stalls.
        yield* Effect.forEach(
          peers,
          (peer, i) =>
            Effect.gen(function* () {
              yield* peer.take(Auth.CHALLENGE_LENGTH, OUTCOME_BOUND)
              // A well-formed start (the version byte, then nonce and proof bytes), never finished.
              const answer = pattern(Auth.ANSWER_LENGTH, i)
              answer[0] = Auth.VERSION
              if (i > 0) yield* peer.send(answer.subarray(0, i))
            }),
          { concurrency: "unbounded" }
        )
        const sentAt = Date.now()
        for (const peer of peers) {
          const end = yield* peer.closed(timeout + OUTCOME_BOUND)
          assert.isAtMost(end.at - sentAt, timeout + OUTCOME_BOUND)
          assert.strictEqual(peer.received(), Auth.CHALLENGE_LENGTH, "nothing but the challenge")
        }
        yield* eventually(
          "every stalled handshake counted",
          () => auth.stats().timedOut === peers.length,
          OUTCOME_BOUND,
          () => JSON.stringify(auth.stats())
        )
        assert.strictEqual(server.stats().sessions, 1, "only the proxy's link holds a session")
        yield* healthy.progressed(10, 10_000)
        assert.deepStrictEqual(healthy.failures(), [])
      }).pipe(quiet),
    TEST_TIMEOUT
  )
})
