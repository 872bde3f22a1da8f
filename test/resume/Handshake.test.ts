/**
 * The handshake's pure steps and cryptography: X25519 against RFC 7748's vectors, the secret and
 * proofs against an independent composition of HMAC-SHA256, the hello exchange (granted, declined,
 * unverified), and every verdict of the server's judgement of a resume request.
 */
import * as crypto from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import {
  acceptHello,
  answerHello,
  judgeResume,
  MAX_FAILED_PROOFS,
  makeTicketState
} from "../../src/internal/resume/Handshake.ts"
import {
  acceptProof,
  agree,
  confirmTag,
  deriveSecret,
  type KeyShare,
  makeKeyShare,
  resumeProof
} from "../../src/internal/resume/Keys.ts"
import {
  type ClientHello,
  encodeMessage,
  FLAG_RESUME,
  parseMessage,
  type ResumeRequest,
  type ServerHello
} from "../../src/internal/resume/Wire.ts"
import { ResumeError } from "../../src/resume/ResumeError.ts"
import { fromHex, toHex } from "./fixtures/goldens.ts"

const enc = new TextEncoder()

/** An X25519 key share from a raw RFC 7748 private key. */
const shareFromRaw = (privateHex: string, publicHex: string): KeyShare => ({
  privateKey: crypto.createPrivateKey({
    key: Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), Buffer.from(privateHex, "hex")]),
    format: "der",
    type: "pkcs8"
  }),
  publicKey: fromHex(publicHex)
})

// RFC 7748 §6.1.
const ALICE = shareFromRaw(
  "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
  "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
)
const BOB = shareFromRaw(
  "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
  "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
)
const RFC_SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"

const u64 = (n: number) => {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}
const u32 = (n: number) => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}
const hmacHex = (key: Uint8Array | string, ...parts: Array<Uint8Array | string>) => {
  const h = crypto.createHmac("sha256", typeof key === "string" ? Buffer.from(key) : key)
  for (const p of parts) h.update(typeof p === "string" ? Buffer.from(p) : p)
  return h.digest("hex")
}

describe("Resume keys", () => {
  it("X25519 agrees with RFC 7748's test vector, both ways", () => {
    assert.strictEqual(toHex(agree(ALICE, BOB.publicKey)!), RFC_SHARED)
    assert.strictEqual(toHex(agree(BOB, ALICE.publicKey)!), RFC_SHARED)
  })

  it("a low-order or malformed peer key yields no secret", () => {
    const own = makeKeyShare()
    assert.isUndefined(agree(own, new Uint8Array(32)), "all-zero key (low order)")
    assert.isUndefined(agree(own, fromHex(`01${"00".repeat(31)}`)), "the point 1 (low order)")
    assert.isUndefined(agree(own, new Uint8Array(31)), "31-byte key")
  })

  it("secret and proofs are HMAC-SHA256 over the documented labels and fields", () => {
    const shared = fromHex(RFC_SHARED)
    const ticket = fromHex("33".repeat(16))
    const binding = enc.encode("exporter")
    const secret = deriveSecret({
      token: enc.encode("tok"),
      shared,
      clientKey: ALICE.publicKey,
      serverKey: BOB.publicKey,
      ticket,
      binding
    })
    assert.strictEqual(
      toHex(secret),
      hmacHex("tok", "plait-resume-v1/secret", shared, ALICE.publicKey, BOB.publicKey, ticket, u32(8), binding)
    )
    assert.strictEqual(
      toHex(resumeProof(secret, ticket, 3, 2 ** 40, binding)),
      hmacHex(secret, "plait-resume-v1/resume", ticket, u64(3), u64(2 ** 40), u32(8), binding)
    )
    assert.strictEqual(
      toHex(acceptProof(secret, ticket, 3, 7, 9, new Uint8Array(0))),
      hmacHex(secret, "plait-resume-v1/accept", ticket, u64(3), u64(7), u64(9), u32(0))
    )
    assert.strictEqual(
      toHex(confirmTag(secret, enc.encode("a"), enc.encode("b"))),
      hmacHex(secret, "plait-resume-v1/confirm", "a", "b")
    )
  })

  it("without a token the secret still depends on the X25519 agreement (an observer cannot derive it)", () => {
    const base = {
      token: new Uint8Array(0),
      clientKey: ALICE.publicKey,
      serverKey: BOB.publicKey,
      ticket: new Uint8Array(16),
      binding: new Uint8Array(0)
    }
    const a = deriveSecret({ ...base, shared: fromHex(RFC_SHARED) })
    const b = deriveSecret({ ...base, shared: fromHex(`${"00".repeat(31)}01`) })
    assert.notStrictEqual(toHex(a), toHex(b))
  })
})

/** Runs the hello exchange; returns both outcomes. */
const hello = (options: {
  readonly clientToken?: string
  readonly serverToken?: string
  readonly clientFlags?: number
  readonly windowMillis?: number
  readonly clientBinding?: string
  readonly serverBinding?: string
  readonly tamper?: (bytes: Uint8Array) => void
}) => {
  const clientShare = makeKeyShare()
  const serverShare = makeKeyShare()
  const clientHello: ClientHello = {
    _tag: "ClientHello",
    flags: options.clientFlags ?? FLAG_RESUME,
    bufferBytes: 1 << 20,
    key: clientShare.publicKey
  }
  const helloBytes = encodeMessage(clientHello)
  const server = answerHello(
    clientHello,
    helloBytes,
    serverShare,
    { token: enc.encode(options.serverToken ?? ""), binding: enc.encode(options.serverBinding ?? "") },
    { windowMillis: options.windowMillis ?? 30_000, bufferBytes: 1 << 22 }
  )
  const replyBytes = Uint8Array.from(server.bytes)
  options.tamper?.(replyBytes)
  const parsed = parseMessage(replyBytes, ["ServerHello"])
  assert.ok(parsed !== undefined && !(parsed instanceof ResumeError))
  const client = acceptHello(clientShare, helloBytes, 1 << 20, parsed.message as ServerHello, replyBytes, {
    token: enc.encode(options.clientToken ?? ""),
    binding: enc.encode(options.clientBinding ?? "")
  })
  return { server: server.session, client }
}

describe("Resume handshake: a new session", () => {
  it("granted: both sides hold the same ticket and secret", () => {
    const { client, server } = hello({ clientToken: "t", serverToken: "t" })
    assert.strictEqual(client._tag, "Granted")
    assert.ok(server !== undefined && client._tag === "Granted")
    assert.strictEqual(toHex(client.secret), toHex(server.secret))
    assert.strictEqual(toHex(client.ticket), toHex(server.ticket))
    assert.strictEqual(client.windowMillis, 30_000)
  })

  it("two sessions get different tickets and secrets", () => {
    const one = hello({})
    const two = hello({})
    assert.notStrictEqual(toHex(one.server!.ticket), toHex(two.server!.ticket))
    assert.notStrictEqual(toHex(one.server!.secret), toHex(two.server!.secret))
  })

  it("declined when the client does not ask, or the server's window is 0", () => {
    assert.strictEqual(hello({ clientFlags: 0 }).client._tag, "Declined")
    assert.strictEqual(hello({ windowMillis: 0 }).client._tag, "Declined")
    assert.isUndefined(hello({ windowMillis: 0 }).server)
  })

  it("unverified with a different token: the proxy does not trust that ticket", () => {
    const { client } = hello({ clientToken: "a", serverToken: "b" })
    assert.strictEqual(client._tag, "Unverified")
    assert.match(client._tag === "Unverified" ? client.message : "", /--token/)
  })

  it("unverified when channel bindings differ (a relay between two TLS connections)", () => {
    assert.strictEqual(hello({ clientBinding: "x", serverBinding: "y" }).client._tag, "Unverified")
  })

  it("unverified when the ServerHello was altered on the way (the window is in the transcript)", () => {
    // Byte 8 + 4 + 32 + 16 is the first byte of the window field.
    assert.strictEqual(hello({ tamper: (b) => (b[60] ^= 1) }).client._tag, "Unverified")
  })
})

describe("Resume handshake: the server's verdict", () => {
  const setup = () => {
    const { client, server } = hello({ clientToken: "tok", serverToken: "tok" })
    assert.ok(client._tag === "Granted" && server !== undefined)
    const state = makeTicketState(server.ticket, server.secret)
    const request = (attempt: number, received: number, secret = client.secret, binding = ""): ResumeRequest => ({
      _tag: "ResumeRequest",
      ticket: client.ticket,
      attempt,
      received,
      proof: resumeProof(secret, client.ticket, attempt, received, enc.encode(binding))
    })
    return { state, request }
  }
  const all = () => true

  it("a valid, fresh request is accepted and its attempt recorded", () => {
    const { state, request } = setup()
    assert.deepStrictEqual(judgeResume(state, request(1, 100), new Uint8Array(0), all), { _tag: "Accept" })
    assert.strictEqual(state.lastAttempt, 1)
    assert.deepStrictEqual(judgeResume(state, request(5, 100), new Uint8Array(0), all), { _tag: "Accept" })
  })

  it("the same request played again is Replayed, and changes nothing", () => {
    const { state, request } = setup()
    const r = request(1, 100)
    judgeResume(state, r, new Uint8Array(0), all)
    assert.deepStrictEqual(judgeResume(state, r, new Uint8Array(0), all), {
      _tag: "Refuse",
      reason: "Replayed",
      fatal: false
    })
    assert.deepStrictEqual(judgeResume(state, request(1, 50), new Uint8Array(0), all), {
      _tag: "Refuse",
      reason: "Replayed",
      fatal: false
    })
    assert.strictEqual(state.failedProofs, 0)
    assert.isFalse(state.revoked)
  })

  it("a forged proof, or one made with another session's secret, is BadProof and counted", () => {
    const { state, request } = setup()
    const forged = { ...request(1, 0), proof: new Uint8Array(32) }
    assert.deepStrictEqual(judgeResume(state, forged, new Uint8Array(0), all), {
      _tag: "Refuse",
      reason: "BadProof",
      fatal: false
    })
    const other = hello({ clientToken: "tok", serverToken: "tok" }).client
    assert.ok(other._tag === "Granted")
    assert.deepStrictEqual(judgeResume(state, request(1, 0, other.secret), new Uint8Array(0), all), {
      _tag: "Refuse",
      reason: "BadProof",
      fatal: false
    })
    assert.strictEqual(state.failedProofs, 2)
    assert.strictEqual(state.lastAttempt, 0, "no failed proof advances the attempt")
    assert.deepStrictEqual(judgeResume(state, request(1, 0), new Uint8Array(0), all), { _tag: "Accept" })
  })

  it("a proof for another connection's channel binding is BadProof", () => {
    const { state, request } = setup()
    assert.strictEqual(judgeResume(state, request(1, 0, undefined, "conn-a"), enc.encode("conn-b"), all)._tag, "Refuse")
    assert.deepStrictEqual(judgeResume(state, request(2, 0, undefined, "conn-b"), enc.encode("conn-b"), all), {
      _tag: "Accept"
    })
  })

  it(`after ${MAX_FAILED_PROOFS} failed proofs the ticket is revoked (fatal), even for the right proof`, () => {
    const { state, request } = setup()
    const forged = { ...request(1, 0), proof: new Uint8Array(32) }
    for (let i = 1; i < MAX_FAILED_PROOFS; i++)
      assert.strictEqual(judgeResume(state, forged, new Uint8Array(0), all)._tag, "Refuse")
    assert.deepStrictEqual(judgeResume(state, forged, new Uint8Array(0), all), {
      _tag: "Refuse",
      reason: "TooManyAttempts",
      fatal: true
    })
    assert.deepStrictEqual(judgeResume(state, request(1, 0), new Uint8Array(0), all), {
      _tag: "Refuse",
      reason: "TooManyAttempts",
      fatal: true
    })
  })

  it("a position the replay buffer cannot serve is PositionIncompatible (fatal), after the proof", () => {
    const { state, request } = setup()
    const served: Array<number> = []
    const canServe = (p: number) => {
      served.push(p)
      return p >= 1000
    }
    assert.deepStrictEqual(judgeResume(state, request(1, 999), new Uint8Array(0), canServe), {
      _tag: "Refuse",
      reason: "PositionIncompatible",
      fatal: true
    })
    assert.deepStrictEqual(served, [999])
    const forged = { ...request(2, 5), proof: new Uint8Array(32) }
    judgeResume(state, forged, new Uint8Array(0), canServe)
    assert.deepStrictEqual(served, [999], "an unverified request learns nothing about positions")
  })
})
