/**
 * Benchmark results: the measurement record (one JSON line each), the metrics of every workload,
 * medians with min–max over repetitions, and the two renderings — a markdown table and a
 * hand-written SVG bar chart of ratios to "direct" (no dependencies).
 */

/** The load generator's workloads (`bench/workloads.ts`, `bench/loadgen.ts --workload`). */
export const KINDS = ["bulk", "reqresp", "connrate", "idle", "hol"] as const
export type Kind = (typeof KINDS)[number]

/**
 * The rows of the benchmark (those of the performance issue): each is one generator workload with
 * its own parameters (set in `bench/run.ts`). `wan1` and `wan16` are bulk over a link with a 50 ms
 * round trip (the delay relay `bench/native/delay` between the two halves of each system).
 */
export const WORKLOADS = [
  "bulk1",
  "bulk64",
  "rr1",
  "rr100",
  "rr1000",
  "connrate",
  "idle",
  "hol",
  "wan1",
  "wan16"
] as const
export type Workload = (typeof WORKLOADS)[number]

/** The rows on loopback (all but the WAN rows): what `--quick` runs unless rows are named. */
export const LOOPBACK_WORKLOADS: ReadonlyArray<Workload> = WORKLOADS.filter((w) => !w.startsWith("wan"))

/** Rows measured over the delay relay. */
export const isWan = (w: Workload): boolean => w === "wan1" || w === "wan16"

/** The reference multiplexer measured in the run (bench/native/yamux). */
export const YAMUX_GO = "yamux-go"

/** Systems that multiplex (every plait system and yamux-go; not direct, not haproxy). */
export const isMultiplexer = (system: string): boolean => system.startsWith("plait") || system === YAMUX_GO

/** The generator workload behind each row. */
export const KIND: { readonly [W in Workload]: Kind } = {
  bulk1: "bulk",
  bulk64: "bulk",
  rr1: "reqresp",
  rr100: "reqresp",
  rr1000: "reqresp",
  connrate: "connrate",
  idle: "idle",
  hol: "hol",
  wan1: "bulk",
  wan16: "bulk"
}

/** One metric of a workload. */
export interface MetricDef {
  readonly key: string
  readonly label: string
  readonly unit: string
  readonly better: "higher" | "lower"
  /** Whether a ratio to direct makes sense (not for the proxy's memory: direct has no proxy). */
  readonly ratio: boolean
  /** Drawn in the chart. */
  readonly chart: boolean
}

const m = (
  key: string,
  label: string,
  unit: string,
  better: "higher" | "lower",
  ratio: boolean,
  chart: boolean
): MetricDef => ({ key, label, unit, better, ratio, chart })

const KIND_METRICS: { readonly [K in Kind]: ReadonlyArray<MetricDef> } = {
  bulk: [m("mbps", "throughput", "MB/s", "higher", true, true)],
  reqresp: [
    m("rps", "throughput", "req/s", "higher", true, true),
    m("p50", "p50 latency", "ms", "lower", true, false),
    m("p99", "p99 latency", "ms", "lower", true, true),
    m("p999", "p99.9", "ms", "lower", true, false)
  ],
  connrate: [m("perSecond", "rate", "conn/s", "higher", true, true), m("p99", "cycle p99", "ms", "lower", true, false)],
  idle: [
    m("kibPerConn", "RSS growth per connection (proxy + server)", "KiB", "lower", false, true),
    m("heapKibPerConn", "JS heap growth per connection (proxy + server)", "KiB", "lower", false, true),
    m("proxyRssMiB", "proxy RSS", "MiB", "lower", false, false),
    m("serverRssMiB", "server RSS", "MiB", "lower", false, false),
    m("proxyHeapMiB", "proxy heap", "MiB", "lower", false, false),
    m("serverHeapMiB", "server heap", "MiB", "lower", false, false),
    m("openRate", "open rate", "conn/s", "higher", true, false)
  ],
  hol: [
    m("p99", "1 KiB p99 latency", "ms", "lower", true, true),
    m("p50", "p50 latency", "ms", "lower", true, false),
    m("bulkMbps", "bulk alongside", "MB/s", "higher", true, false)
  ]
}

export const METRICS: { readonly [W in Workload]: ReadonlyArray<MetricDef> } = {
  bulk1: KIND_METRICS.bulk,
  bulk64: KIND_METRICS.bulk,
  rr1: KIND_METRICS.reqresp,
  rr100: KIND_METRICS.reqresp,
  rr1000: KIND_METRICS.reqresp,
  connrate: KIND_METRICS.connrate,
  idle: KIND_METRICS.idle,
  hol: KIND_METRICS.hol,
  wan1: KIND_METRICS.bulk,
  wan16: KIND_METRICS.bulk
}

/** The metric of each row in the headline table (and the generator check). */
export const HEADLINE_KEY: { readonly [W in Workload]: string } = {
  bulk1: "mbps",
  bulk64: "mbps",
  rr1: "rps",
  rr100: "rps",
  rr1000: "rps",
  connrate: "perSecond",
  idle: "kibPerConn",
  hol: "p99",
  wan1: "mbps",
  wan16: "mbps"
}

/** Short names for chart headings. */
export const WORKLOAD_SHORT: { readonly [W in Workload]: string } = {
  bulk1: "(a) bulk, 1 stream",
  bulk64: "(b) bulk, 64 streams",
  rr1: "(c) req/resp, 1 client",
  rr100: "(d) req/resp, 100 clients",
  rr1000: "(e) req/resp, 1000 clients",
  connrate: "(f) connection rate",
  idle: "(g) idle",
  hol: "(h) head-of-line",
  wan1: "(i) WAN, 1 stream",
  wan16: "(j) WAN, 16 streams"
}

export const WORKLOAD_TITLES: { readonly [W in Workload]: string } = {
  bulk1: "(a) bulk, 1 stream: M bytes (or for a fixed time) sent and echoed",
  bulk64: "(b) bulk, 64 streams: each sends M bytes (or for a fixed time), echoed",
  rr1: "(c) request/response 1 KiB, 1 client",
  rr100: "(d) request/response 1 KiB, 100 clients",
  rr1000: "(e) request/response 1 KiB, 1000 clients",
  connrate: "(f) connection rate: open, 64 B echo, close",
  idle: "(g) idle connections held: memory per connection",
  hol: "(h) head-of-line: small requests beside a saturating stream",
  wan1: "(i) WAN: 1 stream of bulk echo over a link with a 50 ms round trip",
  wan16: "(j) WAN: 16 streams of bulk echo over a link with a 50 ms round trip"
}

/**
 * The Go hashicorp/yamux fractions quoted by the first performance issue (measured elsewhere, not in
 * the run): either a ratio to direct (`mode: "ratio"`) or an absolute figure of the metric. Only a
 * fallback now: when the run measures **yamux-go** itself (`bench/native/yamux`, the default when Go
 * is installed), the report compares with that instead and never shows these.
 */
export interface Reference {
  readonly key: string
  readonly mode: "ratio" | "absolute"
  readonly value: number
  /** The issue's goal for plait, when it states one (same mode and unit). */
  readonly target?: number
}

export const GO_YAMUX: { readonly [W in Workload]?: ReadonlyArray<Reference> } = {
  bulk1: [{ key: "mbps", mode: "ratio", value: 0.12 }],
  bulk64: [{ key: "mbps", mode: "ratio", value: 0.17 }],
  rr1: [
    { key: "rps", mode: "ratio", value: 0.12 },
    { key: "p99", mode: "absolute", value: 0.64 }
  ],
  rr100: [
    { key: "rps", mode: "ratio", value: 0.2 },
    { key: "p99", mode: "absolute", value: 14.7 }
  ],
  rr1000: [
    { key: "rps", mode: "ratio", value: 0.27 },
    { key: "p99", mode: "absolute", value: 121 }
  ],
  connrate: [{ key: "perSecond", mode: "ratio", value: 0.22 }],
  idle: [{ key: "kibPerConn", mode: "absolute", value: 58.8, target: 16 }]
}

/** The systems compared with Go yamux in the summary table. */
export const VERDICT_SYSTEMS = ["plait-node", "plait-bun-deno"] as const

/** CPU shares (of one core) during the workload, per process role. */
export interface CpuShares {
  readonly generator: number
  readonly [role: string]: number
}

/** One measurement: one workload on one freshly started system. */
export interface Measurement {
  readonly date: string
  readonly rep: number
  readonly workload: Workload
  readonly system: string
  readonly ok: boolean
  readonly failure?: string
  readonly metrics: Record<string, number>
  /** metric ÷ direct's same metric in the same repetition. */
  readonly ratio: Record<string, number>
  readonly cpu: CpuShares
  readonly memory?: Record<string, { rssBefore?: number; rssHeld?: number; heapBefore?: number; heapHeld?: number }>
  readonly params: Record<string, number>
  readonly result?: unknown
  /** On failure: the last log lines of every process of the measurement. */
  readonly logs?: Record<string, ReadonlyArray<string>>
}

/** Median, min and max. */
export interface Spread {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly n: number
}

export const spread = (values: ReadonlyArray<number>): Spread | undefined => {
  const xs = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (xs.length === 0) return undefined
  const mid = xs.length >> 1
  const median = xs.length % 2 === 1 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2
  return { median, min: xs[0]!, max: xs[xs.length - 1]!, n: xs.length }
}

/** Summary of one system on one workload. */
export interface Summary {
  readonly workload: Workload
  readonly system: string
  readonly runs: number
  readonly failures: number
  readonly failureSamples: ReadonlyArray<string>
  readonly metrics: Record<string, Spread>
  readonly ratio: Record<string, Spread>
  readonly cpu: Record<string, Spread>
  /**
   * Against yamux-go measured in the same repetition, per metric: the system's figure ÷ yamux-go's
   * (= its ratio to direct ÷ yamux-go's ratio to direct) for throughput, yamux-go's ÷ the system's
   * for latency and memory — above 1 is better than Go yamux either way. Empty without yamux-go.
   */
  readonly vsYamux: Record<string, Spread>
}

export const summarize = (
  measurements: ReadonlyArray<Measurement>,
  systems: ReadonlyArray<string>,
  workloads: ReadonlyArray<Workload>
): Array<Summary> => {
  const out: Array<Summary> = []
  for (const workload of workloads) {
    for (const system of systems) {
      const runs = measurements.filter((x) => x.workload === workload && x.system === system)
      if (runs.length === 0) continue
      const ok = runs.filter((x) => x.ok)
      const metrics: Record<string, Spread> = {}
      const ratio: Record<string, Spread> = {}
      const cpu: Record<string, Spread> = {}
      for (const def of METRICS[workload]) {
        const s = spread(ok.map((x) => x.metrics[def.key] ?? Number.NaN))
        if (s) metrics[def.key] = s
        const r = spread(ok.map((x) => x.ratio[def.key] ?? Number.NaN))
        if (r) ratio[def.key] = r
      }
      const roles = new Set(ok.flatMap((x) => Object.keys(x.cpu)))
      for (const role of roles) {
        const s = spread(ok.map((x) => x.cpu[role] ?? Number.NaN))
        if (s) cpu[role] = s
      }
      const vsYamux: Record<string, Spread> = {}
      if (system !== YAMUX_GO) {
        const yamux = measurements.filter((x) => x.workload === workload && x.system === YAMUX_GO && x.ok)
        for (const def of METRICS[workload]) {
          const values = ok.map((x) => {
            const a = x.metrics[def.key]
            const b = yamux.find((y) => y.rep === x.rep)?.metrics[def.key]
            if (a === undefined || b === undefined || !(a > 0) || !(b > 0)) return Number.NaN
            return def.better === "higher" ? a / b : b / a
          })
          const v = spread(values)
          if (v) vsYamux[def.key] = v
        }
      }
      out.push({
        workload,
        system,
        runs: runs.length,
        failures: runs.length - ok.length,
        failureSamples: runs.filter((x) => !x.ok).map((x) => x.failure ?? "failed"),
        metrics,
        ratio,
        cpu,
        vsYamux
      })
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Markdown

const fmt = (x: number): string => {
  if (x === 0) return "0"
  const a = Math.abs(x)
  if (a >= 10_000) return Math.round(x).toLocaleString("en-US")
  if (a >= 100) return x.toFixed(0)
  if (a >= 10) return x.toFixed(1)
  if (a >= 1) return x.toFixed(2)
  return x.toFixed(3)
}

const fmtSpread = (s: Spread | undefined): string =>
  s === undefined ? "–" : s.n === 1 ? fmt(s.median) : `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`

const fmtRatio = (s: Spread | undefined): string =>
  s === undefined ? "" : s.n === 1 ? `×${fmt(s.median)}` : `×${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`

const pct = (s: Spread | undefined): string => (s === undefined ? "–" : `${Math.round(s.median * 100)}%`)

export interface ReportHeader {
  readonly title: string
  readonly lines: ReadonlyArray<string>
  readonly params: { readonly [W in Workload]?: Record<string, number> }
  readonly systems: ReadonlyArray<{ readonly name: string; readonly description: string }>
}

export const renderMarkdown = (header: ReportHeader, summaries: ReadonlyArray<Summary>): string => {
  const out: Array<string> = [`# ${header.title}`, ""]
  for (const line of header.lines) out.push(line)
  out.push("", "Systems:", "")
  for (const s of header.systems) out.push(`- **${s.name}**: ${s.description}`)
  out.push(
    "",
    "Cells: median (min–max) over repetitions; `×` is the ratio to **direct** measured in the same repetition " +
      "(for throughput below 1 is slower, for latency above 1 is slower). CPU columns: median share of one core " +
      "used during the workload by the load generator (its own getrusage or process.cpuUsage), the proxy and the server (from /proc); the backend's and the WAN relay's are in the JSONL (`cpu.backend`, `cpu.link`).",
    ""
  )
  out.push(...renderHeadline(header, summaries))
  out.push(...renderSummary(header, summaries))
  out.push(...renderWan(header, summaries))
  const workloads = [...new Set(summaries.map((s) => s.workload))]
  for (const workload of workloads) {
    const rows = summaries.filter((s) => s.workload === workload)
    const defs = METRICS[workload]
    const params = header.params[workload]
    out.push(`## ${WORKLOAD_TITLES[workload]}`, "")
    if (params) {
      out.push(
        `Parameters: ${Object.entries(params)
          .map(([k, v]) => `${k}=${v}`)
          .join(", ")}`,
        ""
      )
    }
    const cols = [
      "system",
      ...defs.map((d) => `${d.label} (${d.unit}, ${d.better} is better)`),
      "gen CPU",
      "proxy CPU",
      "server CPU",
      "failed"
    ]
    out.push(`| ${cols.join(" | ")} |`, `|${cols.map(() => "---").join("|")}|`)
    for (const row of rows) {
      const cells = [
        row.system,
        ...defs.map((d) => {
          const value = fmtSpread(row.metrics[d.key])
          const ratio = d.ratio && row.system !== "direct" ? fmtRatio(row.ratio[d.key]) : ""
          return ratio === "" ? value : `${value} ${ratio}`
        }),
        pct(row.cpu.generator),
        pct(row.cpu.proxy),
        pct(row.cpu.server),
        row.failures === 0 ? "0" : `**${row.failures}/${row.runs}**: ${row.failureSamples[0]?.slice(0, 120) ?? ""}`
      ]
      out.push(`| ${cells.join(" | ")} |`)
    }
    out.push("")
  }
  out.push(...renderHeadroom(summaries))
  return out.join("\n")
}

const MiB = 1024 * 1024

const fmtBytes = (n: number): string =>
  n >= MiB && n % MiB === 0 ? `${n / MiB} MiB` : n >= 1024 && n % 1024 === 0 ? `${n / 1024} KiB` : `${n} B`

/** The row's name in the summary table, with its parameters when known. */
const rowName = (workload: Workload, params: Record<string, number> | undefined): string => {
  const p = params ?? {}
  const secs = (ms: number | undefined) => (ms === undefined ? "" : `${ms / 1000} s`)
  switch (workload) {
    case "bulk1":
    case "bulk64": {
      const n = p.streams ?? (workload === "bulk1" ? 1 : 64)
      const each =
        p.durationMs !== undefined
          ? `, ${secs(p.durationMs)}`
          : p.bytesPerStream === undefined
            ? ""
            : ` × ${fmtBytes(p.bytesPerStream)}`
      return `bulk, ${n} stream${n === 1 ? "" : "s"}${each} (MB/s)`
    }
    case "rr1":
    case "rr100":
    case "rr1000": {
      const n = p.clients ?? Number(workload.slice(2))
      const size = p.size === undefined ? "1 KiB" : fmtBytes(p.size)
      return `request/response ${size}, ${n} client${n === 1 ? "" : "s"}${p.durationMs ? `, ${secs(p.durationMs)}` : ""} (req/s)`
    }
    case "connrate":
      return `connection rate: open, 64 B echo, close${p.workers ? `; ${p.workers} in flight` : ""} (conn/s)`
    case "idle":
      return `idle memory per connection (proxy + server), ${p.connections ?? "K"} connections held: RSS (KiB)`
    case "hol":
      return `head-of-line: p99 of 1 KiB request/response${p.clients ? ` (${p.clients} clients)` : ""} while one stream saturates the link (ms)`
    case "wan1":
    case "wan16": {
      const n = p.streams ?? (workload === "wan1" ? 1 : 16)
      const rate = p.rateMBps ? `${p.rateMBps} MB/s link` : "unlimited link rate"
      return `WAN ${p.rttMs ?? 50} ms round trip, ${rate}: bulk echo, ${n} stream${n === 1 ? "" : "s"}${p.durationMs ? `, ${secs(p.durationMs)}` : ""} (MB/s)`
    }
  }
}

interface SummaryLine {
  readonly workload: Workload
  readonly label: string
  /** Metrics shown (medians, separated by " / " when more than one). */
  readonly keys: ReadonlyArray<string>
  /** The metric whose ratio (and min–max) is shown and compared. */
  readonly key: string
  readonly ref?: Reference
}

const summaryLines = (workloads: ReadonlyArray<Workload>, params: ReportHeader["params"]): Array<SummaryLine> => {
  const lines: Array<SummaryLine> = []
  const ref = (w: Workload, key: string) => GO_YAMUX[w]?.find((r) => r.key === key)
  for (const w of workloads) {
    const label = rowName(w, params[w])
    const line = (l: string, keys: ReadonlyArray<string>, key: string): SummaryLine => {
      const r = ref(w, key)
      return r === undefined ? { workload: w, label: l, keys, key } : { workload: w, label: l, keys, key, ref: r }
    }
    switch (KIND[w]) {
      case "bulk":
        lines.push(line(label, ["mbps"], "mbps"))
        break
      case "reqresp":
        lines.push(line(label, ["rps"], "rps"))
        lines.push(line("  ↳ latency p50 / p99 / p99.9 (ms; × is p99's ratio)", ["p50", "p99", "p999"], "p99"))
        break
      case "connrate":
        lines.push(line(label, ["perSecond"], "perSecond"))
        break
      case "idle":
        lines.push(line(label, ["kibPerConn"], "kibPerConn"))
        lines.push(line("  ↳ JS heap per connection (proxy + server; KiB)", ["heapKibPerConn"], "heapKibPerConn"))
        break
      case "hol":
        lines.push(line(label, ["p99"], "p99"))
        break
    }
  }
  return lines
}

const fmtRef = (ref: Reference | undefined, def: MetricDef | undefined): string => {
  if (ref === undefined || def === undefined) return "—"
  if (ref.mode === "ratio") return `${fmt(ref.value)}×`
  const target = ref.target === undefined ? "" : ` (target ≤ ${fmt(ref.target)} ${def.unit})`
  return `${def.key === "p99" ? "p99 " : ""}${fmt(ref.value)} ${def.unit}${target}`
}

/**
 * Whether a system beats the Go yamux reference on a line: its median ratio (or median figure)
 * against the reference, in the metric's better direction; notes when the min–max range straddles
 * the reference and, where the issue sets one, whether the target is met.
 */
export const verdict = (
  summary: Summary | undefined,
  ref: Reference | undefined,
  def: MetricDef | undefined
): string => {
  if (ref === undefined || def === undefined) return "—"
  if (summary === undefined) return "not run"
  const s = ref.mode === "ratio" ? summary.ratio[ref.key] : summary.metrics[ref.key]
  if (s === undefined) return "n/a (no successful run)"
  const higher = def.better === "higher"
  const beats = (v: number) => (higher ? v > ref.value : v < ref.value)
  const show = (v: number) => (ref.mode === "ratio" ? `${fmt(v)}×` : `${fmt(v)} ${def.unit}`)
  const straddles = beats(s.min) !== beats(s.max) ? "; min–max straddles it" : ""
  const target =
    ref.target === undefined
      ? ""
      : `; target ≤ ${fmt(ref.target)} ${def.unit}: ${s.median <= ref.target ? "met" : "missed"}`
  return `${beats(s.median) ? "**yes**" : "no"} (${show(s.median)} vs ${show(ref.value)}${straddles})${target}`
}

/** Whether the run measured yamux-go (then every comparison with Go yamux is within the run). */
const measuredYamux = (summaries: ReadonlyArray<Summary>): boolean => summaries.some((s) => s.system === YAMUX_GO)

/** The generator check of one row. */
export interface Headroom {
  /** The fastest multiplexer of the row. */
  readonly system: string
  /** direct ÷ that multiplexer (throughput), or its figure ÷ direct's (latency). */
  readonly factor: number
  /** factor ≥ 3: the generator (with the backend) does at least 3× what the best multiplexer needs. */
  readonly ok: boolean
}

/**
 * Proof that the generator is not the limit of a row: direct through it reaches at least 3× the
 * fastest multiplexer (plait or yamux-go) of the row, on the row's headline metric (for head-of-line
 * latency, the best multiplexer's p99 is at least 3× direct's). Undefined for idle (memory) or when
 * direct or every multiplexer is missing.
 */
export const generatorHeadroom = (workload: Workload, summaries: ReadonlyArray<Summary>): Headroom | undefined => {
  const key = HEADLINE_KEY[workload]
  const def = METRICS[workload].find((d) => d.key === key)
  if (def === undefined || !def.ratio) return undefined
  const direct = summaries.find((s) => s.workload === workload && s.system === "direct")?.metrics[key]
  const muxes = summaries.filter(
    (s) => s.workload === workload && isMultiplexer(s.system) && s.metrics[key] !== undefined
  )
  if (direct === undefined || muxes.length === 0) return undefined
  const higher = def.better === "higher"
  const value = (s: Summary) => s.metrics[key]!.median
  const best = muxes.reduce((a, b) => ((higher ? value(b) > value(a) : value(b) < value(a)) ? b : a))
  const factor = higher ? direct.median / value(best) : value(best) / direct.median
  return { system: best.system, factor, ok: factor >= 3 }
}

const fmtHeadroom = (h: Headroom | undefined): string =>
  h === undefined ? "n/a" : `${h.ok ? "**yes**" : "**no**"} (direct ${fmt(h.factor)}× ${h.system})`

/** The generator's CPU share on direct and the highest on a multiplexer, for one row. */
const genCpu = (workload: Workload, summaries: ReadonlyArray<Summary>): string => {
  const rows = summaries.filter((s) => s.workload === workload)
  const direct = rows.find((s) => s.system === "direct")
  const muxes = rows.filter((s) => isMultiplexer(s.system) && s.cpu.generator !== undefined)
  const busiest = muxes.sort((a, b) => b.cpu.generator!.median - a.cpu.generator!.median)[0]
  return `${pct(direct?.cpu.generator)} / ${busiest === undefined ? "–" : `${pct(busiest.cpu.generator)} (${busiest.system})`}`
}

/**
 * The performance issue's table: one line per row, every system. With yamux-go in the run, the last
 * columns are the generator's CPU share and check (the comparison with Go yamux is the headline
 * table); without it, the quoted Go yamux fractions ({@link GO_YAMUX}) and verdicts against them.
 */
const renderSummary = (header: ReportHeader, summaries: ReadonlyArray<Summary>): Array<string> => {
  const workloads = WORKLOADS.filter((w) => summaries.some((s) => s.workload === w))
  const systems = [...new Set(summaries.map((s) => s.system))]
  const measured = measuredYamux(summaries)
  const verdicts = measured ? [] : VERDICT_SYSTEMS.filter((v) => systems.includes(v))
  const out = [
    "## Summary",
    "",
    "Median (min–max) over repetitions; `×`: ratio to **direct** in the same repetition, median (min–max). " +
      (measured
        ? "Go hashicorp/yamux is measured in this run (**yamux-go**); see the headline table for each plait " +
          "system against it. "
        : "**Go yamux**: the hashicorp/yamux reference fraction of the performance issue, quoted, not measured in " +
          "this run (add `yamux-go` to `--systems`). The verdict columns compare the median ratio with that " +
          "fraction (higher is better), or for p99 and idle memory the median figure itself (lower is better). ") +
      "**gen CPU**: the generator's share of one core on direct / the highest on a multiplexer. **generator not " +
      "the bottleneck**: direct through the generator reaches at least 3× the fastest multiplexer of the row.",
    ""
  ]
  const cols = [
    "row",
    ...systems,
    ...(measured ? [] : ["Go yamux", ...verdicts.map((v) => `${v} beats Go yamux?`)]),
    "gen CPU",
    "generator not the bottleneck"
  ]
  out.push(`| ${cols.join(" | ")} |`, `|${cols.map(() => "---").join("|")}|`)
  for (const line of summaryLines(workloads, header.params)) {
    const defs = METRICS[line.workload]
    const def = defs.find((d) => d.key === line.key)
    const row = (system: string) => summaries.find((s) => s.workload === line.workload && s.system === system)
    const cells = systems.map((system) => {
      const s = row(system)
      if (s === undefined) return "–"
      const failed = s.failures > 0 ? ` **${s.failures}/${s.runs} failed**` : ""
      const value =
        line.keys.length === 1
          ? fmtSpread(s.metrics[line.key])
          : line.keys.map((k) => (s.metrics[k] === undefined ? "–" : fmt(s.metrics[k]!.median))).join(" / ")
      const ratio = def?.ratio && system !== "direct" ? fmtRatio(s.ratio[line.key]) : ""
      return `${ratio === "" ? value : `${value} ${ratio}`}${failed}`
    })
    const ref = line.ref
    const first = line.key === HEADLINE_KEY[line.workload] && !line.label.startsWith(" ")
    out.push(
      `| ${[
        line.label,
        ...cells,
        ...(measured ? [] : [fmtRef(ref, def), ...verdicts.map((v) => verdict(row(v), ref, def))]),
        first ? genCpu(line.workload, summaries) : "",
        first ? fmtHeadroom(generatorHeadroom(line.workload, summaries)) : ""
      ].join(" | ")} |`
    )
  }
  out.push("")
  return out
}

const fmtVs = (s: Spread | undefined): string =>
  s === undefined ? "–" : s.n === 1 ? fmt2(s.median) : `${fmt2(s.median)} (${fmt2(s.min)}–${fmt2(s.max)})`

const fmt2 = (x: number): string => x.toFixed(2)

/**
 * The headline (issue #10's table): per row and plait system, (system ratio to direct) ÷ (yamux-go
 * ratio to direct) within each repetition, median (min–max): 1.00 = level with Go yamux, above is
 * better (for latency and memory: yamux-go's figure ÷ the system's). Idle shows KiB per connection.
 */
export const renderHeadline = (header: ReportHeader, summaries: ReadonlyArray<Summary>): Array<string> => {
  if (!measuredYamux(summaries)) return []
  const workloads = WORKLOADS.filter((w) => summaries.some((s) => s.workload === w))
  const plaits = [...new Set(summaries.map((s) => s.system))].filter((s) => s.startsWith("plait"))
  const out = [
    "## Against Go yamux, measured in this run",
    "",
    "Per row and plait system: (its ratio to direct) ÷ (yamux-go's ratio to direct), both from the same " +
      "repetition, median (min–max) over repetitions. **1.00 = level with Go yamux**, above 1 is better; for " +
      "latency (head-of-line p99) and memory (idle) it is yamux-go's figure ÷ the system's. The idle row gives " +
      "RSS growth per connection (proxy + server, KiB) with that factor.",
    ""
  ]
  const cols = [
    "row",
    ...plaits,
    "yamux-go ratio to direct",
    "gen CPU (direct / busiest multiplexer)",
    "generator not the bottleneck"
  ]
  out.push(`| ${cols.join(" | ")} |`, `|${cols.map(() => "---").join("|")}|`)
  for (const w of workloads) {
    const key = HEADLINE_KEY[w]
    const row = (system: string) => summaries.find((s) => s.workload === w && s.system === system)
    const idle = KIND[w] === "idle"
    const cells = plaits.map((system) => {
      const s = row(system)
      if (s === undefined) return "–"
      const failed = s.failures > 0 ? ` **${s.failures}/${s.runs} failed**` : ""
      const vs = fmtVs(s.vsYamux[key])
      return `${idle ? `${s.metrics[key] === undefined ? "–" : fmt(s.metrics[key]!.median)} KiB (${vs})` : vs}${failed}`
    })
    const y = row(YAMUX_GO)
    const yCell =
      y === undefined
        ? "–"
        : idle
          ? `${y.metrics[key] === undefined ? "–" : fmt(y.metrics[key]!.median)} KiB`
          : y.ratio[key] === undefined
            ? "–"
            : `${fmt(y.ratio[key]!.median)}×`
    const label = rowName(w, header.params[w]).replace(/ \([^)]*\)$/, "")
    out.push(
      `| ${[label, ...cells, yCell, genCpu(w, summaries), fmtHeadroom(generatorHeadroom(w, summaries))].join(" | ")} |`
    )
  }
  out.push("")
  return out
}

/** The window each system's streams get (bytes), for the WAN bound; undefined when none applies. */
const windowOf = (system: string, params: Record<string, number>): number | undefined =>
  system === YAMUX_GO ? params.yamuxWindow : system.startsWith("plait") ? params.plaitMaxWindow : undefined

/**
 * The WAN rows against their bound: min(link rate, streams × window ÷ RTT). Target (issue #10): one
 * plait stream reaches at least 80 % of it.
 */
export const renderWan = (header: ReportHeader, summaries: ReadonlyArray<Summary>): Array<string> => {
  const rows = summaries.filter((s) => isWan(s.workload) && s.system !== "direct")
  if (rows.length === 0) return []
  const out = [
    "## WAN: throughput against the window bound",
    "",
    "Bound: min(link rate, streams × window ÷ RTT), with the window each system's streams get (plait: " +
      "`--max-window`, default 4 MiB, reached at once or, with `--window-autotune`, by growing from 256 KiB; " +
      "yamux-go: 256 KiB). Target (issue #10): one plait stream reaches at least 80 % of its bound.",
    "",
    "| row | system | MB/s | window | bound (MB/s) | share of bound | target ≥ 80 % |",
    "|---|---|---|---|---|---|---|"
  ]
  for (const s of rows) {
    const params = header.params[s.workload] ?? {}
    const rtt = (params.rttMs ?? 50) / 1000
    const rate = params.rateMBps ? params.rateMBps * 1e6 : Number.POSITIVE_INFINITY
    const window = windowOf(s.system, params)
    const streams = params.streams ?? 1
    const bound = window === undefined ? undefined : Math.min(rate, (streams * window) / rtt) / 1e6
    const mbps = s.metrics.mbps
    const share = bound === undefined || mbps === undefined ? undefined : mbps.median / bound
    const target =
      s.workload !== "wan1" || !s.system.startsWith("plait") || share === undefined
        ? "—"
        : share >= 0.8
          ? "**met**"
          : "**missed**"
    out.push(
      `| ${s.workload} | ${s.system} | ${fmtSpread(mbps)} | ${window === undefined ? "—" : fmtBytes(window)} | ${bound === undefined ? "—" : fmt(bound)} | ${share === undefined ? "—" : `${Math.round(share * 100)} %`} | ${target} |`
    )
  }
  out.push("")
  return out
}

/**
 * Evidence that the generator is not the bottleneck: on direct it drives the backend at least 3× as
 * hard as the fastest multiplexer, and while a proxied system is measured it uses a fraction of a core.
 */
const renderHeadroom = (summaries: ReadonlyArray<Summary>): Array<string> => {
  const out = [
    "## Is the load generator the bottleneck?",
    "",
    "No tool like `wrk` applies to raw TCP echo, so the reference is the generator driving the backend " +
      "directly (**direct**): that is the most the generator (plus the backend) can do here. A row passes when " +
      "direct reaches at least 3× the fastest multiplexer (plait or yamux-go); the CPU shares are of one core.",
    "",
    "| workload | metric | direct (gen CPU, backend CPU) | best proxied system (gen CPU) | highest gen CPU on a multiplexer | generator not the bottleneck |",
    "|---|---|---|---|---|---|"
  ]
  for (const workload of WORKLOADS) {
    const def = METRICS[workload].find((d) => d.key === HEADLINE_KEY[workload] && d.ratio)
    if (def === undefined) continue
    const rows = summaries.filter((s) => s.workload === workload)
    const direct = rows.find((s) => s.system === "direct")
    const proxied = rows.filter((s) => s.system !== "direct" && s.metrics[def.key] !== undefined)
    if (direct === undefined || proxied.length === 0) continue
    const sign = def.better === "higher" ? -1 : 1
    const best = [...proxied].sort((a, b) => sign * (a.metrics[def.key]!.median - b.metrics[def.key]!.median))[0]!
    const muxes = proxied.filter((s) => isMultiplexer(s.system))
    const busiest = [...(muxes.length > 0 ? muxes : proxied)].sort(
      (a, b) => (b.cpu.generator?.median ?? 0) - (a.cpu.generator?.median ?? 0)
    )[0]!
    out.push(
      `| ${workload} | ${def.label} (${def.unit}) | ${fmtSpread(direct.metrics[def.key])} (${pct(direct.cpu.generator)}, ${pct(direct.cpu.backend)}) | ${best.system}: ${fmtSpread(best.metrics[def.key])} (${pct(best.cpu.generator)}) | ${busiest.system}: ${pct(busiest.cpu.generator)} | ${fmtHeadroom(generatorHeadroom(workload, summaries))} |`
    )
  }
  out.push("")
  return out
}

// ---------------------------------------------------------------------------------------------
// SVG

const escapeXml = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const PALETTE = ["#6b7280", "#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0891b2", "#db2777"]

/**
 * One panel per charted metric: a horizontal bar per system. Ratio panels use a log scale centred
 * on 1 (= direct); the idle-memory panel shows absolute KiB per connection on a linear scale.
 * Whiskers span min–max over repetitions.
 */
export const renderSvg = (title: string, summaries: ReadonlyArray<Summary>, systems: ReadonlyArray<string>): string => {
  const panels: Array<{ workload: Workload; def: MetricDef }> = []
  for (const workload of WORKLOADS) {
    if (!summaries.some((s) => s.workload === workload)) continue
    for (const def of METRICS[workload]) if (def.chart) panels.push({ workload, def })
  }
  const width = 860
  const labelWidth = 130
  const plotLeft = labelWidth + 10
  const plotWidth = width - plotLeft - 90
  const barHeight = 16
  const barGap = 5
  const panelHeader = 50
  const panelGap = 22
  const shown = systems.filter((name) => summaries.some((s) => s.system === name))
  const panelHeight = panelHeader + shown.length * (barHeight + barGap) + 18
  const height = 50 + panels.length * (panelHeight + panelGap) + 30
  const color = (system: string) => PALETTE[Math.max(0, systems.indexOf(system)) % PALETTE.length]!
  // The quoted Go yamux fractions are drawn only when yamux-go itself is not in the run.
  const quoted = !shown.includes(YAMUX_GO)
  const parts: Array<string> = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="${width / 2}" y="42" text-anchor="middle" fill="#555">ratio to direct (log scale; 1 = direct; whiskers: min–max over repetitions; ${quoted ? "; dashed: quoted Go yamux reference" : ""})</text>`
  ]
  let y = 60
  for (const { workload, def } of panels) {
    const rows = shown.map((system) => {
      const summary = summaries.find((s) => s.workload === workload && s.system === system)
      const value = def.ratio ? summary?.ratio[def.key] : summary?.metrics[def.key]
      return { system, value, failed: summary !== undefined && summary.failures === summary.runs }
    })
    const better = def.better === "higher" ? "higher is better" : "lower is better"
    const heading = def.ratio
      ? `${WORKLOAD_SHORT[workload]}: ${def.label} (${def.unit}), ratio to direct — ${better}`
      : `${WORKLOAD_SHORT[workload]}: ${def.label}, ${def.unit} — ${better}`
    parts.push(`<text x="10" y="${y + 16}" font-size="13" font-weight="bold">${escapeXml(heading)}</text>`)
    const top = y + panelHeader - 10
    const ref = quoted
      ? GO_YAMUX[workload]?.find((r) => r.key === def.key && (r.mode === "ratio") === def.ratio)
      : undefined
    const marks = ref === undefined ? [] : [ref.value, ...(ref.target === undefined ? [] : [ref.target])]
    const values = [...marks, ...rows.flatMap((r) => (r.value ? [r.value.min, r.value.max, r.value.median] : []))]
    let scale: (v: number) => number
    let ticks: Array<{ v: number; label: string }>
    if (def.ratio) {
      const lo = Math.min(1, ...values.filter((v) => v > 0))
      const hi = Math.max(1, ...values)
      const lmin = Math.floor(Math.log10(lo) * 2) / 2 - 0.05
      const lmax = Math.ceil(Math.log10(hi) * 2) / 2 + 0.05
      scale = (v) =>
        plotLeft + Math.min(1, Math.max(0, (Math.log10(Math.max(v, 1e-9)) - lmin) / (lmax - lmin))) * plotWidth
      ticks = []
      for (let e = Math.floor(lmin); e <= Math.ceil(lmax); e++) {
        for (const k of [1, 2, 5]) {
          const v = k * 10 ** e
          if (Math.log10(v) >= lmin && Math.log10(v) <= lmax) ticks.push({ v, label: fmt(v) })
        }
      }
    } else {
      const hi = Math.max(1e-9, ...values) * 1.1
      scale = (v) => plotLeft + (v / hi) * plotWidth
      const step = 10 ** Math.floor(Math.log10(hi / 2))
      ticks = []
      for (let v = 0; v <= hi; v += step * (hi / step > 10 ? 2 : 1)) ticks.push({ v, label: fmt(v) })
    }
    const bottom = top + rows.length * (barHeight + barGap)
    for (const t of ticks) {
      const x = scale(t.v)
      const strong = def.ratio && t.v === 1
      parts.push(
        `<line x1="${x.toFixed(1)}" y1="${top - 4}" x2="${x.toFixed(1)}" y2="${bottom}" stroke="${strong ? "#111" : "#ddd"}" stroke-width="${strong ? 1.5 : 1}"/>`,
        `<text x="${x.toFixed(1)}" y="${bottom + 13}" text-anchor="middle" fill="#666" font-size="10">${t.label}</text>`
      )
    }
    if (ref !== undefined) {
      const mark = (v: number, text: string, dash: string) => {
        const x = scale(v).toFixed(1)
        parts.push(
          `<line x1="${x}" y1="${top - 8}" x2="${x}" y2="${bottom}" stroke="#b45309" stroke-width="1.5" stroke-dasharray="${dash}"/>`,
          `<text x="${x}" y="${top - 10}" text-anchor="middle" fill="#b45309" font-size="10">${escapeXml(text)}</text>`
        )
      }
      mark(ref.value, `Go yamux ${def.ratio ? `${fmt(ref.value)}×` : `${fmt(ref.value)} ${def.unit}`}`, "5,3")
      if (ref.target !== undefined) mark(ref.target, `target ${fmt(ref.target)} ${def.unit}`, "2,2")
    }
    rows.forEach((row, i) => {
      const by = top + i * (barHeight + barGap)
      parts.push(`<text x="${labelWidth}" y="${by + barHeight - 4}" text-anchor="end">${escapeXml(row.system)}</text>`)
      if (row.value === undefined) {
        parts.push(
          `<text x="${plotLeft + 4}" y="${by + barHeight - 4}" fill="#b91c1c">${row.failed ? "failed" : "n/a"}</text>`
        )
        return
      }
      const origin = def.ratio ? scale(1) : scale(0)
      const x = scale(row.value.median)
      const x0 = Math.min(origin, x)
      const w = Math.max(1, Math.abs(x - origin))
      parts.push(
        `<rect x="${x0.toFixed(1)}" y="${by}" width="${w.toFixed(1)}" height="${barHeight}" fill="${color(row.system)}" opacity="0.85"/>`
      )
      if (row.value.n > 1) {
        const a = scale(row.value.min)
        const b = scale(row.value.max)
        const cy = by + barHeight / 2
        parts.push(
          `<line x1="${a.toFixed(1)}" y1="${cy}" x2="${b.toFixed(1)}" y2="${cy}" stroke="#111" stroke-width="1"/>`,
          `<line x1="${a.toFixed(1)}" y1="${cy - 4}" x2="${a.toFixed(1)}" y2="${cy + 4}" stroke="#111"/>`,
          `<line x1="${b.toFixed(1)}" y1="${cy - 4}" x2="${b.toFixed(1)}" y2="${cy + 4}" stroke="#111"/>`
        )
      }
      const label = def.ratio ? `×${fmt(row.value.median)}` : `${fmt(row.value.median)} ${def.unit}`
      parts.push(
        `<text x="${(Math.max(x0 + w, scale(row.value.max)) + 6).toFixed(1)}" y="${by + barHeight - 4}" fill="#333">${escapeXml(label)}</text>`
      )
    })
    y += panelHeight + panelGap
  }
  parts.push("</svg>")
  return `${parts.join("\n")}\n`
}
