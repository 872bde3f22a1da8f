/**
 * The admin endpoint: an HTTP server beside a proxy or a server that serves what operators and
 * their tools need — `/metrics` (Prometheus text format), `/healthz`, `/ready`, `/status` (JSON),
 * and a live dashboard at `/`. Built on Effect's HTTP modules (`HttpRouter` served by the
 * platform's `NodeHttpServer`, which runs on Node, Bun and Deno alike).
 *
 * Invariants:
 * - Off the data path: every figure is read from counters the proxy or server keeps anyway (see
 *   `Observed`); the endpoint's own work is one sampler tick per second and whatever is requested.
 * - `/healthz` answers 200 whenever the process serves HTTP at all. `/ready` answers 200 only while
 *   the component should get traffic (proxy: a link is up; server: below its session limit), else
 *   503 with a JSON reason.
 * - With a token, every route but `/healthz` requires it (`Authorization: Bearer TOKEN`, or HTTP
 *   Basic with the token as password so that a browser can open the dashboard); it is compared in
 *   constant time and never appears in a response or a log line. No response carries a key, a TLS
 *   file path or its contents.
 * - Bad requests get a defined answer and bounded resources: unknown paths 404, other methods than
 *   GET/HEAD 405 (with `Allow`), a missing or wrong token 401, any request body 413, headers over
 *   `maxHeaderBytes` 431, a request not received within `requestTimeoutMillis` 408 (or the
 *   connection closed), at most `maxConnections` connections at once. Bound to loopback, it answers
 *   403 to a request whose `Host` is not a loopback name (DNS rebinding).
 *
 * @since 0.1.0
 */
import { Buffer } from "node:buffer"
import * as crypto from "node:crypto"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import process from "node:process"
import { NodeHttpServer } from "@effect/platform-node"
import { Clock, Context, Data, Effect, Layer, PubSub, Redacted } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { page } from "../internal/admin/Dashboard.ts"
import { History, listed } from "../internal/admin/History.ts"
import * as Events from "../observability/Events.ts"
import * as Metrics from "../observability/Metrics.ts"
import * as Observed from "../observability/Observed.ts"
import { TcpProxy } from "../proxy/Proxy.ts"
import { Server } from "../server/Server.ts"
import { formatAddress, type TcpAddress } from "../transport/Tcp.ts"
import type { Status } from "./Status.ts"

/**
 * plait's version, as `/status` reports it.
 *
 * @since 0.1.0
 * @category constants
 */
export const VERSION = "0.1.0"

/**
 * Options of {@link make} and the layers.
 *
 * @since 0.1.0
 * @category models
 */
export interface AdminOptions {
  /** Where the admin endpoint listens (keep it on loopback unless a token guards it). */
  readonly listen: TcpAddress
  /** Guards every route but `/healthz`. */
  readonly token?: Redacted.Redacted<string> | undefined
  /** Where a server's streams go, for `/status` (`echo` when absent). */
  readonly target?: string | undefined
  /** Seconds of one-per-second samples the dashboard can chart (default 900: 15 minutes). */
  readonly historySeconds?: number | undefined
  /** How often the dashboard history is sampled (default 1 s). */
  readonly sampleMillis?: number | undefined
  /** How often each link is pinged for its round-trip time (default 5 s; 0: never). */
  readonly pingMillis?: number | undefined
  /** Largest request head (request line and headers) accepted; more gets 431 (default 8 KiB). */
  readonly maxHeaderBytes?: number | undefined
  /** A request must be received within this (default 10 s); slower ones get 408. */
  readonly requestTimeoutMillis?: number | undefined
  /** Connections served at once; more are refused (default 64). */
  readonly maxConnections?: number | undefined
}

/**
 * The admin endpoint could not listen on its address.
 *
 * @since 0.1.0
 * @category errors
 */
export class ListenFailed extends Data.TaggedError("ListenFailed")<{
  readonly address: string
  readonly detail: string
}> {
  override get message(): string {
    return `admin: cannot listen on ${this.address}: ${this.detail}`
  }
}

/**
 * {@link layer} found neither a proxy nor a server to observe.
 *
 * @since 0.1.0
 * @category errors
 */
export class NothingToObserve extends Data.TaggedError("NothingToObserve")<{}> {
  override get message(): string {
    return "admin: no proxy (TcpProxy) or server (Server) in the context to observe"
  }
}

/**
 * Every reason the admin endpoint can fail.
 *
 * @since 0.1.0
 * @category errors
 */
export type AdminErrorReason = ListenFailed | NothingToObserve

/**
 * The admin domain's one error. Match on `reason._tag`.
 *
 * @since 0.1.0
 * @category errors
 */
export class AdminError extends Data.TaggedError("AdminError")<{ readonly reason: AdminErrorReason }> {
  override get message(): string {
    return this.reason.message
  }
}

/**
 * A running admin endpoint.
 *
 * @since 0.1.0
 * @category models
 */
export interface AdminService {
  /** The bound address (the real port when 0 was asked for). */
  readonly address: TcpAddress
  /** What it reports on. */
  readonly observed: Observed.Observed
  /** The `/status` document now. */
  readonly status: () => Status
}

/**
 * The admin endpoint as a service.
 *
 * @since 0.1.0
 * @category services
 */
export class Admin extends Context.Service<Admin, AdminService>()("plait/admin/Admin") {}

/** The runtime executing the process, with its version. */
const runtime = (): string => {
  const global = globalThis as { Deno?: { version: { deno: string } }; Bun?: { version: string } }
  if (global.Deno !== undefined) return `deno ${global.Deno.version.deno}`
  if (global.Bun !== undefined) return `bun ${global.Bun.version}`
  return `node ${process.versions.node}`
}

const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)

/**
 * Whether a `Host` header names this machine's loopback (`localhost`, `127.x.y.z`, `[::1]`, with
 * or without a port). An endpoint bound to loopback answers only those: a web page that rebinds its
 * own DNS name to 127.0.0.1 cannot read it through a visitor's browser.
 */
const loopbackHost = (header: string | undefined): boolean => {
  if (header === undefined || header === "") return true
  const host = header.startsWith("[") ? header.slice(1, header.indexOf("]")) : header.replace(/:\d+$/, "")
  return isLoopback(host.toLowerCase())
}

const digest = (text: string): Buffer => crypto.createHash("sha256").update(text).digest()

/** Whether an `Authorization` header carries `token` (Bearer, or Basic with any user name). */
const authorized = (header: string | undefined, token: Buffer): boolean => {
  if (header === undefined) return false
  const space = header.indexOf(" ")
  if (space < 0) return false
  const scheme = header.slice(0, space).toLowerCase()
  const value = header.slice(space + 1).trim()
  let given: string | undefined
  if (scheme === "bearer") given = value
  else if (scheme === "basic") {
    const decoded = Buffer.from(value, "base64").toString("utf8")
    const colon = decoded.indexOf(":")
    given = colon < 0 ? undefined : decoded.slice(colon + 1)
  }
  // Digests of equal length, compared in constant time: neither the token's length nor a prefix leaks.
  return given !== undefined && crypto.timingSafeEqual(digest(given), token)
}

const JSON_HEADERS = { "cache-control": "no-store", "x-content-type-options": "nosniff" }

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  HttpServerResponse.jsonUnsafe(body, { status, headers: { ...JSON_HEADERS, ...headers } })

const problem = (status: number, error: string, headers: Record<string, string> = {}) =>
  json({ error }, status, headers)

const sha256 = (text: string) => `'sha256-${crypto.createHash("sha256").update(text).digest("base64")}'`

/** The dashboard, built once, and a policy that lets exactly its own inline scripts run. */
const dashboard = (() => {
  const html = page()
  const scripts = Array.from(html.matchAll(/<script>([\s\S]*?)<\/script>/g), (m) => sha256(m[1]!))
  const csp = [
    "default-src 'none'",
    `script-src ${scripts.join(" ")}`,
    "style-src 'unsafe-inline'",
    "connect-src 'self'",
    "img-src data:",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'"
  ].join("; ")
  return { html, csp }
})()

const ALLOW = "GET, HEAD"

/**
 * Starts the admin endpoint for `observed`; it lives as long as the scope. Recent events come from
 * the {@link Events.Events} bus when one is provided.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function* (observed: Observed.Observed, options: AdminOptions) {
  const clock = yield* Clock.Clock
  const startedAt = clock.currentTimeMillisUnsafe()
  const sampleMillis = options.sampleMillis ?? 1_000
  const history = new History(Math.ceil(((options.historySeconds ?? 900) * 1000) / sampleMillis))
  const token = options.token === undefined ? undefined : digest(Redacted.value(options.token))
  const listen = formatAddress(options.listen)
  const loopbackOnly = isLoopback(options.listen.host)

  const probe = yield* Metrics.observe(observed, {
    ...(options.pingMillis === undefined ? {} : { pingMillis: options.pingMillis })
  })

  const bus = yield* Effect.serviceOption(Events.Events)
  if (bus._tag === "Some") {
    const subscription = yield* PubSub.subscribe(bus.value)
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.flatMap(PubSub.takeAll(subscription), (batch) =>
          Effect.andThen(
            Effect.sync(() => {
              const t = clock.currentTimeMillisUnsafe()
              for (const event of batch) history.record(event, t)
            }),
            // Let events gather (as the metrics subscriber does): one wake-up per batch.
            Effect.sleep(Metrics.BATCH_MILLIS)
          )
        )
      )
    )
  }
  history.sample(observed, startedAt)
  yield* Effect.forkScoped(
    Effect.forever(
      Effect.andThen(
        Effect.sleep(sampleMillis),
        Effect.sync(() => history.sample(observed, clock.currentTimeMillisUnsafe()))
      )
    )
  )

  const status = (): Status => {
    const now = clock.currentTimeMillisUnsafe()
    const readiness = observed.readiness()
    return {
      role: observed.role,
      version: VERSION,
      runtime: runtime(),
      pid: process.pid,
      startedAt: new Date(startedAt).toISOString(),
      uptimeSeconds: Math.round((now - startedAt) / 1000),
      listen: observed.listen,
      upstream: observed.upstream ?? null,
      ready: readiness.ready,
      reason: readiness.ready ? null : readiness.reason,
      links: observed.sessions().map((session) => {
        const stats = session.stats()
        return {
          peer: session.remoteAddress,
          since: new Date(session.startedAt).toISOString(),
          ageSeconds: Math.max(0, Math.round((now - session.startedAt) / 1000)),
          rttMillis: probe.rttMillis(session) ?? null,
          streams: stats.streams,
          bufferedBytes: stats.bufferedBytes
        }
      }),
      services: observed
        .services()
        .filter(listed)
        .map((s) => ({
          name: s.name,
          address: s.address,
          active: s.active,
          streams: s.streams,
          opened: s.opened,
          closed: s.closed,
          reset: s.reset,
          bytesUp: s.bytesUp,
          bytesDown: s.bytesDown
        })),
      limits: observed.limits(),
      process: { rssBytes: process.memoryUsage.rss(), eventLoopDelaySeconds: probe.lastEventLoopDelay() }
    }
  }

  /** Method, body and token checks shared by every route; `open` routes skip the token. */
  const route = (
    handler: Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>,
    open = false
  ) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      if (request.method !== "GET" && request.method !== "HEAD") {
        return Effect.succeed(problem(405, `method ${request.method} not allowed`, { allow: ALLOW }))
      }
      if (loopbackOnly && !loopbackHost(request.headers.host)) {
        return Effect.succeed(problem(403, "this admin endpoint answers only requests for a loopback host"))
      }
      const length = request.headers["content-length"]
      if ((length !== undefined && length !== "0") || request.headers["transfer-encoding"] !== undefined) {
        // Nothing here takes a body: refuse it rather than read it (the connection is closed).
        return Effect.succeed(problem(413, "request bodies are not accepted", { connection: "close" }))
      }
      if (!open && token !== undefined && !authorized(request.headers.authorization, token)) {
        return Effect.succeed(problem(401, "admin token required", { "www-authenticate": 'Basic realm="plait admin"' }))
      }
      return handler
    })

  const routes = Layer.effectDiscard(
    Effect.gen(function* () {
      const router = yield* HttpRouter.HttpRouter
      yield* router.add("*", "/healthz", route(Effect.succeed(json({ status: "ok" })), true))
      yield* router.add(
        "*",
        "/ready",
        route(
          Effect.sync(() => {
            const readiness = observed.readiness()
            return readiness.ready ? json({ ready: true }) : json({ ready: false, reason: readiness.reason }, 503)
          })
        )
      )
      yield* router.add("*", "/status", route(Effect.sync(() => json(status()))))
      yield* router.add(
        "*",
        "/metrics",
        route(
          // A service added by a reload a moment ago gets its series before this scrape, not at the next tick.
          Effect.map(Effect.andThen(Effect.sync(probe.refresh), PrometheusMetrics.format()), (body) =>
            HttpServerResponse.text(body, {
              contentType: "text/plain; version=0.0.4; charset=utf-8",
              headers: { "cache-control": "no-store" }
            })
          )
        )
      )
      yield* router.add(
        "*",
        "/dashboard.json",
        route(
          Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
            const since = Number(new URL(request.url, "http://admin").searchParams.get("since") ?? 0)
            return json({
              status: status(),
              samples: history.since(Number.isFinite(since) ? since : 0),
              events: history.events
            })
          })
        )
      )
      yield* router.add(
        "*",
        "/",
        route(
          Effect.succeed(
            HttpServerResponse.text(dashboard.html, {
              contentType: "text/html; charset=utf-8",
              headers: {
                "cache-control": "no-store",
                "content-security-policy": dashboard.csp,
                "x-content-type-options": "nosniff",
                "referrer-policy": "no-referrer"
              }
            })
          )
        )
      )
      yield* router.add("*", "*", Effect.succeed(problem(404, "not found")))
    })
  )

  const requestTimeout = options.requestTimeoutMillis ?? 10_000
  const nodeServer = createServer({
    maxHeaderSize: options.maxHeaderBytes ?? 8 * 1024,
    requestTimeout,
    headersTimeout: requestTimeout,
    // Node checks the timeouts above only this often (default 30 s).
    connectionsCheckingInterval: Math.min(1_000, requestTimeout)
  })
  nodeServer.maxConnections = options.maxConnections ?? 64
  const app = HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provide(
      NodeHttpServer.layer(() => nodeServer, {
        host: options.listen.host,
        port: options.listen.port,
        gracefulShutdownTimeout: 1_000
      })
    )
  )
  yield* Layer.build(app).pipe(
    Effect.mapError(
      (error) => new AdminError({ reason: new ListenFailed({ address: listen, detail: describe(error) }) })
    )
  )
  // Admin requests are short: at shutdown, connections still open (keep-alive, a dashboard) are cut.
  yield* Effect.addFinalizer(() => Effect.sync(() => nodeServer.closeAllConnections()))
  const bound = nodeServer.address() as AddressInfo
  const address: TcpAddress = { host: options.listen.host, port: bound.port }
  yield* Effect.logInfo(
    `admin: listening on http://${formatAddress(address)}${token === undefined ? "" : " (token required)"}`
  )
  if (!isLoopback(options.listen.host)) {
    yield* Effect.logWarning(
      token === undefined
        ? `admin: bound to ${listen}, beyond loopback, without --admin-token: anyone who can reach it sees the status and metrics`
        : `admin: bound to ${listen}, beyond loopback (token required; the token travels in clear over plain HTTP)`
    )
  }
  const service: AdminService = { address, observed, status }
  return service
})

const describe = (error: unknown): string => {
  const cause = (error as { cause?: unknown }).cause
  const inner = cause instanceof Error ? cause : error instanceof Error ? error : undefined
  const code = (inner as { code?: unknown } | undefined)?.code
  const text = inner?.message ?? String(error)
  return typeof code === "string" && !text.includes(code) ? `${code}: ${text}` : text
}

/**
 * The admin endpoint for the proxy in the context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerProxy = (options: AdminOptions): Layer.Layer<Admin, AdminError, TcpProxy> =>
  Layer.effect(
    Admin,
    Effect.flatMap(TcpProxy, (proxy) => make(Observed.fromProxy(proxy), options))
  )

/**
 * The admin endpoint for the server in the context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerServer = (options: AdminOptions): Layer.Layer<Admin, AdminError, Server> =>
  Layer.effect(
    Admin,
    Effect.flatMap(Server, (server) =>
      make(Observed.fromServer(server, options.target === undefined ? {} : { target: options.target }), options)
    )
  )

/**
 * The admin endpoint for whichever of a proxy (`TcpProxy`) or a server (`Server`) the context
 * holds, the proxy first; fails with `NothingToObserve` when it holds neither.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: AdminOptions): Layer.Layer<Admin, AdminError> =>
  Layer.effect(
    Admin,
    Effect.gen(function* () {
      const proxy = yield* Effect.serviceOption(TcpProxy)
      if (proxy._tag === "Some") return yield* make(Observed.fromProxy(proxy.value), options)
      const server = yield* Effect.serviceOption(Server)
      if (server._tag === "Some") {
        return yield* make(
          Observed.fromServer(server.value, options.target === undefined ? {} : { target: options.target }),
          options
        )
      }
      return yield* new AdminError({ reason: new NothingToObserve() })
    })
  )
