/**
 * `npm run soak -- --minutes N`: a long mixed load through a Bun proxy and a Deno server (real
 * processes, started as `bun run proxy` and `deno task server` start them), proving that nothing
 * grows: every minute it prints RSS, JS heap, file descriptors, streams and sessions of both, and at
 * the end every counter must be back at its baseline and RSS within 10 % of its value after the
 * first minute. Exit 0 when all holds, 1 otherwise (with what did not), 2 on bad options.
 *
 * The path: load generator (this process) → proxy (Bun) → relay (Node, `bench/procs/relay.ts`) →
 * server (Deno) → echo backend (Node, `bench/procs/echo.ts`). The relay is there to be killed: the
 * link is cut every `--cut-every` (default two minutes, or half the run when that is shorter) and
 * the relay restarted on the same port; the proxy redials.
 *
 * The load, all byte-exact (every byte that comes back is compared with what was sent):
 * - request/response: persistent clients echoing 1 KiB messages;
 * - bulk: 4 MiB up, half-close, 4 MiB back until the server's FIN;
 * - connection churn: connect, 64 B echo, FIN both ways, again;
 * - half-close: bulk and churn both end with the client's FIN while the echo still comes back;
 * - slow readers: 1 MiB up, then read back slowly (paused, a chunk every 20 ms), so the windows fill
 *   and backpressure runs through proxy, link and server.
 * A connection cut by the link cut is reset (that is the defined outcome) and counted as such;
 * wrong bytes, or an error more than 20 s after the last cut, fail the soak.
 *
 * Healthy traffic must never reach a flood budget or the partial-frame deadline: the run fails if
 * `plait_limits_reached_total` counts one of them on either process.
 *
 * Baseline: after a short warm-up (so lazily created descriptors and caches are in it), with the
 * load stopped and every stream gone. Final: the same, after the run. Counters checked: streams and
 * sessions of both processes, their descriptors; RSS: final ≤ 1.10 × the first minute's.
 *
 * Options: `--minutes N` (default 10; fractions allowed), `--cut-every DURATION` (`30s`, `2m`),
 * `--proxy-runtime`/`--server-runtime` (default `bun`/`deno`: another pairing, to tell a runtime's
 * growth from plait's), `--quiet` (no per-worker error lines). Everything started is killed on exit, whatever happens.
 *
 * @since 0.1.0
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as path from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const BIN = path.join(ROOT, "node_modules", ".bin")
const KiB = 1024
const MiB = 1024 * KiB

// ---------------------------------------------------------------------------------------------
// Options

const usage =
  "usage: npm run soak -- [--minutes N] [--cut-every DURATION] [--proxy-runtime bun|node|deno] [--server-runtime deno|node|bun] [--quiet]"

const fail = (message: string): never => {
  console.error(`soak: ${message}\n${usage}`)
  process.exit(2)
}

const parseDuration = (text: string): number => {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text)
  if (match === null) return fail(`bad duration ${JSON.stringify(text)} (use 500ms, 30s, 2m)`)
  const n = Number(match[1])
  return match[2] === "ms" ? n : match[2] === "s" ? n * 1000 : n * 60_000
}

const args = process.argv.slice(2)
const option = (name: string): string | undefined => {
  const i = args.indexOf(name)
  if (i < 0) return undefined
  const value = args[i + 1]
  if (value === undefined) return fail(`${name} needs a value`)
  return value
}
for (const arg of args) {
  if (
    arg.startsWith("--") &&
    !["--minutes", "--cut-every", "--quiet", "--proxy-runtime", "--server-runtime"].includes(arg)
  ) {
    fail(`unknown option ${arg}`)
  }
}
const minutes = Number(option("--minutes") ?? "10")
if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 24 * 60) fail("--minutes must be a number above 0")
const runMillis = Math.round(minutes * 60_000)
const cutEvery =
  option("--cut-every") === undefined ? Math.min(120_000, runMillis / 2) : parseDuration(option("--cut-every")!)
const quiet = args.includes("--quiet")
type Runtime = "node" | "bun" | "deno"
const runtimeOption = (name: string, fallback: Runtime): Runtime => {
  const value = option(name) ?? fallback
  if (value !== "node" && value !== "bun" && value !== "deno") return fail(`${name} must be node, bun or deno`)
  return value
}
const proxyRuntime = runtimeOption("--proxy-runtime", "bun")
const serverRuntime = runtimeOption("--server-runtime", "deno")

/** How the README starts a command on each runtime: `npm run`'s script, `bun run`, `deno task`. */
const launch = (runtime: Runtime, role: "proxy" | "server"): [string, Array<string>] =>
  runtime === "node"
    ? [path.join(BIN, "node"), ["--max-semi-space-size=8", path.join(ROOT, "src/cli/bin.ts"), role]]
    : runtime === "bun"
      ? [path.join(BIN, "bun"), ["run", role]]
      : [path.join(BIN, "deno"), ["task", role]]

// ---------------------------------------------------------------------------------------------
// Child processes

interface Proc {
  readonly name: string
  readonly child: ChildProcess
  /** The runtime's own pid (launchers such as `bun run` and `deno task` run it as a child). */
  pid: number
  readonly lines: Array<string>
  exited: boolean
}

const procs: Array<Proc> = []

const killAll = (signal: NodeJS.Signals) => {
  for (const p of procs) {
    if (p.exited) continue
    try {
      // Each child leads its own process group: the launcher and the runtime it started go together.
      process.kill(-p.child.pid!, signal)
    } catch {
      p.child.kill(signal)
    }
  }
}
process.on("exit", () => killAll("SIGKILL"))
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    killAll("SIGKILL")
    process.exit(130)
  })
}

const start = (name: string, command: string, commandArgs: ReadonlyArray<string>): Proc => {
  const child = spawn(command, commandArgs, {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PATH: `${BIN}:${process.env.PATH ?? ""}`, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" }
  })
  const proc: Proc = { name, child, pid: child.pid ?? 0, lines: [], exited: false }
  const onText = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (line.trim() === "") continue
      proc.lines.push(line)
      if (proc.lines.length > 200) proc.lines.shift()
      const pid = /starting on .* \(pid (\d+)\)/.exec(line)
      if (pid !== null) proc.pid = Number(pid[1])
    }
  }
  child.stdout!.on("data", onText)
  child.stderr!.on("data", onText)
  child.on("exit", () => {
    proc.exited = true
  })
  procs.push(proc)
  return proc
}

/** Waits (bounded) for a line of `proc` matching `pattern`. */
const waitFor = async (proc: Proc, pattern: RegExp, timeoutMillis = 30_000): Promise<RegExpExecArray> => {
  const deadline = Date.now() + timeoutMillis
  for (let seen = 0; Date.now() < deadline; await sleep(20)) {
    for (; seen < proc.lines.length; seen++) {
      const match = pattern.exec(proc.lines[seen]!)
      if (match !== null) return match
    }
    if (proc.exited) break
  }
  throw new Error(
    `${proc.name}: no line matching ${pattern} within ${timeoutMillis} ms:\n${proc.lines.slice(-20).join("\n")}`
  )
}

const stop = async (proc: Proc, timeoutMillis = 5_000) => {
  if (proc.exited) return
  try {
    process.kill(-proc.child.pid!, "SIGKILL")
  } catch {
    proc.child.kill("SIGKILL")
  }
  const deadline = Date.now() + timeoutMillis
  while (!proc.exited && Date.now() < deadline) await sleep(20)
}

const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

// ---------------------------------------------------------------------------------------------
// Sampling

interface Sample {
  readonly rss: number
  readonly heap: number
  readonly fds: number
  readonly streams: number
  readonly sessions: number
}

const procRss = (pid: number): number => {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const kib = /VmRSS:\s+(\d+) kB/.exec(status)
  return kib === null ? Number.NaN : Number(kib[1]) * KiB
}

const procFds = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length

const getText = (port: number, route: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const request = http.get({ host: "127.0.0.1", port, path: route, agent: false, timeout: 5_000 }, (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => {
        body += chunk
      })
      response.on("end", () => resolve(body))
      response.on("error", reject)
    })
    request.on("timeout", () => request.destroy(new Error(`admin ${route}: timed out`)))
    request.on("error", reject)
  })

/** The flood budgets and the partial-frame deadline: healthy traffic must never reach one. */
const ABUSE_LIMITS = [
  "maxPingsPerSecond",
  "maxRefusedSynsPerSecond",
  "maxResetsPerSecond",
  "maxWindowUpdatesPerSecond",
  "maxControlBacklog",
  "frameTimeout"
]

/** How often each flood budget or deadline tripped, from a Prometheus exposition. */
const abuseTrips = (exposition: string): number =>
  exposition
    .split("\n")
    .filter(
      (line) =>
        line.startsWith("plait_limits_reached_total{") && ABUSE_LIMITS.some((l) => line.includes(`limit="${l}"`))
    )
    .reduce((n, line) => n + Number(line.slice(line.lastIndexOf(" ") + 1)), 0)

/** The sum of every series named `name` (any labels) in a Prometheus exposition. */
const series = (exposition: string, name: string): number => {
  let sum = 0
  for (const line of exposition.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    sum += Number(line.slice(line.lastIndexOf(" ") + 1))
  }
  return sum
}

const sample = async (proc: Proc, adminPort: number): Promise<Sample> => {
  // Descriptors first: the admin request below is a connection of its own.
  const fds = procFds(proc.pid)
  const rss = procRss(proc.pid)
  const metrics = await getText(adminPort, "/metrics")
  return {
    rss,
    heap: series(metrics, "plait_process_heap_used_bytes"),
    fds,
    streams: series(metrics, "plait_streams_open"),
    sessions: series(metrics, "plait_links")
  }
}

const mb = (bytes: number) => (bytes / MiB).toFixed(1)

const row = (label: string, proxy: Sample, server: Sample, extra: string): string =>
  [
    label.padEnd(9),
    ...[proxy, server].map(
      (s) =>
        `${mb(s.rss).padStart(7)} ${mb(s.heap).padStart(6)} ${String(s.fds).padStart(4)} ${String(s.streams).padStart(6)} ${String(s.sessions).padStart(3)}`
    ),
    extra
  ].join(" | ")

const header =
  `${"minute".padEnd(9)} | ${`proxy (${proxyRuntime}): RSS MiB, heap MiB, fds, streams, links`.padEnd(34)} | ${`server (${serverRuntime}): same`.padEnd(34)} | load since the last row\n` +
  `${"".padEnd(9)} | ${"    RSS   heap  fds  strms lnk"} | ${"    RSS   heap  fds  strms lnk"} |`

// ---------------------------------------------------------------------------------------------
// Load

/** Deterministic bytes for one message: a client's id and round make them unique. */
const pattern = (n: number, seed: number): Buffer => {
  const out = Buffer.allocUnsafe(n)
  let x = (seed * 2_654_435_761 + 1) >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

interface Tally {
  requests: number
  bulk: number
  churn: number
  slow: number
  bytes: number
  /** Connections reset or ended early around a link cut (the defined outcome). */
  cut: number
  /** Errors away from any cut, or wrong bytes: each fails the soak. */
  failures: Array<string>
}

const tally: Tally = { requests: 0, bulk: 0, churn: 0, slow: 0, bytes: 0, cut: 0, failures: [] }
let lastCut = Number.NEGATIVE_INFINITY
/** Errors this long after a cut count as caused by it (redial, link wait, clients in flight). */
const CUT_SHADOW_MILLIS = 20_000

const problem = (what: string, error: unknown) => {
  if (Date.now() - lastCut < CUT_SHADOW_MILLIS) {
    tally.cut++
    return
  }
  const line = `${what}: ${error instanceof Error ? error.message : String(error)}`
  tally.failures.push(line)
  if (!quiet) console.error(`soak: ${line}`)
}

/** A connection that collects what it receives and lets a caller wait for a number of bytes or the end. */
class Conn {
  readonly socket: net.Socket
  private chunks: Array<Buffer> = []
  private buffered = 0
  ended = false
  error: Error | undefined = undefined
  private wake: (() => void) | undefined = undefined

  constructor(socket: net.Socket) {
    this.socket = socket
    socket.setNoDelay(true)
    socket.on("data", (chunk: Buffer) => {
      this.chunks.push(chunk)
      this.buffered += chunk.length
      this.notify()
    })
    socket.on("end", () => {
      this.ended = true
      this.notify()
    })
    socket.on("error", (error) => {
      this.error = error
      this.notify()
    })
    socket.on("close", () => {
      this.ended = true
      this.notify()
    })
  }

  static open(port: number, timeoutMillis = 15_000): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true })
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error("connect timed out"))
      }, timeoutMillis)
      socket.once("connect", () => {
        clearTimeout(timer)
        resolve(new Conn(socket))
      })
      socket.once("error", (error) => {
        clearTimeout(timer)
        reject(error)
      })
    })
  }

  private notify() {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }

  /** Waits until `n` bytes are buffered (or the end, or an error), bounded. */
  async take(n: number, timeoutMillis = 30_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMillis
    while (this.buffered < n) {
      if (this.error !== undefined) throw this.error
      if (this.ended) throw new Error(`ended after ${this.buffered} of ${n} bytes`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`${this.buffered} of ${n} bytes within ${timeoutMillis} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
    const all = Buffer.concat(this.chunks, this.buffered)
    this.chunks = all.length > n ? [all.subarray(n)] : []
    this.buffered -= n
    return all.subarray(0, n)
  }

  /** Waits for the peer's FIN with nothing more buffered. */
  async end(timeoutMillis = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMillis
    while (!this.ended) {
      if (this.error !== undefined) throw this.error
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no FIN within ${timeoutMillis} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
    if (this.error !== undefined) throw this.error
    if (this.buffered > 0) throw new Error(`${this.buffered} unexpected bytes before the FIN`)
  }

  write(bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(bytes, (error) => (error ? reject(error) : resolve()))
    })
  }

  destroy() {
    this.socket.destroy()
  }
}

const expectSame = (got: Buffer, sent: Buffer, what: string) => {
  if (!got.equals(sent)) throw new Error(`WRONG BYTES: ${what} (${got.length} bytes came back different)`)
}

let running = true

/** A worker: runs `round` until the load stops; a failed round is reported and retried after a pause. */
const worker = async (name: string, round: (n: number) => Promise<void>, pauseMillis: number) => {
  for (let n = 0; running; n++) {
    try {
      await round(n)
    } catch (error) {
      if (error instanceof Error && error.message.startsWith("WRONG BYTES")) {
        tally.failures.push(`${name}: ${error.message}`)
        console.error(`soak: ${name}: ${error.message}`)
      } else {
        problem(name, error)
      }
      await sleep(200)
    }
    if (pauseMillis > 0) await sleep(pauseMillis)
  }
}

/** Runs the load until {@link running} turns false; resolves once every connection is closed. */
const runLoad = async (port: number): Promise<void> => {
  const workers: Array<Promise<void>> = []
  const persistent: Array<Conn | undefined> = []
  // Request/response: persistent clients, reconnected after a failure.
  for (let c = 0; c < 8; c++) {
    let seq = 0
    workers.push(
      worker(
        `rr${c}`,
        async () => {
          try {
            persistent[c] ??= await Conn.open(port)
            const conn = persistent[c]!
            const message = pattern(1024, c * 1_000_003 + seq++)
            await conn.write(message)
            expectSame(await conn.take(message.length), message, `request ${seq} of client ${c}`)
            tally.requests++
            tally.bytes += message.length
          } catch (error) {
            persistent[c]?.destroy()
            persistent[c] = undefined
            throw error
          }
        },
        10
      )
    )
  }
  // Bulk with half-close: 4 MiB up, FIN, 4 MiB back, the server's FIN.
  workers.push(
    worker(
      "bulk",
      async (n) => {
        const conn = await Conn.open(port)
        try {
          const data = pattern(4 * MiB, 7_000_000 + n)
          const back = conn.take(data.length, 60_000)
          for (let o = 0; o < data.length; o += 64 * KiB) await conn.write(data.subarray(o, o + 64 * KiB))
          conn.socket.end()
          expectSame(await back, data, `bulk ${n}`)
          await conn.end()
          tally.bulk++
          tally.bytes += data.length
        } finally {
          conn.destroy()
        }
      },
      1_000
    )
  )
  // Connection churn: connect, 64 B, FIN both ways.
  for (let c = 0; c < 2; c++) {
    workers.push(
      worker(
        `churn${c}`,
        async (n) => {
          const conn = await Conn.open(port)
          try {
            const message = pattern(64, 9_000_000 + c * 1_000_003 + n)
            await conn.write(message)
            conn.socket.end()
            expectSame(await conn.take(64), message, `churn ${c}/${n}`)
            await conn.end()
            tally.churn++
            tally.bytes += 64
          } finally {
            conn.destroy()
          }
        },
        10
      )
    )
  }
  // Slow readers: 1 MiB up, read back a chunk every 20 ms (the windows fill up meanwhile).
  for (let c = 0; c < 2; c++) {
    workers.push(
      worker(
        `slow${c}`,
        async (n) => {
          const conn = await Conn.open(port)
          try {
            const data = pattern(MiB, 11_000_000 + c * 1_000_003 + n)
            conn.socket.pause()
            for (let o = 0; o < data.length; o += 64 * KiB) await conn.write(data.subarray(o, o + 64 * KiB))
            conn.socket.end()
            const back: Array<Buffer> = []
            let got = 0
            // Bounded by the data: 16 KiB per turn, reading paused for 20 ms between turns.
            while (got < data.length) {
              conn.socket.resume()
              const chunk = await conn.take(Math.min(data.length - got, 16 * KiB), 30_000)
              conn.socket.pause()
              back.push(chunk)
              got += chunk.length
              await sleep(20)
            }
            conn.socket.resume()
            expectSame(Buffer.concat(back), data, `slow reader ${c}/${n}`)
            await conn.end()
            tally.slow++
            tally.bytes += data.length
          } finally {
            conn.destroy()
          }
        },
        500
      )
    )
  }
  await Promise.all(workers)
  // The persistent clients leave cleanly: FIN, then the echo's FIN.
  await Promise.all(
    persistent.map(async (conn) => {
      if (conn === undefined) return
      try {
        conn.socket.end()
        await conn.end(10_000)
      } catch (error) {
        problem("rr close", error)
      } finally {
        conn.destroy()
      }
    })
  )
}

// ---------------------------------------------------------------------------------------------
// Run

const settle = async (proxy: Proc, proxyAdmin: number, server: Proc, serverAdmin: number) => {
  const deadline = Date.now() + 60_000
  let last: [Sample, Sample] | undefined
  while (Date.now() < deadline) {
    last = [await sample(proxy, proxyAdmin), await sample(server, serverAdmin)]
    if (last[0].streams === 0 && last[1].streams === 0 && last[0].sessions === 1 && last[1].sessions === 1) return last
    await sleep(250)
  }
  throw new Error(`streams or links did not settle within 60 s: ${JSON.stringify(last)}`)
}

const main = async () => {
  console.log(
    `soak: ${minutes} minute(s), link cut every ${(cutEvery / 1000).toFixed(0)} s; proxy on ${proxyRuntime}, server on ${serverRuntime}, relay and echo on node`
  )
  const echo = start("echo", path.join(BIN, "node"), [
    path.join(ROOT, "bench/procs/echo.ts"),
    "--listen",
    "127.0.0.1:0"
  ])
  const echoPort = Number((await waitFor(echo, /echo listening on [\d.]+:(\d+)/))[1])
  const [serverCommand, serverArgs] = launch(serverRuntime, "server")
  const server = start("server", serverCommand, [
    ...serverArgs,
    "--listen",
    "127.0.0.1:0",
    "--target",
    `127.0.0.1:${echoPort}`,
    "--admin",
    "127.0.0.1:0"
  ])
  const serverPort = Number((await waitFor(server, /server: listening on [\d.]+:(\d+)/))[1])
  const serverAdmin = Number((await waitFor(server, /admin: listening on http:\/\/[\d.]+:(\d+)/))[1])
  const relayArgs = (port: number) => [
    path.join(ROOT, "bench/procs/relay.ts"),
    "--listen",
    `127.0.0.1:${port}`,
    "--target",
    `127.0.0.1:${serverPort}`
  ]
  let relay = start("relay", path.join(BIN, "node"), relayArgs(0))
  const relayPort = Number((await waitFor(relay, /relay listening on [\d.]+:(\d+)/))[1])
  const [proxyCommand, proxyArgs] = launch(proxyRuntime, "proxy")
  const proxy = start("proxy", proxyCommand, [
    ...proxyArgs,
    "--listen",
    "127.0.0.1:0",
    "--upstream",
    `127.0.0.1:${relayPort}`,
    "--admin",
    "127.0.0.1:0"
  ])
  const proxyPort = Number((await waitFor(proxy, /proxy: listening on [\d.]+:(\d+)/))[1])
  const proxyAdmin = Number((await waitFor(proxy, /admin: listening on http:\/\/[\d.]+:(\d+)/))[1])
  await waitFor(proxy, new RegExp(`starting on ${proxyRuntime}`))
  await waitFor(server, new RegExp(`starting on ${serverRuntime}`))

  const cut = async () => {
    lastCut = Date.now()
    await stop(relay)
    relay = start("relay", path.join(BIN, "node"), relayArgs(relayPort))
    await waitFor(relay, /relay listening on/)
  }

  // Warm-up, then the baseline with the load stopped.
  running = true
  let load = runLoad(proxyPort)
  await sleep(Math.min(15_000, Math.max(5_000, runMillis / 10)))
  running = false
  await load
  const [baseProxy, baseServer] = await settle(proxy, proxyAdmin, server, serverAdmin)
  console.log(header)
  console.log(row("baseline", baseProxy, baseServer, "(after warm-up, load stopped)"))

  // The run.
  running = true
  tally.failures = []
  const started = Date.now()
  load = runLoad(proxyPort)
  let nextCut = started + cutEvery
  let cuts = 0
  const rows: Array<[Sample, Sample]> = []
  let before = { ...tally, failures: tally.failures.length }
  for (let minute = 1; Date.now() - started < runMillis; minute++) {
    const rowAt = started + Math.min(minute * 60_000, runMillis)
    while (Date.now() < rowAt) {
      if (Date.now() >= nextCut && nextCut < started + runMillis - 10_000) {
        await cut()
        cuts++
        nextCut += cutEvery
      }
      await sleep(Math.max(1, Math.min(500, rowAt - Date.now())))
    }
    const now = [await sample(proxy, proxyAdmin), await sample(server, serverAdmin)] as [Sample, Sample]
    rows.push(now)
    const done =
      `${tally.requests - before.requests} req, ${tally.bulk - before.bulk} bulk, ${tally.churn - before.churn} churn, ` +
      `${tally.slow - before.slow} slow, ${mb(tally.bytes - before.bytes)} MiB verified, ${tally.cut - before.cut} cut-reset` +
      (tally.failures.length > before.failures ? `, ${tally.failures.length - before.failures} FAILED` : "") +
      (cuts > 0 && Date.now() - lastCut < 60_000 ? `; link cut at ${((lastCut - started) / 1000).toFixed(0)} s` : "")
    console.log(row(`${minute}`, now[0], now[1], done))
    before = { ...tally, failures: tally.failures.length }
  }
  running = false
  await load
  const [endProxy, endServer] = await settle(proxy, proxyAdmin, server, serverAdmin)
  console.log(row("final", endProxy, endServer, "(load stopped, every stream gone)"))

  // Verdict.
  const problems: Array<string> = []
  const first = rows[0]!
  for (const [name, base, end, one] of [
    ["proxy", baseProxy, endProxy, first[0]],
    ["server", baseServer, endServer, first[1]]
  ] as const) {
    if (end.streams !== base.streams)
      problems.push(`${name}: ${end.streams} streams at the end, ${base.streams} at the baseline`)
    if (end.sessions !== base.sessions)
      problems.push(`${name}: ${end.sessions} links at the end, ${base.sessions} at the baseline`)
    if (end.fds > base.fds)
      problems.push(`${name}: ${end.fds} file descriptors at the end, ${base.fds} at the baseline`)
    if (end.rss > 1.1 * one.rss) {
      problems.push(
        `${name}: RSS ${mb(end.rss)} MiB at the end, more than 10 % above ${mb(one.rss)} MiB after the first minute`
      )
    }
  }
  if (cuts === 0 && runMillis >= 30_000) problems.push("the link was never cut")
  for (const [name, port] of [
    ["proxy", proxyAdmin],
    ["server", serverAdmin]
  ] as const) {
    const trips = abuseTrips(await getText(port, "/metrics"))
    if (trips > 0)
      problems.push(`${name}: a flood budget or the frame deadline tripped ${trips} time(s) under healthy load`)
  }
  if (tally.requests === 0 || tally.bulk === 0 || tally.churn === 0 || tally.slow === 0) {
    problems.push(`a workload never completed (${JSON.stringify({ ...tally, failures: tally.failures.length })})`)
  }
  problems.push(...tally.failures.slice(0, 20))
  console.log(
    `soak: ${tally.requests} requests, ${tally.bulk} bulk, ${tally.churn} churned connections, ${tally.slow} slow readers, ` +
      `${mb(tally.bytes)} MiB verified byte-exact; ${cuts} link cut(s), ${tally.cut} connection(s) reset by them`
  )
  if (problems.length > 0) {
    console.log(`soak: FAILED\n${problems.map((p) => `  - ${p}`).join("\n")}`)
    return 1
  }
  console.log("soak: OK: every counter back at its baseline, RSS within 10 % of the first minute's, every byte exact")
  return 0
}

main().then(
  async (code) => {
    killAll("SIGTERM")
    await sleep(500)
    killAll("SIGKILL")
    process.exit(code)
  },
  (error: unknown) => {
    console.error(`soak: ${error instanceof Error ? error.message : String(error)}`)
    for (const p of procs) console.error(`--- ${p.name} (last lines)\n${p.lines.slice(-15).join("\n")}`)
    killAll("SIGKILL")
    process.exit(1)
  }
)
