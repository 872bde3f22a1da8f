/**
 * Cross-runtime scenario: plait against an independent yamux implementation
 * (`@chainsafe/libp2p-yamux`) over real TCP loopback, both directions — a smaller run of
 * `test/interop/Libp2pYamux.test.ts`: concurrent streams beyond the initial window, byte-exact, with
 * half-close (echo as it arrives, and echo written after the opener's FIN), pings both ways, and a
 * graceful end from each side.
 */
import { Effect, FiberSet } from "effect"
import * as Session from "../../../src/session/Session.ts"
import * as Tcp from "../../../src/transport/Tcp.ts"
import { echo, mismatch, payload, roundTrip } from "../../interop/harness.ts"
import { dialLibp2p, EchoMode, roundTrip as libp2pRoundTrip, listenLibp2p, serveEcho } from "../../interop/libp2p.ts"
import { check, runScenario } from "../lib.ts"

const STREAMS = 16
const loopback = { host: "127.0.0.1", port: 0 }
const sizeOf = (i: number) => 256 * 1024 + 1 + i * 9973
const modeOf = (i: number) => (i % 2 === 0 ? EchoMode.Streaming : EchoMode.AfterEof)
/** "" when every round trip matched, else ": " and the mismatches. */
const detail = (results: ReadonlyArray<string | undefined>) => {
  const failures = results.filter((r) => r !== undefined)
  return failures.length === 0 ? "" : `: ${failures.join("; ")}`
}

runScenario(
  "interop-libp2p",
  Effect.gen(function* () {
    // plait dials, libp2p-yamux listens and echoes.
    yield* Effect.scoped(
      Effect.gen(function* () {
        const echoErrors: Array<unknown> = []
        const { port, peers } = yield* listenLibp2p((peer) => serveEcho(peer.muxer, (e) => echoErrors.push(e)))
        const session = yield* Session.make(yield* Tcp.connect({ host: "127.0.0.1", port }), { client: true })
        const results = yield* Effect.forEach(
          Array.from({ length: STREAMS }, (_, i) => i),
          (i) => {
            const want = payload(sizeOf(i), i + 1, modeOf(i))
            return Effect.map(roundTrip(session, want), (got) => mismatch(`stream ${2 * i + 1}`, got, want))
          },
          { concurrency: "unbounded" }
        )
        yield* check(
          detail(results) === "" && echoErrors.length === 0,
          `plait → libp2p-yamux: ${STREAMS} streams × >256 KiB echoed byte-exact, with half-close${detail(results)}`
        )
        const rtt = yield* session.ping
        const peer = peers[0]!
        const libp2pRtt = yield* Effect.promise(() => peer.muxer.ping())
        yield* check(rtt >= 0 && libp2pRtt >= 0, "pings answered both ways")
        yield* session.close
        yield* Effect.promise(() => peer.closed)
        yield* check(peer.muxer.status === "closed", "plait's GO_AWAY(0) and close reached libp2p-yamux")
      })
    )

    // libp2p-yamux dials, plait listens and echoes.
    yield* Effect.scoped(
      Effect.gen(function* () {
        const server = yield* Tcp.listen(loopback)
        const peer = yield* dialLibp2p(server.address.port)
        const session = yield* Session.make(yield* server.accept, { client: false })
        const fibers = yield* FiberSet.make<void, unknown>()
        yield* Effect.forkScoped(
          Effect.gen(function* () {
            while (true) {
              const next = yield* Effect.exit(session.acceptUnscoped)
              if (next._tag === "Failure") return
              yield* FiberSet.run(fibers, echo(next.value))
            }
          })
        )
        const results = yield* Effect.promise(() =>
          Promise.all(
            Array.from({ length: STREAMS }, async (_, i) => {
              const want = payload(sizeOf(i), 100 + i, modeOf(i))
              return mismatch(`stream ${2 * i + 1}`, await libp2pRoundTrip(peer.muxer, want), want)
            })
          )
        )
        yield* check(
          detail(results) === "",
          `libp2p-yamux → plait: ${STREAMS} streams × >256 KiB echoed byte-exact, with half-close${detail(results)}`
        )
        const libp2pRtt = yield* Effect.promise(() => peer.muxer.ping())
        const rtt = yield* session.ping
        yield* check(rtt >= 0 && libp2pRtt >= 0, "pings answered both ways")
        // No libp2p ping is in flight now (close() would abort it and then reset on its pong).
        yield* Effect.promise(() => peer.muxer.close())
        yield* Effect.promise(() => peer.connection.close())
        const reason = yield* session.await
        yield* check(
          reason.reason._tag === "SessionClosed" && session.stats().streams === 0,
          "libp2p-yamux's GO_AWAY(0) and close ended the plait session cleanly"
        )
      })
    )
  }),
  { timeout: "40 seconds" }
)
