/**
 * Scrapes plait's admin endpoints once a second, as Prometheus and an open dashboard would, for the
 * `plait-node-admin` bench system: `<runtime> bench/procs/scraper.ts URL...`. Each second it GETs
 * every URL (and drains the body); it stops on SIGTERM/SIGINT, or by itself after 15 minutes.
 */
import process from "node:process"

const urls = process.argv.slice(2)
let stopped = false
const stop = () => {
  stopped = true
  process.exit(0)
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
setTimeout(stop, 15 * 60_000).unref()

const scrape = async () => {
  while (!stopped) {
    const started = Date.now()
    await Promise.all(
      urls.map((url) =>
        fetch(url, { signal: AbortSignal.timeout(900) })
          .then((response) => response.arrayBuffer())
          .catch(() => undefined)
      )
    )
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 1000 - (Date.now() - started))))
  }
}
console.log(`scraper: scraping ${urls.length} URL(s) every second`)
void scrape()
