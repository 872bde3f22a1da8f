/**
 * The shared runner of the `plait` commands: options, logging, signals and exit codes, the same on
 * Node, Bun and Deno (everything goes through `node:process`).
 *
 * Behaviour:
 * - Arguments are `process.argv.slice(2)`, the environment `process.env`. `--help` prints to stdout
 *   and exits 0; refused options print one line to stderr and exit 2 before anything starts.
 * - Logs are single lines on **stderr**: `<ISO time> <LEVEL> <message> key=value…`, the keys being the
 *   log annotations (`client=` on the proxy, `peer=` and `stream=` on the server). A cause is summed
 *   up on the same line. Nothing is written to stdout except the help.
 * - The first line says which runtime runs the command (`proxy: starting on bun 1.4.5 (pid 42)`);
 *   then the service announces its address (`… listening on HOST:PORT, …`), which scripts wait for.
 * - The command runs in a scope under `NodeRuntime.runMain`. The first SIGINT or SIGTERM is logged and
 *   interrupts it: the scope closes, which is the service's graceful shutdown (the proxy stops
 *   accepting, lets clients finish up to `--drain-timeout`, then closes the link with GO_AWAY; the
 *   server stops accepting, sends GO_AWAY, drains up to `--drain-timeout`), then `… stopped` is logged
 *   and the process exits 0. A second signal exits at once with 128 + the signal's number (130 for
 *   SIGINT, 143 for SIGTERM), cutting open streams. Should the graceful shutdown overrun the drain
 *   deadline by {@link SHUTDOWN_GRACE_MILLIS}, the process exits 1.
 * - A service that cannot start (address in use, …) or fails is logged (`ERROR proxy: …`) and exits 1.
 *
 * @since 0.1.0
 */

import process from "node:process"
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Formatter, Layer, Logger, LogLevel, References, type Runtime, type Scope } from "effect"
import * as Events from "../observability/Events.ts"
import * as Metrics from "../observability/Metrics.ts"
import { type CommonConfig, type Env, OptionsError, type Parsed, USAGE_EXIT_CODE } from "./Options.ts"

/** A command the runner can start. */
export interface Command<C extends CommonConfig> {
  /** `proxy` or `server`: prefixes messages. */
  readonly name: string
  readonly parse: (argv: ReadonlyArray<string>, env: Env) => Parsed<C> | OptionsError
  /** Starts the service in the scope; it serves until the scope closes and shuts down gracefully then. */
  readonly start: (config: C) => Effect.Effect<unknown, unknown, Scope.Scope>
}

/** How long past the drain deadline a graceful shutdown may take before the process gives up. */
export const SHUTDOWN_GRACE_MILLIS = 10_000

const SIGNAL_NUMBERS = { SIGINT: 2, SIGTERM: 15 } as const
type Signal = keyof typeof SIGNAL_NUMBERS

/** The runtime executing the command, with its version. */
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

/** Formats one log line (without the newline). */
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

/** The plait logger: one line per entry on stderr. */
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

/** Turns a configuration error found at start (a TLS file, the token) into the command's usage error. */
export const configError =
  (command: string) =>
  (error: { readonly flag: string; readonly message: string }): OptionsError =>
    new OptionsError({ command, setting: error.flag, detail: error.message })

/** Whether a listen or dial host stays on this machine. */
export const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)

/** Parses the process's arguments and runs the command until a signal stops it. Call once. */
export const run = <C extends CommonConfig>(command: Command<C>): void => {
  const parsed = command.parse(process.argv.slice(2), process.env)
  if (parsed instanceof OptionsError) {
    process.stderr.write(`${parsed.message}\n`)
    process.exitCode = USAGE_EXIT_CODE
    return
  }
  if (parsed._tag === "Help") {
    process.stdout.write(parsed.text)
    process.exitCode = 0
    return
  }
  const config = parsed.config
  const info = (message: string) => {
    if (LogLevel.isGreaterThanOrEqualTo("Info", config.logLevel)) writeLine(formatLine(new Date(), "Info", message))
  }

  const main = Effect.gen(function* () {
    yield* Effect.logInfo(`${command.name}: starting on ${runtime()} (pid ${process.pid})`)
    yield* command.start(config)
    return yield* Effect.never
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
  // runMain interrupts the fiber on the first SIGINT/SIGTERM; its listeners run after the ones above.
  NodeRuntime.runMain(main, { disableErrorReporting: true, teardown })
}

/**
 * Runs `start` with the lifecycle event bus and the metrics subscriber (which also warns when a
 * limit is reached) built into the command's own scope, so they live as long as the service.
 */
export const withObservability = <A, E>(
  start: Effect.Effect<A, E, Scope.Scope | Events.Events>
): Effect.Effect<A, E, Scope.Scope> =>
  Effect.flatMap(Layer.build(Layer.provideMerge(Metrics.layer, Events.Events.layer)), (context) =>
    Effect.provideContext(start, context)
  )
