/**
 * The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core. The page
 * must render, show the link as up and follow the stream count while the test holds streams open
 * on two services (each its own row and its own lines in the charts), without a single console
 * error (a CSP violation, a failed request or a script error all are).
 * Takes a screenshot; with `UPDATE_SCREENSHOT=1` it becomes the one the README shows
 * (docs/dashboard.png), otherwise it goes to the temporary directory (a normal run leaves the
 * tree clean).
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import process from "node:process"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Redacted } from "effect"
import { chromium, type Page } from "playwright-core"
import * as Tcp from "../../src/transport/Tcp.ts"
import { isolated, pair } from "./helpers.ts"

const CHROMIUM = "/usr/bin/chromium"
const TOKEN = "dashboard-token-93c1f0"

/**
 * A headless Chromium with a fresh profile (`--user-data-dir`, which playwright passes for a
 * persistent context), closed and its profile removed with the scope; a page on `url` that records
 * console errors, page errors, failed requests and every URL it loads.
 */
const openPage = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const profile = mkdtempSync(join(tmpdir(), "plait-chromium-"))
      const context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync"
        ],
        timeout: 20_000,
        viewport: { width: 1280, height: 900 },
        httpCredentials: { username: "ops", password: TOKEN }
      })
      const page = context.pages()[0] ?? (await context.newPage())
      const errors: Array<string> = []
      page.on("console", (message) => {
        if (message.type() === "error") errors.push(message.text())
      })
      page.on("pageerror", (error) => errors.push(String(error)))
      page.on("requestfailed", (req) => errors.push(`request failed: ${req.url()}`))
      const requests: Array<string> = []
      page.on("request", (req) => requests.push(req.url()))
      await page.goto(url, { waitUntil: "load", timeout: 15_000 })
      return { context, profile, page, errors, requests }
    }),
    ({ context, profile }) =>
      Effect.promise(async () => {
        await context.close()
        rmSync(profile, { recursive: true, force: true })
      })
  )

/**
 * The text of `selector` once it equals `expected` (or, with `{ includes }`, contains it), within
 * `timeout` ms. Plain comparisons: the page's policy forbids evaluating strings as code.
 */
const waitForText = (
  page: Page,
  selector: string,
  expected: string | { readonly includes: string },
  timeout = 10_000
) =>
  Effect.promise(() =>
    page.waitForFunction(
      ([sel, want, partial]) => {
        // Runs in the page (the DOM is there, not in this project's type library).
        const page = globalThis as unknown as {
          document: { querySelector: (selector: string) => { textContent: string | null } | null }
        }
        const text = page.document.querySelector(sel)?.textContent ?? ""
        return (partial ? text.includes(want) : text === want) ? text : false
      },
      typeof expected === "string"
        ? ([selector, expected, false] as const)
        : ([selector, expected.includes, true] as const),
      { timeout, polling: 100 }
    )
  ).pipe(Effect.flatMap((handle) => Effect.promise(() => handle.jsonValue() as Promise<string>)))

describe("dashboard in Chromium", () => {
  it.live(
    "renders, shows the link up, follows the stream count of two services while traffic runs, without console errors",
    () =>
      isolated(
        Effect.gen(function* () {
          const { proxy, proxyAdmin } = yield* pair({ token: Redacted.make(TOKEN), services: ["web"] })
          const web = proxy.addresses().web!
          const base = `http://127.0.0.1:${proxyAdmin.address.port}`
          const { page, errors, requests } = yield* openPage(`${base}/`)

          assert.strictEqual(yield* waitForText(page, "#link-state", "up"), "up")
          assert.strictEqual(yield* waitForText(page, "#ready", "ready"), "ready")
          assert.strictEqual(yield* waitForText(page, "#streams-now", "0"), "0")
          assert.include(yield* waitForText(page, "#role", { includes: "plait proxy" }), "plait proxy")

          // Hold 5 streams open (clients that have not half-closed), with traffic on them: 3 on the
          // default service, 2 on web.
          const held = yield* Effect.forkChild(
            Effect.scoped(
              Effect.gen(function* () {
                const clients = yield* Effect.forEach([0, 1, 2, 3, 4], (i) => Tcp.connect(i < 3 ? proxy.address : web))
                for (let round = 0; round < 50; round++) {
                  for (const client of clients) {
                    yield* client.write([new Uint8Array(16 * 1024).fill(round)])
                    let got = 0
                    while (got < 16 * 1024) got += (yield* client.read)?.length ?? 0
                  }
                  yield* Effect.sleep(50)
                }
                return yield* Effect.never
              })
            )
          )
          assert.strictEqual(yield* waitForText(page, "#streams-now", "5"), "5")
          // A row per service with its own count, and a line per service and direction in the throughput chart.
          assert.include(yield* waitForText(page, "#services", { includes: "web" }), "default")
          const legend = yield* waitForText(page, "#bytes-chart", { includes: "web down" })
          for (const label of ["default up", "default down", "web up"]) assert.include(legend, label)
          assert.include(yield* waitForText(page, "#streams-chart", { includes: "web" }), "default")
          // The chart has drawn: uPlot renders into a canvas per chart.
          const canvases = yield* Effect.promise(() => page.locator("canvas").count())
          assert.isAtLeast(canvases, 2)
          // Let a few seconds of throughput reach the chart before the screenshot.
          yield* waitForText(page, "#services", { includes: "MiB" }, 15_000)
          yield* Effect.sleep(2_000)
          const shot =
            process.env.UPDATE_SCREENSHOT === "1" ? "docs/dashboard.png" : join(tmpdir(), "plait-dashboard.png")
          const png = yield* Effect.promise(() => page.screenshot({ path: shot, fullPage: true }))
          assert.isAbove(png.length, 10_000, "a screenshot with content")

          yield* Fiber.interrupt(held)
          assert.strictEqual(yield* waitForText(page, "#streams-now", "0"), "0")
          const events = yield* waitForText(page, "#events", { includes: "link up" })
          assert.include(events, "proxy: link up")

          assert.deepStrictEqual(errors, [])
          // Everything the page loaded came from the admin endpoint itself.
          for (const url of requests) assert.isTrue(url.startsWith(base), url)
        })
      ),
    60_000
  )
})
