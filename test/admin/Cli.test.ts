/**
 * The admin endpoint as deployed: real `plait server` and `plait proxy` processes with `--admin`,
 * over a TLS link with a token, and `plait status` reading them. Black-box: only ports, HTTP and
 * the processes' output and exit codes. No response or status screen may carry a secret: the link
 * token, the admin token, the TLS key (its path or its contents).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Tcp from "../../src/transport/Tcp.ts"
import { type CliProcess, root, spawnCli, spawnProcess } from "../e2e/helpers.ts"
import { makePki } from "../security/certs.ts"
import { request, until } from "./helpers.ts"

const LINK_TOKEN = "link-secret-7d2e4b91c0a5f3e8"
const ADMIN_TOKEN = "admin-secret-1b6f0c3a9e7d2485"

const ADMIN_LINE = /admin: listening on http:\/\/127\.0\.0\.1:(\d+)/

/** The admin port a plait process announced. */
const adminPort = (cli: CliProcess) => Effect.map(cli.waitForLine(ADMIN_LINE), (match) => Number(match[1]))

/** `plait status` with `args`: its exit code and output. */
const status = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>> = {}) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cli = yield* spawnProcess(
        "status",
        path.join(root, "node_modules/.bin/node"),
        [path.join(root, "src/cli/bin.ts"), "status", ...args],
        { env }
      )
      const exit = yield* cli.waitForExit("15 seconds")
      return { code: exit.code, output: cli.lines().join("\n") }
    })
  )

/** The secret files of a TLS server, in a temporary directory removed with the scope. */
const secrets = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "plait-admin-"))
    const pki = makePki()
    const write = (name: string, text: string) => {
      const file = path.join(dir, name)
      fs.writeFileSync(file, text, { mode: 0o600 })
      return file
    }
    return {
      dir,
      cert: write("server.pem", pki.server.cert),
      key: write("server-key.pem", pki.server.key),
      ca: write("ca.pem", pki.ca.cert),
      keyText: pki.server.key
    }
  }),
  ({ dir }) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

describe("admin endpoint of the plait processes", () => {
  it.live(
    "--admin serves both processes; plait status prints them; no secret in any response",
    () =>
      Effect.gen(function* () {
        const files = yield* secrets
        const server = yield* spawnCli("node", "server", [
          "--listen",
          "127.0.0.1:0",
          "--tls-cert",
          files.cert,
          "--tls-key",
          files.key,
          "--token",
          LINK_TOKEN,
          "--admin",
          "127.0.0.1:0",
          "--admin-token",
          ADMIN_TOKEN
        ])
        const serverPort = Number((yield* server.waitForLine(/server: listening on 127\.0\.0\.1:(\d+)/))[1])
        const serverAdmin = { host: "127.0.0.1", port: yield* adminPort(server) }
        const proxy = yield* spawnCli("node", "proxy", [
          "--listen",
          "127.0.0.1:0",
          "--upstream",
          `127.0.0.1:${serverPort}`,
          "--tls-ca",
          files.ca,
          "--token",
          LINK_TOKEN,
          "--admin",
          "127.0.0.1:0",
          "--admin-token",
          ADMIN_TOKEN
        ])
        const proxyAdmin = { host: "127.0.0.1", port: yield* adminPort(proxy) }
        yield* proxy.waitForLine(/link: up to/)
        const auth = { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }
        assert.isTrue(
          yield* until(
            Effect.map(request(proxyAdmin, "/ready", auth), (r) => r.status === 200),
            10_000
          ),
          "the proxy is ready once its link is up"
        )

        const forbidden = [LINK_TOKEN, ADMIN_TOKEN, files.key, files.cert, files.ca, files.dir, "PRIVATE KEY"]
        for (const admin of [proxyAdmin, serverAdmin]) {
          for (const route of ["/", "/status", "/ready", "/healthz", "/metrics", "/dashboard.json", "/nope"]) {
            for (const init of [auth, {}]) {
              const reply = yield* request(admin, route, init)
              const everything = [reply.body, ...Array.from(reply.headers, ([k, v]) => `${k}: ${v}`)].join("\n")
              for (const secret of forbidden) assert.notInclude(everything, secret, `${route} leaks a secret`)
            }
          }
        }

        const shown = yield* status(["--admin", `127.0.0.1:${proxyAdmin.port}`, "--admin-token", ADMIN_TOKEN])
        assert.strictEqual(shown.code, 0, shown.output)
        assert.match(shown.output, /^plait proxy 0\.1\.0 on node /m)
        assert.match(shown.output, /^READY /m)
        assert.include(shown.output, `127.0.0.1:${serverPort}`)
        assert.match(shown.output, /links \(1\)/)
        assert.include(shown.output, "maxClients=10000")
        const shownServer = yield* status(["--admin", `127.0.0.1:${serverAdmin.port}`], {
          PLAIT_ADMIN_TOKEN: ADMIN_TOKEN
        })
        assert.strictEqual(shownServer.code, 0, shownServer.output)
        assert.match(shownServer.output, /^plait server /m)
        assert.include(shownServer.output, "maxSessions=64")
        for (const output of [shown.output, shownServer.output, proxy.output(), server.output()]) {
          for (const secret of [LINK_TOKEN, ADMIN_TOKEN, files.keyText.split("\n")[1]!]) {
            assert.notInclude(output, secret)
          }
        }

        const noToken = yield* status(["--admin", `127.0.0.1:${proxyAdmin.port}`])
        assert.strictEqual(noToken.code, 1)
        assert.include(noToken.output, "the admin endpoint requires a token (--admin-token)")
        const wrong = yield* status(["--admin", `127.0.0.1:${proxyAdmin.port}`, "--admin-token", "not-it"])
        assert.strictEqual(wrong.code, 1)
        assert.include(wrong.output, "refused the token")
        assert.notInclude(wrong.output, "not-it")
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "plait status: unreachable exits 1, a bad --admin exits 2; --admin-token needs --admin; a taken admin port exits 1",
    () =>
      Effect.gen(function* () {
        // Port 1 on loopback: nothing listens there.
        const unreachable = yield* status(["--admin", "127.0.0.1:1"])
        assert.strictEqual(unreachable.code, 1)
        assert.match(unreachable.output, /^plait status: http:\/\/127\.0\.0\.1:1: cannot reach the admin endpoint/)
        const bad = yield* status(["--admin", "nowhere"])
        assert.strictEqual(bad.code, 2)
        assert.include(bad.output, "--admin must be HOST:PORT")

        // The admin port is taken: the process cannot start (exit 1) and says which address.
        const taken = yield* Tcp.listen({ host: "127.0.0.1", port: 0 })
        const busy = yield* spawnCli("node", "server", [
          "--listen",
          "127.0.0.1:0",
          "--admin",
          `127.0.0.1:${taken.address.port}`
        ])
        const busyExit = yield* busy.waitForExit("15 seconds")
        assert.strictEqual(busyExit.code, 1)
        assert.include(busy.output(), `admin: cannot listen on 127.0.0.1:${taken.address.port}`)

        const lonely = yield* spawnCli("node", "server", ["--listen", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN])
        const exit = yield* lonely.waitForExit("15 seconds")
        assert.strictEqual(exit.code, 2)
        assert.include(lonely.output(), "--admin-token needs --admin HOST:PORT")
        assert.notInclude(lonely.output(), ADMIN_TOKEN)
      }).pipe(Effect.scoped),
    60_000
  )
})
