/**
 * 200 concurrent clients through a proxy under Bun and a server under Deno, forwarding to an echo
 * backend in the test process: every client gets exactly its own bytes back.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { payload, roundTrip, sameBytes, startEchoBackend, startProxy, startServer } from "./helpers.ts"

const CLIENTS = 200

describe("e2e: many clients, three runtimes", () => {
  it.live(
    `${CLIENTS} concurrent Node clients through proxy@bun and server@deno to an echo --target are byte-exact`,
    () =>
      Effect.gen(function* () {
        const backend = yield* startEchoBackend
        const server = yield* startServer("deno", ["--target", `127.0.0.1:${backend.port}`])
        yield* server.process.waitForLine(/server: starting on deno /)
        yield* server.process.waitForLine(new RegExp(`forwarding streams to target 127\\.0\\.0\\.1:${backend.port}`))
        // The upstream comes from PLAIT_UPSTREAM (env fallback), the listen address from the flag.
        const proxy = yield* startProxy("bun", server.port, [], { viaEnv: true })
        yield* proxy.process.waitForLine(/proxy: starting on bun /)

        const results = yield* Effect.forEach(
          Array.from({ length: CLIENTS }, (_, i) => i),
          (i) => {
            const sent = payload(16 * 1024 + i * 523, i + 1)
            return Effect.map(roundTrip(proxy.port, sent, "40 seconds"), (got) => ({ i, sent, got }))
          },
          { concurrency: "unbounded" }
        )
        const broken = results.filter(({ sent, got }) => got.end !== "eof" || !sameBytes(got.data, sent))
        assert.deepStrictEqual(
          broken.map(({ i, sent, got }) => `client ${i}: sent ${sent.length}, got ${got.data.length} (${got.end})`),
          []
        )
        assert.strictEqual(backend.accepted(), CLIENTS)
        // One link carried everything.
        assert.lengthOf(
          proxy.process.lines().filter((line) => line.includes("link: up to")),
          1
        )
      }),
    60_000
  )
})
