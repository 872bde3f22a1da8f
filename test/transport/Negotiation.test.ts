/**
 * Link negotiation over in-memory pairs: plait ↔ plait agree, plait ↔ plain yamux (a session that
 * knows nothing of it) falls back to plain yamux on both ends with the session working, and every
 * malformed, stalled or misdirected exchange fails with a `handshake` error naming the problem.
 * The same fallback against real yamux implementations is in test/interop/.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as Session from "../../src/session/Session.ts"
import * as Memory from "../../src/transport/Memory.ts"
import * as Negotiation from "../../src/transport/Negotiation.ts"
import type { Transport } from "../../src/transport/Transport.ts"

const ascii = (text: string) => new TextEncoder().encode(text)

/** Reads until `n` bytes have arrived (bounded by `n`). */
const readBytes = (transport: Transport, n: number) =>
  Effect.gen(function* () {
    const parts: Array<number> = []
    while (parts.length < n) {
      const chunk = yield* transport.read
      if (chunk === null) break
      parts.push(...chunk)
    }
    return Uint8Array.from(parts)
  })

const echoOnce = (session: Session.Session) =>
  Effect.scoped(
    Effect.gen(function* () {
      const stream = yield* session.accept
      const got = yield* stream.readAll
      yield* stream.write([got])
    })
  )

const roundTrip = (session: Session.Session, text: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const stream = yield* session.open
      yield* stream.write([ascii(text)])
      yield* stream.closeWrite
      return new TextDecoder().decode(yield* stream.readAll)
    })
  )

describe("Negotiation: hello codec", () => {
  it("a hello encodes to the documented bytes and decodes back", () => {
    const hello = Negotiation.helloOf({ role: "proxy" })
    const bytes = Negotiation.encodeHello(hello)
    // "plait-link", version 1, role proxy, 5 bytes of capabilities: id 1, length 1, value 1.
    assert.deepStrictEqual(Array.from(bytes), [...ascii("plait-link"), 1, 1, 0, 5, 0, 1, 0, 1, 1])
    assert.deepStrictEqual(Negotiation.decodeHello(bytes, "peer"), hello)
  })

  it("unknown capabilities are ignored; a capability both list is agreed at the lower version", () => {
    const theirs: Negotiation.Hello = {
      role: "server",
      capabilities: new Map([
        [Negotiation.Capability.StreamOpen, Uint8Array.of(3)],
        [0x7777, ascii("from the future")]
      ])
    }
    const decoded = Negotiation.decodeHello(Negotiation.encodeHello(theirs), "peer") as Negotiation.Hello
    const ours = Negotiation.helloOf({ role: "proxy" })
    assert.deepStrictEqual(Negotiation.agree(ours, decoded), {
      peer: "plait",
      peerRole: "server",
      streamOpen: 1,
      resume: false
    })
    assert.deepStrictEqual(Negotiation.agree(decoded, ours), {
      peer: "plait",
      peerRole: "proxy",
      streamOpen: 1,
      resume: false
    })
    const none = Negotiation.helloOf({ role: "server", streamOpen: 0 })
    assert.strictEqual(Negotiation.agree(ours, none).streamOpen, 0)
  })

  it("resumption is agreed only when both offer it (capability 2, version 1)", () => {
    const offering = Negotiation.helloOf({ role: "proxy", resume: true })
    assert.deepStrictEqual(Array.from(offering.capabilities.get(Negotiation.Capability.Resume)!), [1])
    const server = Negotiation.helloOf({ role: "server", resume: true })
    const plainServer = Negotiation.helloOf({ role: "server" })
    assert.isTrue(Negotiation.agree(offering, server).resume)
    assert.isTrue(Negotiation.agree(server, offering).resume)
    assert.isFalse(Negotiation.agree(offering, plainServer).resume)
    assert.isFalse(Negotiation.agree(plainServer, offering).resume)
    assert.isFalse(Negotiation.PLAIN.resume)
  })

  it("bad magic, version, role, oversized and duplicate capabilities are refused at their first bad byte", () => {
    const reason = (bytes: Uint8Array) => {
      const result = Negotiation.checkHelloPrefix(bytes, "peer")
      return typeof result === "object" ? result.message : String(result)
    }
    assert.include(reason(ascii("plait-auth")), "asks for a token")
    assert.include(reason(Uint8Array.of(0x16, 3, 1)), "speaks TLS")
    assert.include(reason(Uint8Array.of(...ascii("plait-link"), 2)), "version 2")
    assert.include(reason(Uint8Array.of(...ascii("plait-link"), 1, 9)), "unknown role 9")
    assert.include(reason(Uint8Array.of(...ascii("plait-link"), 1, 1, 4, 1)), "1025 bytes of capabilities")
    assert.strictEqual(reason(Uint8Array.of(...ascii("plait-link"), 1, 1, 4, 0)), String(14 + 1024))
    const twice = Uint8Array.of(...ascii("plait-link"), 1, 1, 0, 8, 0, 1, 0, 0, 0, 1, 0, 0)
    assert.include((Negotiation.decodeHello(twice, "peer") as Error).message, "twice")
    const cut = Uint8Array.of(...ascii("plait-link"), 1, 1, 0, 5, 0, 1, 0, 9, 1)
    assert.include((Negotiation.decodeHello(cut, "peer") as Error).message, "ends inside capability 1")
  })
})

describe("Negotiation: over a transport", () => {
  it.effect("plait dialer and plait acceptor agree on both ends, and the session behind runs", () =>
    Effect.gen(function* () {
      const pair = yield* Memory.makePair()
      const [dialled, accepted] = yield* Effect.all(
        [Negotiation.dialer({ role: "proxy" })(pair.a), Negotiation.acceptor({ role: "server" })(pair.b)],
        { concurrency: 2 }
      )
      assert.deepStrictEqual(dialled.agreement, { peer: "plait", peerRole: "server", streamOpen: 1, resume: false })
      assert.deepStrictEqual(accepted.agreement, { peer: "plait", peerRole: "proxy", streamOpen: 1, resume: false })
      const client = yield* Session.make(dialled.transport, { client: true })
      const server = yield* Session.make(accepted.transport, { client: false })
      const echo = yield* Effect.forkChild(echoOnce(server))
      assert.strictEqual(yield* roundTrip(client, "hello"), "hello")
      yield* Fiber.join(echo)
    }).pipe(Effect.scoped)
  )

  it.effect("a plait dialer against a plain yamux acceptor: its pong means plain, and the session runs", () =>
    Effect.gen(function* () {
      const pair = yield* Memory.makePair()
      // The acceptor is a bare session: it answers the probe like any ping.
      const server = yield* Session.make(pair.b, { client: false })
      const dialled = yield* Negotiation.dialer({ role: "proxy" })(pair.a)
      assert.deepStrictEqual(dialled.agreement, Negotiation.PLAIN)
      const client = yield* Session.make(dialled.transport, { client: true })
      const echo = yield* Effect.forkChild(echoOnce(server))
      assert.strictEqual(yield* roundTrip(client, "plain dialer"), "plain dialer")
      yield* Fiber.join(echo)
      assert.strictEqual(client.isClosed(), false, "the unsolicited pong was ignored")
    }).pipe(Effect.scoped)
  )

  it.effect("a plain yamux dialer against a plait acceptor: its first frame means plain, none of it lost", () =>
    Effect.gen(function* () {
      const pair = yield* Memory.makePair()
      const client = yield* Session.make(pair.a, { client: true })
      const opened = yield* Effect.forkChild(roundTrip(client, "plain acceptor"))
      const accepted = yield* Negotiation.acceptor({ role: "server" })(pair.b)
      assert.deepStrictEqual(accepted.agreement, Negotiation.PLAIN)
      const server = yield* Session.make(accepted.transport, { client: false })
      yield* echoOnce(server)
      assert.strictEqual(yield* Fiber.join(opened), "plain acceptor")
    }).pipe(Effect.scoped)
  )

  it.effect("an acceptor that hears nothing within the deadline takes the peer for plain yamux", () =>
    Effect.gen(function* () {
      const pair = yield* Memory.makePair()
      const fiber = yield* Effect.forkChild(Negotiation.acceptor({ role: "server", timeoutMillis: 1000 })(pair.b))
      yield* Effect.yieldNow
      yield* TestClock.adjust(1000)
      assert.deepStrictEqual((yield* Fiber.join(fiber)).agreement, Negotiation.PLAIN)
    }).pipe(Effect.scoped)
  )

  it.effect("a dialer whose peer stays silent takes it for plain yamux; one whose peer stalls mid-hello fails", () =>
    Effect.gen(function* () {
      const silent = yield* Memory.makePair()
      const fiber = yield* Effect.forkChild(Negotiation.dialer({ role: "proxy", timeoutMillis: 1000 })(silent.a))
      yield* Effect.yieldNow
      yield* TestClock.adjust(1000)
      assert.deepStrictEqual((yield* Fiber.join(fiber)).agreement, Negotiation.PLAIN)

      const stalled = yield* Memory.makePair()
      const dialing = yield* Effect.forkChild(
        Effect.flip(Negotiation.dialer({ role: "proxy", timeoutMillis: 1000 })(stalled.a))
      )
      yield* readBytes(stalled.b, 12)
      yield* stalled.b.write([ascii("plait-li")])
      yield* TestClock.adjust(1000)
      const error = yield* Fiber.join(dialing)
      assert.strictEqual(error.operation, "handshake")
      assert.include(error.message, "did not finish it within 1000 ms")
    }).pipe(Effect.scoped)
  )

  it.effect("a probe followed by no hello, garbage or the wrong role fails the acceptor with its reason", () =>
    Effect.gen(function* () {
      const run = (answer: Uint8Array | undefined) =>
        Effect.gen(function* () {
          const pair = yield* Memory.makePair()
          const fiber = yield* Effect.forkChild(
            Effect.flip(Negotiation.acceptor({ role: "server", timeoutMillis: 1000 })(pair.b))
          )
          yield* pair.a.write([Negotiation.PROBE])
          const hello = yield* readBytes(pair.a, Negotiation.HELLO_HEADER_LENGTH + 5)
          assert.deepStrictEqual(Array.from(hello.subarray(0, 10)), Array.from(Negotiation.MAGIC))
          if (answer === undefined) yield* TestClock.adjust(1000)
          else yield* pair.a.write([answer])
          return (yield* Fiber.join(fiber)).message
        })
      assert.include(yield* run(undefined), "sent the link probe but no hello within 1000 ms")
      assert.include(yield* run(Uint8Array.of(0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0)), "sent no plait link hello")
      assert.include(
        yield* run(Negotiation.encodeHello(Negotiation.helloOf({ role: "server" }))),
        "is a plait server too"
      )
    }).pipe(Effect.scoped)
  )

  it.effect("bytes a plait dialer sends behind its hello reach the acceptor's session", () =>
    Effect.gen(function* () {
      const pair = yield* Memory.makePair()
      const accepting = yield* Effect.forkChild(Negotiation.acceptor({ role: "server" })(pair.b))
      yield* pair.a.write([Negotiation.PROBE])
      yield* readBytes(pair.a, Negotiation.HELLO_HEADER_LENGTH + 5)
      yield* pair.a.write([Negotiation.encodeHello(Negotiation.helloOf({ role: "proxy" })), ascii("behind")])
      const accepted = yield* Fiber.join(accepting)
      assert.strictEqual(new TextDecoder().decode(yield* readBytes(accepted.transport, 6)), "behind")
    }).pipe(Effect.scoped)
  )
})
