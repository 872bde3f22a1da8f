import { Effect, Fiber } from "effect"
import * as Session from "../../src/session/Session.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import { listenLibp2p } from "./libp2p.ts"

const program = Effect.gen(function* () {
  let after = 0
  const { port } = yield* listenLibp2p((peer) => peer.muxer.addEventListener("stream", (evt) => {
    const s = evt.detail
    let n = 0, ended = false
    s.addEventListener("end", () => { ended = true; console.log("end event at", n) })
    s.addEventListener("message", (e) => { if (ended) after += e.data.byteLength })
    ;(async () => { for await (const c of s) n += c.byteLength; console.log("iterator total", n); setTimeout(() => { console.log("messages after end", after); s.close() }, 50) })()
  }))
  const t = yield* Tcp.connect({ host: "127.0.0.1", port })
  const session = yield* Session.make(t, { client: true })
  const payload = new Uint8Array(100_000)
  yield* Effect.scoped(Effect.gen(function* () {
    const s = yield* session.open
    const r = yield* Effect.forkChild(s.readAll)
    yield* s.write([payload])
    yield* s.closeWrite
    return yield* Fiber.join(r)
  }))
}).pipe(Effect.scoped, Effect.timeout(5000))
Effect.runPromise(program).then(() => console.log("ok"), (e) => { console.error("FAIL", e); process.exit(1) })
