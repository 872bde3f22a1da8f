/**
 * The Kubernetes manifests against the CLI itself, black-box: the image's ENTRYPOINT (run from
 * source) with each container's args, env and config file (see cli.ts for the few replacements a
 * machine without a cluster needs).
 *
 * - Every flag the manifests pass and every PLAIT_* variable they set is one the command's own
 *   `--help` documents (a misspelt one is reported).
 * - Run like the pods: the server and the proxy start, the config file of the ConfigMap is accepted
 *   by the config loader, the server asks for the token it got from the Secret, the kubelet's probes
 *   (exactly as the manifests declare them: path, no headers) get 200 on both, bytes cross the
 *   tunnel unchanged, and SIGTERM ends each within the grace period, after announcing the drain the
 *   manifest's `--drain-timeout` sets.
 * - A drifted manifest (an unknown flag, a bad value in the ConfigMap) is refused by the real CLI
 *   with exit 2 naming the setting.
 */
import { Buffer } from "node:buffer"
import { spawnSync } from "node:child_process"
import process from "node:process"
import { assert, describe, it } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import { request, until } from "../admin/helpers.ts"
import {
  type CliProcess,
  connect,
  E2eError,
  payload,
  sameBytes,
  spawnProcess,
  startEchoBackend
} from "../e2e/helpers.ts"
import { connectRaw } from "../hardening/harness.ts"
import { helpProblems, type Launch, launchOf, readHelp } from "./cli.ts"
import {
  copy,
  type Deploy,
  flag,
  loadDeploy,
  type PlaitContainer,
  parseDuration,
  plaitContainers
} from "./manifests.ts"

const deploy = loadDeploy()
const containerOf = (d: Deploy, command: string): PlaitContainer => {
  const found = plaitContainers(d).find((c) => c.command === command)
  if (found === undefined) throw new Error(`no ${command} container`)
  return found
}

/** `plait <command> --help` of the image's entry, as the container would print it. */
const helpOf = (command: string) => {
  const launch = launchOf(deploy, containerOf(deploy, command))
  try {
    const result = spawnSync(launch.command, [launch.args[0]!, command, "--help"], {
      encoding: "utf8",
      timeout: 60_000,
      env: { PATH: process.env.PATH, ...launch.env }
    })
    if (result.status !== 0) throw new Error(`plait ${command} --help exited ${result.status}: ${result.stderr}`)
    return readHelp(result.stdout)
  } finally {
    launch.cleanup()
  }
}

/** Runs a container as the test's process; its temporary files go with the scope. */
const run = (name: string, launch: Launch): Effect.Effect<CliProcess, E2eError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* Effect.addFinalizer(() => Effect.sync(launch.cleanup))
    return yield* spawnProcess(name, launch.command, launch.args, { env: launch.env })
  })

/** The port a startup line announces (generous deadline: a loaded 2-core machine starts slowly). */
const bound = (cli: CliProcess, pattern: RegExp) =>
  Effect.map(cli.waitForLine(pattern, "30 seconds"), (match) => Number(match[1]))

/** The first `n` bytes a fresh connection to `port` receives without sending anything. */
const greeting = (port: number, n: number) =>
  Effect.gen(function* () {
    const socket = yield* connectRaw(port, (message) => new E2eError({ message }))
    return yield* Effect.callback<Buffer, E2eError>((resume) => {
      const chunks: Array<Buffer> = []
      socket.on("data", (chunk: Buffer) => {
        chunks.push(chunk)
        const all = Buffer.concat(chunks)
        if (all.length >= n) resume(Effect.succeed(all.subarray(0, n)))
      })
      socket.on("close", () => resume(Effect.fail(new E2eError({ message: `port ${port} closed before ${n} bytes` }))))
    }).pipe(
      Effect.timeoutOrElse({
        duration: "5 seconds",
        orElse: () => Effect.fail(new E2eError({ message: `no ${n} bytes from ${port}` }))
      })
    )
  })

/** What the kubelet does for one of the container's probes: GET path on the admin port, no headers. */
const probe = (c: PlaitContainer, which: "readinessProbe" | "livenessProbe", adminPort: number) =>
  Effect.map(
    request({ host: "127.0.0.1", port: adminPort }, c.container[which]!.httpGet!.path!),
    (reply) => reply.status
  )

/** The seconds a pod may take from SIGTERM to its end: the grace period less the preStop sleep. */
const termBudgetMillis = (c: PlaitContainer) => {
  const grace = c.deployment.spec?.template.spec?.terminationGracePeriodSeconds ?? 30
  const sleep = Number(c.container.lifecycle?.preStop?.exec?.command?.at(-1) ?? 0)
  return (grace - sleep) * 1000
}

describe("deploy/kubernetes against the plait CLI", () => {
  it("every flag and PLAIT_* variable the manifests use is one the command's --help documents", () => {
    const helps = new Map(["server", "proxy"].map((command) => [command, helpOf(command)]))
    const of = (command: string) => helps.get(command) ?? { flags: new Set<string>(), env: new Set<string>() }
    assert.deepStrictEqual(helpProblems(plaitContainers(deploy), of), [])

    const drift = copy(deploy)
    const server = containerOf(drift, "server")
    server.container.args![server.container.args!.indexOf("--drain-timeout")] = "--drain-timout"
    server.container.env![0]!.name = "PLAIT_TOKN"
    assert.deepStrictEqual(helpProblems([containerOf(drift, "server")], of), [
      "server-deployment.yaml: Deployment plait-server container server: plait server has no flag --drain-timout",
      "server-deployment.yaml: Deployment plait-server container server: plait server reads no variable PLAIT_TOKN"
    ])
  }, 120_000)

  it.live(
    "run as the pods run: config accepted, token required, probes 200, bytes intact, SIGTERM drains within the grace period",
    () =>
      Effect.gen(function* () {
        const backend = yield* startEchoBackend
        const serverC = containerOf(deploy, "server")
        const proxyC = containerOf(deploy, "proxy")

        const server = yield* run(
          "server",
          launchOf(deploy, serverC, { extraEnv: { PLAIT_TARGET: `127.0.0.1:${backend.port}` } })
        )
        const serverPort = yield* bound(server, /server: listening on 127\.0\.0\.1:(\d+)/)
        const serverAdmin = yield* bound(server, /admin: listening on http:\/\/127\.0\.0\.1:(\d+)/)
        // The token from the Secret is in force: the server opens every link with its challenge.
        const challenge = yield* greeting(serverPort, 10)
        assert.strictEqual(challenge.toString("latin1"), "plait-auth")
        assert.strictEqual(yield* probe(serverC, "livenessProbe", serverAdmin), 200)
        assert.strictEqual(yield* probe(serverC, "readinessProbe", serverAdmin), 200)

        const proxy = yield* run("proxy", launchOf(deploy, proxyC, { upstream: `127.0.0.1:${serverPort}` }))
        const proxyPort = yield* bound(proxy, /proxy: listening on 127\.0\.0\.1:(\d+)/)
        const proxyAdmin = yield* bound(proxy, /admin: listening on http:\/\/127\.0\.0\.1:(\d+)/)
        assert.strictEqual(yield* probe(proxyC, "livenessProbe", proxyAdmin), 200)
        // Ready once its link (authenticated with the same Secret) is up.
        const ready = yield* until(
          Effect.map(probe(proxyC, "readinessProbe", proxyAdmin), (status) => status === 200),
          20_000
        )
        assert.isTrue(ready, `the proxy's readiness probe never answered 200\n${proxy.output()}`)

        const sent = payload(256 * 1024, 13)
        const client = yield* connect(proxyPort)
        yield* client.write(sent)
        yield* client.end
        const result = yield* client.result("10 seconds")
        assert.strictEqual(result.end, "eof")
        assert.isTrue(sameBytes(result.data, sent), `echo of ${sent.length} bytes (got ${result.data.length})`)

        for (const [cli, c] of [
          [proxy, proxyC],
          [server, serverC]
        ] as const) {
          const started = Date.now()
          yield* cli.signal("SIGTERM")
          const drain = yield* cli.waitForLine(
            /SIGTERM received: shutting down; open streams may finish for up to (\d+) ms/
          )
          assert.strictEqual(Number(drain[1]), parseDuration(flag(c, "--drain-timeout")!))
          const exit = yield* cli.waitForExit(termBudgetMillis(c))
          assert.deepStrictEqual(exit, { code: 0, signal: null }, cli.output())
          assert.isBelow(Date.now() - started, termBudgetMillis(c))
        }
      }),
    90_000
  )

  it.live(
    "a drifted manifest is refused by the real CLI: exit 2 naming the flag or the config key",
    () =>
      Effect.gen(function* () {
        const flagDrift = copy(deploy)
        const proxy = containerOf(flagDrift, "proxy")
        proxy.container.args!.push("--max-clinets", "100")
        const refusedFlag = yield* run("proxy", launchOf(flagDrift, containerOf(flagDrift, "proxy")))
        assert.deepStrictEqual(yield* refusedFlag.waitForExit("20 seconds"), { code: 2, signal: null })
        assert.match(refusedFlag.output(), /--max-clinets/)

        const configDrift = copy(deploy)
        const data = (
          configDrift.manifests.find((m) => m.object.kind === "ConfigMap")!.object as { data: Record<string, string> }
        ).data
        data["server.yaml"] = data["server.yaml"]!.replace("max-sessions: 16", "max-sessions: lots")
        const refusedConfig = yield* run("server", launchOf(configDrift, containerOf(configDrift, "server")))
        assert.deepStrictEqual(yield* refusedConfig.waitForExit("20 seconds"), { code: 2, signal: null })
        assert.match(refusedConfig.output(), /max-sessions/)
      }),
    60_000
  )
})
