/**
 * Interop with an independent yamux implementation: `@chainsafe/libp2p-yamux` 8.0.1 (JS, ACKs
 * lazily, auto-tunes windows up to 16 MiB), over real TCP loopback, both directions.
 *
 * The first group checks that the two implementations agree where they must: many concurrent
 * streams, payloads beyond the 256 KiB initial window, half-close in both orders, pings both ways,
 * graceful ends. The regression group guards the two plait bugs this suite found. The last group
 * pins down where the implementations disagree (each test says how and why in a comment), so that a
 * change on either side shows up here.
 *
 * The echo servers on both sides speak one in-band rule: the first payload byte picks the
 * {@link EchoMode} (echo as it arrives, or read to EOF and then write everything back).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, FiberSet } from "effect"
import { type MuxStream, snapshotOf } from "../../src/internal/session/Stream.ts"
import * as Session from "../../src/session/Session.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import { echo, mismatch, payload, roundTrip } from "./harness.ts"
import {
  collect,
  dialLibp2p,
  EchoMode,
  type LateBytes,
  roundTrip as libp2pRoundTrip,
  listenLibp2p,
  sendAll,
  serveEcho
} from "./libp2p.ts"
import { F, T, tapFrames, type WireFrame } from "./wire.ts"

const KiB = 1024
const INITIAL_WINDOW = 256 * KiB
const STREAMS = 64
const TEST_TIMEOUT = 30_000
const loopback = { host: "127.0.0.1", port: 0 }
/** A failed test still closes its session: keep the drain short so failures are quick to report. */
const drainTimeoutMillis = 2_000

/** Fails with a clear message instead of hanging (every test also has a vitest timeout). */
const bounded = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>, millis = 20_000) =>
  effect.pipe(
    Effect.timeoutOrElse({
      duration: millis,
      orElse: () => Effect.die(new Error(`${what}: no result after ${millis} ms`))
    })
  )

/** A promise of the libp2p side, failing the test if it rejects, bounded in time. */
const libp2p = <A>(what: string, run: () => Promise<A>) => bounded(what, Effect.promise(run))

/** Sizes from just above the initial window to ~650 KiB, deterministic per index. */
const sizeOf = (i: number): number => INITIAL_WINDOW + 1 + ((i * 7919 * 13) % (400 * KiB))

const outFrames = (frames: ReadonlyArray<WireFrame>, type: number, flag: number) =>
  frames.filter((f) => f.dir === "out" && f.type === type && (f.flags & flag) !== 0)

/**
 * Accepts streams until accepting fails (GO_AWAY either way, or the session ends), echoing each
 * one, then lets the echoes already running finish; echo failures are collected.
 */
const serveSession = (session: Session.Session, failures: Array<unknown>) =>
  Effect.gen(function* () {
    const fibers = yield* FiberSet.make<void, never>()
    const handle = (s: MuxStream) =>
      echo(s).pipe(
        Effect.catch((error) =>
          Effect.andThen(
            Effect.sync(() => failures.push(error)),
            s.reset
          )
        )
      )
    while (true) {
      const next = yield* Effect.exit(session.acceptUnscoped)
      if (next._tag === "Failure") break
      yield* FiberSet.run(fibers, handle(next.value))
    }
    yield* FiberSet.awaitEmpty(fibers)
  }).pipe(Effect.scoped)

/** A plait server session on an accepted connection from a libp2p dialer, plus its frame log. */
const plaitServer = Effect.gen(function* () {
  const server = yield* Tcp.listen(loopback)
  const peer = yield* dialLibp2p(server.address.port)
  const tapped = tapFrames(yield* server.accept)
  const session = yield* Session.make(tapped.transport, { client: false, config: { drainTimeoutMillis } })
  return { peer, session, frames: tapped.frames }
})

describe("libp2p-yamux interop over TCP", () => {
  it.live(
    `plait dials, libp2p-yamux listens: ${STREAMS} concurrent streams echo byte-exact, streaming and after-EOF`,
    () =>
      Effect.gen(function* () {
        const echoErrors: Array<unknown> = []
        const { port, peers } = yield* listenLibp2p((peer) => serveEcho(peer.muxer, (e) => echoErrors.push(e)))
        const tapped = tapFrames(yield* Tcp.connect({ host: "127.0.0.1", port }))
        const session = yield* Session.make(tapped.transport, { client: true, config: { drainTimeoutMillis } })

        const results = yield* bounded(
          "round trips",
          Effect.forEach(
            Array.from({ length: STREAMS }, (_, i) => i),
            (i) => {
              const want = payload(sizeOf(i), i + 1, i % 2 === 0 ? EchoMode.Streaming : EchoMode.AfterEof)
              return Effect.map(roundTrip(session, want), (got) => mismatch(`stream ${2 * i + 1}`, got, want))
            },
            { concurrency: "unbounded" }
          )
        )
        assert.deepStrictEqual(
          results.filter((r) => r !== undefined),
          []
        )
        assert.deepStrictEqual(echoErrors, [])
        const peer = peers[0]!
        assert.strictEqual(session.stats().streams, 0, "plait released every stream")
        assert.strictEqual(peer.muxer.streams.length, 0, "libp2p released every stream")

        // Ping both ways on the same link.
        assert.isAtLeast(yield* bounded("plait ping", session.ping), 0)
        assert.isAtLeast(yield* libp2p("libp2p ping", () => peer.muxer.ping()), 0)

        // Every FIN plait sent rode on a WINDOW_UPDATE; every open was a SYN on a WINDOW_UPDATE.
        assert.lengthOf(outFrames(tapped.frames, T.Data, F.FIN), 0)
        assert.lengthOf(outFrames(tapped.frames, T.WindowUpdate, F.FIN), STREAMS)
        assert.lengthOf(outFrames(tapped.frames, T.WindowUpdate, F.SYN), STREAMS)

        // Graceful end: GO_AWAY(0), then the link closes; libp2p sees both.
        yield* bounded("close", session.close)
        const goAway = tapped.frames.find((f) => f.dir === "out" && f.type === T.GoAway)
        assert.strictEqual(goAway?.length, 0, "GO_AWAY code 0 (normal) sent")
        yield* libp2p("libp2p sees the link close", () => peer.closed)
        assert.strictEqual(peer.muxer.status, "closed")
      }),
    TEST_TIMEOUT
  )

  it.live(
    `libp2p-yamux dials, plait listens: ${STREAMS} concurrent streams echo byte-exact, streaming and after-EOF`,
    () =>
      Effect.gen(function* () {
        const { peer, session, frames } = yield* plaitServer
        const failures: Array<unknown> = []
        yield* Effect.forkScoped(serveSession(session, failures))

        const results = yield* libp2p("round trips", () =>
          Promise.all(
            Array.from({ length: STREAMS }, async (_, i) => {
              const want = payload(sizeOf(i), 1000 + i, i % 2 === 0 ? EchoMode.Streaming : EchoMode.AfterEof)
              return mismatch(`stream ${2 * i + 1}`, await libp2pRoundTrip(peer.muxer, want), want)
            })
          )
        )
        assert.deepStrictEqual(
          results.filter((r) => r !== undefined),
          []
        )
        assert.deepStrictEqual(failures, [])
        assert.strictEqual(session.stats().streams, 0, "plait released every stream")
        assert.strictEqual(peer.muxer.streams.length, 0, "libp2p released every stream")

        // plait ACKs every inbound stream on accept (a WINDOW_UPDATE with ACK, granting its max window).
        const acks = outFrames(frames, T.WindowUpdate, F.ACK)
        assert.lengthOf(acks, STREAMS)
        for (const ack of acks) assert.strictEqual(ack.length, session.config.maxWindow - INITIAL_WINDOW)
        assert.lengthOf(outFrames(frames, T.Data, F.FIN), 0)

        assert.isAtLeast(yield* libp2p("libp2p ping", () => peer.muxer.ping()), 0)
        assert.isAtLeast(yield* bounded("plait ping", session.ping), 0)

        // libp2p closes its muxer (FIN on open streams, then GO_AWAY(0)) and then its socket. (No
        // ping of libp2p's is in flight here: see the "aborted ping" test.)
        yield* libp2p("libp2p close", () => peer.muxer.close())
        yield* libp2p("libp2p closes the socket", () => peer.connection.close())
        const reason = yield* bounded("plait session end", session.await)
        assert.strictEqual(reason.reason._tag, "SessionClosed")
        assert.isTrue(frames.some((f) => f.dir === "in" && f.type === T.GoAway && f.length === 0))
      }),
    TEST_TIMEOUT
  )

  it.live(
    "both ends open streams on one link at once (odd ids from the dialler, even ids from the listener)",
    () =>
      Effect.gen(function* () {
        const { peer, session } = yield* plaitServer
        const failures: Array<unknown> = []
        serveEcho(peer.muxer, (e) => failures.push(e))
        yield* Effect.forkScoped(serveSession(session, failures))
        const count = 16
        const fromLibp2p = Effect.promise(() =>
          Promise.all(
            Array.from({ length: count }, async (_, i) => {
              const want = payload(300 * KiB + i, 50 + i, EchoMode.AfterEof)
              return mismatch(`libp2p stream ${i}`, await libp2pRoundTrip(peer.muxer, want), want)
            })
          )
        )
        const fromPlait = Effect.forEach(
          Array.from({ length: count }, (_, i) => i),
          (i) => {
            const want = payload(300 * KiB + i, 90 + i, EchoMode.Streaming)
            return Effect.map(roundTrip(session, want), (got) => mismatch(`plait stream ${i}`, got, want))
          },
          { concurrency: "unbounded" }
        )
        const [a, b] = yield* bounded("round trips", Effect.all([fromLibp2p, fromPlait], { concurrency: 2 }))
        assert.deepStrictEqual(
          [...a, ...b].filter((r) => r !== undefined),
          []
        )
        assert.deepStrictEqual(failures, [])
        assert.strictEqual(session.stats().streams, 0)
      }),
    TEST_TIMEOUT
  )
})

describe("libp2p-yamux interop: regressions", () => {
  it.live(
    "regression: bytes written after the peer's FIN wait for credit and go out whole, then the FIN",
    () =>
      // The stream used to be released when closeWrite followed the peer's FIN, with bytes still
      // queued behind the peer's window: the credit that would have sent them was then dropped as
      // a frame for a gone stream, so the tail and the FIN never went out and the peer hung.
      Effect.gen(function* () {
        const { peer, session } = yield* plaitServer
        const failures: Array<unknown> = []
        yield* Effect.forkScoped(serveSession(session, failures))
        // libp2p grants only its initial 256 KiB window until it reads: 1 MiB must wait for credit.
        const want = payload(1024 * KiB, 7, EchoMode.AfterEof)
        const got = yield* libp2p("round trip", () => libp2pRoundTrip(peer.muxer, want))
        assert.isUndefined(mismatch("echo", got, want))
        assert.deepStrictEqual(failures, [])
        assert.strictEqual(session.stats().streams, 0)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "regression: FIN never rides on DATA (libp2p-yamux drops the bytes of a DATA|FIN frame)",
    () =>
      // libp2p-yamux 8.0.1 handles a frame's flags before its payload. For DATA|FIN on a stream whose
      // own write side is closed, the FIN closes the stream and the payload is discarded; otherwise
      // it is delivered after 'end', which the async iterator never sees. plait now sends FIN on a
      // WINDOW_UPDATE of its own, as hashicorp/yamux and go-yamux do.
      Effect.gen(function* () {
        const { peer, session, frames } = yield* plaitServer
        const response = payload(100 * KiB + 3, 11, 0)
        yield* Effect.forkScoped(
          Effect.scoped(
            Effect.gen(function* () {
              const s = yield* session.accept
              const request = yield* s.readAll
              // The response goes out in one write followed at once by closeWrite: the FIN used to
              // ride on the last DATA frame.
              yield* s.write([response, request])
              yield* s.closeWrite
            })
          )
        )
        const late: LateBytes = { late: 0 }
        const request = payload(1000, 12, 0)
        const got = yield* libp2p("request/response", async () => {
          const stream = await peer.muxer.createStream()
          const reply = collect(stream, undefined, late)
          await sendAll(stream, request)
          await stream.close()
          return reply
        })
        assert.strictEqual(got.length, response.length + request.length)
        assert.isUndefined(mismatch("response", got.subarray(0, response.length), response))
        assert.strictEqual(late.late, 0, "no bytes delivered after 'end'")
        const toStream = frames.filter((f) => f.dir === "out" && f.streamId === 1 && f.type !== T.Ping)
        assert.lengthOf(outFrames(frames, T.Data, F.FIN), 0)
        const last = toStream[toStream.length - 1]!
        assert.deepInclude(last, { type: T.WindowUpdate, flags: F.FIN, length: 0 })
      }),
    TEST_TIMEOUT
  )
})

describe("libp2p-yamux interop: where the implementations disagree", () => {
  it.live(
    "GO_AWAY(0) from plait ends libp2p-yamux's open streams at once, with no FIN or RST; plait's close waits out its drain deadline",
    () =>
      // plait (like hashicorp) treats GO_AWAY(0) as "no new streams" and drains; libp2p-yamux tears
      // every stream down on receipt and sends nothing for them, so a plait session closing with
      // streams open to libp2p cannot drain and always spends the full drain timeout.
      Effect.gen(function* () {
        const drainDeadline = 400
        const { port, peers } = yield* listenLibp2p((peer) => serveEcho(peer.muxer))
        const tapped = tapFrames(yield* Tcp.connect({ host: "127.0.0.1", port }))
        const session = yield* Session.make(tapped.transport, {
          client: true,
          config: { drainTimeoutMillis: drainDeadline }
        })
        const s = yield* session.openUnscoped
        yield* s.write([payload(1000, 3, EchoMode.Streaming)])
        const first = yield* bounded("echo", s.read)
        assert.strictEqual(first?.length, 1000)
        const peer = peers[0]!
        assert.lengthOf(peer.muxer.streams, 1)

        const reader = yield* Effect.forkChild(Effect.flip(s.read))
        const started = Date.now()
        yield* bounded("close", session.close)
        const elapsed = Date.now() - started
        assert.isAtLeast(elapsed, drainDeadline - 50, "plait waited for a drain that never came")
        const error = yield* bounded("reader", Fiber.join(reader))
        assert.strictEqual(error.reason._tag, "SessionClosed")
        yield* libp2p("libp2p sees the link close", () => peer.closed)
        assert.strictEqual(peer.muxer.status, "closed")
        assert.lengthOf(peer.muxer.streams, 0)
        const fromPeer = tapped.frames.filter((f) => f.dir === "in" && f.streamId === s.id)
        assert.isFalse(
          fromPeer.some((f) => (f.flags & (F.FIN | F.RST)) !== 0),
          "libp2p sent neither FIN nor RST"
        )
      }),
    TEST_TIMEOUT
  )

  it.live(
    "libp2p-yamux ACKs lazily: a stream nobody writes to is never ACKed, so plait's open timeout resets it",
    () =>
      // libp2p-yamux emits the inbound stream at once but sends the ACK only with its first frame
      // on that stream: its first DATA, or the credit it returns for the first bytes received.
      // plait bounds un-ACKed opens in time (openTimeoutMillis, 75 s by default), so a quiet stream
      // (e.g. a long poll where the opener has nothing to say) is reset. One byte gets the ACK.
      Effect.gen(function* () {
        const accepted = yield* Deferred.make<void>()
        const { port } = yield* listenLibp2p((peer) => {
          peer.muxer.addEventListener("stream", () => Deferred.doneUnsafe(accepted, Exit.succeed(undefined)))
          serveEcho(peer.muxer)
        })
        const tapped = tapFrames(yield* Tcp.connect({ host: "127.0.0.1", port }))
        const session = yield* Session.make(tapped.transport, {
          client: true,
          config: { openTimeoutMillis: 300, timerResolutionMillis: 50, drainTimeoutMillis }
        })
        const quiet = yield* session.openUnscoped
        yield* bounded("libp2p accepts", Deferred.await(accepted))
        const error = yield* bounded("open timeout", Effect.flip(quiet.read))
        assert.strictEqual(error.reason._tag, "OpenTimeout")
        const acked = (id: number) =>
          tapped.frames.some((f) => f.dir === "in" && f.streamId === id && (f.flags & F.ACK) !== 0)
        assert.isFalse(acked(quiet.id), "libp2p never ACKed the quiet stream")
        assert.isTrue(
          tapped.frames.some((f) => f.dir === "out" && f.streamId === quiet.id && (f.flags & F.RST) !== 0),
          "plait reset it"
        )

        // One byte written: libp2p's first frame back carries the ACK; the stream lives on.
        const talking = yield* session.openUnscoped
        yield* talking.write([new Uint8Array([EchoMode.Streaming])])
        const echoed = yield* bounded("echo", talking.read)
        assert.deepStrictEqual(echoed, new Uint8Array([EchoMode.Streaming]))
        assert.isTrue(acked(talking.id))
        assert.isTrue(snapshotOf(talking).acked)
        assert.strictEqual(session.stats().unackedOpens, 0)
        yield* talking.reset
      }),
    TEST_TIMEOUT
  )

  it.live(
    "lazy ACKs hold plait's un-ACKed-open budget: quiet streams to libp2p-yamux block further opens until one speaks",
    () =>
      // maxUnackedOpens (256 by default) bounds opens the peer has not ACKed. Against libp2p-yamux
      // a stream counts as un-ACKed until a byte crosses it, so a proxy with that many idle clients
      // stops opening streams. Backpressure, not failure: the blocked open proceeds once one speaks.
      Effect.gen(function* () {
        const { port } = yield* listenLibp2p((peer) => serveEcho(peer.muxer))
        const session = yield* Session.make(yield* Tcp.connect({ host: "127.0.0.1", port }), {
          client: true,
          config: { maxUnackedOpens: 4, drainTimeoutMillis }
        })
        const quiet = yield* Effect.forEach([1, 2, 3, 4], () => session.openUnscoped)
        assert.strictEqual(session.stats().unackedOpens, 4)
        const fifth = yield* Effect.forkChild(session.openUnscoped)
        // The fifth open waits: nothing the peer will do can ACK a stream nobody writes to.
        for (let i = 0; i < 100 && session.stats().waiters === 0; i++) yield* Effect.yieldNow
        assert.strictEqual(session.stats().waiters, 1, "fifth open waiting for an ACK")
        assert.isUndefined(fifth.pollUnsafe())
        // One byte on a quiet stream: libp2p echoes it (with ACK), which frees one slot.
        yield* quiet[0]!.write([new Uint8Array([EchoMode.Streaming])])
        const opened = yield* bounded("fifth open", Fiber.join(fifth))
        assert.strictEqual(opened.id, 9)
        for (const s of [...quiet, opened]) yield* s.reset
      }),
    TEST_TIMEOUT
  )

  it.live(
    "libp2p-yamux closing (FIN on its streams, then GO_AWAY(0)): plait refuses new opens at once and finishes the streams it has",
    () =>
      Effect.gen(function* () {
        const { peer, session, frames } = yield* plaitServer
        const failures: Array<unknown> = []
        yield* Effect.forkScoped(serveSession(session, failures))
        // A libp2p stream with bytes in flight when libp2p closes: its echo must still arrive.
        const want = payload(400 * KiB, 21, EchoMode.AfterEof)
        const stream = yield* libp2p("open", () => peer.muxer.createStream())
        const reply = collect(stream)
        yield* libp2p("send", () => sendAll(stream, want))
        // Settle libp2p's keepalive ping first: close() would abort it, and the pong arriving after
        // that makes libp2p reset the connection (see the "aborted ping" test below).
        yield* libp2p("ping", () => peer.muxer.ping())
        yield* libp2p("libp2p muxer close", () => peer.muxer.close())
        const got = yield* libp2p("echo after GO_AWAY", () => reply)
        assert.isUndefined(mismatch("echo", got, want))
        assert.isTrue(frames.some((f) => f.dir === "in" && f.type === T.GoAway && f.length === 0))
        assert.isFalse(session.isOpen())
        const refused = yield* bounded("open after GO_AWAY", Effect.flip(session.openUnscoped))
        assert.strictEqual(refused.reason._tag, "RemoteGoAway")
        assert.deepStrictEqual(failures, [])
        yield* libp2p("libp2p closes the socket", () => peer.connection.close())
        yield* bounded("plait session end", session.await)
      }),
    TEST_TIMEOUT
  )

  it.live(
    "an aborted ping makes libp2p-yamux take plait's pong as unrequested and reset the connection (its close() aborts the keepalive ping the same way)",
    () =>
      // libp2p-yamux forgets a ping whose signal aborts, then treats the pong as a protocol error
      // (UnRequestedPingError): GO_AWAY(1) and a TCP reset (after close(), only the reset). Its close() stops the keepalive task by aborting exactly such a ping, so
      // closing a libp2p muxer within one RTT of a keepalive ping resets the link, and streams still
      // draining end early as if cleanly. plait answers every ping at once and ignores unsolicited
      // pongs; nothing it can do avoids this beyond answering promptly.
      Effect.gen(function* () {
        const { peer, session, frames } = yield* plaitServer
        // Let the keepalive ping sent on connect be answered first, so only our ping is in flight.
        yield* libp2p("first ping", () => peer.muxer.ping())
        const aborted = yield* libp2p("aborted ping", async () => {
          const controller = new AbortController()
          const pinging = peer.muxer.ping({ signal: controller.signal })
          controller.abort() // before any I/O: the pong cannot have arrived
          return pinging.then(
            () => "answered",
            (error: Error) => error.name
          )
        })
        assert.strictEqual(aborted, "AbortError")
        // libp2p sends GO_AWAY(1) and resets the TCP connection at once: plait sees whichever
        // arrives first (the reset may discard the GO_AWAY still unread in the socket).
        const reason = (yield* bounded("plait session end", session.await)).reason
        if (reason._tag === "RemoteGoAway") assert.strictEqual(reason.code, 1, "GO_AWAY(protocol error)")
        else assert.strictEqual(reason._tag, "TransportFailed", "libp2p reset the TCP connection")
        yield* libp2p("libp2p socket closed", () => peer.closed)
        assert.strictEqual(peer.muxer.status, "closed")
        const pongs = frames.filter((f) => f.dir === "out" && f.type === T.Ping && f.flags === F.ACK)
        assert.isAtLeast(pongs.length, 2, "plait answered both pings")
      }),
    TEST_TIMEOUT
  )
})
