/**
 * The load generator as a process, driven by `bench/run.ts`: runs one workload of
 * `bench/workloads.ts` against a target and prints one line `RESULT {json}` (the workload's result
 * plus this process's CPU use during it). Exit code 0 even when payload checks failed — the result's
 * `errors` says so; non-zero only when the generator itself broke.
 *
 * Usage: `<runtime> bench/loadgen.ts --workload bulk|reqresp|connrate|idle|hol --target HOST:PORT
 *         [--params JSON]`
 *
 * For `idle`, once every connection is open and verified it prints `HELD` and waits for a line on
 * stdin (the harness measures memory meanwhile; at most 30 s), then verifies and closes them.
 */
import process from "node:process"
import * as LoadGen from "./workloads.ts"

const args = process.argv.slice(2)
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
const workload = flag("--workload") ?? "reqresp"
const target = LoadGen.parseTarget(flag("--target") ?? "127.0.0.1:7000")
const params = JSON.parse(flag("--params") ?? "{}") as Record<string, number>
const num = (name: string, fallback: number): number => params[name] ?? fallback
/** With `LOADGEN_PROGRESS=1`, a progress line on stderr every second (for debugging a run). */
const progress = LoadGen.makeProgress()
if (process.env.LOADGEN_PROGRESS === "1") {
  setInterval(() => process.stderr.write(`loadgen: ${JSON.stringify(progress)}\n`), 1000).unref()
}

const waitForLine = (timeoutMs: number): Promise<void> =>
  new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      process.stdin.off("data", done)
      process.stdin.pause()
      resolve()
    }
    const timer = setTimeout(done, timeoutMs)
    process.stdin.on("data", done)
    process.stdin.resume()
  })

const run = (): Promise<LoadGen.BaseResult> => {
  switch (workload) {
    case "bulk":
      return LoadGen.runBulk({
        target,
        progress,
        streams: num("streams", 16),
        // Timed (durationMs given): bytesPerStream is only a cap, none by default.
        bytesPerStream: num("bytesPerStream", params.durationMs === undefined ? 16 * 1024 * 1024 : 2 ** 50),
        ...(params.durationMs === undefined ? {} : { durationMs: params.durationMs, warmupMs: num("warmupMs", 0) }),
        ...(params.chunkSize === undefined ? {} : { chunkSize: params.chunkSize })
      })
    case "reqresp":
      return LoadGen.runReqResp({
        target,
        progress,
        clients: num("clients", 64),
        size: num("size", 1024),
        durationMs: num("durationMs", 3000),
        warmupMs: num("warmupMs", 500)
      })
    case "connrate":
      return LoadGen.runConnRate({
        target,
        progress,
        workers: num("workers", 32),
        durationMs: num("durationMs", 3000),
        warmupMs: num("warmupMs", 500)
      })
    case "idle":
      return LoadGen.runIdle({
        target,
        progress,
        connections: num("connections", 9000),
        settleMs: num("settleMs", 500),
        onHeld: async () => {
          process.stdout.write("HELD\n")
          await waitForLine(30_000)
        }
      })
    case "hol":
      return LoadGen.runHol({
        target,
        progress,
        clients: num("clients", 16),
        bulkStreams: num("bulkStreams", 1),
        durationMs: num("durationMs", 3000),
        warmupMs: num("warmupMs", 500)
      })
    default:
      throw new Error(`unknown workload ${workload}`)
  }
}

try {
  const { value, cpu } = await LoadGen.withCpu(run)
  process.stdout.write(`RESULT ${JSON.stringify({ ...value, generator: { runtime: LoadGen.runtimeName(), cpu } })}\n`)
  process.exit(0)
} catch (error) {
  console.error(`loadgen: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  process.exit(2)
}
