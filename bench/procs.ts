/**
 * Child processes of the benchmark: spawning a runtime on a script (with the memory hook preloaded),
 * waiting for its "listening on" line, reading its CPU time and RSS from /proc, and stopping it.
 * Everything started here is tracked and killed on exit, whatever happens.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"
import type { Target } from "./workloads.ts"

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const BIN = path.join(ROOT, "node_modules", ".bin")
const HOOK = path.join(ROOT, "bench", "procs", "memory-hook.ts")

export type Runtime = "node" | "bun" | "deno"

/** The runtime's binary (the project's own, else the one on PATH), or undefined when missing. */
export const runtimeBinary = (runtime: Runtime): string | undefined => {
  const local = path.join(BIN, runtime)
  if (existsSync(local)) return local
  try {
    return execFileSync("sh", ["-c", `command -v ${runtime}`], { encoding: "utf8" }).trim() || undefined
  } catch {
    return undefined
  }
}

/** `which` for any program. */
export const which = (program: string): string | undefined => {
  try {
    return execFileSync("sh", ["-c", `command -v ${program}`], { encoding: "utf8" }).trim() || undefined
  } catch {
    return undefined
  }
}

/** The runtime's version string. */
export const runtimeVersion = (runtime: Runtime): string => {
  const bin = runtimeBinary(runtime)
  if (bin === undefined) return "missing"
  try {
    return execFileSync(bin, ["--version"], { encoding: "utf8" }).split("\n")[0]!.trim()
  } catch {
    return "unknown"
  }
}

/**
 * V8 flags plait is launched with on Node and Deno — the same as in `package.json`'s scripts and
 * `deno.json`'s tasks (a test keeps the three in step). The cap on the young generation is the
 * idle-memory knob: V8 sizes new space by the machine's RAM (up to 2 × 64 MiB here), and a process
 * that just accepted thousands of connections keeps it all resident.
 */
export const PLAIT_V8_FLAGS: ReadonlyArray<string> = ["--max-semi-space-size=8"]

/**
 * Command line running `script` on `runtime`, with the memory hook preloaded (and GC exposed);
 * `v8Flags` go to Node and Deno (Bun runs JavaScriptCore and has no such flags).
 */
export const runtimeCommand = (
  runtime: Runtime,
  script: string,
  args: ReadonlyArray<string>,
  v8Flags: ReadonlyArray<string> = []
): Array<string> => {
  const bin = runtimeBinary(runtime)
  if (bin === undefined) throw new Error(`runtime ${runtime} not found`)
  switch (runtime) {
    case "node":
      return [bin, "--expose-gc", ...v8Flags, "--import", HOOK, script, ...args]
    case "bun":
      return [bin, "--preload", HOOK, script, ...args]
    case "deno":
      return [
        bin,
        "run",
        "-A",
        `--v8-flags=${["--expose-gc", ...v8Flags].join(",")}`,
        "--preload",
        HOOK,
        script,
        ...args
      ]
  }
}

/** A memory report printed by the hook. */
export interface MemoryLine {
  readonly rss: number
  readonly heapUsed: number
  readonly heapTotal: number
  readonly external: number
}

/** A running child. */
export interface Proc {
  readonly name: string
  readonly child: ChildProcess
  readonly pid: number
  /** Last lines of stdout and stderr, for diagnostics. */
  readonly tail: Array<string>
  /** The latest memory line from the hook, with the time it arrived. */
  memory: { readonly at: number; readonly value: MemoryLine } | undefined
  readonly onLine: Set<(line: string) => void>
  exitCode: number | null | undefined
  readonly exited: Promise<void>
}

const live = new Set<Proc>()

const killAll = () => {
  for (const proc of live) {
    try {
      proc.child.kill("SIGKILL")
    } catch {
      // already gone
    }
  }
}
process.on("exit", killAll)
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    killAll()
    process.exit(130)
  })
}

/** Spawns `argv` (stdin piped), collecting its output lines. */
export const spawnProc = (name: string, argv: ReadonlyArray<string>, env: Record<string, string> = {}): Proc => {
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"]
  })
  if (child.pid === undefined) throw new Error(`could not start ${name}: ${argv.join(" ")}`)
  let resolveExit: () => void = () => {}
  const proc: Proc = {
    name,
    child,
    pid: child.pid,
    tail: [],
    memory: undefined,
    onLine: new Set(),
    exitCode: undefined,
    exited: new Promise((resolve) => {
      resolveExit = resolve
    })
  }
  live.add(proc)
  child.on("exit", (code, signal) => {
    proc.exitCode = code ?? (signal === null ? null : -1)
    live.delete(proc)
    resolveExit()
  })
  child.on("error", () => {
    proc.exitCode = -1
    live.delete(proc)
    resolveExit()
  })
  child.stdin?.on("error", () => {})
  const feed = (stream: NodeJS.ReadableStream | null) => {
    if (stream === null) return
    let pending = ""
    stream.setEncoding("utf8")
    stream.on("data", (text: string) => {
      pending += text
      let nl = pending.indexOf("\n")
      while (nl >= 0) {
        const line = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        nl = pending.indexOf("\n")
        if (line.startsWith("PLAIT_MEMORY ")) {
          try {
            proc.memory = { at: Date.now(), value: JSON.parse(line.slice(13)) as MemoryLine }
          } catch {
            // ignore a torn line
          }
          continue
        }
        proc.tail.push(line)
        if (proc.tail.length > 40) proc.tail.shift()
        for (const f of proc.onLine) f(line)
      }
    })
  }
  feed(child.stdout)
  feed(child.stderr)
  return proc
}

/** Waits for a line matching `pattern`; rejects on exit or timeout (with the process's last lines). */
export const waitForLine = (proc: Proc, pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> =>
  new Promise((resolve, reject) => {
    for (const line of proc.tail) {
      const match = pattern.exec(line)
      if (match) return resolve(match)
    }
    const cleanup = () => {
      clearTimeout(timer)
      proc.onLine.delete(onLine)
    }
    const onLine = (line: string) => {
      const match = pattern.exec(line)
      if (match) {
        cleanup()
        resolve(match)
      }
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`${proc.name}: no line matching ${pattern} within ${timeoutMs} ms:\n${proc.tail.join("\n")}`))
    }, timeoutMs)
    proc.onLine.add(onLine)
    proc.exited.then(() => {
      if (!proc.onLine.has(onLine)) return
      cleanup()
      reject(new Error(`${proc.name} exited (${proc.exitCode}) before ${pattern}:\n${proc.tail.join("\n")}`))
    })
  })

/** Matches a "listening on HOST:PORT" line (IPv6 in brackets). */
export const LISTENING = /listening on (?:\[([^\]]+)\]|([^\s,\]]+?)):(\d+)/

/** The address in a {@link LISTENING} match. */
export const listeningTarget = (match: RegExpExecArray): Target => ({
  host: match[1] ?? match[2]!,
  port: Number(match[3])
})

/** Stops a process: SIGTERM, then SIGKILL after `graceMs`. */
export const stopProc = async (proc: Proc, graceMs = 1500): Promise<void> => {
  if (proc.exitCode !== undefined) return
  proc.child.kill("SIGTERM")
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), graceMs)
  await proc.exited
  clearTimeout(timer)
}

let clockTicks: number | undefined
const ticksPerSecond = (): number => {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

/** CPU seconds (user + system) the process used so far, from /proc; undefined off Linux. */
export const cpuSeconds = (pid: number): number | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond()
  } catch {
    return undefined
  }
}

/** Resident set size in bytes, from /proc (VmRSS); undefined off Linux. */
export const rssBytes = (pid: number): number | undefined => {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return match ? Number(match[1]) * 1024 : undefined
  } catch {
    return undefined
  }
}

/** A free TCP port on 127.0.0.1 (bound and released). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

/** Resolves once `target` accepts a connection, retrying every 50 ms up to `timeoutMs`. */
export const waitForPort = async (target: Target, timeoutMs: number): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (true) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(target.port, target.host)
      socket.once("connect", () => {
        socket.destroy()
        resolve(true)
      })
      socket.once("error", () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`${target.host}:${target.port} did not accept within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
