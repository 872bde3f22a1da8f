/**
 * `npm run bench`: compares plait on every runtime combination with a direct connection, with haproxy
 * (TCP mode, when installed) and with Go hashicorp/yamux (**yamux-go**, `bench/native/yamux`), on the
 * rows of the performance issues: bulk with 1 and 64 streams, request/response with 1, 100 and 1000
 * clients, connection rate, idle memory, head-of-line latency, and bulk over a 50 ms round-trip link
 * with 1 and 16 streams (WAN) — each one generator workload with its own parameters.
 *
 * Method:
 * - Topology: load generator → [system] → backend echo server. By default both are compiled
 *   (`bench/native/loadgen`, `bench/native/echo`, built by `bench/native/build.ts` at start, offline);
 *   `--gen js` / `--backend js` use `bench/loadgen.ts` / `bench/procs/echo.ts` on `--gen-runtime`
 *   instead. They are the same for every system. "direct" is the generator talking to the backend
 *   itself; a multiplexing system is a proxy and a server (forwarding to the backend) over one link.
 * - WAN rows: the delay relay (`bench/native/delay`, 25 ms each way) sits between proxy and server
 *   (for direct: in front of the backend); plait with default settings, plait with
 *   `--window-autotune` (plait-node-autotune, plait-bun-autotune: WAN rows only, unless named) and
 *   yamux-go.
 * - Every measurement starts fresh processes (backend included), probes the path with one echo,
 *   runs one workload in a separate generator process, then stops everything.
 * - Repetitions are interleaved: for each repetition, for each workload, direct first and then the
 *   other systems in an order rotated per repetition. Each figure is also divided by direct's from
 *   the same repetition, and each plait figure by yamux-go's from the same repetition (in the report).
 * - CPU: the generator reports its own (getrusage, or `process.cpuUsage` for the JS one); the proxy's,
 *   server's, backend's and relay's come from /proc/PID/stat. Memory (idle workload): VmRSS from
 *   /proc/PID/status and the JS heap reported by `bench/procs/memory-hook.ts`, preloaded into the plait
 *   processes with `PLAIT_MEMORY_LOG`.
 *
 * Output: `bench/results/<date>.jsonl` (one measurement per line), `.md` (tables) and `.svg` (chart).
 *
 * Options:
 *   --quick              1 repetition, tiny workloads (seconds in all), loopback rows only unless
 *                        --workloads names others; results named <date>-quick
 *   --reps N             repetitions (default 3)
 *   --systems a,b        subset of: direct, plait-node, plait-bun, plait-bun-deno, plait-deno, haproxy,
 *                        yamux-go, plait-node-autotune, plait-bun-autotune, plait-node-links4 (bulk64 and
 *                        rr1000 only, unless named), plait-node-noresume (bulk and request/response
 *                        rows only, unless named), plait-node-admin (opt-in)
 *   --workloads a,b      subset of: bulk1, bulk64, rr1, rr100, rr1000, connrate, idle, hol, wan1, wan16
 *   --gen native|js      load generator (default native when it builds, else js)
 *   --backend native|js  backend echo server (default native when it builds, else js)
 *   --out DIR            output directory (default bench/results)
 *   --name NAME          file name stem (default: today's date, plus -quick)
 *   --gen-runtime RT     runtime of the JS generator and backend (default bun if present, else node)
 *   --entry cli|bench    how plait processes start: the CLI (src/cli/proxy.ts, server.ts) or the bench
 *                        launcher (bench/procs/plait.ts); default: the CLI when it exists
 */
import { execFileSync } from "node:child_process"
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import process from "node:process"
import { buildNative, type NativeBuild } from "./native/build.ts"
import {
  cpuSeconds,
  freePort,
  LISTENING,
  listeningTarget,
  PLAIT_V8_FLAGS,
  type Proc,
  ROOT,
  type Runtime,
  rssBytes,
  runtimeBinary,
  runtimeCommand,
  runtimeVersion,
  spawnProc,
  stopProc,
  waitForLine,
  waitForPort,
  which
} from "./procs.ts"
import {
  type CpuShares,
  isWan,
  KIND,
  LOOPBACK_WORKLOADS,
  METRICS,
  type Measurement,
  renderMarkdown,
  renderSvg,
  summarize,
  WORKLOADS,
  type Workload,
  YAMUX_GO
} from "./report.ts"
import { EchoConn, type Target } from "./workloads.ts"

const MiB = 1024 * 1024

// ---------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2)
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(name)
  return i >= 0 ? argv[i + 1] : undefined
}
const quick = argv.includes("--quick")
const reps = Number(flag("--reps") ?? (quick ? 1 : 3))
const outDir = path.resolve(flag("--out") ?? path.join(ROOT, "bench", "results"))
const today = new Date().toISOString().slice(0, 10)
const stem = flag("--name") ?? (quick ? `${today}-quick` : today)
const genRuntime = (flag("--gen-runtime") ?? (runtimeBinary("bun") ? "bun" : "node")) as Runtime
const cliExists = existsSync(path.join(ROOT, "src/cli/proxy.ts")) && existsSync(path.join(ROOT, "src/cli/server.ts"))
const entry = flag("--entry") ?? (cliExists ? "cli" : "bench")
const choice = (name: string): "native" | "js" | undefined => {
  const value = flag(name)
  if (value !== undefined && value !== "native" && value !== "js")
    throw new Error(`${name}: native or js, got ${value}`)
  return value
}
const genFlag = choice("--gen")
const backendFlag = choice("--backend")

/** The compiled tools (generator, backend, yamux-go, delay relay), built now; undefined when Go is missing. */
let native: NativeBuild | undefined
let nativeProblem = ""
try {
  native = buildNative({ log: (line) => console.log(line) })
} catch (error) {
  nativeProblem = error instanceof Error ? error.message : String(error)
}
if ((genFlag === "native" || backendFlag === "native") && native === undefined) throw new Error(nativeProblem)
const genKind = genFlag ?? (native ? "native" : "js")
const backendKind = backendFlag ?? (native ? "native" : "js")
if (native === undefined) {
  console.log(
    `native tools unavailable, so JavaScript generator and backend, no yamux-go, no WAN rows: ${nativeProblem}`
  )
}

const namedWorkloads = flag("--workloads")?.split(",") as Array<Workload> | undefined
for (const w of namedWorkloads ?? []) if (!WORKLOADS.includes(w)) throw new Error(`unknown workload ${w}`)
if (native === undefined && namedWorkloads?.some(isWan))
  throw new Error(`the WAN rows need the delay relay: ${nativeProblem}`)
const workloads = (namedWorkloads ?? (quick ? LOOPBACK_WORKLOADS : WORKLOADS)).filter(
  (w) => native !== undefined || !isWan(w)
)

/**
 * Parameters of every row. Idle: `ulimit -n` is 20 000 here and haproxy needs 2 descriptors per
 * client (plus a few of its own), so 9 900 connections is the most every system can hold. Bulk rows
 * of a full run and WAN rows are timed bulk echo (the figure counts bytes verified on arrival during
 * `durationMs` after `warmupMs`: a fixed 64 MiB lasts 30 ms on direct through the native generator,
 * too short to measure, and 20 s on yamux-go over the WAN link); quick runs send fixed bytes. WAN:
 * `rttMs` and `rateMBps` (0: unlimited) set the delay relay; `plaitMaxWindow` (plait's default
 * `--max-window`, 4 MiB) and `yamuxWindow` (yamux.DefaultConfig) only feed the report's bound.
 */
const WAN = { rttMs: 50, rateMBps: 0, plaitMaxWindow: 4 * MiB, yamuxWindow: 256 * 1024 }
const PARAMS: { readonly [W in Workload]: Record<string, number> } = quick
  ? {
      bulk1: { streams: 1, bytesPerStream: 2 * MiB },
      bulk64: { streams: 64, bytesPerStream: 32 * 1024 },
      rr1: { clients: 1, size: 1024, durationMs: 300, warmupMs: 100 },
      rr100: { clients: 100, size: 1024, durationMs: 300, warmupMs: 100 },
      rr1000: { clients: 1000, size: 1024, durationMs: 300, warmupMs: 300 },
      connrate: { workers: 4, durationMs: 300, warmupMs: 100 },
      idle: { connections: 200, settleMs: 300 },
      hol: { clients: 4, bulkStreams: 1, durationMs: 300, warmupMs: 200 },
      wan1: { streams: 1, durationMs: 1000, warmupMs: 500, ...WAN },
      wan16: { streams: 16, durationMs: 1000, warmupMs: 500, ...WAN }
    }
  : {
      bulk1: { streams: 1, durationMs: 2000, warmupMs: 500 },
      bulk64: { streams: 64, durationMs: 2000, warmupMs: 500 },
      rr1: { clients: 1, size: 1024, durationMs: 2000, warmupMs: 500 },
      rr100: { clients: 100, size: 1024, durationMs: 2000, warmupMs: 500 },
      rr1000: { clients: 1000, size: 1024, durationMs: 2000, warmupMs: 1000 },
      connrate: { workers: 32, durationMs: 2000, warmupMs: 500 },
      idle: { connections: 9900, settleMs: 500 },
      hol: { clients: 16, bulkStreams: 1, durationMs: 2000, warmupMs: 500 },
      wan1: { streams: 1, durationMs: 3000, warmupMs: 1000, ...WAN },
      wan16: { streams: 16, durationMs: 3000, warmupMs: 1000, ...WAN }
    }

const PROC_START_TIMEOUT = 20_000

// ---------------------------------------------------------------------------------------------
// Systems

interface Started {
  readonly target: Target
  /** Processes of the system by role (proxy, server); direct has none. */
  readonly procs: Record<string, Proc>
  /** Those started with the memory hook (they answer SIGUSR2 with a memory line). */
  readonly hooked: ReadonlyArray<Proc>
}

/** The WAN link of a WAN row: the delay relay's settings. */
interface Wan {
  readonly rttMs: number
  readonly rateMBps: number
}

interface System {
  readonly name: string
  readonly description: string
  /** Whether it runs the WAN rows (the delay relay between its halves, or in front of the backend). */
  readonly wan: boolean
  /** The rows it runs unless named in `--systems` (default: every row). */
  readonly rows?: ReadonlyArray<Workload>
  readonly start: (backend: Target, env: Record<string, string>, wan: Wan | undefined) => Promise<Started>
}

/** Every process started by the current measurement (stopped, and its log kept on failure, at its end). */
const procsStarted: Array<Proc> = []

const address = (t: Target) => (t.host.includes(":") ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`)

const startPlait = async (
  role: "proxy" | "server",
  runtime: Runtime,
  args: ReadonlyArray<string>,
  env: Record<string, string>
): Promise<{ proc: Proc; target: Target }> => {
  const script = entry === "cli" ? `src/cli/${role}.ts` : "bench/procs/plait.ts"
  const scriptArgs = entry === "cli" ? args : [role, ...args]
  const proc = spawnProc(`${role}(${runtime})`, runtimeCommand(runtime, script, scriptArgs, PLAIT_V8_FLAGS), env)
  const match = await waitForLine(proc, LISTENING, PROC_START_TIMEOUT)
  return { proc, target: listeningTarget(match) }
}

/** Starts a compiled tool of bench/native and waits for its "listening on" line. */
const startNative = async (name: string, argv: ReadonlyArray<string>): Promise<{ proc: Proc; target: Target }> => {
  const proc = spawnProc(name, argv)
  procsStarted.push(proc)
  const match = await waitForLine(proc, LISTENING, PROC_START_TIMEOUT)
  return { proc, target: listeningTarget(match) }
}

/** The delay relay in front of `target` (25 ms each way for a 50 ms round trip). */
const startDelay = (target: Target, wan: Wan) =>
  startNative("delay", [
    native!.bin.delay,
    "--listen",
    "127.0.0.1:0",
    "--target",
    address(target),
    "--delay",
    `${wan.rttMs / 2}ms`,
    "--rate",
    String(wan.rateMBps * 1e6)
  ])

const plait = (
  proxyRuntime: Runtime,
  serverRuntime: Runtime,
  name: string,
  extraArgs: ReadonlyArray<string> = [],
  rows?: ReadonlyArray<Workload>,
  proxyArgs: ReadonlyArray<string> = []
): System => ({
  name,
  description: `plait proxy on ${proxyRuntime}, plait server on ${serverRuntime} (forwarding to the backend)${extraArgs.length > 0 ? `, both with \`${extraArgs.join(" ")}\`` : ""}${proxyArgs.length > 0 ? `, the proxy with \`${proxyArgs.join(" ")}\`` : ""}`,
  wan: true,
  ...(rows === undefined ? {} : { rows }),
  start: async (backend, env, wan) => {
    const server = await startPlait(
      "server",
      serverRuntime,
      ["--listen", "127.0.0.1:0", "--target", address(backend), "--log-level", "info", ...extraArgs],
      env
    )
    procsStarted.push(server.proc)
    const link = wan === undefined ? undefined : await startDelay(server.target, wan)
    const proxy = await startPlait(
      "proxy",
      proxyRuntime,
      [
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        address(link?.target ?? server.target),
        "--max-clients",
        "50000",
        "--log-level",
        "info",
        ...extraArgs,
        ...proxyArgs
      ],
      env
    )
    procsStarted.push(proxy.proc)
    return {
      target: proxy.target,
      procs: { proxy: proxy.proc, server: server.proc, ...(link === undefined ? {} : { link: link.proc }) },
      hooked: [proxy.proc, server.proc]
    }
  }
})

/** The admin endpoint's startup line (see src/admin/Admin.ts). */
const ADMIN = /admin: listening on http:\/\/([^\s:]+):(\d+)/

/**
 * plait-node with the admin endpoint on in both processes and scraped every second (`/metrics` and
 * `/status`, as Prometheus and a status poller do): compared with plait-node in the same
 * run, it shows what operating plait costs the data path. Opt-in: `--systems …,plait-node-admin`.
 */
const plaitScraped = (base: System): System => ({
  ...base,
  name: "plait-node-admin",
  description: `${base.description}, both with \`--admin 127.0.0.1:0\` scraped every second (/metrics, /status)`,
  start: async (backend, env, wan) => {
    const started = await base.start(backend, env, wan)
    const urls: Array<string> = []
    for (const proc of [started.procs.proxy!, started.procs.server!]) {
      const match = await waitForLine(proc, ADMIN, PROC_START_TIMEOUT)
      urls.push(`http://${match[1]}:${match[2]}/metrics`, `http://${match[1]}:${match[2]}/status`)
    }
    const scraper = spawnProc("scraper", runtimeCommand("node", "bench/procs/scraper.ts", urls))
    procsStarted.push(scraper)
    await waitForLine(scraper, /scraper: scraping/, PROC_START_TIMEOUT)
    return started
  }
})

const yamuxGo = (build: NativeBuild): System => ({
  name: YAMUX_GO,
  description: `Go hashicorp/yamux ${build.yamuxVersion}, ${build.goVersion}, yamux.DefaultConfig() (256 KiB window): \`bench/native/yamux\` proxy (one yamux stream per client over one TCP link) and server (one TCP connection to the backend per stream)`,
  wan: true,
  start: async (backend, _env, wan) => {
    const server = await startNative("server(yamux-go)", [
      build.bin.yamux,
      "server",
      "--listen",
      "127.0.0.1:0",
      "--target",
      address(backend)
    ])
    const link = wan === undefined ? undefined : await startDelay(server.target, wan)
    const proxy = await startNative("proxy(yamux-go)", [
      build.bin.yamux,
      "proxy",
      "--listen",
      "127.0.0.1:0",
      "--upstream",
      address(link?.target ?? server.target)
    ])
    return {
      target: proxy.target,
      procs: { proxy: proxy.proc, server: server.proc, ...(link === undefined ? {} : { link: link.proc }) },
      hooked: []
    }
  }
})

const haproxy = (bin: string): System => ({
  name: "haproxy",
  description: "haproxy in TCP mode (one thread, one process), forwarding each client to the backend",
  wan: false,
  start: async (backend) => {
    const port = await freePort()
    const dir = path.join(os.tmpdir(), `plait-bench-haproxy-${process.pid}`)
    mkdirSync(dir, { recursive: true })
    const config = path.join(dir, "haproxy.cfg")
    writeFileSync(
      config,
      [
        "global",
        "  maxconn 9950",
        "  nbthread 1",
        "defaults",
        "  mode tcp",
        "  timeout connect 5s",
        "  timeout client 60s",
        "  timeout server 60s",
        "frontend clients",
        `  bind 127.0.0.1:${port}`,
        "  maxconn 9950",
        "  default_backend echo",
        "backend echo",
        `  server echo ${address(backend)} maxconn 9950`,
        ""
      ].join("\n")
    )
    const proc = spawnProc("haproxy", [bin, "-f", config, "-db"])
    procsStarted.push(proc)
    const target = { host: "127.0.0.1", port }
    await waitForPort(target, PROC_START_TIMEOUT)
    return { target, procs: { proxy: proc }, hooked: [] }
  }
})

const direct: System = {
  name: "direct",
  description: "no proxy: the generator connects to the backend echo server itself (WAN rows: through the delay relay)",
  wan: true,
  start: async (backend, _env, wan) => {
    if (wan === undefined) return { target: backend, procs: {}, hooked: [] }
    const link = await startDelay(backend, wan)
    return { target: link.target, procs: { link: link.proc }, hooked: [] }
  }
}

const WAN_ROWS = WORKLOADS.filter(isWan)
const allSystems: Array<System> = [direct]
const runtimesPresent = (...rts: Array<Runtime>) => rts.every((rt) => runtimeBinary(rt) !== undefined)
if (runtimesPresent("node")) allSystems.push(plait("node", "node", "plait-node"))
if (runtimesPresent("bun")) allSystems.push(plait("bun", "bun", "plait-bun"))
if (runtimesPresent("bun", "deno")) allSystems.push(plait("bun", "deno", "plait-bun-deno"))
if (runtimesPresent("deno")) allSystems.push(plait("deno", "deno", "plait-deno"))
const haproxyBin = which("haproxy")
if (haproxyBin) allSystems.push(haproxy(haproxyBin))
else console.log("haproxy not installed: skipped (apt-get install -y haproxy to include it)")
if (native !== undefined) allSystems.push(yamuxGo(native))
else console.log("yamux-go unavailable (needs the native tools): skipped")
if (runtimesPresent("node"))
  allSystems.push(plait("node", "node", "plait-node-autotune", ["--window-autotune"], WAN_ROWS))
if (runtimesPresent("bun")) allSystems.push(plait("bun", "bun", "plait-bun-autotune", ["--window-autotune"], WAN_ROWS))
// Issue #13: four links (a LinkPool) to the one server against plait-node's single link, on the rows
// where more links could pay or cost: 64 bulk streams and 1000 request/response clients.
if (runtimesPresent("node")) {
  allSystems.push(plait("node", "node", "plait-node-links4", [], ["bulk64", "rr1000"], ["--links", "4"]))
}
// Issue #14: plait-node (resumption on, the default) against the same without it, on the bulk and
// request/response rows: what the resumption layer costs, measured in the same run.
if (runtimesPresent("node")) {
  allSystems.push(
    plait(
      "node",
      "node",
      "plait-node-noresume",
      ["--resume-window", "0"],
      ["bulk1", "bulk64", "rr1", "rr100", "rr1000"]
    )
  )
}
if (runtimesPresent("node") && flag("--systems")?.split(",").includes("plait-node-admin")) {
  allSystems.push(plaitScraped(plait("node", "node", "plait-node", ["--admin", "127.0.0.1:0"])))
}

const wanted = flag("--systems")?.split(",")
const systems = wanted ? allSystems.filter((s) => wanted.includes(s.name)) : allSystems
if (wanted) {
  for (const name of wanted) {
    if (!allSystems.some((s) => s.name === name)) console.log(`system ${name} unavailable or unknown: skipped`)
  }
}
if (systems.length === 0) throw new Error("no system to benchmark")

/** Whether `system` runs row `workload` in this run. */
const runsRow = (system: System, workload: Workload): boolean =>
  (!isWan(workload) || system.wan) &&
  (wanted !== undefined || system.rows === undefined || system.rows.includes(workload))

// ---------------------------------------------------------------------------------------------
// One measurement

const probe = async (target: Target, timeoutMs: number): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    let conn: EchoConn | undefined
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      const attempt = (async () => {
        conn = await EchoConn.open(target)
        await conn.exchange(Buffer.from("plait bench probe"))
        await conn.close()
      })()
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("probe attempt timed out after 3 s")), 3000)
      })
      await Promise.race([attempt, timeout])
      return
    } catch (error) {
      last = error
      conn?.destroy()
      await new Promise((r) => setTimeout(r, 100))
    } finally {
      clearTimeout(timer)
    }
  }
  throw new Error(`probe through ${address(target)} failed: ${String(last)}`)
}

const memoryOf = (proc: Proc) => ({
  rss: rssBytes(proc.pid),
  heap: proc.memory?.value.heapUsed
})

/** Asks the hooked processes for a memory line (SIGUSR2: GC, then report) and waits for it. */
const sampleMemory = async (procs: ReadonlyArray<Proc>, timeoutMs = 5000): Promise<void> => {
  const since = Date.now()
  for (const proc of procs) proc.child.kill("SIGUSR2")
  const deadline = since + timeoutMs
  while (Date.now() < deadline && procs.some((p) => (p.memory?.at ?? 0) < since)) {
    await new Promise((r) => setTimeout(r, 10))
  }
}

const metricsOf = (workload: Workload, result: Record<string, unknown>): Record<string, number> => {
  const latency = result.latency as Record<string, number> | undefined
  switch (KIND[workload]) {
    case "bulk":
      return { mbps: result.mbps as number }
    case "reqresp":
      return { rps: result.rps as number, p50: latency!.p50!, p99: latency!.p99!, p999: latency!.p999! }
    case "connrate":
      return { perSecond: result.perSecond as number, p99: latency!.p99! }
    case "idle":
      return { openRate: result.openRate as number }
    case "hol":
      return { p99: latency!.p99!, p50: latency!.p50!, bulkMbps: result.bulkMbps as number }
  }
}

/** A run without errors that still measured nothing (e.g. no request completed at all). */
const emptiness = (
  workload: Workload,
  result: Record<string, unknown>,
  params: Record<string, number>
): string | undefined => {
  switch (KIND[workload]) {
    case "bulk":
      if (params.durationMs !== undefined)
        return (result.mbps as number) > 0 ? undefined : "nothing echoed in the measuring window"
      return result.verifiedBytes === params.streams! * params.bytesPerStream!
        ? undefined
        : `only ${result.verifiedBytes} bytes echoed`
    case "reqresp":
    case "hol":
      return (result.requests as number) > 0 ? undefined : "no request completed in the measuring window"
    case "connrate":
      return (result.connections as number) > 0 ? undefined : "no connection completed in the measuring window"
    case "idle":
      return result.held === params.connections ? undefined : `only ${result.held} connections held`
  }
}

const measure = async (system: System, workload: Workload, rep: number): Promise<Measurement> => {
  const params = PARAMS[workload]
  const kind = KIND[workload]
  const base = { date: new Date().toISOString(), rep, workload, system: system.name, params }
  const procs = procsStarted
  procs.length = 0
  try {
    const backend =
      backendKind === "native"
        ? spawnProc("backend(native)", [native!.bin.echo, "--listen", "127.0.0.1:0"])
        : spawnProc(`backend(${genRuntime})`, runtimeCommand(genRuntime, "bench/procs/echo.ts", []))
    procs.push(backend)
    const backendTarget = listeningTarget(await waitForLine(backend, LISTENING, PROC_START_TIMEOUT))
    const env: Record<string, string> = kind === "idle" ? { PLAIT_MEMORY_LOG: "1" } : {}
    const wan = isWan(workload) ? { rttMs: params.rttMs!, rateMBps: params.rateMBps ?? 0 } : undefined
    const started = await system.start(backendTarget, env, wan)
    await probe(started.target, 15_000)

    const roles = Object.entries(started.procs)
    const memory: NonNullable<Measurement["memory"]> = {}
    if (kind === "idle") {
      await new Promise((r) => setTimeout(r, 300))
      await sampleMemory(started.hooked)
      for (const [role, proc] of roles) {
        const m0 = memoryOf(proc)
        memory[role] = {
          ...(m0.rss === undefined ? {} : { rssBefore: m0.rss }),
          ...(m0.heap === undefined ? {} : { heapBefore: m0.heap })
        }
      }
    }
    const cpuRoles: Array<[string, Proc]> = [...roles, ["backend", backend]]
    const cpu0 = new Map(cpuRoles.map(([role, proc]) => [role, cpuSeconds(proc.pid)]))
    const t0 = performance.now()
    const genArgs = ["--workload", kind, "--target", address(started.target), "--params", JSON.stringify(params)]
    const gen =
      genKind === "native"
        ? spawnProc("loadgen(native)", [native!.bin.loadgen, ...genArgs])
        : spawnProc(`loadgen(${genRuntime})`, runtimeCommand(genRuntime, "bench/loadgen.ts", genArgs))
    procs.push(gen)
    if (kind === "idle") {
      await waitForLine(gen, /^HELD$/, 120_000)
      await sampleMemory(started.hooked)
      for (const [role, proc] of roles) {
        const m1 = memoryOf(proc)
        memory[role] = {
          ...memory[role],
          ...(m1.rss === undefined ? {} : { rssHeld: m1.rss }),
          ...(m1.heap === undefined ? {} : { heapHeld: m1.heap })
        }
      }
      gen.child.stdin?.write("go\n")
    }
    const line = await waitForLine(gen, /^RESULT (.*)$/, 180_000)
    const wall = (performance.now() - t0) / 1000
    const result = JSON.parse(line[1]!) as Record<string, unknown> & {
      errors: number
      errorSamples: Array<string>
      generator: { cpu: { share: number; wall: number } }
    }
    const cpu: Record<string, number> = { generator: result.generator.cpu.share }
    for (const [role, proc] of cpuRoles) {
      const before = cpu0.get(role)
      const after = cpuSeconds(proc.pid)
      if (before !== undefined && after !== undefined)
        cpu[role] = (after - before) / (result.generator.cpu.wall || wall)
    }
    const metrics = metricsOf(workload, result)
    if (kind === "idle") {
      const k = params.connections!
      const growth = (role: string) =>
        Math.max(0, (memory[role]?.rssHeld ?? Number.NaN) - (memory[role]?.rssBefore ?? Number.NaN))
      const heapGrowth = (role: string) =>
        Math.max(0, (memory[role]?.heapHeld ?? Number.NaN) - (memory[role]?.heapBefore ?? Number.NaN))
      if (roles.length > 0) {
        metrics.kibPerConn = roles.reduce((sum, [role]) => sum + growth(role), 0) / k / 1024
        if (started.hooked.length > 0) {
          const heap = roles.reduce((sum, [role]) => sum + heapGrowth(role), 0) / k / 1024
          if (Number.isFinite(heap)) metrics.heapKibPerConn = heap
        }
        if (memory.proxy?.rssHeld !== undefined) metrics.proxyRssMiB = memory.proxy.rssHeld / MiB
        if (memory.server?.rssHeld !== undefined) metrics.serverRssMiB = memory.server.rssHeld / MiB
        if (memory.proxy?.heapHeld !== undefined) metrics.proxyHeapMiB = memory.proxy.heapHeld / MiB
        if (memory.server?.heapHeld !== undefined) metrics.serverHeapMiB = memory.server.heapHeld / MiB
      }
    }
    const problem =
      result.errors > 0
        ? `${result.errors} errors: ${result.errorSamples.join("; ")}`
        : emptiness(workload, result, params)
    const ok = problem === undefined
    return {
      ...base,
      ok,
      ...(ok ? {} : { failure: problem }),
      metrics,
      ratio: {},
      cpu: cpu as CpuShares,
      ...(kind === "idle" ? { memory } : {}),
      result
    }
  } catch (error) {
    return {
      ...base,
      ok: false,
      failure: error instanceof Error ? error.message.split("\n").slice(0, 4).join(" / ") : String(error),
      metrics: {},
      ratio: {},
      cpu: { generator: Number.NaN },
      logs: Object.fromEntries(procs.map((p) => [p.name, p.tail.slice(-12)]))
    }
  } finally {
    await Promise.all([...procs].reverse().map((p) => stopProc(p)))
    procs.length = 0
  }
}

// ---------------------------------------------------------------------------------------------
// Main

const main = async () => {
  mkdirSync(outDir, { recursive: true })
  const jsonl = path.join(outDir, `${stem}.jsonl`)
  writeFileSync(jsonl, "")
  const started = Date.now()
  const versions = {
    node: runtimeVersion("node"),
    bun: runtimeVersion("bun"),
    deno: runtimeVersion("deno"),
    haproxy: haproxyBin ? (runtimeVersionOf(haproxyBin) ?? "present") : "missing",
    go: native?.goVersion ?? "missing",
    yamux: native?.yamuxVersion ?? "missing"
  }
  const genText =
    genKind === "native" ? `native (bench/native/loadgen, ${versions.go})` : `${genRuntime} (bench/loadgen.ts)`
  const backendText = backendKind === "native" ? "native (bench/native/echo)" : `${genRuntime} (bench/procs/echo.ts)`
  const load = os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")
  console.log(
    `bench: ${systems.map((s) => s.name).join(", ")} × ${workloads.join(", ")} × ${reps} rep(s); generator ${genText}; backend ${backendText}; plait via ${entry === "cli" ? "src/cli" : "bench/procs/plait.ts"}; load ${load}`
  )
  const measurements: Array<Measurement> = []
  const others = systems.filter((s) => s.name !== "direct")
  const hasDirect = systems.some((s) => s.name === "direct")
  for (let rep = 1; rep <= reps; rep++) {
    for (const workload of workloads) {
      const shift = (rep - 1) % Math.max(1, others.length)
      const order = [...(hasDirect ? [direct] : []), ...others.slice(shift), ...others.slice(0, shift)].filter(
        (system) => runsRow(system, workload)
      )
      let directRun: Measurement | undefined
      for (const system of order) {
        const t = Date.now()
        let run = await measure(system, workload, rep)
        if (system.name === "direct") directRun = run
        else if (directRun?.ok && run.ok) {
          const ratio: Record<string, number> = {}
          for (const def of METRICS[workload]) {
            const a = run.metrics[def.key]
            const b = directRun.metrics[def.key]
            if (def.ratio && a !== undefined && b !== undefined && b > 0) ratio[def.key] = a / b
          }
          run = { ...run, ratio }
        }
        if (system.name === "direct" && run.ok) {
          const ratio: Record<string, number> = {}
          for (const def of METRICS[workload]) if (def.ratio && run.metrics[def.key] !== undefined) ratio[def.key] = 1
          run = { ...run, ratio }
        }
        measurements.push(run)
        appendFileSync(jsonl, `${JSON.stringify(run)}\n`)
        const shown = Object.entries(run.metrics)
          .map(([k, v]) => `${k}=${v.toFixed(v >= 100 ? 0 : 2)}`)
          .join(" ")
        const cpus = Object.entries(run.cpu)
          .map(([k, v]) => `${k} ${Math.round(v * 100)}%`)
          .join(", ")
        console.log(
          `  rep ${rep} ${workload.padEnd(8)} ${system.name.padEnd(15)} ${run.ok ? "ok  " : "FAIL"} ${shown}  [cpu: ${cpus}] ${((Date.now() - t) / 1000).toFixed(1)}s${run.ok ? "" : `  ${run.failure}`}`
        )
      }
    }
  }
  const names = systems.map((s) => s.name)
  const summaries = summarize(measurements, names, workloads)
  const cpuModel = os.cpus()[0]?.model ?? "unknown CPU"
  const header = {
    title: `plait benchmark ${stem}`,
    lines: [
      `Machine: ${os.cpus().length} × ${cpuModel}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}; load average at start ${load}.`,
      `Runtimes: node ${versions.node}, bun ${versions.bun}, ${versions.deno}, haproxy ${versions.haproxy}, Go ${versions.go}; Go hashicorp/yamux ${versions.yamux}.`,
      `Load generator: ${genText}; backend echo server: ${backendText}; plait started via ${entry === "cli" ? "`src/cli/proxy.ts` / `src/cli/server.ts`" : "`bench/procs/plait.ts`"}.`,
      `${reps} repetition(s), interleaved; fresh processes for every measurement; every payload verified byte-exact. Total time ${((Date.now() - started) / 1000).toFixed(0)} s.`,
      `Every process shares the same ${os.cpus().length} cores (generator, backend, proxy, server), so absolute figures are low and noisy; compare ratios.`
    ],
    params: Object.fromEntries(workloads.map((w) => [w, PARAMS[w]])),
    systems: systems.map((s) => ({ name: s.name, description: s.description }))
  }
  writeFileSync(path.join(outDir, `${stem}.md`), renderMarkdown(header, summaries))
  writeFileSync(path.join(outDir, `${stem}.svg`), renderSvg(`plait benchmark ${stem}`, summaries, names))
  const failed = measurements.filter((x) => !x.ok).length
  console.log(
    `bench: wrote ${path.relative(process.cwd(), jsonl)}, .md, .svg in ${((Date.now() - started) / 1000).toFixed(0)} s; ${measurements.length - failed} ok, ${failed} failed`
  )
  process.exitCode = failed === 0 ? 0 : 1
}

function runtimeVersionOf(bin: string): string | undefined {
  try {
    return /version (\S+)/.exec(execFileSync(bin, ["-v"], { encoding: "utf8" }))?.[1]
  } catch {
    return undefined
  }
}

await main()
