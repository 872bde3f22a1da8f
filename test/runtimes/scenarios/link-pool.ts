/**
 * Cross-runtime scenario: the link pool (issue #13) on each runtime — a proxy with `--links 3` over
 * two in-process servers, its links spread over both; 48 clients echoed byte-exact across them; one
 * server stopped gracefully (retire) while the other carries new clients; the system resolver
 * (`node:dns` lookup, every address) finds `localhost`, and a pool over that name reaches a server.
 */
import { Effect, Exit, Scope } from "effect"
import * as LinkPool from "../../../src/client/LinkPool.ts"
import * as Proxy from "../../../src/proxy/Proxy.ts"
import * as Server from "../../../src/server/Server.ts"
import { check, echoClients, runScenario } from "../lib.ts"

const loopback = { host: "127.0.0.1", port: 0 }

/** Polls `condition` (live clock, bounded). */
const until = (condition: () => boolean, millis: number) =>
  Effect.gen(function* () {
    const deadline = Date.now() + millis
    while (!condition() && Date.now() < deadline) yield* Effect.sleep(20)
    return condition()
  })

runScenario(
  "link-pool",
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const aScope = yield* Scope.fork(scope)
    const a = yield* Server.make({ listen: loopback }).pipe(Scope.provide(aScope))
    const b = yield* Server.make({ listen: loopback })
    const proxy = yield* Proxy.make({ listen: loopback, upstreams: [a.address, b.address], links: 3 })
    const pool = proxy.pool!
    yield* check(
      yield* until(() => pool.links().filter((link) => link.state === "up").length === 3, 10_000),
      "three links up"
    )
    yield* check(
      a.sessions().length + b.sessions().length === 3 && a.sessions().length >= 1,
      "spread over both servers"
    )
    yield* check(
      yield* echoClients(proxy.address, 48, (i) => 20_000 + i * 311, 30_000),
      "48 clients echoed byte-exact over the pool"
    )
    yield* Scope.close(aScope, Exit.void)
    yield* check(
      yield* echoClients(proxy.address, 16, (i) => 5_000 + i, 30_000),
      "16 clients echoed byte-exact after one server's graceful stop"
    )
    yield* check(proxy.stats().refused === 0, "no client refused")

    const addresses = yield* LinkPool.lookupAll("localhost")
    yield* check(addresses.includes("127.0.0.1"), `localhost resolves to ${addresses.join(", ")}`)
    const byName = yield* Proxy.make({
      listen: loopback,
      upstreams: [{ host: "localhost", port: b.address.port }],
      links: 2
    })
    yield* check(
      yield* echoClients(byName.address, 4, (i) => 1_000 + i, 30_000),
      "a pool over the name localhost serves clients"
    )
  })
)
