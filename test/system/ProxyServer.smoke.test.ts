import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as Proxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import * as Tcp from "../../src/transport/Tcp.ts"

const pattern = (n: number, seed: number) => {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (i * 131 + seed * 7) & 0xff
  return out
}

const readAll = (t: { read: Effect.Effect<Uint8Array | null, unknown> }) =>
  Effect.gen(function* () {
    const parts: Array<Uint8Array> = []
    let total = 0
    while (true) {
      const c = yield* t.read
      if (c === null) break
      parts.push(c)
      total += c.length
    }
    const out = new Uint8Array(total)
    let o = 0
    for (const p of parts) {
      out.set(p, o)
      o += p.length
    }
    return out
  })

describe("proxy + server over TCP", () => {
  it.live("many clients echo byte-exact through one link", () =>
    Effect.gen(function* () {
      const server = yield* Server.make({ listen: { host: "127.0.0.1", port: 0 } })
      const proxy = yield* Proxy.make({ listen: { host: "127.0.0.1", port: 0 }, upstream: server.address })
      const results = yield* Effect.forEach(
        Array.from({ length: 50 }, (_, i) => i),
        (i) =>
          Effect.scoped(
            Effect.gen(function* () {
              const client = yield* Tcp.connect(proxy.address)
              const payload = pattern(20_000 + i * 1000, i)
              const reader = yield* Effect.forkChild(readAll(client))
              yield* client.write([payload])
              yield* client.closeWrite
              const got = yield* Fiber.await(reader)
              return { payload, got }
            })
          ),
        { concurrency: "unbounded" }
      )
      for (const { payload, got } of results) {
        assert.strictEqual(got._tag, "Success")
        if (got._tag === "Success") assert.deepStrictEqual(got.value, payload)
      }
      assert.strictEqual(proxy.link.generation(), 1)
      assert.strictEqual(proxy.stats().carried, 50)
    }).pipe(Effect.scoped, Effect.timeout(20_000))
  )
})
