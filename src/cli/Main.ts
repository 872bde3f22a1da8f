/**
 * The shared runner of the `plait` commands: command line, config, logging, signals and exit codes,
 * the same on Node, Bun and Deno (everything goes through `node:process`).
 *
 * Behaviour:
 * - Arguments are `process.argv.slice(2)` (`proxy …` or `server …`), the environment `process.env`.
 *   `--help` and `--version` print to stdout and exit 0; refused options (flags, environment, the
 *   `--config` file) print one line to stderr and exit 2 before anything starts.
 * - Logs are single lines on **stderr**: `<ISO time> <LEVEL> <message> key=value…`, the keys being the
 *   log annotations (`client=` on the proxy, `peer=` and `stream=` on the server). A cause is summed
 *   up on the same line. Nothing is written to stdout except the help and the version.
 * - The first line says which runtime runs the command (`proxy: starting on bun 1.4.5 (pid 42)`);
 *   then the service announces its address (`… listening on HOST:PORT, …`), which scripts wait for.
 * - The command runs in a scope under `NodeRuntime.runMain`. The first SIGINT or SIGTERM is logged and
 *   interrupts it: the scope closes, which is the service's graceful shutdown (the proxy stops
 *   accepting, lets clients finish up to `--drain-timeout`, then closes the link with GO_AWAY; the
 *   server stops accepting, sends GO_AWAY, drains up to `--drain-timeout`), then `… stopped` is logged
 *   and the process exits 0. A second signal exits at once with 128 + the signal's number (130 for
 *   SIGINT, 143 for SIGTERM), cutting open streams. Should the graceful shutdown overrun the drain
 *   deadline by {@link SHUTDOWN_GRACE_MILLIS}, the process exits 1.
 * - SIGHUP re-reads the `--config` file and configures the same command line again (flags and
 *   environment still win). A file that is now refused is logged as one line naming the key and the
 *   file, and the running config is kept. A valid one is handed to the `reload` that the command's
 *   `start` returned, if any; the log line names the settings that changed (never their values) and,
 *   without a `reload`, says they apply at the next start. Reloads run one at a time, in the
 *   command's own fiber, so they never overlap each other or the start.
 * - A service that cannot start (address in use, …) or fails is logged (`ERROR proxy: …`) and exits 1.
 * - `plait status` is one request, not a service: it prints the admin endpoint's status screen on
 *   stdout and exits 0, or one line on stderr and exits 1 (see `Status.ts`).
 *
 * @since 0.1.0
 */

import process from "node:process"
import { NodeRuntime } from "@effect/platform-node"
import {
  Cause,
  Effect,
  Exit,
  Formatter,
  Layer,
  Logger,
  LogLevel,
  Queue,
  References,
  type Runtime,
  type Scope
} from "effect"
import * as Events from "../observability/Events.ts"
import * as Metrics from "../observability/Metrics.ts"
import { type Configured, configPath, configure, type Invocation, readCommandLine } from "./Cli.ts"
import {
  type AnySetting,
  type CommonConfig,
  configKey,
  type Env,
  OptionsError,
  type ProxyConfig,
  proxySettings,
  type ServerConfig,
  type Settings,
  serverSettings,
  USAGE_EXIT_CODE
} from "./Options.ts"

/**
 * What a started command may hand back: how to apply a re-read config file (SIGHUP).
 *
 * @since 0.1.0
 * @category models
 */
export interface Running<C> {
  /** Applies a new validated config; settings it cannot change take effect at the next start. */
  readonly reload?: ((config: C) => Effect.Effect<void, unknown>) | undefined
}

/**
 * A command the runner can start.
 *
 * @since 0.1.0
 * @category models
 */
export interface Command<C extends CommonConfig> {
  /** `proxy` or `server`: prefixes messages. */
  readonly name: string
  /**
   * Starts the service in the scope; it serves until the scope closes and shuts down gracefully then.
   * It may return a {@link Running} with a `reload`.
   */
  readonly start: (config: C) => Effect.Effect<Running<C> | void, unknown, Scope.Scope>
}

/**
 * The commands of the `plait` binary.
 *
 * @since 0.1.0
 * @category models
 */
export interface Commands {
  readonly proxy: Command<ProxyConfig>
  readonly server: Command<ServerConfig>
}

/**
 * How long past the drain deadline a graceful shutdown may take before the process gives up.
 *
 * @since 0.1.0
 * @category constants
 */
export const SHUTDOWN_GRACE_MILLIS = 10_000

const SIGNAL_NUMBERS = { SIGINT: 2, SIGTERM: 15 } as const
type Signal = keyof typeof SIGNAL_NUMBERS

/**
 * The runtime executing the command, with its version.
 *
 * @since 0.1.0
 * @category diagnostics
 */
export const runtime = (): string => {
  const global = globalThis as { Deno?: { version: { deno: string } }; Bun?: { version: string } }
  if (global.Deno !== undefined) return `deno ${global.Deno.version.deno}`
  if (global.Bun !== undefined) return `bun ${global.Bun.version}`
  return `node ${process.versions.node}`
}

const stringify = (value: unknown): string => (typeof value === "string" ? value : Formatter.format(value))

/** An annotation value, quoted when it would not read as one token. */
const formatValue = (value: unknown): string => {
  const text = stringify(value)
  return /[\s"=]/.test(text) ? JSON.stringify(text) : text
}

const describeCause = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const text = error instanceof Error ? error.message : stringify(error)
  return text.split("\n")[0]!
}

/**
 * Formats one log line (without the newline).
 *
 * @since 0.1.0
 * @category logging
 */
export const formatLine = (
  date: Date,
  level: LogLevel.LogLevel,
  message: unknown,
  annotations: Readonly<Record<string, unknown>> = {},
  cause?: Cause.Cause<unknown>
): string => {
  const parts = Array.isArray(message) ? message : [message]
  let line = `${date.toISOString()} ${level.toUpperCase().padEnd(5)} ${parts.map(stringify).join(" ")}`
  if (cause !== undefined && cause.reasons.length > 0 && !Cause.hasInterruptsOnly(cause)) {
    line += ` (cause: ${describeCause(cause)})`
  }
  for (const [key, value] of Object.entries(annotations)) line += ` ${key}=${formatValue(value)}`
  return line
}

const writeLine = (line: string): void => {
  process.stderr.write(`${line}\n`)
}

/**
 * The plait logger: one line per entry on stderr.
 *
 * @since 0.1.0
 * @category logging
 */
export const logger: Logger.Logger<unknown, void> = Logger.make((options) =>
  writeLine(
    formatLine(
      options.date,
      options.logLevel,
      options.message,
      options.fiber.getRef(References.CurrentLogAnnotations),
      options.cause
    )
  )
)

/** Exit 0 after a clean or signalled (interrupted) end, 2 for options refused at start, 1 after a failure. */
const teardown: Runtime.Teardown = (exit, onExit) =>
  onExit(
    Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)
      ? 0
      : Cause.findErrorOption(exit.cause).pipe((error) => error._tag === "Some" && error.value instanceof OptionsError)
        ? USAGE_EXIT_CODE
        : 1
  )

/**
 * Turns a configuration error found at start (a TLS file, the token) into the command's usage error.
 *
 * @since 0.1.0
 * @category errors
 */
export const configError =
  (command: string) =>
  (error: { readonly flag: string; readonly message: string }): OptionsError =>
    new OptionsError({ command, setting: error.flag, detail: error.message })

/**
 * Whether a listen or dial host stays on this machine.
 *
 * @since 0.1.0
 * @category diagnostics
 */
export const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)

/**
 * The config fields whose values differ between two configs, as config-file keys (never values).
 *
 * @since 0.1.0
 * @category reload
 */
export const changedKeys = <C>(settings: Settings<C>, before: C, after: C): ReadonlyArray<string> =>
  (Object.keys(settings) as Array<keyof C & string>)
    .filter((field) => JSON.stringify(before[field]) !== JSON.stringify(after[field]))
    .map((field) => configKey(settings[field] as AnySetting))

const refuse = (error: OptionsError): void => {
  process.stderr.write(`${error.message}\n`)
  process.exitCode = USAGE_EXIT_CODE
}

/**
 * Reads the process's command line (`argv`: `proxy …` or `server …`) and environment, and runs the
 * command until a signal stops it. Call once. `commands` may be a loader (`() => import(…)`), called
 * only when a command is to run.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (
  commands: Commands | (() => Promise<Commands>),
  argv: ReadonlyArray<string> = process.argv.slice(2),
  env: Env = process.env
): void => {
  const outcome = readCommandLine(argv)
  if (outcome instanceof OptionsError) {
    refuse(outcome)
    return
  }
  if (outcome._tag === "Print") {
    ;(outcome.stream === "stdout" ? process.stdout : process.stderr).write(outcome.text)
    process.exitCode = outcome.exitCode
    return
  }
  const configured = configure(outcome.invocation, env)
  if (configured instanceof OptionsError) {
    refuse(configured)
    return
  }
  if (configured.command === "status") {
    // A one-shot command: the screen on stdout (exit 0), or one line on stderr (exit 1). Loaded
    // only here: the HTTP client is not needed by the other commands.
    void import("./Status.ts")
      .then(({ status }) => Effect.runPromise(Effect.result(status(configured.config))))
      .then((result) => {
        if (result._tag === "Success") process.stdout.write(result.success)
        else process.stderr.write(`${result.failure.message}\n`)
        process.exitCode = result._tag === "Success" ? 0 : 1
      })
    return
  }
  const start = (loaded: Commands) => {
    if (configured.command === "proxy") {
      runCommand(loaded.proxy, proxySettings, configured.config, outcome.invocation, env)
    } else {
      runCommand(loaded.server, serverSettings, configured.config, outcome.invocation, env)
    }
  }
  if (typeof commands !== "function") {
    start(commands)
    return
  }
  // The services are loaded only once a command is to run: help, version and refusals stay quick.
  commands().then(start, (error: unknown) => {
    writeLine(formatLine(new Date(), "Error", `${configured.command}: cannot load: ${stringify(error)}`))
    process.exitCode = 1
  })
}

const runCommand = <C extends CommonConfig>(
  command: Command<C>,
  settings: Settings<C>,
  config: C,
  invocation: Invocation,
  env: Env
): void => {
  const info = (message: string) => {
    if (LogLevel.isGreaterThanOrEqualTo("Info", config.logLevel)) writeLine(formatLine(new Date(), "Info", message))
  }
  // SIGHUPs waiting for the command's fiber; one pending is enough (each reload reads the file anew).
  let hangups: Queue.Queue<void> | undefined

  /** One SIGHUP: re-read, re-validate, hand over or keep the running config. */
  const reload = (running: Running<C>, current: { config: C }) =>
    Effect.gen(function* () {
      const file = configPath(invocation, env)
      if (file === undefined) {
        return yield* Effect.logInfo(`${command.name}: SIGHUP received; there is no --config file to re-read`)
      }
      const next = configure(invocation, env) as Configured | OptionsError
      if (next instanceof OptionsError) {
        return yield* Effect.logError(`${command.name}: SIGHUP: ${next.detail}; keeping the running config`)
      }
      const nextConfig = next.config as unknown as C
      const changed = changedKeys(settings, current.config, nextConfig)
      const what = changed.length === 0 ? "nothing changed" : `changed: ${changed.join(", ")}`
      if (running.reload === undefined) {
        current.config = nextConfig
        return yield* Effect.logInfo(
          changed.length === 0
            ? `${command.name}: SIGHUP: re-read ${file}; ${what}`
            : `${command.name}: SIGHUP: re-read ${file}; ${what} (they take effect at the next start)`
        )
      }
      const applied = yield* Effect.exit(running.reload(nextConfig))
      if (Exit.isFailure(applied)) {
        return yield* Effect.logError(
          `${command.name}: SIGHUP: applying ${file} failed: ${describeCause(applied.cause)}; keeping the running config`
        )
      }
      current.config = nextConfig
      yield* Effect.logInfo(`${command.name}: SIGHUP: reloaded ${file}; ${what}`)
    })

  const main = Effect.gen(function* () {
    const queue = yield* Queue.dropping<void>(1)
    hangups = queue
    yield* Effect.logInfo(`${command.name}: starting on ${runtime()} (pid ${process.pid})`)
    const running: Running<C> = (yield* command.start(config)) ?? {}
    const current = { config }
    return yield* Effect.forever(Effect.flatMap(Queue.take(queue), () => reload(running, current)))
  }).pipe(
    Effect.scoped,
    Effect.onExit((exit) =>
      Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)
        ? Effect.logInfo(`${command.name}: stopped`)
        : Effect.logError(
            Cause.findErrorOption(exit.cause).pipe((error) =>
              error._tag === "Some" && error.value instanceof OptionsError
                ? error.value.message
                : `${command.name}: ${describeCause(exit.cause)}`
            )
          )
    ),
    Effect.provide(Logger.layer([logger])),
    Effect.provideService(References.MinimumLogLevel, config.logLevel)
  )
  let signals = 0
  const onSignal = (signal: Signal) => {
    signals++
    if (signals === 1) {
      info(
        `${command.name}: ${signal} received: shutting down; open streams may finish for up to ${config.drainMillis} ms (send another signal to exit at once)`
      )
      setTimeout(() => {
        writeLine(formatLine(new Date(), "Error", `${command.name}: graceful shutdown overran its deadline; exiting`))
        process.exit(1)
      }, config.drainMillis + SHUTDOWN_GRACE_MILLIS).unref()
      return
    }
    info(`${command.name}: second signal (${signal}): exiting at once`)
    process.exit(128 + SIGNAL_NUMBERS[signal])
  }
  process.on("SIGINT", () => onSignal("SIGINT"))
  process.on("SIGTERM", () => onSignal("SIGTERM"))
  // Handled in the command's fiber, one at a time; a listener also keeps SIGHUP from killing us.
  process.on("SIGHUP", () => {
    if (signals === 0 && hangups !== undefined) Queue.offerUnsafe(hangups, undefined)
  })
  // runMain interrupts the fiber on the first SIGINT/SIGTERM; its listeners run after the ones above.
  NodeRuntime.runMain(main, { disableErrorReporting: true, teardown })
}

/**
 * Runs `start` with the lifecycle event bus and the metrics subscriber (which also warns when a
 * limit is reached) built into the command's own scope, so they live as long as the service.
 *
 * @since 0.1.0
 * @category running
 */
export const withObservability = <A, E>(
  start: Effect.Effect<A, E, Scope.Scope | Events.Events>
): Effect.Effect<A, E, Scope.Scope> =>
  Effect.flatMap(Layer.build(Layer.provideMerge(Metrics.layer, Events.Events.layer)), (context) =>
    Effect.provideContext(start, context)
  )
