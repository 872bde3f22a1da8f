/**
 * Stream semantics through the whole tunnel (client → proxy → link → server → backend): half-close
 * in both directions, and per-stream flow control (a client that never reads stalls only itself).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { connect, payload, roundTrip, sameBytes, startBackend, startProxy, startServer } from "./helpers.ts"

describe("e2e: tunnel semantics", () => {
  it.live(
    "half-close: a client that shut down its write side still reads the full response (proxy@deno, server@node)",
    () =>
      Effect.gen(function* () {
        // Answers only after the client's FIN has come through: the request reversed, then 1 MiB more.
        const backend = yield* startBackend((socket) => {
          const chunks: Array<Buffer> = []
          socket.on("data", (chunk: Buffer) => chunks.push(chunk))
          socket.on("end", () => {
            const request = Buffer.concat(chunks)
            socket.write(Buffer.from(request).reverse())
            socket.end(Buffer.from(payload(1024 * 1024, request.length)))
          })
        })
        const server = yield* startServer("node", ["--target", `127.0.0.1:${backend.port}`])
        const proxy = yield* startProxy("deno", server.port)

        const requests = [1, 1000, 300 * 1024].map((n, i) => payload(n, 100 + i))
        const results = yield* Effect.forEach(requests, (request) => roundTrip(proxy.port, request), {
          concurrency: "unbounded"
        })
        for (let i = 0; i < requests.length; i++) {
          const request = requests[i]!
          const expected = Buffer.concat([
            Buffer.from(request).reverse(),
            Buffer.from(payload(1024 * 1024, request.length))
          ])
          const got = results[i]!
          assert.strictEqual(got.end, "eof", `request ${i}`)
          assert.strictEqual(got.data.length, expected.length, `request ${i}`)
          assert.ok(sameBytes(got.data, expected), `request ${i}: bytes differ`)
        }
      }),
    30_000
  )

  it.live(
    "half-close with the embedded echo: the client ends first, then reads everything back (proxy@node, server@bun)",
    () =>
      Effect.gen(function* () {
        const server = yield* startServer("bun")
        yield* server.process.waitForLine(/serving the embedded echo service/)
        const proxy = yield* startProxy("node", server.port)
        const sent = payload(2 * 1024 * 1024, 7)
        const got = yield* roundTrip(proxy.port, sent)
        assert.strictEqual(got.end, "eof")
        assert.ok(sameBytes(got.data, sent))
      }),
    30_000
  )

  it.live(
    "a client that never reads does not slow the others (proxy@deno, server@node, 256KiB windows)",
    () =>
      Effect.gen(function* () {
        const STALLED = 32 * 1024 * 1024
        const CHUNK = 64 * 1024
        const OTHERS = 8
        const EACH = 2 * 1024 * 1024
        const big = payload(STALLED, 99)
        // A request starting with "STALL\n" gets 32 MiB back, written in 64 KiB chunks, each only once
        // the previous one was taken by the kernel (so `flushed` shows how far backpressure lets it go);
        // anything else is echoed.
        let flushed = 0
        const backend = yield* startBackend((socket) => {
          let head = Buffer.alloc(0)
          const onData = (chunk: Buffer) => {
            head = Buffer.concat([head, chunk])
            if (head.length < 6) return
            socket.off("data", onData)
            if (head.subarray(0, 6).toString() !== "STALL\n") {
              socket.write(head)
              socket.pipe(socket)
              return
            }
            const next = () => {
              if (flushed >= STALLED) return void socket.end()
              const slice = big.subarray(flushed, flushed + CHUNK)
              socket.write(slice, (error) => {
                if (error) return
                flushed += slice.length
                next()
              })
            }
            next()
          }
          socket.on("data", onData)
        })
        const window = ["--max-window", "256KiB"]
        const server = yield* startServer("node", ["--target", `127.0.0.1:${backend.port}`, ...window])
        const proxy = yield* startProxy("deno", server.port, window)

        const stalled = yield* connect(proxy.port, { paused: true })
        stalled.socket.end("STALL\n")
        const others = yield* Effect.forEach(
          Array.from({ length: OTHERS }, (_, i) => payload(EACH, 1_000 + i)),
          (sent) => Effect.map(roundTrip(proxy.port, sent, "20 seconds"), (got) => ({ sent, got })),
          { concurrency: "unbounded" }
        )
        for (const { sent, got } of others) {
          assert.strictEqual(got.end, "eof")
          assert.ok(sameBytes(got.data, sent))
        }
        // Meanwhile the stalled client read nothing and its response is held back at the backend by
        // flow control: megabytes still unsent, while the others' 16 MiB went through the same link.
        assert.strictEqual(stalled.received(), 0)
        assert.isAbove(flushed, 0, "the stalled response should have started")
        assert.isAbove(STALLED - flushed, 4 * 1024 * 1024, `backend flushed ${flushed} of ${STALLED} bytes`)

        // Once it reads, it gets every byte.
        stalled.socket.resume()
        const result = yield* stalled.result("30 seconds")
        assert.strictEqual(result.end, "eof")
        assert.strictEqual(result.data.length, STALLED)
        assert.ok(sameBytes(result.data, big))
      }),
    45_000
  )
})
