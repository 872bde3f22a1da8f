/**
 * Preloaded into benchmarked plait processes (`node --import`, `bun --preload`, `deno --preload`) so
 * they report their own memory without any hook in `src/`. With `PLAIT_MEMORY_LOG=1` it installs a
 * SIGUSR2 handler: on each signal it runs a full GC where the runtime allows it (`Bun.gc`, or `gc`
 * under `--expose-gc`) and prints one line to stderr:
 * `PLAIT_MEMORY {"rss":…,"heapUsed":…,"heapTotal":…,"external":…}` (bytes).
 *
 * On demand rather than periodic: a forced full GC every few hundred ms slows a process holding
 * thousands of connections by an order of magnitude. Without the variable nothing is installed (and
 * SIGUSR2 keeps its default action: terminate).
 */
import process from "node:process"

const collect = (): void => {
  const g = globalThis as unknown as { gc?: () => void; Bun?: { gc: (force: boolean) => void } }
  if (g.Bun) g.Bun.gc(true)
  else if (typeof g.gc === "function") g.gc()
}

if (process.env.PLAIT_MEMORY_LOG === "1") {
  process.on("SIGUSR2", () => {
    collect()
    const m = process.memoryUsage()
    const line = { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external }
    process.stderr.write(`PLAIT_MEMORY ${JSON.stringify(line)}\n`)
  })
}
