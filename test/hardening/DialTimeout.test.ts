/**
 * Backend dial timeout against a real black hole on loopback: a child process listens with an
 * accept backlog of 1 and then blocks its event loop, so it never accepts. Linux keeps two
 * connections in such a queue and drops every later SYN (no SYN-ACK, no RST): the test fills the
 * queue with two connections of its own, and every dial after that hangs in SYN retransmission,
 * the way a firewalled or dead backend behaves.
 *
 * What must hold: every stream forwarded there is reset within `dialTimeoutMillis` (plus a bound),
 * each abandoned dial is counted (`dialTimeouts`, within `dialFailures`), and none holds a stream
 * or a socket afterwards; a stream to a backend that answers is not touched by the deadline.
 */
import { type ChildProcess, spawn } from "node:child_process"
import type * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import * as Proxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import {
  connectProbe,
  connectRaw,
  eventually,
  fdCount,
  HardeningError,
  pattern,
  quiet,
  sameBytes,
  startEchoBackend
} from "./harness.ts"

const TEST_TIMEOUT = 20_000
const DIAL_TIMEOUT = 300
/** A stream to the black hole is reset within the dial timeout plus this. */
const OUTCOME_BOUND = 3_000
const CLIENTS = 20

/** A loopback port that never accepts and, once its queue is full, never answers a SYN. */
const blackHole = Effect.gen(function* () {
  const child = yield* Effect.acquireRelease(
    Effect.sync(() =>
      spawn(
        process.execPath,
        [
          "-e",
          `const s = require("node:net").createServer()
s.listen({ host: "127.0.0.1", port: 0, backlog: 1 }, () => {
  process.stdout.write(String(s.address().port) + "\\n")
  // Never return to the event loop: the kernel queues connections nobody accepts.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)
})`
        ],
        { stdio: ["ignore", "pipe", "inherit"] }
      )
    ),
    (child: ChildProcess) => Effect.sync(() => child.kill("SIGKILL"))
  )
  const port = yield* Effect.callback<number, HardeningError>((resume) => {
    child.stdout!.once("data", (chunk: Buffer) => resume(Effect.succeed(Number(String(chunk).trim()))))
    child.once("exit", (code) => resume(Effect.fail(new HardeningError({ message: `black hole exited (${code})` }))))
  }).pipe(
    Effect.timeoutOrElse({
      duration: 5_000,
      orElse: () => Effect.fail(new HardeningError({ message: "the black hole did not start" }))
    })
  )
  // Linux holds backlog + 1 connections in the accept queue: these two fill it.
  const fillers: Array<net.Socket> = []
  for (let i = 0; i < 2; i++) fillers.push(yield* connectRaw(port, (message) => new HardeningError({ message })))
  return port
})

describe("backend dial timeout (dialTimeoutMillis)", () => {
  it.live(
    `${CLIENTS} clients forwarded to a black-holed backend are each reset within the dial timeout; the dials are counted and nothing is held`,
    () =>
      Effect.gen(function* () {
        const port = yield* blackHole
        const server = yield* Server.make({
          listen: { host: "127.0.0.1", port: 0 },
          handler: Server.forward({ host: "127.0.0.1", port }, { dialTimeoutMillis: DIAL_TIMEOUT }),
          drainMillis: 1_000
        })
        const proxy = yield* Proxy.make({ listen: { host: "127.0.0.1", port: 0 }, upstream: server.address })
        // One stream first, so that what the runtime allocates once (the link, lazy handles) is in
        // the baseline of file descriptors.
        const first = yield* connectProbe(proxy.address.port)
        yield* first.send(pattern(10, 99))
        yield* first.closed(DIAL_TIMEOUT + OUTCOME_BOUND)
        yield* eventually("the first dial abandoned", () => server.stats().streams === 0, OUTCOME_BOUND)
        const fdsBefore = fdCount()
        const started = Date.now()
        const clients = yield* Effect.forEach(
          Array.from({ length: CLIENTS }, (_, i) => i),
          (i) =>
            Effect.gen(function* () {
              const client = yield* connectProbe(proxy.address.port)
              yield* client.send(pattern(100, i))
              return client
            }),
          { concurrency: "unbounded" }
        )
        for (const client of clients) {
          const end = yield* client.closed(DIAL_TIMEOUT + OUTCOME_BOUND)
          assert.strictEqual(end.kind, "error", `a client of a black-holed backend is reset ${client.describe()}`)
          assert.strictEqual(client.received(), 0, "no byte came back")
          assert.isAtLeast(end.at - started, DIAL_TIMEOUT, "not before the deadline")
        }
        yield* eventually(
          "every dial counted as timed out, every stream released",
          () => server.stats().dialTimeouts === CLIENTS + 1 && server.stats().streams === 0,
          OUTCOME_BOUND,
          () => JSON.stringify(server.stats())
        )
        assert.strictEqual(server.stats().dialFailures, CLIENTS + 1)
        assert.strictEqual(server.stats().sessions, 1, "the link itself is fine")
        if (fdsBefore !== undefined) {
          yield* eventually(
            "no socket left behind",
            () => (fdCount() ?? 0) <= fdsBefore,
            OUTCOME_BOUND,
            () => `(${fdsBefore} before, ${fdCount()} now)`
          )
        }
      }).pipe(Effect.scoped, quiet),
    TEST_TIMEOUT
  )

  it.effect(
    "a backend that answers is forwarded normally under the same deadline (byte-exact, nothing counted)",
    () =>
      Effect.gen(function* () {
        const backend = yield* startEchoBackend
        const server = yield* Server.make({
          listen: { host: "127.0.0.1", port: 0 },
          handler: Server.forward({ host: "127.0.0.1", port: backend.port }, { dialTimeoutMillis: DIAL_TIMEOUT }),
          drainMillis: 1_000
        })
        const proxy = yield* Proxy.make({ listen: { host: "127.0.0.1", port: 0 }, upstream: server.address })
        const client = yield* connectProbe(proxy.address.port)
        const payload = pattern(64 * 1024, 7)
        yield* client.send(payload)
        assert.ok(sameBytes(yield* client.take(payload.length, OUTCOME_BOUND), payload))
        // Well past the deadline (the server's clock is the TestClock), the stream still works.
        yield* TestClock.adjust(2 * DIAL_TIMEOUT)
        yield* client.send(payload.subarray(0, 10))
        assert.ok(sameBytes(yield* client.take(10, OUTCOME_BOUND), payload.subarray(0, 10)))
        assert.strictEqual(server.stats().dialTimeouts, 0)
        assert.strictEqual(server.stats().dialFailures, 0)
      }).pipe(Effect.scoped, quiet),
    TEST_TIMEOUT
  )

  it("the default is 10 s", () => {
    assert.strictEqual(Server.DEFAULT_DIAL_TIMEOUT_MILLIS, 10_000)
  })
})
