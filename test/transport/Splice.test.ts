/**
 * The direct splice (`splice` over two `DirectPort`s): a TCP socket joined to a multiplexed stream
 * with callbacks, as the proxy and the server's forwarder run it.
 *
 * Topology of every case:
 *
 *   peer (TCP) ⇄ socket (TCP) ══ splice ══ stream (client session) ⇄ memory link ⇄ remote (server session)
 *
 * Waits are event-driven (reads, fiber joins) or bounded polls on counters of the code under test.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { snapshotOf } from "../../src/internal/session/Stream.ts"
import type { MuxError } from "../../src/session/MuxError.ts"
import { splice } from "../../src/transport/Splice.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import type { Transport, TransportError } from "../../src/transport/Transport.ts"
import { eventually } from "../hardening/harness.ts"
import { sessionPair } from "../session/reliability/helpers.ts"
import { firstDifference, randomBytes, readAll, writeChunked } from "./helpers.ts"

const TIMEOUT = 30_000
const BOUND = 10_000

/** The topology above, with the splice forked. */
const topology = Effect.gen(function* () {
  const listener = yield* Tcp.listen({ host: "127.0.0.1", port: 0 })
  const [peer, socket] = yield* Effect.all([Tcp.connect(listener.address), listener.accept], { concurrency: 2 })
  yield* Effect.addFinalizer(() => socket.close)
  const { client, server } = yield* sessionPair()
  const stream = yield* client.openUnscoped
  const remote = yield* server.acceptUnscoped
  assert.isDefined(socket.directPort?.(), "a TCP transport offers a direct port")
  assert.isDefined(stream.directPort?.(), "a stream offers a direct port")
  const stats = { aToB: 0, bToA: 0 }
  const fiber = yield* Effect.forkChild(splice(socket, stream, stats))
  yield* eventually(
    "both ports held by the splice",
    () => socket.directPort?.() === undefined && stream.directPort?.() === undefined,
    BOUND
  )
  return { peer, socket, stream, remote, client, stats, fiber }
})

const assertSame = (got: Uint8Array, want: Uint8Array, what: string) => {
  const at = firstDifference(got, want)
  assert.strictEqual(at, -1, `${what}: ${got.length} vs ${want.length} bytes, first difference at ${at}`)
}

const tagOf = (exit: Exit.Exit<unknown, MuxError | TransportError>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const failure = exit.cause.reasons.find((r) => r._tag === "Fail") as { readonly error: MuxError | TransportError }
  const error = failure?.error
  return error === undefined ? "no typed failure" : error._tag === "MuxError" ? error.reason._tag : error._tag
}

/** `read` until it fails; a clean EOF fails the test (the splice must reset, never fake an end). */
const readUntilFailure = (t: Transport<unknown>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 100_000; i++) {
      const exit = yield* Effect.exit(t.read)
      if (Exit.isFailure(exit)) return
      if (exit.value === null) assert.fail("clean EOF where a reset was expected")
    }
    assert.fail("no failure after 100 000 reads")
  })

describe("splice over direct ports (TCP ⇄ stream)", () => {
  it.live(
    "bytes in equal bytes out both ways, half-closes passed through, stats counted, ports released",
    () =>
      Effect.gen(function* () {
        const t = yield* topology
        const up = randomBytes(3 * 1024 * 1024 + 17, 1)
        const down = randomBytes(5 * 1024 * 1024 + 3, 2)
        const [gotDown, gotUp] = yield* Effect.all(
          [
            readAll(t.peer),
            t.remote.readAll,
            writeChunked(t.peer, up, 3).pipe(Effect.andThen(t.peer.closeWrite)),
            Effect.gen(function* () {
              for (let o = 0; o < down.length; o += 100_000) yield* t.remote.write([down.subarray(o, o + 100_000)])
              yield* t.remote.closeWrite
            })
          ],
          { concurrency: "unbounded" }
        )
        assertSame(gotUp, up, "peer → remote")
        assertSame(gotDown, down, "remote → peer")
        yield* Fiber.join(t.fiber)
        assert.deepStrictEqual(t.stats, { aToB: up.length, bToA: down.length })
        assert.isDefined(t.stream.directPort?.(), "released after the end")
      }),
    TIMEOUT
  )

  it.live(
    "one direction ends first, the other carries on until its own end",
    () =>
      Effect.gen(function* () {
        const t = yield* topology
        yield* t.peer.closeWrite
        assert.isNull(yield* t.remote.read, "the peer's FIN arrives as the stream's EOF")
        const late = randomBytes(200_000, 4)
        yield* t.remote.write([late])
        yield* t.remote.closeWrite
        assertSame(yield* readAll(t.peer), late, "after the other side's FIN")
        yield* Fiber.join(t.fiber)
      }),
    TIMEOUT
  )

  it.live(
    "a peer that does not read stops the remote writer at the stream window; reading delivers every byte",
    () =>
      Effect.gen(function* () {
        const t = yield* topology
        const big = randomBytes(16 * 1024 * 1024, 5)
        const writer = yield* Effect.forkChild(Effect.andThen(t.remote.write([big]), t.remote.closeWrite))
        // Nobody reads `peer`: the socket fills, the splice stops taking the stream's input, the
        // stream returns no credit and the remote writer runs out of window.
        yield* eventually("the remote's send window exhausted", () => snapshotOf(t.remote).sendWindow === 0, BOUND)
        assert.isAtMost(t.client.stats().bufferedBytes, t.client.config.maxWindow, "held at most one window")
        assert.isUndefined(writer.pollUnsafe(), "the remote writer is blocked")
        assertSame(yield* readAll(t.peer), big, "remote → peer after the stall")
        yield* Fiber.join(writer)
        yield* t.peer.closeWrite
        assert.isNull(yield* t.remote.read)
        yield* Fiber.join(t.fiber)
      }),
    TIMEOUT
  )

  it.live(
    "a remote that does not read stops the socket's input at the write buffer; reading delivers every byte",
    () =>
      Effect.gen(function* () {
        const t = yield* topology
        const big = randomBytes(16 * 1024 * 1024, 6)
        const writer = yield* Effect.forkChild(Effect.andThen(t.peer.write([big]), t.peer.closeWrite))
        yield* eventually("the stream's send window exhausted", () => snapshotOf(t.stream).sendWindow === 0, BOUND)
        // Above the write buffer the splice pauses the socket: at most one read more is queued.
        assert.isAtMost(snapshotOf(t.stream).queued, t.client.config.writeBufferSize + 1024 * 1024, "bounded queue")
        assertSame(yield* t.remote.readAll, big, "peer → remote after the stall")
        yield* Fiber.join(writer)
        yield* t.remote.closeWrite
        assert.isNull(yield* t.peer.read)
        yield* Fiber.join(t.fiber)
      }),
    TIMEOUT
  )

  it.live(
    "the remote resets the stream: the splice fails with StreamReset and the TCP peer is reset",
    () =>
      Effect.gen(function* () {
        const t = yield* topology
        yield* t.remote.write([randomBytes(1000, 7)])
        yield* t.remote.reset
        assert.strictEqual(tagOf(yield* Fiber.await(t.fiber)), "StreamReset")
        yield* readUntilFailure(t.peer)
      }),
    TIMEOUT
  )

  it.live(
    "the TCP peer resets: the splice fails with a TransportError and the remote sees StreamReset",
    () =>
      Effect.gen(function* () {
        const t = yield* topology
        yield* t.peer.write([randomBytes(1000, 8)])
        yield* t.peer.reset
        assert.strictEqual(tagOf(yield* Fiber.await(t.fiber)), "TransportError")
        const exit = yield* Effect.exit(t.remote.readAll)
        assert.strictEqual(tagOf(exit), "StreamReset")
      }),
    TIMEOUT
  )

  it.live(
    "the session dies: the splice fails with the session's error and the TCP peer is reset",
    () =>
      Effect.gen(function* () {
        const t = yield* topology
        yield* t.client.abort
        assert.strictEqual(tagOf(yield* Fiber.await(t.fiber)), "SessionClosed")
        yield* readUntilFailure(t.peer)
      }),
    TIMEOUT
  )

  it.live(
    "interrupting the splice resets both sides",
    () =>
      Effect.gen(function* () {
        const t = yield* topology
        yield* Fiber.interrupt(t.fiber)
        yield* readUntilFailure(t.peer)
        assert.strictEqual(tagOf(yield* Effect.exit(t.remote.readAll)), "StreamReset")
      }),
    TIMEOUT
  )

  it.live(
    "a transport with a pending read offers no direct port, and splice falls back to pumps",
    () =>
      Effect.gen(function* () {
        const listener = yield* Tcp.listen({ host: "127.0.0.1", port: 0 })
        const [peer, socket] = yield* Effect.all([Tcp.connect(listener.address), listener.accept], { concurrency: 2 })
        yield* Effect.addFinalizer(() => socket.close)
        const reader = yield* Effect.forkChild(socket.read)
        yield* eventually("the read is parked", () => socket.directPort?.() === undefined, BOUND)
        yield* peer.write([new Uint8Array([1, 2, 3])])
        assert.deepStrictEqual(Array.from((yield* Fiber.join(reader)) ?? []), [1, 2, 3])
        assert.isDefined(socket.directPort?.(), "offered again once the read completed")
      }),
    TIMEOUT
  )
})

/** A connected pair of raw sockets: `accepted` (not yet wrapped) and the dialling `peer`, destroyed with the scope. */
const rawPair = Effect.acquireRelease(
  Effect.callback<{ readonly accepted: net.Socket; readonly peer: net.Socket; readonly server: net.Server }>(
    (resume) => {
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (accepted) =>
        resume(Effect.succeed({ accepted, peer, server }))
      )
      let peer: net.Socket
      server.listen(0, "127.0.0.1", () => {
        peer = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1")
        peer.on("error", () => {})
      })
    }
  ),
  ({ accepted, peer, server }) =>
    Effect.sync(() => {
      accepted.destroy()
      peer.destroy()
      server.close()
    })
)

describe("splice over direct ports: state recorded before the splice", () => {
  it.live(
    "a socket that saw its peer's FIN and then an error fails the splice instead of ending it cleanly",
    () =>
      Effect.gen(function* () {
        const { accepted } = yield* rawPair
        const socket = Tcp.makeTransport(accepted)
        accepted.emit("end")
        accepted.emit("error", Object.assign(new Error("connection reset by peer"), { code: "ECONNRESET" }))
        const { client, server } = yield* sessionPair()
        const stream = yield* client.openUnscoped
        const remote = yield* server.acceptUnscoped
        const exit = yield* Effect.exit(splice(socket, stream))
        assert.strictEqual(tagOf(exit), "TransportError")
        assert.strictEqual(tagOf(yield* Effect.exit(remote.readAll)), "StreamReset")
      }),
    TIMEOUT
  )
})

describe("Tcp transport: reset after closeWrite", () => {
  it.live(
    "closes the socket (libuv refuses an RST after shutdown; the handle must still be closed)",
    () =>
      Effect.gen(function* () {
        const count = (): number | undefined => {
          try {
            return fs.readdirSync("/proc/self/fd").length
          } catch {
            return undefined
          }
        }
        const before = count()
        const listener = yield* Tcp.listen({ host: "127.0.0.1", port: 0 })
        const [a, b] = yield* Effect.all([Tcp.connect(listener.address), listener.accept], { concurrency: 2 })
        // Back to back, as a splice failing right after passing a FIN does: the shutdown is in flight.
        yield* a.closeWrite
        yield* a.reset
        yield* b.close
        if (before !== undefined) {
          // The listener's own fd is still open (+1); both connection fds must be gone.
          yield* eventually("both connection fds closed", () => (count() ?? 0) <= before + 1, BOUND)
        }
      }),
    TIMEOUT
  )
})
