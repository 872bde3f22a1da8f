import { createPrivateKey, X509Certificate } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Queue } from "effect"
import * as Security from "../../src/cli/Security.ts"
import * as PlaitProxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import * as Tls from "../../src/transport/Tls.ts"
import type { Transport, TransportError } from "../../src/transport/Transport.ts"
import { decode, firstDifference, randomBytes, readAll, text, writeChunked } from "../transport/helpers.ts"
import { makeCa, makePki } from "./certs.ts"
import { ANY_PORT, awaitEnd, roundTrip, tempDir } from "./helpers.ts"

const pki = makePki()
const stranger = makeCa("some other CA")
const strangerClient = stranger.issue({ commonName: "intruder", usage: "client" })

const echo = (t: Transport) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1_000_000; i++) {
      const chunk = yield* t.read
      if (chunk === null) break
      yield* t.write([chunk])
    }
    yield* t.closeWrite
  })

/** A TLS listener whose refused handshakes land in a queue. */
const tlsListener = (options: Omit<Tls.TlsListenOptions, "onHandshakeFailure">) =>
  Effect.gen(function* () {
    const failures = yield* Queue.unbounded<Tls.HandshakeFailure>()
    const server = yield* Tls.listen(ANY_PORT, {
      ...options,
      onHandshakeFailure: (failure) => Queue.offerUnsafe(failures, failure)
    })
    return { server, failures }
  })

const handshakeError = (exit: Exit.Exit<unknown, TransportError>): TransportError => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  if (Exit.isSuccess(exit)) throw new Error("unreachable")
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")
  assert.isDefined(error, "expected a typed failure")
  return (error as unknown as { error: TransportError }).error
}

/** Server (TLS listener, echo) + proxy dialling with `dial`. */
const stack = (
  listenOptions: Omit<Tls.TlsListenOptions, "onHandshakeFailure">,
  dial: (address: Tcp.TcpAddress) => PlaitProxy.ProxyOptions["dial"]
) =>
  Effect.gen(function* () {
    const failures = yield* Queue.unbounded<Tls.HandshakeFailure>()
    const server = yield* Server.make({
      listen: ANY_PORT,
      listener: (address) =>
        Tls.listen(address, { ...listenOptions, onHandshakeFailure: (f) => Queue.offerUnsafe(failures, f) })
    })
    const proxy = yield* PlaitProxy.make({
      listen: ANY_PORT,
      upstream: server.address,
      dial: dial(server.address)!,
      linkWaitMillis: 1_000,
      retry: { initialMillis: 50, maxMillis: 200 }
    })
    return { server, proxy, failures }
  })

describe("throwaway certificates", () => {
  it("are valid X.509 v3 chains with the right names and usages", () => {
    const ca = new X509Certificate(pki.ca.cert)
    const server = new X509Certificate(pki.server.cert)
    const client = new X509Certificate(pki.client.cert)
    assert.isTrue(ca.ca)
    assert.isFalse(server.ca)
    assert.isTrue(ca.verify(ca.publicKey))
    assert.isTrue(server.verify(ca.publicKey))
    assert.isTrue(client.verify(ca.publicKey))
    assert.isTrue(server.checkIssued(ca))
    assert.isFalse(server.verify(new X509Certificate(stranger.ca.cert).publicKey))
    assert.strictEqual(server.checkHost("localhost"), "localhost")
    assert.strictEqual(server.checkIP("127.0.0.1"), "127.0.0.1")
    assert.isUndefined(server.checkHost("example.com"))
    assert.deepStrictEqual(server.keyUsage, ["1.3.6.1.5.5.7.3.1"])
    assert.deepStrictEqual(client.keyUsage, ["1.3.6.1.5.5.7.3.2"])
    assert.isTrue(server.checkPrivateKey(createPrivateKey(pki.server.key)))
    assert.isFalse(server.checkPrivateKey(createPrivateKey(pki.client.key)))
  })
})

describe("Tls transport", () => {
  it.live(
    "echoes 4 MiB byte-exact over TLS, with half-close both ways",
    () =>
      Effect.gen(function* () {
        const { server } = yield* tlsListener({ cert: pki.server.cert, key: pki.server.key })
        yield* Effect.forkScoped(Tcp.serve(server, (t) => Effect.ignore(echo(t))))
        const client = yield* Tls.connect(server.address, { ca: pki.ca.cert })
        const data = randomBytes(4 * 1024 * 1024, 11)
        const [back] = yield* Effect.all(
          [readAll(client), writeChunked(client, data, 3).pipe(Effect.andThen(client.closeWrite))],
          { concurrency: "unbounded" }
        )
        assert.strictEqual(firstDifference(back, data), -1)
        assert.strictEqual(server.stats().handshakes, 1)
        assert.strictEqual(server.stats().handshakeFailures, 0)
      }).pipe(Effect.scoped, Effect.timeout(20_000)),
    30_000
  )

  it.live(
    "half-close: the server answers after the client's FIN",
    () =>
      Effect.gen(function* () {
        const { server } = yield* tlsListener({ cert: pki.server.cert, key: pki.server.key })
        const [client, accepted] = yield* Effect.all(
          [Tls.connect(server.address, { ca: pki.ca.cert, servername: "localhost" }), server.accept],
          { concurrency: 2 }
        )
        yield* Effect.addFinalizer(() => accepted.close)
        yield* client.write([text("request")])
        yield* client.closeWrite
        const request = decode(yield* readAll(accepted))
        yield* accepted.write([text("response to "), text(request)])
        yield* accepted.closeWrite
        assert.strictEqual(decode(yield* readAll(client)), "response to request")
      }).pipe(Effect.scoped, Effect.timeout(10_000)),
    15_000
  )

  it.live(
    "a server certificate from an unknown CA fails the dial with a handshake error naming --tls-ca",
    () =>
      Effect.gen(function* () {
        const { server } = yield* tlsListener({ cert: pki.server.cert, key: pki.server.key })
        const exit = yield* Effect.exit(Effect.scoped(Tls.connect(server.address, { ca: stranger.ca.cert })))
        const error = handshakeError(exit)
        assert.strictEqual(error.operation, "handshake")
        assert.include(error.message, "--tls-ca")
        assert.match(error.message, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER/)
        // Nothing reaches accept.
        const accepted = yield* server.accept.pipe(Effect.timeoutOption(200))
        assert.strictEqual(accepted._tag, "None")
        assert.strictEqual(server.stats().handshakes, 0)
      }).pipe(Effect.scoped, Effect.timeout(10_000)),
    15_000
  )

  it.live(
    "a certificate without the dialled name fails, and --tls-servername fixes it",
    () =>
      Effect.gen(function* () {
        const { server } = yield* tlsListener({ cert: pki.server.cert, key: pki.server.key })
        const exit = yield* Effect.exit(
          Effect.scoped(Tls.connect(server.address, { ca: pki.ca.cert, servername: "example.com" }))
        )
        const error = handshakeError(exit)
        assert.strictEqual(error.operation, "handshake")
        assert.include(error.message, "ERR_TLS_CERT_ALTNAME_INVALID")
        assert.include(error.message, "--tls-servername")
        const ok = yield* Effect.exit(
          Effect.scoped(Tls.connect(server.address, { ca: pki.ca.cert, servername: "localhost" }))
        )
        assert.isTrue(Exit.isSuccess(ok))
      }).pipe(Effect.scoped, Effect.timeout(10_000)),
    15_000
  )

  it.live(
    "a TLS dial to a plain TCP server fails as a handshake error, bounded by the handshake timeout",
    () =>
      Effect.gen(function* () {
        // Says nothing: the client's handshake timeout ends the dial.
        const silent = yield* Tcp.listen(ANY_PORT)
        const started = Date.now()
        const exit = yield* Effect.exit(
          Effect.scoped(Tls.connect(silent.address, { ca: pki.ca.cert, handshakeTimeoutMillis: 300 }))
        )
        const error = handshakeError(exit)
        assert.strictEqual(error.operation, "handshake")
        assert.include(error.message, "did not complete within 300 ms")
        assert.isBelow(Date.now() - started, 5_000)
        // Answers garbage and closes: a handshake error at once.
        const rude = yield* Tcp.listen(ANY_PORT)
        yield* Effect.forkScoped(
          Tcp.serve(rude, (t) =>
            Effect.ignore(t.write([text("HTTP/1.1 400 Bad Request\r\n\r\n")]).pipe(Effect.andThen(t.close)))
          )
        )
        const exit2 = yield* Effect.exit(Effect.scoped(Tls.connect(rude.address, { ca: pki.ca.cert })))
        assert.strictEqual(handshakeError(exit2).operation, "handshake")
        // Nobody listening: a connect error, not a handshake error.
        const gone = yield* Effect.scoped(Tcp.listen(ANY_PORT)).pipe(Effect.map((s) => s.address))
        const exit3 = yield* Effect.exit(Effect.scoped(Tls.connect(gone, { ca: pki.ca.cert })))
        assert.strictEqual(handshakeError(exit3).operation, "connect")
      }).pipe(Effect.scoped, Effect.timeout(10_000)),
    15_000
  )

  it.live(
    "a peer that connects and says nothing is dropped after the server's handshake timeout",
    () =>
      Effect.gen(function* () {
        const { server, failures } = yield* tlsListener({
          cert: pki.server.cert,
          key: pki.server.key,
          handshakeTimeoutMillis: 300
        })
        const started = Date.now()
        const silent = yield* Tcp.connect(server.address)
        const end = yield* awaitEnd(silent, 5_000)
        assert.notStrictEqual(end.end, "open")
        const elapsed = Date.now() - started
        assert.isAtLeast(elapsed, 250)
        assert.isBelow(elapsed, 5_000)
        const failure = yield* Queue.take(failures)
        assert.match(failure.reason, /timeout/i)
        assert.strictEqual(server.stats().handshakeFailures, 1)
        assert.strictEqual(server.stats().pending, 0)
      }).pipe(Effect.scoped, Effect.timeout(10_000)),
    15_000
  )

  it.live(
    "plain bytes to a TLS server are refused and counted, and the server keeps serving",
    () =>
      Effect.gen(function* () {
        const { server, failures } = yield* tlsListener({ cert: pki.server.cert, key: pki.server.key })
        yield* Effect.forkScoped(Tcp.serve(server, (t) => Effect.ignore(echo(t))))
        const plain = yield* Tcp.connect(server.address)
        // A yamux window-update frame where a ClientHello belongs.
        yield* plain.write([Uint8Array.of(0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0)])
        assert.notStrictEqual((yield* awaitEnd(plain, 5_000)).end, "open")
        yield* Queue.take(failures)
        const client = yield* Tls.connect(server.address, { ca: pki.ca.cert })
        yield* client.write([text("still here")])
        yield* client.closeWrite
        assert.strictEqual(decode(yield* readAll(client)), "still here")
      }).pipe(Effect.scoped, Effect.timeout(10_000)),
    15_000
  )
})

describe("proxy + server over TLS", () => {
  it.live(
    "carries many clients byte-exact over one TLS link",
    () =>
      Effect.gen(function* () {
        const { server, proxy } = yield* stack({ cert: pki.server.cert, key: pki.server.key }, (address) =>
          Tls.connect(address, { ca: pki.ca.cert })
        )
        const payloads = Array.from({ length: 20 }, (_, i) => randomBytes(50_000 + i * 7_919, i + 1))
        const results = yield* Effect.forEach(payloads, (payload, i) => roundTrip(proxy.address, payload, i), {
          concurrency: "unbounded"
        })
        for (let i = 0; i < payloads.length; i++) assert.strictEqual(firstDifference(results[i]!, payloads[i]!), -1)
        assert.strictEqual(proxy.link.generation(), 1)
        assert.strictEqual(proxy.stats().carried, payloads.length)
        assert.strictEqual(server.stats().handled, payloads.length)
      }).pipe(Effect.scoped, Effect.timeout(20_000)),
    30_000
  )

  it.live(
    "a proxy that does not trust the server's CA never gets a link; its clients are closed",
    () =>
      Effect.gen(function* () {
        const { server, proxy } = yield* stack({ cert: pki.server.cert, key: pki.server.key }, (address) =>
          Tls.connect(address, { ca: stranger.ca.cert })
        )
        const client = yield* Tcp.connect(proxy.address)
        yield* client.write([text("hello?")])
        assert.notStrictEqual((yield* awaitEnd(client, 5_000)).end, "open")
        assert.strictEqual(proxy.link.generation(), 0)
        assert.strictEqual(server.stats().sessions, 0)
        assert.strictEqual(server.stats().handled, 0)
      }).pipe(Effect.scoped, Effect.timeout(10_000)),
    15_000
  )

  it.live(
    "mutual TLS: a proxy with a client certificate from the CA is carried byte-exact",
    () =>
      Effect.gen(function* () {
        const { proxy, failures } = yield* stack(
          { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert },
          (address) => Tls.connect(address, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key })
        )
        const payload = randomBytes(300_000, 99)
        const back = yield* roundTrip(proxy.address, payload)
        assert.strictEqual(firstDifference(back, payload), -1)
        assert.strictEqual(Queue.sizeUnsafe(failures), 0)
      }).pipe(Effect.scoped, Effect.timeout(15_000)),
    20_000
  )

  it.live(
    "mutual TLS: a proxy without a client certificate, or with one from another CA, gets no session",
    () =>
      Effect.gen(function* () {
        for (const dialOptions of [
          { ca: pki.ca.cert },
          { ca: pki.ca.cert, cert: strangerClient.cert, key: strangerClient.key }
        ]) {
          yield* Effect.scoped(
            Effect.gen(function* () {
              const { server, proxy, failures } = yield* stack(
                { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert },
                (address) => Tls.connect(address, dialOptions)
              )
              const client = yield* Tcp.connect(proxy.address)
              yield* client.write([text("let me in")])
              assert.notStrictEqual((yield* awaitEnd(client, 5_000)).end, "open")
              const failure = yield* Queue.take(failures)
              assert.match(failure.reason, /CERTIFICATE|client certificate rejected/)
              assert.notStrictEqual(failure.peer, "unknown")
              assert.strictEqual(server.stats().handled, 0)
              assert.strictEqual(server.stats().sessions, 0)
            })
          )
        }
      }).pipe(Effect.timeout(15_000)),
    20_000
  )

  it.live(
    "mutual TLS: a direct dial without a client certificate fails at the latest on its first read",
    () =>
      Effect.gen(function* () {
        const { server, failures } = yield* tlsListener({
          cert: pki.server.cert,
          key: pki.server.key,
          ca: pki.ca.cert
        })
        // TLS 1.3: the client may finish its handshake before the server refuses it.
        const exit = yield* Effect.exit(
          Effect.scoped(
            Effect.flatMap(Tls.connect(server.address, { ca: pki.ca.cert }), (t) =>
              Effect.flatMap(t.read, (chunk) => Effect.fail(`read ${chunk === null ? "EOF" : "bytes"}`))
            )
          )
        )
        assert.isTrue(Exit.isFailure(exit))
        const failure = yield* Queue.take(failures)
        assert.match(failure.reason, /CERTIFICATE|certificate/)
        const accepted = yield* server.accept.pipe(Effect.timeoutOption(200))
        assert.strictEqual(accepted._tag, "None")
      }).pipe(Effect.scoped, Effect.timeout(10_000)),
    15_000
  )

  it.live(
    "closing the listener's scope fails accept and lets nothing through",
    () =>
      Effect.gen(function* () {
        const closed = yield* Effect.scoped(tlsListener({ cert: pki.server.cert, key: pki.server.key }))
        const exit = yield* Effect.exit(closed.server.accept)
        assert.isTrue(Exit.isFailure(exit))
        const exit2 = yield* Effect.exit(Effect.scoped(Tls.connect(closed.server.address, { ca: pki.ca.cert })))
        assert.strictEqual(handshakeError(exit2).operation, "connect")
      }).pipe(Effect.timeout(10_000)),
    15_000
  )
})

describe("TLS flags", () => {
  it.live(
    "server and proxy options come from PEM files and work together",
    () =>
      Effect.gen(function* () {
        const tmp = yield* tempDir
        const serverFlags = {
          tlsCert: tmp.write("server.crt", pki.server.cert),
          tlsKey: tmp.write("server.key", pki.server.key),
          tlsCa: tmp.write("ca.crt", pki.ca.cert)
        }
        const proxyFlags = {
          tls: true,
          tlsCa: serverFlags.tlsCa,
          tlsCert: tmp.write("client.crt", pki.client.cert),
          tlsKey: tmp.write("client.key", pki.client.key),
          tlsServername: "localhost"
        }
        const listenOptions = yield* Security.serverOptionsFromFlags(serverFlags)
        const connectOptions = yield* Security.clientOptionsFromFlags(proxyFlags)
        assert.isDefined(listenOptions)
        assert.isDefined(connectOptions)
        const server = yield* Server.make({
          listen: ANY_PORT,
          listener: (address) => Tls.listen(address, listenOptions!)
        })
        const proxy = yield* PlaitProxy.make({
          listen: ANY_PORT,
          upstream: server.address,
          dial: Tls.connect(server.address, connectOptions)
        })
        const payload = randomBytes(70_000, 5)
        assert.strictEqual(firstDifference(yield* roundTrip(proxy.address, payload), payload), -1)
      }).pipe(Effect.scoped, Effect.timeout(10_000)),
    15_000
  )

  it.live(
    "no flags means no TLS; bad flags fail naming the flag",
    () =>
      Effect.gen(function* () {
        const tmp = yield* tempDir
        const cert = tmp.write("server.crt", pki.server.cert)
        const key = tmp.write("server.key", pki.server.key)
        const otherKey = tmp.write("other.key", pki.client.key)
        assert.isUndefined(yield* Security.serverOptionsFromFlags({}))
        assert.isUndefined(yield* Security.clientOptionsFromFlags({}))
        assert.isUndefined(yield* Security.clientOptionsFromFlags({ tls: false }))
        assert.deepStrictEqual(yield* Security.clientOptionsFromFlags({ tls: true }), {})

        const fail = (effect: Effect.Effect<unknown, Security.TlsConfigError>) => Effect.flip(effect)
        const missing = yield* fail(Security.serverOptionsFromFlags({ tlsCert: `${tmp.dir}/nope.crt`, tlsKey: key }))
        assert.strictEqual(missing.flag, "--tls-cert")
        assert.include(missing.message, "nope.crt")
        assert.include(missing.message, "no such file")
        const noKey = yield* fail(Security.serverOptionsFromFlags({ tlsCert: cert }))
        assert.strictEqual(noKey.flag, "--tls-key")
        const caAlone = yield* fail(Security.serverOptionsFromFlags({ tlsCa: cert }))
        assert.strictEqual(caAlone.flag, "--tls-ca")
        const notPem = yield* fail(Security.serverOptionsFromFlags({ tlsCert: cert, tlsKey: cert }))
        assert.strictEqual(notPem.flag, "--tls-key")
        assert.include(notPem.message, "PRIVATE KEY")
        const mismatch = yield* fail(Security.serverOptionsFromFlags({ tlsCert: cert, tlsKey: otherKey }))
        assert.strictEqual(mismatch.flag, "--tls-key")
        const badCa = yield* fail(Security.clientOptionsFromFlags({ tls: true, tlsCa: key }))
        assert.strictEqual(badCa.flag, "--tls-ca")
        const clientNoCert = yield* fail(Security.clientOptionsFromFlags({ tlsKey: key }))
        assert.strictEqual(clientNoCert.flag, "--tls-cert")
        // Any --tls-* flag implies --tls.
        assert.deepStrictEqual(yield* Security.clientOptionsFromFlags({ tlsServername: "plait.example" }), {
          servername: "plait.example"
        })
      }).pipe(Effect.scoped, Effect.timeout(10_000)),
    15_000
  )
})
