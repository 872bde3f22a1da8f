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
 * its own parameters (set in `bench/run.ts`).
 */
export const WORKLOADS = ["bulk1", "bulk64", "rr1", "rr100", "rr1000", "connrate", "idle", "hol"] as const
export type Workload = (typeof WORKLOADS)[number]

/** The generator workload behind each row. */
export const KIND: { readonly [W in Workload]: Kind } = {
  bulk1: "bulk",
  bulk64: "bulk",
  rr1: "reqresp",
  rr100: "reqresp",
  rr1000: "reqresp",
  connrate: "connrate",
  idle: "idle",
  hol: "hol"
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
  hol: KIND_METRICS.hol
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
  hol: "(h) head-of-line"
}

export const WORKLOAD_TITLES: { readonly [W in Workload]: string } = {
  bulk1: "(a) bulk, 1 stream: M bytes sent and echoed",
  bulk64: "(b) bulk, 64 streams: each sends M bytes, echoed",
  rr1: "(c) request/response 1 KiB, 1 client",
  rr100: "(d) request/response 1 KiB, 100 clients",
  rr1000: "(e) request/response 1 KiB, 1000 clients",
  connrate: "(f) connection rate: open, 64 B echo, close",
  idle: "(g) idle connections held: memory per connection",
  hol: "(h) head-of-line: small requests beside a saturating stream"
}

/**
 * The Go hashicorp/yamux reference of the performance issue, measured on this kind of machine (not
 * in this run): either a ratio to direct (`mode: "ratio"`) or an absolute figure of the metric.
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
      out.push({
        workload,
        system,
        runs: runs.length,
        failures: runs.length - ok.length,
        failureSamples: runs.filter((x) => !x.ok).map((x) => x.failure ?? "failed"),
        metrics,
        ratio,
        cpu
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
      "used during the workload by the load generator, the proxy and the server (from process.cpuUsage and /proc).",
    ""
  )
  out.push(...renderSummary(header, summaries))
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
      const each = p.bytesPerStream === undefined ? "" : ` × ${fmtBytes(p.bytesPerStream)}`
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

/** The performance issue's table: one line per row, every system, the Go yamux reference and verdicts. */
const renderSummary = (header: ReportHeader, summaries: ReadonlyArray<Summary>): Array<string> => {
  const workloads = WORKLOADS.filter((w) => summaries.some((s) => s.workload === w))
  const systems = [...new Set(summaries.map((s) => s.system))]
  const verdicts = VERDICT_SYSTEMS.filter((v) => systems.includes(v))
  const out = [
    "## Summary",
    "",
    "Median (min–max) over repetitions; `×`: ratio to **direct** in the same repetition, median (min–max). " +
      "**Go yamux**: the hashicorp/yamux reference fraction of the performance issue, measured on this kind of " +
      "machine (not in this run). The verdict columns compare the median ratio with that fraction (higher is " +
      "better), or for p99 and idle memory the median figure itself (lower is better).",
    ""
  ]
  const cols = ["row", ...systems, "Go yamux", ...verdicts.map((v) => `${v} beats Go yamux?`)]
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
    out.push(
      `| ${[line.label, ...cells, fmtRef(ref, def), ...verdicts.map((v) => verdict(row(v), ref, def))].join(" | ")} |`
    )
  }
  out.push("")
  return out
}

/**
 * Evidence that the generator is not the bottleneck: on direct it drives the backend much harder than
 * any proxied system, and while a proxied system is measured it uses a fraction of one core.
 */
const renderHeadroom = (summaries: ReadonlyArray<Summary>): Array<string> => {
  const out = [
    "## Is the load generator the bottleneck?",
    "",
    "No tool like `wrk` applies to raw TCP echo, so the reference is the generator driving the backend " +
      "directly (**direct**): that is the most the generator (plus the backend) can do here. A proxied system " +
      "that is far below direct while the generator uses a fraction of a core is limited by the system, not " +
      "by the generator.",
    "",
    "| workload | metric | direct (gen CPU) | best proxied system (gen CPU) | highest gen CPU on a plait system |",
    "|---|---|---|---|---|"
  ]
  for (const workload of WORKLOADS) {
    const def = METRICS[workload].find((d) => d.chart && d.ratio)
    if (def === undefined) continue
    const rows = summaries.filter((s) => s.workload === workload)
    const direct = rows.find((s) => s.system === "direct")
    const proxied = rows.filter((s) => s.system !== "direct" && s.metrics[def.key] !== undefined)
    if (direct === undefined || proxied.length === 0) continue
    const sign = def.better === "higher" ? -1 : 1
    const best = [...proxied].sort((a, b) => sign * (a.metrics[def.key]!.median - b.metrics[def.key]!.median))[0]!
    const plait = proxied.filter((s) => s.system.startsWith("plait"))
    const busiest = [...(plait.length > 0 ? plait : proxied)].sort(
      (a, b) => (b.cpu.generator?.median ?? 0) - (a.cpu.generator?.median ?? 0)
    )[0]!
    out.push(
      `| ${workload} | ${def.label} (${def.unit}) | ${fmtSpread(direct.metrics[def.key])} (${pct(direct.cpu.generator)}) | ${best.system}: ${fmtSpread(best.metrics[def.key])} (${pct(best.cpu.generator)}) | ${busiest.system}: ${pct(busiest.cpu.generator)} |`
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
  const parts: Array<string> = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="${width / 2}" y="42" text-anchor="middle" fill="#555">ratio to direct (log scale; 1 = direct; whiskers: min–max over repetitions; dashed: Go yamux reference)</text>`
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
    const ref = GO_YAMUX[workload]?.find((r) => r.key === def.key && (r.mode === "ratio") === def.ratio)
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
