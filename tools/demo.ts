/**
 * `npm start`: plait end to end over real TCP. Starts the server (embedded echo) and the proxy
 * linked to it in this process, and a few hundred concurrent clients (`LoadGen.runMixed`) in a
 * worker thread (tools/demo-clients.ts) that connect to the proxy, exchange messages of random size
 * (16 B – 64 KiB) and reconnect every few dozen messages. Every byte that comes back is checked
 * against what was sent.
 *
 * The clients have their own thread, event loop and heap: the latency and connection-setup lines
 * therefore describe the proxy and the server (which share this process's event loop, as plait's
 * two ends of one link), not clients waiting behind them for the same event loop.
 *
 * On a terminal a live line shows clients connected, streams open on the server, connections
 * carried, bytes verified and MB/s; otherwise a plain line every 2 s. The summary tells how many
 * client connections the single TCP link carried, the bytes verified byte-exact and the message
 * latency. Exit code 0 only if every byte was verified and nothing failed, 1 otherwise, 2 on bad
 * options.
 *
 * Options (or environment): `--clients N` (`PLAIT_DEMO_CLIENTS`, default 300), `--duration SECONDS`
 * (`PLAIT_DEMO_DURATION`, default 6), `--max-message BYTES` (default 65536).
 *
 * @since 0.1.0
 */
import { performance } from "node:perf_hooks"
import process from "node:process"
import { Worker } from "node:worker_threads"
import { Data, Effect, Exit, References } from "effect"
import type * as LoadGen from "../bench/workloads.ts"
import { Proxy as PlaitProxy, Server } from "../src/index.ts"
import type { ClientsJob, ClientsMessage } from "./demo-clients.ts"

/** The clients' worker failed or exited before finishing. */
class DemoError extends Data.TaggedError("DemoError")<{ readonly message: string; readonly cause?: unknown }> {}

const usage = "usage: npm start -- [--clients N] [--duration SECONDS] [--max-message BYTES]"

const option = (name: string, env: string, fallback: number, min: number): number => {
  const args = process.argv.slice(2)
  const i = args.indexOf(name)
  const text = i >= 0 ? args[i + 1] : process.env[env] || undefined
  if (text === undefined) return fallback
  const value = Number(text)
  if (!Number.isFinite(value) || value < min) {
    process.stderr.write(`plait demo: ${name} must be a number ≥ ${min} (got ${JSON.stringify(text)})\n${usage}\n`)
    process.exit(2)
  }
  return value
}

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  process.stdout.write(`${usage}\n`)
  process.exit(0)
}

const clients = Math.floor(option("--clients", "PLAIT_DEMO_CLIENTS", 300, 1))
const durationSeconds = option("--duration", "PLAIT_DEMO_DURATION", 6, 0.1)
const maxMessage = Math.floor(option("--max-message", "PLAIT_DEMO_MAX_MESSAGE", 64 * 1024, 16))

const tty = process.stdout.isTTY === true
const int = (n: number) => Math.round(n).toLocaleString("en-US")
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`
const ms = (x: number) => (x >= 10 ? x.toFixed(1) : x.toFixed(2))

/**
 * Runs the clients in their worker; `onProgress` sees the worker's counters as they arrive. The
 * worker is terminated when the effect ends (also on interruption).
 */
const runClients = (job: ClientsJob, onProgress: (progress: LoadGen.Progress) => void) =>
  Effect.callback<{ readonly result: LoadGen.MixedResult; readonly busy: number }, Error>((resume) => {
    const worker = new Worker(new URL("./demo-clients.ts", import.meta.url), { workerData: job })
    let settled = false
    const settle = (effect: Effect.Effect<{ readonly result: LoadGen.MixedResult; readonly busy: number }, Error>) => {
      if (settled) return
      settled = true
      void worker.terminate()
      resume(effect)
    }
    worker.on("message", (message: ClientsMessage) => {
      if (message.type === "progress") onProgress(message.progress)
      else if (message.type === "done") {
        onProgress(message.progress)
        settle(Effect.succeed({ result: message.result, busy: message.busy }))
      } else settle(Effect.fail(new DemoError({ message: `clients failed: ${message.message}` })))
    })
    worker.on("error", (error) => settle(Effect.fail(new DemoError({ message: error.message, cause: error }))))
    worker.on("exit", (code) =>
      settle(Effect.fail(new DemoError({ message: `clients' worker exited (code ${code}) before finishing` })))
    )
    return Effect.sync(() => {
      settled = true
      void worker.terminate()
    })
  })

const program = Effect.gen(function* () {
  const server = yield* Server.make({ listen: { host: "127.0.0.1", port: 0 } })
  const proxy = yield* PlaitProxy.make({ listen: { host: "127.0.0.1", port: 0 }, upstream: server.address })
  const proxyAt = PlaitProxy.formatAddress(proxy.address)
  const serverAt = PlaitProxy.formatAddress(server.address)
  console.log(
    `plait demo: ${clients} clients (in a worker thread) → proxy ${proxyAt} ══ one yamux link ══ server ${serverAt} (echo)`
  )
  console.log(
    `  each client sends messages of 16 B – ${int(maxMessage)} B for ${durationSeconds} s, checks every echoed byte, and reconnects every 10–60 messages`
  )

  // The worker's latest counters (copied in as its progress messages arrive).
  let progress: LoadGen.Progress = { connected: 0, opened: 0, verifiedBytes: 0, requests: 0, errors: 0 }
  const started = performance.now()
  let lastBytes = 0
  let lastAt = started
  const line = (final = false) => {
    const t = performance.now()
    const rate = final
      ? (progress.verifiedBytes / Math.max(1, t - started)) * 1000
      : ((progress.verifiedBytes - lastBytes) / Math.max(1, t - lastAt)) * 1000
    lastBytes = progress.verifiedBytes
    lastAt = t
    const stats = proxy.stats()
    return `  ${((t - started) / 1000).toFixed(1).padStart(4)} s │ clients ${int(progress.connected).padStart(5)} connected │ streams ${int(server.stats().streams).padStart(5)} open │ ${int(stats.carried).padStart(6)} carried │ ${mb(progress.verifiedBytes).padStart(10)} verified │ ${(rate / 1e6).toFixed(1).padStart(6)} MB/s${progress.errors > 0 ? ` │ ${progress.errors} ERRORS` : ""}`
  }
  const ticker = tty
    ? setInterval(() => process.stdout.write(`\r${line()}\x1b[K`), 200)
    : setInterval(() => console.log(line()), 2000)

  const job: ClientsJob = { target: proxy.address, clients, durationMs: durationSeconds * 1000, maxMessage }
  const loop = performance.eventLoopUtilization()
  const { result, busy } = yield* runClients(job, (latest) => (progress = latest)).pipe(
    Effect.ensuring(Effect.sync(() => clearInterval(ticker)))
  )
  if (tty) process.stdout.write(`\r${line(true)}\x1b[K\n`)

  const stats = proxy.stats()
  const links = proxy.link.generation()
  const served = server.stats()
  const rate = result.verifiedBytes / result.seconds / 1e6
  console.log("")
  console.log("Summary")
  console.log(
    `  client connections carried   ${int(stats.carried)} (${clients} concurrent clients, ${stats.refused} refused)`
  )
  console.log(`  TCP links used               ${links}`)
  console.log(`  streams handled by server    ${int(served.handled + served.streams)}`)
  console.log(
    `  bytes verified byte-exact    ${int(result.verifiedBytes)} (${mb(result.verifiedBytes)}) in ${int(result.requests)} messages, ${result.errors} errors`
  )
  console.log(
    `  latency per message          p50 ${ms(result.latency.p50)} ms · p99 ${ms(result.latency.p99)} ms · max ${ms(result.latency.max)} ms`
  )
  console.log(
    `  connection setup             p50 ${ms(result.setup.p50)} ms · p99 ${ms(result.setup.p99)} ms (connect to first echo)`
  )
  console.log(
    `  connection close             p50 ${ms(result.close.p50)} ms · p99 ${ms(result.close.p99)} ms (FIN to FIN)`
  )
  console.log(`  throughput                   ${rate.toFixed(1)} MB/s echoed over ${result.seconds.toFixed(1)} s`)
  // Where the time went (Node measures event-loop utilization; Bun and Deno report 0).
  const plaitBusy = performance.eventLoopUtilization(loop).utilization
  if (plaitBusy > 0 && busy > 0) {
    console.log(
      `  event loop busy              plait (proxy + server) ${(plaitBusy * 100).toFixed(0)}% · clients (worker) ${(busy * 100).toFixed(0)}%`
    )
  }

  const problems: Array<string> = []
  if (result.errors > 0) problems.push(`${result.errors} errors, e.g. ${result.errorSamples.join("; ")}`)
  if (result.verifiedBytes === 0) problems.push("no bytes verified")
  if (result.completed !== result.connections) {
    problems.push(`${result.connections - result.completed} connections did not end cleanly`)
  }
  if (stats.carried !== result.connections) {
    problems.push(`proxy carried ${stats.carried} connections, clients opened ${result.connections}`)
  }
  if (links !== 1) problems.push(`${links} TCP links used instead of 1`)
  if (problems.length === 0) {
    console.log("OK: every byte came back exactly as sent, over a single TCP link.")
    return 0
  }
  for (const problem of problems) console.log(`FAILED: ${problem}`)
  return 1
}).pipe(Effect.scoped, Effect.provideService(References.MinimumLogLevel, "Warn"))

Effect.runPromiseExit(program).then((exit) => {
  const code = Exit.isSuccess(exit) ? exit.value : 1
  if (Exit.isFailure(exit)) console.error(`plait demo failed: ${String(exit.cause)}`)
  process.exitCode = code
  // Everything is closed with the scope; do not let a straggling handle keep the demo alive.
  setTimeout(() => process.exit(code), 1000).unref()
})
