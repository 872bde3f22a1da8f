import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import * as LoadGen from "../../bench/workloads.ts"

type Fault = "none" | "flip" | "truncate"

/** An echo server on 127.0.0.1:0 that may corrupt: flip one byte at stream offset 3000, or stop echoing there. */
const echoServer = (fault: Fault): Promise<{ target: LoadGen.Target; close: () => Promise<void> }> =>
  new Promise((resolve) => {
    const sockets = new Set<net.Socket>()
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
      let offset = 0
      socket.on("data", (chunk: Buffer) => {
        const start = offset
        offset += chunk.length
        if (fault !== "none" && start <= 3000 && offset > 3000) {
          if (fault === "truncate") {
            socket.end()
            return
          }
          const copy = Buffer.from(chunk)
          copy[3000 - start]! ^= 0x5a
          socket.write(copy)
          return
        }
        if (fault === "truncate" && start > 3000) return
        socket.write(chunk)
      })
      socket.on("end", () => socket.end())
      socket.on("error", () => socket.destroy())
    })
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      resolve({
        target: { host: "127.0.0.1", port },
        close: () =>
          new Promise((done) => {
            for (const s of sockets) s.destroy()
            server.close(() => done())
          })
      })
    })
  })

const withServer = async <A>(fault: Fault, f: (target: LoadGen.Target) => Promise<A>): Promise<A> => {
  const server = await echoServer(fault)
  try {
    return await f(server.target)
  } finally {
    await server.close()
  }
}

describe("LoadGen", () => {
  it("Pattern: distinct per seed, periodic views, verify detects a flipped byte", () => {
    const a = new LoadGen.Pattern(1, 4096)
    const b = new LoadGen.Pattern(2, 4096)
    assert.isFalse(a.slice(0, 64).equals(b.slice(0, 64)))
    const chunk = Buffer.concat([a.slice(100, 4000), a.slice(4100, 3000)])
    assert.isTrue(a.verify(chunk, 100))
    chunk[2500]! ^= 1
    assert.isFalse(a.verify(chunk, 100))
    assert.isFalse(a.verify(a.slice(0, 100), 1))
  })

  it("Samples: percentiles", () => {
    const s = new LoadGen.Samples()
    for (let i = 1; i <= 1000; i++) s.add(i)
    const l = s.summary()
    assert.strictEqual(l.count, 1000)
    assert.strictEqual(l.p50, 500)
    assert.strictEqual(l.p99, 990)
    assert.strictEqual(l.p999, 999)
    assert.strictEqual(l.max, 1000)
  })

  it("every workload verifies a correct echo with no error", { timeout: 30_000 }, () =>
    withServer("none", async (target) => {
      const bulk = await LoadGen.runBulk({ target, streams: 3, bytesPerStream: 1_000_000 })
      assert.strictEqual(bulk.errors, 0, bulk.errorSamples.join("; "))
      assert.strictEqual(bulk.verifiedBytes, 3_000_000)
      const rr = await LoadGen.runReqResp({ target, clients: 4, durationMs: 200 })
      assert.strictEqual(rr.errors, 0, rr.errorSamples.join("; "))
      assert.isAbove(rr.requests, 0)
      const cr = await LoadGen.runConnRate({ target, workers: 2, durationMs: 200 })
      assert.strictEqual(cr.errors, 0, cr.errorSamples.join("; "))
      assert.isAbove(cr.connections, 0)
      let heldWith = -1
      const progress = LoadGen.makeProgress()
      const idle = await LoadGen.runIdle({
        target,
        connections: 50,
        settleMs: 10,
        progress,
        onHeld: async () => {
          heldWith = progress.connected
        }
      })
      assert.strictEqual(idle.errors, 0, idle.errorSamples.join("; "))
      assert.strictEqual(heldWith, 50)
      assert.strictEqual(idle.held, 50)
      const hol = await LoadGen.runHol({ target, clients: 2, durationMs: 200, warmupMs: 50 })
      assert.strictEqual(hol.errors, 0, hol.errorSamples.join("; "))
      assert.isAbove(hol.bulkMbps, 0)
      const mixed = await LoadGen.runMixed({ target, clients: 5, durationMs: 200, maxMessage: 8192, rampMs: 10 })
      assert.strictEqual(mixed.errors, 0, mixed.errorSamples.join("; "))
      assert.strictEqual(mixed.completed, mixed.connections)
    })
  )

  for (const fault of ["flip", "truncate"] as const) {
    it(`detects a corrupting echo (${fault})`, { timeout: 30_000 }, () =>
      withServer(fault, async (target) => {
        const bulk = await LoadGen.runBulk({ target, streams: 2, bytesPerStream: 100_000 })
        assert.strictEqual(bulk.errors, 2)
        const rr = await LoadGen.runReqResp({ target, clients: 2, durationMs: 200 })
        assert.strictEqual(rr.errors, 2)
        const mixed = await LoadGen.runMixed({ target, clients: 2, durationMs: 200, maxMessage: 4096, rampMs: 0 })
        assert.isAbove(mixed.errors, 0)
      })
    )
  }
})
