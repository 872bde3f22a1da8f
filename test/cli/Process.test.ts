/**
 * The `plait` binary as a process on Node: exit codes, what goes to stdout and to stderr, `--help`,
 * `--version`, `--config` good and bad, and SIGHUP re-reading the config file (a bad file is logged
 * as one line naming the key and the file and the running config is kept; a good one is handed to
 * the command's `reload`, or logged as applying at the next start; the reload path also on Bun and
 * Deno). Every process is killed when its test ends; every wait has a deadline.
 */
import { execFile, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { envName, proxySettings } from "../../src/cli/Options.ts"
import {
  freePort,
  listeningPort,
  payload,
  type RuntimeName,
  root,
  roundTrip,
  runtimes,
  sameBytes,
  spawnProcess,
  startProxy
} from "../e2e/helpers.ts"
import { connectRaw, HardeningError } from "../hardening/harness.ts"

const node = path.join(root, "node_modules/.bin/node")
const bin = path.join(root, "src/cli/bin.ts")
const version = (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }).version

interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `node src/cli/bin.ts ...args` to its end (killed after 40 s), stdout and stderr apart. */
const plait = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Effect.Effect<Ran> =>
  Effect.callback<Ran>((resume) => {
    const child = execFile(
      node,
      [bin, ...args],
      {
        cwd: root,
        env: { PATH: process.env.PATH ?? "", NO_COLOR: "1", ...env },
        timeout: 40_000,
        killSignal: "SIGKILL"
      },
      (error, stdout, stderr) =>
        resume(
          Effect.succeed({
            code: error === null ? 0 : typeof error.code === "number" ? error.code : null,
            stdout,
            stderr
          })
        )
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/**
 * A loopback port that never answers (as in test/hardening/DialTimeout.test.ts): a child process
 * listens with a backlog of 1 and blocks its event loop; two connections fill the kernel's queue,
 * after which every SYN is dropped. The child is killed and the fillers closed with the scope.
 */
const blackHole = Effect.gen(function* () {
  const child = yield* Effect.acquireRelease(
    Effect.sync(() =>
      spawn(
        process.execPath,
        [
          "-e",
          `const s = require("node:net").createServer()
s.listen({ host: "127.0.0.1", port: 0, backlog: 1 }, () => {
  process.stdout.write(String(s.address().port) + "\\n")
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)
})`
        ],
        { stdio: ["ignore", "pipe", "inherit"] }
      )
    ),
    (child) => Effect.sync(() => child.kill("SIGKILL"))
  )
  const port = yield* Effect.callback<number, HardeningError>((resume) => {
    child.stdout.once("data", (chunk: Buffer) => resume(Effect.succeed(Number(String(chunk).trim()))))
    child.once("exit", (code) => resume(Effect.fail(new HardeningError({ message: `black hole exited (${code})` }))))
  }).pipe(Effect.timeout(5_000), Effect.orDie)
  for (let i = 0; i < 2; i++) yield* connectRaw(port, (message) => new HardeningError({ message })).pipe(Effect.orDie)
  return port
})

const dir = mkdtempSync(path.join(tmpdir(), "plait-cli-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const file = (name: string, text: string) => {
  const at = path.join(dir, name)
  writeFileSync(at, text)
  return at
}

describe("plait binary", () => {
  it.live(
    "refusals exit 2 with one line on stderr and nothing on stdout; --help and --version exit 0 on stdout",
    () =>
      Effect.gen(function* () {
        const badConfig = file("bad.yaml", "listen: 127.0.0.1:0\nmax-clients: many\n")
        const [listen, unknownKey, noCommand, help, serverHelp, versionRun] = yield* Effect.all(
          [
            plait(["proxy", "--listen", "bad"]),
            plait(["server", "--config", badConfig]),
            plait([]),
            plait(["proxy", "--help"]),
            plait(["server", "-h"]),
            plait(["--version"])
          ],
          { concurrency: 3 }
        )
        assert.deepStrictEqual(listen, {
          code: 2,
          stdout: "",
          stderr: 'plait proxy: --listen must be HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000 (got "bad")\n'
        })
        assert.deepStrictEqual(unknownKey, {
          code: 2,
          stdout: "",
          stderr: `plait server: max-clients (in ${badConfig}) is not a setting of plait server (see --help)\n`
        })
        // No command: the usage, on stderr, as a usage error.
        assert.strictEqual(noCommand.code, 2)
        assert.strictEqual(noCommand.stdout, "")
        assert.include(noCommand.stderr, "plait <subcommand> [flags]")

        assert.strictEqual(help.code, 0)
        assert.strictEqual(help.stderr, "")
        assert.include(help.stdout, "plait proxy [flags]")
        for (const setting of Object.values(proxySettings)) {
          const fallback = "list" in setting ? setting.defaultDoc : (setting.default ?? setting.defaultDoc)
          assert.include(help.stdout, `${setting.flag} `)
          assert.include(help.stdout, `(env ${envName(setting.flag)}, default ${fallback})`)
        }
        assert.include(help.stdout, "--version")
        assert.notInclude(help.stdout, "--completions", "effect/cli built-ins plait does not offer")
        assert.strictEqual(serverHelp.code, 0)
        assert.include(serverHelp.stdout, "--target HOST:PORT")
        assert.notInclude(serverHelp.stdout, "--upstream")

        assert.deepStrictEqual(versionRun, { code: 0, stdout: `plait ${version}\n`, stderr: "" })
      }),
    90_000
  )

  it.live(
    "--config: the server listens where its file says, and flags still win over the file",
    () =>
      Effect.gen(function* () {
        const port = yield* freePort
        const config = file("server.toml", `listen = "127.0.0.1:${port}"\nmax-sessions = 2\n`)
        const server = yield* spawnProcess("server", node, [bin, "server", "--config", config])
        assert.strictEqual(yield* listeningPort(server, "20 seconds"), port)
        const other = yield* spawnProcess("server2", node, [
          bin,
          "server",
          "--config",
          config,
          "--listen",
          "127.0.0.1:0"
        ])
        assert.notStrictEqual(yield* listeningPort(other, "20 seconds"), port)
      }),
    60_000
  )

  it.live(
    "SIGHUP: a bad file is logged naming key and file and the server keeps serving; a good one is re-read",
    () =>
      Effect.gen(function* () {
        const config = file("hup.yaml", "listen: 127.0.0.1:0\nmax-sessions: 4\n")
        const server = yield* spawnProcess("server", node, [bin, "server", "--config", config])
        const port = yield* listeningPort(server, "20 seconds")

        writeFileSync(config, "listen: 127.0.0.1:0\nmax-sessions: none\n")
        yield* server.signal("SIGHUP")
        yield* server.waitForLine(
          new RegExp(
            `ERROR server: SIGHUP: max-sessions \\(in ${config.replaceAll("/", "\\/")}\\) must be a whole number \\(got "none"\\); keeping the running config`
          )
        )
        // Still the same server, still serving: a proxy's client round-trips through its echo.
        const proxy = yield* startProxy("node", port)
        const bytes = payload(64 * 1024, 7)
        const echoed = yield* roundTrip(proxy.port, bytes)
        assert.ok(sameBytes(echoed.data, bytes), "echo after a refused reload")

        writeFileSync(config, "listen: 127.0.0.1:0\nmax-sessions: 5\n")
        yield* server.signal("SIGHUP")
        // The server applies what it can at once (its services) and says what waits for the next start.
        yield* server.waitForLine(/WARN {2}server: max-sessions changed: they take effect at the next start/)
        yield* server.waitForLine(/INFO {2}server: SIGHUP: reloaded .*hup\.yaml; changed: max-sessions/)
        yield* server.signal("SIGHUP")
        yield* server.waitForLine(/server: SIGHUP: reloaded .*hup\.yaml; nothing changed/)

        yield* server.signal("SIGTERM")
        assert.deepStrictEqual(yield* server.waitForExit("20 seconds"), { code: 0, signal: null }, server.output())
        assert.isUndefined(
          server.lines().find((line) => line.includes("max-sessions: none")),
          "the file's text is never logged"
        )
      }),
    60_000
  )

  it.live(
    "SIGHUP: --dial-timeout is applied live, and the log says so: the next stream to a black-holed target is reset at the new timeout",
    () =>
      Effect.gen(function* () {
        const hole = yield* blackHole
        const config = file("dial.yaml", `listen: 127.0.0.1:0\ntarget: 127.0.0.1:${hole}\ndial-timeout: 60s\n`)
        const server = yield* spawnProcess("server", node, [bin, "server", "--config", config])
        const port = yield* listeningPort(server, "20 seconds")

        writeFileSync(config, `listen: 127.0.0.1:0\ntarget: 127.0.0.1:${hole}\ndial-timeout: 400ms\n`)
        yield* server.signal("SIGHUP")
        // The default service's entry is replaced with the new timeout; nothing waits for a restart.
        yield* server.waitForLine(/server: services reloaded: 0 added, 0 removed, 1 changed, 0 unchanged/)
        yield* server.waitForLine(/INFO {2}server: SIGHUP: reloaded .*dial\.yaml; changed: dial-timeout$/)
        assert.isUndefined(
          server.lines().find((line) => line.includes("next start")),
          server.output()
        )

        const proxy = yield* startProxy("node", port)
        const result = yield* roundTrip(proxy.port, payload(1000, 3))
        assert.strictEqual(result.end, "error", "the client is reset, not left waiting for the old 60 s")
        yield* server.waitForLine(/backend dial failed: cannot connect to 127\.0\.0\.1:\d+: no answer within 400 ms/)
      }),
    60_000
  )

  /** The reloadable fixture under `runtime` (Deno: loopback, the repository and the test's files only). */
  const reloadable = (runtime: RuntimeName, args: ReadonlyArray<string>) => {
    const fixture = path.join(root, "test/cli/fixtures/reloadable.ts")
    const exe = path.join(root, "node_modules/.bin", runtime)
    return runtime === "deno"
      ? spawnProcess(`reloadable@${runtime}`, exe, [
          "run",
          "--no-remote",
          "--cached-only",
          "--no-lock",
          "--no-prompt",
          "--allow-net=127.0.0.1",
          "--allow-env",
          `--allow-read=${root},${dir}`,
          "--allow-sys",
          fixture,
          ...args
        ])
      : spawnProcess(`reloadable@${runtime}`, exe, [fixture, ...args])
  }

  for (const runtime of runtimes) {
    it.live(
      `SIGHUP on ${runtime}: a command's reload gets the new config; a reload that fails keeps the running one`,
      () =>
        Effect.gen(function* () {
          const config = file(`reload-${runtime}.toml`, "max-clients = 10\n")
          const proxy = yield* reloadable(runtime, ["proxy", "--config", config])
          yield* proxy.waitForLine(/proxy: listening on 127\.0\.0\.1:1, max-clients 10/, "20 seconds")

          writeFileSync(config, "max-clients = 11\n")
          yield* proxy.signal("SIGHUP")
          yield* proxy.waitForLine(/proxy: reload applied: max-clients 11/)
          yield* proxy.waitForLine(/proxy: SIGHUP: reloaded .*\.toml; changed: max-clients$/)

          writeFileSync(config, "max-clients = 13\n")
          yield* proxy.signal("SIGHUP")
          yield* proxy.waitForLine(
            /ERROR proxy: SIGHUP: applying .*\.toml failed: 13 clients is unlucky; keeping the running config/
          )
          // The running config is still 11: going back to 11 changes nothing.
          writeFileSync(config, "max-clients = 11\n")
          yield* proxy.signal("SIGHUP")
          yield* proxy.waitForLine(/proxy: SIGHUP: reloaded .*\.toml; nothing changed/)

          writeFileSync(config, "max-clients = 12\nbogus = 1\n")
          yield* proxy.signal("SIGHUP")
          yield* proxy.waitForLine(/ERROR proxy: SIGHUP: bogus \(in .*\.toml\) is not a setting of plait proxy/)
          assert.notInclude(proxy.output(), "max-clients 12")

          yield* proxy.signal("SIGTERM")
          assert.deepStrictEqual(yield* proxy.waitForExit("20 seconds"), { code: 0, signal: null }, proxy.output())
        }),
      60_000
    )
  }
})
