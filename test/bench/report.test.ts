import { assert, describe, it } from "@effect/vitest"
import {
  GO_YAMUX,
  METRICS,
  type Measurement,
  renderMarkdown,
  renderSvg,
  spread,
  summarize,
  verdict
} from "../../bench/report.ts"

const run = (system: string, rep: number, mbps: number, ratio: number): Measurement => ({
  date: "2026-11-25T00:00:00Z",
  rep,
  workload: "bulk1",
  system,
  ok: true,
  metrics: { mbps },
  ratio: { mbps: ratio },
  cpu: { generator: 0.5, proxy: 0.9 },
  params: { streams: 1 }
})

describe("bench report", () => {
  it("spread: median, min, max", () => {
    assert.deepStrictEqual(spread([3, 1, 2]), { median: 2, min: 1, max: 3, n: 3 })
    assert.deepStrictEqual(spread([4, 1]), { median: 2.5, min: 1, max: 4, n: 2 })
    assert.isUndefined(spread([Number.NaN]))
  })

  it("summarizes repetitions and renders both outputs", () => {
    const runs = [run("direct", 1, 1000, 1), run("direct", 2, 900, 1), run("a", 1, 100, 0.1), run("a", 2, 180, 0.2)]
    const [direct, a] = summarize(runs, ["direct", "a"], ["bulk1"])
    assert.strictEqual(direct!.metrics.mbps!.median, 950)
    assert.strictEqual(a!.ratio.mbps!.min, 0.1)
    const md = renderMarkdown({ title: "t", lines: [], params: {}, systems: [] }, [direct!, a!])
    assert.include(md, "| a | 140 (100–180) ×0.150 (0.100–0.200) | 50% | 90% | – | 0 |")
    const svg = renderSvg("t", [direct!, a!], ["direct", "a"])
    assert.include(svg, "×0.150")
    assert.strictEqual((svg.match(/<svg/g) ?? []).length, 1)
  })

  it("compares with the Go yamux reference in the metric's better direction", () => {
    const runs = [
      run("direct", 1, 1000, 1),
      run("plait-node", 1, 150, 0.15),
      run("plait-node", 2, 110, 0.11),
      run("plait-node", 3, 160, 0.16),
      run("plait-bun-deno", 1, 100, 0.1)
    ]
    const [, node, bunDeno] = summarize(runs, ["direct", "plait-node", "plait-bun-deno"], ["bulk1"])
    const ref = GO_YAMUX.bulk1![0]
    const def = METRICS.bulk1[0]
    assert.strictEqual(verdict(node, ref, def), "**yes** (0.150× vs 0.120×; min–max straddles it)")
    assert.strictEqual(verdict(bunDeno, ref, def), "no (0.100× vs 0.120×)")
    const idleRef = GO_YAMUX.idle![0]
    const idleDef = METRICS.idle.find((d) => d.key === "kibPerConn")
    const idle = {
      ...node!,
      workload: "idle" as const,
      metrics: { kibPerConn: { median: 30, min: 29, max: 31, n: 3 } }
    }
    assert.strictEqual(verdict(idle, idleRef, idleDef), "**yes** (30.0 KiB vs 58.8 KiB); target ≤ 16.0 KiB: missed")
    const md = renderMarkdown({ title: "t", lines: [], params: {}, systems: [] }, [node!, bunDeno!])
    assert.include(md, "| Go yamux | plait-node beats Go yamux? | plait-bun-deno beats Go yamux? |")
    assert.include(md, "| 0.120× | **yes** (0.150× vs 0.120×; min–max straddles it) | no (0.100× vs 0.120×) |")
  })
})
