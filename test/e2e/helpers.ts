/**
 * Helpers for the end-to-end tests: real `plait proxy` / `plait server` processes under Node, Bun or
 * Deno, driven by plain `node:net` clients and backends inside the test process (so the test never
 * relies on the code under test to check it).
 *
 * Every process spawned here is killed (SIGKILL to its process group) when its scope closes, also
 * when the test fails; every wait has a deadline and fails with the process's output so far.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"
import { Data, Deferred, Duration, Effect, Exit, type Scope } from "effect"
import * as Harness from "../hardening/harness.ts"
import { makePki } from "../security/certs.ts"

/** The repository root. */
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

const bin = (name: string) => path.join(root, "node_modules/.bin", name)

/** A runtime that can run `src/` unbuilt. */
export type RuntimeName = "node" | "bun" | "deno"
export const runtimes: ReadonlyArray<RuntimeName> = ["node", "bun", "deno"]

/** A command-line entry of plait. */
export type Entry = "proxy" | "server"

/** The command line that runs `entry` under `runtime` (Deno: loopback network and the repo only). */
export const commandLine = (
  runtime: RuntimeName,
  entry: Entry,
  args: ReadonlyArray<string>
): { readonly command: string; readonly args: ReadonlyArray<string> } => {
  const file = path.join(root, "src/cli", `${entry}.ts`)
  switch (runtime) {
    case "node":
    case "bun":
      return { command: bin(runtime), args: [file, ...args] }
    case "deno":
      return {
        command: bin("deno"),
        args: [
          "run",
          "--no-remote",
          "--cached-only",
          "--no-lock",
          "--no-prompt",
          "--allow-net=127.0.0.1",
          "--allow-env",
          `--allow-read=${root}`,
          "--allow-sys",
          file,
          ...args
        ]
      }
  }
}

/** A test step that did not happen in time, or a process that misbehaved. */
export class E2eError extends Data.TaggedError("E2eError")<{ readonly message: string }> {}

/** How a process ended. */
export interface ProcessExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** A running child process with its output split into lines (stdout and stderr together). */
export interface CliProcess {
  readonly name: string
  readonly pid: number
  /** Every line printed so far. */
  readonly lines: () => ReadonlyArray<string>
  /** The output so far as one string, for failure messages. */
  readonly output: () => string
  /** The first line (already printed or to come) matching `pattern`; fails after `timeout` or on exit. */
  readonly waitForLine: (pattern: RegExp, timeout?: Duration.Input) => Effect.Effect<RegExpExecArray, E2eError>
  /** Waits for the process to end; fails after `timeout`. */
  readonly waitForExit: (timeout?: Duration.Input) => Effect.Effect<ProcessExit, E2eError>
  /** The exit, if it has ended. */
  readonly exited: () => ProcessExit | undefined
  /** Sends a signal to the process (not to its group). */
  readonly signal: (signal: NodeJS.Signals) => Effect.Effect<void>
}

const killGroup = (child: ChildProcess, signal: NodeJS.Signals) => {
  if (child.pid === undefined) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    try {
      child.kill(signal)
    } catch {
      // already gone
    }
  }
}

/** Environment for children: the test's own, minus any PLAIT_* setting, plus `env`. */
const childEnv = (env: Readonly<Record<string, string>> = {}): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("PLAIT_")) out[key] = value
  }
  return { ...out, DENO_NO_UPDATE_CHECK: "1", DENO_NO_PROMPT: "1", NO_COLOR: "1", FORCE_COLOR: "0", ...env }
}

/**
 * Spawns any command in its own process group; killed with SIGKILL (the whole group, so launchers
 * like `npm run` take their children along) when the scope closes, and awaited (bounded).
 */
export const spawnProcess = (
  name: string,
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: Readonly<Record<string, string>>; readonly cwd?: string } = {}
): Effect.Effect<CliProcess, E2eError, Scope.Scope> =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    const watchers = new Set<() => void>()
    const exitDeferred = yield* Deferred.make<ProcessExit>()
    let exit: ProcessExit | undefined
    const notify = () => {
      for (const watcher of watchers) watcher()
    }

    const child = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          spawn(command, [...args], {
            cwd: options.cwd ?? root,
            env: childEnv(options.env),
            detached: true,
            stdio: ["ignore", "pipe", "pipe"]
          }),
        catch: (cause) => new E2eError({ message: `cannot spawn ${name}: ${String(cause)}` })
      }),
      (child) =>
        Effect.gen(function* () {
          if (exit === undefined) killGroup(child, "SIGKILL")
          yield* Deferred.await(exitDeferred).pipe(Effect.timeoutOption("5 seconds"))
        })
    )

    const collect = (stream: NodeJS.ReadableStream) => {
      let partial = ""
      stream.setEncoding("utf8")
      stream.on("data", (text: string) => {
        const parts = (partial + text).split("\n")
        partial = parts.pop() ?? ""
        if (parts.length > 0) {
          lines.push(...parts)
          notify()
        }
      })
      stream.on("end", () => {
        if (partial !== "") {
          lines.push(partial)
          partial = ""
          notify()
        }
      })
    }
    collect(child.stdout!)
    collect(child.stderr!)
    child.on("error", (error) => {
      lines.push(`[spawn error] ${error.message}`)
      exit ??= { code: null, signal: null }
      Deferred.doneUnsafe(exitDeferred, Exit.succeed(exit))
      notify()
    })
    // 'close' (not 'exit') so that all output has been read when the exit is seen.
    child.on("close", (code, signal) => {
      exit ??= { code, signal }
      Deferred.doneUnsafe(exitDeferred, Exit.succeed(exit))
      notify()
    })

    const output = () => lines.map((line) => `  [${name}] ${line}`).join("\n")
    const failure = (what: string) => new E2eError({ message: `${name}: ${what}\n${output()}` })

    const waitForLine = (pattern: RegExp, timeout: Duration.Input = "15 seconds") =>
      Effect.callback<RegExpExecArray, E2eError>((resume) => {
        let checked = 0
        const check = () => {
          for (; checked < lines.length; checked++) {
            const match = pattern.exec(lines[checked]!)
            if (match !== null) {
              watchers.delete(check)
              return resume(Effect.succeed(match))
            }
          }
          if (exit !== undefined) {
            watchers.delete(check)
            resume(Effect.fail(failure(`exited (${exit.code ?? exit.signal}) before printing ${pattern}`)))
          }
        }
        watchers.add(check)
        check()
        return Effect.sync(() => watchers.delete(check))
      }).pipe(
        Effect.timeoutOrElse({
          duration: timeout,
          orElse: () =>
            Effect.fail(
              failure(`no line matching ${pattern} within ${Duration.format(Duration.fromInputUnsafe(timeout))}`)
            )
        })
      )

    const waitForExit = (timeout: Duration.Input = "15 seconds") =>
      Deferred.await(exitDeferred).pipe(
        Effect.timeoutOrElse({
          duration: timeout,
          orElse: () =>
            Effect.fail(failure(`still running after ${Duration.format(Duration.fromInputUnsafe(timeout))}`))
        })
      )

    const handle: CliProcess = {
      name,
      pid: child.pid ?? -1,
      lines: () => lines,
      output,
      waitForLine,
      waitForExit,
      exited: () => exit,
      signal: (signal) =>
        Effect.sync(() => {
          if (exit === undefined) child.kill(signal)
        })
    }
    return handle
  })

/** Spawns `plait <entry>` under `runtime` with `args` (and extra environment variables). */
export const spawnCli = (
  runtime: RuntimeName,
  entry: Entry,
  args: ReadonlyArray<string>,
  options: { readonly env?: Readonly<Record<string, string>>; readonly name?: string } = {}
): Effect.Effect<CliProcess, E2eError, Scope.Scope> => {
  const line = commandLine(runtime, entry, args)
  return spawnProcess(options.name ?? `${entry}@${runtime}`, line.command, line.args, options)
}

const LISTENING = /listening on (127\.0\.0\.1):(\d+)/

/** Waits for the startup line `… listening on 127.0.0.1:PORT …` and returns the port. */
export const listeningPort = (cli: CliProcess, timeout: Duration.Input = "15 seconds") =>
  Effect.map(cli.waitForLine(LISTENING, timeout), (match) => Number(match[2]))

/** Starts a server (echo unless `--target` is in `args`) listening on a free port; returns it and the port. */
export const startServer = (
  runtime: RuntimeName,
  args: ReadonlyArray<string> = [],
  options: { readonly port?: number; readonly name?: string } = {}
) =>
  Effect.gen(function* () {
    const server = yield* spawnCli(runtime, "server", ["--listen", `127.0.0.1:${options.port ?? 0}`, ...args], {
      ...(options.name === undefined ? {} : { name: options.name })
    })
    const port = yield* listeningPort(server)
    return { process: server, port }
  })

/** Starts a proxy to `upstreamPort`, listening on a free port, and waits until its link is up. */
export const startProxy = (
  runtime: RuntimeName,
  upstreamPort: number,
  args: ReadonlyArray<string> = [],
  options: { readonly env?: Readonly<Record<string, string>>; readonly viaEnv?: boolean } = {}
) =>
  Effect.gen(function* () {
    const upstream = `127.0.0.1:${upstreamPort}`
    const proxy = yield* spawnCli(
      runtime,
      "proxy",
      ["--listen", "127.0.0.1:0", ...(options.viaEnv === true ? [] : ["--upstream", upstream]), ...args],
      { env: { ...(options.viaEnv === true ? { PLAIT_UPSTREAM: upstream } : {}), ...options.env } }
    )
    const port = yield* listeningPort(proxy)
    yield* proxy.waitForLine(/link: up to/)
    return { process: proxy, port }
  })

// ---------------------------------------------------------------------------------------------
// Ports, payloads, backends and clients (plain node:net)

/** A free loopback port: bound to port 0, then released. */
export const freePort: Effect.Effect<number, E2eError> = Effect.callback((resume) => {
  const server = net.createServer()
  server.once("error", (error) => resume(Effect.fail(new E2eError({ message: `no free port: ${error.message}` }))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(address.port)))
  })
})

/** `n` bytes distinct per `seed` (a cheap LCG), so mixed-up streams are caught. */
export const payload = (n: number, seed: number): Uint8Array => {
  const out = new Uint8Array(n)
  let state = (seed * 2_654_435_761 + 1) >>> 0
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0
    out[i] = state >>> 24
  }
  return out
}

/** Whether two byte arrays are equal. */
export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b))

/** A listening loopback TCP server run by the test process (the hardening harness's backend). */
export type Backend = Harness.Backend

/**
 * A `node:net` server on a free loopback port running `onConnection` for each socket; closed (and
 * its sockets destroyed) with the scope.
 */
export const startBackend = (
  onConnection: (socket: net.Socket) => void
): Effect.Effect<Backend, E2eError, Scope.Scope> =>
  Effect.mapError(Harness.startBackend(onConnection), (error) => new E2eError({ message: error.message }))

/** An echo backend: every byte back, FIN after the client's FIN. */
export const startEchoBackend = startBackend((socket) => socket.pipe(socket))

/** How a client connection ended. */
export interface ClientResult {
  /** Everything received. */
  readonly data: Uint8Array
  /** `eof` after a clean FIN from the peer; `error` after a reset or other socket error. */
  readonly end: "eof" | "error"
  readonly error?: string
}

/** A connected client socket with helpers; destroyed when its scope closes. */
export interface Client {
  readonly socket: net.Socket
  /** Bytes received so far (while not paused). */
  readonly received: () => number
  /** Waits until at least `n` bytes were received; fails if the connection ends first or after `timeout`. */
  readonly waitForBytes: (n: number, timeout?: Duration.Input) => Effect.Effect<void, E2eError>
  /** Writes bytes; completes when the socket accepted them (does not wait for the peer). */
  readonly write: (bytes: Uint8Array) => Effect.Effect<void>
  /** Half-closes (FIN). */
  readonly end: Effect.Effect<void>
  /** Waits for the connection to end (EOF or error); fails after `timeout`. */
  readonly result: (timeout?: Duration.Input) => Effect.Effect<ClientResult, E2eError>
}

/** Connects a `node:net` client to `127.0.0.1:port`. */
export const connect = (
  port: number,
  options: { readonly paused?: boolean } = {}
): Effect.Effect<Client, E2eError, Scope.Scope> =>
  Effect.gen(function* () {
    const chunks: Array<Buffer> = []
    let received = 0
    let ended: ClientResult | undefined
    const watchers = new Set<() => void>()
    const notify = () => {
      for (const watcher of watchers) watcher()
    }
    const socket = yield* Harness.connectRaw(port, (message) => new E2eError({ message }))
    if (options.paused === true) socket.pause()
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk)
      received += chunk.length
      notify()
    })
    const finish = (end: "eof" | "error", error?: string) => {
      if (ended !== undefined) return
      ended = { data: new Uint8Array(Buffer.concat(chunks)), end, ...(error === undefined ? {} : { error }) }
      notify()
    }
    socket.on("end", () => {
      finish("eof")
      socket.end()
    })
    socket.on("error", (error: NodeJS.ErrnoException) => finish("error", error.code ?? error.message))
    socket.on("close", () => finish("error", "closed"))

    const waitFor = <A>(
      ready: () => A | undefined,
      what: string,
      timeout: Duration.Input
    ): Effect.Effect<A, E2eError> =>
      Effect.callback<A, E2eError>((resume) => {
        const check = () => {
          const value = ready()
          if (value !== undefined) {
            watchers.delete(check)
            resume(Effect.succeed(value))
          }
        }
        watchers.add(check)
        check()
        return Effect.sync(() => watchers.delete(check))
      }).pipe(
        Effect.timeoutOrElse({
          duration: timeout,
          orElse: () =>
            Effect.fail(
              new E2eError({
                message: `client of port ${port}: ${what} not within ${Duration.format(Duration.fromInputUnsafe(timeout))} (received ${received} bytes, ended: ${ended?.end ?? "no"})`
              })
            )
        })
      )

    const client: Client = {
      socket,
      received: () => received,
      waitForBytes: (n, timeout = "10 seconds") =>
        waitFor(() => (received >= n ? true : ended !== undefined ? false : undefined), `${n} bytes`, timeout).pipe(
          Effect.flatMap((ok) =>
            ok
              ? Effect.void
              : Effect.fail(
                  new E2eError({ message: `client of port ${port}: ended (${ended?.end}) after ${received} bytes` })
                )
          )
        ),
      write: (bytes) =>
        Effect.callback<void>((resume) => {
          socket.write(bytes, () => resume(Effect.void))
        }),
      end: Effect.sync(() => {
        socket.end()
      }),
      result: (timeout = "10 seconds") => waitFor(() => ended, "the end of the connection", timeout)
    }
    return client
  })

/** Sends `bytes` through `port`, half-closes, and returns what came back and how it ended. */
export const roundTrip = (
  port: number,
  bytes: Uint8Array,
  timeout: Duration.Input = "20 seconds"
): Effect.Effect<ClientResult, E2eError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const client = yield* connect(port)
      client.socket.write(bytes)
      client.socket.end()
      return yield* client.result(timeout)
    })
  )

/** Whether a connection to `127.0.0.1:port` is refused (nobody listening) within `timeout`. */
export const isRefused = (port: number, timeout: Duration.Input = "5 seconds"): Effect.Effect<boolean, E2eError> =>
  Effect.scoped(connect(port)).pipe(
    Effect.as(false),
    Effect.catch((error) => (error.message.includes("ECONNREFUSED") ? Effect.succeed(true) : Effect.fail(error))),
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () => Effect.fail(new E2eError({ message: `connect to ${port} neither succeeded nor was refused` }))
    })
  )

/** Writes a test PKI's PEM files (CA, server and client pairs) into a fresh directory under the repo (Deno may only read there); removed with the scope. */
export const pemFiles = Effect.acquireRelease(
  Effect.sync(() => {
    const base = path.join(root, ".scratch")
    fs.mkdirSync(base, { recursive: true })
    const dir = fs.mkdtempSync(path.join(base, "pki-"))
    const pki = makePki()
    const write = (name: string, text: string) => {
      const file = path.join(dir, name)
      fs.writeFileSync(file, text, { mode: 0o600 })
      return file
    }
    return {
      dir,
      ca: write("ca.pem", pki.ca.cert),
      serverCert: write("server.pem", pki.server.cert),
      serverKey: write("server-key.pem", pki.server.key),
      clientCert: write("client.pem", pki.client.cert),
      clientKey: write("client-key.pem", pki.client.key)
    }
  }),
  (files) => Effect.sync(() => fs.rmSync(files.dir, { recursive: true, force: true }))
)
