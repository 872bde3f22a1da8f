/**
 * Helpers of the bench tests: the project's runtimes and a child-process runner with a deadline.
 */
import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import * as path from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

/** Node 24 from node_modules (the system node may be older), else this process's own. */
export const NODE = existsSync(path.join(ROOT, "node_modules/.bin/node"))
  ? path.join(ROOT, "node_modules/.bin/node")
  : process.execPath

export interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `args` on Node 24 in the repo root; resolves with the exit code and output (killed after `timeoutMs`). */
export const runNode = (
  args: ReadonlyArray<string>,
  timeoutMs: number,
  env: Record<string, string> = {}
): Promise<Ran> =>
  new Promise((resolve) => {
    execFile(
      NODE,
      [...args],
      {
        cwd: ROOT,
        timeout: timeoutMs,
        killSignal: "SIGKILL",
        env: { ...process.env, ...env },
        maxBuffer: 16 * 1024 * 1024
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : null
        resolve({ code, stdout, stderr })
      }
    )
  })
