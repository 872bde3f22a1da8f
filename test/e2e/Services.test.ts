/**
 * Named services through the CLI, over real processes on mixed runtimes: two services over one link
 * reach two different backends byte-exact with no byte of one reaching the other; a stream for a
 * service the server lacks is reset and logged with its name while the link lives on; and SIGHUP
 * reloads the services of both processes from their config files under load, dropping no stream of
 * the unchanged service.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import {
  type CliProcess,
  connect,
  payload,
  root,
  roundTrip,
  sameBytes,
  spawnCli,
  startBackend,
  startProxy,
  startServer
} from "./helpers.ts"

/** Echoes, and records each connection's bytes (as hex) under its backend's name. */
const recordingBackend = (seen: Array<string>) =>
  startBackend((socket) => {
    const chunks: Array<Buffer> = []
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk)
      socket.write(chunk)
    })
    socket.on("end", () => {
      seen.push(Buffer.concat(chunks).toString("hex"))
      socket.end()
    })
  })

/** The port a proxy printed for service `name`. */
const servicePort = (proxy: CliProcess, name: string) =>
  Effect.map(proxy.waitForLine(new RegExp(`proxy: service ${name} listening on 127\\.0\\.0\\.1:(\\d+)`)), (match) =>
    Number(match[1])
  )

/** A scratch directory under the repo (Deno may read there), removed with the scope. */
const scratch = Effect.acquireRelease(
  Effect.sync(() => {
    const base = path.join(root, ".scratch")
    fs.mkdirSync(base, { recursive: true })
    return fs.mkdtempSync(path.join(base, "services-"))
  }),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

describe("e2e: services", () => {
  it.live(
    "two services over one link (proxy@bun, server@deno) reach two backends byte-exact, none of one's bytes at the other",
    () =>
      Effect.gen(function* () {
        const seenA: Array<string> = []
        const seenB: Array<string> = []
        const a = yield* recordingBackend(seenA)
        const b = yield* recordingBackend(seenB)
        const server = yield* startServer("deno", [
          "--service",
          `alpha=127.0.0.1:${a.port}`,
          "--service",
          `beta=127.0.0.1:${b.port}`
        ])
        const proxy = yield* startProxy("bun", server.port, [
          "--service",
          "alpha=127.0.0.1:0",
          "--service",
          "beta=127.0.0.1:0"
        ])
        const ports = {
          alpha: yield* servicePort(proxy.process, "alpha"),
          beta: yield* servicePort(proxy.process, "beta")
        }
        const jobs = Array.from({ length: 16 }, (_, i) => ({
          service: i % 2 === 0 ? ("alpha" as const) : ("beta" as const),
          bytes: payload(1 + ((i * 91_019) % (900 * 1024)), 500 + i)
        }))
        const results = yield* Effect.forEach(jobs, (job) => roundTrip(ports[job.service], job.bytes), {
          concurrency: "unbounded"
        })
        results.forEach((result, i) => {
          assert.strictEqual(result.end, "eof", `client ${i}`)
          assert.ok(sameBytes(result.data, jobs[i]!.bytes), `client ${i}: bytes differ`)
        })
        const hex = (service: string) =>
          jobs
            .filter((job) => job.service === service)
            .map((job) => Buffer.from(job.bytes).toString("hex"))
            .sort()
        assert.deepStrictEqual([...seenA].sort(), hex("alpha"), "alpha's backend saw exactly alpha's clients")
        assert.deepStrictEqual([...seenB].sort(), hex("beta"), "beta's backend saw exactly beta's clients")
        assert.strictEqual(proxy.process.lines().filter((line) => line.includes("link: up to")).length, 1)
      }),
    60_000
  )

  it.live(
    "a service the server does not have (proxy@node, server@node): that client is reset, the name is logged, the link lives on",
    () =>
      Effect.gen(function* () {
        const server = yield* startServer("node", [])
        const proxy = yield* startProxy("node", server.port, ["--service", "ghost=127.0.0.1:0"])
        const ghost = yield* servicePort(proxy.process, "ghost")
        const refused = yield* roundTrip(ghost, payload(100, 1))
        assert.strictEqual(refused.end, "error")
        yield* server.process.waitForLine(/unknown service "ghost"; stream reset/)
        const echoed = yield* roundTrip(proxy.port, payload(200_000, 2))
        assert.ok(sameBytes(echoed.data, payload(200_000, 2)), "the default service still works on the same link")
        assert.strictEqual(proxy.process.lines().filter((line) => line.includes("link: up to")).length, 1)
      }),
    60_000
  )

  it.live(
    "SIGHUP under load (proxy@node, server@bun): services added and removed on both sides, no stream of the unchanged one dropped",
    () =>
      Effect.gen(function* () {
        const dir = yield* scratch
        const seen: Array<string> = []
        const steady = yield* recordingBackend(seen)
        const old = yield* recordingBackend([])
        const fresh = yield* recordingBackend([])
        const serverConfig = path.join(dir, "server.yaml")
        const proxyConfig = path.join(dir, "proxy.toml")
        fs.writeFileSync(
          serverConfig,
          `listen: 127.0.0.1:0\nservices:\n  steady: 127.0.0.1:${steady.port}\n  old: 127.0.0.1:${old.port}\n`
        )
        const server = yield* spawnCli("bun", "server", ["--config", serverConfig])
        const serverPort = Number((yield* server.waitForLine(/listening on 127\.0\.0\.1:(\d+)/))[1])
        fs.writeFileSync(
          proxyConfig,
          `listen = "127.0.0.1:0"\nupstream = "127.0.0.1:${serverPort}"\n[services]\nsteady = "127.0.0.1:0"\nold = "127.0.0.1:0"\n`
        )
        const proxy = yield* spawnCli("node", "proxy", ["--config", proxyConfig])
        yield* proxy.waitForLine(/link: up to/)
        const steadyPort = yield* servicePort(proxy, "steady")
        const oldPort = yield* servicePort(proxy, "old")

        // A client of "steady" held open across both reloads, and a stream of round trips on it.
        const held = yield* connect(steadyPort)
        yield* held.write(payload(1000, 1))
        yield* held.waitForBytes(1000)
        let stop = false
        const failures: Array<string> = []
        let rounds = 0
        const load = yield* Effect.forkChild(
          Effect.forEach(
            [0, 1, 2, 3],
            (worker) =>
              Effect.gen(function* () {
                // Bounded by `stop` (set after the reloads) and by 400 rounds per worker.
                for (let i = 0; i < 400 && !stop; i++) {
                  const bytes = payload(32 * 1024, worker * 1000 + i)
                  const got = yield* roundTrip(steadyPort, bytes)
                  rounds++
                  if (got.end !== "eof" || !sameBytes(got.data, bytes)) {
                    failures.push(
                      `worker ${worker} round ${i}: ${got.end} ${got.error ?? ""}, ${got.data.length} bytes`
                    )
                  }
                }
              }),
            { concurrency: "unbounded" }
          )
        )
        // Bounded polling on the load's own counter: the reloads happen while round trips run.
        const untilRounds = (n: number) =>
          Effect.gen(function* () {
            const deadline = Date.now() + 20_000
            while (rounds < n && failures.length === 0) {
              if (Date.now() > deadline) return yield* Effect.die(new Error(`only ${rounds} of ${n} round trips`))
              yield* Effect.sleep("10 millis")
            }
          })
        yield* untilRounds(8)

        fs.writeFileSync(
          serverConfig,
          `listen: 127.0.0.1:0\nservices:\n  steady: 127.0.0.1:${steady.port}\n  fresh:\n    target: 127.0.0.1:${fresh.port}\n`
        )
        yield* server.signal("SIGHUP")
        yield* server.waitForLine(/services reloaded: 1 added, 1 removed, 0 changed, 2 unchanged/)
        fs.writeFileSync(
          proxyConfig,
          `listen = "127.0.0.1:0"\nupstream = "127.0.0.1:${serverPort}"\n[services]\nsteady = "127.0.0.1:0"\nfresh = "127.0.0.1:0"\n`
        )
        yield* proxy.signal("SIGHUP")
        yield* proxy.waitForLine(/services reloaded: 1 added, 1 removed, 0 changed, 2 unchanged/)
        const freshPort = yield* servicePort(proxy, "fresh")
        yield* untilRounds(rounds + 8)
        stop = true
        yield* Fiber.join(load)

        assert.deepStrictEqual(failures, [], `${rounds} round trips of the unchanged service`)
        assert.isAtLeast(rounds, 8)
        // The held client finishes byte-exact.
        yield* held.write(payload(1000, 2))
        yield* held.end
        const heldEnd = yield* held.result()
        assert.strictEqual(heldEnd.end, "eof")
        assert.ok(sameBytes(heldEnd.data, new Uint8Array([...payload(1000, 1), ...payload(1000, 2)])))
        // The added service works; the removed one's port accepts nobody.
        const viaFresh = yield* roundTrip(freshPort, payload(5000, 3))
        assert.ok(sameBytes(viaFresh.data, payload(5000, 3)))
        const viaOld = yield* Effect.exit(roundTrip(oldPort, payload(10, 4), "5 seconds"))
        assert.isTrue(viaOld._tag === "Failure" || viaOld.value.end === "error", "the removed service's port is closed")
        assert.strictEqual(
          proxy.lines().filter((line) => line.includes("link: up to")).length,
          1,
          "one link throughout"
        )
      }).pipe(Effect.scoped),
    90_000
  )
})
