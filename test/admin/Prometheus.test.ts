/**
 * The metrics as Prometheus itself sees them: the exposition of a running proxy and server passes
 * `promtool check metrics`, and a real Prometheus server (Debian's `prometheus`, started here on a
 * free loopback port with a temporary config and storage, scraping every second with the admin
 * token, killed at the end) scrapes both and answers queries with the expected non-zero series.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type CliProcess, freePort, roundTrip, spawnCli, spawnProcess } from "../e2e/helpers.ts"
import { promtool, request, until } from "./helpers.ts"

const ADMIN_TOKEN = "prometheus-scrape-token-5e8a"
const ADMIN_LINE = /admin: listening on http:\/\/127\.0\.0\.1:(\d+)/

const adminPort = (cli: CliProcess) => Effect.map(cli.waitForLine(ADMIN_LINE), (match) => Number(match[1]))

/** A server and a proxy (CLI processes) with admin endpoints, and some traffic through them. */
const plaitPair = Effect.gen(function* () {
  const server = yield* spawnCli("node", "server", [
    "--listen",
    "127.0.0.1:0",
    "--admin",
    "127.0.0.1:0",
    "--admin-token",
    ADMIN_TOKEN
  ])
  const serverPort = Number((yield* server.waitForLine(/server: listening on 127\.0\.0\.1:(\d+)/))[1])
  const serverAdmin = yield* adminPort(server)
  const proxy = yield* spawnCli("node", "proxy", [
    "--listen",
    "127.0.0.1:0",
    "--upstream",
    `127.0.0.1:${serverPort}`,
    "--admin",
    "127.0.0.1:0",
    "--admin-token",
    ADMIN_TOKEN
  ])
  const proxyPort = Number((yield* proxy.waitForLine(/proxy: listening on 127\.0\.0\.1:(\d+)/))[1])
  const proxyAdmin = yield* adminPort(proxy)
  yield* proxy.waitForLine(/link: up to/)
  for (let i = 0; i < 4; i++) {
    const result = yield* roundTrip(proxyPort, new Uint8Array(2048).fill(i))
    assert.strictEqual(result.data.length, 2048)
  }
  return { serverAdmin, proxyAdmin }
})

const auth = { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }

interface Vector {
  readonly status: string
  readonly data: { readonly result: ReadonlyArray<{ metric: Record<string, string>; value: [number, string] }> }
}

describe("Prometheus", () => {
  it.live(
    "promtool accepts the exposition of a proxy and a server",
    () =>
      Effect.gen(function* () {
        const { serverAdmin, proxyAdmin } = yield* plaitPair
        for (const port of [proxyAdmin, serverAdmin]) {
          const metrics = yield* request({ host: "127.0.0.1", port }, "/metrics", auth)
          assert.strictEqual(metrics.status, 200)
          assert.include(metrics.body, "plait_bytes_total")
          const checked = yield* promtool(metrics.body)
          assert.strictEqual(checked.code, 0, checked.output)
          assert.strictEqual(checked.output.trim(), "", "no lint findings")
        }
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a real Prometheus scrapes both and its query API returns the expected non-zero series",
    () =>
      Effect.gen(function* () {
        const { serverAdmin, proxyAdmin } = yield* plaitPair
        const dir = yield* Effect.acquireRelease(
          Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "plait-prometheus-"))),
          (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
        )
        const config = path.join(dir, "prometheus.yml")
        fs.writeFileSync(
          config,
          [
            "global:",
            "  scrape_interval: 1s",
            "  scrape_timeout: 1s",
            "scrape_configs:",
            "  - job_name: plait",
            "    authorization:",
            `      credentials: ${ADMIN_TOKEN}`,
            "    static_configs:",
            `      - targets: ["127.0.0.1:${proxyAdmin}", "127.0.0.1:${serverAdmin}"]`,
            ""
          ].join("\n")
        )
        const port = yield* freePort
        const prometheus = yield* spawnProcess("prometheus", "prometheus", [
          `--config.file=${config}`,
          `--storage.tsdb.path=${path.join(dir, "data")}`,
          `--web.listen-address=127.0.0.1:${port}`,
          "--storage.tsdb.retention.time=1h",
          "--log.level=warn"
        ])
        const api = { host: "127.0.0.1", port }
        const query = (promql: string) =>
          request(api, `/api/v1/query?query=${encodeURIComponent(promql)}`).pipe(
            Effect.map((reply) => (reply.status === 200 ? (JSON.parse(reply.body) as Vector) : undefined)),
            Effect.orElseSucceed(() => undefined)
          )
        const values = (vector: Vector | undefined) =>
          new Map((vector?.data.result ?? []).map((r) => [r.metric.role ?? r.metric.instance, Number(r.value[1])]))

        // Both targets up (scraped with the token), then the series with the traffic driven above.
        const up = yield* until(
          Effect.map(query('up{job="plait"}'), (v) => {
            const all = v?.data.result ?? []
            return all.length === 2 && all.every((r) => r.value[1] === "1")
          }),
          30_000
        )
        assert.isTrue(up, `both targets scraped\n${prometheus.output()}`)
        const bytes = yield* Effect.map(query('plait_bytes_total{service="default",direction="up"}'), values)
        assert.strictEqual(bytes.get("proxy"), 4 * 2048)
        assert.strictEqual(bytes.get("server"), 4 * 2048)
        const opened = values(yield* query("plait_streams_opened_total"))
        assert.strictEqual(opened.get("proxy"), 4)
        assert.strictEqual(opened.get("server"), 4)
        const links = values(yield* query("plait_links"))
        assert.strictEqual(links.get("proxy"), 1)
        assert.strictEqual(links.get("server"), 1)
        const openLatency = values(yield* query("plait_stream_open_seconds_count"))
        assert.strictEqual(openLatency.get("proxy"), 4)
        const rss = values(yield* query("plait_process_resident_memory_bytes"))
        assert.isAbove(rss.get("proxy") ?? 0, 1_000_000)
        assert.isAbove(rss.get("server") ?? 0, 1_000_000)
      }).pipe(Effect.scoped),
    90_000
  )
})
