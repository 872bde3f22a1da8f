/**
 * Cross-runtime harness: runs every `test/runtimes/scenarios/*.ts` under Node, Bun and Deno, one
 * child process at a time (the machine is small), each killed after a hard timeout.
 *
 * Output: one line per runtime × scenario (`PASS`/`FAIL`, runtime, scenario, seconds, the
 * scenario's summary or failure reason; a failure also prints the child's output), then exactly
 * `N passed, N failed` — the CI greps that line. Exit code 1 if anything failed or nothing ran.
 *
 * Usage: `npm run runtimes [-- <scenario-name-substring>...]`.
 * Environment: `RUNTIMES=bun,deno` picks runtimes (default `node,bun,deno`);
 * `RUNTIMES_TIMEOUT_MS` sets the per-run kill timeout (default 60000); `RUNTIMES_SCENARIOS` points
 * at another scenario directory (to test the harness itself).
 *
 * Deno runs with `nodeModulesDir: "manual"` (deno.json), so `effect` resolves from `node_modules`;
 * `--no-remote --cached-only --no-lock` and `DENO_NO_UPDATE_CHECK` keep it off the network, and
 * permissions are limited to loopback networking and reading the repository.
 */
import { spawn } from "node:child_process"
import { existsSync, readdirSync } from "node:fs"
import * as path from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const scenarioDir = path.resolve(process.env.RUNTIMES_SCENARIOS ?? path.join(root, "test/runtimes/scenarios"))
const bin = (name: string) => path.join(root, "node_modules/.bin", name)
const timeoutMs = Number(process.env.RUNTIMES_TIMEOUT_MS ?? 60_000)

interface Runtime {
  readonly name: string
  readonly command: string
  readonly args: (file: string) => ReadonlyArray<string>
}

const allRuntimes: ReadonlyArray<Runtime> = [
  { name: "node", command: bin("node"), args: (file) => [file] },
  { name: "bun", command: bin("bun"), args: (file) => [file] },
  {
    name: "deno",
    command: bin("deno"),
    args: (file) => [
      "run",
      "--no-remote",
      "--cached-only",
      "--no-lock",
      "--no-prompt",
      "--allow-net=127.0.0.1,localhost",
      "--allow-env",
      `--allow-read=${root}`,
      "--allow-sys",
      file
    ]
  }
]

const wanted = (process.env.RUNTIMES ?? "node,bun,deno").split(",").map((s) => s.trim())
const runtimes = allRuntimes.filter((r) => wanted.includes(r.name))
const filters = process.argv.slice(2)
const scenarios = readdirSync(scenarioDir)
  .filter((f) => f.endsWith(".ts"))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort()

interface Outcome {
  readonly ok: boolean
  readonly seconds: number
  readonly summary: string
  readonly output: string
}

let current: ReturnType<typeof spawn> | undefined

const killGroup = (child: ReturnType<typeof spawn>) => {
  if (child.pid === undefined) return
  try {
    // The child leads its own process group: kill anything it spawned too.
    process.kill(-child.pid, "SIGKILL")
  } catch {
    child.kill("SIGKILL")
  }
}

const runOne = (runtime: Runtime, file: string): Promise<Outcome> =>
  new Promise((resolve) => {
    const started = performance.now()
    const output: Array<string> = []
    let stdout = ""
    let timedOut = false
    const child = spawn(runtime.command, runtime.args(file), {
      cwd: root,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, DENO_NO_UPDATE_CHECK: "1", DENO_NO_PROMPT: "1", NO_COLOR: "1", FORCE_COLOR: "0" }
    })
    current = child
    child.stdout.setEncoding("utf8")
    child.stderr.setEncoding("utf8")
    child.stdout.on("data", (s: string) => {
      stdout += s
      output.push(s)
    })
    child.stderr.on("data", (s: string) => output.push(s))
    const timer = setTimeout(() => {
      timedOut = true
      killGroup(child)
    }, timeoutMs)
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
      clearTimeout(timer)
      current = undefined
      const seconds = (performance.now() - started) / 1000
      const lines = stdout.trim().split("\n")
      const last = lines[lines.length - 1] ?? ""
      const ok = spawnError === undefined && !timedOut && code === 0 && last.startsWith("ok ")
      const summary = spawnError
        ? `cannot start ${runtime.command}: ${spawnError.message}`
        : timedOut
          ? `timed out after ${timeoutMs / 1000} s (killed)`
          : code !== 0
            ? `exit ${code ?? signal}`
            : ok
              ? last
              : "exited 0 without an `ok …` summary line"
      resolve({ ok, seconds, summary, output: output.join("") })
    }
    child.once("error", (error) => finish(null, null, error))
    child.once("close", (code, signal) => finish(code, signal))
  })

const onSignal = (signal: NodeJS.Signals) => {
  if (current !== undefined) killGroup(current)
  process.exit(signal === "SIGINT" ? 130 : 143)
}
process.once("SIGINT", onSignal)
process.once("SIGTERM", onSignal)

let passed = 0
let failed = 0
for (const file of scenarios) {
  const name = file.replace(/\.ts$/, "")
  for (const runtime of runtimes) {
    if (!existsSync(runtime.command)) {
      failed++
      console.log(`FAIL  ${runtime.name.padEnd(5)} ${name}  (${runtime.command} not installed)`)
      continue
    }
    const outcome = await runOne(runtime, path.join(scenarioDir, file))
    const line = `${outcome.ok ? "PASS" : "FAIL"}  ${runtime.name.padEnd(5)} ${name}  ${outcome.seconds.toFixed(2)}s  ${outcome.summary}`
    console.log(line)
    if (outcome.ok) passed++
    else {
      failed++
      const indented = outcome.output
        .trimEnd()
        .split("\n")
        .slice(-60)
        .map((l) => `    | ${l}`)
      console.log(indented.join("\n"))
    }
  }
}
if (passed + failed === 0) console.log("no scenarios matched")
console.log(`${passed} passed, ${failed} failed`)
process.exitCode = failed > 0 || passed === 0 ? 1 : 0
