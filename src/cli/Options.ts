/**
 * Command-line options of `plait proxy` and `plait server`: one table of flags per command, parsed
 * and validated by a pure function of `(argv, env)`.
 *
 * Invariants:
 * - Every field of a command's config has exactly one flag entry (the table's type enforces it);
 *   adding a flag is adding one entry (and its field). The environment variable of a flag is derived
 *   from its name: `--max-window` ↔ `PLAIT_MAX_WINDOW`.
 * - Precedence: a flag on the command line wins over its environment variable, which wins over the
 *   default. An empty environment variable counts as unset. A flag given twice keeps the last value.
 * - Defaults are written as text and go through the same parser as user input, so the help shows
 *   exactly what is used.
 * - Every refusal is one {@link OptionsError} whose message is a single line naming the flag (and the
 *   environment variable when the value came from there), what it must be, and what was given —
 *   e.g. `plait proxy: --max-window must be at least 262144 bytes (got 1000)`.
 * - `--help` / `-h` anywhere wins over everything else, even over invalid values.
 *
 * Values: HOST:PORT (IPv6 in brackets, `[::1]:7000`); durations `500ms`, `5s`, `2m`, `1h` (a bare `0`
 * is allowed); sizes in bytes, `KiB`, `MiB` or `GiB` (`262144`, `256KiB`, `8MiB`); whole numbers; log
 * levels `trace`, `debug`, `info`, `warn`, `error`, `fatal`, `none`.
 *
 * A small hand parser rather than `effect/cli`: the flags are few and flat (no subcommands), and this
 * way the result is a plain value of `(argv, env)` — testable without a runtime — with exactly these
 * messages and exit code 2, identical on Node, Bun and Deno.
 *
 * @since 0.1.0
 */
import { Data, type LogLevel, Result } from "effect"
import { INITIAL_WINDOW, MAX_UINT32 } from "../protocol/Constants.ts"
import * as PlaitProxy from "../proxy/Proxy.ts"
import * as Server from "../server/Server.ts"
import {
  ConfigError,
  type SessionConfig,
  defaults as sessionDefaults,
  validateSessionConfig
} from "../session/Config.ts"
import type { TcpAddress } from "../transport/Tcp.ts"
import * as Tcp from "../transport/Tcp.ts"

// ---------------------------------------------------------------------------------------------
// Configs

/** Settings shared by both commands. */
export interface CommonConfig {
  readonly keepaliveIntervalMillis: number
  readonly keepaliveTimeoutMillis: number
  readonly maxWindow: number
  /** Grow each stream's window from 256 KiB as its reader keeps up, instead of granting it at open. */
  readonly windowAutoTune: boolean
  readonly drainMillis: number
  readonly logLevel: LogLevel.LogLevel
  readonly maxStreams: number
  readonly acceptBacklog: number
  readonly maxUnackedOpens: number
  readonly maxSessionBuffer: number
  readonly idleTimeoutMillis: number
  /** Shared secret for the link's challenge-response; `undefined`: no authentication. */
  readonly token: string | undefined
}

/** A validated `plait proxy` configuration. */
export interface ProxyConfig extends CommonConfig {
  readonly listen: TcpAddress
  readonly upstream: TcpAddress
  readonly linkWaitMillis: number
  readonly maxClients: number
  /** Dial the server with TLS (implied by any other `--tls-*` flag). */
  readonly tls: boolean
  readonly tlsCa: string | undefined
  readonly tlsCert: string | undefined
  readonly tlsKey: string | undefined
  readonly tlsServername: string | undefined
}

/** A validated `plait server` configuration. */
export interface ServerConfig extends CommonConfig {
  readonly listen: TcpAddress
  /** The backend each stream is forwarded to; `undefined` serves the embedded echo. */
  readonly target: TcpAddress | undefined
  readonly maxSessions: number
  readonly tlsCert: string | undefined
  readonly tlsKey: string | undefined
  /** With a CA, client certificates signed by it are required (mutual TLS). */
  readonly tlsCa: string | undefined
}

/** The session settings of a config, as `Proxy`/`Server` options take them. */
export const sessionOptions = (config: CommonConfig): Partial<SessionConfig> => ({
  keepaliveIntervalMillis: config.keepaliveIntervalMillis,
  keepaliveTimeoutMillis: config.keepaliveTimeoutMillis,
  maxWindow: config.maxWindow,
  windowAutoTune: config.windowAutoTune ? 1 : 0,
  drainTimeoutMillis: config.drainMillis,
  maxStreams: config.maxStreams,
  acceptBacklog: config.acceptBacklog,
  maxUnackedOpens: config.maxUnackedOpens,
  maxSessionBuffer: config.maxSessionBuffer,
  idleTimeoutMillis: config.idleTimeoutMillis
})

/** What a command line asks for. */
export type Parsed<C> = { readonly _tag: "Run"; readonly config: C } | { readonly _tag: "Help"; readonly text: string }

/** A refused command line; `message` is the one line to print. Exit with {@link USAGE_EXIT_CODE}. */
export class OptionsError extends Data.TaggedError("OptionsError")<{
  readonly command: string
  /** The flag concerned (`--max-window`), or `argv` for a malformed command line. */
  readonly setting: string
  /** What is wrong, without the `plait <command>:` prefix. */
  readonly detail: string
}> {
  override get message(): string {
    return `plait ${this.command}: ${this.detail}`
  }
}

/** Exit code for a refused command line (the getopt / shell-builtin convention for misuse). */
export const USAGE_EXIT_CODE = 2

// ---------------------------------------------------------------------------------------------
// Flag tables

/** One flag: how it reads, documents and defaults a value of type `A`. */
export interface FlagSpec<A> {
  readonly flag: `--${string}`
  /** Placeholder in the help, e.g. `HOST:PORT`. */
  readonly metavar: string
  readonly doc: string
  /** The default as text (parsed like input), or `undefined` when the value is optional. */
  readonly default: string | (undefined extends A ? undefined : never)
  /** Describes the default in the help when there is none as text. */
  readonly defaultDoc?: string
  /** A switch: given alone it means `true` (`--tls`); `--tls=false` and its variable still parse. */
  readonly switch?: true
  /** Parses a value; a failure is the rest of a sentence that starts with the flag name. */
  readonly parse: (text: string) => Result.Result<A, string>
}

/** One entry per config field. */
export type Flags<C> = { readonly [K in keyof C]: FlagSpec<C[K]> }

/** The environment variable of a flag: `--max-window` ↔ `PLAIT_MAX_WINDOW`. */
export const envName = (flag: string): string => `PLAIT_${flag.slice(2).toUpperCase().replaceAll("-", "_")}`

// ---------------------------------------------------------------------------------------------
// Value parsers

const quote = (text: string): string => JSON.stringify(text)

/** Formats an address as `host:port` (IPv6 in brackets). */
export const formatAddress = Tcp.formatAddress

/** `HOST:PORT`; `minPort` 0 lets a listener pick a free port. */
export const address =
  (minPort: 0 | 1) =>
  (text: string): Result.Result<TcpAddress, string> => {
    const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(text)
    if (match === null) {
      return Result.fail(`must be HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000 (got ${quote(text)})`)
    }
    const port = Number(match[3])
    if (port < minPort || port > 65_535) {
      return Result.fail(`port must be from ${minPort} to 65535 (got ${text})`)
    }
    return Result.succeed({ host: match[1] ?? match[2]!, port })
  }

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
const DAY = 86_400_000

/** Formats milliseconds with the largest unit that divides them: `30s`, `500ms`, `2m`. */
export const formatDuration = (millis: number): string => {
  if (millis === 0) return "0"
  for (const unit of ["h", "m", "s"] as const) {
    const size = DURATION_UNITS[unit]!
    if (millis % size === 0) return `${millis / size}${unit}`
  }
  return `${millis}ms`
}

/** A duration in milliseconds within `[min, max]`: `500ms`, `5s`, `1.5s`, `2m`, `1h`, or `0`. */
export const duration =
  (min: number, max: number = DAY) =>
  (text: string): Result.Result<number, string> => {
    const match = /^(-?)(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
    if (match === null) {
      return Result.fail(`must be a duration like 500ms, 5s or 2m (got ${quote(text)})`)
    }
    if (match[1] === "-") return Result.fail(`must not be negative (got ${text})`)
    const amount = Number(match[2])
    if (match[3] === undefined && amount !== 0) {
      return Result.fail(`needs a unit: ms, s, m or h (got ${text}; did you mean ${text}s?)`)
    }
    const millis = Math.round(amount * DURATION_UNITS[match[3] ?? "ms"]!)
    if (millis < min) return Result.fail(`must be at least ${formatDuration(min)} (got ${text})`)
    if (millis > max) return Result.fail(`must be at most ${formatDuration(max)} (got ${text})`)
    return Result.succeed(millis)
  }

const SIZE_UNITS: Readonly<Record<string, number>> = { "": 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 }

/** Formats bytes with the largest binary unit that divides them: `4MiB`, `262144` → `256KiB`. */
export const formatBytes = (bytes: number): string => {
  for (const unit of ["GiB", "MiB", "KiB"] as const) {
    const size = SIZE_UNITS[unit.toLowerCase()]!
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`
  }
  return String(bytes)
}

/** A size in bytes within `[min, max]`: `262144`, `256KiB`, `8MiB`, `1.5MiB`, `1GiB`. */
export const bytes =
  (min: number, max: number) =>
  (text: string): Result.Result<number, string> => {
    const match = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(text.trim())
    const unit = match === null ? undefined : SIZE_UNITS[match[2]!.toLowerCase()]
    if (match === null || unit === undefined) {
      return Result.fail(`must be a size like 262144, 256KiB or 8MiB (got ${quote(text)})`)
    }
    const value = Number(match[1]) * unit
    if (!Number.isInteger(value)) return Result.fail(`must be a whole number of bytes (got ${text})`)
    if (value < min) return Result.fail(`must be at least ${min} bytes (got ${text})`)
    if (value > max) return Result.fail(`must be at most ${max} bytes (got ${text})`)
    return Result.succeed(value)
  }

/** Any non-empty text (a file name, a token, a host name). */
export const text = (value: string): Result.Result<string, string> =>
  value.length === 0 ? Result.fail("must not be empty") : Result.succeed(value)

/** A yes/no value: `true`/`false`, `1`/`0`, `yes`/`no`. */
export const boolean = (value: string): Result.Result<boolean, string> => {
  const normalized = value.trim().toLowerCase()
  if (normalized === "true" || normalized === "1" || normalized === "yes") return Result.succeed(true)
  if (normalized === "false" || normalized === "0" || normalized === "no") return Result.succeed(false)
  return Result.fail(`must be true or false (got ${quote(value)})`)
}

/** A whole number within `[min, max]`. */
export const integer =
  (min: number, max: number) =>
  (text: string): Result.Result<number, string> => {
    if (!/^-?\d+$/.test(text.trim())) return Result.fail(`must be a whole number (got ${quote(text)})`)
    const value = Number(text)
    if (value < min) return Result.fail(`must be at least ${min} (got ${text})`)
    if (value > max) return Result.fail(`must be at most ${max} (got ${text})`)
    return Result.succeed(value)
  }

const LOG_LEVELS: Readonly<Record<string, LogLevel.LogLevel>> = {
  trace: "Trace",
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  error: "Error",
  fatal: "Fatal",
  none: "None"
}

/** A log level by its lower-case name (case-insensitive). */
export const logLevel = (text: string): Result.Result<LogLevel.LogLevel, string> => {
  const level = LOG_LEVELS[text.trim().toLowerCase()]
  return level === undefined
    ? Result.fail(`must be one of ${Object.keys(LOG_LEVELS).join(", ")} (got ${quote(text)})`)
    : Result.succeed(level)
}

// ---------------------------------------------------------------------------------------------
// The commands' tables

const commonFlags: Flags<CommonConfig> = {
  keepaliveIntervalMillis: {
    flag: "--keepalive-interval",
    metavar: "DURATION",
    doc: "idle time on the link before a ping is sent (0 disables keepalive)",
    default: formatDuration(sessionDefaults.keepaliveIntervalMillis),
    parse: duration(0)
  },
  keepaliveTimeoutMillis: {
    flag: "--keepalive-timeout",
    metavar: "DURATION",
    doc: "how long a ping may go unanswered before the link is declared dead",
    default: formatDuration(sessionDefaults.keepaliveTimeoutMillis),
    parse: duration(1)
  },
  maxWindow: {
    flag: "--max-window",
    metavar: "BYTES",
    doc: `receive window per stream (at least ${INITIAL_WINDOW} = 256KiB)`,
    default: formatBytes(sessionDefaults.maxWindow),
    parse: bytes(INITIAL_WINDOW, MAX_UINT32)
  },
  windowAutoTune: {
    flag: "--window-autotune",
    metavar: "",
    doc: "start each stream at 256KiB and grow it toward --max-window as its reader keeps up (stalled readers then pin little memory)",
    default: "false",
    switch: true,
    parse: boolean
  },
  drainMillis: {
    flag: "--drain-timeout",
    metavar: "DURATION",
    doc: "on SIGINT/SIGTERM, how long open streams may finish before they are reset",
    default: "10s",
    parse: duration(0)
  },
  logLevel: {
    flag: "--log-level",
    metavar: "LEVEL",
    doc: "trace, debug, info, warn, error, fatal or none",
    default: "info",
    parse: logLevel
  },
  maxStreams: {
    flag: "--max-streams",
    metavar: "N",
    doc: "streams open at once on one link; a SYN beyond it is refused with RST",
    default: String(sessionDefaults.maxStreams),
    parse: integer(1, 10_000_000)
  },
  acceptBacklog: {
    flag: "--accept-backlog",
    metavar: "N",
    doc: "inbound streams waiting to be served; a SYN beyond it is refused with RST",
    default: String(sessionDefaults.acceptBacklog),
    parse: integer(1, 1_000_000)
  },
  maxUnackedOpens: {
    flag: "--max-unacked-opens",
    metavar: "N",
    doc: "outbound streams not yet acknowledged; further opens wait",
    default: String(sessionDefaults.maxUnackedOpens),
    parse: integer(1, 1_000_000)
  },
  maxSessionBuffer: {
    flag: "--max-session-buffer",
    metavar: "BYTES",
    doc: "bytes buffered for all streams of a link before the link stops being read",
    default: formatBytes(sessionDefaults.maxSessionBuffer),
    parse: bytes(INITIAL_WINDOW, Number.MAX_SAFE_INTEGER)
  },
  idleTimeoutMillis: {
    flag: "--idle-timeout",
    metavar: "DURATION",
    doc: "a stream with no data either way for this long is reset (0: never)",
    default: formatDuration(sessionDefaults.idleTimeoutMillis),
    parse: duration(0)
  },
  token: {
    flag: "--token",
    metavar: "TOKEN",
    doc: "shared secret: the link starts with an HMAC challenge-response (never sent in the clear)",
    default: undefined,
    defaultDoc: "none: plain yamux, no authentication",
    parse: text
  }
}

/** The flags of `plait proxy`, in help order. */
export const proxyFlags: Flags<ProxyConfig> = {
  listen: {
    flag: "--listen",
    metavar: "HOST:PORT",
    doc: "where clients connect (port 0 picks a free port; the log says which)",
    default: formatAddress(PlaitProxy.DEFAULT_LISTEN),
    parse: address(0)
  },
  upstream: {
    flag: "--upstream",
    metavar: "HOST:PORT",
    doc: "the plait server to keep the link to",
    default: formatAddress(PlaitProxy.DEFAULT_UPSTREAM),
    parse: address(1)
  },
  ...commonFlags,
  linkWaitMillis: {
    flag: "--link-wait",
    metavar: "DURATION",
    doc: "how long a new client waits for the link to come up before it is closed",
    default: "10s",
    parse: duration(1)
  },
  maxClients: {
    flag: "--max-clients",
    metavar: "N",
    doc: "client connections carried at once; more are refused",
    default: "10000",
    parse: integer(1, 1_000_000)
  },
  tls: {
    flag: "--tls",
    metavar: "",
    doc: "dial the server with TLS, verified against the system's trust store (or --tls-ca)",
    default: "false",
    switch: true,
    parse: boolean
  },
  tlsCa: {
    flag: "--tls-ca",
    metavar: "FILE",
    doc: "PEM CA certificate(s) that must have signed the server's certificate (implies --tls)",
    default: undefined,
    defaultDoc: "the system's trust store",
    parse: text
  },
  tlsCert: {
    flag: "--tls-cert",
    metavar: "FILE",
    doc: "PEM client certificate, for a server that requires one (with --tls-key; implies --tls)",
    default: undefined,
    defaultDoc: "none",
    parse: text
  },
  tlsKey: {
    flag: "--tls-key",
    metavar: "FILE",
    doc: "PEM private key of --tls-cert",
    default: undefined,
    defaultDoc: "none",
    parse: text
  },
  tlsServername: {
    flag: "--tls-servername",
    metavar: "NAME",
    doc: "the name the server's certificate must carry (implies --tls)",
    default: undefined,
    defaultDoc: "the --upstream host",
    parse: text
  }
}

/** The flags of `plait server`, in help order. */
export const serverFlags: Flags<ServerConfig> = {
  listen: {
    flag: "--listen",
    metavar: "HOST:PORT",
    doc: "where proxies connect (port 0 picks a free port; the log says which)",
    default: formatAddress(Server.DEFAULT_LISTEN),
    parse: address(0)
  },
  target: {
    flag: "--target",
    metavar: "HOST:PORT",
    doc: "the backend every stream is forwarded to",
    default: undefined,
    defaultDoc: "none: the embedded echo service answers",
    parse: address(1)
  },
  ...commonFlags,
  maxSessions: {
    flag: "--max-sessions",
    metavar: "N",
    doc: "proxy links served at once; more are refused",
    default: "64",
    parse: integer(1, 1_000_000)
  },
  tlsCert: {
    flag: "--tls-cert",
    metavar: "FILE",
    doc: "PEM certificate the server presents: links are TLS (with --tls-key)",
    default: undefined,
    defaultDoc: "none: plain TCP",
    parse: text
  },
  tlsKey: {
    flag: "--tls-key",
    metavar: "FILE",
    doc: "PEM private key of --tls-cert",
    default: undefined,
    defaultDoc: "none",
    parse: text
  },
  tlsCa: {
    flag: "--tls-ca",
    metavar: "FILE",
    doc: "PEM CA: proxies must present a client certificate signed by it (mutual TLS)",
    default: undefined,
    defaultDoc: "none: no client certificates",
    parse: text
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing

/** The process environment, or any record like it. */
export type Env = Readonly<Record<string, string | undefined>>

/** Where a value came from, for messages. */
type Source = "flag" | "env" | "default"

const HELP_FLAGS = new Set(["--help", "-h"])

/** Which session setting each flag sets, to name the flag when the session's own validation refuses. */
const SESSION_FLAGS: Readonly<Record<string, keyof CommonConfig>> = {
  keepaliveIntervalMillis: "keepaliveIntervalMillis",
  keepaliveTimeoutMillis: "keepaliveTimeoutMillis",
  maxWindow: "maxWindow",
  windowAutoTune: "windowAutoTune",
  drainTimeoutMillis: "drainMillis",
  maxStreams: "maxStreams",
  acceptBacklog: "acceptBacklog",
  maxUnackedOpens: "maxUnackedOpens",
  maxSessionBuffer: "maxSessionBuffer",
  idleTimeoutMillis: "idleTimeoutMillis"
}

/** Parses and validates a command line against a flag table. Pure: reads only its arguments. */
export const parseArgs = <C extends CommonConfig>(
  command: string,
  summary: string,
  flags: Flags<C>,
  argv: ReadonlyArray<string>,
  env: Env
): Parsed<C> | OptionsError => {
  if (argv.some((arg) => HELP_FLAGS.has(arg))) return { _tag: "Help", text: renderHelp(command, summary, flags) }
  const fail = (setting: string, detail: string) => new OptionsError({ command, setting, detail })
  const keys = Object.keys(flags) as Array<keyof C & string>
  const byFlag = new Map(keys.map((key) => [flags[key].flag as string, key]))
  const given = new Map<keyof C, string>()

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    // A lone `--` (left by some launchers) separates nothing here.
    if (arg === "--") continue
    if (!arg.startsWith("-")) return fail("argv", `unexpected argument ${quote(arg)} (see --help)`)
    const eq = arg.indexOf("=")
    const name = eq < 0 ? arg : arg.slice(0, eq)
    const key = byFlag.get(name)
    if (key === undefined) return fail(name, `unknown flag ${name} (see --help)`)
    const spec = flags[key]
    let value: string | undefined
    if (eq >= 0) {
      value = arg.slice(eq + 1)
    } else if (spec.switch === true) {
      value = "true"
    } else {
      value = argv[i + 1]
      if (value === undefined || value.startsWith("--")) {
        return fail(name, `${name} needs a value: ${spec.metavar}`)
      }
      i++
    }
    given.set(key, value)
  }

  const config: Record<string, unknown> = {}
  for (const key of keys) {
    const spec = flags[key] as FlagSpec<unknown>
    const variable = envName(spec.flag)
    const fromEnv = env[variable]
    const [text, source]: [string | undefined, Source] = given.has(key)
      ? [given.get(key), "flag"]
      : fromEnv !== undefined && fromEnv !== ""
        ? [fromEnv, "env"]
        : [spec.default, "default"]
    if (text === undefined) {
      config[key] = undefined
      continue
    }
    const result = spec.parse(text)
    if (Result.isFailure(result)) {
      const origin = source === "env" ? ` (from ${variable})` : source === "default" ? " (default)" : ""
      return fail(spec.flag, `${spec.flag}${origin} ${result.failure}`)
    }
    config[key] = result.success
  }

  const typed = config as unknown as C
  const session = validateSessionConfig(sessionOptions(typed))
  if (session instanceof ConfigError) {
    const key = SESSION_FLAGS[session.setting]
    const flag = key === undefined ? session.setting : flags[key].flag
    return fail(flag, `${flag}: ${session.message}`)
  }
  return { _tag: "Run", config: typed }
}

/** Renders the `--help` text of a command from its table. */
export const renderHelp = <C>(command: string, summary: string, flags: Flags<C>): string => {
  const specs = Object.values(flags) as Array<FlagSpec<unknown>>
  const rows = specs.map((spec) => ({
    left: spec.metavar === "" ? `  ${spec.flag}` : `  ${spec.flag} ${spec.metavar}`,
    lines: [spec.doc, `env ${envName(spec.flag)}, default ${spec.default ?? spec.defaultDoc ?? "none"}`]
  }))
  rows.push({ left: "  -h, --help", lines: ["show this help and exit"] })
  const width = Math.max(...rows.map((row) => row.left.length)) + 2
  const options = rows.flatMap((row) =>
    row.lines.map((line, i) => (i === 0 ? row.left.padEnd(width) : " ".repeat(width)) + line)
  )
  return [
    `plait ${command}: ${summary}`,
    "",
    `Usage: plait ${command} [options]`,
    `       npm run ${command} -- [options] | bun run ${command} [options] | deno task ${command} [options]`,
    "",
    "Options (a flag wins over its environment variable, which wins over the default):",
    ...options,
    "",
    "Values: HOST:PORT (IPv6 as [::1]:7000); durations 500ms, 5s, 2m, 1h; sizes 262144, 256KiB, 8MiB.",
    "Logs: one line per event on stderr: <time> <LEVEL> <message> [client=…] [peer=…] [stream=…].",
    "Signals: SIGINT or SIGTERM stops accepting new connections, lets open streams finish for up to",
    "--drain-timeout (the link is closed with GO_AWAY), then exits 0. A second signal exits at once",
    "with code 130 (SIGINT) or 143 (SIGTERM).",
    `Exit codes: 0 after a clean shutdown, 1 if the ${command} cannot start or fails, 2 for bad options.`,
    ""
  ].join("\n")
}

/** One-line summary of `plait proxy`. */
export const PROXY_SUMMARY = "accepts TCP clients and carries each over one multiplexed (yamux) link to a plait server"
/** One-line summary of `plait server`. */
export const SERVER_SUMMARY =
  "accepts links from plait proxies and serves each stream by forwarding it to --target (or echoing)"

/** Parses `plait proxy`'s arguments (without the runtime and script) and environment. */
export const parseProxyArgs = (argv: ReadonlyArray<string>, env: Env): Parsed<ProxyConfig> | OptionsError =>
  parseArgs("proxy", PROXY_SUMMARY, proxyFlags, argv, env)

/** Parses `plait server`'s arguments (without the runtime and script) and environment. */
export const parseServerArgs = (argv: ReadonlyArray<string>, env: Env): Parsed<ServerConfig> | OptionsError =>
  parseArgs("server", SERVER_SUMMARY, serverFlags, argv, env)
