/**
 * The `npm start` demo's clients, in a worker thread of their own (started by tools/demo.ts): the
 * load generator's mixed workload against the proxy, with its own event loop and heap, so that the
 * demo's latency and connection-setup figures measure the proxy and the server rather than clients
 * queued behind them on one event loop.
 *
 * Protocol with the demo (worker messages): `{ type: "progress", progress }` every 100 ms while the
 * workload runs, then exactly one `{ type: "done", result, busy }` or `{ type: "failed", message }`.
 */
import { performance } from "node:perf_hooks"
import { parentPort, workerData } from "node:worker_threads"
import * as LoadGen from "../bench/workloads.ts"

/** What the demo hands the worker. */
export interface ClientsJob {
  readonly target: LoadGen.Target
  readonly clients: number
  readonly durationMs: number
  readonly maxMessage: number
}

/** What the worker sends back. */
export type ClientsMessage =
  | { readonly type: "progress"; readonly progress: LoadGen.Progress }
  | {
      readonly type: "done"
      readonly result: LoadGen.MixedResult
      readonly progress: LoadGen.Progress
      /** Share of the run this worker's event loop was busy (0 where the runtime does not measure it). */
      readonly busy: number
    }
  | { readonly type: "failed"; readonly message: string }

const port = parentPort
if (port !== null) {
  const job = workerData as ClientsJob
  const progress = LoadGen.makeProgress()
  const send = (message: ClientsMessage) => port.postMessage(message)
  const ticker = setInterval(() => send({ type: "progress", progress }), 100)
  const loop = performance.eventLoopUtilization()
  LoadGen.runMixed({ ...job, progress }).then(
    (result) => {
      clearInterval(ticker)
      send({ type: "done", result, progress, busy: performance.eventLoopUtilization(loop).utilization })
    },
    (error: unknown) => {
      clearInterval(ticker)
      send({ type: "failed", message: String(error) })
    }
  )
}
