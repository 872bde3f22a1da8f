/**
 * The resumption layer's cryptography: an ephemeral X25519 agreement at session start, the
 * per-session secret derived from it, and the HMAC-SHA256 proofs of a resume. `node:crypto` only,
 * which Node, Bun and Deno all provide with X25519.
 *
 * Construction (labels are ASCII; `‖` is concatenation; u64/u32 big-endian):
 * - `shared = X25519(own private key, peer public key)` (a low-order key that yields all zeros is
 *   refused).
 * - `secret = HMAC(token or empty, "plait-resume-v1/secret" ‖ shared ‖ client key ‖ server key ‖
 *   ticket ‖ u32 len(binding) ‖ binding)` — `binding` is channel-binding material of the first
 *   connection (a TLS exporter) or empty.
 * - `confirm = HMAC(secret, "plait-resume-v1/confirm" ‖ ClientHello bytes ‖ ServerHello bytes
 *   before the confirm field)`: the server shows it derived the same secret, over the whole
 *   transcript (flags, window, ticket).
 * - `resume proof = HMAC(secret, "plait-resume-v1/resume" ‖ ticket ‖ u64 attempt ‖ u64 received ‖
 *   u32 len(binding) ‖ binding)`, binding of the *new* connection.
 * - `accept proof = HMAC(secret, "plait-resume-v1/accept" ‖ ticket ‖ u64 attempt ‖ u64 client
 *   received ‖ u64 server received ‖ u32 len(binding) ‖ binding)`.
 *
 * Invariants: the secret never leaves this process and is never logged; comparisons of proofs are
 * constant-time; the distinct labels keep each proof from being usable as another.
 *
 * @since 0.1.0
 */
import * as crypto from "node:crypto"
import { PROOF_LENGTH, TICKET_LENGTH, u64 } from "./Wire.ts"

const LABEL_SECRET = new TextEncoder().encode("plait-resume-v1/secret")
const LABEL_CONFIRM = new TextEncoder().encode("plait-resume-v1/confirm")
const LABEL_RESUME = new TextEncoder().encode("plait-resume-v1/resume")
const LABEL_ACCEPT = new TextEncoder().encode("plait-resume-v1/accept")

/** DER prefix of an X25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const SPKI_PREFIX = Uint8Array.of(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00)

/** An ephemeral X25519 key pair. */
export interface KeyShare {
  /** The raw 32-byte public key, as sent in a hello. */
  readonly publicKey: Uint8Array
  readonly privateKey: crypto.KeyObject
}

/** A fresh ephemeral key pair. */
export const makeKeyShare = (): KeyShare => {
  const pair = crypto.generateKeyPairSync("x25519")
  const spki = pair.publicKey.export({ format: "der", type: "spki" })
  return { publicKey: new Uint8Array(spki.subarray(spki.length - 32)), privateKey: pair.privateKey }
}

/** X25519 with the peer's raw public key; `undefined` for a key that is invalid or of low order. */
export const agree = (own: KeyShare, peerPublicKey: Uint8Array): Uint8Array | undefined => {
  try {
    const der = new Uint8Array(SPKI_PREFIX.length + 32)
    der.set(SPKI_PREFIX, 0)
    der.set(peerPublicKey, SPKI_PREFIX.length)
    const publicKey = crypto.createPublicKey({ key: Buffer.from(der), format: "der", type: "spki" })
    const shared = new Uint8Array(crypto.diffieHellman({ privateKey: own.privateKey, publicKey }))
    // A low-order point gives an all-zero result an attacker could predict.
    return shared.some((b) => b !== 0) ? shared : undefined
  } catch {
    return undefined
  }
}

const lengthPrefixed = (bytes: Uint8Array): Uint8Array => {
  const out = new Uint8Array(4 + bytes.length)
  new DataView(out.buffer).setUint32(0, bytes.length)
  out.set(bytes, 4)
  return out
}

const hmac = (key: Uint8Array, parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const h = crypto.createHmac("sha256", key)
  for (const part of parts) h.update(part)
  return new Uint8Array(h.digest())
}

/** Inputs of {@link deriveSecret}. */
export interface SecretInputs {
  /** The link's shared token, empty without `--token`. */
  readonly token: Uint8Array
  readonly shared: Uint8Array
  readonly clientKey: Uint8Array
  readonly serverKey: Uint8Array
  readonly ticket: Uint8Array
  /** Channel binding of the first connection (a TLS exporter), empty when there is none. */
  readonly binding: Uint8Array
}

/** The per-session secret. */
export const deriveSecret = (inputs: SecretInputs): Uint8Array =>
  hmac(inputs.token, [
    LABEL_SECRET,
    inputs.shared,
    inputs.clientKey,
    inputs.serverKey,
    inputs.ticket,
    lengthPrefixed(inputs.binding)
  ])

/** The server's key confirmation over the handshake transcript. */
export const confirmTag = (secret: Uint8Array, clientHello: Uint8Array, serverHelloPrefix: Uint8Array): Uint8Array =>
  hmac(secret, [LABEL_CONFIRM, clientHello, serverHelloPrefix])

/** The client's proof in a ResumeRequest. */
export const resumeProof = (
  secret: Uint8Array,
  ticket: Uint8Array,
  attempt: number,
  received: number,
  binding: Uint8Array
): Uint8Array => hmac(secret, [LABEL_RESUME, ticket, u64(attempt), u64(received), lengthPrefixed(binding)])

/** The server's proof in a ResumeAccept. */
export const acceptProof = (
  secret: Uint8Array,
  ticket: Uint8Array,
  attempt: number,
  clientReceived: number,
  serverReceived: number,
  binding: Uint8Array
): Uint8Array =>
  hmac(secret, [LABEL_ACCEPT, ticket, u64(attempt), u64(clientReceived), u64(serverReceived), lengthPrefixed(binding)])

/** Constant-time equality of two proofs. */
export const sameProof = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === PROOF_LENGTH && b.length === PROOF_LENGTH && crypto.timingSafeEqual(a, b)

/** A fresh random ticket. */
export const makeTicket = (): Uint8Array => new Uint8Array(crypto.randomBytes(TICKET_LENGTH))

/** A ticket as a map key (hex). Tickets are not secret-bearing but are not logged in full either. */
export const ticketKey = (ticket: Uint8Array): string => Buffer.from(ticket).toString("hex")

/** The first 4 bytes of a ticket in hex, enough to tell sessions apart in logs. */
export const ticketLabel = (ticket: Uint8Array): string => Buffer.from(ticket.subarray(0, 4)).toString("hex")
