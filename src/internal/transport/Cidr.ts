/**
 * Sets of IP address blocks (CIDR notation), for the proxy's trusted PROXY-protocol sources
 * (`--proxy-protocol-from`): parsed once, matched once per client connection by `net.BlockList`,
 * which Node, Bun and Deno all provide.
 *
 * Invariants: an entry is `ADDRESS/PREFIX` (IPv4 prefix 0 to 32, IPv6 0 to 128) or a bare address
 * (one host); anything else refuses the whole list with a sentence saying which entry and why, never
 * half-accepts it. An IPv4 block also matches the IPv4-mapped IPv6 form of its addresses
 * (`::ffff:10.0.0.1`), as a dual-stack listener reports them. A set is bounded: at most
 * {@link MAX_ENTRIES} entries.
 *
 * @since 0.2.0
 */
import * as net from "node:net"

/** Most entries in one set: a handful of load balancers, not an address plan. */
export const MAX_ENTRIES = 64

/** A parsed set of blocks. */
export interface CidrSet {
  /** The entries as given, normalised (`10.0.0.0/8`, `::1/128`), for logs. */
  readonly entries: ReadonlyArray<string>
  /** Whether `address` (an IP, IPv6 without brackets) lies in one of the blocks; false for anything else. */
  readonly has: (address: string) => boolean
}

/** Parses `entries` into a set, or says (as the rest of a sentence) what is wrong with the first bad one. */
export const parse = (entries: ReadonlyArray<string>): CidrSet | { readonly error: string } => {
  if (entries.length === 0) return { error: "must list at least one address or CIDR block" }
  if (entries.length > MAX_ENTRIES) return { error: `must list at most ${MAX_ENTRIES} blocks (got ${entries.length})` }
  const list = new net.BlockList()
  const normalised: Array<string> = []
  for (const raw of entries) {
    const entry = raw.trim()
    const slash = entry.indexOf("/")
    const address = slash < 0 ? entry : entry.slice(0, slash)
    const version = net.isIP(address)
    if (version === 0) {
      return {
        error: `must be ADDRESS/PREFIX or an IP address, e.g. 10.0.0.0/8 or 2001:db8::/32 (got ${JSON.stringify(entry)})`
      }
    }
    const max = version === 4 ? 32 : 128
    const prefixText = slash < 0 ? String(max) : entry.slice(slash + 1)
    const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN
    if (!(prefix >= 0 && prefix <= max)) {
      return { error: `prefix must be from 0 to ${max} for an IPv${version} block (got ${JSON.stringify(entry)})` }
    }
    list.addSubnet(address, prefix, version === 4 ? "ipv4" : "ipv6")
    normalised.push(`${address}/${prefix}`)
  }
  return {
    entries: normalised,
    has: (address) => {
      const version = net.isIP(address)
      return version !== 0 && list.check(address, version === 4 ? "ipv4" : "ipv6")
    }
  }
}
