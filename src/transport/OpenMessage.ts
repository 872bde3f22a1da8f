/**
 * The open message: the first bytes of every stream between two plait peers that agreed on it at
 * link setup (capability `stream-open`, see `Negotiation.ts`). It names the service the stream is
 * for and carries the client's address as the proxy saw it. Plain yamux peers never see one.
 *
 * Wire format, version 1 (all integers big-endian):
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0 | 1 | version, `0x01` |
 * | 1 | 2 | body length `L`, 2 ≤ L ≤ {@link MAX_BODY_LENGTH} |
 * | 3 | 1 | service name length `N`, 1 ≤ N ≤ {@link MAX_NAME_LENGTH} |
 * | 4 | N | service name: ASCII letters, digits, `.`, `_`, `-`, starting with a letter or digit |
 * | 4+N | 1 | address family: `0` none, `4` IPv4, `6` IPv6 |
 * | … | 12 or 36 | for 4 and 6: source address, source port, destination address, destination port |
 * | … | rest of L | extensions: `type` (1 byte), `length` (1 byte), value; unknown types are skipped |
 *
 * The source is the client's address; the destination the address it connected to (the unspecified
 * address and port 0 when unknown). Version 1 defines no extension; later ones add fields there
 * without a new version, and a reader skips what it does not know.
 *
 * Invariants:
 * - The codec is sans-IO and total: {@link decode} returns a message or an {@link OpenMessageError},
 *   never throws; {@link encode} refuses names that {@link validateServiceName} refuses.
 * - {@link read} is bounded in time (a deadline) and size (the message plus one read); the data
 *   that arrived behind the message is returned with it, never lost.
 *
 * @since 0.2.0
 */
import { Data, Effect } from "effect"
import * as Endpoint from "./Endpoint.ts"

/**
 * The open message version this module speaks.
 *
 * @since 0.2.0
 * @category constants
 */
export const VERSION = 1

/**
 * The longest service name, in bytes.
 *
 * @since 0.2.0
 * @category constants
 */
export const MAX_NAME_LENGTH = 63

/**
 * The largest body accepted (the fixed fields take at most 101 bytes; the rest is for extensions).
 *
 * @since 0.2.0
 * @category constants
 */
export const MAX_BODY_LENGTH = 512

/**
 * How long a server waits for a stream's open message by default: 10 s.
 *
 * @since 0.2.0
 * @category constants
 */
export const DEFAULT_TIMEOUT_MILLIS = 10_000

/**
 * The service of streams that name none: every stream of a plain yamux peer, `Client.open` without
 * a name, and the proxy's `--listen` / the server's `--target`.
 *
 * @since 0.2.0
 * @category constants
 */
export const DEFAULT_SERVICE = "default"

/**
 * What an open message says about its stream.
 *
 * @since 0.2.0
 * @category models
 */
export interface OpenMessage {
  readonly service: string
  /** The client's address as the proxy saw it, when known. */
  readonly source: Endpoint.Endpoint | undefined
  /** The address the client connected to, when known. */
  readonly destination: Endpoint.Endpoint | undefined
}

/**
 * The bytes are not a valid open message.
 *
 * @since 0.2.0
 * @category errors
 */
export class Malformed extends Data.TaggedError("Malformed")<{ readonly detail: string }> {
  override get message(): string {
    return `malformed open message: ${this.detail}`
  }
}

/**
 * The stream ended (FIN) before its open message was complete.
 *
 * @since 0.2.0
 * @category errors
 */
export class Truncated extends Data.TaggedError("Truncated")<{ readonly received: number }> {
  override get message(): string {
    return `the stream ended after ${this.received} bytes of its open message`
  }
}

/**
 * The open message did not complete in time.
 *
 * @since 0.2.0
 * @category errors
 */
export class Timeout extends Data.TaggedError("Timeout")<{ readonly millis: number; readonly received: number }> {
  override get message(): string {
    return `no complete open message within ${this.millis} ms (got ${this.received} bytes)`
  }
}

/**
 * The stream was reset (or its session died) before the message was read: not the peer's fault.
 *
 * @since 0.2.0
 * @category errors
 */
export class Aborted extends Data.TaggedError("Aborted")<{ readonly cause: unknown }> {
  override get message(): string {
    return `the stream was reset before its open message: ${String((this.cause as { message?: string })?.message ?? this.cause)}`
  }
}

/**
 * Why a stream's open message could not be had.
 *
 * @since 0.2.0
 * @category errors
 */
export type OpenMessageErrorReason = Malformed | Truncated | Timeout | Aborted

/**
 * The error of the open message domain. Match on `reason._tag`; {@link OpenMessageError.isViolation}
 * says whether the peer broke the agreement (the link then ends with GO_AWAY(1)).
 *
 * @since 0.2.0
 * @category errors
 */
export class OpenMessageError extends Data.TaggedError("OpenMessageError")<{
  readonly reason: OpenMessageErrorReason
}> {
  /** A malformed, oversized, truncated or late message: a protocol violation by the peer. */
  get isViolation(): boolean {
    return this.reason._tag !== "Aborted"
  }
  override get message(): string {
    return this.reason.message
  }
}

const malformed = (detail: string) => new OpenMessageError({ reason: new Malformed({ detail }) })

// One of each per module: an open message is encoded (proxy) and decoded (server) per stream.
const utf8Encoder = new TextEncoder()

/** Encoded names already validated; bounded (a proxy has a handful of services). */
const encodedNames = new Map<string, Uint8Array>()

const nameBytes = (service: string): Uint8Array => {
  const cached = encodedNames.get(service)
  if (cached !== undefined) return cached
  const invalid = validateServiceName(service)
  if (invalid !== undefined) throw new Error(invalid)
  const bytes = utf8Encoder.encode(service)
  if (encodedNames.size < 1024) encodedNames.set(service, bytes)
  return bytes
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/**
 * Why `name` cannot be a service name, or `undefined` when it can: 1 to 63 ASCII letters, digits,
 * `.`, `_` or `-`, starting with a letter or digit.
 *
 * @since 0.2.0
 * @category validation
 */
export const validateServiceName = (name: string): string | undefined => {
  if (name.length === 0) return "a service name cannot be empty"
  if (name.length > MAX_NAME_LENGTH)
    return `a service name has at most ${MAX_NAME_LENGTH} characters (got ${name.length})`
  if (!NAME.test(name)) {
    return `a service name is letters, digits, '.', '_' and '-', starting with a letter or digit (got ${JSON.stringify(name)})`
  }
  return undefined
}

/**
 * Whether `name` is a valid service name.
 *
 * @since 0.2.0
 * @category validation
 */
export const isServiceName = (name: string): boolean => validateServiceName(name) === undefined

/**
 * Encodes a message. Throws on an invalid service name: callers validate names where they come in
 * (options, flags, config), so reaching this with a bad one is a bug.
 *
 * @since 0.2.0
 * @category encoding
 */
export const encode = (message: OpenMessage): Uint8Array => {
  const name = nameBytes(message.service)
  const source = message.source
  const size = source === undefined ? 0 : source.family === "IPv4" ? 4 : 16
  const bodyLength = 1 + name.length + 1 + (source === undefined ? 0 : 2 * size + 4)
  // Written by hand, byte by byte: this runs once per stream at the proxy.
  const out = new Uint8Array(3 + bodyLength)
  out[0] = VERSION
  out[1] = bodyLength >>> 8
  out[2] = bodyLength & 0xff
  out[3] = name.length
  out.set(name, 4)
  let at = 4 + name.length
  if (source === undefined) {
    out[at] = 0
    return out
  }
  out[at++] = source.family === "IPv4" ? 4 : 6
  const destination =
    message.destination?.family === source.family ? message.destination : Endpoint.unspecified(source.family)
  at += Endpoint.writeAddress(source, out, at)
  out[at++] = source.port >>> 8
  out[at++] = source.port & 0xff
  at += Endpoint.writeAddress(destination, out, at)
  out[at++] = destination.port >>> 8
  out[at] = destination.port & 0xff
  return out
}

/**
 * Checks the 3-byte prefix (version and body length): the body length, or an error.
 *
 * @since 0.2.0
 * @category decoding
 */
export const decodePrefix = (prefix: Uint8Array): number | OpenMessageError => {
  if (prefix[0] !== VERSION) return malformed(`version ${prefix[0]}, this side speaks ${VERSION}`)
  const length = (prefix[1]! << 8) | prefix[2]!
  if (length < 2) return malformed(`body of ${length} bytes is too short`)
  if (length > MAX_BODY_LENGTH) return malformed(`body of ${length} bytes exceeds ${MAX_BODY_LENGTH}`)
  return length
}

const isUnspecified = (endpoint: Endpoint.Endpoint) =>
  endpoint.port === 0 && (endpoint.address === "0.0.0.0" || endpoint.address === "::")

/**
 * Decodes a body (the bytes after the prefix).
 *
 * @since 0.2.0
 * @category decoding
 */
export const decodeBody = (body: Uint8Array): OpenMessage | OpenMessageError => {
  const nameLength = body[0]!
  if (nameLength === 0 || nameLength > MAX_NAME_LENGTH) return malformed(`service name of ${nameLength} bytes`)
  if (body.length < 2 + nameLength) return malformed("body ends inside the service name")
  // ASCII only, so a string of char codes (a TextDecoder call costs more than the name).
  let service = ""
  for (let i = 1; i <= nameLength; i++) {
    const b = body[i]!
    if (b > 0x7e) return malformed("service name is not ASCII")
    service += String.fromCharCode(b)
  }
  const invalid = validateServiceName(service)
  if (invalid !== undefined) return malformed(invalid)
  let at = 1 + nameLength
  const family = body[at++]!
  let source: Endpoint.Endpoint | undefined
  let destination: Endpoint.Endpoint | undefined
  if (family === 4 || family === 6) {
    const size = family === 4 ? 4 : 16
    if (body.length < at + 2 * size + 4) return malformed("body ends inside the addresses")
    const port = (i: number) => (body[i]! << 8) | body[i + 1]!
    source = Endpoint.fromBytes(body.subarray(at, at + size), port(at + size))
    const dst = Endpoint.fromBytes(body.subarray(at + size + 2, at + 2 * size + 2), port(at + 2 * size + 2))
    destination = dst === undefined || isUnspecified(dst) ? undefined : dst
    at += 2 * size + 4
  } else if (family !== 0) {
    return malformed(`unknown address family ${family}`)
  }
  // Extensions: bounded by the body; each must fit entirely.
  while (at < body.length) {
    if (at + 2 > body.length) return malformed("body ends inside an extension header")
    const length = body[at + 1]!
    if (at + 2 + length > body.length) return malformed("body ends inside an extension")
    at += 2 + length
  }
  return { service, source, destination }
}

/**
 * Decodes a whole message (prefix and body, nothing more).
 *
 * @since 0.2.0
 * @category decoding
 */
export const decode = (bytes: Uint8Array): OpenMessage | OpenMessageError => {
  if (bytes.length < 3) return malformed(`${bytes.length} bytes, shorter than the prefix`)
  const length = decodePrefix(bytes)
  if (typeof length !== "number") return length
  if (bytes.length !== 3 + length) return malformed(`${bytes.length - 3} body bytes, the prefix says ${length}`)
  return decodeBody(bytes.subarray(3))
}

/**
 * An open message read off a stream, and the bytes that arrived behind it in the same read (the
 * start of the client's data, to be handed to the stream's handler first).
 *
 * @since 0.2.0
 * @category models
 */
export interface Received {
  readonly message: OpenMessage
  readonly rest: Uint8Array
}

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  if (a.length === 0) return b
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

/**
 * Options of {@link read}.
 *
 * @since 0.2.0
 * @category models
 */
export interface ReadOptions {
  /** Bound on the whole message (default {@link DEFAULT_TIMEOUT_MILLIS}); 0: none here. */
  readonly timeoutMillis?: number
  /**
   * A deadline kept by the caller instead (a server's shared sweeper, no timer per stream): when
   * it expires the caller resets the stream, and the failed read is reported as a {@link Timeout}.
   */
  readonly deadline?: { readonly millis: number; readonly expired: () => boolean }
}

/**
 * Reads one open message off the start of `stream` within its deadline. Holds at most the message
 * plus one read; the bytes of that read behind the message come back as `rest`.
 *
 * @since 0.2.0
 * @category reading
 */
export const read = <E>(
  stream: { readonly read: Effect.Effect<Uint8Array | null, E> },
  options: ReadOptions = {}
): Effect.Effect<Received, OpenMessageError> =>
  Effect.suspend(() => {
    const timeoutMillis = options.timeoutMillis ?? DEFAULT_TIMEOUT_MILLIS
    const deadline = options.deadline
    let buffered: Uint8Array = new Uint8Array(0)
    const loop = (): Effect.Effect<Received, OpenMessageError> => {
      if (buffered.length >= 3) {
        const length = decodePrefix(buffered)
        if (typeof length !== "number") return Effect.fail(length)
        if (buffered.length >= 3 + length) {
          const message = decodeBody(buffered.subarray(3, 3 + length))
          if (message instanceof OpenMessageError) return Effect.fail(message)
          return Effect.succeed({ message, rest: buffered.subarray(3 + length) })
        }
      }
      // Bounded: each pass adds at least one byte, and the prefix caps the total at 3 + 512.
      return stream.read.pipe(
        Effect.mapError(
          (cause) =>
            new OpenMessageError({
              reason:
                deadline?.expired() === true
                  ? new Timeout({ millis: deadline.millis, received: buffered.length })
                  : new Aborted({ cause })
            })
        ),
        Effect.flatMap((chunk) => {
          if (chunk === null) {
            return Effect.fail(new OpenMessageError({ reason: new Truncated({ received: buffered.length }) }))
          }
          buffered = concat(buffered, chunk)
          return loop()
        })
      )
    }
    if (timeoutMillis === 0) return loop()
    return loop().pipe(
      Effect.timeoutOrElse({
        duration: timeoutMillis,
        orElse: () =>
          Effect.fail(
            new OpenMessageError({ reason: new Timeout({ millis: timeoutMillis, received: buffered.length }) })
          )
      })
    )
  })
