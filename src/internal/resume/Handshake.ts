/**
 * The resumption handshakes as pure steps, sans-IO: what each side sends and how it judges what it
 * received. The transport wrapper reads and writes the bytes; every decision is made here.
 *
 * New session (proxy → server, one round trip):
 *   ClientHello(flags, client key) → ServerHello(flags, server key, ticket, window, buffer, confirm).
 *   Both derive the session secret (see `Keys.ts`); the proxy checks `confirm`, so a server (or a
 *   machine in the middle) that does not hold the token cannot hand out a ticket the proxy trusts.
 * Resume (one round trip):
 *   ResumeRequest(ticket, attempt, received, proof) → ResumeAccept(received, proof) | Refused(reason).
 *
 * Invariants of {@link judgeResume} (the server's verdict), checked in this order so that nothing
 * is learned without the secret:
 * 1. A revoked ticket is refused (`TooManyAttempts`) — the registry maps unknown and expired
 *    tickets before this step.
 * 2. A proof that does not verify is refused (`BadProof`) and counted; at {@link MAX_FAILED_PROOFS}
 *    the ticket is revoked. A forged request therefore changes nothing but that counter.
 * 3. A verified proof for an attempt number not above the last accepted one is a recorded request
 *    played again: `Replayed`, and nothing changes.
 * 4. A verified, fresh request whose position the replay buffer cannot serve is
 *    `PositionIncompatible`: the session cannot continue.
 * 5. Otherwise the attempt is accepted and recorded, so that exact request never works twice.
 *
 * @since 0.1.0
 */
import type { RefusalReason } from "../../resume/ResumeError.ts"
import { agree, confirmTag, deriveSecret, type KeyShare, makeTicket, resumeProof, sameProof } from "./Keys.ts"
import {
  type ClientHello,
  encodeMessage,
  FLAG_RESUME,
  KEY_LENGTH,
  PROOF_LENGTH,
  type ResumeRequest,
  type ServerHello,
  TICKET_LENGTH
} from "./Wire.ts"

/** Failed proofs for one ticket after which it is revoked. */
export const MAX_FAILED_PROOFS = 8

/** The smallest replay buffer a side may advertise; a hello with less is declined. */
export const MIN_BUFFER_BYTES = 64 * 1024

/** Channel-binding material and the token, shared by both steps. */
export interface Keying {
  /** The shared `--token` as bytes; empty without one. */
  readonly token: Uint8Array
  /** Channel binding of this connection (a TLS exporter); empty when there is none. */
  readonly binding: Uint8Array
}

/** The server's answer to a ClientHello. */
export interface ServerHelloResult {
  readonly bytes: Uint8Array
  /** `undefined` when resumption was not granted (plain session follows). */
  readonly session:
    | {
        readonly ticket: Uint8Array
        readonly secret: Uint8Array
        /** The smaller of both sides' buffers: what both run with. */
        readonly capacity: number
      }
    | undefined
}

/** Settings the server announces. */
export interface ServerTerms {
  /** 0: resumption disabled, the ServerHello declines. */
  readonly windowMillis: number
  readonly bufferBytes: number
}

const ZERO_KEY = new Uint8Array(KEY_LENGTH)
const ZERO_TICKET = new Uint8Array(TICKET_LENGTH)
const ZERO_PROOF = new Uint8Array(PROOF_LENGTH)

/** The ServerHello that declines resumption. */
export const declineBytes = (): Uint8Array =>
  encodeMessage({
    _tag: "ServerHello",
    flags: 0,
    key: ZERO_KEY,
    ticket: ZERO_TICKET,
    windowMillis: 0,
    bufferBytes: 0,
    confirm: ZERO_PROOF
  })

/**
 * The server's step: grants a resumable session (a ticket and the secret) when the client asks and
 * the server resumes, else declines. A client key that yields no shared secret, or a buffer below
 * {@link MIN_BUFFER_BYTES}, is declined too (the session is then plain; nothing resumable exists
 * to attack).
 */
export const answerHello = (
  hello: ClientHello,
  helloBytes: Uint8Array,
  share: KeyShare,
  keying: Keying,
  terms: ServerTerms
): ServerHelloResult => {
  if ((hello.flags & FLAG_RESUME) === 0 || terms.windowMillis <= 0 || hello.bufferBytes < MIN_BUFFER_BYTES) {
    return { bytes: declineBytes(), session: undefined }
  }
  const shared = agree(share, hello.key)
  if (shared === undefined) return { bytes: declineBytes(), session: undefined }
  const ticket = makeTicket()
  const secret = deriveSecret({
    token: keying.token,
    shared,
    clientKey: hello.key,
    serverKey: share.publicKey,
    ticket,
    binding: keying.binding
  })
  const bytes = encodeMessage({
    _tag: "ServerHello",
    flags: FLAG_RESUME,
    key: share.publicKey,
    ticket,
    windowMillis: terms.windowMillis,
    bufferBytes: terms.bufferBytes,
    confirm: ZERO_PROOF
  })
  const prefixLength = bytes.length - PROOF_LENGTH
  bytes.set(confirmTag(secret, helloBytes, bytes.subarray(0, prefixLength)), prefixLength)
  return { bytes, session: { ticket, secret, capacity: Math.min(terms.bufferBytes, hello.bufferBytes) } }
}

/** The client's view of a ServerHello. */
export type HelloOutcome =
  /** A resumable session: keep the ticket and the secret. */
  | {
      readonly _tag: "Granted"
      readonly ticket: Uint8Array
      readonly secret: Uint8Array
      readonly windowMillis: number
      /** The smaller of both sides' buffers: what both run with. */
      readonly capacity: number
    }
  /** The server declined: the session runs plain over the connection. */
  | { readonly _tag: "Declined" }
  /** The confirm tag does not verify (another token, or a machine in the middle). */
  | { readonly _tag: "Unverified"; readonly message: string }

/** The client's step: checks the ServerHello against its own hello (`ownBufferBytes` in it) and key. */
export const acceptHello = (
  share: KeyShare,
  helloBytes: Uint8Array,
  ownBufferBytes: number,
  reply: ServerHello,
  replyBytes: Uint8Array,
  keying: Keying
): HelloOutcome => {
  if ((reply.flags & FLAG_RESUME) === 0) return { _tag: "Declined" }
  if (reply.bufferBytes < MIN_BUFFER_BYTES) {
    return {
      _tag: "Unverified",
      message: `the server's replay buffer of ${reply.bufferBytes} bytes is below the minimum`
    }
  }
  const shared = agree(share, reply.key)
  if (shared === undefined) return { _tag: "Unverified", message: "the server's key share is invalid" }
  const secret = deriveSecret({
    token: keying.token,
    shared,
    clientKey: share.publicKey,
    serverKey: reply.key,
    ticket: reply.ticket,
    binding: keying.binding
  })
  const prefix = replyBytes.subarray(0, replyBytes.length - PROOF_LENGTH)
  if (!sameProof(reply.confirm, confirmTag(secret, helloBytes, prefix))) {
    return {
      _tag: "Unverified",
      message: "the server could not confirm the session secret (a different --token on the server?)"
    }
  }
  return {
    _tag: "Granted",
    ticket: reply.ticket,
    secret,
    windowMillis: reply.windowMillis,
    capacity: Math.min(ownBufferBytes, reply.bufferBytes)
  }
}

/** What the server knows of one resumable session. */
export interface TicketState {
  readonly ticket: Uint8Array
  readonly secret: Uint8Array
  /** The highest attempt number accepted so far (0: none yet; clients start at 1). */
  lastAttempt: number
  /** Proofs that failed to verify. */
  failedProofs: number
  /** Revoked after too many failed proofs. */
  revoked: boolean
}

/** A new {@link TicketState}. */
export const makeTicketState = (ticket: Uint8Array, secret: Uint8Array): TicketState => ({
  ticket,
  secret,
  lastAttempt: 0,
  failedProofs: 0,
  revoked: false
})

/** The server's verdict on a ResumeRequest. */
export type Verdict =
  | { readonly _tag: "Accept" }
  | {
      readonly _tag: "Refuse"
      readonly reason: RefusalReason
      /** The session cannot continue after this refusal (revoked, or its position is lost). */
      readonly fatal: boolean
    }

/**
 * Judges a resume request for `state` (see the module invariants). `canServe` says whether the
 * server's replay buffer still holds what the client lacks. Updates `state` (counters, attempt).
 */
export const judgeResume = (
  state: TicketState,
  request: ResumeRequest,
  binding: Uint8Array,
  canServe: (clientReceived: number) => boolean
): Verdict => {
  if (state.revoked) return { _tag: "Refuse", reason: "TooManyAttempts", fatal: true }
  const expected = resumeProof(state.secret, state.ticket, request.attempt, request.received, binding)
  if (!sameProof(request.proof, expected)) {
    state.failedProofs++
    if (state.failedProofs >= MAX_FAILED_PROOFS) {
      state.revoked = true
      return { _tag: "Refuse", reason: "TooManyAttempts", fatal: true }
    }
    return { _tag: "Refuse", reason: "BadProof", fatal: false }
  }
  if (request.attempt <= state.lastAttempt) return { _tag: "Refuse", reason: "Replayed", fatal: false }
  if (!canServe(request.received)) return { _tag: "Refuse", reason: "PositionIncompatible", fatal: true }
  state.lastAttempt = request.attempt
  return { _tag: "Accept" }
}
