/**
 * Throwaway X.509 certificates for tests, generated at test time in pure JavaScript: `node:crypto`
 * makes the ECDSA P-256 keys and signatures, a small DER writer here lays out the certificates. No
 * `openssl` binary, no dependency, no key material in the repository — and it runs unchanged on
 * Node, Bun and Deno (the cross-runtime scenarios generate their certificates the same way; Deno's
 * sandbox there allows neither subprocesses nor file writes).
 *
 * What is generated ({@link makePki}):
 * - a CA: self-signed, `basicConstraints CA:TRUE` (critical), `keyUsage keyCertSign, cRLSign`;
 * - a server certificate signed by the CA: SAN `DNS:localhost`, `IP:127.0.0.1`, `IP:::1`,
 *   `extKeyUsage serverAuth`;
 * - a client certificate signed by the CA: `extKeyUsage clientAuth`.
 * Every certificate is X.509 v3 with subject/authority key identifiers, valid from an hour ago for a
 * day (override with `validFrom`/`validDays`, e.g. to make an expired one). PEM strings throughout:
 * certificates as `CERTIFICATE`, keys as PKCS#8 `PRIVATE KEY`.
 *
 * Not for production: the keys live in memory for one test run and nothing is revoked or checked
 * beyond what a TLS stack checks.
 */
import * as crypto from "node:crypto"

/** A certificate and its private key, both PEM. */
export interface KeyPair {
  readonly cert: string
  readonly key: string
}

/** A CA with a server and a client certificate it signed. */
export interface Pki {
  readonly ca: KeyPair
  readonly server: KeyPair
  readonly client: KeyPair
}

/** Options for one certificate. */
export interface CertOptions {
  /** Subject common name. */
  readonly commonName: string
  /** DNS names for the subjectAltName extension. */
  readonly dnsNames?: ReadonlyArray<string>
  /** IPv4/IPv6 addresses for the subjectAltName extension. */
  readonly ipAddresses?: ReadonlyArray<string>
  /** What the certificate is for. */
  readonly usage: "ca" | "server" | "client"
  /** Start of validity (default: an hour ago). */
  readonly validFrom?: Date
  /** Length of validity in days (default 1). */
  readonly validDays?: number
}

// ---------------------------------------------------------------------------------------------
// A minimal DER writer: just the types a certificate needs.

const tlv = (tag: number, content: Uint8Array): Uint8Array => {
  const n = content.length
  const header =
    n < 0x80
      ? [tag, n]
      : n < 0x100
        ? [tag, 0x81, n]
        : n < 0x10000
          ? [tag, 0x82, n >> 8, n & 0xff]
          : [tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]
  const out = new Uint8Array(header.length + n)
  out.set(header, 0)
  out.set(content, header.length)
  return out
}

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let total = 0
  for (const p of parts) total += p.length
  const out = new Uint8Array(total)
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

const sequence = (...items: ReadonlyArray<Uint8Array>) => tlv(0x30, concat(items))
const set = (...items: ReadonlyArray<Uint8Array>) => tlv(0x31, concat(items))
const explicit = (n: number, inner: Uint8Array) => tlv(0xa0 | n, inner)
const octetString = (bytes: Uint8Array) => tlv(0x04, bytes)
const utf8String = (s: string) => tlv(0x0c, new TextEncoder().encode(s))
const bool = (value: boolean) => tlv(0x01, Uint8Array.of(value ? 0xff : 0x00))
const bitString = (bytes: Uint8Array, unusedBits = 0) => tlv(0x03, concat([Uint8Array.of(unusedBits), bytes]))

/** A non-negative INTEGER from big-endian magnitude bytes (minimal encoding). */
const unsignedInteger = (magnitude: Uint8Array): Uint8Array => {
  let start = 0
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++
  const bytes = magnitude.subarray(start)
  return tlv(0x02, (bytes[0]! & 0x80) !== 0 ? concat([Uint8Array.of(0), bytes]) : bytes)
}

const oid = (dotted: string): Uint8Array => {
  const parts = dotted.split(".").map(Number)
  const out: Array<number> = [parts[0]! * 40 + parts[1]!]
  for (const part of parts.slice(2)) {
    const base128: Array<number> = []
    let v = part
    do {
      base128.unshift(v & 0x7f)
      v = Math.floor(v / 128)
    } while (v > 0)
    for (let i = 0; i < base128.length - 1; i++) base128[i]! |= 0x80
    out.push(...base128)
  }
  return tlv(0x06, Uint8Array.from(out))
}

/** UTCTime before 2050, GeneralizedTime from then on (RFC 5280 §4.1.2.5). */
const time = (date: Date): Uint8Array => {
  const pad = (n: number) => String(n).padStart(2, "0")
  const y = date.getUTCFullYear()
  const rest = `${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}${pad(date.getUTCHours())}${pad(date.getUTCMinutes())}${pad(date.getUTCSeconds())}Z`
  const encoder = new TextEncoder()
  return y < 2050 ? tlv(0x17, encoder.encode(`${pad(y % 100)}${rest}`)) : tlv(0x18, encoder.encode(`${y}${rest}`))
}

const ipBytes = (ip: string): Uint8Array => {
  if (ip.includes(":")) {
    const [head = "", tail = ""] = ip.split("::")
    const h = head === "" ? [] : head.split(":")
    const t = tail === "" ? [] : tail.split(":")
    const groups = ip.includes("::") ? [...h, ...Array(8 - h.length - t.length).fill("0"), ...t] : h
    const out = new Uint8Array(16)
    groups.forEach((g, i) => {
      const v = Number.parseInt(g, 16)
      out[i * 2] = v >> 8
      out[i * 2 + 1] = v & 0xff
    })
    return out
  }
  return Uint8Array.from(ip.split(".").map(Number))
}

// ---------------------------------------------------------------------------------------------
// Certificates.

const OID = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  commonName: "2.5.4.3",
  organization: "2.5.4.10",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2"
} as const

const name = (commonName: string) =>
  sequence(
    set(sequence(oid(OID.organization), utf8String("plait tests"))),
    set(sequence(oid(OID.commonName), utf8String(commonName)))
  )

const extension = (id: string, critical: boolean, value: Uint8Array) =>
  critical ? sequence(oid(id), bool(true), octetString(value)) : sequence(oid(id), octetString(value))

const toPem = (label: string, der: Uint8Array) => {
  const b64 = Buffer.from(der).toString("base64")
  const lines = b64.match(/.{1,64}/g) ?? []
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`
}

interface Signer {
  readonly name: Uint8Array
  readonly keyId: Uint8Array
  readonly privateKey: crypto.KeyObject
}

interface Issued extends KeyPair {
  readonly signer: Signer
}

const issue = (options: CertOptions, issuer?: Signer): Issued => {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
  const spki = new Uint8Array(publicKey.export({ type: "spki", format: "der" }))
  const keyId = new Uint8Array(crypto.createHash("sha1").update(spki).digest())
  const subject = name(options.commonName)
  const signer: Signer = issuer ?? { name: subject, keyId, privateKey }

  const serial = new Uint8Array(crypto.randomBytes(16))
  serial[0] = (serial[0]! & 0x7f) | 0x40
  const from = options.validFrom ?? new Date(Date.now() - 3600_000)
  const to = new Date(from.getTime() + (options.validDays ?? 1) * 86400_000 + 3600_000)

  const extensions: Array<Uint8Array> = []
  const ca = options.usage === "ca"
  extensions.push(extension(OID.basicConstraints, true, ca ? sequence(bool(true)) : sequence()))
  // keyUsage bits: digitalSignature (0), keyCertSign (5), cRLSign (6).
  extensions.push(
    extension(OID.keyUsage, true, ca ? bitString(Uint8Array.of(0x06), 1) : bitString(Uint8Array.of(0x80), 7))
  )
  if (!ca) {
    extensions.push(
      extension(OID.extKeyUsage, false, sequence(oid(options.usage === "server" ? OID.serverAuth : OID.clientAuth)))
    )
  }
  const altNames = [
    ...(options.dnsNames ?? []).map((dns) => tlv(0x82, new TextEncoder().encode(dns))),
    ...(options.ipAddresses ?? []).map((ip) => tlv(0x87, ipBytes(ip)))
  ]
  if (altNames.length > 0) extensions.push(extension(OID.subjectAltName, false, sequence(...altNames)))
  extensions.push(extension(OID.subjectKeyIdentifier, false, octetString(keyId)))
  extensions.push(extension(OID.authorityKeyIdentifier, false, sequence(tlv(0x80, signer.keyId))))

  const algorithm = sequence(oid(OID.ecdsaWithSha256))
  const tbs = sequence(
    explicit(0, unsignedInteger(Uint8Array.of(2))),
    unsignedInteger(serial),
    algorithm,
    signer.name,
    sequence(time(from), time(to)),
    subject,
    spki,
    explicit(3, sequence(...extensions))
  )
  const signature = new Uint8Array(crypto.sign("sha256", tbs, signer.privateKey))
  const der = sequence(tbs, algorithm, bitString(signature))
  return {
    cert: toPem("CERTIFICATE", der),
    key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    signer: { name: subject, keyId, privateKey }
  }
}

const strip = (issued: Issued): KeyPair => ({ cert: issued.cert, key: issued.key })

/** A self-signed CA, plus a function that issues leaf certificates signed by it. */
export const makeCa = (commonName = "plait test CA") => {
  const ca = issue({ commonName, usage: "ca" })
  return {
    ca: strip(ca),
    issue: (options: Omit<CertOptions, "usage"> & { readonly usage: "server" | "client" }): KeyPair =>
      strip(issue(options, ca.signer))
  }
}

/** A fresh CA with a server certificate (localhost, 127.0.0.1, ::1) and a client certificate. */
export const makePki = (commonName = "plait test CA"): Pki => {
  const { ca, issue: sign } = makeCa(commonName)
  return {
    ca,
    server: sign({
      commonName: "localhost",
      dnsNames: ["localhost"],
      ipAddresses: ["127.0.0.1", "::1"],
      usage: "server"
    }),
    client: sign({ commonName: "plait test client", usage: "client" })
  }
}
