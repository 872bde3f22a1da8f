/**
 * Helpers of the admin endpoint tests: a proxy and a server with admin endpoints on loopback port 0,
 * HTTP requests with a deadline, raw requests over a socket (for malformed and slow ones), a
 * TCP relay that can silently drop a link (no FIN, no RST), as a dead network path does, and
 * `promtool check metrics` as a process.
 */
import { spawn } from "node:child_process"
import * as net from "node:net"
import { Data, Effect, Layer, Metric, type Redacted, type Scope } from "effect"
import * as Admin from "../../src/admin/Admin.ts"
import * as Events from "../../src/observability/Events.ts"
import * as Metrics from "../../src/observability/Metrics.ts"
import * as Observed from "../../src/observability/Observed.ts"
import * as Proxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import type { SessionConfig } from "../../src/session/Config.ts"
import type { TcpAddress } from "../../src/transport/Tcp.ts"

export const loopback = { host: "127.0.0.1", port: 0 }

/** An HTTP exchange that failed or took too long. */
export class HttpFailure extends Data.TaggedError("HttpFailure")<{ readonly message: string }> {}

export interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly body: string
}

/** One request with `fetch`, bounded by 5 s. */
export const request = (address: TcpAddress, path: string, init: RequestInit = {}): Effect.Effect<Reply, HttpFailure> =>
  Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(`http://${address.host}:${address.port}${path}`, {
        ...init,
        signal: AbortSignal.any([signal, AbortSignal.timeout(5_000)])
      })
      return { status: response.status, headers: response.headers, body: await response.text() }
    },
    catch: (cause) => new HttpFailure({ message: `${path}: ${String(cause)}` })
  })

/**
 * Writes `text` on a fresh socket (optionally pausing `stallMillis` after it without ending it)
 * and returns everything the server sent until it closed the connection, bounded by `timeoutMillis`.
 */
export const raw = (
  address: TcpAddress,
  text: string,
  timeoutMillis = 5_000
): Effect.Effect<{ readonly response: string; readonly closed: boolean }> =>
  Effect.callback((resume) => {
    const socket = net.connect(address.port, address.host)
    let response = ""
    let done = false
    const finish = (closed: boolean) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resume(Effect.succeed({ response, closed }))
    }
    const timer = setTimeout(() => finish(false), timeoutMillis)
    socket.setEncoding("latin1")
    socket.on("data", (chunk: string) => {
      response += chunk
    })
    socket.on("error", () => finish(true))
    socket.on("close", () => finish(true))
    socket.write(text)
    return Effect.sync(() => finish(false))
  })

/** A proxy and a server, each with an admin endpoint, on loopback; metrics in a fresh registry. */
export interface Pair {
  readonly server: Server.ServerService
  readonly proxy: Proxy.ProxyService
  readonly serverAdmin: Admin.AdminService
  readonly proxyAdmin: Admin.AdminService
}

export const pair = (
  options: {
    readonly token?: Redacted.Redacted<string>
    readonly session?: Partial<SessionConfig>
    readonly upstream?: TcpAddress
    readonly admin?: Partial<Admin.AdminOptions>
    /** Named services beside the default one: echoed by the server, each on a loopback port of the proxy. */
    readonly services?: ReadonlyArray<string>
  } = {}
): Effect.Effect<Pair, unknown, Scope.Scope | Events.Events> =>
  Effect.gen(function* () {
    const names = options.services ?? []
    const server = yield* Server.make({
      listen: loopback,
      services: Object.fromEntries(names.map((name) => [name, Server.echo])),
      ...(options.session ? { session: options.session } : {})
    })
    const proxy = yield* Proxy.make({
      listen: loopback,
      upstream: options.upstream ?? server.address,
      services: Object.fromEntries(names.map((name) => [name, loopback])),
      ...(options.session ? { session: options.session } : {}),
      retry: { initialMillis: 20, maxMillis: 200 }
    })
    const adminOptions = {
      listen: loopback,
      sampleMillis: 200,
      ...(options.token === undefined ? {} : { token: options.token }),
      ...options.admin
    }
    const serverAdmin = yield* Admin.make(Observed.fromServer(server), adminOptions)
    const proxyAdmin = yield* Admin.make(Observed.fromProxy(proxy), adminOptions)
    return { server, proxy, serverAdmin, proxyAdmin }
  })

/** Runs `effect` with the event bus, the event metrics and a metric registry of its own. */
export const isolated = <A, E>(effect: Effect.Effect<A, E, Events.Events | Scope.Scope>) =>
  effect.pipe(
    Effect.scoped,
    Effect.provide(Layer.provideMerge(Metrics.layer, Events.Events.layer)),
    Effect.provideService(Metric.MetricRegistry, new Map())
  )

/** Polls `check` every 20 ms until it holds or `deadlineMillis` passed; returns whether it held. */
export const until = <E, R>(check: Effect.Effect<boolean, E, R>, deadlineMillis: number) =>
  Effect.gen(function* () {
    const tries = Math.ceil(deadlineMillis / 20)
    for (let i = 0; i < tries; i++) {
      if (yield* check) return true
      yield* Effect.sleep(20)
    }
    return yield* check
  })

/** A TCP relay to `target` whose current connections can be made silent (bytes dropped, nothing closed). */
export interface Relay {
  readonly address: TcpAddress
  /** From now on, bytes on the current connections go nowhere; new connections are relayed. */
  readonly blackhole: () => void
}

export const relay = (target: TcpAddress): Effect.Effect<Relay, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<{ readonly relay: Relay; readonly server: net.Server; readonly sockets: Set<net.Socket> }>(
      (resume) => {
        const sockets = new Set<net.Socket>()
        const pairs = new Set<readonly [net.Socket, net.Socket]>()
        const server = net.createServer((client) => {
          const upstream = net.connect(target.port, target.host)
          for (const socket of [client, upstream]) {
            sockets.add(socket)
            socket.on("error", () => {})
            socket.on("close", () => sockets.delete(socket))
          }
          client.pipe(upstream)
          upstream.pipe(client)
          pairs.add([client, upstream])
        })
        server.listen(0, "127.0.0.1", () => {
          const port = (server.address() as net.AddressInfo).port
          resume(
            Effect.succeed({
              server,
              sockets,
              relay: {
                address: { host: "127.0.0.1", port },
                blackhole: () => {
                  for (const [a, b] of pairs) {
                    a.unpipe(b)
                    b.unpipe(a)
                    // Keep reading and drop what arrives: the peers see an open, silent path.
                    a.on("data", () => {})
                    b.on("data", () => {})
                  }
                  pairs.clear()
                }
              }
            })
          )
        })
      }
    ),
    ({ server, sockets }) =>
      Effect.sync(() => {
        for (const socket of sockets) socket.destroy()
        server.close()
      })
  ).pipe(Effect.map(({ relay }) => relay))

/** `promtool check metrics` (Debian's Prometheus tools) on `exposition`: its exit code and output; killed after 10 s. */
export const promtool = (exposition: string) =>
  Effect.callback<{ readonly code: number | null; readonly output: string }>((resume) => {
    const child = spawn("promtool", ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (chunk) => (output += chunk))
    child.stderr.on("data", (chunk) => (output += chunk))
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000)
    child.on("close", (code) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code, output }))
    })
    child.stdin.end(exposition)
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** A TCP relay to `target` that can be cut (its connections destroyed, new ones refused) and restored. */
export interface Cuttable {
  readonly address: TcpAddress
  /** Destroys every relayed connection and refuses new ones until {@link restore}. */
  readonly cut: () => void
  readonly restore: () => void
}

export const cuttable = (target: TcpAddress, down = false): Effect.Effect<Cuttable, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<{ readonly path: Cuttable; readonly server: net.Server; readonly sockets: Set<net.Socket> }>(
      (resume) => {
        const sockets = new Set<net.Socket>()
        let refusing = down
        const server = net.createServer((client) => {
          if (refusing) {
            client.destroy()
            return
          }
          const upstream = net.connect(target.port, target.host)
          for (const socket of [client, upstream]) {
            sockets.add(socket)
            socket.on("error", () => {})
            socket.on("close", () => {
              sockets.delete(socket)
              client.destroy()
              upstream.destroy()
            })
          }
          client.pipe(upstream)
          upstream.pipe(client)
        })
        server.listen(0, "127.0.0.1", () => {
          const port = (server.address() as net.AddressInfo).port
          const path: Cuttable = {
            address: { host: "127.0.0.1", port },
            cut: () => {
              refusing = true
              for (const socket of sockets) socket.destroy()
            },
            restore: () => {
              refusing = false
            }
          }
          resume(Effect.succeed({ path, server, sockets }))
        })
      }
    ),
    ({ server, sockets }) =>
      Effect.sync(() => {
        for (const socket of sockets) socket.destroy()
        server.close()
      })
  ).pipe(Effect.map(({ path }) => path))
