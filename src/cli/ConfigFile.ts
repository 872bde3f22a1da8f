/**
 * The `--config FILE` of both commands: a YAML (`.yaml`, `.yml`) or TOML (`.toml`) file whose keys are
 * the commands' settings, validated with Effect Schema against the command's table.
 *
 * Invariants:
 * - A key is a setting's flag without its dashes (`--max-window` ↔ `max-window`, kebab-case); the
 *   repeatable `--service` is the map `services` (name → address, or a table with `listen` on the
 *   proxy, `target` and `proxy-protocol` on the server). Values go through the same parsers as flags,
 *   so `max-window: 8MiB` and `max-window: 8388608` mean the same; a boolean is a boolean; a
 *   comma-separated setting (`upstream`) may also be a list (`upstream: [a:7001, b:7001]`).
 * - Any problem is one {@link OptionsError} naming the key and the file: an unknown key, a value of
 *   the wrong type, a bad value (address, size, …), and also a file that cannot be read, is not a
 *   regular file, is over {@link MAX_CONFIG_BYTES}, or is not valid YAML/TOML (with line and column).
 *   A value marked secret (`token`) is never repeated, nor is the text of a line the parser refused.
 * - Reading is synchronous and bounded (a regular file of at most 1 MiB), so a reload on SIGHUP is one
 *   step and `--config /dev/zero` or a FIFO fails instead of hanging.
 *
 * @since 0.1.0
 */
import { readFileSync, statSync } from "node:fs"
import * as path from "node:path"
import { Effect, Result, Schema, SchemaIssue, SchemaTransformation } from "effect"
import { parse as parseToml, TomlError } from "smol-toml"
import { parse as parseYaml, YAMLError } from "yaml"
import { codeOf, rawMessage } from "../internal/errorText.ts"
import {
  type AnySetting,
  configKey,
  type FileValues,
  isList,
  OptionsError,
  type ProxyServiceEntry,
  address as parseAddress,
  proxyProtocol,
  type ServerServiceEntry,
  type Settings,
  serviceName
} from "./Options.ts"

/**
 * Largest config file read.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_CONFIG_BYTES = 1024 * 1024

/**
 * The formats by file extension.
 *
 * @since 0.1.0
 * @category models
 */
export type ConfigFormat = "yaml" | "toml"

/**
 * The format of a config file by its extension, or `undefined` for an unknown one.
 *
 * @since 0.1.0
 * @category parsing
 */
export const formatOf = (file: string): ConfigFormat | undefined => {
  const extension = path.extname(file).toLowerCase()
  return extension === ".yaml" || extension === ".yml" ? "yaml" : extension === ".toml" ? "toml" : undefined
}

/**
 * Reads a config file's text: a regular file of at most {@link MAX_CONFIG_BYTES}. A failure is the
 * rest of a sentence after `--config FILE:`.
 *
 * @since 0.1.0
 * @category reading
 */
export const readConfigText = (file: string): Result.Result<string, string> => {
  try {
    const stat = statSync(file)
    if (!stat.isFile()) return Result.fail("not a regular file")
    if (stat.size > MAX_CONFIG_BYTES) return Result.fail(`larger than ${MAX_CONFIG_BYTES} bytes`)
    const text = readFileSync(file, "utf8")
    return text.length > MAX_CONFIG_BYTES ? Result.fail(`larger than ${MAX_CONFIG_BYTES} bytes`) : Result.succeed(text)
  } catch (cause) {
    const code = codeOf(cause)
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EACCES" || code === "EPERM" || (cause as { name?: string })?.name === "NotCapable"
          ? "permission denied"
          : rawMessage(cause)
    return Result.fail(`cannot read the file (${why})`)
  }
}

/**
 * Parses a config file's text by format into plain data. A failure says where (line and column) and
 * why, on one line, without quoting the file's text.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseConfigText = (format: ConfigFormat, text: string): Result.Result<unknown, string> => {
  try {
    if (format === "toml") return Result.succeed(parseToml(text))
    // logLevel "error": a syntax error throws; warnings are not printed on the console.
    const data: unknown = parseYaml(text, { logLevel: "error", prettyErrors: true, uniqueKeys: true })
    return Result.succeed(data ?? {})
  } catch (cause) {
    if (cause instanceof YAMLError) {
      const at = cause.linePos?.[0]
      const where = at === undefined ? "" : ` at line ${at.line}, column ${at.col}`
      return Result.fail(`invalid YAML${where}: ${firstSentence(cause.message)}`)
    }
    if (cause instanceof TomlError) {
      return Result.fail(`invalid TOML at line ${cause.line}, column ${cause.column}: ${firstSentence(cause.message)}`)
    }
    return Result.fail(`cannot parse the file (${rawMessage(cause)})`)
  }
}

/** The parser's reason without the excerpt of the file it appends (which could hold a secret). */
const firstSentence = (message: string): string =>
  message
    .split("\n")[0]!
    .replace(/^Invalid TOML document:\s*/, "")
    .replace(/\s*at line \d+, column \d+:?\s*$/, "")
    .replace(/[:.]\s*$/, "")
    .trim()

// ---------------------------------------------------------------------------------------------
// Schemas

/** Annotation read by the message hook: never show the input. */
const SECRET = "plait/cli/secret"

/** A schema over `encoded` that decodes with a value parser; its failure message is the parser's. */
const fromParser = (
  encoded: Schema.Top,
  expected: string,
  parse: (text: string) => Result.Result<unknown, string>,
  secret = false
) =>
  encoded.pipe(
    Schema.annotate({ expected, ...(secret ? { [SECRET]: true } : {}) }),
    Schema.decodeTo(
      Schema.Unknown,
      SchemaTransformation.transformEffect<unknown, unknown>({
        decode: (input: unknown, options) => {
          const result = parse(String(input))
          return Result.isSuccess(result)
            ? Effect.succeed(result.success)
            : Effect.fail(new SchemaIssue.InvalidValue({ message: result.failure }, input, options))
        },
        encode: (value: unknown) => Effect.succeed(value)
      })
    )
  )

const StringValue = Schema.String
const NumberOrString = Schema.Union([Schema.Finite, Schema.String])
const StringOrStrings = Schema.Union([
  Schema.String,
  Schema.Array(Schema.String.pipe(Schema.annotate({ expected: "a string HOST:PORT" })))
])

const listenAddress = fromParser(StringValue, "a string HOST:PORT", parseAddress(0))
const targetAddress = fromParser(StringValue, "a string HOST:PORT", parseAddress(1))

const proxyServices = Schema.Record(
  Schema.String,
  Schema.Union([listenAddress, Schema.Struct({ listen: listenAddress })]).pipe(
    Schema.annotate({ expected: "an address HOST:PORT or a table with listen" })
  )
)

const serverServices = Schema.Record(
  Schema.String,
  Schema.Union([
    targetAddress,
    Schema.Struct({
      target: targetAddress,
      "proxy-protocol": Schema.optionalKey(fromParser(StringValue, "v1 or v2", proxyProtocol))
    })
  ]).pipe(Schema.annotate({ expected: "an address HOST:PORT or a table with target and proxy-protocol" }))
)

/** The decoded map as a list, names checked (the name is the key). */
const toList = <I>(
  map: Schema.Top,
  build: (name: string, entry: unknown) => I
): Schema.Codec<ReadonlyArray<I>, unknown> =>
  map.pipe(
    Schema.annotate({ expected: "a map of service names" }),
    Schema.decodeTo(
      Schema.Unknown,
      SchemaTransformation.transformEffect<unknown, unknown>({
        decode: (entries: unknown, options) => {
          const items: Array<I> = []
          for (const [name, entry] of Object.entries(entries as Record<string, unknown>)) {
            const checked = serviceName(name)
            if (Result.isFailure(checked)) {
              return Effect.fail(
                new SchemaIssue.Pointer(
                  [name],
                  new SchemaIssue.InvalidValue({ message: checked.failure }, name, options)
                )
              )
            }
            items.push(build(name, entry))
          }
          return Effect.succeed(items)
        },
        encode: () => Effect.succeed({})
      })
    )
  ) as unknown as Schema.Codec<ReadonlyArray<I>, unknown>

const isAddress = (value: unknown): value is { host: string; port: number } =>
  typeof value === "object" && value !== null && "host" in value && "port" in value

const proxyServiceList = toList<ProxyServiceEntry>(proxyServices, (name, entry) => ({
  name,
  listen: isAddress(entry) ? entry : (entry as { listen: ProxyServiceEntry["listen"] }).listen
}))

const serverServiceList = toList<ServerServiceEntry>(serverServices, (name, entry) =>
  isAddress(entry)
    ? { name, target: entry, proxyProtocol: undefined }
    : {
        name,
        target: (entry as { target: ServerServiceEntry["target"] }).target,
        proxyProtocol: (entry as { "proxy-protocol"?: ServerServiceEntry["proxyProtocol"] })["proxy-protocol"]
      }
)

/** The schema of one setting's value in a file. */
const valueSchema = (setting: AnySetting): Schema.Top => {
  if (isList(setting)) return setting.file === "server-services" ? serverServiceList : proxyServiceList
  switch (setting.file ?? "string") {
    case "boolean":
      return Schema.Boolean.pipe(Schema.annotate({ expected: "true or false" }))
    case "number":
      return fromParser(NumberOrString, "a number or a string", setting.parse, setting.secret === true)
    case "strings":
      // A list is read as its items joined by commas (`String` of an array), the flag's own form.
      return fromParser(StringOrStrings, "a string or a list of strings", setting.parse, setting.secret === true)
    default:
      return fromParser(StringValue, "a string", setting.parse, setting.secret === true)
  }
}

/**
 * The schema of a whole config file for a command's table: a mapping of optional keys, unknown keys
 * refused. It decodes into values by config field.
 *
 * @since 0.1.0
 * @category schemas
 */
export const fileSchema = <C>(settings: Settings<C>): Schema.Codec<unknown, unknown> => {
  const fields: Record<string, Schema.Top> = {}
  for (const setting of Object.values(settings) as Array<AnySetting>) {
    if (!isList(setting) && setting.notInFile === true) continue
    fields[configKey(setting)] = Schema.optionalKey(valueSchema(setting))
  }
  return Schema.Struct(fields).pipe(Schema.annotate({ expected: "a mapping of settings" })) as unknown as Schema.Codec<
    unknown,
    unknown
  >
}

// ---------------------------------------------------------------------------------------------
// Messages

const describeInput = (input: unknown): string => {
  if (typeof input === "string") return JSON.stringify(input)
  if (typeof input === "number" || typeof input === "boolean" || typeof input === "bigint") return String(input)
  if (input === null) return "null"
  if (Array.isArray(input)) return "a list"
  if (input instanceof Date) return "a date"
  if (typeof input === "object") return "a table"
  return typeof input
}

const isSecret = (issue: SchemaIssue.Issue): boolean => {
  const ast = (issue as { ast?: { annotations?: Record<string, unknown> } }).ast
  return ast?.annotations?.[SECRET] === true
}

interface Problem {
  readonly path: ReadonlyArray<PropertyKey>
  readonly detail: string
}

/** Edit distance (insertions, deletions, substitutions) between two short strings. */
const distance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]!
}

/** The known key a mistyped one most likely meant (at most 2 edits away), if any. */
const nearest = (key: string, keys: ReadonlyArray<string>): string | undefined => {
  let best: { readonly key: string; readonly distance: number } | undefined
  for (const candidate of keys) {
    const d = distance(key, candidate)
    if (d <= 2 && (best === undefined || d < best.distance)) best = { key: candidate, distance: d }
  }
  return best?.key
}

/** The first problem of a decoding failure, as a key path and the rest of a sentence. */
const firstProblem = (
  issue: SchemaIssue.Issue,
  command: string,
  keys: ReadonlyArray<string>,
  path: ReadonlyArray<PropertyKey> = []
): Problem => {
  switch (issue._tag) {
    case "Pointer":
      return firstProblem(issue.issue, command, keys, [...path, ...issue.path])
    case "Composite":
    case "AnyOf":
      if (issue.issues.length > 0 && (issue._tag === "Composite" || issue.issues.length === 1)) {
        return firstProblem(issue.issues[0]!, command, keys, path)
      }
      return { path, detail: `must be ${expectedOf(issue)}${gotOf(issue)}` }
    case "Filter":
    case "Encoding":
      return firstProblem(issue.issue, command, keys, path)
    case "UnexpectedKey": {
      if (path.length > 1) return { path, detail: "is not a known key" }
      const near = nearest(String(path[0]), keys)
      return {
        path,
        detail: `is not a setting of plait ${command} (${near === undefined ? "see --help" : `did you mean ${near}?`})`
      }
    }
    case "InvalidValue": {
      const message = issue.annotations?.message
      return { path, detail: typeof message === "string" ? message : `is not valid${gotOf(issue)}` }
    }
    case "InvalidType":
      return { path, detail: `must be ${expectedOf(issue)}${gotOf(issue)}` }
    case "MissingKey":
      return { path, detail: "is missing" }
    default:
      return { path, detail: "is not valid" }
  }
}

const expectedOf = (issue: SchemaIssue.Issue): string => {
  const expected = (issue as { ast?: { annotations?: Record<string, unknown> } }).ast?.annotations?.expected
  return typeof expected === "string" ? expected : "something else"
}

const gotOf = (issue: SchemaIssue.Issue): string => {
  if (isSecret(issue)) return ""
  return SchemaIssue.hasInput(issue) ? ` (got ${describeInput(issue.input)})` : ""
}

/**
 * Decodes a config file's parsed data against a command's table: the values by config field, or the
 * first problem as an {@link OptionsError} naming the key and the file.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeConfigData = <C>(
  command: string,
  settings: Settings<C>,
  file: string,
  data: unknown
): FileValues | OptionsError => {
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    return new OptionsError({
      command,
      setting: "--config",
      file,
      detail: `--config ${file}: must hold a mapping of settings (got ${describeInput(data)})`
    })
  }
  const result = Schema.decodeResult(fileSchema(settings))(data, {
    onExcessProperty: "error",
    errors: "first",
    reportInput: true
  })
  if (Result.isFailure(result)) {
    const keys = (Object.values(settings) as Array<AnySetting>)
      .filter((setting) => isList(setting) || setting.notInFile !== true)
      .map(configKey)
    const problem = firstProblem(result.failure.issue, command, keys)
    const key = problem.path.map(String).join(".")
    const detail =
      key === "config"
        ? `config (in ${file}) can only be given as --config or PLAIT_CONFIG`
        : `${key} (in ${file}) ${problem.detail}`
    return new OptionsError({ command, setting: key, file, detail })
  }
  const byKey = result.success as Readonly<Record<string, unknown>>
  const values: Record<string, unknown> = {}
  for (const [field, setting] of Object.entries(settings) as Array<[string, AnySetting]>) {
    const key = configKey(setting)
    if (key in byKey) values[field] = byKey[key]
  }
  return { path: file, values }
}

/**
 * Reads, parses and validates a config file for a command; `read` is the file reader (the real one
 * by default, an in-memory one in tests).
 *
 * @since 0.1.0
 * @category decoding
 */
export const loadConfigFile = <C>(
  command: string,
  settings: Settings<C>,
  file: string,
  read: (file: string) => Result.Result<string, string> = readConfigText
): FileValues | OptionsError => {
  const refuse = (detail: string) =>
    new OptionsError({ command, setting: "--config", file, detail: `--config ${file}: ${detail}` })
  const format = formatOf(file)
  if (format === undefined) return refuse("must end in .yaml, .yml or .toml (the format is told by the extension)")
  const text = read(file)
  if (Result.isFailure(text)) return refuse(text.failure)
  const data = parseConfigText(format, text.success)
  if (Result.isFailure(data)) return refuse(data.failure)
  return decodeConfigData(command, settings, file, data.success)
}
