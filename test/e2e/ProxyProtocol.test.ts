/**
 * The PROXY protocol against an independent implementation, haproxy 2.6 from Debian, over real
 * processes: haproxy parses the v1 and v2 headers a plait server sends its backends and logs the
 * client address it read, which must be the real client's (IPv4 and IPv6, address and port); and
 * haproxy in front of a plait proxy with `--accept-proxy-protocol` sends v1 and v2 headers whose
 * address survives the proxy, the link and the server, to a haproxy behind it. A client without a
 * header at such a proxy is closed.
 *
 * haproxy runs in the foreground (`-db`), logging one raw line per connection to stdout with the
 * `log-format` below; it is killed with each test's scope.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import {
  type CliProcess,
  E2eError,
  freePort,
  payload,
  root,
  roundTrip,
  sameBytes,
  spawnProcess,
  startBackend,
  startProxy,
  startServer
} from "./helpers.ts"

/** A scratch directory under the repo, removed with the scope. */
const scratch = Effect.acquireRelease(
  Effect.sync(() => {
    const base = path.join(root, ".scratch")
    fs.mkdirSync(base, { recursive: true })
    return fs.mkdtempSync(path.join(base, "haproxy-"))
  }),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** Whether something accepts on `host:port` now. */
const accepts = (host: string, port: number) =>
  Effect.callback<boolean>((resume) => {
    const socket = net.connect({ host, port })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(true))
    })
    socket.once("error", () => resume(Effect.succeed(false)))
    return Effect.sync(() => socket.destroy())
  })

/** Runs haproxy with `config` until the scope closes; waits (bounded) until `ports` accept. */
const haproxy = (
  config: string,
  ports: ReadonlyArray<readonly [string, number]>
): Effect.Effect<CliProcess, E2eError, Scope.Scope> =>
  Effect.gen(function* () {
    const dir = yield* scratch
    const file = path.join(dir, "haproxy.cfg")
    fs.writeFileSync(file, config)
    const process = yield* spawnProcess("haproxy", "haproxy", ["-db", "-f", file])
    const deadline = Date.now() + 10_000
    for (const [host, port] of ports) {
      // Bounded by the deadline: haproxy prints nothing when it is ready.
      while (!(yield* accepts(host, port))) {
        if (Date.now() > deadline || process.exited() !== undefined) {
          return yield* new E2eError({ message: `haproxy did not listen on ${host}:${port}\n${process.output()}` })
        }
        yield* Effect.sleep("20 millis")
      }
    }
    return process
  })

const GLOBAL = `global
  log stdout format raw local0
defaults
  mode tcp
  log global
  option logasap
  timeout connect 5s
  timeout client 30s
  timeout server 30s
`

/** A frontend that reads a PROXY header (`accept-proxy`) and logs the client address it carried. */
const parsing = (name: string, port: number, echoPort: number) => `
frontend ${name}
  bind 127.0.0.1:${port} accept-proxy
  log-format "${name} client=%ci:%cp"
  default_backend ${name}_echo
backend ${name}_echo
  server echo 127.0.0.1:${echoPort}
`

/** haproxy's log line for `frontend` naming client `address:port`. */
const clientLine = (frontend: string, address: string, port: number) =>
  new RegExp(`^${frontend} client=${address.replaceAll(".", "\\.")}:${port}$`)

/** A round trip from a client whose local address and port are returned with the result. */
const fromClient = (host: string, port: number, bytes: Uint8Array) =>
  Effect.callback<{ readonly data: Uint8Array; readonly localPort: number }, E2eError>((resume) => {
    const socket = net.connect({ host, port, allowHalfOpen: true })
    const chunks: Array<Buffer> = []
    let localPort = 0
    const timer = setTimeout(() => {
      socket.destroy()
      resume(Effect.fail(new E2eError({ message: `client of ${host}:${port}: no end within 15 s` })))
    }, 15_000)
    socket.on("connect", () => {
      localPort = socket.localPort ?? 0
      socket.end(bytes)
    })
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.on("end", () => {
      clearTimeout(timer)
      socket.destroy()
      resume(Effect.succeed({ data: new Uint8Array(Buffer.concat(chunks)), localPort }))
    })
    socket.on("error", (error) => {
      clearTimeout(timer)
      resume(Effect.fail(new E2eError({ message: `client of ${host}:${port}: ${error.message}` })))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      socket.destroy()
    })
  })

describe("e2e: PROXY protocol with haproxy", () => {
  it.live(
    "the server's v1 and v2 headers, parsed by haproxy, carry the real client's address and port, IPv4 and IPv6",
    () =>
      Effect.gen(function* () {
        const echo = yield* startBackend((socket) => socket.pipe(socket))
        const v1 = yield* freePort
        const v2 = yield* freePort
        const ha = yield* haproxy(
          `${GLOBAL}${parsing("parse_v1", v1, echo.port)}${parsing("parse_v2", v2, echo.port)}`,
          [
            ["127.0.0.1", v1],
            ["127.0.0.1", v2]
          ]
        )
        const server = yield* startServer("node", [
          "--service",
          `four1=127.0.0.1:${v1},proxy-protocol=v1`,
          "--service",
          `four2=127.0.0.1:${v2},proxy-protocol=v2`,
          "--service",
          `six1=127.0.0.1:${v1},proxy-protocol=v1`,
          "--service",
          `six2=127.0.0.1:${v2},proxy-protocol=v2`
        ])
        const proxy = yield* startProxy("node", server.port, [
          "--service",
          "four1=127.0.0.1:0",
          "--service",
          "four2=127.0.0.1:0",
          "--service",
          "six1=[::1]:0",
          "--service",
          "six2=[::1]:0"
        ])
        const port = (name: string, host: string) =>
          Effect.map(
            proxy.process.waitForLine(
              new RegExp(
                `proxy: service ${name} listening on ${host.replaceAll(".", "\\.").replace("[", "\\[").replace("]", "\\]")}:(\\d+)`
              )
            ),
            (m) => Number(m[1])
          )
        const cases = [
          { service: "four1", host: "127.0.0.1", listen: "127.0.0.1", frontend: "parse_v1" },
          { service: "four2", host: "127.0.0.1", listen: "127.0.0.1", frontend: "parse_v2" },
          { service: "six1", host: "::1", listen: "[::1]", frontend: "parse_v1" },
          { service: "six2", host: "::1", listen: "[::1]", frontend: "parse_v2" }
        ]
        for (const [i, c] of cases.entries()) {
          const bytes = payload(70_000, 40 + i)
          const result = yield* fromClient(c.host, yield* port(c.service, c.listen), bytes)
          assert.ok(sameBytes(result.data, bytes), `${c.service}: the echo behind haproxy`)
          yield* ha.waitForLine(clientLine(c.frontend, c.host, result.localPort))
        }
      }),
    60_000
  )

  it.live(
    "haproxy in front (send-proxy and send-proxy-v2) → proxy@bun --accept-proxy-protocol → server@node → haproxy: the address survives",
    () =>
      Effect.gen(function* () {
        const echo = yield* startBackend((socket) => socket.pipe(socket))
        const parse = yield* freePort
        const lbV1 = yield* freePort
        const lbV2 = yield* freePort
        const lbV1six = yield* freePort
        // The default service, named explicitly to give it a PROXY protocol header toward haproxy.
        const server = yield* startServer("node", ["--service", `default=127.0.0.1:${parse},proxy-protocol=v2`])
        const proxy = yield* startProxy("bun", server.port, ["--accept-proxy-protocol"])
        const lb = (name: string, binds: ReadonlyArray<string>, send: string) => `
frontend ${name}
  ${binds.map((bind) => `bind ${bind}`).join("\n  ")}
  log-format "${name} client=%ci:%cp"
  default_backend ${name}_plait
backend ${name}_plait
  server plait 127.0.0.1:${proxy.port} ${send}
`
        const ha = yield* haproxy(
          `${GLOBAL}${parsing("parse", parse, echo.port)}${lb("lb_v1", [`127.0.0.1:${lbV1}`, `[::1]:${lbV1six}`], "send-proxy")}${lb("lb_v2", [`127.0.0.1:${lbV2}`], "send-proxy-v2")}`,
          [
            ["127.0.0.1", parse],
            ["127.0.0.1", lbV1],
            ["::1", lbV1six],
            ["127.0.0.1", lbV2]
          ]
        )
        const cases = [
          { host: "127.0.0.1", port: lbV1 },
          { host: "::1", port: lbV1six },
          { host: "127.0.0.1", port: lbV2 }
        ]
        for (const [i, c] of cases.entries()) {
          const bytes = payload(50_000, 60 + i)
          const result = yield* fromClient(c.host, c.port, bytes)
          assert.ok(sameBytes(result.data, bytes), `case ${i}: bytes through both hops`)
          yield* ha.waitForLine(clientLine("parse", c.host, result.localPort))
        }
        // A client that skips the load balancer has no header: closed, and nobody else is touched.
        const direct = yield* roundTrip(proxy.port, payload(100, 1))
        assert.strictEqual(direct.end, "error")
        assert.strictEqual(direct.data.length, 0)
        yield* proxy.process.waitForLine(/closing client: .*PROXY protocol header/)
      }),
    60_000
  )
})
