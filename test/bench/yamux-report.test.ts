/**
 * The report against yamux-go measured in the run (issue #10): the per-repetition factor against
 * yamux-go, the generator check (direct ≥ 3× the fastest multiplexer), the WAN bound — and the whole
 * harness with yamux-go, the native generator and a WAN row, briefly.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import {
  generatorHeadroom,
  type Measurement,
  renderHeadline,
  renderMarkdown,
  renderSvg,
  renderWan,
  summarize,
  type Workload
} from "../../bench/report.ts"
import { runNode } from "./helpers.ts"

const run = (
  workload: Workload,
  system: string,
  rep: number,
  metrics: Record<string, number>,
  ratio: Record<string, number> = {}
): Measurement => ({
  date: "2026-12-01T00:00:00Z",
  rep,
  workload,
  system,
  ok: true,
  metrics,
  ratio,
  cpu: { generator: system === "direct" ? 0.9 : 0.2, backend: 0.5 },
  params: { streams: 1, rttMs: 50, rateMBps: 0, plaitMaxWindow: 4 * 1024 * 1024, yamuxWindow: 256 * 1024 }
})

const header = { title: "t", lines: [], params: {}, systems: [] }

describe("bench report against yamux-go", () => {
  it("divides by yamux-go's figure of the same repetition; latency and memory the other way round", () => {
    const runs = [
      run("bulk1", "direct", 1, { mbps: 3000 }),
      run("bulk1", "direct", 2, { mbps: 2000 }),
      run("bulk1", "yamux-go", 1, { mbps: 500 }, { mbps: 500 / 3000 }),
      run("bulk1", "yamux-go", 2, { mbps: 200 }, { mbps: 0.1 }),
      run("bulk1", "plait-node", 1, { mbps: 250 }, { mbps: 250 / 3000 }),
      run("bulk1", "plait-node", 2, { mbps: 300 }, { mbps: 0.15 }),
      run("hol", "yamux-go", 1, { p99: 10 }),
      run("hol", "plait-node", 1, { p99: 20 }),
      run("idle", "yamux-go", 1, { kibPerConn: 60 }),
      run("idle", "plait-node", 1, { kibPerConn: 6 })
    ]
    const summaries = summarize(runs, ["direct", "yamux-go", "plait-node"], ["bulk1", "idle", "hol"])
    const plait = (w: Workload) => summaries.find((s) => s.workload === w && s.system === "plait-node")!
    // rep 1: 250 / 500 = 0.5; rep 2: 300 / 200 = 1.5 — per repetition, not of the medians.
    assert.deepStrictEqual(plait("bulk1").vsYamux.mbps, { median: 1, min: 0.5, max: 1.5, n: 2 })
    assert.strictEqual(plait("hol").vsYamux.p99!.median, 0.5)
    assert.strictEqual(plait("idle").vsYamux.kibPerConn!.median, 10)
    assert.deepStrictEqual(summaries.find((s) => s.system === "yamux-go")!.vsYamux, {})

    const headline = renderHeadline(header, summaries).join("\n")
    assert.include(headline, "## Against Go yamux, measured in this run")
    assert.include(headline, "| row | plait-node | yamux-go ratio to direct |")
    assert.include(headline, "| bulk, 1 stream | 1.00 (0.50–1.50) | 0.133× |")
    assert.include(headline, "| 6.00 KiB (10.00) | 60.0 KiB |")
    const md = renderMarkdown(header, summaries)
    assert.notInclude(md, "beats Go yamux?", "no quoted reference when yamux-go is measured")
    assert.notInclude(renderSvg("t", summaries, ["direct", "yamux-go", "plait-node"]), "Go yamux 0.120×")
  })

  it("generator check: direct at least 3× the fastest multiplexer of the row", () => {
    const summaries = summarize(
      [
        run("bulk1", "direct", 1, { mbps: 1000 }),
        run("bulk1", "yamux-go", 1, { mbps: 200 }),
        run("bulk1", "plait-bun", 1, { mbps: 300 }),
        run("bulk1", "haproxy", 1, { mbps: 900 }),
        run("rr1", "direct", 1, { rps: 10_000 }),
        run("rr1", "plait-bun", 1, { rps: 4000 }),
        run("hol", "direct", 1, { p99: 2 }),
        run("hol", "plait-bun", 1, { p99: 9 })
      ],
      ["direct", "yamux-go", "plait-bun", "haproxy"],
      ["bulk1", "rr1", "hol"]
    )
    const bulk = generatorHeadroom("bulk1", summaries)!
    assert.strictEqual(bulk.system, "plait-bun", "haproxy does not multiplex")
    assert.closeTo(bulk.factor, 3.33, 0.01)
    assert.isTrue(bulk.ok)
    assert.isFalse(generatorHeadroom("rr1", summaries)!.ok)
    assert.strictEqual(generatorHeadroom("hol", summaries)!.factor, 4.5)
    assert.isUndefined(generatorHeadroom("idle", summaries))
    const md = renderMarkdown(header, summaries)
    assert.include(md, "| generator not the bottleneck |")
    assert.include(md, "**yes** (direct 3.33× plait-bun)")
    assert.include(md, "**no** (direct 2.50× plait-bun)")
  })

  it("WAN: share of min(link rate, streams × window / RTT), target 80 % for one plait stream", () => {
    const summaries = summarize(
      [
        run("wan1", "direct", 1, { mbps: 900 }),
        run("wan1", "plait-node", 1, { mbps: 70 }),
        run("wan1", "plait-node-autotune", 1, { mbps: 40 }),
        run("wan1", "yamux-go", 1, { mbps: 4 })
      ],
      ["direct", "plait-node", "plait-node-autotune", "yamux-go"],
      ["wan1"]
    )
    const params = { wan1: run("wan1", "x", 1, {}).params }
    const wan = renderWan({ ...header, params }, summaries).join("\n")
    assert.include(wan, "| wan1 | plait-node | 70.0 | 4 MiB | 83.9 | 83 % | **met** |")
    assert.include(wan, "| wan1 | plait-node-autotune | 40.0 | 4 MiB | 83.9 | 48 % | **missed** |")
    assert.include(wan, "| wan1 | yamux-go | 4.00 | 256 KiB | 5.24 | 76 % | — |")
  })

  it("bench/run.ts with yamux-go, the native generator and a WAN row writes the headline", {
    timeout: 60_000
  }, async () => {
    const out = mkdtempSync(path.join(os.tmpdir(), "plait-bench-yamux-"))
    try {
      const ran = await runNode(
        [
          "bench/run.ts",
          "--quick",
          "--systems",
          "direct,yamux-go,plait-node",
          "--workloads",
          "bulk1,wan1",
          "--out",
          out,
          "--name",
          "y"
        ],
        55_000
      )
      assert.strictEqual(ran.code, 0, `exit code ${ran.code}\n${ran.stdout}\n${ran.stderr}`)
      const runs = readFileSync(path.join(out, "y.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as Measurement)
      assert.strictEqual(runs.length, 6, "2 rows × 3 systems")
      for (const r of runs) assert.isTrue(r.ok, `${r.system} ${r.workload}: ${r.failure}`)
      const yamux = runs.find((r) => r.system === "yamux-go" && r.workload === "bulk1")!
      assert.isAbove(yamux.ratio.mbps!, 0)
      assert.strictEqual((yamux.result as { generator: { runtime: string } }).generator.runtime, "go")
      const wan = runs.find((r) => r.system === "plait-node" && r.workload === "wan1")!
      assert.isDefined(wan.cpu.link, "the delay relay's CPU is recorded")
      const md = readFileSync(path.join(out, "y.md"), "utf8")
      assert.include(md, "## Against Go yamux, measured in this run")
      assert.include(md, "## WAN: throughput against the window bound")
      assert.match(md, /Go hashicorp\/yamux \S+ \(Debian golang-github-hashicorp-yamux-dev\)/)
      assert.match(md, /\| bulk, 1 stream × 2 MiB \| \d\.\d\d \| \d\.\d+× \|/)
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  })
})
