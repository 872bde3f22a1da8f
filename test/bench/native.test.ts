/**
 * The bench's compiled tools (`bench/native`): they build offline (or the build fails with the install
 * hint), every generator workload passes on a correct echo and catches a flipped or missing byte (the
 * delay relay's fault injection), the yamux-go pair forwards with half-close, and the delay relay delays
 * and paces. Go must be installed (`.ci/run` installs it): nothing here is skipped.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { assert, beforeAll, describe, it } from "@effect/vitest"
import { buildNative, INSTALL_HINT, type NativeBuild } from "../../bench/native/build.ts"
import { runNode } from "./helpers.ts"

interface Running {
  readonly child: ChildProcess
  readonly address: string
}

const live = new Set<ChildProcess>()

/** Starts a tool and resolves with the address of its "listening on HOST:PORT" line. */
const start = (argv: ReadonlyArray<string>): Promise<Running> =>
  new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] })
    live.add(child)
    child.on("exit", () => live.delete(child))
    let out = ""
    const timer = setTimeout(() => reject(new Error(`${argv.join(" ")}: no "listening on" within 5 s:\n${out}`)), 5000)
    const onData = (text: Buffer) => {
      out += text.toString("utf8")
      const m = /listening on (\S+:\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({ child, address: m[1]! })
      }
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    child.on("error", reject)
  })

const stopAll = () => {
  for (const child of live) child.kill("SIGKILL")
  live.clear()
}

interface GenRun {
  readonly code: number | null
  readonly result: Record<string, unknown> & { errors: number; errorSamples: Array<string> }
  readonly stderr: string
}

/** Runs one generator workload to its end (stdin closed at once: idle does not wait when held). */
const loadgen = (
  bin: string,
  workload: string,
  target: string,
  params: Record<string, number>,
  timeoutMs = 15_000
): Promise<GenRun> =>
  new Promise((resolve, reject) => {
    const child = spawn(bin, ["--workload", workload, "--target", target, "--params", JSON.stringify(params)], {
      stdio: ["pipe", "pipe", "pipe"]
    })
    child.stdin!.end()
    let stdout = ""
    let stderr = ""
    child.stdout!.on("data", (b: Buffer) => (stdout += b.toString("utf8")))
    child.stderr!.on("data", (b: Buffer) => (stderr += b.toString("utf8")))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`loadgen ${workload} did not finish within ${timeoutMs} ms:\n${stdout}\n${stderr}`))
    }, timeoutMs)
    child.on("exit", (code) => {
      clearTimeout(timer)
      const line = /^RESULT (.*)$/m.exec(stdout)
      if (line === null) return reject(new Error(`no RESULT line (exit ${code}):\n${stdout}\n${stderr}`))
      resolve({ code, result: JSON.parse(line[1]!), stderr })
    })
  })

/** The workloads, briefly, with the figure that must be positive on a correct echo. */
const WORKLOADS: ReadonlyArray<{
  readonly name: string
  readonly workload: string
  readonly params: Record<string, number>
  readonly figure: string
}> = [
  { name: "bulk echo", workload: "bulk", params: { streams: 4, bytesPerStream: 1 << 20 }, figure: "mbps" },
  { name: "bulk sink", workload: "bulk", params: { streams: 2, bytesPerStream: 1 << 20, sink: 1 }, figure: "mbps" },
  { name: "timed bulk", workload: "bulk", params: { streams: 2, durationMs: 300, warmupMs: 100 }, figure: "mbps" },
  { name: "reqresp", workload: "reqresp", params: { clients: 8, durationMs: 300, warmupMs: 100 }, figure: "rps" },
  {
    name: "connrate",
    workload: "connrate",
    params: { workers: 4, durationMs: 300, warmupMs: 100 },
    figure: "perSecond"
  },
  { name: "idle", workload: "idle", params: { connections: 100, settleMs: 50 }, figure: "openRate" },
  { name: "hol", workload: "hol", params: { clients: 4, durationMs: 300, warmupMs: 100 }, figure: "bulkMbps" }
]

describe("bench/native", () => {
  let build: NativeBuild
  let echo: Running

  beforeAll(async () => {
    // A cold build compiles the standard library too: allow for it once.
    build = buildNative()
    echo = await start([build.bin.echo])
    return stopAll
  }, 180_000)

  it("fails with the install hint when go is not on PATH", { timeout: 20_000 }, async () => {
    const ran = await runNode(["bench/native/build.ts"], 15_000, { PATH: "/nonexistent" })
    assert.strictEqual(ran.code, 1, ran.stdout + ran.stderr)
    assert.include(ran.stderr, INSTALL_HINT)
  })

  it("builds every tool and records the yamux version", () => {
    assert.match(build.goVersion, /^go1\./)
    assert.match(build.yamuxVersion, /^\S+ \(Debian golang-github-hashicorp-yamux-dev\)/)
    // Rebuilding with nothing changed is a no-op.
    assert.isFalse(buildNative().built)
  })

  for (const w of WORKLOADS) {
    it(`${w.name}: every byte verified on a correct echo`, { timeout: 20_000 }, async () => {
      const run = await loadgen(build.bin.loadgen, w.workload, echo.address, w.params)
      assert.strictEqual(run.code, 0, `${run.result.errorSamples.join("; ")}\n${run.stderr}`)
      assert.strictEqual(run.result.errors, 0)
      assert.isAbove(run.result[w.figure] as number, 0)
      assert.isAbove(run.result.verifiedBytes as number, 0)
      const cpu = (run.result.generator as { cpu: { share: number } }).cpu
      assert.isAbove(cpu.share, 0)
      if (w.workload === "reqresp") {
        const latency = run.result.latency as { p50: number; p99: number; p999: number }
        assert.isAbove(latency.p50, 0)
        assert.isAtLeast(latency.p99, latency.p50)
        assert.isAtLeast(latency.p999, latency.p99)
      }
      if (w.workload === "idle") assert.strictEqual(run.result.held, 100)
      if (w.name === "bulk echo") assert.strictEqual(run.result.verifiedBytes, 4 << 20)
    })

    it(`${w.name}: a flipped byte is caught`, { timeout: 20_000 }, async () => {
      // The sink's reply is 12 bytes: corrupt what the generator sends instead.
      const dir = w.params.sink ? "up" : "down"
      const relay = await start([
        build.bin.delay,
        "--target",
        echo.address,
        "--delay",
        "0s",
        "--flip-at",
        "10",
        "--flip-dir",
        dir
      ])
      try {
        const run = await loadgen(build.bin.loadgen, w.workload, relay.address, w.params)
        assert.strictEqual(run.code, 1, run.stderr)
        assert.isAbove(run.result.errors, 0)
        assert.match(run.result.errorSamples[0]!, w.params.sink ? /CRC/ : /differs/)
      } finally {
        relay.child.kill("SIGKILL")
      }
    })
  }

  it("a truncated echo is caught (bulk, reqresp)", { timeout: 20_000 }, async () => {
    const relay = await start([build.bin.delay, "--target", echo.address, "--delay", "0s", "--cut-at", "3000"])
    try {
      const bulk = await loadgen(build.bin.loadgen, "bulk", relay.address, { streams: 2, bytesPerStream: 100_000 })
      assert.strictEqual(bulk.code, 1)
      assert.strictEqual(bulk.result.errors, 2)
      assert.match(bulk.result.errorSamples[0]!, /echo ended \(FIN\) after 3000 of \d+ bytes sent/)
      const rr = await loadgen(build.bin.loadgen, "reqresp", relay.address, { clients: 2, durationMs: 200 })
      assert.strictEqual(rr.result.errors, 2)
      assert.match(rr.result.errorSamples[0]!, /request 2: after 952 of 1024 echo bytes: peer closed/)
    } finally {
      relay.child.kill("SIGKILL")
    }
  })

  it("the hard deadline ends a stuck run with a clear message", { timeout: 20_000 }, async () => {
    // A relay with a 30 s delay: nothing comes back before the 1 s deadline.
    const relay = await start([build.bin.delay, "--target", echo.address, "--delay", "30s"])
    try {
      const child = spawn(build.bin.loadgen, [
        "--workload",
        "reqresp",
        "--target",
        relay.address,
        "--params",
        JSON.stringify({ clients: 1, durationMs: 200, warmupMs: 0 }),
        "--timeout",
        "1"
      ])
      let stderr = ""
      child.stderr.on("data", (b: Buffer) => (stderr += b.toString("utf8")))
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve))
      assert.strictEqual(code, 3)
      assert.match(stderr, /hard deadline of 1\.0 s exceeded in workload reqresp/)
    } finally {
      relay.child.kill("SIGKILL")
    }
  })

  it("yamux-go forwards every workload, FIN passed on both ways", { timeout: 20_000 }, async () => {
    const server = await start([build.bin.yamux, "server", "--listen", "127.0.0.1:0", "--target", echo.address])
    const proxy = await start([build.bin.yamux, "proxy", "--listen", "127.0.0.1:0", "--upstream", server.address])
    try {
      for (const w of WORKLOADS) {
        const run = await loadgen(build.bin.loadgen, w.workload, proxy.address, w.params)
        assert.strictEqual(run.result.errors, 0, `${w.name}: ${run.result.errorSamples.join("; ")}`)
      }
    } finally {
      // The proxy first: a proxy whose link dies exits 1 (that is a failure, not a stop).
      const exits: Array<number | null> = []
      for (const p of [proxy, server]) {
        const exited = new Promise<number | null>((resolve) => p.child.on("exit", resolve))
        p.child.kill("SIGTERM")
        exits.push(await exited)
      }
      assert.deepStrictEqual(exits, [0, 0], "both exit cleanly on SIGTERM")
    }
  })

  it("the delay relay adds its delay each way and keeps to its rate", { timeout: 20_000 }, async () => {
    const slow = await start([build.bin.delay, "--target", echo.address, "--delay", "25ms"])
    const paced = await start([build.bin.delay, "--target", echo.address, "--delay", "0s", "--rate", "10000000"])
    try {
      const rr = await loadgen(build.bin.loadgen, "reqresp", slow.address, { clients: 1, durationMs: 500, warmupMs: 0 })
      assert.strictEqual(rr.result.errors, 0)
      const p50 = (rr.result.latency as { p50: number }).p50
      assert.isAtLeast(p50, 50)
      // Upper bounds on time only catch gross errors: a loaded machine adds its own scheduling delay.
      assert.isBelow(p50, 300)
      // 10 MB/s each way: the echo comes back at most at that rate.
      const bulk = await loadgen(build.bin.loadgen, "bulk", paced.address, {
        streams: 1,
        durationMs: 1000,
        warmupMs: 200
      })
      assert.strictEqual(bulk.result.errors, 0)
      assert.isBelow(bulk.result.mbps as number, 10.5)
      assert.isAbove(bulk.result.mbps as number, 2)
    } finally {
      slow.child.kill("SIGKILL")
      paced.child.kill("SIGKILL")
    }
  })
})
