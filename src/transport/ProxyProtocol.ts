/**
 * The PROXY protocol, versions 1 (text) and 2 (binary), as specified by haproxy
 * (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt): the header a proxy puts in front
 * of a relayed TCP connection so that the next hop learns the original client's address.
 *
 * plait uses it both ways: the server prepends a header to each backend connection of a service
 * configured with `proxy-protocol=v1|v2`, and the proxy with `--accept-proxy-protocol` reads one
 * from each client (a load balancer in front of it), so the address survives that hop too.
 *
 * The codec is sans-IO: {@link encodeV1}/{@link encodeV2} build headers, {@link parse} decodes the
 * bytes received so far. {@link readHeader} runs it over a transport.
 *
 * Invariants:
 * - A header is bounded: a v1 line is at most {@link MAX_V1_LENGTH} bytes (the spec's 107), a v2
 *   header at most {@link MAX_V2_LENGTH}; anything longer is malformed, so a peer cannot make the
 *   reader buffer without limit.
 * - Garbage is refused as soon as a byte of it is seen: the v1 prefix `PROXY ` and the v2
 *   signature are checked byte by byte on arrival.
 * - {@link parse} never consumes a byte beyond the header: what follows is the client's data and is
 *   handed back to the caller untouched.
 * - Only TCP over IPv4/IPv6 yields addresses. `UNKNOWN` (v1), `LOCAL` and `UNSPEC`, UNIX and UDP
 *   (v2) yield a header without addresses: the receiver then uses the connection's own endpoints,
 *   as the spec requires.
 *
 * @since 0.2.0
 */
import { Data, Effect } from "effect"
import * as Endpoint from "./Endpoint.ts"
import type { Transport } from "./Transport.ts"

/**
 * The v2 signature: `\r\n\r\n\0\r\nQUIT\n`.
 *
 * @since 0.2.0
 * @category constants
 */
export const V2_SIGNATURE: Uint8Array = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a
)

/**
 * The v1 prefix, `PROXY ` (with its space).
 *
 * @since 0.2.0
 * @category constants
 */
export const V1_PREFIX: Uint8Array = new TextEncoder().encode("PROXY ")

/**
 * The longest v1 line, CRLF included (the spec's bound).
 *
 * @since 0.2.0
 * @category constants
 */
export const MAX_V1_LENGTH = 107

/**
 * The longest v2 header accepted, TLVs included (the 16-byte fixed part plus 4080 bytes).
 *
 * @since 0.2.0
 * @category constants
 */
export const MAX_V2_LENGTH = 4096

/**
 * How long {@link readHeader} waits for a complete header by default: 5 s.
 *
 * @since 0.2.0
 * @category constants
 */
export const DEFAULT_TIMEOUT_MILLIS = 5_000

/**
 * A PROXY protocol version plait can send.
 *
 * @since 0.2.0
 * @category models
 */
export type Version = "v1" | "v2"

/**
 * A decoded header.
 *
 * @since 0.2.0
 * @category models
 */
export interface ProxyHeader {
  readonly version: 1 | 2
  /**
   * `proxy`: a relayed connection; `local`: the sender's own connection (a health check), whose
   * real endpoints are to be used.
   */
  readonly command: "proxy" | "local"
  /** The original client; `undefined` when the header carries none (UNKNOWN, LOCAL, UNSPEC, UNIX). */
  readonly source: Endpoint.Endpoint | undefined
  /** The address the client connected to, when carried. */
  readonly destination: Endpoint.Endpoint | undefined
}

/**
 * The bytes are not a PROXY protocol header.
 *
 * @since 0.2.0
 * @category errors
 */
export class Malformed extends Data.TaggedError("Malformed")<{ readonly detail: string }> {
  override get message(): string {
    return `malformed PROXY protocol header: ${this.detail}`
  }
}

/**
 * No complete header arrived in time.
 *
 * @since 0.2.0
 * @category errors
 */
export class Timeout extends Data.TaggedError("Timeout")<{ readonly millis: number; readonly received: number }> {
  override get message(): string {
    return `no complete PROXY protocol header within ${this.millis} ms (got ${this.received} bytes)`
  }
}

/**
 * The connection ended or failed before the header was complete.
 *
 * @since 0.2.0
 * @category errors
 */
export class Closed extends Data.TaggedError("Closed")<{ readonly received: number; readonly detail: string }> {
  override get message(): string {
    return `the connection ended before a complete PROXY protocol header (after ${this.received} bytes): ${this.detail}`
  }
}

/**
 * The connection came from an address that may not send a header (not among the trusted sources,
 * the load balancers): nothing of it was read.
 *
 * @since 0.2.0
 * @category errors
 */
export class Untrusted extends Data.TaggedError("Untrusted")<{ readonly source: string }> {
  override get message(): string {
    return `${this.source} is not a trusted source of PROXY protocol headers (see --proxy-protocol-from)`
  }
}

/**
 * Why a header could not be read, or was not accepted.
 *
 * @since 0.2.0
 * @category errors
 */
export type ProxyProtocolErrorReason = Malformed | Timeout | Closed | Untrusted

/**
 * The error of the PROXY protocol domain. Match on `reason._tag`.
 *
 * @since 0.2.0
 * @category errors
 */
export class ProxyProtocolError extends Data.TaggedError("ProxyProtocolError")<{
  readonly reason: ProxyProtocolErrorReason
}> {
  override get message(): string {
    return this.reason.message
  }
}

const malformed = (detail: string) => new ProxyProtocolError({ reason: new Malformed({ detail }) })

// -----------------------------------------------------------------------------------------------
// Encoding

const ascii = new TextEncoder()
const latin = new TextDecoder()

/** Source and destination of one family: a destination of another family (or none) becomes unspecified. */
const pair = (source: Endpoint.Endpoint, destination: Endpoint.Endpoint | undefined) => ({
  source,
  destination:
    destination !== undefined && destination.family === source.family
      ? destination
      : Endpoint.unspecified(source.family)
})

/**
 * A v1 header: `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n`, or `PROXY UNKNOWN\r\n` without a
 * source. A destination of another family than the source (or none) is sent as the unspecified
 * address, port 0.
 *
 * @since 0.2.0
 * @category encoding
 */
export const encodeV1 = (source: Endpoint.Endpoint | undefined, destination?: Endpoint.Endpoint): Uint8Array => {
  if (source === undefined) return ascii.encode("PROXY UNKNOWN\r\n")
  const p = pair(source, destination)
  const proto = source.family === "IPv4" ? "TCP4" : "TCP6"
  return ascii.encode(
    `PROXY ${proto} ${p.source.address} ${p.destination.address} ${p.source.port} ${p.destination.port}\r\n`
  )
}

/**
 * A v2 header: command PROXY over TCP with both endpoints, or without a source command LOCAL with
 * family UNSPEC (what haproxy sends when it knows no addresses). No TLVs.
 *
 * @since 0.2.0
 * @category encoding
 */
export const encodeV2 = (source: Endpoint.Endpoint | undefined, destination?: Endpoint.Endpoint): Uint8Array => {
  if (source === undefined) {
    const out = new Uint8Array(16)
    out.set(V2_SIGNATURE, 0)
    out[12] = 0x20
    return out
  }
  const p = pair(source, destination)
  const v4 = source.family === "IPv4"
  const addressLength = v4 ? 12 : 36
  const out = new Uint8Array(16 + addressLength)
  const view = new DataView(out.buffer)
  out.set(V2_SIGNATURE, 0)
  out[12] = 0x21
  out[13] = v4 ? 0x11 : 0x21
  view.setUint16(14, addressLength)
  const size = v4 ? 4 : 16
  out.set(Endpoint.addressBytes(p.source), 16)
  out.set(Endpoint.addressBytes(p.destination), 16 + size)
  view.setUint16(16 + 2 * size, p.source.port)
  view.setUint16(18 + 2 * size, p.destination.port)
  return out
}

/**
 * A header of `version`.
 *
 * @since 0.2.0
 * @category encoding
 */
export const encode = (
  version: Version,
  source: Endpoint.Endpoint | undefined,
  destination?: Endpoint.Endpoint
): Uint8Array => (version === "v1" ? encodeV1(source, destination) : encodeV2(source, destination))

// -----------------------------------------------------------------------------------------------
// Decoding

/**
 * What {@link parse} made of the bytes so far.
 *
 * @since 0.2.0
 * @category decoding
 */
export type ParseResult =
  | { readonly _tag: "Incomplete" }
  | { readonly _tag: "Complete"; readonly header: ProxyHeader; readonly length: number }
  | ProxyProtocolError

const INCOMPLETE: ParseResult = { _tag: "Incomplete" }

/** Whether `bytes` (possibly shorter) agrees with `prefix` on every byte they share. */
const agrees = (bytes: Uint8Array, prefix: Uint8Array): boolean => {
  const n = Math.min(bytes.length, prefix.length)
  for (let i = 0; i < n; i++) if (bytes[i] !== prefix[i]) return false
  return true
}

const PORT = /^(0|[1-9]\d{0,4})$/

const parseV1 = (bytes: Uint8Array): ParseResult => {
  const limit = Math.min(bytes.length, MAX_V1_LENGTH)
  let end = -1
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const b = bytes[i]!
    if (b === 0x0d) {
      if (i + 1 >= bytes.length) return INCOMPLETE
      if (bytes[i + 1] !== 0x0a) return malformed("v1: CR not followed by LF")
      end = i
      break
    }
    // The line is printable ASCII; a NUL or a bare LF in it is not this protocol.
    if (b < 0x20 || b > 0x7e) return malformed(`v1: byte 0x${b.toString(16)} in the header line`)
  }
  if (end < 0)
    return bytes.length >= MAX_V1_LENGTH ? malformed(`v1: no CRLF within ${MAX_V1_LENGTH} bytes`) : INCOMPLETE
  const line = latin.decode(bytes.subarray(V1_PREFIX.length, end))
  const length = end + 2
  const fields = line.split(" ")
  if (fields[0] === "UNKNOWN") {
    // The spec: whatever follows UNKNOWN up to CRLF is to be ignored.
    return {
      _tag: "Complete",
      header: { version: 1, command: "proxy", source: undefined, destination: undefined },
      length
    }
  }
  if (fields[0] !== "TCP4" && fields[0] !== "TCP6") return malformed(`v1: unknown protocol "${fields[0]}"`)
  if (fields.length !== 5) return malformed(`v1: expected 5 fields after PROXY, got ${fields.length}`)
  const family = fields[0] === "TCP4" ? "IPv4" : "IPv6"
  const [, src, dst, sport, dport] = fields as [string, string, string, string, string]
  if (!PORT.test(sport) || !PORT.test(dport)) return malformed("v1: a port is not a number in 0..65535")
  const source = Endpoint.make(src, Number(sport))
  const destination = Endpoint.make(dst, Number(dport))
  if (source === undefined || destination === undefined) return malformed("v1: an address or port is invalid")
  // TCP4 must carry dotted quads and TCP6 IPv6 text (a mapped IPv6 address normalises to IPv4).
  const textFamily = (text: string) => (text.includes(":") ? "IPv6" : "IPv4")
  if (textFamily(src) !== family || textFamily(dst) !== family) {
    return malformed(`v1: ${fields[0]} with an address of another family`)
  }
  return { _tag: "Complete", header: { version: 1, command: "proxy", source, destination }, length }
}

const parseV2 = (bytes: Uint8Array): ParseResult => {
  if (bytes.length < 16) {
    if (bytes.length > 12 && bytes[12]! >> 4 !== 2) return malformed(`v2: version ${bytes[12]! >> 4}`)
    return INCOMPLETE
  }
  const versionCommand = bytes[12]!
  if (versionCommand >> 4 !== 2) return malformed(`v2: version ${versionCommand >> 4}`)
  const command = versionCommand & 0x0f
  if (command > 1) return malformed(`v2: unknown command ${command}`)
  const family = bytes[13]! >> 4
  const protocol = bytes[13]! & 0x0f
  if (family > 3 || protocol > 2) return malformed(`v2: unknown address family/protocol 0x${bytes[13]!.toString(16)}`)
  const bodyLength = (bytes[14]! << 8) | bytes[15]!
  const length = 16 + bodyLength
  if (length > MAX_V2_LENGTH) return malformed(`v2: header of ${length} bytes exceeds ${MAX_V2_LENGTH}`)
  const needed = family === 1 ? 12 : family === 2 ? 36 : family === 3 ? 216 : 0
  if (bodyLength < needed) return malformed(`v2: ${bodyLength} bytes of addresses, family needs ${needed}`)
  if (bytes.length < length) return INCOMPLETE
  const none = {
    version: 2,
    command: command === 0 ? "local" : "proxy",
    source: undefined,
    destination: undefined
  } as const
  // LOCAL: use the connection's endpoints; UNSPEC, UNIX and datagrams carry nothing plait can use.
  if (command === 0 || protocol !== 1 || (family !== 1 && family !== 2))
    return { _tag: "Complete", header: none, length }
  const size = family === 1 ? 4 : 16
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const source = Endpoint.fromBytes(bytes.slice(16, 16 + size), view.getUint16(16 + 2 * size))
  const destination = Endpoint.fromBytes(bytes.slice(16 + size, 16 + 2 * size), view.getUint16(18 + 2 * size))
  return { _tag: "Complete", header: { version: 2, command: "proxy", source, destination }, length }
}

/**
 * Decodes a header from the start of `bytes` (all bytes received so far). `Incomplete` asks for
 * more; `Complete` gives the header and its length (the bytes behind it are the client's);
 * anything that cannot become a header is a {@link Malformed} error at once.
 *
 * @since 0.2.0
 * @category decoding
 */
export const parse = (bytes: Uint8Array): ParseResult => {
  if (bytes.length === 0) return INCOMPLETE
  if (bytes[0] === V1_PREFIX[0]) {
    if (!agrees(bytes, V1_PREFIX)) return malformed("starts like v1 but is not `PROXY `")
    return bytes.length <= V1_PREFIX.length ? INCOMPLETE : parseV1(bytes)
  }
  if (bytes[0] === V2_SIGNATURE[0]) {
    if (!agrees(bytes, V2_SIGNATURE)) return malformed("starts like v2 but has no v2 signature")
    return parseV2(bytes)
  }
  return malformed(`no PROXY protocol header (first byte 0x${bytes[0]!.toString(16)})`)
}

// -----------------------------------------------------------------------------------------------
// Reading from a transport

/**
 * A header read off a connection, and the bytes that arrived behind it.
 *
 * @since 0.2.0
 * @category models
 */
export interface Received {
  readonly header: ProxyHeader
  /** Bytes received after the header: the start of the client's data. */
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
 * Reads one header from the start of `transport`, within `timeoutMillis` (default
 * {@link DEFAULT_TIMEOUT_MILLIS}). Holds at most one header plus one transport read. On failure the
 * transport is left to the caller (who closes that client).
 *
 * @since 0.2.0
 * @category reading
 */
export const readHeader = (
  transport: Pick<Transport, "read">,
  options: { readonly timeoutMillis?: number } = {}
): Effect.Effect<Received, ProxyProtocolError> =>
  Effect.suspend(() => {
    const timeoutMillis = options.timeoutMillis ?? DEFAULT_TIMEOUT_MILLIS
    let buffered: Uint8Array = new Uint8Array(0)
    const loop: Effect.Effect<Received, ProxyProtocolError> = Effect.suspend(function step(): Effect.Effect<
      Received,
      ProxyProtocolError
    > {
      const result = parse(buffered)
      if (result._tag === "ProxyProtocolError") return Effect.fail(result)
      if (result._tag === "Complete") {
        return Effect.succeed({ header: result.header, rest: buffered.subarray(result.length) })
      }
      // Bounded: every pass adds at least one byte, and parse refuses more than a header's worth.
      return transport.read.pipe(
        Effect.mapError(
          (error) =>
            new ProxyProtocolError({ reason: new Closed({ received: buffered.length, detail: error.message }) })
        ),
        Effect.flatMap((chunk) => {
          if (chunk === null) {
            return Effect.fail(
              new ProxyProtocolError({ reason: new Closed({ received: buffered.length, detail: "end of input" }) })
            )
          }
          buffered = concat(buffered, chunk)
          return step()
        })
      )
    })
    return loop.pipe(
      Effect.timeoutOrElse({
        duration: timeoutMillis,
        orElse: () =>
          Effect.fail(
            new ProxyProtocolError({ reason: new Timeout({ millis: timeoutMillis, received: buffered.length }) })
          )
      })
    )
  })
