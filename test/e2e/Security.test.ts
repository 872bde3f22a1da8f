/**
 * TLS and token authentication through the CLI, over real processes: mutual TLS plus a token across
 * two runtimes carries clients byte-exact; a proxy with the wrong token never gets a link and its
 * clients are closed after `--link-wait` with no byte; a TLS file that cannot be read exits 2 naming
 * the flag. Certificates are generated per test run (nothing secret is committed).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { connect, payload, pemFiles, roundTrip, sameBytes, spawnCli, startServer } from "./helpers.ts"

const TOKEN = "e2e-token-0123456789abcdef"

describe("e2e: TLS and token on the link", () => {
  it.live(
    "mutual TLS + token: proxy@bun ↔ server@deno carries clients byte-exact; a wrong-token proxy gets nothing",
    () =>
      Effect.gen(function* () {
        const pem = yield* pemFiles
        const server = yield* startServer("deno", [
          "--tls-cert",
          pem.serverCert,
          "--tls-key",
          pem.serverKey,
          "--tls-ca",
          pem.ca,
          "--token",
          TOKEN
        ])
        yield* server.process.waitForLine(/mutual TLS, token/)
        const proxy = yield* spawnCli(
          "bun",
          "proxy",
          [
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            `localhost:${server.port}`,
            "--tls-ca",
            pem.ca,
            "--tls-cert",
            pem.clientCert,
            "--tls-key",
            pem.clientKey
          ],
          { env: { PLAIT_TOKEN: TOKEN } }
        )
        const proxyPort = Number((yield* proxy.waitForLine(/listening on 127\.0\.0\.1:(\d+)/))[1])
        yield* proxy.waitForLine(/link: up to/)
        const sent = [payload(300_000, 1), payload(1, 2), payload(70_000, 3)]
        const got = yield* Effect.forEach(sent, (bytes) => roundTrip(proxyPort, bytes), { concurrency: "unbounded" })
        for (let i = 0; i < sent.length; i++) {
          assert.strictEqual(got[i]!.end, "eof")
          assert.ok(sameBytes(got[i]!.data, sent[i]!), `client ${i}: bytes differ`)
        }

        // Same TLS, wrong token: the handshake is refused, the link never comes up, clients get no byte.
        const intruder = yield* spawnCli("node", "proxy", [
          "--listen",
          "127.0.0.1:0",
          "--upstream",
          `localhost:${server.port}`,
          "--tls-ca",
          pem.ca,
          "--tls-cert",
          pem.clientCert,
          "--tls-key",
          pem.clientKey,
          "--token",
          "not-the-token-at-all-000000",
          "--link-wait",
          "1s"
        ])
        const intruderPort = Number((yield* intruder.waitForLine(/listening on 127\.0\.0\.1:(\d+)/))[1])
        yield* intruder.waitForLine(/dial attempt \d+ .* failed|link: down/)
        const refused = yield* Effect.scoped(
          Effect.gen(function* () {
            const client = yield* connect(intruderPort)
            client.socket.write(payload(100, 9))
            return yield* client.result("10 seconds")
          })
        )
        assert.strictEqual(refused.data.length, 0, "no byte reaches a client of an unauthenticated proxy")
        assert.isTrue(
          intruder.lines().every((line) => !/link: up to/.test(line)),
          "the intruder never got a link"
        )
        // The good proxy is unaffected.
        const again = yield* roundTrip(proxyPort, payload(10_000, 11))
        assert.ok(sameBytes(again.data, payload(10_000, 11)))
      }),
    45_000
  )

  it.live(
    "an unreadable TLS file or half a TLS key pair exits 2 naming the flag; an empty PLAIT_TOKEN counts as unset",
    () =>
      Effect.gen(function* () {
        const missing = yield* spawnCli("node", "server", [
          "--listen",
          "127.0.0.1:0",
          "--tls-cert",
          "/nonexistent/cert.pem",
          "--tls-key",
          "/nonexistent/key.pem"
        ])
        const exit = yield* missing.waitForExit("15 seconds")
        assert.strictEqual(exit.code, 2)
        assert.match(missing.output(), /--tls-cert \/nonexistent\/cert\.pem: cannot read the file/)
        const empty = yield* spawnCli("bun", "proxy", ["--listen", "127.0.0.1:0"], { env: { PLAIT_TOKEN: "" } })
        // An empty variable counts as unset: the proxy starts (plain yamux) rather than failing.
        yield* empty.waitForLine(/listening on 127\.0\.0\.1/)
        const halfPair = yield* spawnCli("node", "proxy", ["--listen", "127.0.0.1:0", "--tls-cert", "/x.pem"])
        const pairExit = yield* halfPair.waitForExit("15 seconds")
        assert.strictEqual(pairExit.code, 2)
        assert.match(halfPair.output(), /--tls-cert needs --tls-key/)
      }),
    30_000
  )
})
