/**
 * Preloaded into benchmarked plait processes (`node --import`, `bun --preload`, `deno --preload`) so
 * they report their own memory without any hook in `src/`: when `PLAIT_MEMORY_LOG=<ms>` is set, every
 * `<ms>` milliseconds it runs a full GC where the runtime allows it and prints one line to stderr:
 * `PLAIT_MEMORY {"rss":…,"heapUsed":…,"heapTotal":…,"external":…}` (bytes). The timer is unref'd.
 */
import process from "node:process"

const every = Number(process.env.PLAIT_MEMORY_LOG ?? "0")

const collect = (): void => {
  const g = globalThis as unknown as { gc?: () => void; Bun?: { gc: (force: boolean) => void } }
  if (g.Bun) g.Bun.gc(true)
  else if (typeof g.gc === "function") g.gc()
}

if (every > 0) {
  const timer = setInterval(() => {
    collect()
    const m = process.memoryUsage()
    const line = { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external }
    process.stderr.write(`PLAIT_MEMORY ${JSON.stringify(line)}\n`)
  }, every)
  timer.unref()
}
