/**
 * Type-checks the project with the Effect language service's diagnostics when they are available.
 *
 * `@effect/tsgo` (the Effect language service for TypeScript 7) ships its patched `tsc` as
 * per-platform packages; the npm registry this project installs from carries only the linux-x64
 * one, so it is an optional dependency. Where it is installed, its `tsc` runs: the same type check
 * as TypeScript 7 plus Effect-specific errors (floating effects, missing services, ...). Elsewhere the
 * plain TypeScript 7 `tsc` runs and a note says what was skipped.
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import process from "node:process"

const require = createRequire(import.meta.url)

const effectTsc = (): string | undefined => {
  try {
    const path = join(dirname(require.resolve("@effect/tsgo-linux-x64/package.json")), "lib", "tsc")
    return existsSync(path) && process.platform === "linux" && process.arch === "x64" ? path : undefined
  } catch {
    return undefined
  }
}

const patched = effectTsc()
const tsc = patched ?? join(dirname(require.resolve("typescript/package.json")), "bin", "tsc")
if (patched === undefined) {
  console.error("typecheck: @effect/tsgo is not available on this platform; running plain tsc (no Effect diagnostics)")
}
const result = spawnSync(
  patched === undefined ? process.execPath : tsc,
  [...(patched === undefined ? [tsc] : []), "-p", "tsconfig.json"],
  {
    stdio: "inherit"
  }
)
process.exit(result.status ?? 1)
