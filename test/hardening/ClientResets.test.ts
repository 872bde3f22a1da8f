/**
 * Clients of the proxy that connect and reset at once, faster than the server's rapid-reset budget
 * (`maxResetsPerSecond`): the proxy passes its clients' behaviour on to the link, and the server
 * cannot tell such a proxy from a hostile peer. Without a guard, anyone who can reach the proxy's
 * client port could end the link (GO_AWAY(1)) for every client on it, again after every redial.
 *
 * What must hold: the proxy stops opening streams for the rest of a second once it has sent half
 * the budget of rapid resets (new clients in that second are refused, counted as `resetRate`), the
 * link stays up on its first session, and a client carried through the flood keeps its bytes exact.
 */
import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Proxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import { eventually, quiet, startHealthy } from "./harness.ts"

const BUDGET = 50
const ATTACKERS = 200

/** Connects `n` clients to `port`, each reset a few milliseconds after connecting; resolves when all are gone. */
const connectAndReset = (port: number, n: number): Promise<void> =>
  new Promise((done) => {
    let left = n
    const gone = () => {
      if (--left === 0) done()
    }
    for (let i = 0; i < n; i++) {
      const socket = net.connect(port, "127.0.0.1")
      socket.once("error", () => {})
      socket.once("close", gone)
      socket.once("connect", () => setTimeout(() => socket.resetAndDestroy(), 5))
    }
  })

describe("Clients that connect and reset faster than the server's rapid-reset budget", () => {
  it.live(
    "the proxy refuses new clients for the rest of the second; the link and a carried client are untouched",
    () =>
      Effect.gen(function* () {
        const session = { maxResetsPerSecond: BUDGET }
        const server = yield* Server.make({ listen: { host: "127.0.0.1", port: 0 }, session })
        const proxy = yield* Proxy.make({ listen: { host: "127.0.0.1", port: 0 }, upstream: server.address, session })
        yield* eventually("the link is up", () => proxy.link.current() !== undefined, 5_000)
        const healthy = yield* startHealthy(proxy.address.port, { clients: 1, maxBlock: 4096, boundMillis: 5_000 })
        yield* healthy.progressed(5, 5_000)

        yield* Effect.promise(() => connectAndReset(proxy.address.port, ATTACKERS))
        // The proxy opened at most half the budget before it held back; the rest were refused.
        yield* eventually("the attackers are all gone", () => proxy.stats().clients === 1, 5_000)
        assert.isAbove(proxy.stats().refused, 0, "some attackers were refused")
        yield* healthy.progressed(5, 5_000)
        assert.strictEqual(proxy.link.generation(), 1, "the link kept its first session")
        assert.isDefined(proxy.link.current())
        assert.deepStrictEqual(healthy.failures(), [])
        yield* healthy.stop
      }).pipe(Effect.scoped, quiet),
    30_000
  )
})
