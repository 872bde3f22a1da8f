/**
 * The `plait` command line on `effect/cli`: the root command `plait` with the subcommands `proxy` and
 * `server`, their flags built from the setting tables of `Options.ts`, `--help` generated from them,
 * `--version` printing the package's version.
 *
 * Invariants:
 * - Reading the command line is pure and synchronous: `effect/cli` parses the arguments (it needs
 *   none of the platform services it declares, so stubs that die stand in for them), and what it
 *   would print is captured as text. Nothing here reads the process's arguments or environment.
 * - Every flag is a repeatable string flag: `effect/cli` splits the command line into flags and their
 *   text values, and `Options.resolve` does the rest (environment, config file, defaults, value
 *   syntax, messages), so a flag, its variable and its file key are refused with the same words.
 * - A refused command line is one {@link OptionsError} line, the first problem `effect/cli` found,
 *   in the words plait has always used (`unknown flag --bogus (see --help)`).
 * - Two things are adjusted before `effect/cli` sees the arguments, to keep the documented syntax:
 *   a lone `--` is dropped (some launchers leave it), and a flag that takes a value takes the next
 *   argument unless it starts with `--` (so `--keepalive-interval -5s` is refused as negative rather
 *   than read as the short flags `-5 -s`).
 *
 * Only `--help`/`-h` and `--version` are global: effect/cli's other built-ins (`--log-level`,
 * `--completions`, `--wizard`, and `-v`) are left out, `--log-level` being plait's own setting.
 *
 * A new flag needs nothing here (see `Options.ts`). A new subcommand is a {@link CommandInfo} (name,
 * summary, settings table) added to `infos` and to the root's subcommands, a case in `configure`, and
 * its dispatch in `Main.run` (as `plait status` has).
 *
 * @since 0.1.0
 */
import { readFileSync } from "node:fs"
import { Effect, Exit, FileSystem, Layer, Path, type Result, Stdio, Terminal } from "effect"
import { CliConfig, type CliError, CliOutput, Command, Flag, GlobalFlag } from "effect/cli"
import { ChildProcessSpawner } from "effect/process"
import { loadConfigFile, readConfigText } from "./ConfigFile.ts"
import {
  type AnySetting,
  type CommonConfig,
  type Env,
  envName,
  type FileValues,
  type Given,
  isList,
  OptionsError,
  PROXY_SUMMARY,
  type ProxyConfig,
  proxySettings,
  resolve,
  SERVER_SUMMARY,
  type ServerConfig,
  type Settings,
  STATUS_SUMMARY,
  type StatusConfig,
  serverSettings,
  statusSettings
} from "./Options.ts"

/**
 * A subcommand of `plait`: its name, one-line summary and settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommandInfo<C> {
  readonly name: string
  readonly summary: string
  readonly settings: Settings<C>
}

/**
 * `plait proxy`.
 *
 * @since 0.1.0
 * @category commands
 */
export const proxyInfo: CommandInfo<ProxyConfig> = { name: "proxy", summary: PROXY_SUMMARY, settings: proxySettings }

/**
 * `plait server`.
 *
 * @since 0.1.0
 * @category commands
 */
export const serverInfo: CommandInfo<ServerConfig> = {
  name: "server",
  summary: SERVER_SUMMARY,
  settings: serverSettings
}

/**
 * `plait status`.
 *
 * @since 0.1.0
 * @category commands
 */
export const statusInfo: CommandInfo<StatusConfig> = {
  name: "status",
  summary: STATUS_SUMMARY,
  settings: statusSettings
}

const infos: ReadonlyArray<CommandInfo<ProxyConfig> | CommandInfo<ServerConfig> | CommandInfo<StatusConfig>> = [
  proxyInfo,
  serverInfo,
  statusInfo
]

/**
 * A command line that asks to run a subcommand: which, and the text of every flag it was given.
 *
 * @since 0.1.0
 * @category models
 */
export interface Invocation {
  readonly command: "proxy" | "server" | "status"
  readonly given: Given
}

/**
 * What a command line asks for: run a subcommand, or print something (help, version) and exit.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome =
  | { readonly _tag: "Invoke"; readonly invocation: Invocation }
  | {
      readonly _tag: "Print"
      readonly text: string
      readonly stream: "stdout" | "stderr"
      readonly exitCode: 0 | 2
    }

// ---------------------------------------------------------------------------------------------
// effect/cli commands from the tables

const describe = (setting: AnySetting): string => {
  const fallback = isList(setting) ? setting.defaultDoc : (setting.default ?? setting.defaultDoc ?? "none")
  return `${setting.doc} (env ${envName(setting.flag)}, default ${fallback})`
}

const flagOf = (setting: AnySetting): Flag.Flag<ReadonlyArray<string>> => {
  let flag = Flag.String(setting.flag.slice(2)).pipe(Flag.withDescription(describe(setting)))
  if (!isList(setting) && setting.switch === true) {
    flag = flag.pipe(Flag.withOptionalValue("true"), Flag.withMetavar("true|false"))
  } else if (setting.metavar !== "") {
    flag = flag.pipe(Flag.withMetavar(setting.metavar))
  }
  return flag.pipe(Flag.atLeast(0))
}

/** Whether a flag of `info` takes its value from the next argument (not a switch). */
const takesValue = (info: CommandInfo<unknown> | undefined, name: string): boolean =>
  info !== undefined &&
  (Object.values(info.settings) as Array<AnySetting>).some(
    (setting) => setting.flag === name && (isList(setting) || setting.switch !== true)
  )

/**
 * The documented syntax `effect/cli`'s lexer reads otherwise (see the module header), by the flags
 * of the subcommand named first.
 */
const normalize = (argv: ReadonlyArray<string>): ReadonlyArray<string> => {
  const out: Array<string> = []
  let info: CommandInfo<unknown> | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--") continue
    if (info === undefined && !arg.startsWith("-")) {
      info = infos.find((candidate) => candidate.name === arg) as CommandInfo<unknown> | undefined
    }
    const next = argv[i + 1]
    if (!arg.includes("=") && takesValue(info, arg) && next !== undefined && next !== "--" && !next.startsWith("--")) {
      out.push(`${arg}=${next}`)
      i++
      continue
    }
    out.push(arg)
  }
  return out
}

const DETAILS = [
  "Every flag has an environment variable (--max-window: PLAIT_MAX_WINDOW) and a config-file key",
  "(max-window); a flag wins over its variable, which wins over --config FILE, which wins over the default.",
  "Values: HOST:PORT (IPv6 as [::1]:7000); durations 500ms, 5s, 2m, 1h; sizes 262144, 256KiB, 8MiB.",
  "Logs: one line per event on stderr: <time> <LEVEL> <message> [client=…] [peer=…] [stream=…].",
  "Signals: SIGINT or SIGTERM stops accepting new connections, lets open streams finish for up to",
  "--drain-timeout (the link is closed with GO_AWAY), then exits 0. A second signal exits at once",
  "with code 130 (SIGINT) or 143 (SIGTERM). SIGHUP re-reads --config (a bad file is logged and ignored)."
]

const STATUS_DETAILS = [
  "Asks GET /status of the admin endpoint that a proxy or server serves with --admin (and its",
  "--admin-token, if set) and prints links, services, limits and readiness. Every flag has an",
  "environment variable (--admin: PLAIT_ADMIN).",
  "Exit codes: 0 when printed, 1 when the endpoint cannot be reached or gives no status, 2 for bad options."
]

const exitCodes = (name: string) =>
  `Exit codes: 0 after a clean shutdown, 1 if the ${name} cannot start or fails, 2 for bad options.`

/** The root command, with `onInvoke` as every subcommand's handler. */
const rootCommand = (onInvoke: (invocation: Invocation) => void) => {
  const subcommand = <C>(info: CommandInfo<C>) => {
    const flags: Record<string, Flag.Flag<ReadonlyArray<string>>> = {}
    for (const [field, setting] of Object.entries(info.settings) as Array<[string, AnySetting]>) {
      flags[field] = flagOf(setting)
    }
    return Command.make(info.name, flags, (given) =>
      Effect.sync(() => onInvoke({ command: info.name as Invocation["command"], given }))
    ).pipe(
      Command.withShortDescription(info.summary),
      Command.withDescription(
        (info.name === "status"
          ? [`plait status: ${info.summary}.`, "", ...STATUS_DETAILS]
          : [`plait ${info.name}: ${info.summary}.`, "", ...DETAILS, exitCodes(info.name)]
        ).join("\n  ")
      )
    )
  }
  return Command.make("plait").pipe(
    Command.withDescription(
      [
        "plait: a TCP multiplexing proxy. Many client connections reach the proxy and travel as streams",
        "over one yamux link to the server, which forwards each to a backend. `plait COMMAND --help` lists",
        "a command's flags."
      ].join("\n  ")
    ),
    Command.withSubcommands([subcommand(proxyInfo), subcommand(serverInfo), subcommand(statusInfo)])
  )
}

/** The package's version, read when `--version` asks (from `package.json`, two levels up in src/ and dist/). */
const packageVersion = (): string => {
  try {
    const json = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      version?: unknown
    }
    return typeof json.version === "string" ? json.version : "unknown"
  } catch {
    return "unknown"
  }
}

/** `--version` without effect/cli's `-v` alias (plait refuses `-v` like any unknown flag). */
const Version = GlobalFlag.Action({
  flag: Flag.Boolean("version").pipe(Flag.withDescription("print plait's version and exit"), Flag.withDefault(false)),
  run: (_, { command }) =>
    Effect.gen(function* () {
      const presenter = yield* CliOutput.Presenter
      yield* presenter.present({ _tag: "Version", name: command.name, version: packageVersion() })
    })
})

/** effect/cli declares these platform services; parsing uses none of them. */
const unused = Effect.die("plait/cli: platform service not available while parsing the command line")
const parsingServices = Layer.mergeAll(
  FileSystem.layerNoop({}),
  Path.layer,
  Stdio.layerTest({}),
  Layer.succeed(
    Terminal.Terminal,
    Terminal.make({
      columns: Effect.succeed(100),
      rows: Effect.succeed(24),
      size: unused,
      readInput: unused,
      readLine: unused,
      display: () => Effect.void
    })
  ),
  Layer.succeed(
    ChildProcessSpawner.ChildProcessSpawner,
    ChildProcessSpawner.make(() => unused)
  ),
  CliConfig.layer({ builtIns: [GlobalFlag.Help, Version] })
)

// ---------------------------------------------------------------------------------------------
// Refusals in plait's words

const metavarOf = (command: string, name: string): string => {
  const info = infos.find((info) => info.name === command)
  const setting = info && (Object.values(info.settings) as Array<AnySetting>).find((s) => s.flag === `--${name}`)
  return setting?.metavar || "a value"
}

/** `a, b and c`. */
const listOf = (names: ReadonlyArray<string>): string =>
  names.length <= 1 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`

/** One `effect/cli` error as plait's one-line refusal. */
const refusal = (command: string, error: CliError.NonShowHelpErrors): OptionsError => {
  const make = (setting: string, detail: string) => new OptionsError({ command, setting, detail })
  switch (error._tag) {
    case "UnrecognizedOption":
      return make(error.option, `unknown flag ${error.option} (see --help)`)
    case "InvalidValue":
      return error.value === ""
        ? make(`--${error.option}`, `--${error.option} needs a value: ${metavarOf(command, error.option)}`)
        : make(`--${error.option}`, `--${error.option} ${error.expected} (got ${JSON.stringify(error.value)})`)
    case "UnexpectedArgument":
      return make("argv", `unexpected argument ${JSON.stringify(error.arguments[0] ?? "")} (see --help)`)
    case "UnknownSubcommand":
      return make(
        "argv",
        `unknown command ${JSON.stringify(error.subcommand)}: the commands are ${listOf(infos.map((info) => info.name))} (see plait --help)`
      )
    default:
      return make("argv", error.message.split("\n")[0]!)
  }
}

/**
 * Reads a command line (`argv` after the runtime and script: `["proxy", "--listen", …]`) with
 * `effect/cli`: the subcommand and its flags' text, or what to print, or the first problem.
 *
 * @since 0.1.0
 * @category parsing
 */
export const readCommandLine = (argv: ReadonlyArray<string>): Outcome | OptionsError => {
  let invocation: Invocation | undefined
  const printed: Array<{ readonly text: string; readonly error: boolean }> = []
  let problem: OptionsError | undefined
  const formatter = CliOutput.defaultFormatter({ colors: false })
  const presenter = CliOutput.layerPresenter({
    present: (event) =>
      Effect.sync(() => {
        switch (event._tag) {
          case "Help":
            printed.push({ text: formatter.formatHelpDoc(event.helpDoc), error: event.reason === "Implicit" })
            return
          case "Version":
            printed.push({ text: `${event.name} ${event.version}`, error: false })
            return
          case "InvalidInvocation": {
            const command = event.commandPath.length > 1 ? event.commandPath[event.commandPath.length - 1]! : ""
            problem = refusal(command, event.errors[0]!)
            return
          }
        }
      })
  })
  const exit = Effect.runSyncExit(
    Command.runWith(
      rootCommand((value) => (invocation = value)),
      { version: "" }
    )(normalize(argv)).pipe(Effect.provide(Layer.merge(parsingServices, presenter)))
  )
  if (problem !== undefined) return problem
  const text = printed.map((entry) => `${entry.text}\n`).join("")
  if (printed.length > 0) {
    // Help that was not asked for (`plait` alone) is a usage error.
    const implicit = printed.some((entry) => entry.error)
    return { _tag: "Print", text, stream: implicit ? "stderr" : "stdout", exitCode: implicit ? 2 : 0 }
  }
  if (invocation !== undefined && Exit.isSuccess(exit)) return { _tag: "Invoke", invocation }
  return new OptionsError({ command: "", setting: "argv", detail: "cannot read the command line (see plait --help)" })
}

// ---------------------------------------------------------------------------------------------
// From an invocation to a config

/**
 * The config file an invocation names: the last `--config`, else `PLAIT_CONFIG` (empty: unset).
 *
 * @since 0.1.0
 * @category resolution
 */
export const configPath = (invocation: Invocation, env: Env): string | undefined => {
  const given = invocation.given.config ?? []
  if (given.length > 0) return given[given.length - 1]
  const fromEnv = env[envName("--config")]
  return fromEnv === undefined || fromEnv.trim() === "" ? undefined : fromEnv
}

/**
 * A validated config, tagged by command.
 *
 * @since 0.1.0
 * @category models
 */
export type Configured =
  | { readonly command: "proxy"; readonly config: ProxyConfig }
  | { readonly command: "server"; readonly config: ServerConfig }
  | { readonly command: "status"; readonly config: StatusConfig }

/**
 * Turns an invocation into its validated config: reads the config file it names (with `read`), then
 * resolves every setting (flag > environment > file > default). Synchronous; on SIGHUP the same
 * invocation and environment are configured again with the file's new text.
 *
 * @since 0.1.0
 * @category resolution
 */
export const configure = (
  invocation: Invocation,
  env: Env,
  read: (file: string) => Result.Result<string, string> = readConfigText
): Configured | OptionsError => {
  if (invocation.command === "status") {
    // `plait status` reads no config file: it only needs the address of an admin endpoint.
    const config = resolve<StatusConfig>(statusInfo.name, statusInfo.settings, invocation.given, env)
    return config instanceof OptionsError ? config : { command: "status", config }
  }
  const info = invocation.command === "proxy" ? proxyInfo : serverInfo
  const file = configPath(invocation, env)
  if (file !== undefined && file.trim() === "") {
    return new OptionsError({ command: info.name, setting: "--config", detail: "--config must not be empty" })
  }
  let values: FileValues | undefined
  if (file !== undefined) {
    const loaded = loadConfigFile(info.name, info.settings as Settings<CommonConfig>, file, read)
    if (loaded instanceof OptionsError) return loaded
    values = loaded
  }
  const config = resolve<CommonConfig>(
    info.name,
    info.settings as Settings<CommonConfig>,
    invocation.given,
    env,
    values
  )
  if (config instanceof OptionsError) return config
  return { command: invocation.command, config } as Configured
}

/**
 * What a command line asks for once configured: run a command with its config, or print and exit.
 *
 * @since 0.1.0
 * @category models
 */
export type Parsed =
  | { readonly _tag: "Run"; readonly invocation: Invocation; readonly configured: Configured }
  | Extract<Outcome, { readonly _tag: "Print" }>

/**
 * Reads and configures a command line in one step (pure but for `read`, the config file reader).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (
  argv: ReadonlyArray<string>,
  env: Env,
  read: (file: string) => Result.Result<string, string> = readConfigText
): Parsed | OptionsError => {
  const outcome = readCommandLine(argv)
  if (outcome instanceof OptionsError || outcome._tag === "Print") return outcome
  const configured = configure(outcome.invocation, env, read)
  if (configured instanceof OptionsError) return configured
  return { _tag: "Run", invocation: outcome.invocation, configured }
}
