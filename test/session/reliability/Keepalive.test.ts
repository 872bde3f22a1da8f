/**
 * Reliability case 3, "keepalive kills healthy sessions or misses dead ones". Time is the TestClock:
 * `advance` moves it in steps and lets the in-memory frames arrive between steps.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { Flags, FrameType, HEADER_SIZE } from "../../../src/protocol/Constants.ts"
import { ping, windowUpdate } from "../../../src/protocol/Frame.ts"
import * as Session from "../../../src/session/Session.ts"
import { makePair } from "../../../src/transport/Memory.ts"
import {
  abortOnExit,
  advance,
  assertBytes,
  assertIdle,
  eventually,
  fiberReason,
  isRunning,
  payload,
  RawPeer,
  reasonOf,
  sessionPair,
  settle,
  within,
  writeAll
} from "./helpers.ts"

const TIMEOUT = 10_000
const INTERVAL = 30_000
const PING_TIMEOUT = 10_000

describe("keepalive kills healthy sessions or misses dead ones", () => {
  it.effect(
    "a silent peer fails the session with KeepaliveTimeout exactly at interval + timeout",
    () =>
      Effect.gen(function* () {
        const { pair, client, server } = yield* sessionPair({
          config: { keepaliveIntervalMillis: INTERVAL, keepaliveTimeoutMillis: PING_TIMEOUT }
        })
        const c = yield* client.openUnscoped
        const s = yield* server.acceptUnscoped
        const pendingRead = yield* Effect.forkChild(c.read)
        yield* settle()
        yield* pair.blackhole("both")

        yield* advance(INTERVAL + PING_TIMEOUT - 1)
        assert.isFalse(client.isClosed(), "alive 1 ms before interval + timeout")
        assert.isFalse(server.isClosed())
        assert.strictEqual(client.stats().pendingPings, 1, "one keepalive ping in flight")
        assert.isTrue(isRunning(pendingRead))

        yield* advance(1)
        assert.isTrue(client.isClosed(), "dead at interval + timeout")
        assert.strictEqual((yield* client.await).reason._tag, "KeepaliveTimeout")
        assert.strictEqual((yield* server.await).reason._tag, "KeepaliveTimeout")
        // Everything waiting on the dead session ends with the same reason.
        assert.strictEqual(yield* fiberReason(pendingRead), "KeepaliveTimeout")
        assert.strictEqual(yield* reasonOf(s.read), "KeepaliveTimeout")
        assert.strictEqual(yield* reasonOf(client.openUnscoped), "KeepaliveTimeout")
        assert.strictEqual(yield* reasonOf(client.ping), "KeepaliveTimeout")
        assertIdle(client)
      }),
    TIMEOUT
  )

  it.effect(
    "the dead-peer clock starts at the last frame received, not at session start",
    () =>
      Effect.gen(function* () {
        const { pair, client } = yield* sessionPair({
          config: { keepaliveIntervalMillis: INTERVAL, keepaliveTimeoutMillis: PING_TIMEOUT }
        })
        // Traffic at t = 25 s: the server answers a ping, so the client's idle timer restarts.
        yield* advance(25_000)
        yield* client.ping
        yield* pair.blackhole("both")
        yield* advance(INTERVAL + PING_TIMEOUT - 1)
        assert.isFalse(client.isClosed(), "t = 25 s + interval + timeout - 1")
        yield* advance(1)
        assert.isTrue(client.isClosed())
        assert.strictEqual((yield* client.await).reason._tag, "KeepaliveTimeout")
      }),
    TIMEOUT
  )

  it.effect(
    "an idle session with open streams whose peer answers pings is never closed",
    () =>
      Effect.gen(function* () {
        const { client, server } = yield* sessionPair({
          config: { keepaliveIntervalMillis: INTERVAL, keepaliveTimeoutMillis: PING_TIMEOUT }
        })
        const c = yield* client.openUnscoped
        const s = yield* server.acceptUnscoped
        const idleRead = yield* Effect.forkChild(s.read)
        // Twenty intervals of silence on the streams: only keepalive traffic.
        yield* advance(20 * (INTERVAL + PING_TIMEOUT))
        assert.isFalse(client.isClosed())
        assert.isFalse(server.isClosed())
        assert.isTrue(client.isOpen() && server.isOpen())
        assert.isTrue(isRunning(idleRead))
        assert.isAtMost(client.stats().pendingPings, 1, "pings do not pile up")
        assert.isAtMost(server.stats().pendingPings, 1)
        // The streams still carry bytes.
        const bytes = payload(100_000, 3)
        yield* writeAll(c, bytes)
        yield* c.closeWrite
        const first = yield* Fiber.join(idleRead)
        const rest = yield* s.readAll
        const all = new Uint8Array(first!.length + rest.length)
        all.set(first!)
        all.set(rest, first!.length)
        assertBytes(all, bytes, "after 20 idle intervals")
      }),
    TIMEOUT
  )

  it.effect(
    "keepalive pings only an idle link: a peer that keeps talking is never pinged",
    () =>
      Effect.gen(function* () {
        const pair = yield* makePair()
        const session = yield* Session.make(pair.a, {
          client: false,
          config: { keepaliveIntervalMillis: INTERVAL, keepaliveTimeoutMillis: PING_TIMEOUT }
        }).pipe(Effect.orDie)
        yield* abortOnExit(session)
        const peer = new RawPeer(pair.b)
        yield* peer.send(windowUpdate(1, Flags.SYN, 0))
        yield* session.acceptUnscoped
        // Every 20 s the peer sends a frame (a zero credit): the session is never idle for 30 s.
        for (let i = 0; i < 15; i++) {
          yield* advance(20_000)
          yield* peer.send(windowUpdate(1, 0, 0))
          const seen = yield* peer.sync
          assert.deepStrictEqual(
            seen.filter((f) => f.type === FrameType.Ping),
            [],
            `no keepalive ping at ${(i + 1) * 20} s`
          )
        }
        // Silence: a ping comes exactly one interval after the last frame received.
        yield* advance(INTERVAL - 1)
        yield* peer.send(ping(Flags.ACK, 0xdead)) // an unsolicited pong: ignored, but it is traffic
        yield* advance(INTERVAL - 1)
        const before = yield* Effect.forkChild(peer.until((f) => f.type === FrameType.Ping, "keepalive ping"))
        yield* settle()
        assert.isTrue(isRunning(before), "no ping before a full interval of silence")
        yield* advance(1)
        const keepalivePing = yield* Fiber.join(before)
        assert.strictEqual(keepalivePing.flags, Flags.SYN)
        // Unanswered: the session dies after the ping timeout.
        yield* advance(PING_TIMEOUT - 1)
        assert.isFalse(session.isClosed())
        yield* advance(1)
        assert.strictEqual((yield* session.await).reason._tag, "KeepaliveTimeout")
      }),
    TIMEOUT
  )

  it.effect(
    "pings are answered while a stream pushes bulk data that the peer does not read",
    () =>
      Effect.gen(function* () {
        const { client, server } = yield* sessionPair()
        const c = yield* client.openUnscoped
        const writer = yield* Effect.forkChild(writeAll(c, payload(3 * client.config.maxWindow, 5)))
        const s = yield* server.acceptUnscoped
        yield* eventually(
          () => server.stats().bufferedBytes === server.config.maxWindow,
          "the unread stream's window is full"
        )
        assert.isTrue(isRunning(writer), "the writer is stalled on credit")
        assert.isAtLeast(yield* client.ping, 0)
        assert.isAtLeast(yield* server.ping, 0)
        assert.strictEqual(s.state, "Established")
      }),
    TIMEOUT
  )

  it.live(
    "on a saturated link a pong overtakes queued DATA: at most the pipe plus one batch goes first",
    () =>
      Effect.gen(function* () {
        const highWaterMark = 64 * 1024
        const pair = yield* makePair({ highWaterMark })
        const session = yield* Session.make(pair.a, { client: true }).pipe(Effect.orDie)
        yield* abortOnExit(session)
        const peer = new RawPeer(pair.b)
        const stream = yield* session.openUnscoped
        const syn = yield* peer.next
        // A huge window: only the link limits the writer, which therefore always has DATA queued.
        yield* peer.send(windowUpdate(syn!.streamId, Flags.ACK, 0x7fff_0000))
        const total = 32 * 1024 * 1024
        yield* Effect.forkChild(writeAll(stream, payload(total, 7), 256 * 1024))
        let received = 0
        const readData = (limit: number) =>
          Effect.gen(function* () {
            while (received < limit) {
              const f = yield* peer.next
              if (f?.type === FrameType.Data) received += f.length
            }
          })
        yield* readData(4 * 1024 * 1024)
        const atPing = received
        yield* peer.send(ping(Flags.SYN, 42))
        for (let guard = 0; guard < 100_000; guard++) {
          const f = yield* peer.next
          assert.isDefined(f)
          if (f!.type === FrameType.Ping) {
            assert.strictEqual(f!.flags, Flags.ACK)
            assert.strictEqual(f!.length, 42)
            break
          }
          if (f!.type === FrameType.Data) received += f!.length
        }
        const overtaken = received - atPing
        const bound = highWaterMark + 2 * (session.config.maxBatchBytes + 64 * HEADER_SIZE)
        assert.isAtMost(overtaken, bound, `DATA bytes ahead of the pong: ${overtaken}`)
        assert.isBelow(received, total, "the pong came long before the bulk was done")
      }).pipe(Effect.scoped, (e) => within(8_000, "saturated link", e)),
    TIMEOUT
  )
})
