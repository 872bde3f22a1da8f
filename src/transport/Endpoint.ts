/**
 * An IP endpoint (address family, address, port) as plait carries it: in a stream's open message,
 * in PROXY protocol headers, in logs. Pure functions, no I/O.
 *
 * Invariants:
 * - An {@link Endpoint} always holds a valid address of its family and a port in 0..65535; every
 *   constructor here validates, and returns `undefined` (never throws) for anything else.
 * - IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack listener reports for an IPv4
 *   client) are normalised to IPv4, so a backend sees the family the client really used.
 * - IPv6 text is canonical (RFC 5952: lower case, the longest run of zero groups compressed), so
 *   the same address always prints the same way on every runtime.
 *
 * @since 0.2.0
 */
import * as net from "node:net"

/**
 * An IP endpoint.
 *
 * @since 0.2.0
 * @category models
 */
export interface Endpoint {
  readonly family: "IPv4" | "IPv6"
  /** Dotted quad, or canonical IPv6 text without brackets. */
  readonly address: string
  readonly port: number
}

const isPort = (port: number): boolean => Number.isInteger(port) && port >= 0 && port <= 65535

/**
 * An endpoint from an address and a port, or `undefined` when either is invalid.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (address: string, port: number): Endpoint | undefined => {
  if (!isPort(port)) return undefined
  // The common case, a dotted quad as sockets print it, without the generic IPv6 path.
  if (ipv4Octets(address) !== undefined) return { family: "IPv4", address, port }
  const unbracketed = address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address
  // A zone (`fe80::1%eth0`) names a local interface: meaningless to the far side, dropped.
  const bare = unbracketed.split("%")[0]!
  if (!net.isIPv6(bare)) return undefined
  const bytes = ipv6Bytes(bare)
  if (bytes === undefined) return undefined
  return fromBytes(bytes, port)
}

/**
 * Parses `host:port` as transports print it (`127.0.0.1:5000`, `[::1]:5000`); `undefined` for
 * anything that is not an IP endpoint (`unknown`, `memory:a`, a host name).
 *
 * @since 0.2.0
 * @category constructors
 */
export const parse = (text: string): Endpoint | undefined => {
  const colon = text.lastIndexOf(":")
  if (colon <= 0) return undefined
  const portText = text.slice(colon + 1)
  if (!/^\d{1,5}$/.test(portText)) return undefined
  return make(text.slice(0, colon), Number(portText))
}

/**
 * `host:port`, IPv6 in brackets.
 *
 * @since 0.2.0
 * @category formatting
 */
export const format = (endpoint: Endpoint): string =>
  endpoint.family === "IPv6" ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`

/**
 * The address as network-order bytes: 4 for IPv4, 16 for IPv6.
 *
 * @since 0.2.0
 * @category encoding
 */
export const addressBytes = (endpoint: Endpoint): Uint8Array =>
  endpoint.family === "IPv4" ? Uint8Array.from(ipv4Octets(endpoint.address)!) : ipv6Bytes(endpoint.address)!

/**
 * An endpoint from network-order address bytes (4 or 16) and a port; IPv4-mapped IPv6 becomes
 * IPv4. `undefined` for any other length or an invalid port.
 *
 * @since 0.2.0
 * @category encoding
 */
export const fromBytes = (bytes: Uint8Array, port: number): Endpoint | undefined => {
  if (!isPort(port)) return undefined
  if (bytes.length === 4) return { family: "IPv4", address: quad(bytes, 0), port }
  if (bytes.length !== 16) return undefined
  if (isMapped(bytes)) return { family: "IPv4", address: quad(bytes, 12), port }
  return { family: "IPv6", address: formatIPv6(bytes), port }
}

/**
 * Writes the address's network-order bytes (4 or 16) into `out` at `at`; returns how many.
 *
 * @since 0.2.0
 * @category encoding
 */
export const writeAddress = (endpoint: Endpoint, out: Uint8Array, at: number): number => {
  if (endpoint.family === "IPv4") {
    const octets = ipv4Octets(endpoint.address)!
    out[at] = octets[0]
    out[at + 1] = octets[1]
    out[at + 2] = octets[2]
    out[at + 3] = octets[3]
    return 4
  }
  out.set(ipv6Bytes(endpoint.address)!, at)
  return 16
}

const quad = (bytes: Uint8Array, at: number): string =>
  `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`

/**
 * The unspecified address of a family, port 0: what a header carries for an end nobody knows.
 *
 * @since 0.2.0
 * @category constructors
 */
export const unspecified = (family: Endpoint["family"]): Endpoint =>
  family === "IPv4" ? { family, address: "0.0.0.0", port: 0 } : { family, address: "::", port: 0 }

// -----------------------------------------------------------------------------------------------

/**
 * The four octets of a dotted quad in canonical form (decimal 0-255, no leading zeros, as sockets
 * print it), or `undefined`. One pass over the characters: this runs for every proxied client.
 */
const ipv4Octets = (text: string): [number, number, number, number] | undefined => {
  const out: [number, number, number, number] = [0, 0, 0, 0]
  let part = 0
  let digits = 0
  let value = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x2e) {
      if (digits === 0 || part === 3) return undefined
      out[part++] = value
      digits = 0
      value = 0
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && value === 0) return undefined // a leading zero
      value = value * 10 + (c - 0x30)
      if (++digits > 3 || value > 255) return undefined
    } else {
      return undefined
    }
  }
  if (digits === 0 || part !== 3) return undefined
  out[3] = value
  return out
}

const isMapped = (bytes: Uint8Array): boolean => {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false
  return bytes[10] === 0xff && bytes[11] === 0xff
}

/** 16 bytes of a (validated) IPv6 text, embedded IPv4 tail included. */
const ipv6Bytes = (text: string): Uint8Array | undefined => {
  let groups: Array<number>
  const tail: Array<number> = []
  let body = text
  const lastColon = body.lastIndexOf(":")
  if (body.includes(".", lastColon)) {
    const octets = ipv4Octets(body.slice(lastColon + 1))
    if (octets === undefined) return undefined
    const [a, b, c, d] = octets
    tail.push((a << 8) | b, (c << 8) | d)
    // `::1.2.3.4` keeps its `::`; `::ffff:1.2.3.4` drops the colon before the quad.
    const prefix = body.slice(0, lastColon + 1)
    body = prefix.endsWith("::") ? prefix : prefix.slice(0, -1)
  }
  const halves = body.split("::")
  if (halves.length > 2) return undefined
  const parseGroups = (part: string) => (part === "" ? [] : part.split(":").map((g) => Number.parseInt(g, 16)))
  const want = 8 - tail.length
  if (halves.length === 2) {
    const head = parseGroups(halves[0]!)
    const rest = parseGroups(halves[1]!)
    const zeros = want - head.length - rest.length
    if (zeros < 0) return undefined
    groups = [...head, ...new Array<number>(zeros).fill(0), ...rest]
  } else {
    groups = parseGroups(halves[0]!)
  }
  groups.push(...tail)
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) return undefined
  const out = new Uint8Array(16)
  groups.forEach((g, i) => {
    out[2 * i] = g >>> 8
    out[2 * i + 1] = g & 0xff
  })
  return out
}

/** RFC 5952 text: lower-case hex, leading zeros dropped, the first longest run (≥ 2) of zeros as `::`. */
const formatIPv6 = (bytes: Uint8Array): string => {
  const groups: Array<number> = []
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!)
  let bestStart = -1
  let bestLength = 1
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  const hex = (g: number) => g.toString(16)
  if (bestStart < 0) return groups.map(hex).join(":")
  const head = groups.slice(0, bestStart).map(hex).join(":")
  const rest = groups
    .slice(bestStart + bestLength)
    .map(hex)
    .join(":")
  return `${head}::${rest}`
}
