import { Effect, Fiber } from "effect"
import * as Session from "../../src/session/Session.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import { tap } from "./tap.ts"
import { listenLibp2p } from "./libp2p.ts"

const program = Effect.gen(function* () {
  let accepted = 0
  const { port } = yield* listenLibp2p((peer) => peer.muxer.addEventListener("stream", () => { accepted++ }))
  const t = yield* Tcp.connect({ host: "127.0.0.1", port })
  const session = yield* Session.make(tap(t, (d, f) => console.log(Date.now() % 100000, d, f)), { client: true, config: { openTimeoutMillis: 500, timerResolutionMillis: 50 } })
  const s = yield* session.openUnscoped
  const r = yield* Effect.exit(s.read.pipe(Effect.timeout(3000)))
  console.log("accepted by libp2p", accepted, "read:", JSON.stringify(r))
}).pipe(Effect.scoped, Effect.timeout(20000))
Effect.runPromise(program).then(() => console.log("ok"), (e) => { console.error("FAIL", e); process.exit(1) })
