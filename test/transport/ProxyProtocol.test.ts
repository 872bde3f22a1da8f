/**
 * The PROXY protocol codec against golden bytes. The v1 lines and the v2 layout are the examples
 * and field tables of haproxy's proxy-protocol.txt (sections 2.1 and 2.2); the v2 bytes were
 * written out by hand from that table and cross-checked against what haproxy 2.6 sends with
 * `send-proxy-v2` (test/e2e/ProxyProtocol.test.ts checks haproxy parsing ours).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as Endpoint from "../../src/transport/Endpoint.ts"
import * as ProxyProtocol from "../../src/transport/ProxyProtocol.ts"

const hex = (text: string) => Uint8Array.from(text.replace(/\s+/g, "").match(/../g)!, (b) => Number.parseInt(b, 16))
const ascii = (text: string) => new TextEncoder().encode(text)
const ep = (address: string, port: number) => Endpoint.make(address, port)!

const SIG = "0d0a0d0a000d0a515549540a"

const goldens = {
  v1tcp4: ascii("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
  v1tcp6: ascii("PROXY TCP6 2001:db8::1 2001:db8::2 5000 443\r\n"),
  v1unknown: ascii("PROXY UNKNOWN\r\n"),
  v2tcp4: hex(`${SIG} 21 11 000c c0a80001 c0a8000b dc04 01bb`),
  v2tcp6: hex(`${SIG} 21 21 0024 20010db8000000000000000000000001 20010db8000000000000000000000002 1388 01bb`),
  v2local: hex(`${SIG} 20 00 0000`)
}

describe("ProxyProtocol: encoding", () => {
  it("v1 TCP4, TCP6 and UNKNOWN lines match the spec", () => {
    assert.deepStrictEqual(ProxyProtocol.encodeV1(ep("192.168.0.1", 56324), ep("192.168.0.11", 443)), goldens.v1tcp4)
    assert.deepStrictEqual(ProxyProtocol.encodeV1(ep("2001:db8::1", 5000), ep("2001:db8::2", 443)), goldens.v1tcp6)
    assert.deepStrictEqual(ProxyProtocol.encodeV1(undefined), goldens.v1unknown)
  })

  it("v2 PROXY over TCP4 and TCP6, and LOCAL without a source, match the spec's layout", () => {
    assert.deepStrictEqual(ProxyProtocol.encodeV2(ep("192.168.0.1", 56324), ep("192.168.0.11", 443)), goldens.v2tcp4)
    assert.deepStrictEqual(ProxyProtocol.encodeV2(ep("2001:db8::1", 5000), ep("2001:db8::2", 443)), goldens.v2tcp6)
    assert.deepStrictEqual(ProxyProtocol.encodeV2(undefined), goldens.v2local)
  })

  it("a destination of another family (or none) becomes the unspecified address of the source's family", () => {
    assert.strictEqual(
      new TextDecoder().decode(ProxyProtocol.encodeV1(ep("10.0.0.1", 1), ep("::1", 2))),
      "PROXY TCP4 10.0.0.1 0.0.0.0 1 0\r\n"
    )
    assert.strictEqual(new TextDecoder().decode(ProxyProtocol.encodeV1(ep("::1", 1))), "PROXY TCP6 ::1 :: 1 0\r\n")
    assert.deepStrictEqual(
      ProxyProtocol.encodeV2(ep("10.0.0.1", 1)),
      hex(`${SIG} 21 11 000c 0a000001 00000000 0001 0000`)
    )
  })
})

const complete = (bytes: Uint8Array) => {
  const result = ProxyProtocol.parse(bytes)
  assert.strictEqual(result._tag, "Complete", JSON.stringify(result))
  return result as Extract<ProxyProtocol.ParseResult, { _tag: "Complete" }>
}

const malformedDetail = (bytes: Uint8Array): string => {
  const result = ProxyProtocol.parse(bytes)
  assert.strictEqual(result._tag, "ProxyProtocolError", `expected an error for ${JSON.stringify(Array.from(bytes))}`)
  const error = result as ProxyProtocol.ProxyProtocolError
  assert.strictEqual(error.reason._tag, "Malformed")
  return error.message
}

describe("ProxyProtocol: parsing", () => {
  it("decodes every golden header, and its length excludes the client's bytes behind it", () => {
    const data = ascii("GET / HTTP/1.0\r\n")
    for (const [name, golden] of Object.entries(goldens)) {
      const bytes = new Uint8Array(golden.length + data.length)
      bytes.set(golden, 0)
      bytes.set(data, golden.length)
      const result = complete(bytes)
      assert.strictEqual(result.length, golden.length, name)
    }
    assert.deepStrictEqual(complete(goldens.v1tcp4).header, {
      version: 1,
      command: "proxy",
      source: { family: "IPv4", address: "192.168.0.1", port: 56324 },
      destination: { family: "IPv4", address: "192.168.0.11", port: 443 }
    })
    assert.deepStrictEqual(complete(goldens.v2tcp6).header, {
      version: 2,
      command: "proxy",
      source: { family: "IPv6", address: "2001:db8::1", port: 5000 },
      destination: { family: "IPv6", address: "2001:db8::2", port: 443 }
    })
    assert.deepStrictEqual(complete(goldens.v1unknown).header, {
      version: 1,
      command: "proxy",
      source: undefined,
      destination: undefined
    })
    assert.deepStrictEqual(complete(goldens.v2local).header, {
      version: 2,
      command: "local",
      source: undefined,
      destination: undefined
    })
  })

  it("every strict prefix of a header is Incomplete (never an error, never a header)", () => {
    for (const golden of Object.values(goldens)) {
      for (let n = 0; n < golden.length; n++) {
        assert.strictEqual(ProxyProtocol.parse(golden.subarray(0, n))._tag, "Incomplete", `prefix ${n}`)
      }
    }
  })

  it("v2 TLVs are skipped, UNIX and UDP carry no address plait uses", () => {
    const withTlv = hex(`${SIG} 21 11 0011 7f000001 7f000002 0050 0051 04 0002 abcd`)
    const parsed = complete(withTlv)
    assert.strictEqual(parsed.length, withTlv.length)
    assert.strictEqual(parsed.header.source?.port, 80)
    const udp = hex(`${SIG} 21 12 000c 7f000001 7f000002 0050 0051`)
    assert.strictEqual(complete(udp).header.source, undefined)
  })

  it("UNKNOWN ignores what follows it up to CRLF, as the spec says", () => {
    assert.strictEqual(complete(ascii("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")).header.source, undefined)
  })

  it("garbage is refused at its first byte, and each malformed header says why", () => {
    assert.include(malformedDetail(ascii("G")), "no PROXY protocol header")
    assert.include(malformedDetail(ascii("PROXZ")), "starts like v1")
    assert.include(malformedDetail(hex("0d0a0d0a01")), "starts like v2")
    assert.include(malformedDetail(ascii("PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n")), "unknown protocol")
    assert.include(malformedDetail(ascii("PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n")), "expected 5 fields")
    assert.include(malformedDetail(ascii("PROXY TCP4 1.2.3.400 1.2.3.4 1 2\r\n")), "invalid")
    assert.include(malformedDetail(ascii("PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n")), "invalid")
    assert.include(malformedDetail(ascii("PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n")), "port")
    assert.include(malformedDetail(ascii("PROXY TCP4 ::1 ::1 1 2\r\n")), "another family")
    assert.include(malformedDetail(ascii("PROXY TCP4 1.2.3.4\n")), "byte 0xa")
    assert.include(malformedDetail(ascii("PROXY TCP4 1.2.3.4\rX")), "CR not followed by LF")
    assert.include(malformedDetail(hex(`${SIG} 31`)), "version 3")
    assert.include(malformedDetail(hex(`${SIG} 22 11 000c`)), "unknown command")
    assert.include(malformedDetail(hex(`${SIG} 21 41 000c`)), "family")
    assert.include(malformedDetail(hex(`${SIG} 21 11 0008`)), "needs 12")
  })

  it("headers are bounded: a v1 line without CRLF within 107 bytes, a v2 length beyond 4096", () => {
    const long = ascii(`PROXY UNKNOWN ${"x".repeat(200)}`)
    assert.include(malformedDetail(long), "no CRLF within 107 bytes")
    assert.strictEqual(ProxyProtocol.parse(long.subarray(0, 106))._tag, "Incomplete")
    assert.include(malformedDetail(hex(`${SIG} 21 11 0ff1`)), "exceeds 4096")
    assert.strictEqual(ProxyProtocol.parse(hex(`${SIG} 21 11 0ff0`))._tag, "Incomplete")
  })
})

describe("ProxyProtocol: readHeader", () => {
  const chunks = (parts: ReadonlyArray<Uint8Array | null>) => {
    let i = 0
    return {
      read: Effect.suspend(() => (i < parts.length ? Effect.succeed(parts[i++]!) : Effect.never)) as Effect.Effect<
        Uint8Array | null,
        never
      >
    }
  }

  it.effect("assembles a header split at every byte and returns the bytes behind it", () =>
    Effect.gen(function* () {
      const bytes = new Uint8Array([...goldens.v2tcp4, 1, 2, 3])
      const received = yield* ProxyProtocol.readHeader(chunks(Array.from(bytes, (b) => Uint8Array.of(b)).slice(0, 29)))
      assert.strictEqual(received.header.source?.address, "192.168.0.1")
      assert.deepStrictEqual(Array.from(received.rest), [])
      const whole = yield* ProxyProtocol.readHeader(chunks([bytes]))
      assert.deepStrictEqual(Array.from(whole.rest), [1, 2, 3])
    })
  )

  it.effect("an end of input, a silent client and garbage each fail with their reason", () =>
    Effect.gen(function* () {
      const closed = yield* Effect.flip(ProxyProtocol.readHeader(chunks([ascii("PROXY TCP4 "), null])))
      assert.strictEqual(closed.reason._tag, "Closed")
      const fiber = yield* Effect.forkChild(
        Effect.flip(ProxyProtocol.readHeader(chunks([ascii("PRO")]), { timeoutMillis: 1000 }))
      )
      yield* Effect.yieldNow
      yield* TestClock.adjust(1000)
      const late = yield* Fiber.join(fiber)
      assert.strictEqual(late.reason._tag, "Timeout")
      assert.include(late.message, "got 3 bytes")
      const garbage = yield* Effect.flip(ProxyProtocol.readHeader(chunks([ascii("SSH-2.0-OpenSSH\r\n")])))
      assert.strictEqual(garbage.reason._tag, "Malformed")
    })
  )
})
