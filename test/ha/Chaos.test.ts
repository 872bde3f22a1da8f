/**
 * High availability over real processes (Node proxy, Node servers): `plait proxy --upstream A,B,C
 * --links 3` in front of three `plait server` processes, driven by plain `node:net` clients in the
 * test process, checked byte for byte, and read back through the proxy's admin endpoint.
 *
 * - SIGKILL one server under 200 clients in a request/response loop: exactly the clients on its link
 *   are reset, every other one carries on byte-exact, and new connections during the fault and after
 *   the server is back all succeed; the proxy counts no refusal and gives the server a link again.
 * - SIGTERM one server under load: 0 resets, 0 refused; its clients are served until they finish,
 *   the server exits 0, and the proxy rebalances when it returns.
 * - Every server down: a client is refused after --link-wait, naming the servers; once a server is
 *   back, clients are served.
 * - A server that accepts TCP and never completes the handshake does not hold up the others.
 *
 * Every process is killed with its test's scope; every loop is bounded in count and time.
 */
import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import {
  type CliProcess,
  E2eError,
  freePort,
  payload,
  roundTrip,
  sameBytes,
  spawnCli,
  startServer
} from "../e2e/helpers.ts"
import { eventually, startBlackHole } from "./helpers.ts"

const TEST_TIMEOUT = 90_000
const REQUEST = 512

/** One long-lived client: request, exact echo, next request, until told to finish or its link dies. */
class LoopClient {
  state: "running" | "reset" | "corrupt" | "finished" = "running"
  trips = 0
  private readonly socket: net.Socket
  private expected: Uint8Array
  private got: Array<Buffer> = []
  private gotBytes = 0
  private finishing = false
  private readonly seed: number
  constructor(port: number, seed: number) {
    this.seed = seed
    this.expected = payload(REQUEST, seed)
    this.socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true })
    this.socket.setNoDelay(true)
    this.socket.on("connect", () => this.socket.write(this.expected))
    this.socket.on("data", (chunk: Buffer) => this.onData(chunk))
    this.socket.on("end", () => {
      if (this.state === "running") this.state = this.finishing && this.gotBytes === 0 ? "finished" : "reset"
      this.socket.end()
    })
    this.socket.on("error", () => {
      if (this.state === "running") this.state = "reset"
    })
    this.socket.on("close", () => {
      if (this.state === "running") this.state = "reset"
    })
  }
  private onData(chunk: Buffer) {
    if (this.state !== "running") return
    this.got.push(chunk)
    this.gotBytes += chunk.length
    if (this.gotBytes < REQUEST) return
    const back = Buffer.concat(this.got)
    if (back.length !== REQUEST || !sameBytes(back, this.expected)) {
      this.state = "corrupt"
      this.socket.destroy()
      return
    }
    this.trips++
    this.got = []
    this.gotBytes = 0
    if (this.finishing) {
      this.socket.end() // FIN: the echo's FIN comes back and the stream ends cleanly
      return
    }
    this.expected = payload(REQUEST, this.seed * 100_003 + this.trips)
    this.socket.write(this.expected)
  }
  /** Ends after the request in flight: a clean close both ways. */
  finish() {
    this.finishing = true
  }
  destroy() {
    this.socket.destroy()
  }
}

interface Link {
  readonly peer: string
  readonly streams: number
}

/** The proxy's links from its admin endpoint's /status. */
const links = (adminPort: number) =>
  Effect.tryPromise({
    try: async () => {
      const response = await fetch(`http://127.0.0.1:${adminPort}/status`)
      const body = (await response.json()) as { readonly links: ReadonlyArray<Link> }
      return body.links
    },
    catch: (cause) => new E2eError({ message: `GET /status: ${String(cause)}` })
  })

/** `plait_clients_refused_total` summed over reasons, from /metrics. */
const refusedTotal = (adminPort: number) =>
  Effect.tryPromise({
    try: async () => {
      const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()
      let total = 0
      for (const line of text.split("\n")) {
        if (line.startsWith("plait_clients_refused_total")) total += Number(line.split(" ").pop())
      }
      return total
    },
    catch: (cause) => new E2eError({ message: `GET /metrics: ${String(cause)}` })
  })

/** Polls the proxy's links until `check` holds (bounded). */
const linksUntil = (adminPort: number, what: string, check: (links: ReadonlyArray<Link>) => boolean, millis = 20_000) =>
  Effect.gen(function* () {
    const deadline = Date.now() + millis
    let last: ReadonlyArray<Link> = []
    while (Date.now() < deadline) {
      last = yield* links(adminPort)
      if (check(last)) return last
      yield* Effect.sleep(100)
    }
    return yield* new E2eError({ message: `${what}: not within ${millis} ms (links: ${JSON.stringify(last)})` })
  })

const peersOf = (list: ReadonlyArray<Link>) => [...new Set(list.map((link) => link.peer))].sort()
const onEach = (ports: ReadonlyArray<number>) => (list: ReadonlyArray<Link>) =>
  JSON.stringify(peersOf(list)) === JSON.stringify(ports.map((port) => `127.0.0.1:${port}`).sort())

/** Starts the proxy over `ports` and waits for its client and admin ports. */
const startPool = (ports: ReadonlyArray<number>, args: ReadonlyArray<string> = []) =>
  Effect.gen(function* () {
    const proxy = yield* spawnCli(
      "node",
      "proxy",
      [
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        ports.map((port) => `127.0.0.1:${port}`).join(","),
        "--admin",
        "127.0.0.1:0",
        ...args
      ],
      { name: "proxy" }
    )
    const port = Number((yield* proxy.waitForLine(/proxy: listening on 127\.0\.0\.1:(\d+)/, "30 seconds"))[1])
    const admin = Number((yield* proxy.waitForLine(/admin: listening on http:\/\/127\.0\.0\.1:(\d+)/, "30 seconds"))[1])
    return { proxy, port, admin }
  })

/** `n` fresh connections, `concurrency` at a time, each one echo round trip; returns how many failed. */
const arrivals = (port: number, n: number, seed: number, concurrency = 10) =>
  Effect.gen(function* () {
    let failed = 0
    const details: Array<string> = []
    yield* Effect.forEach(
      Array.from({ length: n }, (_, i) => i),
      (i) =>
        Effect.gen(function* () {
          const sent = payload(1024, seed + i)
          const result = yield* Effect.exit(roundTrip(port, sent, "15 seconds"))
          if (result._tag === "Failure" || result.value.end !== "eof" || !sameBytes(result.value.data, sent)) {
            failed++
            if (details.length < 5) {
              details.push(
                result._tag === "Failure" ? "timed out" : `${result.value.end} after ${result.value.data.length} bytes`
              )
            }
          }
        }),
      { concurrency, discard: true }
    )
    return { failed, details }
  })

/** Starts `n` loop clients and waits until each has done a few round trips. */
const startClients = (port: number, n: number) =>
  Effect.gen(function* () {
    const clients = yield* Effect.acquireRelease(
      Effect.sync(() => Array.from({ length: n }, (_, i) => new LoopClient(port, i + 1))),
      (clients) =>
        Effect.sync(() => {
          for (const client of clients) client.destroy()
        })
    )
    yield* eventually(
      `${n} clients in their loop`,
      () => clients.every((client) => client.trips >= 3 || client.state !== "running"),
      30_000
    )
    assert.deepStrictEqual(
      clients.filter((client) => client.state !== "running").map((client) => client.state),
      [],
      "every client got going"
    )
    return clients
  })

const tally = (clients: ReadonlyArray<LoopClient>) => {
  const out: Record<string, number> = {}
  for (const client of clients) out[client.state] = (out[client.state] ?? 0) + 1
  return out
}

/** Every still-running client has done `more` round trips beyond `from` (its count at some point). */
const progressed = (clients: ReadonlyArray<LoopClient>, from: ReadonlyArray<number>, more: number, what: string) =>
  eventually(
    what,
    () => clients.every((client, i) => client.state !== "running" || client.trips >= from[i]! + more),
    20_000,
    () => JSON.stringify(tally(clients))
  )

const startServers = (n: number, args: ReadonlyArray<string> = []) =>
  Effect.forEach(
    Array.from({ length: n }, (_, i) => i),
    (i) => startServer("node", args, { name: `server${i + 1}` }),
    { concurrency: "unbounded" }
  )

const exitOf = (process: CliProcess) => process.waitForExit("30 seconds")

describe("high availability over real processes", () => {
  it.live(
    "SIGKILL one of three servers under 200 clients: only its link's clients are reset, the rest carry on byte-exact, no new connection is refused",
    () =>
      Effect.gen(function* () {
        const servers = yield* startServers(3)
        const ports = servers.map((server) => server.port)
        const pool = yield* startPool(ports, ["--links", "3"])
        yield* linksUntil(pool.admin, "three links, one per server", onEach(ports))
        const clients = yield* startClients(pool.port, 200)

        // The kill: only clients are on the links now, so the victim's stream count is its clients.
        const victim = `127.0.0.1:${ports[1]}`
        const before = yield* links(pool.admin)
        const onVictim = before.filter((link) => link.peer === victim).reduce((n, link) => n + link.streams, 0)
        assert.isAbove(onVictim, 20, `the victim carries a share of the clients: ${JSON.stringify(before)}`)
        yield* servers[1]!.process.signal("SIGKILL")
        yield* eventually(
          "the victim's clients reset",
          () => clients.filter((client) => client.state === "reset").length >= onVictim,
          15_000,
          () => JSON.stringify(tally(clients))
        )
        const atKill = clients.map((client) => client.trips)
        yield* progressed(clients, atKill, 5, "the other clients carry on")
        assert.deepStrictEqual(tally(clients), { running: 200 - onVictim, reset: onVictim }, "exactly its clients")

        // During the fault (the victim down): new connections use the two other links at once.
        const during = yield* arrivals(pool.port, 100, 10_000)
        assert.deepStrictEqual(during, { failed: 0, details: [] }, "no connection refused during the fault")

        // The server comes back on its port: the proxy gives it a link again.
        yield* startServer("node", [], { port: ports[1]!, name: "server2-again" })
        yield* linksUntil(pool.admin, "a link on the returned server", (list) =>
          list.some((link) => link.peer === victim)
        )
        const after = yield* arrivals(pool.port, 100, 20_000)
        assert.deepStrictEqual(after, { failed: 0, details: [] }, "no connection refused after the fault")
        const afterReturn = clients.map((client) => client.trips)
        yield* progressed(clients, afterReturn, 3, "the survivors carry on after the rebalance")
        assert.deepStrictEqual(tally(clients), { running: 200 - onVictim, reset: onVictim })
        assert.strictEqual(yield* refusedTotal(pool.admin), 0, "the proxy refused no client")
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.live(
    "SIGTERM one of three servers under load: 0 resets, 0 refused, its clients finish, it exits 0, and the proxy rebalances when it returns",
    () =>
      Effect.gen(function* () {
        const servers = yield* startServers(3, ["--drain-timeout", "30s"])
        const ports = servers.map((server) => server.port)
        const pool = yield* startPool(ports, ["--links", "3"])
        yield* linksUntil(pool.admin, "three links, one per server", onEach(ports))
        const clients = yield* startClients(pool.port, 200)
        const rotated = `127.0.0.1:${ports[0]}`
        const before = yield* links(pool.admin)
        assert.isAbove(before.find((link) => link.peer === rotated)?.streams ?? 0, 20)

        // New connections keep arriving through the rotation.
        let arriving = true
        let arrived = 0
        const arrivalFailures: Array<string> = []
        const arrivalLoop = yield* Effect.forkChild(
          Effect.gen(function* () {
            const deadline = Date.now() + 80_000
            for (let round = 0; round < 10_000 && arriving && Date.now() < deadline; round++) {
              const { failed, details } = yield* arrivals(pool.port, 10, 100_000 + round * 10, 5)
              arrived += 10
              if (failed > 0) arrivalFailures.push(...details)
            }
          })
        )
        yield* eventually("arrivals under way", () => arrived >= 30, 20_000)
        yield* servers[0]!.process.signal("SIGTERM")
        yield* servers[0]!.process.waitForLine(/SIGTERM received/, "10 seconds")
        // The rotated server's clients are still served while it drains: every client progresses.
        const atSignal = clients.map((client) => client.trips)
        yield* progressed(clients, atSignal, 5, "every client is served during the drain")
        const arrivedAtSignal = arrived
        yield* eventually("arrivals during the drain", () => arrived >= arrivedAtSignal + 50, 20_000)

        // The clients finish: every one ends cleanly, and the drained server exits 0.
        for (const client of clients) client.finish()
        yield* eventually(
          "every client finished",
          () => clients.every((client) => client.state !== "running"),
          20_000,
          () => JSON.stringify(tally(clients))
        )
        assert.deepStrictEqual(tally(clients), { finished: 200 }, "0 resets")
        const exit = yield* exitOf(servers[0]!.process)
        assert.deepStrictEqual(exit, { code: 0, signal: null }, "the rotated server drained and exited 0")

        // It comes back: the proxy moves a link to it, and connections keep being served.
        yield* startServer("node", ["--drain-timeout", "30s"], { port: ports[0]!, name: "server1-again" })
        yield* linksUntil(pool.admin, "the links spread over all three again", onEach(ports))
        const arrivedAtReturn = arrived
        yield* eventually("arrivals after the return", () => arrived >= arrivedAtReturn + 30, 20_000)
        arriving = false
        yield* Fiber.await(arrivalLoop).pipe(Effect.timeout("30 seconds"))
        assert.deepStrictEqual(arrivalFailures, [], `0 refused among ${arrived} arrivals`)
        assert.strictEqual(yield* refusedTotal(pool.admin), 0, "the proxy refused no client")
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.live(
    "every server down: a client is refused after --link-wait, naming the servers; the first server back serves",
    () =>
      Effect.gen(function* () {
        const ports = [yield* freePort, yield* freePort]
        const pool = yield* startPool(ports, ["--links", "2", "--link-wait", "2s"])
        const refused = yield* roundTrip(pool.port, payload(100, 1), "20 seconds")
        assert.strictEqual(refused.end, "error", "reset, never a clean EOF")
        assert.strictEqual(refused.data.length, 0)
        const line = yield* pool.proxy.waitForLine(/closing client: no link to the server within 2000 ms/)
        for (const port of ports) assert.include(line.input, `127.0.0.1:${port}`, "the last error names each server")

        yield* startServer("node", [], { port: ports[1]!, name: "first-back" })
        // Clients arriving now are served as soon as the proxy's next attempt reaches it (bounded).
        const deadline = Date.now() + 30_000
        let served = false
        for (let i = 0; i < 30 && !served && Date.now() < deadline; i++) {
          const sent = payload(2048, 100 + i)
          const result = yield* roundTrip(pool.port, sent, "20 seconds")
          served = result.end === "eof" && sameBytes(result.data, sent)
        }
        assert.isTrue(served, "a client was served by the first server back")
        const after = yield* arrivals(pool.port, 20, 300)
        assert.deepStrictEqual(after, { failed: 0, details: [] })
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.live(
    "--links with --link-listen exits 2 with one line naming --links",
    () =>
      Effect.gen(function* () {
        const proxy = yield* spawnCli("node", "proxy", [
          "--listen",
          "127.0.0.1:0",
          "--link-listen",
          "127.0.0.1:0",
          "--links",
          "2"
        ])
        const exit = yield* exitOf(proxy)
        assert.strictEqual(exit.code, 2)
        const refusals = proxy.lines().filter((line) => line.includes("--links"))
        assert.strictEqual(refusals.length, 1, proxy.output())
        assert.match(
          refusals[0]!,
          /ERROR +plait proxy: --links is for dialled links; with --link-listen, each server that dials in brings its own link$/
        )
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )

  it.live(
    "a server that accepts TCP and never completes the handshake does not hold up the others",
    () =>
      Effect.gen(function* () {
        const hole = yield* startBlackHole()
        const [live] = yield* startServers(1)
        // The black hole first: the pool tries it first, and a client may wait only 3 s.
        const pool = yield* startPool([hole.address.port, live!.port], ["--links", "2", "--link-wait", "3s"])
        const served = yield* arrivals(pool.port, 20, 500)
        assert.deepStrictEqual(served, { failed: 0, details: [] }, "served over the live server's link")
        assert.isAtLeast(hole.accepted(), 1, "the black hole was dialled")
        const list = yield* links(pool.admin)
        assert.deepStrictEqual(peersOf(list), [`127.0.0.1:${live!.port}`], "no link completed to the black hole")
      }).pipe(Effect.scoped),
    TEST_TIMEOUT
  )
})
