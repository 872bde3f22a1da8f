/**
 * The admin endpoint per service, over real TCP loopback: a proxy and a server with two named
 * services (and the default one) over one link, each forwarded to its own echo backend. After a
 * known mix of traffic (clean streams, one reset by its client, one held open) `/metrics` has a
 * separate series per service for streams opened, closed, reset and open and for bytes each way,
 * with exactly the expected values on both roles and one series per name and label set (the
 * event metrics of the same names do not double them); `promtool check metrics` accepts it;
 * `/status` and `dashboard.json` list every service with its listen address (proxy) or target
 * (server). A reload that adds one service and removes another: the new one gets series and a
 * row, the removed one keeps its series (frozen) and stays listed, marked removed, only while its
 * held stream is open.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as Admin from "../../src/admin/Admin.ts"
import * as Status from "../../src/admin/Status.ts"
import * as Observed from "../../src/observability/Observed.ts"
import * as Proxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import { pump } from "../../src/transport/Splice.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import type { Transport } from "../../src/transport/Transport.ts"
import { isolated, loopback, promtool, request, until } from "./helpers.ts"

/** A plain TCP echo backend. */
const echoBackend = Effect.gen(function* () {
  const listener = yield* Tcp.listen(loopback)
  yield* Effect.forkScoped(Tcp.serve(listener, (t) => Effect.ignore(Effect.ensuring(pump(t, t), t.close))))
  return listener.address
})

const pattern = (size: number, seed: number) => Uint8Array.from({ length: size }, (_, i) => (i * 31 + seed) & 0xff)
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((byte, i) => byte === b[i])

/** Reads exactly `n` bytes (fails on an early end). */
const readExactly = (client: Transport, n: number) =>
  Effect.gen(function* () {
    const chunks: Array<Uint8Array> = []
    let got = 0
    while (got < n) {
      const chunk = yield* client.read
      if (chunk === null) return yield* Effect.die(new Error(`end after ${got} of ${n} bytes`))
      chunks.push(chunk)
      got += chunk.length
    }
    const out = new Uint8Array(got)
    let at = 0
    for (const chunk of chunks) {
      out.set(chunk, at)
      at += chunk.length
    }
    return out
  })

/** One client: writes `bytes`, half-closes, reads the echo to its end; true when it is byte-exact. */
const roundTrip = (address: Tcp.TcpAddress, bytes: Uint8Array) =>
  Effect.scoped(
    Effect.gen(function* () {
      const client = yield* Tcp.connect(address)
      yield* client.write([bytes])
      yield* client.closeWrite
      const echoed = yield* readExactly(client, bytes.length)
      return same(echoed, bytes) && (yield* client.read) === null
    })
  )

/** The value of one series in an exposition, and how many lines carry exactly that series. */
const series = (exposition: string, name: string) => {
  const lines = exposition.split("\n").filter((l) => l.startsWith(`${name} `))
  return { value: lines.length === 0 ? undefined : Number(lines[0]!.slice(name.length + 1)), lines: lines.length }
}

/** One dashboard sample, as `dashboard.json` carries it. */
interface Sample {
  readonly streams: Readonly<Record<string, number>>
}

const value = (exposition: string, name: string) => series(exposition, name).value

describe("admin endpoint by service", () => {
  it.live(
    "two services over one link: separate non-zero series per service in /metrics, rows in /status, reload adds and removes",
    () =>
      isolated(
        Effect.gen(function* () {
          const alphaTarget = yield* echoBackend
          const betaTarget = yield* echoBackend
          const gammaTarget = yield* echoBackend
          const server = yield* Server.make({
            listen: loopback,
            services: { alpha: { target: alphaTarget }, beta: { target: betaTarget } }
          })
          const proxy = yield* Proxy.make({
            listen: loopback,
            upstream: server.address,
            services: { alpha: loopback, beta: loopback }
          })
          const options = { listen: loopback, sampleMillis: 100, pingMillis: 0 }
          const serverAdmin = yield* Admin.make(Observed.fromServer(server), options)
          const proxyAdmin = yield* Admin.make(Observed.fromProxy(proxy), options)
          const at = proxy.addresses()

          // alpha: 3 clean streams of 1000 bytes; beta: 2 clean streams of 5000 bytes, one of 100
          // bytes reset by its client after the echo, and one of 10 bytes held open.
          const clean = yield* Effect.all(
            [
              ...[0, 1, 2].map((i) => roundTrip(at.alpha!, pattern(1000, i))),
              ...[3, 4].map((i) => roundTrip(at.beta!, pattern(5000, i)))
            ],
            { concurrency: "unbounded" }
          )
          assert.deepStrictEqual(clean, [true, true, true, true, true])
          yield* Effect.scoped(
            Effect.gen(function* () {
              const client = yield* Tcp.connect(at.beta!)
              yield* client.write([pattern(100, 9)])
              assert.isTrue(same(yield* readExactly(client, 100), pattern(100, 9)))
              yield* client.reset
            })
          )
          const heldScope = yield* Scope.make()
          const held = yield* Tcp.connect(at.beta!).pipe(Scope.provide(heldScope))
          yield* held.write([pattern(10, 7)])
          assert.isTrue(same(yield* readExactly(held, 10), pattern(10, 7)))

          // Both sides have finished their bookkeeping: 6 streams ended, the held one open.
          const settled = (role: "proxy" | "server") =>
            Effect.sync(() => {
              const beta = (role === "proxy" ? proxy.stats() : server.stats()).services.find((s) => s.name === "beta")
              return beta !== undefined && beta.closed + beta.reset === 3 && beta.open === 1
            })
          assert.isTrue(yield* until(settled("proxy"), 5_000), "proxy settled")
          assert.isTrue(yield* until(settled("server"), 5_000), "server settled")

          const metrics = yield* request(proxyAdmin.address, "/metrics")
          assert.strictEqual(metrics.status, 200)
          const text = metrics.body
          for (const role of ["proxy", "server"]) {
            const want: Record<string, Record<string, number>> = {
              alpha: { opened: 3, closed: 3, reset: 0, open: 0, up: 3000, down: 3000 },
              beta: { opened: 4, closed: 2, reset: 1, open: 1, up: 10_110, down: 10_110 },
              default: { opened: 0, closed: 0, reset: 0, open: 0, up: 0, down: 0 }
            }
            for (const [service, w] of Object.entries(want)) {
              const labels = `role="${role}",service="${service}"`
              const got = {
                opened: series(text, `plait_streams_opened_total{${labels}}`),
                closed: series(text, `plait_streams_closed_total{${labels}}`),
                reset: series(text, `plait_streams_reset_total{${labels}}`),
                open: series(text, `plait_streams_open{${labels}}`),
                up: series(text, `plait_bytes_total{${labels},direction="up"}`),
                down: series(text, `plait_bytes_total{${labels},direction="down"}`)
              }
              assert.deepStrictEqual(
                Object.fromEntries(Object.entries(got).map(([k, v]) => [k, v.value])),
                w,
                `${role} ${service}`
              )
              // Exactly one line per series: the session events' counters of the same names do not add a second one.
              for (const [k, v] of Object.entries(got)) assert.strictEqual(v.lines, 1, `${role} ${service} ${k}`)
            }
          }
          const checked = yield* promtool(text)
          assert.strictEqual(checked.code, 0, checked.output)
          assert.strictEqual(checked.output.trim(), "", "no lint findings")

          const proxyStatus = yield* Status.decode((yield* request(proxyAdmin.address, "/status")).body)
          assert.deepStrictEqual(
            proxyStatus.services.map((s) => [s.name, s.address, s.active, s.streams, s.opened, s.reset]),
            [
              ["default", Tcp.formatAddress(proxy.address), true, 0, 0, 0],
              ["alpha", Tcp.formatAddress(at.alpha!), true, 0, 3, 0],
              ["beta", Tcp.formatAddress(at.beta!), true, 1, 4, 1]
            ]
          )
          const serverStatus = yield* Status.decode((yield* request(serverAdmin.address, "/status")).body)
          assert.deepStrictEqual(
            serverStatus.services.map((s) => [s.name, s.address, s.bytesUp, s.bytesDown]),
            [
              ["default", "echo", 0, 0],
              ["alpha", Tcp.formatAddress(alphaTarget), 3000, 3000],
              ["beta", Tcp.formatAddress(betaTarget), 10_110, 10_110]
            ]
          )
          const rendered = Status.render(proxyStatus)
          assert.match(rendered, /alpha +127\.0\.0\.1:\d+ +0 +3 +0 +2\.9 KiB +2\.9 KiB/)
          // The dashboard's samples chart each service on its own.
          assert.isTrue(
            yield* until(
              Effect.map(request(proxyAdmin.address, "/dashboard.json"), (reply) => {
                const samples = (JSON.parse(reply.body) as { samples: ReadonlyArray<Sample> }).samples
                const last = samples.at(-1)
                return last?.streams.beta === 1 && last.streams.alpha === 0
              }),
              3_000
            ),
            "dashboard samples per service"
          )

          // Reload: gamma added, beta removed, on both sides; the held beta client is still carried.
          const proxyReload = yield* proxy.reload({ default: proxy.address, alpha: at.alpha!, gamma: loopback })
          assert.deepStrictEqual(proxyReload.added, ["gamma"])
          assert.deepStrictEqual(proxyReload.removed, ["beta"])
          const serverReload = yield* server.reload({
            default: Server.echo,
            alpha: { target: alphaTarget },
            gamma: { target: gammaTarget }
          })
          assert.deepStrictEqual(serverReload.removed, ["beta"])
          const gamma = proxy.addresses().gamma!
          assert.isTrue(yield* roundTrip(gamma, pattern(2048, 5)))
          assert.isTrue(
            yield* until(
              Effect.sync(() => proxy.stats().services.find((s) => s.name === "gamma")?.closed === 1),
              5_000
            )
          )
          assert.isTrue(
            yield* until(
              Effect.sync(() => server.stats().services.find((s) => s.name === "gamma")?.closed === 1),
              5_000
            )
          )
          // Scraped at once: the new service's series are there without waiting for a sampler tick.
          // Each role from its own endpoint (one registry holds both, but each endpoint refreshes its own).
          for (const [role, admin] of [
            ["proxy", proxyAdmin],
            ["server", serverAdmin]
          ] as const) {
            const after = (yield* request(admin.address, "/metrics")).body
            assert.strictEqual(value(after, `plait_streams_opened_total{role="${role}",service="gamma"}`), 1)
            assert.strictEqual(value(after, `plait_bytes_total{role="${role}",service="gamma",direction="up"}`), 2048)
            // beta's counters stay (until restart); its held stream is still open.
            assert.strictEqual(value(after, `plait_streams_opened_total{role="${role}",service="beta"}`), 4)
            assert.strictEqual(value(after, `plait_streams_open{role="${role}",service="beta"}`), 1)
            const checked = yield* promtool(after)
            assert.strictEqual(checked.code, 0, checked.output)
          }
          const during = yield* Status.decode((yield* request(proxyAdmin.address, "/status")).body)
          assert.deepStrictEqual(
            during.services.map((s) => [s.name, s.active, s.streams]),
            [
              ["default", true, 0],
              ["alpha", true, 0],
              ["beta", false, 1],
              ["gamma", true, 0]
            ]
          )
          assert.include(Status.render(during), "beta (removed)")

          // The held client finishes: beta leaves /status, its series stay with their totals.
          yield* held.write([pattern(20, 8)])
          yield* held.closeWrite
          assert.isTrue(same(yield* readExactly(held, 20), pattern(20, 8)))
          assert.isNull(yield* held.read)
          yield* Scope.close(heldScope, Exit.void)
          assert.isTrue(
            yield* until(
              Effect.map(request(serverAdmin.address, "/status"), (reply) => {
                const names = (JSON.parse(reply.body) as Status.Status).services.map((s) => s.name)
                return names.join() === "default,alpha,gamma"
              }),
              5_000
            ),
            "beta gone from the server's /status"
          )
          assert.isTrue(
            yield* until(
              Effect.map(request(proxyAdmin.address, "/status"), (reply) => {
                const names = (JSON.parse(reply.body) as Status.Status).services.map((s) => s.name)
                return names.join() === "default,alpha,gamma"
              }),
              5_000
            ),
            "beta gone from the proxy's /status"
          )
          const last = (yield* request(proxyAdmin.address, "/metrics")).body
          for (const role of ["proxy", "server"]) {
            assert.strictEqual(value(last, `plait_streams_closed_total{role="${role}",service="beta"}`), 3)
            assert.strictEqual(value(last, `plait_streams_open{role="${role}",service="beta"}`), 0)
            assert.strictEqual(value(last, `plait_bytes_total{role="${role}",service="beta",direction="up"}`), 10_130)
          }
        })
      ),
    30_000
  )
})
