import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted } from "effect"
import * as Admin from "../../src/admin/Admin.ts"
import * as Status from "../../src/admin/Status.ts"
import * as Observed from "../../src/observability/Observed.ts"
import * as Proxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import { cuttable, isolated, loopback, pair, raw, relay, request, until } from "./helpers.ts"

const TOKEN = "admin-token-4f1c9a7e2b"

/** `n` echo round trips of `bytes` bytes through the proxy; returns the bytes received per client. */
const echoes = (address: Tcp.TcpAddress, n: number, bytes: number) =>
  Effect.forEach(
    Array.from({ length: n }, (_, i) => i),
    (i) =>
      Effect.scoped(
        Effect.gen(function* () {
          const client = yield* Tcp.connect(address)
          yield* client.write([new Uint8Array(bytes).fill(i)])
          yield* client.closeWrite
          let got = 0
          for (let chunk = yield* client.read; chunk !== null; chunk = yield* client.read) got += chunk.length
          return got
        })
      )
  )

const series = (exposition: string, name: string): number | undefined => {
  const line = exposition.split("\n").find((l) => l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

describe("admin endpoint", () => {
  it.live(
    "serves health, readiness, status and metrics of a proxy and a server",
    () =>
      isolated(
        Effect.gen(function* () {
          const { server, proxy, serverAdmin, proxyAdmin } = yield* pair()
          assert.deepStrictEqual(yield* echoes(proxy.address, 3, 1000), [1000, 1000, 1000])
          assert.isTrue(
            yield* until(
              Effect.sync(() => proxy.stats().clients === 0),
              2_000
            )
          )

          for (const admin of [proxyAdmin, serverAdmin]) {
            const health = yield* request(admin.address, "/healthz")
            assert.strictEqual(health.status, 200)
            assert.deepStrictEqual(JSON.parse(health.body), { status: "ok" })
            const ready = yield* request(admin.address, "/ready")
            assert.strictEqual(ready.status, 200)
            assert.deepStrictEqual(JSON.parse(ready.body), { ready: true })
          }

          const proxyStatus = yield* Status.decode((yield* request(proxyAdmin.address, "/status")).body)
          assert.strictEqual(proxyStatus.role, "proxy")
          assert.strictEqual(proxyStatus.listen, Tcp.formatAddress(proxy.address))
          assert.strictEqual(proxyStatus.upstream, Tcp.formatAddress(server.address))
          assert.strictEqual(proxyStatus.ready, true)
          assert.strictEqual(proxyStatus.links.length, 1)
          assert.strictEqual(proxyStatus.links[0]!.peer, Tcp.formatAddress(server.address))
          assert.strictEqual(proxyStatus.links[0]!.streams, 0)
          assert.deepStrictEqual(proxyStatus.services, [
            {
              name: "default",
              address: Tcp.formatAddress(proxy.address),
              active: true,
              streams: 0,
              opened: 3,
              closed: 3,
              reset: 0,
              bytesUp: 3000,
              bytesDown: 3000
            }
          ])
          assert.strictEqual(proxyStatus.limits.maxClients, 10_000)
          assert.strictEqual(proxyStatus.limits.maxStreams, 65_536)
          assert.strictEqual(proxyStatus.version, JSON.parse(readFileSync("package.json", "utf8")).version)
          assert.match(proxyStatus.runtime, /^node \d+\./)

          const serverStatus = yield* Status.decode((yield* request(serverAdmin.address, "/status")).body)
          assert.strictEqual(serverStatus.role, "server")
          assert.strictEqual(serverStatus.upstream, null)
          assert.strictEqual(serverStatus.links.length, 1)
          assert.deepStrictEqual(serverStatus.services, [
            {
              name: "default",
              address: "echo",
              active: true,
              streams: 0,
              opened: 3,
              closed: 3,
              reset: 0,
              bytesUp: 3000,
              bytesDown: 3000
            }
          ])
          assert.strictEqual(serverStatus.limits.maxSessions, 64)

          const metrics = yield* request(proxyAdmin.address, "/metrics")
          assert.strictEqual(metrics.status, 200)
          assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/)
          assert.strictEqual(
            series(metrics.body, 'plait_bytes_total{role="proxy",service="default",direction="up"}'),
            3000
          )
          assert.strictEqual(series(metrics.body, 'plait_links{role="proxy"}'), 1)
          // One registry per process: both components' series are in either exposition.
          assert.strictEqual(series(metrics.body, 'plait_links_up_total{role="server"}'), 1)

          const page = yield* request(proxyAdmin.address, "/")
          assert.strictEqual(page.status, 200)
          assert.match(page.headers.get("content-type") ?? "", /^text\/html/)
          assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'none'/)
          assert.include(page.body, "uPlot")
          // Served by plait itself: nothing is loaded from elsewhere.
          assert.notMatch(page.body, /(src|href)\s*=\s*["']?(https?:)?\/\//i)
        })
      ),
    30_000
  )

  it.live(
    "refuses bad requests with a defined status: 404, 405, 413, 431, and cuts slow requests",
    () =>
      isolated(
        Effect.gen(function* () {
          const { proxyAdmin } = yield* pair({ admin: { requestTimeoutMillis: 500, maxHeaderBytes: 4096 } })
          const address = proxyAdmin.address

          const missing = yield* request(address, "/nope")
          assert.strictEqual(missing.status, 404)
          assert.deepStrictEqual(JSON.parse(missing.body), { error: "not found" })
          assert.strictEqual((yield* request(address, "/metrics/extra")).status, 404)
          assert.strictEqual((yield* request(address, "/nope", { method: "POST" })).status, 404)

          for (const [method, path] of [
            ["POST", "/status"],
            ["DELETE", "/metrics"],
            ["PUT", "/"],
            ["PATCH", "/ready"],
            ["OPTIONS", "/healthz"]
          ] as const) {
            const reply = yield* request(address, path, { method })
            assert.strictEqual(reply.status, 405, `${method} ${path}`)
            assert.strictEqual(reply.headers.get("allow"), "GET, HEAD")
          }
          const head = yield* request(address, "/healthz", { method: "HEAD" })
          assert.strictEqual(head.status, 200)
          assert.strictEqual(head.body, "")

          const withBody = yield* raw(
            address,
            "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
          )
          assert.match(withBody.response, /^HTTP\/1\.1 413 /)
          const chunked = yield* raw(
            address,
            "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
          )
          assert.match(chunked.response, /^HTTP\/1\.1 413 /)

          const huge = yield* raw(
            address,
            `GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: ${"a".repeat(8192)}\r\nConnection: close\r\n\r\n`
          )
          assert.match(huge.response, /^HTTP\/1\.1 431 /)
          assert.isTrue(huge.closed)

          // Headers that never end: the connection is answered 408 and closed within the request
          // timeout plus Node's checking interval, never held open.
          const slow = yield* raw(address, "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n", 5_000)
          assert.isTrue(slow.closed, "a stalled request is closed")
          assert.match(slow.response, /^(HTTP\/1\.1 408 |$)/)

          // Bound to loopback: a request for another host (a page rebinding its DNS name) is refused.
          const rebound = yield* raw(address, "GET /status HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
          assert.match(rebound.response, /^HTTP\/1\.1 403 /)
          for (const host of ["localhost:1234", "127.0.0.1", `127.0.0.1:${address.port}`, "[::1]:80", "LOCALHOST"]) {
            const ok = yield* raw(address, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
            assert.match(ok.response, /^HTTP\/1\.1 200 /, host)
          }

          // The endpoint still serves after all of that.
          assert.strictEqual((yield* request(address, "/healthz")).status, 200)
        })
      ),
    30_000
  )

  it.live(
    "with a token, every route but /healthz needs it; the token never appears in a response",
    () =>
      isolated(
        Effect.gen(function* () {
          const { proxyAdmin, serverAdmin } = yield* pair({ token: Redacted.make(TOKEN) })
          for (const admin of [proxyAdmin, serverAdmin]) {
            const address = admin.address
            assert.strictEqual((yield* request(address, "/healthz")).status, 200)
            for (const path of ["/", "/status", "/ready", "/metrics", "/dashboard.json"]) {
              const none = yield* request(address, path)
              assert.strictEqual(none.status, 401, path)
              assert.match(none.headers.get("www-authenticate") ?? "", /^Basic realm=/)
              const wrong = yield* request(address, path, { headers: { authorization: `Bearer ${TOKEN}x` } })
              assert.strictEqual(wrong.status, 401, path)
              const prefix = yield* request(address, path, {
                headers: { authorization: `Bearer ${TOKEN.slice(0, 5)}` }
              })
              assert.strictEqual(prefix.status, 401, path)
              const bearer = yield* request(address, path, { headers: { authorization: `Bearer ${TOKEN}` } })
              assert.strictEqual(bearer.status, 200, path)
              const basic = yield* request(address, path, {
                headers: { authorization: `Basic ${Buffer.from(`ops:${TOKEN}`).toString("base64")}` }
              })
              assert.strictEqual(basic.status, 200, path)
              for (const reply of [none, wrong, bearer, basic]) {
                assert.notInclude(reply.body, TOKEN)
                for (const [, value] of reply.headers) assert.notInclude(value, TOKEN)
              }
            }
          }
        })
      ),
    30_000
  )

  it.live(
    "/ready flips to 503 within the keepalive bound when the link dies silently, and back after the redial",
    () =>
      isolated(
        Effect.gen(function* () {
          const keepalive = { keepaliveIntervalMillis: 300, keepaliveTimeoutMillis: 700 }
          const server = yield* Server.make({ listen: loopback, session: keepalive })
          const path = yield* relay(server.address)
          const proxy = yield* Proxy.make({
            listen: loopback,
            upstream: path.address,
            session: keepalive,
            retry: { initialMillis: 20, maxMillis: 100 }
          })
          const admin = yield* Admin.make(Observed.fromProxy(proxy), { listen: loopback })
          const readyStatus = Effect.map(request(admin.address, "/ready"), (reply) => reply.status)
          assert.isTrue(
            yield* until(
              Effect.map(readyStatus, (s) => s === 200),
              5_000
            ),
            "ready once the link is up"
          )

          path.blackhole()
          // Dead within interval + timeout of the last frame; a margin for the scheduler. The first
          // 503 is kept: the redial through the relay may bring the link back right after it.
          const bound = keepalive.keepaliveIntervalMillis + keepalive.keepaliveTimeoutMillis + 1_500
          let down: { status: number; body: string } | undefined
          const flipped = yield* until(
            Effect.map(request(admin.address, "/ready"), (reply) => {
              if (reply.status === 503) down ??= reply
              return down !== undefined
            }),
            bound
          )
          assert.isTrue(flipped, "503 within the keepalive bound")
          const body = JSON.parse(down!.body) as { ready: boolean; reason: string }
          assert.strictEqual(body.ready, false)
          assert.include(body.reason, `no link to ${Tcp.formatAddress(path.address)}`)

          // The relay passes new connections: the proxy redials and is ready again.
          assert.isTrue(
            yield* until(
              Effect.map(readyStatus, (s) => s === 200),
              5_000
            ),
            "ready again after the redial"
          )
          // A later session may have come and gone on a loaded machine; at least one redial happened.
          assert.isAtLeast(proxy.link.generation(), 2)
        })
      ),
    30_000
  )

  it.live(
    "a server is not ready while all its session slots are taken",
    () =>
      isolated(
        Effect.gen(function* () {
          const server = yield* Server.make({ listen: loopback, maxSessions: 1 })
          const admin = yield* Admin.make(Observed.fromServer(server), { listen: loopback })
          assert.strictEqual((yield* request(admin.address, "/ready")).status, 200)
          const proxy = yield* Proxy.make({ listen: loopback, upstream: server.address })
          assert.isTrue(
            yield* until(
              Effect.sync(() => proxy.link.current() !== undefined),
              5_000
            )
          )
          const full = yield* request(admin.address, "/ready")
          assert.strictEqual(full.status, 503)
          assert.deepStrictEqual(JSON.parse(full.body), {
            ready: false,
            reason: "1 of 1 links in use (--max-sessions)"
          })
        })
      ),
    30_000
  )

  it.live(
    "a server that dials its proxy (connect) is ready only while its link is up",
    () =>
      isolated(
        Effect.gen(function* () {
          const proxy = yield* Proxy.make({ listen: loopback, linkListen: { listen: loopback } })
          // The path to the proxy starts cut: the server dials and fails until it is restored.
          const path = yield* cuttable(proxy.linkAddress!, true)
          const server = yield* Server.make({
            connect: { address: path.address, retry: { initialMillis: 20, maxMillis: 100 } }
          })
          const admin = yield* Admin.make(Observed.fromServer(server), { listen: loopback, pingMillis: 0 })
          const ready = (status: number) =>
            until(
              Effect.map(request(admin.address, "/ready"), (reply) => reply.status === status),
              5_000
            )

          const before = yield* request(admin.address, "/ready")
          assert.strictEqual(before.status, 503)
          assert.include(
            (JSON.parse(before.body) as { reason: string }).reason,
            `no link to ${Tcp.formatAddress(path.address)}`
          )

          path.restore()
          assert.isTrue(yield* ready(200), "ready once its link is up")
          const status = yield* Status.decode((yield* request(admin.address, "/status")).body)
          assert.strictEqual(status.listen, "none")
          assert.strictEqual(status.upstream, Tcp.formatAddress(path.address))
          assert.strictEqual(status.links.length, 1)
          assert.include(Status.render(status), `dials ${Tcp.formatAddress(path.address)}`)
          // The link carries streams: a client of the proxy gets the server's echo.
          const echoed = yield* echoes(proxy.address, 1, 5000)
          assert.deepStrictEqual(echoed, [5000])

          path.cut()
          assert.isTrue(yield* ready(503), "not ready once its link is gone")
          const down = yield* request(admin.address, "/ready")
          assert.strictEqual((JSON.parse(down.body) as { ready: boolean }).ready, false)
          path.restore()
          assert.isTrue(yield* ready(200), "ready again after the redial")
        })
      ),
    30_000
  )

  it.live(
    "as layers: beside a proxy, beside a server, and NothingToObserve beside neither",
    () =>
      isolated(
        Effect.gen(function* () {
          const serverContext = yield* Layer.build(Server.layer({ listen: loopback }))
          const server = Context.get(serverContext, Server.Server)
          const ProxyLive = Proxy.layer({ listen: loopback, upstream: server.address })
          const proxyAdmin = Context.get(
            yield* Layer.build(Admin.layer({ listen: loopback }).pipe(Layer.provide(ProxyLive))),
            Admin.Admin
          )
          assert.strictEqual(proxyAdmin.observed.role, "proxy")
          assert.isTrue(
            yield* until(
              Effect.map(request(proxyAdmin.address, "/ready"), (r) => r.status === 200),
              5_000
            )
          )
          const serverAdmin = Context.get(
            yield* Layer.build(
              Admin.layerServer({ listen: loopback, target: "10.0.0.9:5432" }).pipe(
                Layer.provide(Layer.succeedContext(serverContext))
              )
            ),
            Admin.Admin
          )
          const status = yield* Status.decode((yield* request(serverAdmin.address, "/status")).body)
          assert.strictEqual(status.role, "server")
          assert.strictEqual(status.services[0]!.address, "10.0.0.9:5432")
          const error = yield* Effect.flip(Layer.build(Admin.layer({ listen: loopback })))
          assert.strictEqual(error.reason._tag, "NothingToObserve")
        })
      ),
    30_000
  )

  it.live(
    "a port in use fails with a typed ListenFailed",
    () =>
      isolated(
        Effect.gen(function* () {
          const server = yield* Server.make({ listen: loopback })
          const taken = yield* Tcp.listen(loopback)
          const error = yield* Effect.flip(Admin.make(Observed.fromServer(server), { listen: taken.address }))
          assert.strictEqual(error._tag, "AdminError")
          assert.strictEqual(error.reason._tag, "ListenFailed")
          assert.include(error.message, `admin: cannot listen on ${Tcp.formatAddress(taken.address)}`)
        })
      ),
    30_000
  )
})
