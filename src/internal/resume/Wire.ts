/**
 * The resumption layer's wire format, sans-IO: handshake messages and data-phase records, bytes in
 * and values out. No sockets, no Effect, no timers, no crypto (proofs are opaque bytes here).
 *
 * Handshake messages (the first bytes of every connection, both directions): an 8-byte header —
 * ASCII `PLRS`, version u8 (1), type u8, body length u16 — then a body whose length each type fixes:
 *
 * | type | message | direction | body |
 * |---|---|---|---|
 * | 0x01 | ClientHello | dialler → acceptor | flags u32, buffer bytes u32, X25519 key 32 |
 * | 0x02 | ServerHello | acceptor → dialler | flags u32, X25519 key 32, ticket 16, window ms u32, buffer bytes u32, confirm 32 |
 * | 0x03 | ResumeRequest | dialler → acceptor | ticket 16, attempt u64, received u64, proof 32 |
 * | 0x04 | ResumeAccept | acceptor → dialler | received u64, proof 32 |
 * | 0x05 | Refused | acceptor → dialler | reason u8 |
 *
 * Data-phase records (after the handshake; every byte of the yamux session travels in DATA):
 *
 * | type | record | fields |
 * |---|---|---|
 * | 0x01 | DATA | length u32 (1 .. 1 MiB), then that many payload bytes |
 * | 0x02 | ACK | position u64: bytes of the other direction delivered so far |
 * | 0x03 | END | position u64: the sender's final position (no more DATA) |
 * | 0x04 | ABORT | code u8: the sender ended the session for good |
 *
 * All integers big-endian. Positions count payload bytes of one direction from the session's
 * start (the first byte is position 0) and are at most 2^53-1.
 *
 * Invariants:
 * - Input may be split at any byte; what is decoded does not depend on the split.
 * - Every parse failure is a {@link ResumeError} with reason `Malformed` and a kind; the first is
 *   terminal (a decoder returns it from then on). Garbage is refused at its first bad byte: magic,
 *   version, type and length are checked as soon as each arrives, before a body is buffered.
 * - Handshake bodies are fixed-length (the largest is 92 bytes), so a reader never buffers more
 *   than one header plus one body per message; DATA payloads are streamed out as they arrive
 *   (zero-copy views of the input), never reassembled.
 *
 * @since 0.1.0
 */
import { malformed, type RefusalReason, type ResumeError } from "../../resume/ResumeError.ts"

/** ASCII `PLRS`, the first four bytes of every handshake message. */
export const MAGIC: Uint8Array = Uint8Array.of(0x50, 0x4c, 0x52, 0x53)
/** The handshake version this module speaks. */
export const VERSION = 1
/** Bytes of a handshake message header: magic, version, type, body length. */
export const MESSAGE_HEADER = 8
/** Bytes of an X25519 public key. */
export const KEY_LENGTH = 32
/** Bytes of a session ticket. */
export const TICKET_LENGTH = 16
/** Bytes of an HMAC-SHA256 proof. */
export const PROOF_LENGTH = 32
/** Largest payload of one DATA record accepted from a peer: 1 MiB. */
export const MAX_RECORD_PAYLOAD = 1024 * 1024
/** Largest position (and attempt number) this implementation counts: 2^53-1. */
export const MAX_POSITION = Number.MAX_SAFE_INTEGER
/** ClientHello / ServerHello flag: a resumable session is asked for / granted. */
export const FLAG_RESUME = 1

/** Handshake message types. */
export const MessageType = {
  ClientHello: 0x01,
  ServerHello: 0x02,
  ResumeRequest: 0x03,
  ResumeAccept: 0x04,
  Refused: 0x05
} as const

/** Data-phase record types. */
export const RecordType = {
  Data: 0x01,
  Ack: 0x02,
  End: 0x03,
  Abort: 0x04
} as const

/** Bytes of each record header (for DATA: before the payload). */
export const RECORD_HEADER: { readonly [K in keyof typeof RecordType]: number } = {
  Data: 5,
  Ack: 9,
  End: 9,
  Abort: 2
}

/** Body length of each handshake message type. */
const BODY_LENGTH: { readonly [type: number]: number } = {
  [MessageType.ClientHello]: 4 + 4 + KEY_LENGTH,
  [MessageType.ServerHello]: 4 + KEY_LENGTH + TICKET_LENGTH + 4 + 4 + PROOF_LENGTH,
  [MessageType.ResumeRequest]: TICKET_LENGTH + 8 + 8 + PROOF_LENGTH,
  [MessageType.ResumeAccept]: 8 + PROOF_LENGTH,
  [MessageType.Refused]: 1
}

/** Wire code of each refusal reason. */
export const RefusalCode: { readonly [K in RefusalReason]: number } = {
  UnknownTicket: 1,
  Expired: 2,
  BadProof: 3,
  PositionIncompatible: 4,
  Replayed: 5,
  TooManyAttempts: 6,
  Unsupported: 7
}

const refusalByCode = new Map<number, RefusalReason>(
  Object.entries(RefusalCode).map(([reason, code]) => [code, reason as RefusalReason])
)

/** ABORT codes. */
export const AbortCode = {
  /** The session was aborted by its owner (reset). */
  Aborted: 0,
  /** The sender found the peer's bytes invalid. */
  ProtocolError: 1,
  /** The sender cannot resume from the positions it was given. */
  PositionIncompatible: 2
} as const

/** Opens a new resumable session. */
export interface ClientHello {
  readonly _tag: "ClientHello"
  readonly flags: number
  /** The dialler's replay buffer per direction; both sides use the smaller of the two. */
  readonly bufferBytes: number
  /** The dialler's ephemeral X25519 public key. */
  readonly key: Uint8Array
}

/** Answers a ClientHello; with `FLAG_RESUME` clear the session is plain (no records follow). */
export interface ServerHello {
  readonly _tag: "ServerHello"
  readonly flags: number
  readonly key: Uint8Array
  readonly ticket: Uint8Array
  /** How long the server keeps a broken session for a resume. */
  readonly windowMillis: number
  /** The acceptor's replay buffer per direction; both sides use the smaller of the two. */
  readonly bufferBytes: number
  /** HMAC(secret, transcript): the server derived the same secret. */
  readonly confirm: Uint8Array
}

/** Asks to continue the session of `ticket` on this connection. */
export interface ResumeRequest {
  readonly _tag: "ResumeRequest"
  readonly ticket: Uint8Array
  /** Strictly increasing per ticket: a request can be used once. */
  readonly attempt: number
  /** Bytes of the server's direction the client has received. */
  readonly received: number
  readonly proof: Uint8Array
}

/** The session continues: replay from these positions. */
export interface ResumeAccept {
  readonly _tag: "ResumeAccept"
  /** Bytes of the client's direction the server has received. */
  readonly received: number
  readonly proof: Uint8Array
}

/** The server will not resume. */
export interface RefusedMessage {
  readonly _tag: "Refused"
  readonly reason: RefusalReason
}

/** Every handshake message. */
export type Message = ClientHello | ServerHello | ResumeRequest | ResumeAccept | RefusedMessage

/** A decoded data-phase record; DATA may arrive as several fragments of one record. */
export type WireRecord =
  | { readonly _tag: "Data"; readonly bytes: Uint8Array }
  | { readonly _tag: "Ack"; readonly position: number }
  | { readonly _tag: "End"; readonly position: number }
  | { readonly _tag: "Abort"; readonly code: number }

// Integers ----------------------------------------------------------------------------------------

const writeU32 = (target: Uint8Array, offset: number, value: number): void => {
  target[offset] = (value >>> 24) & 0xff
  target[offset + 1] = (value >>> 16) & 0xff
  target[offset + 2] = (value >>> 8) & 0xff
  target[offset + 3] = value & 0xff
}

const readU32 = (source: Uint8Array, offset: number): number =>
  ((source[offset]! << 24) | (source[offset + 1]! << 16) | (source[offset + 2]! << 8) | source[offset + 3]!) >>> 0

/** Writes a non-negative safe integer as u64 big-endian. */
export const writeU64 = (target: Uint8Array, offset: number, value: number): void => {
  writeU32(target, offset, Math.floor(value / 0x1_0000_0000))
  writeU32(target, offset + 4, value >>> 0)
}

/** Reads a u64; `undefined` when it exceeds {@link MAX_POSITION}. */
export const readU64 = (source: Uint8Array, offset: number): number | undefined => {
  const high = readU32(source, offset)
  if (high > 0x1f_ffff) return undefined
  return high * 0x1_0000_0000 + readU32(source, offset + 4)
}

/** The u64 encoding of `value` (for proofs over positions). */
export const u64 = (value: number): Uint8Array => {
  const out = new Uint8Array(8)
  writeU64(out, 0, value)
  return out
}

// Handshake messages ------------------------------------------------------------------------------

const checkLength = (name: string, bytes: Uint8Array, length: number): void => {
  if (bytes.length !== length) throw new RangeError(`${name} must be ${length} bytes (got ${bytes.length})`)
}

const checkPosition = (name: string, value: number): void => {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a safe integer ≥ 0`)
}

/**
 * Encodes a handshake message. Throws `RangeError` for values outside the format (a programming
 * error: every value this module produces is inside).
 */
export const encodeMessage = (message: Message): Uint8Array => {
  const type = MessageType[message._tag]
  const length = BODY_LENGTH[type]!
  const out = new Uint8Array(MESSAGE_HEADER + length)
  out.set(MAGIC, 0)
  out[4] = VERSION
  out[5] = type
  out[6] = length >>> 8
  out[7] = length & 0xff
  let at = MESSAGE_HEADER
  const put = (name: string, bytes: Uint8Array, size: number) => {
    checkLength(name, bytes, size)
    out.set(bytes, at)
    at += size
  }
  const putU32 = (value: number) => {
    writeU32(out, at, value)
    at += 4
  }
  const putU64 = (name: string, value: number) => {
    checkPosition(name, value)
    writeU64(out, at, value)
    at += 8
  }
  switch (message._tag) {
    case "ClientHello":
      putU32(message.flags)
      putU32(message.bufferBytes)
      put("key", message.key, KEY_LENGTH)
      break
    case "ServerHello":
      putU32(message.flags)
      put("key", message.key, KEY_LENGTH)
      put("ticket", message.ticket, TICKET_LENGTH)
      putU32(message.windowMillis)
      putU32(message.bufferBytes)
      put("confirm", message.confirm, PROOF_LENGTH)
      break
    case "ResumeRequest":
      put("ticket", message.ticket, TICKET_LENGTH)
      putU64("attempt", message.attempt)
      putU64("received", message.received)
      put("proof", message.proof, PROOF_LENGTH)
      break
    case "ResumeAccept":
      putU64("received", message.received)
      put("proof", message.proof, PROOF_LENGTH)
      break
    case "Refused":
      out[at++] = RefusalCode[message.reason]
      break
  }
  return out
}

const typeName = (type: number): string =>
  Object.entries(MessageType).find(([, code]) => code === type)?.[0] ?? `0x${type.toString(16).padStart(2, "0")}`

const hex = (bytes: Uint8Array): string =>
  Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join(" ")

/** A message that has arrived whole, and how many bytes of the input it took. */
export interface Parsed {
  readonly message: Message
  readonly consumed: number
}

/**
 * Parses the message at the start of `bytes`, checking each header byte as soon as it is there.
 * `expected` lists the types allowed at this point of the handshake. Returns `undefined` while
 * more bytes are needed, the message when it is complete, or a terminal `Malformed` error.
 */
export const parseMessage = (
  bytes: Uint8Array,
  expected: ReadonlyArray<Message["_tag"]>
): Parsed | ResumeError | undefined => {
  for (let i = 0; i < MAGIC.length && i < bytes.length; i++) {
    if (bytes[i] !== MAGIC[i]) {
      const hint =
        bytes[0] === 0
          ? "the peer speaks plain yamux, not the resumption handshake"
          : bytes[0] === 0x16
            ? "the peer speaks TLS"
            : "not a plait resumption message"
      return malformed("BadMagic", `${hint}; got ${hex(bytes)}`)
    }
  }
  if (bytes.length > 4 && bytes[4] !== VERSION) {
    return malformed("BadVersion", `the peer speaks resumption version ${bytes[4]}, this side speaks ${VERSION}`)
  }
  if (bytes.length > 5) {
    const type = bytes[5]!
    const tag = expected.find((t) => MessageType[t] === type)
    if (tag === undefined) {
      return malformed("BadType", `expected ${expected.join(" or ")}, got message type ${typeName(type)}`)
    }
  }
  if (bytes.length < MESSAGE_HEADER) return undefined
  const type = bytes[5]!
  const length = (bytes[6]! << 8) | bytes[7]!
  if (length !== BODY_LENGTH[type]) {
    return malformed("BadLength", `${typeName(type)} must have a ${BODY_LENGTH[type]}-byte body, got ${length}`)
  }
  if (bytes.length < MESSAGE_HEADER + length) return undefined
  const body = bytes.subarray(MESSAGE_HEADER, MESSAGE_HEADER + length)
  // Copies: a message outlives the buffer it was read from.
  const take = (from: number, size: number) => body.slice(from, from + size)
  const position = (from: number, name: string): number | ResumeError =>
    readU64(body, from) ?? malformed("PositionTooLarge", `${typeName(type)}: ${name} exceeds 2^53-1`)
  const consumed = MESSAGE_HEADER + length
  switch (type) {
    case MessageType.ClientHello:
      return {
        message: {
          _tag: "ClientHello",
          flags: readU32(body, 0),
          bufferBytes: readU32(body, 4),
          key: take(8, KEY_LENGTH)
        },
        consumed
      }
    case MessageType.ServerHello:
      return {
        message: {
          _tag: "ServerHello",
          flags: readU32(body, 0),
          key: take(4, KEY_LENGTH),
          ticket: take(36, TICKET_LENGTH),
          windowMillis: readU32(body, 52),
          bufferBytes: readU32(body, 56),
          confirm: take(60, PROOF_LENGTH)
        },
        consumed
      }
    case MessageType.ResumeRequest: {
      const attempt = position(16, "attempt")
      if (typeof attempt !== "number") return attempt
      const received = position(24, "received")
      if (typeof received !== "number") return received
      return {
        message: { _tag: "ResumeRequest", ticket: take(0, TICKET_LENGTH), attempt, received, proof: take(32, 32) },
        consumed
      }
    }
    case MessageType.ResumeAccept: {
      const received = position(0, "received")
      if (typeof received !== "number") return received
      return { message: { _tag: "ResumeAccept", received, proof: take(8, PROOF_LENGTH) }, consumed }
    }
    default: {
      const reason = refusalByCode.get(body[0]!)
      if (reason === undefined) return malformed("BadRefusal", `unknown refusal code ${body[0]}`)
      return { message: { _tag: "Refused", reason }, consumed }
    }
  }
}

// Records -----------------------------------------------------------------------------------------

/**
 * A byte array for an outbound record, every byte of which the caller overwrites: Node's and
 * Deno's pooled, unzeroed `Buffer.allocUnsafe` costs a fifth of a zeroed `Uint8Array` for a few KiB
 * (one record per batch: it counts); on Bun a plain `Uint8Array` is the cheaper one. The result
 * may be a view into a shared slab: write through it, never through its `.buffer`.
 */
export const allocRecord: (size: number) => Uint8Array =
  "Bun" in globalThis ? (size) => new Uint8Array(size) : (size) => Buffer.allocUnsafe(size)

/** An ACK record. */
export const encodeAck = (position: number): Uint8Array => {
  const out = new Uint8Array(RECORD_HEADER.Ack)
  out[0] = RecordType.Ack
  writeU64(out, 1, position)
  return out
}

/** An END record. */
export const encodeEnd = (position: number): Uint8Array => {
  const out = new Uint8Array(RECORD_HEADER.End)
  out[0] = RecordType.End
  writeU64(out, 1, position)
  return out
}

/** An ABORT record. */
export const encodeAbort = (code: number): Uint8Array => Uint8Array.of(RecordType.Abort, code & 0xff)

/** Writes a DATA header for `length` payload bytes into `target` at `offset`; returns the next offset. */
export const writeDataHeader = (target: Uint8Array, offset: number, length: number): number => {
  target[offset] = RecordType.Data
  writeU32(target, offset + 1, length)
  return offset + RECORD_HEADER.Data
}

/**
 * Incremental record decoder. DATA payloads come out as fragments as soon as their bytes are
 * there (views of the input chunks, no copy); headers split across chunks are gathered in a
 * 9-byte scratch buffer.
 */
export class RecordDecoder {
  private chunks: Array<Uint8Array> = []
  private offset = 0
  private head = new Uint8Array(9)
  private headLen = 0
  /** Payload bytes still due for the current DATA record. */
  private dataLeft = 0
  private failed: ResumeError | undefined = undefined

  /** Appends input. */
  push(chunk: Uint8Array): void {
    if (chunk.length > 0 && this.failed === undefined) this.chunks.push(chunk)
  }

  /** Whether a record is partly received (a loss then is mid-record; the next connection starts clean). */
  get midRecord(): boolean {
    return this.headLen > 0 || this.dataLeft > 0
  }

  /** Forgets buffered input: a new connection starts at a record boundary. */
  reset(): void {
    this.chunks = []
    this.offset = 0
    this.headLen = 0
    this.dataLeft = 0
  }

  /** The next record or DATA fragment; `undefined` when more input is needed; the error is terminal. */
  next(): WireRecord | ResumeError | undefined {
    if (this.failed !== undefined) return this.failed
    if (this.dataLeft > 0) return this.takeData()
    // Gather the type byte, then the rest of the header.
    while (true) {
      if (this.headLen === 0) {
        const b = this.byte()
        if (b === undefined) return undefined
        this.head[0] = b
        this.headLen = 1
      }
      const type = this.head[0]!
      const size =
        type === RecordType.Data
          ? RECORD_HEADER.Data
          : type === RecordType.Ack || type === RecordType.End
            ? RECORD_HEADER.Ack
            : type === RecordType.Abort
              ? RECORD_HEADER.Abort
              : 0
      if (size === 0) {
        return this.fail(
          malformed("BadType", `unknown record type 0x${type.toString(16).padStart(2, "0")} in the data phase`)
        )
      }
      while (this.headLen < size) {
        const b = this.byte()
        if (b === undefined) return undefined
        this.head[this.headLen++] = b
      }
      this.headLen = 0
      switch (type) {
        case RecordType.Data: {
          const length = readU32(this.head, 1)
          if (length === 0 || length > MAX_RECORD_PAYLOAD) {
            return this.fail(
              malformed("BadRecordLength", `DATA record of ${length} bytes (must be 1 to ${MAX_RECORD_PAYLOAD})`)
            )
          }
          this.dataLeft = length
          return this.takeData()
        }
        case RecordType.Abort:
          return { _tag: "Abort", code: this.head[1]! }
        default: {
          const position = readU64(this.head, 1)
          if (position === undefined) {
            return this.fail(malformed("PositionTooLarge", "record position exceeds 2^53-1"))
          }
          return type === RecordType.Ack ? { _tag: "Ack", position } : { _tag: "End", position }
        }
      }
    }
  }

  private fail(error: ResumeError): ResumeError {
    this.failed = error
    this.chunks = []
    return error
  }

  private byte(): number | undefined {
    while (this.chunks.length > 0) {
      const chunk = this.chunks[0]!
      if (this.offset < chunk.length) return chunk[this.offset++]
      this.chunks.shift()
      this.offset = 0
    }
    return undefined
  }

  private takeData(): WireRecord | undefined {
    while (this.chunks.length > 0) {
      const chunk = this.chunks[0]!
      const available = chunk.length - this.offset
      if (available === 0) {
        this.chunks.shift()
        this.offset = 0
        continue
      }
      const n = Math.min(available, this.dataLeft)
      const bytes = this.offset === 0 && n === chunk.length ? chunk : chunk.subarray(this.offset, this.offset + n)
      this.offset += n
      this.dataLeft -= n
      return { _tag: "Data", bytes }
    }
    return undefined
  }
}
