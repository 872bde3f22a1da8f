/**
 * The stream open message against golden bytes (the layout of docs/protocol.md §6.2, written out
 * by hand), its bounds, and reading it off a stream without taking the data behind it. The
 * endpoint helpers it relies on are checked here too.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as Endpoint from "../../src/transport/Endpoint.ts"
import * as OpenMessage from "../../src/transport/OpenMessage.ts"

const hex = (text: string) => Uint8Array.from(text.replace(/\s+/g, "").match(/../g)!, (b) => Number.parseInt(b, 16))
const ascii = (text: string) => new TextEncoder().encode(text)
const ep = (address: string, port: number) => Endpoint.make(address, port)!

const goldens = {
  // version 1, body 10: name "web" (3), family 0.
  bare: hex("01 0005 03 776562 00"),
  // name "db", IPv4 192.0.2.7:40000 → 10.0.0.1:5432.
  ipv4: hex("01 0010 02 6462 04 c0000207 9c40 0a000001 1538"),
  // name "default", IPv6 2001:db8::7:443 → unknown (:: port 0).
  ipv6: hex("01 002d 07 64656661756c74 06 20010db8000000000000000000000007 01bb 00000000000000000000000000000000 0000")
}

describe("OpenMessage: codec", () => {
  it("encodes to the golden bytes and decodes them back", () => {
    const bare = { service: "web", source: undefined, destination: undefined }
    const ipv4 = { service: "db", source: ep("192.0.2.7", 40000), destination: ep("10.0.0.1", 5432) }
    const ipv6 = { service: "default", source: ep("2001:db8::7", 443), destination: undefined }
    assert.deepStrictEqual(OpenMessage.encode(bare), goldens.bare)
    assert.deepStrictEqual(OpenMessage.encode(ipv4), goldens.ipv4)
    assert.deepStrictEqual(OpenMessage.encode(ipv6), goldens.ipv6)
    assert.deepStrictEqual(OpenMessage.decode(goldens.bare), bare)
    assert.deepStrictEqual(OpenMessage.decode(goldens.ipv4), ipv4)
    assert.deepStrictEqual(OpenMessage.decode(goldens.ipv6), ipv6)
  })

  it("extensions of a later version are skipped; ones that overrun the body are malformed", () => {
    const withExtension = hex("01 0009 03 776562 00 09 02 abcd")
    assert.strictEqual((OpenMessage.decode(withExtension) as OpenMessage.OpenMessage).service, "web")
    const overrun = hex("01 0008 03 776562 00 09 03 ab")
    assert.include((OpenMessage.decode(overrun) as Error).message, "inside an extension")
  })

  it("names are bounded in length and charset, on both ends", () => {
    assert.strictEqual(OpenMessage.validateServiceName("web-1.internal_a"), undefined)
    assert.include(OpenMessage.validateServiceName("")!, "empty")
    assert.include(OpenMessage.validateServiceName("x".repeat(64))!, "at most 63")
    assert.include(OpenMessage.validateServiceName("-web")!, "starting with a letter or digit")
    assert.include(OpenMessage.validateServiceName("wéb")!, "letters, digits")
    assert.include(OpenMessage.validateServiceName("a b")!, "letters, digits")
    assert.throws(() => OpenMessage.encode({ service: "a/b", source: undefined, destination: undefined }))
    assert.include((OpenMessage.decode(hex("01 0004 02 2f61 00")) as Error).message, "letters, digits")
    assert.include((OpenMessage.decode(hex("01 0003 00 00 00")) as Error).message, "service name of 0 bytes")
    assert.include((OpenMessage.decode(hex("01 0003 40 00 00")) as Error).message, "service name of 64 bytes")
  })

  it("a bad version, a body too short or too long, and bad families are malformed", () => {
    const reason = (bytes: Uint8Array) => (OpenMessage.decode(bytes) as OpenMessage.OpenMessageError).message
    assert.include(reason(hex("02 0005 03 776562 00")), "version 2")
    assert.include(reason(hex("01 0001 00")), "too short")
    assert.include(reason(hex("01 0201")), "exceeds 512")
    assert.include(reason(hex("01 0005 03 776562 05")), "unknown address family 5")
    assert.include(reason(hex("01 0007 03 776562 04 0102")), "inside the addresses")
    assert.include(reason(hex("01 0006 03 776562 00")), "prefix says 6")
  })
})

/** A stream whose bytes arrive in the given chunks (then it waits forever). */
const streamOf = (chunks: Array<Uint8Array | null>) => {
  const queue = [...chunks]
  return {
    read: Effect.suspend(() => (queue.length === 0 ? Effect.never : Effect.succeed(queue.shift()!)))
  }
}

describe("OpenMessage: read", () => {
  it.effect("reads a message split at every byte, and returns the data that arrived behind it", () =>
    Effect.gen(function* () {
      const bytes = [...goldens.ipv4, ...ascii("data")]
      const split = yield* OpenMessage.read(streamOf(bytes.slice(0, goldens.ipv4.length).map((b) => Uint8Array.of(b))))
      assert.strictEqual(split.message.service, "db")
      assert.strictEqual(split.rest.length, 0)
      const whole = yield* OpenMessage.read(streamOf([Uint8Array.from(bytes)]))
      assert.strictEqual(whole.message.source?.port, 40000)
      assert.strictEqual(new TextDecoder().decode(whole.rest), "data")
    })
  )

  it.effect("an early FIN is Truncated, a stall is a Timeout, a reset is Aborted (no violation)", () =>
    Effect.gen(function* () {
      const truncated = yield* Effect.flip(OpenMessage.read(streamOf([goldens.ipv4.subarray(0, 5), null])))
      assert.strictEqual(truncated.reason._tag, "Truncated")
      assert.isTrue(truncated.isViolation)
      const fiber = yield* Effect.forkChild(
        Effect.flip(OpenMessage.read(streamOf([goldens.ipv4.subarray(0, 2)]), { timeoutMillis: 500 }))
      )
      yield* Effect.yieldNow
      yield* TestClock.adjust(500)
      const late = yield* Fiber.join(fiber)
      assert.strictEqual(late.reason._tag, "Timeout")
      assert.isTrue(late.isViolation)
      const aborted = yield* Effect.flip(OpenMessage.read({ read: Effect.fail("stream 3 was reset") }))
      assert.strictEqual(aborted.reason._tag, "Aborted")
      assert.isFalse(aborted.isViolation)
      const oversized = yield* Effect.flip(OpenMessage.read(streamOf([hex("01 ffff")])))
      assert.strictEqual(oversized.reason._tag, "Malformed")
    })
  )
})

describe("Endpoint", () => {
  it("parses what transports print, normalises mapped IPv4 and prints canonical IPv6", () => {
    assert.deepStrictEqual(Endpoint.parse("127.0.0.1:5000"), { family: "IPv4", address: "127.0.0.1", port: 5000 })
    assert.deepStrictEqual(Endpoint.parse("[::1]:7"), { family: "IPv6", address: "::1", port: 7 })
    assert.deepStrictEqual(Endpoint.parse("[::ffff:192.0.2.1]:80"), { family: "IPv4", address: "192.0.2.1", port: 80 })
    assert.deepStrictEqual(Endpoint.parse("[2001:DB8:0:0:1:0:0:1]:1")?.address, "2001:db8::1:0:0:1")
    assert.deepStrictEqual(Endpoint.parse("[fe80::1%eth0]:1")?.address, "fe80::1")
    assert.strictEqual(Endpoint.make("1:2:3:4:5:6:7:8", 1)?.address, "1:2:3:4:5:6:7:8")
    assert.strictEqual(Endpoint.make("::", 1)?.address, "::")
    assert.strictEqual(Endpoint.make("0:0:1::", 1)?.address, "0:0:1::")
    assert.strictEqual(Endpoint.make("::1.2.3.4", 1)?.address, "::102:304")
    for (const bad of ["unknown", "memory:a", "host.example:80", "1.2.3.4:99999", "1.2.3.4", "[::1]:x"]) {
      assert.strictEqual(Endpoint.parse(bad), undefined, bad)
    }
    assert.strictEqual(Endpoint.format(ep("::1", 9)), "[::1]:9")
    assert.deepStrictEqual(Array.from(Endpoint.addressBytes(ep("::ffff:10.1.2.3", 1))), [10, 1, 2, 3])
  })
})
