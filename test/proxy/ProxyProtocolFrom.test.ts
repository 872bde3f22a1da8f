/**
 * Trusted PROXY-protocol sources (`proxyProtocolFrom`, `--proxy-protocol-from`): the CIDR sets
 * themselves (IPv4, IPv6, single hosts, IPv4-mapped IPv6, refusals naming the entry); a real proxy
 * over loopback whose only trusted source is 127.0.0.2 (Linux routes all of 127/8 to loopback, so a
 * client can bind either): the trusted client is carried with the header's address, the one from
 * 127.0.0.1 is reset before anything of it is read, reaches no backend and is counted as
 * `untrustedSource`, and the link and other clients carry on; an invalid list fails `Proxy.make`;
 * and the `plait proxy` process: without `--accept-proxy-protocol` the flag exits 2 naming it, and
 * a PROXY-protocol port beyond loopback without it warns at start.
 */
import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric } from "effect"
import * as Cidr from "../../src/internal/transport/Cidr.ts"
import * as Events from "../../src/observability/Events.ts"
import * as Metrics from "../../src/observability/Metrics.ts"
import * as Proxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import type * as Endpoint from "../../src/transport/Endpoint.ts"
import { spawnCli } from "../e2e/helpers.ts"

const loopback = { host: "127.0.0.1", port: 0 }

describe("CIDR sets", () => {
  it("match IPv4 and IPv6 blocks, single hosts and IPv4-mapped IPv6; nothing else", () => {
    const set = Cidr.parse(["10.0.0.0/8", "192.0.2.7", " 2001:db8::/32", "::1"])
    if ("error" in set) return assert.fail(set.error)
    assert.deepStrictEqual(set.entries, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "::1/128"])
    for (const inside of ["10.0.0.1", "10.255.255.255", "192.0.2.7", "2001:db8:1::5", "::1", "::ffff:10.1.2.3"]) {
      assert.isTrue(set.has(inside), inside)
    }
    for (const outside of [
      "11.0.0.1",
      "192.0.2.8",
      "2001:db9::1",
      "::2",
      "127.0.0.1",
      "",
      "lb.internal",
      "10.0.0.1:80"
    ]) {
      assert.isFalse(set.has(outside), outside)
    }
    const everyone = Cidr.parse(["0.0.0.0/0"])
    assert.isTrue(!("error" in everyone) && everyone.has("203.0.113.9"))
  })

  it("refuse a bad entry with a sentence naming it, and empty or oversized lists", () => {
    const error = (entries: ReadonlyArray<string>) => {
      const parsed = Cidr.parse(entries)
      return "error" in parsed ? parsed.error : "accepted"
    }
    assert.strictEqual(error(["10.0.0.0/33"]), 'prefix must be from 0 to 32 for an IPv4 block (got "10.0.0.0/33")')
    assert.strictEqual(error(["::/129"]), 'prefix must be from 0 to 128 for an IPv6 block (got "::/129")')
    assert.strictEqual(error(["10.0.0.0/-1"]), 'prefix must be from 0 to 32 for an IPv4 block (got "10.0.0.0/-1")')
    assert.strictEqual(error(["10.0.0.0/"]), 'prefix must be from 0 to 32 for an IPv4 block (got "10.0.0.0/")')
    for (const bad of ["lb.internal", "10.0.0/8", "", "10.0.0.1:80"]) {
      assert.strictEqual(
        error(["10.0.0.0/8", bad]),
        `must be ADDRESS/PREFIX or an IP address, e.g. 10.0.0.0/8 or 2001:db8::/32 (got ${JSON.stringify(bad)})`
      )
    }
    assert.strictEqual(error([]), "must list at least one address or CIDR block")
    assert.strictEqual(
      error(Array.from({ length: Cidr.MAX_ENTRIES + 1 }, (_, i) => `10.0.${i}.0/24`)),
      `must list at most ${Cidr.MAX_ENTRIES} blocks (got ${Cidr.MAX_ENTRIES + 1})`
    )
  })
})

/** A client from `localAddress`: sends `bytes`, half-closes, and reports what came back and how it ended. */
const client = (to: { readonly port: number }, localAddress: string, bytes: Uint8Array) =>
  Effect.callback<{ readonly data: Buffer; readonly end: "eof" | "error" }>((resume) => {
    const chunks: Array<Buffer> = []
    const socket = net.connect({ host: "127.0.0.1", port: to.port, localAddress, allowHalfOpen: true })
    let done = false
    const finish = (end: "eof" | "error") => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resume(Effect.succeed({ data: Buffer.concat(chunks), end }))
    }
    const timer = setTimeout(() => finish("error"), 10_000)
    socket.on("connect", () => socket.end(bytes))
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.on("end", () => finish("eof"))
    socket.on("error", () => finish("error"))
    socket.on("close", () => finish("error"))
    return Effect.sync(() => finish("error"))
  })

const HEADER = "PROXY TCP4 198.51.100.7 203.0.113.1 40000 443\r\n"
const withHeader = (payload: string) => new TextEncoder().encode(HEADER + payload)

describe("proxyProtocolFrom", () => {
  it.live(
    "only the trusted source may send a header: the other client is reset unread, reaches no backend, and is counted",
    () =>
      Effect.gen(function* () {
        const sources: Array<Endpoint.Endpoint | undefined> = []
        const server = yield* Server.make({
          listen: loopback,
          handler: (stream, serving) => {
            sources.push(serving.source)
            return Server.echo(stream, serving)
          }
        })
        const proxy = yield* Proxy.make({
          listen: loopback,
          upstream: server.address,
          acceptProxyProtocol: true,
          proxyProtocolFrom: ["127.0.0.2/32"]
        })

        const trusted = yield* client(proxy.address, "127.0.0.2", withHeader("hello from behind the balancer"))
        assert.deepStrictEqual(trusted, { data: Buffer.from("hello from behind the balancer"), end: "eof" })
        assert.deepStrictEqual(sources, [{ family: "IPv4", address: "198.51.100.7", port: 40000 }])

        const untrusted = yield* client(proxy.address, "127.0.0.1", withHeader("I am whoever I say"))
        assert.strictEqual(untrusted.end, "error", "reset, not a clean end")
        assert.strictEqual(untrusted.data.length, 0)

        const refused = Metric.withAttributes(Metrics.clientsRefused, { role: "proxy", reason: "untrustedSource" })
        let counted = 0
        for (let i = 0; i < 250 && counted === 0; i++) {
          counted = (yield* Metric.value(refused)).count
          if (counted === 0) yield* Effect.sleep(20)
        }
        assert.strictEqual(counted, 1)
        assert.strictEqual(proxy.stats().refused, 1)
        assert.strictEqual(proxy.stats().carried, 1)
        // Nothing of the untrusted client reached the server, and the link carries on.
        assert.strictEqual(server.stats().handled, 1)
        const again = yield* client(proxy.address, "127.0.0.2", withHeader("still here"))
        assert.deepStrictEqual(again, { data: Buffer.from("still here"), end: "eof" })
        assert.strictEqual(sources.length, 2)
      }).pipe(
        Effect.scoped,
        Effect.provide(Layer.provideMerge(Metrics.layer, Events.Events.layer)),
        Effect.provideService(Metric.MetricRegistry, new Map())
      ),
    30_000
  )

  it.live("an invalid list fails Proxy.make, naming the entry", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Proxy.make({ listen: loopback, acceptProxyProtocol: true, proxyProtocolFrom: ["10.0.0.0/8", "balancer"] })
      )
      assert.strictEqual(error._tag, "TransportError")
      assert.include(error.message, "proxyProtocolFrom must be ADDRESS/PREFIX or an IP address")
      assert.include(error.message, '(got "balancer")')
    }).pipe(Effect.scoped)
  )
})

describe("plait proxy --proxy-protocol-from", () => {
  it.live(
    "without --accept-proxy-protocol exits 2 naming the flag; a PROXY-protocol port beyond loopback without it warns",
    () =>
      Effect.gen(function* () {
        // Four processes at once (each is killed with the scope if still running).
        // 192.0.2.1 (TEST-NET-1) is no address of this machine: the warning comes before the bind,
        // which then fails (exit 1), so nothing listens beyond loopback.
        const [lonely, open, named, local] = yield* Effect.all(
          [
            ["--listen", "127.0.0.1:0", "--proxy-protocol-from", "10.0.0.0/8"],
            ["--listen", "192.0.2.1:0", "--accept-proxy-protocol"],
            ["--listen", "192.0.2.1:0", "--accept-proxy-protocol", "--proxy-protocol-from", "10.0.0.0/8"],
            ["--listen", "127.0.0.1:0", "--accept-proxy-protocol", "--proxy-protocol-from", "10.0.0.0/8,192.0.2.7"]
          ].map((args) => spawnCli("node", "proxy", args))
        )
        assert.deepStrictEqual(yield* lonely!.waitForExit("30 seconds"), { code: 2, signal: null }, lonely!.output())
        assert.include(
          lonely!.output(),
          "plait proxy: --proxy-protocol-from needs --accept-proxy-protocol (it names who may send the PROXY protocol header)"
        )

        yield* open!.waitForLine(
          /WARN {2}proxy: accepting PROXY protocol headers from any source on 192\.0\.2\.1:0: whoever reaches it can claim any client address/,
          "30 seconds"
        )
        assert.strictEqual((yield* open!.waitForExit("30 seconds")).code, 1, open!.output())
        assert.strictEqual((yield* named!.waitForExit("30 seconds")).code, 1, named!.output())
        assert.include(named!.output(), "beyond loopback", "it got past the start checks")
        assert.notInclude(named!.output(), "from any source")
        // On loopback, the listening line names the trusted sources.
        yield* local!.waitForLine(
          /proxy: listening on 127\.0\.0\.1:\d+, .*PROXY protocol from 10\.0\.0\.0\/8,192\.0\.2\.7\/32/,
          "30 seconds"
        )
      }).pipe(Effect.scoped),
    90_000
  )
})
