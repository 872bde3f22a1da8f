import * as crypto from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import * as Security from "../../src/cli/Security.ts"
import * as PlaitProxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import * as Auth from "../../src/transport/Auth.ts"
import * as Memory from "../../src/transport/Memory.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import * as Tls from "../../src/transport/Tls.ts"
import type { Transport, TransportError } from "../../src/transport/Transport.ts"
import { concatAll, decode, firstDifference, randomBytes, readExactly, text } from "../transport/helpers.ts"
import { makePki } from "./certs.ts"
import { ANY_PORT, awaitEnd, roundTrip } from "./helpers.ts"

const TOKEN = "correct horse battery staple 0123456789"

const failureOf = <A>(exit: Exit.Exit<A, TransportError>): TransportError => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure, got a success")
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (reason === undefined || reason._tag !== "Fail") throw new Error("expected a typed failure")
  return reason.error
}

const hmac = (label: string, a: Uint8Array, b: Uint8Array) =>
  new Uint8Array(crypto.createHmac("sha256", TOKEN).update(label).update(a).update(b).digest())

/** Plays the server by hand: sends a challenge, returns its nonce. */
const sendChallenge = (t: Transport) =>
  Effect.gen(function* () {
    const nonce = new Uint8Array(crypto.randomBytes(Auth.NONCE_LENGTH))
    yield* t.write([Auth.MAGIC, Uint8Array.of(Auth.VERSION), nonce])
    return nonce
  })

/** Trickles `bytes` one per `everyMs`, ignoring write failures (the peer may close). */
const trickle = (t: Transport, bytes: Uint8Array, everyMs: number) =>
  Effect.gen(function* () {
    for (let i = 0; i < bytes.length; i++) {
      yield* t.write([bytes.subarray(i, i + 1)])
      yield* Effect.sleep(everyMs)
    }
  }).pipe(Effect.ignore)

describe("Auth handshake", () => {
  it.live(
    "succeeds with the same token on both sides, and the session bytes flow both ways",
    () =>
      Effect.gen(function* () {
        const { a, b } = yield* Memory.makePair()
        const auth = Auth.makeServer(TOKEN)
        const [client, server] = yield* Effect.all([Auth.client(TOKEN)(a), auth.handshake(b)], { concurrency: 2 })
        yield* client.write([text("ping")])
        assert.strictEqual(decode(yield* readExactly(server, 4)), "ping")
        yield* server.write([text("pong")])
        assert.strictEqual(decode(yield* readExactly(client, 4)), "pong")
        assert.deepStrictEqual(auth.stats(), {
          accepted: 1,
          rejected: 0,
          timedOut: 0,
          malformed: 0,
          closed: 0,
          failed: 0
        })
      }).pipe(Effect.timeout(5_000)),
    10_000
  )

  it.live(
    "bytes that arrive in the same read as the last handshake message are kept for the session",
    () =>
      Effect.gen(function* () {
        // Client side: the verdict and the first session bytes in one write.
        const one = yield* Memory.makePair()
        const fakeServer = Effect.gen(function* () {
          const serverNonce = yield* sendChallenge(one.b)
          const answer = yield* readExactly(one.b, Auth.ANSWER_LENGTH)
          const clientNonce = answer.subarray(1, 1 + Auth.NONCE_LENGTH)
          assert.deepStrictEqual(
            answer.subarray(1 + Auth.NONCE_LENGTH),
            hmac("plait-auth-v1/client", serverNonce, clientNonce)
          )
          yield* one.b.write([
            Uint8Array.of(Auth.ACCEPTED),
            hmac("plait-auth-v1/server", clientNonce, serverNonce),
            text("early bytes")
          ])
        })
        const [client] = yield* Effect.all([Auth.client(TOKEN)(one.a), fakeServer], { concurrency: 2 })
        assert.strictEqual(decode(yield* readExactly(client, 11)), "early bytes")

        // Server side: the answer and the first session bytes in one write.
        const two = yield* Memory.makePair()
        const fakeClient = Effect.gen(function* () {
          const challenge = yield* readExactly(two.a, Auth.CHALLENGE_LENGTH)
          const serverNonce = challenge.subarray(Auth.MAGIC.length + 1)
          const clientNonce = new Uint8Array(crypto.randomBytes(Auth.NONCE_LENGTH))
          yield* two.a.write([
            Uint8Array.of(Auth.VERSION),
            clientNonce,
            hmac("plait-auth-v1/client", serverNonce, clientNonce),
            text("a yamux frame")
          ])
        })
        const [server] = yield* Effect.all([Auth.server(TOKEN)(two.b), fakeClient], { concurrency: 2 })
        assert.strictEqual(decode(yield* readExactly(server, 13)), "a yamux frame")
        const verdict = yield* readExactly(two.a, 1 + Auth.PROOF_LENGTH)
        assert.strictEqual(verdict[0], Auth.ACCEPTED)
      }).pipe(Effect.timeout(5_000)),
    10_000
  )

  it.live(
    "a wrong token fails both sides as rejected; the server closes the connection",
    () =>
      Effect.gen(function* () {
        const { a, b } = yield* Memory.makePair()
        const auth = Auth.makeServer(TOKEN)
        const [clientExit, serverExit] = yield* Effect.all(
          [Effect.exit(Auth.client("not the token")(a)), Effect.exit(auth.handshake(b))],
          { concurrency: 2 }
        )
        const clientError = failureOf(clientExit)
        const serverError = failureOf(serverExit)
        assert.strictEqual(clientError.operation, "handshake")
        assert.strictEqual(Auth.failureReason(clientError), "rejected")
        assert.include(clientError.message, "--token")
        assert.strictEqual(Auth.failureReason(serverError), "rejected")
        assert.strictEqual(auth.stats().rejected, 1)
        assert.strictEqual(auth.stats().accepted, 0)
        // The server closed its side: writes to it fail.
        const write = yield* Effect.exit(b.write([text("x")]))
        assert.isTrue(Exit.isFailure(write))
      }).pipe(Effect.timeout(5_000)),
    10_000
  )

  it.live(
    "a server with another token cannot fool the client: the server's proof is checked",
    () =>
      Effect.gen(function* () {
        const { a, b } = yield* Memory.makePair()
        // A server that accepts anything and answers with a made-up proof.
        const liar = Effect.gen(function* () {
          yield* sendChallenge(b)
          yield* readExactly(b, Auth.ANSWER_LENGTH)
          yield* b.write([Uint8Array.of(Auth.ACCEPTED), new Uint8Array(Auth.PROOF_LENGTH)])
        })
        const [exit] = yield* Effect.all([Effect.exit(Auth.client(TOKEN)(a)), liar], { concurrency: 2 })
        const error = failureOf(exit)
        assert.strictEqual(Auth.failureReason(error), "rejected")
        assert.include(error.message, "could not prove")
      }).pipe(Effect.timeout(5_000)),
    10_000
  )

  it.live(
    "garbage is refused on its first bytes, long before the timeout, on both sides",
    () =>
      Effect.gen(function* () {
        const one = yield* Memory.makePair()
        const auth = Auth.makeServer(TOKEN, { timeoutMillis: 5_000 })
        const started = Date.now()
        const [serverExit] = yield* Effect.all(
          [Effect.exit(auth.handshake(one.b)), one.a.write([text("GET / HTTP/1.1\r\nHost: x\r\n\r\n")])],
          { concurrency: 2 }
        )
        assert.strictEqual(Auth.failureReason(failureOf(serverExit)), "malformed")
        assert.strictEqual(auth.stats().malformed, 1)

        // A plain yamux peer (version byte 0) talking to a token server.
        const two = yield* Memory.makePair()
        const [plainExit] = yield* Effect.all([Effect.exit(auth.handshake(two.b)), two.a.write([new Uint8Array(12)])], {
          concurrency: 2
        })
        assert.include(failureOf(plainExit).message, "plain yamux")

        // A token proxy talking to a plain yamux server that sends a frame first.
        const three = yield* Memory.makePair()
        const [clientExit] = yield* Effect.all(
          [
            Effect.exit(Auth.client(TOKEN, { timeoutMillis: 5_000 })(three.a)),
            three.b.write([Uint8Array.of(0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7)])
          ],
          { concurrency: 2 }
        )
        const clientError = failureOf(clientExit)
        assert.strictEqual(Auth.failureReason(clientError), "malformed")
        assert.include(clientError.message, "plain yamux")

        // A newer protocol version is named, not mistaken for garbage.
        const four = yield* Memory.makePair()
        const [versionExit] = yield* Effect.all(
          [
            Effect.exit(Auth.client(TOKEN)(four.a)),
            four.b.write([Auth.MAGIC, Uint8Array.of(2), new Uint8Array(Auth.NONCE_LENGTH)])
          ],
          { concurrency: 2 }
        )
        assert.include(failureOf(versionExit).message, "version 2")
        assert.isBelow(Date.now() - started, 2_000)
      }).pipe(Effect.timeout(10_000)),
    15_000
  )

  it.live(
    "a peer that closes mid-handshake fails it as closed",
    () =>
      Effect.gen(function* () {
        const { a, b } = yield* Memory.makePair()
        const auth = Auth.makeServer(TOKEN)
        const [exit] = yield* Effect.all(
          [
            Effect.exit(auth.handshake(b)),
            a.write([Uint8Array.of(Auth.VERSION, 1, 2, 3)]).pipe(Effect.andThen(a.close))
          ],
          { concurrency: 2 }
        )
        const error = failureOf(exit)
        assert.strictEqual(Auth.failureReason(error), "closed")
        assert.include(error.message, "after 4 of 65 bytes")
        assert.strictEqual(auth.stats().closed, 1)
      }).pipe(Effect.timeout(5_000)),
    10_000
  )

  it.live(
    "a slow-loris peer (a byte every 100 ms) is cut off by the handshake timeout",
    () =>
      Effect.gen(function* () {
        const { a, b } = yield* Memory.makePair()
        const auth = Auth.makeServer(TOKEN, { timeoutMillis: 300 })
        const bytes = concatAll([Uint8Array.of(Auth.VERSION), randomBytes(Auth.ANSWER_LENGTH - 1, 3)])
        const loris = yield* Effect.forkChild(trickle(a, bytes, 100))
        const started = Date.now()
        const exit = yield* Effect.exit(auth.handshake(b))
        const elapsed = Date.now() - started
        const error = failureOf(exit)
        assert.strictEqual(Auth.failureReason(error), "timeout")
        assert.isAtLeast(elapsed, 250)
        assert.isBelow(elapsed, 2_000)
        assert.strictEqual(auth.stats().timedOut, 1)
        yield* Fiber.interrupt(loris)
      }).pipe(Effect.timeout(5_000)),
    10_000
  )

  it.live(
    "a client facing a silent server gives up after its timeout with a hint",
    () =>
      Effect.gen(function* () {
        const { a } = yield* Memory.makePair()
        const error = failureOf(yield* Effect.exit(Auth.client(TOKEN, { timeoutMillis: 200 })(a)))
        assert.strictEqual(Auth.failureReason(error), "timeout")
        assert.include(error.message, "--token")
      }).pipe(Effect.timeout(5_000)),
    10_000
  )

  it.effect("tokenFromFlags: --token, else PLAIT_TOKEN, else none; empty refused", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* Security.tokenFromFlags({ token: TOKEN }, { PLAIT_TOKEN: "other" }), TOKEN)
      assert.strictEqual(yield* Security.tokenFromFlags({}, { PLAIT_TOKEN: TOKEN }), TOKEN)
      assert.isUndefined(yield* Security.tokenFromFlags({}, {}))
      const empty = yield* Effect.flip(Security.tokenFromFlags({ token: "" }, {}))
      assert.strictEqual(empty.flag, "--token")
      const emptyEnv = yield* Effect.flip(Security.tokenFromFlags({}, { PLAIT_TOKEN: "" }))
      assert.strictEqual(emptyEnv.flag, "PLAIT_TOKEN")
      assert.strictEqual(yield* Security.tokenFromFlags({ token: "short" }, {}), "short")
    })
  )
})

describe("proxy + server with a token", () => {
  it.live(
    "a good proxy is carried byte-exact while bad peers get no stream, are closed within a bound and counted",
    () =>
      Effect.gen(function* () {
        const auth = Auth.makeServer(TOKEN, { timeoutMillis: 300 })
        const server = yield* Server.make({ listen: ANY_PORT, handshake: auth.handshake })
        const dialWith = (token: string | undefined) =>
          token === undefined
            ? Tcp.connect(server.address)
            : Tcp.connect(server.address).pipe(Effect.flatMap(Auth.client(token, { timeoutMillis: 1_000 })))
        const proxyWith = (token: string | undefined) =>
          PlaitProxy.make({
            listen: ANY_PORT,
            upstream: server.address,
            dial: dialWith(token),
            linkWaitMillis: 800,
            retry: { initialMillis: 50, maxMillis: 200 }
          })
        const good = yield* proxyWith(TOKEN)
        const wrong = yield* proxyWith("a wrong token, same length as the other")
        const none = yield* proxyWith(undefined)

        // Raw bad peers straight at the server: garbage, and a slow-loris.
        const garbage = yield* Tcp.connect(server.address)
        yield* garbage.write([text("SSH-2.0-OpenSSH_9.6\r\n")])
        const loris = yield* Tcp.connect(server.address)
        const lorisFiber = yield* Effect.forkChild(
          trickle(loris, concatAll([Uint8Array.of(Auth.VERSION), randomBytes(64, 9)]), 100)
        )
        const started = Date.now()

        // Meanwhile the good proxy carries clients byte-exact.
        const payloads = Array.from({ length: 10 }, (_, i) => randomBytes(40_000 + i * 3_001, 100 + i))
        const carried = yield* Effect.forkChild(
          Effect.forEach(payloads, (payload, i) => roundTrip(good.address, payload, i), { concurrency: "unbounded" })
        )
        // Clients of the bad proxies are closed without ever reaching the server.
        const badClients = yield* Effect.forEach([wrong, none], (proxy) =>
          Effect.gen(function* () {
            const client = yield* Tcp.connect(proxy.address)
            yield* client.write([text("let me in")])
            return client
          })
        )
        const [garbageEnd, lorisEnd, ...badEnds] = yield* Effect.all(
          [awaitEnd(garbage, 3_000), awaitEnd(loris, 3_000), ...badClients.map((c) => awaitEnd(c, 3_000))],
          { concurrency: "unbounded" }
        )
        assert.notStrictEqual(garbageEnd!.end, "open")
        assert.notStrictEqual(lorisEnd!.end, "open")
        for (const { end, bytes } of badEnds) {
          assert.notStrictEqual(end, "open")
          assert.strictEqual(bytes, 0, "a refused proxy's client never gets a byte back")
        }
        assert.isBelow(Date.now() - started, 3_000)
        yield* Fiber.interrupt(lorisFiber)

        const results = yield* Fiber.join(carried)
        for (let i = 0; i < payloads.length; i++) assert.strictEqual(firstDifference(results[i]!, payloads[i]!), -1)

        const stats = auth.stats()
        assert.strictEqual(stats.accepted, 1, "only the good proxy's link got through")
        assert.isAtLeast(stats.rejected, 1, "the wrong-token proxy")
        assert.isAtLeast(stats.malformed, 2, "the garbage peer and the token-less proxy")
        assert.isAtLeast(stats.timedOut, 1, "the slow-loris peer")
        assert.strictEqual(server.stats().handled, payloads.length)
        assert.strictEqual(good.link.generation(), 1)
        assert.strictEqual(wrong.link.generation(), 0)
        assert.strictEqual(wrong.stats().carried, 0)
      }).pipe(Effect.scoped, Effect.timeout(20_000)),
    30_000
  )

  it.live(
    "a token proxy facing a plain server fails the dial after its timeout, and carries nothing",
    () =>
      Effect.gen(function* () {
        const server = yield* Server.make({ listen: ANY_PORT })
        const exit = yield* Effect.exit(
          Effect.scoped(Tcp.connect(server.address).pipe(Effect.flatMap(Auth.client(TOKEN, { timeoutMillis: 300 }))))
        )
        const error = failureOf(exit)
        assert.strictEqual(Auth.failureReason(error), "timeout")
        assert.include(error.message, "--token")
        assert.strictEqual(server.stats().handled, 0)
      }).pipe(Effect.scoped, Effect.timeout(10_000)),
    15_000
  )

  it.live(
    "token and mutual TLS together carry clients byte-exact",
    () =>
      Effect.gen(function* () {
        const pki = makePki()
        const auth = Auth.makeServer(TOKEN)
        const server = yield* Server.make({
          listen: ANY_PORT,
          listener: (address) => Tls.listen(address, { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert }),
          handshake: auth.handshake
        })
        const proxy = yield* PlaitProxy.make({
          listen: ANY_PORT,
          upstream: server.address,
          dial: Tls.connect(server.address, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key }).pipe(
            Effect.flatMap(Auth.client(TOKEN))
          )
        })
        const payloads = Array.from({ length: 5 }, (_, i) => randomBytes(100_000 + i, 200 + i))
        const results = yield* Effect.forEach(payloads, (payload, i) => roundTrip(proxy.address, payload, i), {
          concurrency: "unbounded"
        })
        for (let i = 0; i < payloads.length; i++) assert.strictEqual(firstDifference(results[i]!, payloads[i]!), -1)
        assert.strictEqual(auth.stats().accepted, 1)
      }).pipe(Effect.scoped, Effect.timeout(15_000)),
    20_000
  )
})
