/**
 * Cross-runtime scenario: the admin endpoint (effect/http's router on the platform's node:http
 * server) beside a proxy and a server in this process — health, readiness, the status document,
 * the Prometheus exposition with the traffic just carried, the dashboard, and the defined answers
 * to bad requests (404, 405, 401 without the token, 413 for a body, 431 for a huge head, 408 and a
 * closed connection for a stalled one).
 */
import * as net from "node:net"
import { Effect, Layer, Redacted } from "effect"
import * as Admin from "../../../src/admin/Admin.ts"
import * as Status from "../../../src/admin/Status.ts"
import * as Events from "../../../src/observability/Events.ts"
import * as Metrics from "../../../src/observability/Metrics.ts"
import * as Observed from "../../../src/observability/Observed.ts"
import * as Proxy from "../../../src/proxy/Proxy.ts"
import * as Server from "../../../src/server/Server.ts"
import type * as Tcp from "../../../src/transport/Tcp.ts"
import { check, echoClients, runScenario } from "../lib.ts"

const loopback = { host: "127.0.0.1", port: 0 }
const TOKEN = "scenario-admin-token-0a9f"

const get = (address: Tcp.TcpAddress, path: string, init: RequestInit = {}) =>
  Effect.promise(async () => {
    const response = await fetch(`http://127.0.0.1:${address.port}${path}`, {
      ...init,
      signal: AbortSignal.timeout(5_000)
    })
    return { status: response.status, headers: response.headers, body: await response.text() }
  })

/** Writes `text` on a raw socket; what came back before the server closed it (or `OPEN` after `ms`). */
const raw = (port: number, text: string, ms: number) =>
  Effect.callback<string>((resume) => {
    const socket = net.connect(port, "127.0.0.1")
    let out = ""
    const timer = setTimeout(() => {
      socket.destroy()
      resume(Effect.succeed("OPEN"))
    }, ms)
    socket.setEncoding("latin1")
    socket.on("data", (chunk: string) => {
      out += chunk
    })
    socket.on("error", () => {})
    socket.on("close", () => {
      clearTimeout(timer)
      resume(Effect.succeed(out))
    })
    socket.write(text)
    return Effect.sync(() => {
      clearTimeout(timer)
      socket.destroy()
    })
  })

const auth = { headers: { authorization: `Bearer ${TOKEN}` } }

runScenario(
  "admin",
  Effect.gen(function* () {
    const server = yield* Server.make({ listen: loopback })
    const proxy = yield* Proxy.make({ listen: loopback, upstream: server.address })
    const options = { listen: loopback, token: Redacted.make(TOKEN), requestTimeoutMillis: 500 }
    const proxyAdmin = yield* Admin.make(Observed.fromProxy(proxy), options)
    const serverAdmin = yield* Admin.make(Observed.fromServer(server), options)

    yield* check(yield* echoClients(proxy.address, 8, () => 10_000, 4_096), "8 clients echoed through the proxy")

    const health = yield* get(proxyAdmin.address, "/healthz")
    yield* check(health.status === 200 && health.body === '{"status":"ok"}', "/healthz answers 200 without a token")
    for (const [name, admin] of [
      ["proxy", proxyAdmin],
      ["server", serverAdmin]
    ] as const) {
      const ready = yield* get(admin.address, "/ready", auth)
      yield* check(ready.status === 200, `${name} /ready answers 200 while it is ready`)
      const status = yield* Status.decode((yield* get(admin.address, "/status", auth)).body).pipe(Effect.orDie)
      yield* check(
        status.role === name && status.links.length === 1 && status.services[0]!.bytesUp === 80_000,
        `${name} /status decodes: one link, 80000 bytes up`
      )
    }
    const metrics = yield* get(proxyAdmin.address, "/metrics", auth)
    yield* check(
      metrics.status === 200 &&
        metrics.body.includes('plait_bytes_total{role="proxy",service="default",direction="down"} 80000'),
      "/metrics renders the bytes carried"
    )
    const page = yield* get(proxyAdmin.address, "/", auth)
    yield* check(page.status === 200 && page.body.includes("uPlot"), "the dashboard is served with its chart library")
    yield* check((yield* get(proxyAdmin.address, "/status")).status === 401, "no token: 401")
    yield* check((yield* get(proxyAdmin.address, "/nope", auth)).status === 404, "unknown route: 404")
    const post = yield* get(proxyAdmin.address, "/status", { ...auth, method: "POST" })
    yield* check(post.status === 405 && post.headers.get("allow") === "GET, HEAD", "POST: 405 with Allow")
    const port = proxyAdmin.address.port
    const body = yield* raw(
      port,
      "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
      5_000
    )
    yield* check(body.startsWith("HTTP/1.1 413 "), "a request body: 413")
    const huge = yield* raw(
      port,
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: ${"a".repeat(20_000)}\r\n\r\n`,
      5_000
    )
    yield* check(huge.startsWith("HTTP/1.1 431 "), "a 20 KB request head: 431 and closed")
    const stalled = yield* raw(port, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", 5_000)
    yield* check(stalled !== "OPEN" && /^(HTTP\/1\.1 408 |$)/.test(stalled), "a stalled request: 408 and closed")
  }).pipe(Effect.provide(Layer.provideMerge(Metrics.layer, Events.Events.layer)))
)
