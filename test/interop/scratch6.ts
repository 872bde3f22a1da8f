import { Effect, Fiber, FiberSet } from "effect"
import * as Session from "../../src/session/Session.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import { tap } from "./tap.ts"
import { dialLibp2p, roundTrip, EchoMode } from "./libp2p.ts"

const echo = (s: any) => Effect.gen(function* () {
  let mode: number | undefined
  const parts: Uint8Array[] = []
  while (true) {
    const c = yield* s.read
    if (c === null) break
    if (mode === undefined) mode = c[0]
    if (mode === EchoMode.Streaming) yield* s.write([c]); else parts.push(c)
  }
  if (parts.length) yield* s.write(parts)
  yield* s.closeWrite
})

const program = Effect.gen(function* () {
  const server = yield* Tcp.listen({ host: "127.0.0.1", port: 0 })
  const fibers = yield* FiberSet.make()
  const peer = yield* dialLibp2p(server.address.port)
  const t = yield* server.accept
  const session = yield* Session.make(process.env.TAP ? tap(t, (d, f) => console.log(Date.now() % 100000, d, f)) : t, { client: false, onEvent: (e) => e._tag !== "StreamOpened" && e._tag !== "StreamClosed" && console.log("plait event", JSON.stringify(e)) })
  yield* Effect.forkChild(Effect.forever(Effect.flatMap(session.acceptUnscoped, (s) => FiberSet.run(fibers, echo(s).pipe(Effect.exit, Effect.tap((x) => Effect.sync(() => console.log("echo exit", JSON.stringify(x)))))))).pipe(Effect.exit, Effect.tap((e) => Effect.sync(() => console.log("accept loop ended", JSON.stringify(e))))))
  const t0 = Date.now()
  const results = yield* Effect.promise(() => Promise.all(Array.from({ length: Number(process.env.N ?? 64) }, (_, i) => {
    const p = new Uint8Array(300_000 + i * 5000).map((_, j) => (j * 13 + i) & 0xff); p[0] = i % 2
    return roundTrip(peer.muxer, p).then((r) => { const c = Buffer.compare(Buffer.from(r), Buffer.from(p)); if (c !== 0) { let k = 0; while (k < r.length && r[k] === p[k]) k++; console.log("stream", i, "mode", p[0], "got", r.length, "want", p.length, "firstdiff", k) } return c })
  })))
  console.log("64 streams", Date.now() - t0, "ms; mismatches", results.filter((x) => x !== 0).length)
  console.log("libp2p ping", yield* Effect.promise(() => peer.muxer.ping()))
  console.log("plait ping", yield* session.ping)
  console.log("stats", JSON.stringify(session.stats()))
  yield* Effect.promise(() => peer.muxer.close())
  console.log("libp2p closed; plait isOpen", session.isOpen(), "isClosed", session.isClosed())
  yield* Effect.promise(() => peer.connection.close())
  const why = yield* session.await.pipe(Effect.timeout(3000))
  console.log("plait ended", JSON.stringify(why))
}).pipe(Effect.scoped, Effect.timeout(Number(process.env.T ?? 30000)))
Effect.runPromise(program).then(() => console.log("ok"), (e) => { console.error("FAIL", e); process.exit(1) })
