import { Effect, Fiber } from "effect"
import * as Session from "../../src/session/Session.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import { tap } from "./tap.ts"
import { listenLibp2p, serveEcho, EchoMode } from "./libp2p.ts"

const program = Effect.gen(function* () {
  let muxer: any
  const { port } = yield* listenLibp2p((peer) => { muxer = peer.muxer; serveEcho(peer.muxer, (e) => console.error("echo error", String(e))) })
  const t = yield* Tcp.connect({ host: "127.0.0.1", port })
  const session = yield* Session.make(tap(t, (d, f) => console.log(Date.now() % 100000, d, f)), { client: true, config: { drainTimeoutMillis: 2000 } })
  const s = yield* session.openUnscoped
  const payload = new Uint8Array(1000); payload[0] = EchoMode.Streaming
  yield* s.write([payload])
  const first = yield* s.read
  console.log("echo got", first?.length)
  const t0 = Date.now()
  const reader = yield* Effect.forkChild(Effect.exit(s.read))
  yield* session.close
  console.log("closed in", Date.now() - t0, "libp2p streams", muxer.streams.length, "status", muxer.status)
  console.log("reader", JSON.stringify(yield* Fiber.join(reader)))
}).pipe(Effect.scoped, Effect.timeout(20000))
Effect.runPromise(program).then(() => console.log("ok"), (e) => { console.error("FAIL", e); process.exit(1) })
