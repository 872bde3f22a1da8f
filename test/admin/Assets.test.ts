import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { describe, expect, it } from "vitest"
import { generate, target } from "../../scripts/admin-assets.ts"
import { UPLOT_CSS, UPLOT_JS, UPLOT_VERSION } from "../../src/internal/admin/uplot.ts"

const require = createRequire(import.meta.url)

describe("dashboard assets", () => {
  it("the inlined uPlot is the installed package's, byte for byte (regenerate with node scripts/admin-assets.ts)", () => {
    expect(readFileSync(target, "utf8")).toBe(generate())
    expect(UPLOT_VERSION).toBe(require("uplot/package.json").version)
    expect(UPLOT_JS).toBe(readFileSync(require.resolve("uplot/dist/uPlot.iife.min.js"), "utf8"))
    expect(UPLOT_CSS).toBe(readFileSync(require.resolve("uplot/dist/uPlot.min.css"), "utf8"))
  }, 10_000)
})
