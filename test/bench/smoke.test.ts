import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import type { Measurement } from "../../bench/report.ts"
import { runNode } from "./helpers.ts"

describe("npm run bench (bench/run.ts)", () => {
  it("runs end to end on one system with --quick and writes jsonl, md and svg", { timeout: 120_000 }, async () => {
    const out = mkdtempSync(path.join(os.tmpdir(), "plait-bench-smoke-"))
    try {
      const ran = await runNode(
        ["bench/run.ts", "--quick", "--systems", "direct,plait-node", "--out", out, "--name", "smoke"],
        100_000
      )
      assert.strictEqual(ran.code, 0, `exit code ${ran.code}\n${ran.stdout}\n${ran.stderr}`)
      const lines = readFileSync(path.join(out, "smoke.jsonl"), "utf8").trim().split("\n")
      const runs = lines.map((line) => JSON.parse(line) as Measurement)
      assert.strictEqual(runs.length, 16, "8 rows × 2 systems")
      for (const run of runs) assert.isTrue(run.ok, `${run.system} ${run.workload}: ${run.failure}`)
      const plait = (workload: string) => runs.find((r) => r.system === "plait-node" && r.workload === workload)!
      assert.strictEqual(plait("bulk1").params.streams, 1)
      assert.strictEqual(plait("bulk64").params.streams, 64)
      assert.isAbove(plait("bulk1").metrics.mbps!, 0)
      assert.isAbove(plait("bulk64").ratio.mbps!, 0)
      for (const rr of ["rr1", "rr100", "rr1000"]) {
        assert.isAbove(plait(rr).metrics.rps!, 0)
        assert.isAbove(plait(rr).metrics.p99!, 0)
      }
      assert.strictEqual(plait("rr1000").params.clients, 1000)
      assert.isAbove(plait("connrate").metrics.perSecond!, 0)
      assert.isAbove(plait("hol").metrics.p99!, 0)
      assert.isAbove(plait("idle").metrics.proxyRssMiB!, 0)
      assert.isAbove(plait("idle").metrics.serverHeapMiB!, 0)
      assert.isDefined(plait("idle").metrics.heapKibPerConn)
      assert.isAbove(plait("rr100").cpu.proxy!, 0)
      assert.isAbove(plait("rr100").cpu.generator, 0)
      const md = readFileSync(path.join(out, "smoke.md"), "utf8")
      assert.match(md, /## Summary/)
      assert.match(md, /\| Go yamux \| plait-node beats Go yamux\? \|/)
      assert.match(md, /## \(a\) bulk, 1 stream/)
      assert.match(md, /## \(e\) request\/response 1 KiB, 1000 clients/)
      assert.match(md, /\| plait-node \|/)
      const svg = readFileSync(path.join(out, "smoke.svg"), "utf8")
      assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/)
      assert.match(svg, /<\/svg>\n$/)
      assert.include(svg, "plait-node")
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  })
})
