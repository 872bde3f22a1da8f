/**
 * The settings of `plait proxy` and `plait server`: one table per command, and the pure function that
 * turns what was given (command-line flags, environment, config file) into a validated config.
 *
 * Invariants:
 * - Every field of a command's config has exactly one {@link Setting} (the table's type enforces it).
 *   A setting's names are derived from its flag: `--max-window` ↔ environment `PLAIT_MAX_WINDOW` ↔
 *   config-file key `max-window` (kebab-case, the flag without its dashes).
 * - Precedence: a flag on the command line wins over its environment variable, which wins over the
 *   config file, which wins over the default. An empty environment variable counts as unset. A flag
 *   given twice keeps the last value; a list setting (`--service`) keeps every occurrence, and the
 *   first source that has any replaces the others whole.
 * - Defaults are written as text and go through the same parser as user input, so the help shows
 *   exactly what is used.
 * - Every refusal is one {@link OptionsError} whose message is a single line naming the flag (and the
 *   environment variable, or the key and the file, when the value came from there), what it must be,
 *   and what was given — e.g. `plait proxy: --max-window must be at least 262144 bytes (got 1000)`.
 *   A secret (`--token`) is never repeated in a message.
 *
 * Values: HOST:PORT (IPv6 in brackets, `[::1]:7000`); durations `500ms`, `5s`, `2m`, `1h` (a bare `0`
 * is allowed); sizes in bytes, `KiB`, `MiB` or `GiB` (`262144`, `256KiB`, `8MiB`); whole numbers; log
 * levels `trace`, `debug`, `info`, `warn`, `error`, `fatal`, `none`.
 *
 * The command line itself is read by `effect/cli` (`Cli.ts` builds its commands from these tables),
 * the config file by `ConfigFile.ts`; this module only knows text values and where they came from,
 * so it is testable without a runtime.
 *
 * **Adding a flag** is one entry in a table below (plus its field in the config interface): give its
 * `flag`, `metavar`, `doc`, `default` (as text, or `undefined` with a `defaultDoc`) and `parse` (one of
 * the value parsers here, or a new one returning `Result<A, string>` whose failure continues a
 * sentence that starts with the flag's name). Its environment variable, config-file key and help line
 * follow from the flag's name; set `file: "number"` or `file: "boolean"` when a config file may write
 * it as a number or a boolean, `secret: true` when its value must never be echoed, `list: true` for a
 * repeatable flag. The command's `start` (in `Commands.ts`) then reads the field, and the README's
 * flag table gets a row (`test/cli/Readme.test.ts` fails until it has one).
 *
 * @since 0.1.0
 */
import { Data, type LogLevel, Result } from "effect"
import * as Cidr from "../internal/transport/Cidr.ts"
import { INITIAL_WINDOW, MAX_UINT32 } from "../protocol/Constants.ts"
import * as PlaitProxy from "../proxy/Proxy.ts"
import * as Resume from "../resume/Resume.ts"
import * as Server from "../server/Server.ts"
import {
  ConfigError,
  type SessionConfig,
  defaults as sessionDefaults,
  validateSessionConfig
} from "../session/Config.ts"
import * as OpenMessage from "../transport/OpenMessage.ts"
import type { TcpAddress } from "../transport/Tcp.ts"
import * as Tcp from "../transport/Tcp.ts"

// ---------------------------------------------------------------------------------------------
// Configs

/**
 * Settings shared by both commands.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommonConfig {
  /** The config file the other settings were read from (`--config`), if any; SIGHUP re-reads it. */
  readonly config: string | undefined
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
  /** A frame header or body left incomplete this long ends the link (0: no deadline). */
  readonly frameTimeoutMillis: number
  /** Flood budgets: more of these per second from the peer end the link with GO_AWAY(1). */
  readonly maxPingsPerSecond: number
  readonly maxRefusedSynsPerSecond: number
  readonly maxResetsPerSecond: number
  readonly maxWindowUpdatesPerSecond: number
  /** Control frames queued for a peer that does not read them before the link is ended. */
  readonly maxControlBacklog: number
  /** How long a session whose link was lost waits to be resumed (0: resumption off). */
  readonly resumeWindowMillis: number
  /** Replay buffer per link and direction (resumption). */
  readonly resumeBufferBytes: number
  /** Shared secret for the link's challenge-response; `undefined`: no authentication. */
  readonly token: string | undefined
  /** Where the admin endpoint (metrics, health, readiness, status, dashboard) listens; `undefined`: off. */
  readonly admin: TcpAddress | undefined
  /** Guards every admin route but `/healthz`; `undefined`: open (keep `admin` on loopback then). */
  readonly adminToken: string | undefined
}

/**
 * A validated `plait status` configuration: which admin endpoint to ask.
 *
 * @since 0.1.0
 * @category models
 */
export interface StatusConfig {
  readonly admin: TcpAddress
  readonly adminToken: string | undefined
}

/**
 * A named service of the proxy: clients accepted on `listen` are carried in streams naming it.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProxyServiceEntry {
  readonly name: string
  readonly listen: TcpAddress
}

/**
 * PROXY protocol header a server puts in front of a forwarded stream (haproxy's v1 text or v2 binary).
 *
 * @since 0.1.0
 * @category models
 */
export type ProxyProtocolVersion = "v1" | "v2"

/**
 * A named service of the server: streams naming it are forwarded to `target`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerServiceEntry {
  readonly name: string
  readonly target: TcpAddress
  /** Prepend a PROXY protocol header carrying the client's address; `undefined`: none. */
  readonly proxyProtocol: ProxyProtocolVersion | undefined
}

/**
 * A validated `plait proxy` configuration.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProxyConfig extends CommonConfig {
  readonly listen: TcpAddress
  /** The servers (`--upstream A,B,…`), at least one; with several, or `links` above 1, a link pool. */
  readonly upstream: ReadonlyArray<TcpAddress>
  /** Links kept open, spread over the upstreams (`--links`). */
  readonly links: number
  /** Accept the link from servers that dial here (`plait server --connect`) instead of dialling `upstream`. */
  readonly linkListen: TcpAddress | undefined
  /** Every client starts with a PROXY protocol header (v1 or v2) from a load balancer in front. */
  readonly acceptProxyProtocol: boolean
  /** With `acceptProxyProtocol`: the only sources (CIDR blocks, normalised) that may send the header. */
  readonly proxyProtocolFrom: ReadonlyArray<string> | undefined
  /** Named services besides the default one on `listen` (`--service`, the file's `services`). */
  readonly services: ReadonlyArray<ProxyServiceEntry>
  readonly linkWaitMillis: number
  readonly maxClients: number
  /** Dial the server with TLS (implied by any other `--tls-*` flag). */
  readonly tls: boolean
  readonly tlsCa: string | undefined
  readonly tlsCert: string | undefined
  readonly tlsKey: string | undefined
  readonly tlsServername: string | undefined
}

/**
 * A validated `plait server` configuration.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerConfig extends CommonConfig {
  readonly listen: TcpAddress
  /** The backend each stream is forwarded to; `undefined` serves the embedded echo. */
  readonly target: TcpAddress | undefined
  /** Dial the proxy here (its `--link-listen`) and keep the link, instead of listening for it. */
  readonly connect: TcpAddress | undefined
  /** With `connect`: dial with TLS (implied by `tlsServername`, and by `tlsCa`/`tlsCert` with `connect`). */
  readonly tls: boolean
  /** With `connect`: the name the proxy's certificate must carry. */
  readonly tlsServername: string | undefined
  /** Named services besides the default one (`--service`, the file's `services`). */
  readonly services: ReadonlyArray<ServerServiceEntry>
  readonly maxSessions: number
  /** A backend dial that has not connected within this long resets its stream. */
  readonly dialTimeoutMillis: number
  readonly tlsCert: string | undefined
  readonly tlsKey: string | undefined
  /** With a CA, client certificates signed by it are required (mutual TLS). */
  readonly tlsCa: string | undefined
}

/**
 * The session settings of a config, as `Proxy`/`Server` options take them.
 *
 * @since 0.1.0
 * @category conversions
 */
export const sessionOptions = (config: CommonConfig): Partial<SessionConfig> => ({
  keepaliveIntervalMillis: config.keepaliveIntervalMillis,
  keepaliveTimeoutMillis: config.keepaliveTimeoutMillis,
  maxWindow: config.maxWindow,
  windowAutoTune: config.windowAutoTune,
  drainTimeoutMillis: config.drainMillis,
  maxStreams: config.maxStreams,
  acceptBacklog: config.acceptBacklog,
  maxUnackedOpens: config.maxUnackedOpens,
  maxSessionBuffer: config.maxSessionBuffer,
  idleTimeoutMillis: config.idleTimeoutMillis,
  frameTimeoutMillis: config.frameTimeoutMillis,
  maxPingsPerSecond: config.maxPingsPerSecond,
  maxRefusedSynsPerSecond: config.maxRefusedSynsPerSecond,
  maxResetsPerSecond: config.maxResetsPerSecond,
  maxWindowUpdatesPerSecond: config.maxWindowUpdatesPerSecond,
  maxControlBacklog: config.maxControlBacklog
})

/**
 * The resumption settings of a config, as `Proxy`/`Server` options take them (`undefined` with
 * `--resume-window 0`: nothing is offered, links are plain yamux sessions as before).
 *
 * @since 0.1.0
 * @category conversions
 */
export const resumeOptions = (
  config: CommonConfig,
  token: string | undefined
): { readonly config: Partial<Resume.ResumeConfig>; readonly token?: string } | undefined =>
  config.resumeWindowMillis === 0
    ? undefined
    : {
        config: { windowMillis: config.resumeWindowMillis, bufferBytes: config.resumeBufferBytes },
        ...(token === undefined ? {} : { token })
      }

/**
 * A refused command line, environment or config file; `message` is the one line to print. Exit with
 * {@link USAGE_EXIT_CODE}.
 *
 * @since 0.1.0
 * @category errors
 */
export class OptionsError extends Data.TaggedError("OptionsError")<{
  /** `proxy` or `server`; empty for the `plait` command itself. */
  readonly command: string
  /**
   * The setting concerned: a flag (`--max-window`), a config-file key (`services.web.target`), or
   * `argv` for a malformed command line.
   */
  readonly setting: string
  /** What is wrong, without the `plait <command>:` prefix. */
  readonly detail: string
  /** The config file concerned, when the problem is in one. */
  readonly file?: string | undefined
}> {
  override get message(): string {
    return this.command === "" ? `plait: ${this.detail}` : `plait ${this.command}: ${this.detail}`
  }
}

/**
 * Exit code for a refused command line (the getopt / shell-builtin convention for misuse).
 *
 * @since 0.1.0
 * @category constants
 */
export const USAGE_EXIT_CODE = 2

// ---------------------------------------------------------------------------------------------
// Setting tables

/**
 * How a config file may write a setting: a string, a number or a string (sizes, counts, durations
 * such as `0`), or a boolean.
 *
 * @since 0.1.0
 * @category models
 */
export type FileKind = "string" | "strings" | "number" | "boolean" | "proxy-services" | "server-services"

/**
 * One setting: how it reads, documents and defaults a value of type `A`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Setting<A> {
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
  /** How a config file writes it (default `string`). */
  readonly file?: FileKind
  /** Never repeat the value in a message (a token). */
  readonly secret?: true
  /** Not read from the config file (only `--config` itself). */
  readonly notInFile?: true
  /** Parses a value; a failure is the rest of a sentence that starts with the setting's name. */
  readonly parse: (text: string) => Result.Result<A, string>
}

/**
 * A repeatable setting (`--service a=… --service b=…`) whose value is the list of its occurrences.
 * Its environment variable holds the occurrences separated by whitespace.
 *
 * @since 0.1.0
 * @category models
 */
export interface ListSetting<I> {
  readonly flag: `--${string}`
  readonly metavar: string
  readonly doc: string
  readonly defaultDoc: string
  readonly list: true
  /** The file's form of the list (a map by name, see `ConfigFile.ts`). */
  readonly file: FileKind
  readonly parse: (text: string) => Result.Result<I, string>
  /** The name each item is known by; two items of one name are refused. */
  readonly nameOf: (item: I) => string
}

/**
 * One entry per config field; list fields take a {@link ListSetting} (a repeatable flag), or a
 * {@link Setting} whose one value is the list (`--upstream A,B`).
 *
 * @since 0.1.0
 * @category models
 */
export type Settings<C> = {
  readonly [K in keyof C]: C[K] extends ReadonlyArray<infer I> ? ListSetting<I> | Setting<C[K]> : Setting<C[K]>
}

/**
 * Either kind of setting, as code iterating over a table sees it.
 *
 * @since 0.1.0
 * @category models
 */
export type AnySetting = Setting<unknown> | ListSetting<unknown>

/**
 * Whether a setting is repeatable.
 *
 * @since 0.1.0
 * @category guards
 */
export const isList = (setting: AnySetting): setting is ListSetting<unknown> => "list" in setting

/**
 * The environment variable of a flag: `--max-window` ↔ `PLAIT_MAX_WINDOW`.
 *
 * @since 0.1.0
 * @category naming
 */
export const envName = (flag: string): string => `PLAIT_${flag.slice(2).toUpperCase().replaceAll("-", "_")}`

/**
 * The config-file key of a flag: `--max-window` ↔ `max-window`; a list flag's key is plural
 * (`--service` ↔ `services`).
 *
 * @since 0.1.0
 * @category naming
 */
export const configKey = (setting: AnySetting): string =>
  isList(setting) ? `${setting.flag.slice(2)}s` : setting.flag.slice(2)

// ---------------------------------------------------------------------------------------------
// Value parsers

const quote = (text: string): string => JSON.stringify(text)

/**
 * Formats an address as `host:port` (IPv6 in brackets).
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatAddress = Tcp.formatAddress

/**
 * `HOST:PORT`; `minPort` 0 lets a listener pick a free port.
 *
 * @since 0.1.0
 * @category parsers
 */
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

/**
 * Most addresses in one `HOST:PORT,HOST:PORT` list.
 *
 * @since 0.2.0
 * @category constants
 */
export const MAX_ADDRESSES = 64

/**
 * `HOST:PORT[,HOST:PORT…]`: one or more addresses separated by commas, each as {@link address},
 * none twice, at most {@link MAX_ADDRESSES}.
 *
 * @since 0.2.0
 * @category parsers
 */
export const addressList =
  (minPort: 0 | 1) =>
  (text: string): Result.Result<ReadonlyArray<TcpAddress>, string> => {
    const entries = text.split(",").map((entry) => entry.trim())
    if (entries.length > MAX_ADDRESSES) {
      return Result.fail(`must list at most ${MAX_ADDRESSES} addresses (got ${entries.length})`)
    }
    const out: Array<TcpAddress> = []
    const seen = new Set<string>()
    for (const entry of entries) {
      if (entry === "") return Result.fail(`must be HOST:PORT[,HOST:PORT...] with no empty entry (got ${quote(text)})`)
      const parsed = address(minPort)(entry)
      if (Result.isFailure(parsed)) return Result.fail(parsed.failure)
      const key = Tcp.formatAddress(parsed.success)
      if (seen.has(key)) return Result.fail(`names ${key} twice`)
      seen.add(key)
      out.push(parsed.success)
    }
    return Result.succeed(out)
  }

/**
 * `CIDR[,CIDR…]`: IP blocks (`10.0.0.0/8`, `2001:db8::/32`) or single addresses, separated by
 * commas; the result is the normalised blocks.
 *
 * @since 0.2.0
 * @category parsers
 */
export const cidrList = (text: string): Result.Result<ReadonlyArray<string>, string> => {
  const parsed = Cidr.parse(text.split(","))
  return "error" in parsed ? Result.fail(parsed.error) : Result.succeed(parsed.entries)
}

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
const DAY = 86_400_000

/**
 * Formats milliseconds with the largest unit that divides them: `30s`, `500ms`, `2m`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatDuration = (millis: number): string => {
  if (millis === 0) return "0"
  for (const unit of ["h", "m", "s"] as const) {
    const size = DURATION_UNITS[unit]!
    if (millis % size === 0) return `${millis / size}${unit}`
  }
  return `${millis}ms`
}

/**
 * A duration in milliseconds within `[min, max]`: `500ms`, `5s`, `1.5s`, `2m`, `1h`, or `0`.
 *
 * @since 0.1.0
 * @category parsers
 */
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

/**
 * Formats bytes with the largest binary unit that divides them: `4MiB`, `262144` → `256KiB`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatBytes = (bytes: number): string => {
  for (const unit of ["GiB", "MiB", "KiB"] as const) {
    const size = SIZE_UNITS[unit.toLowerCase()]!
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`
  }
  return String(bytes)
}

/**
 * A size in bytes within `[min, max]`: `262144`, `256KiB`, `8MiB`, `1.5MiB`, `1GiB`.
 *
 * @since 0.1.0
 * @category parsers
 */
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

/**
 * Any non-empty text (a file name, a token, a host name).
 *
 * @since 0.1.0
 * @category parsers
 */
export const text = (value: string): Result.Result<string, string> =>
  value.length === 0 ? Result.fail("must not be empty") : Result.succeed(value)

/**
 * A yes/no value: `true`/`false`, `1`/`0`, `yes`/`no`.
 *
 * @since 0.1.0
 * @category parsers
 */
export const boolean = (value: string): Result.Result<boolean, string> => {
  const normalized = value.trim().toLowerCase()
  if (normalized === "true" || normalized === "1" || normalized === "yes") return Result.succeed(true)
  if (normalized === "false" || normalized === "0" || normalized === "no") return Result.succeed(false)
  return Result.fail(`must be true or false (got ${quote(value)})`)
}

/**
 * A whole number within `[min, max]`.
 *
 * @since 0.1.0
 * @category parsers
 */
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

/**
 * A log level by its lower-case name (case-insensitive).
 *
 * @since 0.1.0
 * @category parsers
 */
export const logLevel = (text: string): Result.Result<LogLevel.LogLevel, string> => {
  const level = LOG_LEVELS[text.trim().toLowerCase()]
  return level === undefined
    ? Result.fail(`must be one of ${Object.keys(LOG_LEVELS).join(", ")} (got ${quote(text)})`)
    : Result.succeed(level)
}

/**
 * A service name, by the rule of the stream open message that carries it (`OpenMessage`): 1 to
 * `MAX_NAME_LENGTH` (63) letters, digits, `.`, `_` or `-`, starting with a letter or digit.
 *
 * @since 0.1.0
 * @category parsers
 */
export const serviceName = (value: string): Result.Result<string, string> => {
  const invalid = OpenMessage.validateServiceName(value)
  return invalid === undefined ? Result.succeed(value) : Result.fail(`has a bad name: ${invalid}`)
}

/** Splits `NAME=REST`, checking the name. */
const namedValue = (value: string): Result.Result<readonly [string, string], string> => {
  const eq = value.indexOf("=")
  if (eq < 0) return Result.fail(`must be NAME=HOST:PORT (got ${quote(value)})`)
  return Result.map(serviceName(value.slice(0, eq)), (name) => [name, value.slice(eq + 1)] as const)
}

/**
 * A proxy service: `NAME=HOST:PORT` (the address clients of that service connect to).
 *
 * @since 0.1.0
 * @category parsers
 */
export const proxyService = (value: string): Result.Result<ProxyServiceEntry, string> =>
  Result.flatMap(namedValue(value), ([name, rest]) => Result.map(address(0)(rest), (listen) => ({ name, listen })))

/**
 * The PROXY protocol version of a server service: `v1` or `v2`.
 *
 * @since 0.1.0
 * @category parsers
 */
export const proxyProtocol = (value: string): Result.Result<ProxyProtocolVersion, string> =>
  value === "v1" || value === "v2" ? Result.succeed(value) : Result.fail(`must be v1 or v2 (got ${quote(value)})`)

/**
 * A server service: `NAME=HOST:PORT[,proxy-protocol=v1|v2]` (where that service's streams go).
 *
 * @since 0.1.0
 * @category parsers
 */
export const serverService = (value: string): Result.Result<ServerServiceEntry, string> =>
  Result.flatMap(namedValue(value), ([name, rest]) => {
    const [target, ...options] = rest.split(",")
    return Result.flatMap(address(1)(target!), (target) => {
      let version: ProxyProtocolVersion | undefined
      for (const option of options) {
        const [key, optionValue] = option.split("=", 2)
        if (key !== "proxy-protocol" || optionValue === undefined) {
          return Result.fail(`${name}: unknown option ${quote(option)} (options: proxy-protocol=v1|v2)`)
        }
        const parsed = proxyProtocol(optionValue)
        if (Result.isFailure(parsed)) return Result.fail(`${name}: proxy-protocol ${parsed.failure}`)
        version = parsed.success
      }
      return Result.succeed({ name, target, proxyProtocol: version })
    })
  })

// ---------------------------------------------------------------------------------------------
// The commands' tables

const configSetting: Setting<string | undefined> = {
  flag: "--config",
  metavar: "FILE",
  doc: "read settings from this YAML (.yaml, .yml) or TOML (.toml) file; flags and environment override it; SIGHUP re-reads it",
  default: undefined,
  defaultDoc: "none",
  notInFile: true,
  parse: text
}

const commonSettings: Omit<Settings<CommonConfig>, "config"> = {
  keepaliveIntervalMillis: {
    flag: "--keepalive-interval",
    metavar: "DURATION",
    doc: "idle time on the link before a ping is sent (0 disables keepalive)",
    default: formatDuration(sessionDefaults.keepaliveIntervalMillis),
    file: "number",
    parse: duration(0)
  },
  keepaliveTimeoutMillis: {
    flag: "--keepalive-timeout",
    metavar: "DURATION",
    doc: "how long a ping may go unanswered before the link is declared dead",
    default: formatDuration(sessionDefaults.keepaliveTimeoutMillis),
    file: "number",
    parse: duration(1)
  },
  maxWindow: {
    flag: "--max-window",
    metavar: "BYTES",
    doc: `receive window per stream (at least ${INITIAL_WINDOW} = 256KiB)`,
    default: formatBytes(sessionDefaults.maxWindow),
    file: "number",
    parse: bytes(INITIAL_WINDOW, MAX_UINT32)
  },
  windowAutoTune: {
    flag: "--window-autotune",
    metavar: "",
    doc: "start each stream at 256KiB and grow it toward --max-window as its reader keeps up (stalled readers then pin little memory)",
    default: "false",
    switch: true,
    file: "boolean",
    parse: boolean
  },
  drainMillis: {
    flag: "--drain-timeout",
    metavar: "DURATION",
    doc: "on SIGINT/SIGTERM, how long open streams may finish before they are reset",
    default: "10s",
    file: "number",
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
    file: "number",
    parse: integer(1, 10_000_000)
  },
  acceptBacklog: {
    flag: "--accept-backlog",
    metavar: "N",
    doc: "inbound streams waiting to be served; a SYN beyond it is refused with RST",
    default: String(sessionDefaults.acceptBacklog),
    file: "number",
    parse: integer(1, 1_000_000)
  },
  maxUnackedOpens: {
    flag: "--max-unacked-opens",
    metavar: "N",
    doc: "outbound streams not yet acknowledged; further opens wait",
    default: String(sessionDefaults.maxUnackedOpens),
    file: "number",
    parse: integer(1, 1_000_000)
  },
  maxSessionBuffer: {
    flag: "--max-session-buffer",
    metavar: "BYTES",
    doc: "bytes buffered for all streams of a link before the link stops being read",
    default: formatBytes(sessionDefaults.maxSessionBuffer),
    file: "number",
    parse: bytes(INITIAL_WINDOW, Number.MAX_SAFE_INTEGER)
  },
  idleTimeoutMillis: {
    flag: "--idle-timeout",
    metavar: "DURATION",
    doc: "a stream with no data either way for this long is reset (0: never)",
    default: formatDuration(sessionDefaults.idleTimeoutMillis),
    file: "number",
    parse: duration(0)
  },
  resumeWindowMillis: {
    flag: "--resume-window",
    metavar: "DURATION",
    doc: "how long a session whose link was lost waits to be resumed on a new connection, its streams paused, not reset (plait peers only; 0 disables resumption)",
    default: formatDuration(Resume.defaults.windowMillis),
    file: "number",
    parse: duration(0)
  },
  resumeBufferBytes: {
    flag: "--resume-buffer",
    metavar: "BYTES",
    doc: "bytes per link and direction kept until the peer acknowledges them, to send again after a resume; when full, writers wait (the smaller of both sides' is used)",
    default: formatBytes(Resume.defaults.bufferBytes),
    file: "number",
    parse: bytes(64 * 1024, 0xffff_ffff)
  },
  frameTimeoutMillis: {
    flag: "--frame-timeout",
    metavar: "DURATION",
    doc: "a frame header or body the peer started and did not finish within this ends the link with GO_AWAY(1) (0: no deadline)",
    default: formatDuration(sessionDefaults.frameTimeoutMillis),
    file: "number",
    parse: duration(0)
  },
  maxPingsPerSecond: {
    flag: "--max-pings-per-second",
    metavar: "N",
    doc: "pings the peer may send in one second; more end the link with GO_AWAY(1)",
    default: String(sessionDefaults.maxPingsPerSecond),
    file: "number",
    parse: integer(1, 1_000_000_000)
  },
  maxRefusedSynsPerSecond: {
    flag: "--max-refused-syns-per-second",
    metavar: "N",
    doc: "SYNs refused (backlog or --max-streams full) in one second; more end the link with GO_AWAY(1)",
    default: String(sessionDefaults.maxRefusedSynsPerSecond),
    file: "number",
    parse: integer(1, 1_000_000_000)
  },
  maxResetsPerSecond: {
    flag: "--max-resets-per-second",
    metavar: "N",
    doc: "RSTs of streams the peer opened less than a second before (rapid reset), in one second; more end the link with GO_AWAY(1)",
    default: String(sessionDefaults.maxResetsPerSecond),
    file: "number",
    parse: integer(1, 1_000_000_000)
  },
  maxWindowUpdatesPerSecond: {
    flag: "--max-window-updates-per-second",
    metavar: "N",
    doc: "credit-only WINDOW_UPDATEs and empty DATA frames in one second; more end the link with GO_AWAY(1)",
    default: String(sessionDefaults.maxWindowUpdatesPerSecond),
    file: "number",
    parse: integer(1, 1_000_000_000)
  },
  maxControlBacklog: {
    flag: "--max-control-backlog",
    metavar: "N",
    doc: "control frames (pongs, RSTs, credit) queued for a peer that does not read them; more end the link with GO_AWAY(1)",
    default: String(sessionDefaults.maxControlBacklog),
    file: "number",
    parse: integer(16, 100_000_000)
  },
  token: {
    flag: "--token",
    metavar: "TOKEN",
    doc: "shared secret: the link starts with an HMAC challenge-response (never sent in the clear)",
    default: undefined,
    defaultDoc: "none: plain yamux, no authentication",
    secret: true,
    parse: text
  },
  admin: {
    flag: "--admin",
    metavar: "HOST:PORT",
    doc: "serve the admin endpoint here: /metrics (Prometheus), /healthz, /ready, /status and a live dashboard at / (keep it on loopback, or set --admin-token)",
    default: undefined,
    defaultDoc: "off",
    parse: address(0)
  },
  adminToken: {
    flag: "--admin-token",
    metavar: "TOKEN",
    doc: "require this token on every admin route but /healthz (Authorization: Bearer TOKEN, or HTTP Basic with it as password)",
    default: undefined,
    defaultDoc: "none: the admin endpoint is open",
    secret: true,
    parse: text
  }
}

/**
 * The default admin address `plait status` asks.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_STATUS_ADMIN = "127.0.0.1:7070"

/**
 * The settings of `plait status`.
 *
 * @since 0.1.0
 * @category tables
 */
export const statusSettings: Settings<StatusConfig> = {
  admin: {
    flag: "--admin",
    metavar: "HOST:PORT",
    doc: "the admin endpoint of the proxy or server to ask (its --admin)",
    default: DEFAULT_STATUS_ADMIN,
    parse: address(1)
  },
  adminToken: {
    flag: "--admin-token",
    metavar: "TOKEN",
    doc: "the admin endpoint's --admin-token, if it has one",
    default: undefined,
    defaultDoc: "none",
    secret: true,
    parse: text
  }
}

/**
 * One-line summary of `plait status`.
 *
 * @since 0.1.0
 * @category constants
 */
export const STATUS_SUMMARY = "prints one screen of a running proxy's or server's state, read from its admin endpoint"

/**
 * The settings of `plait proxy`, in help order.
 *
 * @since 0.1.0
 * @category tables
 */
export const proxySettings: Settings<ProxyConfig> = {
  config: configSetting,
  listen: {
    flag: "--listen",
    metavar: "HOST:PORT",
    doc: "where clients connect (port 0 picks a free port; the log says which)",
    default: formatAddress(PlaitProxy.DEFAULT_LISTEN),
    parse: address(0)
  },
  upstream: {
    flag: "--upstream",
    metavar: "HOST:PORT[,HOST:PORT...]",
    doc: "the plait server(s) to keep links to; with several servers or --links above 1, each address a host name resolves to counts as a server",
    default: formatAddress(PlaitProxy.DEFAULT_UPSTREAM),
    file: "strings",
    parse: addressList(1)
  },
  links: {
    flag: "--links",
    metavar: "N",
    doc: "links kept open, spread over the --upstream servers; new clients go to the live link with the fewest streams",
    default: "1",
    file: "number",
    parse: integer(1, 256)
  },
  linkListen: {
    flag: "--link-listen",
    metavar: "HOST:PORT",
    doc: "accept the link from a server that dials here (plait server --connect) instead of dialling --upstream; the --tls-cert/--tls-key/--tls-ca flags then serve TLS, as on a server",
    default: undefined,
    defaultDoc: "off: dial --upstream",
    parse: address(0)
  },
  services: {
    flag: "--service",
    metavar: "NAME=HOST:PORT",
    doc: "also accept clients on HOST:PORT for the server's service NAME (repeatable)",
    defaultDoc: "none",
    list: true,
    file: "proxy-services",
    parse: proxyService,
    nameOf: (service) => service.name
  },
  acceptProxyProtocol: {
    flag: "--accept-proxy-protocol",
    metavar: "",
    doc: "every client starts with a PROXY protocol header (v1 or v2, from a load balancer in front): its address is the client's; a client without a valid one is closed",
    default: "false",
    switch: true,
    file: "boolean",
    parse: boolean
  },
  proxyProtocolFrom: {
    flag: "--proxy-protocol-from",
    metavar: "CIDR[,CIDR...]",
    doc: "with --accept-proxy-protocol: the only sources (the load balancers) that may send the header; a client connecting from elsewhere is closed before it is read, and counted",
    default: undefined,
    defaultDoc: "any source",
    file: "strings",
    parse: cidrList
  },
  ...commonSettings,
  linkWaitMillis: {
    flag: "--link-wait",
    metavar: "DURATION",
    doc: "how long a new client waits for the link to come up before it is closed",
    default: "10s",
    file: "number",
    parse: duration(1)
  },
  maxClients: {
    flag: "--max-clients",
    metavar: "N",
    doc: "client connections carried at once; more are refused",
    default: "10000",
    file: "number",
    parse: integer(1, 1_000_000)
  },
  tls: {
    flag: "--tls",
    metavar: "",
    doc: "dial the server with TLS, verified against the system's trust store (or --tls-ca)",
    default: "false",
    switch: true,
    file: "boolean",
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

/**
 * The settings of `plait server`, in help order.
 *
 * @since 0.1.0
 * @category tables
 */
export const serverSettings: Settings<ServerConfig> = {
  config: configSetting,
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
  connect: {
    flag: "--connect",
    metavar: "HOST:PORT",
    doc: "dial the proxy's --link-listen and keep the link (redialled with backoff), for a server behind NAT; the --tls-* flags then dial with TLS, as on a proxy",
    default: undefined,
    defaultDoc: "off: listen on --listen",
    parse: address(1)
  },
  services: {
    flag: "--service",
    metavar: "NAME=HOST:PORT[,proxy-protocol=v1|v2]",
    doc: "forward the streams of service NAME to HOST:PORT, optionally behind a PROXY protocol header (repeatable)",
    defaultDoc: "none",
    list: true,
    file: "server-services",
    parse: serverService,
    nameOf: (service) => service.name
  },
  ...commonSettings,
  maxSessions: {
    flag: "--max-sessions",
    metavar: "N",
    doc: "proxy links served at once; more are refused",
    default: "64",
    file: "number",
    parse: integer(1, 1_000_000)
  },
  dialTimeoutMillis: {
    flag: "--dial-timeout",
    metavar: "DURATION",
    doc: "a backend dial that has not connected within this resets its stream (counted); a black-holed backend cannot hold streams open",
    default: formatDuration(Server.DEFAULT_DIAL_TIMEOUT_MILLIS),
    file: "number",
    parse: duration(1)
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
    doc: "PEM CA: proxies must present a client certificate signed by it (mutual TLS); with --connect, the CA that must have signed the proxy's certificate",
    default: undefined,
    defaultDoc: "none: no client certificates",
    parse: text
  },
  tls: {
    flag: "--tls",
    metavar: "",
    doc: "with --connect: dial the proxy with TLS, verified against the system's trust store (or --tls-ca)",
    default: "false",
    switch: true,
    file: "boolean",
    parse: boolean
  },
  tlsServername: {
    flag: "--tls-servername",
    metavar: "NAME",
    doc: "with --connect: the name the proxy's certificate must carry (implies --tls)",
    default: undefined,
    defaultDoc: "the --connect host",
    parse: text
  }
}

// ---------------------------------------------------------------------------------------------
// Resolution

/**
 * The process environment, or any record like it.
 *
 * @since 0.1.0
 * @category models
 */
export type Env = Readonly<Record<string, string | undefined>>

/**
 * What the command line gave, by config field: the text of each occurrence of its flag, in order
 * (a switch given alone is `"true"`). Fields not given may be absent or empty.
 *
 * @since 0.1.0
 * @category models
 */
export type Given = Readonly<Record<string, ReadonlyArray<string>>>

/**
 * Values a config file set, by config field, already validated (see `ConfigFile.ts`), and the file.
 *
 * @since 0.1.0
 * @category models
 */
export interface FileValues {
  readonly path: string
  readonly values: Readonly<Record<string, unknown>>
}

/** Which session setting each config field sets, to name the flag when the session's own validation refuses. */
const SESSION_FIELDS: Readonly<Record<string, keyof CommonConfig>> = {
  keepaliveIntervalMillis: "keepaliveIntervalMillis",
  keepaliveTimeoutMillis: "keepaliveTimeoutMillis",
  maxWindow: "maxWindow",
  windowAutoTune: "windowAutoTune",
  drainTimeoutMillis: "drainMillis",
  maxStreams: "maxStreams",
  acceptBacklog: "acceptBacklog",
  maxUnackedOpens: "maxUnackedOpens",
  maxSessionBuffer: "maxSessionBuffer",
  idleTimeoutMillis: "idleTimeoutMillis",
  frameTimeoutMillis: "frameTimeoutMillis",
  maxPingsPerSecond: "maxPingsPerSecond",
  maxRefusedSynsPerSecond: "maxRefusedSynsPerSecond",
  maxResetsPerSecond: "maxResetsPerSecond",
  maxWindowUpdatesPerSecond: "maxWindowUpdatesPerSecond",
  maxControlBacklog: "maxControlBacklog"
}

/** How a refusal names a value's origin after the flag: ` (from PLAIT_X)`, ` (default)` or nothing. */
type Origin =
  | { readonly _tag: "flag" }
  | { readonly _tag: "env"; readonly variable: string }
  | { readonly _tag: "default" }

const originText = (origin: Origin): string =>
  origin._tag === "env" ? ` (from ${origin.variable})` : origin._tag === "default" ? " (default)" : ""

/**
 * Resolves every setting of a table from the flags given, the environment, the config file's values
 * and the defaults (in that order of precedence), validating each, then the session settings
 * together. Pure: reads only its arguments.
 *
 * @since 0.1.0
 * @category resolution
 */
export const resolve = <C>(
  command: string,
  settings: Settings<C>,
  given: Given,
  env: Env,
  file?: FileValues
): C | OptionsError => {
  const fail = (setting: string, detail: string) => new OptionsError({ command, setting, detail })
  const config: Record<string, unknown> = {}
  const fields = Object.keys(settings) as Array<keyof C & string>
  for (const field of fields) {
    const setting = settings[field] as AnySetting
    const variable = envName(setting.flag)
    const fromFlags = given[field] ?? []
    const fromEnv = env[variable]
    const envSet = fromEnv !== undefined && fromEnv.trim() !== ""
    const fileSet = file !== undefined && field in file.values

    if (isList(setting)) {
      const [texts, origin]: [ReadonlyArray<string>, Origin] | [undefined, undefined] =
        fromFlags.length > 0
          ? [fromFlags, { _tag: "flag" }]
          : envSet
            ? [fromEnv.trim().split(/\s+/), { _tag: "env", variable }]
            : [undefined, undefined]
      let items: ReadonlyArray<unknown> = []
      if (texts !== undefined) {
        const parsed: Array<unknown> = []
        for (const itemText of texts) {
          const result = setting.parse(itemText)
          if (Result.isFailure(result)) {
            return fail(setting.flag, `${setting.flag}${originText(origin!)} ${result.failure}`)
          }
          parsed.push(result.success)
        }
        items = parsed
      } else if (fileSet) {
        items = file.values[field] as ReadonlyArray<unknown>
      }
      const seen = new Set<string>()
      for (const item of items) {
        const name = setting.nameOf(item)
        if (seen.has(name)) return fail(setting.flag, `${setting.flag} names service ${quote(name)} twice`)
        seen.add(name)
      }
      config[field] = items
      continue
    }

    if (fromFlags.length === 0 && !envSet && fileSet) {
      config[field] = file.values[field]
      continue
    }
    const [value, origin]: [string | undefined, Origin] =
      fromFlags.length > 0
        ? [fromFlags[fromFlags.length - 1], { _tag: "flag" }]
        : envSet
          ? [fromEnv, { _tag: "env", variable }]
          : [setting.default, { _tag: "default" }]
    if (value === undefined) {
      config[field] = undefined
      continue
    }
    const result = setting.parse(value)
    if (Result.isFailure(result)) return fail(setting.flag, `${setting.flag}${originText(origin)} ${result.failure}`)
    config[field] = result.success
  }

  const typed = config as unknown as C
  // Only the proxy's and the server's settings hold a session (not `plait status`'s).
  if (!("keepaliveIntervalMillis" in settings)) return typed
  const common = settings as unknown as Settings<CommonConfig>
  const session = validateSessionConfig(sessionOptions(typed as unknown as CommonConfig))
  if (session instanceof ConfigError) {
    const field = SESSION_FIELDS[session.setting]
    const flag = field === undefined ? session.setting : (common[field] as AnySetting).flag
    return fail(flag, `${flag}: ${session.message}`)
  }
  return typed
}

/**
 * One-line summary of `plait proxy`.
 *
 * @since 0.1.0
 * @category constants
 */
export const PROXY_SUMMARY = "accepts TCP clients and carries each over one multiplexed (yamux) link to a plait server"

/**
 * One-line summary of `plait server`.
 *
 * @since 0.1.0
 * @category constants
 */
export const SERVER_SUMMARY =
  "accepts links from plait proxies and serves each stream by forwarding it to --target (or echoing)"
