import { Effect, Fiber } from "effect"
import * as Session from "../../src/session/Session.ts"
import * as Tcp from "../../src/transport/Tcp.ts"

import { listenLibp2p, serveEcho, EchoMode } from "./libp2p.ts"

const program = Effect.gen(function* () {
  const { port } = yield* listenLibp2p((peer) => serveEcho(peer.muxer, (e) => console.error("echo error", e)))
  const t = yield* Tcp.connect({ host: "127.0.0.1", port })
  const session = yield* Session.make(t, { client: true })
  for (const mode of [EchoMode.Streaming, EchoMode.AfterEof]) {
    const payload = new Uint8Array(600_000).map((_, i) => (i * 7) & 0xff)
    payload[0] = mode
    const got = yield* Effect.scoped(Effect.gen(function* () {
      const s = yield* session.open
      const r = yield* Effect.forkChild(s.readAll)
      yield* s.write([payload])
      yield* s.closeWrite
      return yield* Fiber.join(r)
    }))
    console.log("mode", mode, got.length, Buffer.compare(Buffer.from(got), Buffer.from(payload)))
  }
  console.log("rtt", yield* session.ping)
  const t0 = Date.now()
  yield* session.close
  console.log("closed in", Date.now() - t0)
}).pipe(Effect.scoped, Effect.timeout(20000))
Effect.runPromise(program).then(() => console.log("ok"), (e) => { console.error("FAIL", e); process.exit(1) })
