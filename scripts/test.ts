/**
 * `npm test`: the whole suite in one command, with one closing tally.
 *
 * Runs, in order and on one core budget: the checks (Biome format + lint, type check with Effect
 * diagnostics), vitest (unit, property, reliability, hostile-input, interop, end-to-end; Node), and
 * the cross-runtime scenarios (the same TCP scenarios under Node, Bun and Deno). Every step runs even
 * when an earlier one failed, so one run shows everything. The last line is `N passed, N failed`
 * over all tests and scenarios (a failed check counts as one failure); the exit code is non-zero when
 * anything failed or nothing ran.
 */
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import process from "node:process"

const root = join(import.meta.dirname, "..")
const bin = (name: string) => join(root, "node_modules", ".bin", name)
const run = (command: string, args: ReadonlyArray<string>, capture = false) =>
  spawnSync(command, args, { cwd: root, stdio: capture ? ["ignore", "pipe", "inherit"] : "inherit", encoding: "utf8" })

let passed = 0
let failed = 0
const steps: Array<string> = []

// 1. Checks.
const biome = run(bin("biome"), ["check", "."])
const types = run(process.execPath, [join(root, "scripts/typecheck.ts")])
const checksOk = biome.status === 0 && types.status === 0
steps.push(
  `checks: ${checksOk ? "ok" : "FAILED"} (biome ${biome.status === 0 ? "ok" : "failed"}, types ${types.status === 0 ? "ok" : "failed"})`
)
if (!checksOk) failed++

// 2. vitest, with a JSON report for the tally.
const report = join(root, ".vitest-report.json")
rmSync(report, { force: true })
const vitest = run(bin("vitest"), ["run", "--reporter=default", "--reporter=json", `--outputFile=${report}`])
if (existsSync(report)) {
  const json = JSON.parse(readFileSync(report, "utf8")) as { numPassedTests: number; numFailedTests: number }
  passed += json.numPassedTests
  failed += json.numFailedTests
  steps.push(`vitest: ${json.numPassedTests} passed, ${json.numFailedTests} failed`)
  rmSync(report, { force: true })
  // A non-zero exit with no failed test (an unhandled error, a failed file) still fails the run.
  if (vitest.status !== 0 && json.numFailedTests === 0) failed++
} else {
  failed++
  steps.push(`vitest: no report (exit ${vitest.status})`)
}

// 3. Cross-runtime scenarios.
const runtimes = run(process.execPath, [join(root, "test/runtimes/run.ts")], true)
process.stdout.write(runtimes.stdout ?? "")
const tally = /^(\d+) passed, (\d+) failed$/m.exec(runtimes.stdout ?? "")
if (tally !== null) {
  passed += Number(tally[1])
  failed += Number(tally[2])
  steps.push(`runtimes (node, bun, deno): ${tally[1]} passed, ${tally[2]} failed`)
} else {
  failed++
  steps.push(`runtimes: no tally (exit ${runtimes.status})`)
}
if (runtimes.status !== 0 && tally !== null && Number(tally[2]) === 0) failed++

console.log(`\n${steps.join("\n")}`)
console.log(`${passed} passed, ${failed} failed`)
process.exitCode = failed > 0 || passed === 0 ? 1 : 0
