import { assert, describe, it } from "@effect/vitest"
import { type Measurement, renderMarkdown, renderSvg, spread, summarize } from "../../bench/report.ts"

const run = (system: string, rep: number, mbps: number, ratio: number): Measurement => ({
  date: "2026-11-25T00:00:00Z",
  rep,
  workload: "bulk",
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
    const [direct, a] = summarize(runs, ["direct", "a"], ["bulk"])
    assert.strictEqual(direct!.metrics.mbps!.median, 950)
    assert.strictEqual(a!.ratio.mbps!.min, 0.1)
    const md = renderMarkdown({ title: "t", lines: [], params: {}, systems: [] }, [direct!, a!])
    assert.include(md, "| a | 140 (100–180) ×0.150 (0.100–0.200) | 50% | 90% | – | 0 |")
    const svg = renderSvg("t", [direct!, a!], ["direct", "a"])
    assert.include(svg, "×0.150")
    assert.strictEqual((svg.match(/<svg/g) ?? []).length, 1)
  })
})
