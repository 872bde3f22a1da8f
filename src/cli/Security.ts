/**
 * The security settings of the command line turned into transport options: the TLS files named by
 * `--tls-cert`, `--tls-key`, `--tls-ca` (read, checked as PEM, the pair checked to match) and the
 * token of `--token` / `PLAIT_TOKEN`. Every refusal names the flag to fix; the commands turn it into
 * the usage error (exit 2). The transports themselves (`transport/Tls.ts`, `transport/Auth.ts`) take
 * bytes and options only and never read files or the environment.
 *
 * @since 0.1.0
 */
import { readFile } from "node:fs/promises"
import process from "node:process"
import * as tls from "node:tls"
import { Data, Effect } from "effect"
import { codeOf, rawMessage } from "../internal/errorText.ts"
import { MIN_RECOMMENDED_TOKEN_LENGTH } from "../transport/Auth.ts"
import type { TlsConnectOptions, TlsListenOptions } from "../transport/Tls.ts"

/**
 * Why the TLS configuration cannot be used; `flag` names the flag to fix.
 *
 * @since 0.1.0
 * @category errors
 */
export class TlsConfigError extends Data.TaggedError("TlsConfigError")<{
  readonly flag: string
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * The server's TLS flags, one field per flag: `--tls-cert FILE --tls-key FILE [--tls-ca FILE]`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerTlsFlags {
  readonly tlsCert?: string | undefined
  readonly tlsKey?: string | undefined
  readonly tlsCa?: string | undefined
}

/**
 * The proxy's TLS flags, one field per flag: `--tls [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]
 * [--tls-servername NAME]`. Any `--tls-*` flag implies `--tls`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProxyTlsFlags {
  readonly tls?: boolean | undefined
  readonly tlsCa?: string | undefined
  readonly tlsCert?: string | undefined
  readonly tlsKey?: string | undefined
  readonly tlsServername?: string | undefined
}

/**
 * Files read by {@link loadTlsFiles}, as PEM bytes.
 *
 * @since 0.1.0
 * @category models
 */
export interface TlsFiles {
  readonly cert?: Uint8Array
  readonly key?: Uint8Array
  readonly ca?: Uint8Array
}

const PEM_LABELS = {
  cert: /-----BEGIN CERTIFICATE-----/,
  key: /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/,
  ca: /-----BEGIN CERTIFICATE-----/
} as const

const readPem = (flag: string, path: string, kind: keyof typeof PEM_LABELS) =>
  Effect.tryPromise({
    try: () => readFile(path),
    catch: (cause) => {
      const code = codeOf(cause)
      const why =
        code === "ENOENT"
          ? "no such file"
          : code === "EACCES" || code === "EPERM" || (cause as { name?: string })?.name === "NotCapable"
            ? "permission denied"
            : rawMessage(cause)
      return new TlsConfigError({ flag, message: `${flag} ${path}: cannot read the file (${why})`, cause })
    }
  }).pipe(
    Effect.flatMap((bytes) => {
      const text = new TextDecoder().decode(bytes)
      if (!PEM_LABELS[kind].test(text)) {
        const expected = kind === "key" ? "a PEM private key (-----BEGIN PRIVATE KEY-----)" : "PEM certificates"
        return Effect.fail(new TlsConfigError({ flag, message: `${flag} ${path}: expected ${expected}` }))
      }
      return Effect.succeed(new Uint8Array(bytes))
    })
  )

/**
 * Reads the PEM files named by the flags; a missing, unreadable or non-PEM file fails with a
 * {@link TlsConfigError} naming the flag. Fields left out are not read.
 *
 * @since 0.1.0
 * @category files
 */
export const loadTlsFiles = (files: {
  readonly cert?: string | undefined
  readonly key?: string | undefined
  readonly ca?: string | undefined
}): Effect.Effect<TlsFiles, TlsConfigError> =>
  Effect.gen(function* () {
    const cert = files.cert === undefined ? undefined : yield* readPem("--tls-cert", files.cert, "cert")
    const key = files.key === undefined ? undefined : yield* readPem("--tls-key", files.key, "key")
    const ca = files.ca === undefined ? undefined : yield* readPem("--tls-ca", files.ca, "ca")
    return {
      ...(cert === undefined ? {} : { cert }),
      ...(key === undefined ? {} : { key }),
      ...(ca === undefined ? {} : { ca })
    }
  })

const checkPair = (cert: string | undefined, key: string | undefined) => {
  if (cert !== undefined && key === undefined)
    return Effect.fail(new TlsConfigError({ flag: "--tls-key", message: "--tls-cert needs --tls-key" }))
  if (key !== undefined && cert === undefined)
    return Effect.fail(new TlsConfigError({ flag: "--tls-cert", message: "--tls-key needs --tls-cert" }))
  return Effect.void
}

/** Checks that a certificate and key belong together, where the runtime can tell at set-up time. */
const checkKeyMatches = (files: TlsFiles) => {
  if (files.cert === undefined || files.key === undefined || typeof tls.createSecureContext !== "function")
    return Effect.void
  return Effect.try({
    try: () => {
      tls.createSecureContext({ cert: Buffer.from(files.cert!), key: Buffer.from(files.key!) })
    },
    catch: (cause) =>
      new TlsConfigError({
        flag: "--tls-key",
        message: `--tls-cert/--tls-key cannot be used together: ${rawMessage(cause)}`,
        cause
      })
  })
}

/**
 * The server's TLS options from its flags: `undefined` without `--tls-cert`/`--tls-key` (plain
 * yamux), else the files read and checked. `--tls-ca` without a certificate is an error.
 *
 * @since 0.1.0
 * @category conversions
 */
export const serverOptionsFromFlags = (
  flags: ServerTlsFlags
): Effect.Effect<TlsListenOptions | undefined, TlsConfigError> =>
  Effect.gen(function* () {
    if (flags.tlsCert === undefined && flags.tlsKey === undefined) {
      if (flags.tlsCa !== undefined)
        return yield* new TlsConfigError({
          flag: "--tls-ca",
          message: "--tls-ca (require client certificates) needs --tls-cert and --tls-key"
        })
      return undefined
    }
    yield* checkPair(flags.tlsCert, flags.tlsKey)
    const files = yield* loadTlsFiles({ cert: flags.tlsCert, key: flags.tlsKey, ca: flags.tlsCa })
    yield* checkKeyMatches(files)
    const options: TlsListenOptions = {
      cert: files.cert!,
      key: files.key!,
      ...(files.ca === undefined ? {} : { ca: files.ca })
    }
    return options
  })

/**
 * The proxy's TLS options from its flags: `undefined` when TLS is off (no `--tls`, no `--tls-*`),
 * else the files read and checked; without `--tls-ca` the system trust store verifies the server.
 *
 * @since 0.1.0
 * @category conversions
 */
export const clientOptionsFromFlags = (
  flags: ProxyTlsFlags
): Effect.Effect<TlsConnectOptions | undefined, TlsConfigError> =>
  Effect.gen(function* () {
    const enabled =
      flags.tls === true ||
      flags.tlsCa !== undefined ||
      flags.tlsCert !== undefined ||
      flags.tlsKey !== undefined ||
      flags.tlsServername !== undefined
    if (!enabled) return undefined
    yield* checkPair(flags.tlsCert, flags.tlsKey)
    if (flags.tlsServername !== undefined && flags.tlsServername.trim() === "")
      return yield* new TlsConfigError({ flag: "--tls-servername", message: "--tls-servername must not be empty" })
    const files = yield* loadTlsFiles({ cert: flags.tlsCert, key: flags.tlsKey, ca: flags.tlsCa })
    yield* checkKeyMatches(files)
    const options: TlsConnectOptions = {
      ...(files.ca === undefined ? {} : { ca: files.ca }),
      ...(files.cert === undefined ? {} : { cert: files.cert }),
      ...(files.key === undefined ? {} : { key: files.key }),
      ...(flags.tlsServername === undefined ? {} : { servername: flags.tlsServername })
    }
    return options
  })

/**
 * Why a token setting cannot be used.
 *
 * @since 0.1.0
 * @category errors
 */
export class AuthConfigError extends Data.TaggedError("AuthConfigError")<{
  readonly flag: string
  readonly message: string
}> {}

/**
 * The token flag of both sides: `--token TOKEN`, else the `PLAIT_TOKEN` environment variable.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenFlags {
  readonly token?: string | undefined
}

/**
 * The token to use: `--token`, else `PLAIT_TOKEN`, else `undefined` (no authentication: plain
 * yamux). An empty token is refused; a short one is accepted with a warning.
 *
 * @since 0.1.0
 * @category conversions
 */
export const tokenFromFlags = (
  flags: TokenFlags,
  env: Readonly<Record<string, string | undefined>> = process.env
): Effect.Effect<string | undefined, AuthConfigError> =>
  Effect.gen(function* () {
    const fromFlag = flags.token !== undefined
    const token = flags.token ?? env.PLAIT_TOKEN
    if (token === undefined) return undefined
    const flag = fromFlag ? "--token" : "PLAIT_TOKEN"
    if (token.length === 0) return yield* new AuthConfigError({ flag, message: `${flag} must not be empty` })
    if (token.length < MIN_RECOMMENDED_TOKEN_LENGTH) {
      yield* Effect.logWarning(
        `${flag} is shorter than ${MIN_RECOMMENDED_TOKEN_LENGTH} characters: an observed handshake lets an attacker guess it offline; use a long random token`
      )
    }
    return token
  })
