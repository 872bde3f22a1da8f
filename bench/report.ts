/**
 * Benchmark results: the measurement record (one JSON line each), the metrics of every workload,
 * medians with min–max over repetitions, and the two renderings — a markdown table and a
 * hand-written SVG bar chart of ratios to "direct" (no dependencies).
 */

export const WORKLOADS = ["bulk", "reqresp", "connrate", "idle", "hol"] as const
export type Workload = (typeof WORKLOADS)[number]

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

export const METRICS: { readonly [W in Workload]: ReadonlyArray<MetricDef> } = {
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

/** Short names for chart headings. */
export const WORKLOAD_SHORT: { readonly [W in Workload]: string } = {
  bulk: "(a) bulk",
  reqresp: "(b) req/resp",
  connrate: "(c) connection rate",
  idle: "(d) idle",
  hol: "(e) head-of-line"
}

export const WORKLOAD_TITLES: { readonly [W in Workload]: string } = {
  bulk: "(a) bulk: N streams × M bytes echoed",
  reqresp: "(b) request/response 1 KiB",
  connrate: "(c) connection rate: open, 64 B echo, close",
  idle: "(d) idle connections held",
  hol: "(e) head-of-line: small requests beside a saturating stream"
}

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
  const panelHeader = 40
  const panelGap = 22
  const shown = systems.filter((name) => summaries.some((s) => s.system === name))
  const panelHeight = panelHeader + shown.length * (barHeight + barGap) + 18
  const height = 50 + panels.length * (panelHeight + panelGap) + 30
  const color = (system: string) => PALETTE[Math.max(0, systems.indexOf(system)) % PALETTE.length]!
  const parts: Array<string> = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="${width / 2}" y="42" text-anchor="middle" fill="#555">ratio to direct (log scale; 1 = direct; whiskers: min–max over repetitions)</text>`
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
    const values = rows.flatMap((r) => (r.value ? [r.value.min, r.value.max, r.value.median] : []))
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
