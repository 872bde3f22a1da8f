/**
 * Scenario: TLS and token authentication of the link on this runtime — the parts whose behaviour
 * comes from the runtime's own TLS stack (OpenSSL on Node, BoringSSL on Bun, rustls on Deno) and
 * crypto: throwaway certificates generated in-process, TLS echo byte-exact with half-close, an
 * untrusted server refused, mutual TLS with and without a client certificate, a silent peer dropped
 * by the handshake timeout, and the whole proxy + server over mutual TLS plus a token, with a
 * wrong-token proxy and a slow-loris peer refused while the good proxy is served.
 */
import { Effect, Exit, Fiber, Queue } from "effect"
import * as PlaitProxy from "../../../src/proxy/Proxy.ts"
import * as Server from "../../../src/server/Server.ts"
import * as Auth from "../../../src/transport/Auth.ts"
import * as Tcp from "../../../src/transport/Tcp.ts"
import * as Tls from "../../../src/transport/Tls.ts"
import type { Transport } from "../../../src/transport/Transport.ts"
import { makeCa, makePki } from "../../security/certs.ts"
import { awaitEnd, roundTrip } from "../../security/helpers.ts"
import { decode, firstDifference, randomBytes, readAll, text, writeChunked } from "../../transport/helpers.ts"
import { check, runScenario } from "../lib.ts"

const ANY: Tcp.TcpAddress = { host: "127.0.0.1", port: 0 }
const TOKEN = "a long random token for the cross-runtime scenario"

const echo = (t: Transport) =>
  Effect.gen(function* () {
    for (let i = 0; i < 10_000_000; i++) {
      const chunk = yield* t.read
      if (chunk === null) break
      yield* t.write([chunk])
    }
    yield* t.closeWrite
  })

const failedAs = (exit: Exit.Exit<unknown, { readonly operation: string }>, operation: string) =>
  Exit.isFailure(exit) && exit.cause.reasons.some((r) => r._tag === "Fail" && r.error.operation === operation)

runScenario(
  "tls-auth",
  Effect.gen(function* () {
    const pki = makePki()
    const stranger = makeCa("another CA")
    yield* check(pki.server.cert.startsWith("-----BEGIN CERTIFICATE-----"), "throwaway CA, server and client certs")

    // 1. TLS echo, byte-exact, both half-closes.
    yield* Effect.scoped(
      Effect.gen(function* () {
        const server = yield* Tls.listen(ANY, { cert: pki.server.cert, key: pki.server.key })
        yield* Effect.forkScoped(Tcp.serve(server, (t) => Effect.ignore(echo(t))))
        const client = yield* Tls.connect(server.address, { ca: pki.ca.cert })
        const data = randomBytes(4 * 1024 * 1024, 7)
        const [back] = yield* Effect.all(
          [readAll(client), writeChunked(client, data, 5).pipe(Effect.andThen(client.closeWrite))],
          { concurrency: "unbounded" }
        )
        yield* check(firstDifference(back, data) === -1, "4 MiB echoed byte-exact over TLS, FIN passed through")
        // The peer's FIN arrives while nobody reads (Deno used to lose it then).
        const quiet = yield* Tls.listen(ANY, { cert: pki.server.cert, key: pki.server.key })
        const [late, accepted] = yield* Effect.all([Tls.connect(quiet.address, { ca: pki.ca.cert }), quiet.accept], {
          concurrency: 2
        })
        yield* Effect.addFinalizer(() => accepted.close)
        yield* late.write([randomBytes(1024 * 1024, 8)])
        yield* late.closeWrite
        yield* Effect.sleep(300)
        const lateBytes = yield* readAll(accepted).pipe(Effect.timeoutOption(5_000))
        yield* check(
          lateBytes._tag === "Some" && lateBytes.value.length === 1024 * 1024,
          "1 MiB and FIN sent while the reader was idle all arrive, then EOF"
        )
        const named = yield* Effect.exit(
          Effect.scoped(Tls.connect(server.address, { ca: pki.ca.cert, servername: "localhost" }))
        )
        yield* check(Exit.isSuccess(named), "servername localhost verifies against the SAN")
      })
    )

    // 2. Verification failures are handshake errors.
    yield* Effect.scoped(
      Effect.gen(function* () {
        const server = yield* Tls.listen(ANY, { cert: pki.server.cert, key: pki.server.key })
        const untrusted = yield* Effect.exit(Effect.scoped(Tls.connect(server.address, { ca: stranger.ca.cert })))
        yield* check(failedAs(untrusted, "handshake"), "a server cert from an unknown CA → handshake error")
        const misnamed = yield* Effect.exit(
          Effect.scoped(Tls.connect(server.address, { ca: pki.ca.cert, servername: "example.com" }))
        )
        yield* check(failedAs(misnamed, "handshake"), "a server cert without the dialled name → handshake error")
        const silent = yield* Tcp.listen(ANY)
        const timedOut = yield* Effect.exit(
          Effect.scoped(Tls.connect(silent.address, { ca: pki.ca.cert, handshakeTimeoutMillis: 300 }))
        )
        yield* check(failedAs(timedOut, "handshake"), "a TLS dial to a silent plain server → handshake timeout")
        const closedPort = yield* Effect.scoped(Effect.map(Tcp.listen(ANY), (s) => s.address))
        const refused = yield* Effect.exit(Effect.scoped(Tls.connect(closedPort, { ca: pki.ca.cert })))
        yield* check(failedAs(refused, "connect"), "a TLS dial to a closed port → connect error")
        // Node and Bun never hand these out; Deno's server completes its side of the TLS 1.3
        // handshake before the client refuses, so it may hand one out that fails on its first read.
        const accepted = yield* server.accept.pipe(Effect.timeoutOption(200))
        const dead =
          accepted._tag === "None" ||
          (yield* Effect.scoped(
            Effect.gen(function* () {
              yield* Effect.addFinalizer(() => accepted.value.close)
              return (yield* awaitEnd(accepted.value, 5_000)).bytes === 0
            })
          ))
        yield* check(
          dead,
          `no refused connection carries a byte (${accepted._tag === "None" ? "none accepted" : "accepted, then failed"})`
        )
      })
    )

    // 3. Mutual TLS.
    yield* Effect.scoped(
      Effect.gen(function* () {
        const failures = yield* Queue.unbounded<Tls.HandshakeFailure>()
        const server = yield* Tls.listen(ANY, {
          cert: pki.server.cert,
          key: pki.server.key,
          ca: pki.ca.cert,
          handshakeTimeoutMillis: 300,
          onHandshakeFailure: (f) => Queue.offerUnsafe(failures, f)
        })
        const [client, accepted] = yield* Effect.all(
          [Tls.connect(server.address, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key }), server.accept],
          { concurrency: 2 }
        )
        yield* client.write([text("with a cert")])
        yield* client.closeWrite
        const got = decode(yield* readAll(accepted))
        yield* accepted.close
        yield* check(got === "with a cert", "mutual TLS with a client cert from the CA is accepted")

        const without = yield* Effect.exit(
          Effect.scoped(Effect.flatMap(Tls.connect(server.address, { ca: pki.ca.cert }), (t) => t.read))
        )
        const noCert = yield* Queue.take(failures).pipe(Effect.timeoutOption(5_000))
        yield* check(
          Exit.isFailure(without) && noCert._tag === "Some",
          `mutual TLS without a client cert is refused (${noCert._tag === "Some" ? noCert.value.reason.slice(0, 60) : "?"})`
        )

        const started = Date.now()
        const silent = yield* Tcp.connect(server.address)
        const end = yield* awaitEnd(silent, 5_000)
        const elapsed = Date.now() - started
        yield* check(
          end.end !== "open" && elapsed >= 250 && elapsed < 5_000,
          `a silent peer is dropped by the 300 ms handshake timeout (after ${elapsed} ms)`
        )
      })
    )

    // 4. Proxy + server over mutual TLS and a token; bad peers refused meanwhile.
    yield* Effect.scoped(
      Effect.gen(function* () {
        const auth = Auth.makeServer(TOKEN, { timeoutMillis: 300 })
        const server = yield* Server.make({
          listen: ANY,
          listener: (address) => Tls.listen(address, { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert }),
          handshake: auth.handshake
        })
        const tlsDial = Tls.connect(server.address, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key })
        const proxyWith = (token: string) =>
          PlaitProxy.make({
            listen: ANY,
            upstream: server.address,
            dial: tlsDial.pipe(Effect.flatMap(Auth.client(token, { timeoutMillis: 2_000 }))),
            linkWaitMillis: 800,
            retry: { initialMillis: 50, maxMillis: 200 }
          })
        const good = yield* proxyWith(TOKEN)
        const wrong = yield* proxyWith("not the token")

        // A slow-loris peer with a valid client cert, trickling its answer.
        const loris = yield* tlsDial
        const lorisFiber = yield* Effect.forkChild(
          Effect.gen(function* () {
            for (let i = 0; i < 65; i++) {
              yield* loris.write([Uint8Array.of(i === 0 ? Auth.VERSION : i)])
              yield* Effect.sleep(100)
            }
          }).pipe(Effect.ignore)
        )
        const wrongClient = yield* Tcp.connect(wrong.address)
        yield* wrongClient.write([text("let me in")])

        const payloads = Array.from({ length: 8 }, (_, i) => randomBytes(200_000 + i * 4_099, 40 + i))
        const results = yield* Effect.forEach(payloads, (p, i) => roundTrip(good.address, p, i), {
          concurrency: "unbounded"
        })
        yield* check(
          results.every((r, i) => firstDifference(r, payloads[i]!) === -1),
          `${payloads.length} clients carried byte-exact through proxy → mTLS + token → server`
        )
        const [lorisEnd, wrongEnd] = yield* Effect.all([awaitEnd(loris, 5_000), awaitEnd(wrongClient, 5_000)], {
          concurrency: 2
        })
        yield* Fiber.interrupt(lorisFiber)
        yield* check(lorisEnd.end !== "open", "a slow-loris peer is cut off by the auth timeout")
        yield* check(
          wrongEnd.end !== "open" && wrongEnd.bytes === 0 && wrong.link.generation() === 0,
          "a wrong-token proxy gets no link; its client is closed with no byte back"
        )
        const stats = auth.stats()
        yield* check(
          stats.accepted === 1 &&
            stats.rejected >= 1 &&
            stats.timedOut >= 1 &&
            server.stats().handled === payloads.length,
          `server counted ${stats.accepted} accepted, ${stats.rejected} rejected, ${stats.timedOut} timed out; served only the good proxy`
        )
      })
    )
  }),
  { timeout: "45 seconds" }
)
