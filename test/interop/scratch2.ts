import { Effect, Fiber } from "effect"
import * as Session from "../../src/session/Session.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import { listenLibp2p, collect, sendAll } from "./libp2p.ts"

const program = Effect.gen(function* () {
  const { port } = yield* listenLibp2p((peer) => peer.muxer.addEventListener("stream", (evt) => {
    const s = evt.detail
    collect(s).then(async (b) => { console.log("libp2p got", b.length); await sendAll(s, b); console.log("libp2p sent; writeBuffer", s.writeBufferLength); await s.close(); console.log("libp2p closed") })
  }))
  const t = yield* Tcp.connect({ host: "127.0.0.1", port })
  const session = yield* Session.make(t, { client: true })
  const payload = new Uint8Array(600_000).map((_, i) => (i * 7) & 0xff)
  const got = yield* Effect.scoped(Effect.gen(function* () {
    const s = yield* session.open
    const r = yield* Effect.forkChild(s.readAll)
    yield* s.write([payload])
    yield* s.closeWrite
    return yield* Fiber.join(r)
  }))
  console.log("plait got", got.length)
}).pipe(Effect.scoped, Effect.timeout(20000))
Effect.runPromise(program).then(() => console.log("ok"), (e) => { console.error("FAIL", e); process.exit(1) })
