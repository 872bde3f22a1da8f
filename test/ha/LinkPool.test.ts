/**
 * The link pool as a library: links spread over servers, new streams on the least-loaded live link,
 * failover without waiting, per-server backoff, DNS names as several servers, graceful rotation and
 * rebalancing, a server stuck before its handshake. Real TCP on loopback with in-process servers
 * (the process-level chaos tests are in Chaos.test.ts); the backoff test runs on the TestClock over
 * in-memory links.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Client from "../../src/client/Client.ts"
import * as LinkPool from "../../src/client/LinkPool.ts"
import type { MuxStream } from "../../src/session/MuxStream.ts"
import * as Session from "../../src/session/Session.ts"
import { makePair } from "../../src/transport/Memory.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import { TransportError } from "../../src/transport/Transport.ts"
import { relay } from "../resume/relay.ts"
import { eventually, ipv6Usable, payload, roundTrip, SESSION, startBlackHole, startServer } from "./helpers.ts"

const TEST_TIMEOUT = 30_000
const FAST = { healthIntervalMillis: 200, rebalanceIntervalMillis: 200, retry: { initialMillis: 50, maxMillis: 500 } }

const upServers = (pool: LinkPool.LinkPool) =>
  pool
    .links()
    .filter((link) => link.state === "up")
    .map((link) => link.server)
    .sort()

const describeLinks = (pool: LinkPool.LinkPool) => () =>
  JSON.stringify(pool.links().map(({ slot, state, server, streams }) => ({ slot, state, server, streams })))

/** Half-closes and reads to the end: the stream is done both ways. */
const finish = (stream: MuxStream) => Effect.andThen(stream.closeWrite, Effect.timeout(stream.readAll, 5_000))

const keyOf = (address: Tcp.TcpAddress) => Tcp.formatAddress(address)

/** Every link up, one per server in `keys`. */
const spreadOver = (pool: LinkPool.LinkPool, keys: ReadonlyArray<string>) =>
  eventually(
    `links up on ${keys.join(", ")}`,
    () => JSON.stringify(upServers(pool)) === JSON.stringify([...keys].sort()),
    15_000,
    describeLinks(pool)
  )

describe("LinkPool", () => {
  it.live(
    "spreads its links over the servers; each new stream goes to the live link with the fewest open streams",
    () =>
      Effect.gen(function* () {
        const servers = yield* Effect.forEach([1, 2, 3], () => startServer())
        const pool = yield* LinkPool.make({
          servers: servers.map((s) => s.address),
          links: 3,
          session: SESSION,
          ...FAST
        })
        yield* spreadOver(
          pool,
          servers.map((s) => keyOf(s.address))
        )
        const client = yield* Client.make({ link: pool, linkWaitMillis: 5_000 })
        const streams: Array<MuxStream> = []
        for (let i = 0; i < 30; i++) {
          const stream = yield* client.openUnscoped
          streams.push(stream)
          yield* roundTrip(stream, payload(1000 + i, i))
        }
        assert.deepStrictEqual(
          pool.links().map((link) => link.streams),
          [10, 10, 10],
          "fewest open streams first: 30 streams, 10 per link"
        )
        for (const running of servers) assert.strictEqual(running.server.stats().streams, 10)
        assert.strictEqual(pool.generation(), 3)
        assert.strictEqual(pool.reconnects(), 0)
        assert.strictEqual(pool.sessions().length, 3)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.live(
    "a link that dies fails only its own streams; new streams use the others at once; the server back gets a link again",
    () =>
      Effect.gen(function* () {
        const servers = yield* Effect.forEach([1, 2, 3], () => startServer())
        const keys = servers.map((s) => keyOf(s.address))
        const pool = yield* LinkPool.make({
          servers: servers.map((s) => s.address),
          links: 3,
          session: SESSION,
          ...FAST
        })
        yield* spreadOver(pool, keys)
        const client = yield* Client.make({ link: pool, linkWaitMillis: 5_000 })
        const streams: Array<MuxStream> = []
        for (let i = 0; i < 30; i++) streams.push(yield* client.openUnscoped)
        for (const [i, stream] of streams.entries()) yield* roundTrip(stream, payload(500, i))

        yield* servers[1]!.kill
        const outcomes = yield* Effect.forEach(streams, (stream, i) =>
          Effect.exit(roundTrip(stream, payload(700, 100 + i)).pipe(Effect.timeout(5_000)))
        )
        const failed = outcomes.filter((exit) => exit._tag === "Failure").length
        assert.strictEqual(failed, 10, "exactly the 10 streams of the lost link fail")
        const survivors = streams.filter((_, i) => outcomes[i]!._tag === "Success")
        // New streams do not wait for the lost link: the two others take them.
        for (let i = 0; i < 10; i++) {
          const stream = yield* client.openUnscoped.pipe(Effect.timeout(2_000))
          survivors.push(stream)
          yield* roundTrip(stream, payload(300, 200 + i))
        }
        const down = pool.servers().find((s) => s.address === keys[1])!
        assert.isAtLeast(down.failures, 1, "the lost server is backing off")

        // The server comes back on its address: the pool moves a link there, resetting no stream.
        yield* startServer(servers[1]!.address)
        yield* spreadOver(pool, keys)
        assert.isTrue(
          pool.links().some((link) => link.state === "draining"),
          "the link that moved still carries its streams"
        )
        for (const [i, stream] of survivors.entries()) yield* roundTrip(stream, payload(900, 300 + i))
        // Once its streams are done, the link that moved away is closed.
        for (const stream of survivors) yield* finish(stream)
        yield* eventually("the moved link closed", () => pool.links().length === 3, 15_000, describeLinks(pool))
        assert.isAtLeast(pool.reconnects(), 1)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.live(
    "a server's graceful stop: its streams finish byte-exact, no open is refused, and the proxy rebalances when it returns",
    () =>
      Effect.gen(function* () {
        const a = yield* startServer()
        const b = yield* startServer()
        const keys = [keyOf(a.address), keyOf(b.address)]
        const pool = yield* LinkPool.make({ servers: [a.address, b.address], links: 2, session: SESSION, ...FAST })
        yield* spreadOver(pool, keys)
        const client = yield* Client.make({ link: pool, linkWaitMillis: 5_000 })
        const held: Array<MuxStream> = []
        for (let i = 0; i < 10; i++) held.push(yield* client.openUnscoped)
        yield* eventually("5 streams on A", () => a.server.stats().streams === 5, 5_000, describeLinks(pool))

        // Clients keep arriving through the whole rotation; each is a fresh stream, round trip, close.
        let stop = false
        let opened = 0
        const arrivals = yield* Effect.forkChild(
          Effect.gen(function* () {
            for (let i = 0; i < 5_000 && !stop; i++) {
              const stream = yield* client.openUnscoped
              yield* roundTrip(stream, payload(200, 1000 + i))
              yield* finish(stream)
              opened++
              yield* Effect.sleep(2)
            }
          })
        )
        const stopping = yield* Effect.forkChild(a.stop)
        yield* eventually("A retired", () => !a.server.sessions().some((s) => s.isOpen()), 5_000)
        const before = opened
        yield* eventually("clients still served during the drain", () => opened >= before + 20, 10_000)
        // A's five streams are still served while it drains; then they end, and A stops.
        for (const [i, stream] of held.entries()) yield* roundTrip(stream, payload(800, 2000 + i))
        for (const stream of held) yield* finish(stream)
        yield* Fiber.join(stopping).pipe(Effect.timeout(10_000))

        // A comes back: a link moves to it.
        yield* startServer(a.address)
        yield* spreadOver(pool, keys)
        const afterReturn = opened
        yield* eventually("clients served after the return", () => opened >= afterReturn + 20, 10_000)
        stop = true
        yield* Fiber.join(arrivals).pipe(Effect.timeout(10_000))
        assert.isAtLeast(opened, 40)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.live(
    "with resumption, a link that lost its connection takes no new streams while it resumes, and resumes on its own server",
    () =>
      Effect.gen(function* () {
        const session = { keepaliveTimeoutMillis: 1_000 }
        const resume = { config: { windowMillis: 15_000 } }
        const a = yield* startServer(undefined, { session, resume })
        const b = yield* startServer(undefined, { session, resume })
        // C is idle (two links, three servers): a redial that picked the least-loaded server would go there.
        const c = yield* startServer(undefined, { session, resume })
        const cutA = yield* relay(a.address)
        const pool = yield* LinkPool.make({
          servers: [cutA.address, b.address, c.address],
          links: 2,
          session,
          resume,
          ...FAST
        })
        yield* spreadOver(pool, [keyOf(cutA.address), keyOf(b.address)])
        const client = yield* Client.make({ link: pool, linkWaitMillis: 5_000 })
        const held: Array<MuxStream> = []
        for (let i = 0; i < 10; i++) held.push(yield* client.openUnscoped)
        for (const [i, stream] of held.entries()) yield* roundTrip(stream, payload(300, i))
        yield* eventually(
          "5 streams on each",
          () => a.server.stats().streams === 5 && b.server.stats().streams === 5,
          5_000
        )

        // A's connection is cut, and A stays unreachable for a while: its link suspends.
        cutA.refuse(true)
        cutA.reset()
        yield* eventually(
          "the link to A suspended",
          () => pool.links().some((link) => link.server === keyOf(cutA.address) && link.state === "connecting"),
          10_000,
          describeLinks(pool)
        )
        // Longer than the keepalive timeout: the health pings give no verdict on a suspended link.
        yield* Effect.sleep(2_500)
        // New streams go to B meanwhile, at once.
        for (let i = 0; i < 10; i++) {
          const stream = yield* client.openUnscoped.pipe(Effect.timeout(2_000))
          held.push(stream)
          yield* roundTrip(stream, payload(300, 100 + i))
        }
        assert.strictEqual(b.server.stats().streams, 15, "the ten new streams went to B")
        assert.strictEqual(a.server.stats().streams, 5)
        // A is reachable again: the same session resumes there; its streams were never reset.
        cutA.refuse(false)
        yield* spreadOver(pool, [keyOf(cutA.address), keyOf(b.address)])
        for (const [i, stream] of held.entries()) yield* roundTrip(stream, payload(500, 200 + i))
        assert.strictEqual(pool.generation(), 2, "no fresh session: the suspended one resumed")
        assert.strictEqual(b.server.sessions().length, 1, "the resume did not go to B")
        assert.strictEqual(c.server.sessions().length, 0, "nor to the idle C: only A holds the session")
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.live(
    "a server that accepts TCP but never completes the handshake does not hold up the others",
    () =>
      Effect.gen(function* () {
        const hole = yield* startBlackHole()
        const live = yield* startServer()
        const pool = yield* LinkPool.make({
          servers: [hole.address, live.address],
          links: 2,
          session: SESSION,
          negotiationTimeoutMillis: 30_000,
          ...FAST
        })
        const client = yield* Client.make({ link: pool, linkWaitMillis: 5_000 })
        for (let i = 0; i < 5; i++) {
          const stream = yield* client.openUnscoped
          yield* roundTrip(stream, payload(400, i))
        }
        yield* eventually("the black hole was dialled", () => hole.accepted() >= 1, 5_000)
        const stuck = pool.links().find((link) => link.server === keyOf(hole.address))
        assert.strictEqual(stuck?.state, "connecting", "one link is still stuck in its handshake")
        assert.strictEqual(live.server.stats().streams, 5)
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.live(
    "with every server down, an open waits its bound and fails with LinkUnavailable naming them; the first server back serves",
    () =>
      Effect.gen(function* () {
        // Two free ports with nothing listening.
        const ports = yield* Effect.forEach([1, 2], () =>
          Effect.gen(function* () {
            const probe = yield* startServer()
            yield* probe.stop
            return probe.address
          })
        )
        const pool = yield* LinkPool.make({ servers: ports, links: 2, session: SESSION, ...FAST })
        const client = yield* Client.make({ link: pool, linkWaitMillis: 300 })
        const error = yield* Effect.flip(client.openUnscoped)
        assert.strictEqual(error.reason._tag, "LinkUnavailable")
        for (const address of ports) assert.include(error.message, keyOf(address))
        const patient = yield* Client.make({ link: pool, linkWaitMillis: 10_000 })
        const waiting = yield* Effect.forkChild(patient.openUnscoped)
        yield* startServer(ports[1]!)
        const stream = yield* Fiber.join(waiting).pipe(Effect.timeout(10_000))
        yield* roundTrip(stream, payload(1234, 7))
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.live(
    "a host name resolving to two addresses is two servers; an address it gains later gets a link; the system resolver finds localhost",
    () =>
      Effect.gen(function* () {
        const second = (yield* ipv6Usable) ? "::1" : "127.0.0.2"
        // The same port on both addresses: one name, two servers.
        const first = yield* startServer()
        const port = first.address.port
        const other = yield* startServer({ host: second, port })
        const pool = yield* LinkPool.make({
          servers: [{ host: "plait-ha.test", port }],
          links: 2,
          session: SESSION,
          resolve: (host) =>
            host === "plait-ha.test"
              ? Effect.succeed(["127.0.0.1", second])
              : Effect.fail(new TransportError({ operation: "connect", message: `unknown ${host}` })),
          ...FAST
        })
        yield* spreadOver(pool, [keyOf(first.address), keyOf(other.address)])
        assert.deepStrictEqual(
          pool
            .servers()
            .map((s) => s.host)
            .sort(),
          ["plait-ha.test", "plait-ha.test"]
        )
        // The name gains an address while every link is up (a new pod): a link moves to it.
        const third = yield* startServer({ host: second === "::1" ? "127.0.0.2" : "127.0.0.3", port })
        let published = ["127.0.0.1"]
        const growing = yield* LinkPool.make({
          servers: [{ host: "grows.test", port }],
          links: 2,
          session: SESSION,
          resolve: () => Effect.succeed(published),
          resolveIntervalMillis: 300,
          ...FAST
        })
        yield* spreadOver(growing, [keyOf(first.address), keyOf(first.address)])
        published = ["127.0.0.1", third.address.host]
        yield* spreadOver(growing, [keyOf(first.address), keyOf(third.address)])
        const addresses = yield* LinkPool.lookupAll("localhost")
        assert.include(addresses, "127.0.0.1")
        const byName = yield* LinkPool.make({ servers: [{ host: "localhost", port }], links: 1, session: SESSION })
        const client = yield* Client.make({ link: byName, linkWaitMillis: 5_000 })
        yield* roundTrip(yield* client.openUnscoped, payload(100, 1))
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )
})

/** Lets forked fibers and microtask wake-ups run without moving the clock. */
const settle = Effect.gen(function* () {
  for (let i = 0; i < 30; i++) yield* Effect.yieldNow
})

describe("LinkPool backoff (TestClock)", () => {
  it.effect(
    "each server has its own backoff: a refusing one is tried ever less often, never dropped, while the other serves",
    () =>
      Effect.gen(function* () {
        const attempts: Array<number> = []
        const serverScope = yield* Effect.scope
        const dial = (upstream: LinkPool.Upstream) =>
          Effect.gen(function* () {
            if (upstream.address.port === 1) {
              attempts.push(yield* TestClockNow)
              return yield* new TransportError({ operation: "connect", message: "ECONNREFUSED" })
            }
            const pair = yield* makePair()
            const server = yield* Session.make(pair.b, { client: false, config: SESSION }).pipe(
              Effect.orDie,
              Scope.provide(serverScope)
            )
            // Accepts and ends each stream, so opens never pile up un-ACKed.
            yield* Effect.forkIn(
              Effect.ignore(Effect.forever(Effect.flatMap(server.acceptUnscoped, (stream) => stream.reset))),
              serverScope
            )
            return pair.a
          })
        const pool = yield* LinkPool.make({
          servers: [
            { host: "127.0.0.1", port: 1 },
            { host: "127.0.0.1", port: 2 }
          ],
          links: 2,
          dial,
          session: SESSION,
          healthIntervalMillis: 0,
          rebalanceIntervalMillis: 1_000,
          retry: { initialMillis: 100, maxMillis: 5_000 }
        })
        const client = yield* Client.make({ link: pool, linkWaitMillis: 100 })
        let opens = 0
        for (let t = 0; t < 60_000; t += 100) {
          yield* settle
          if (t >= 1_000 && t % 500 === 0) {
            const stream = yield* client.openUnscoped
            yield* stream.reset
            opens++
          }
          yield* TestClock.adjust(100)
        }
        assert.strictEqual(opens, 118, "every open succeeded on the serving server")
        assert.deepStrictEqual(upServers(pool), ["127.0.0.1:2", "127.0.0.1:2"])
        const gaps = attempts.slice(1).map((at, i) => at - attempts[i]!)
        assert.isAtLeast(attempts.length, 6, `never dropped: ${JSON.stringify(attempts)}`)
        assert.isAtMost(attempts.length, 25, `backed off: ${JSON.stringify(attempts)}`)
        assert.isAtMost(gaps[0]!, 1_100, `tried soon at first: ${JSON.stringify(gaps)}`)
        assert.isAtLeast(gaps[gaps.length - 1]!, 2_000, `then less often: ${JSON.stringify(gaps)}`)
        const refusing = pool.servers().find((s) => s.address === "127.0.0.1:1")!
        assert.isAtLeast(refusing.failures, attempts.length - 1)
        assert.include(refusing.lastError ?? "", "ECONNREFUSED")
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )
})

const TestClockNow = Effect.clockWith((clock) => Effect.succeed(clock.currentTimeMillisUnsafe()))
