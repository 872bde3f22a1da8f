/**
 * Reliability case 4, "writes that hang forever": every blocking operation (read, write on an
 * exhausted window, open at the un-ACKed bound, accept, close awaiting the peer's FIN) ends in
 * bounded time with the right typed error when the peer resets the stream, the session is aborted,
 * the transport is reset or the peer dies (blackhole + keepalive) — and each is interruptible.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber } from "effect"
import type { MuxStream } from "../../../src/internal/session/Stream.ts"
import type { MuxError } from "../../../src/session/MuxError.ts"
import {
  advance,
  eventually,
  isRunning,
  payload,
  type ReasonTag,
  reasonOf,
  type SessionPair,
  sessionPair,
  settle,
  writeAll
} from "./helpers.ts"

const TIMEOUT = 10_000
const INTERVAL = 30_000
const PING_TIMEOUT = 10_000

interface Blocked {
  readonly fiber: Fiber.Fiber<unknown, MuxError>
  /** The peer's end of the stream the operation waits on, when there is one. */
  readonly peerStream?: MuxStream
}

type Op = "read" | "write" | "open" | "accept" | "close"
type Trigger = "peer resets the stream" | "session aborted" | "transport reset" | "peer dies"

/** Blocks one operation of the client session; returns once it is parked. */
const block: { readonly [K in Op]: (sp: SessionPair) => Effect.Effect<Blocked, MuxError> } = {
  read: ({ client, server }) =>
    Effect.gen(function* () {
      const c = yield* client.openUnscoped
      const s = yield* server.acceptUnscoped
      return { fiber: yield* Effect.forkChild(c.read), peerStream: s }
    }),
  write: ({ client, server }) =>
    Effect.gen(function* () {
      const c = yield* client.openUnscoped
      const s = yield* server.acceptUnscoped
      const size = client.config.maxWindow + client.config.writeBufferSize + 4 * 64 * 1024
      const fiber = yield* Effect.forkChild(writeAll(c, payload(size, 1)))
      yield* eventually(() => server.stats().bufferedBytes === server.config.maxWindow, "the peer's window is full")
      return { fiber, peerStream: s }
    }),
  open: ({ client }) =>
    Effect.gen(function* () {
      // The server never accepts: its backlog holds the SYNs, no ACK comes back.
      for (let i = 0; i < client.config.maxUnackedOpens; i++) yield* client.openUnscoped
      return { fiber: yield* Effect.forkChild(client.openUnscoped) }
    }),
  accept: ({ client }) => Effect.map(Effect.forkChild(client.acceptUnscoped), (fiber) => ({ fiber })),
  close: ({ client, server }) =>
    Effect.gen(function* () {
      const c = yield* client.openUnscoped
      const s = yield* server.acceptUnscoped
      // FIN sent; the silent peer never answers with its own.
      return { fiber: yield* Effect.forkChild(c.close), peerStream: s }
    })
}

const apply = (cause: Trigger, sp: SessionPair, blocked: Blocked): Effect.Effect<void> => {
  switch (cause) {
    case "peer resets the stream":
      return blocked.peerStream!.reset
    case "session aborted":
      return sp.client.abort
    case "transport reset":
      return sp.pair.b.reset
    case "peer dies":
      return Effect.andThen(sp.pair.blackhole("both"), advance(INTERVAL + PING_TIMEOUT))
  }
}

/** Expected outcome per operation and cause: a reason tag, "done" (completes), or n/a. */
const expected: { readonly [K in Op]: { readonly [C in Trigger]: ReasonTag | "done" | undefined } } = {
  read: {
    "peer resets the stream": "StreamReset",
    "session aborted": "SessionClosed",
    "transport reset": "TransportFailed",
    "peer dies": "KeepaliveTimeout"
  },
  write: {
    "peer resets the stream": "StreamReset",
    "session aborted": "SessionClosed",
    "transport reset": "TransportFailed",
    "peer dies": "KeepaliveTimeout"
  },
  open: {
    "peer resets the stream": undefined,
    "session aborted": "SessionClosed",
    "transport reset": "TransportFailed",
    "peer dies": "KeepaliveTimeout"
  },
  accept: {
    "peer resets the stream": undefined,
    "session aborted": "SessionClosed",
    "transport reset": "TransportFailed",
    "peer dies": "KeepaliveTimeout"
  },
  // close has no error channel: it ends (the stream is reset) whatever happens to the peer.
  close: {
    "peer resets the stream": "done",
    "session aborted": "done",
    "transport reset": "done",
    "peer dies": "done"
  }
}

const setup = sessionPair({
  config: { keepaliveIntervalMillis: INTERVAL, keepaliveTimeoutMillis: PING_TIMEOUT },
  clientConfig: { maxUnackedOpens: 4 },
  serverConfig: { acceptBacklog: 1024 }
})

describe("writes that hang forever", () => {
  for (const op of Object.keys(block) as Array<Op>) {
    describe(`blocked ${op}`, () => {
      for (const cause of Object.keys(expected[op]) as Array<Trigger>) {
        const outcome = expected[op][cause]
        if (outcome === undefined) continue
        it.effect(
          `ends with ${outcome} when the ${cause}`,
          () =>
            Effect.gen(function* () {
              const sp = yield* setup
              const blocked = yield* block[op](sp)
              yield* settle()
              assert.isTrue(isRunning(blocked.fiber), `${op} is blocked`)
              yield* apply(cause, sp, blocked)
              if (outcome === "done") {
                const exit = yield* Fiber.await(blocked.fiber)
                assert.isTrue(Exit.isSuccess(exit), `close completes: ${String(exit)}`)
              } else {
                assert.strictEqual(yield* reasonOf(Fiber.join(blocked.fiber)), outcome)
              }
              if (cause !== "peer resets the stream") {
                assert.isTrue(sp.client.isClosed())
                assert.strictEqual(sp.client.stats().streams, 0)
              }
              assert.strictEqual(sp.client.stats().waiters, 0, "no waiter left behind")
            }),
          TIMEOUT
        )
      }

      it.effect(
        "is interruptible, and the session stays usable",
        () =>
          Effect.gen(function* () {
            const sp = yield* setup
            const blocked = yield* block[op](sp)
            yield* settle()
            assert.isTrue(isRunning(blocked.fiber), `${op} is blocked`)
            const exit = yield* Fiber.interrupt(blocked.fiber).pipe(Effect.andThen(Fiber.await(blocked.fiber)))
            assert.isTrue(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause), `interrupted: ${String(exit)}`)
            assert.strictEqual(sp.client.stats().waiters, 0, "the interrupted waiter is gone")
            assert.isFalse(sp.client.isClosed())
            assert.isAtLeast(yield* sp.client.ping, 0)
            // A later operation of the same kind is not lost to the interrupted waiter.
            if (op === "accept") {
              const opened = yield* sp.server.openUnscoped
              const accepted = yield* sp.client.acceptUnscoped
              assert.strictEqual(accepted.id, opened.id)
            }
          }),
        TIMEOUT
      )
    })
  }

  it.effect(
    "a blocked open proceeds as soon as the peer frees an un-ACKed slot with RST",
    () =>
      Effect.gen(function* () {
        const sp = yield* setup
        const first = yield* sp.client.openUnscoped
        for (let i = 1; i < sp.client.config.maxUnackedOpens; i++) yield* sp.client.openUnscoped
        const blocked = yield* Effect.forkChild(sp.client.openUnscoped)
        yield* settle()
        assert.isTrue(isRunning(blocked))
        const refused = yield* sp.server.acceptUnscoped
        assert.strictEqual(refused.id, first.id)
        yield* refused.reset
        const opened = yield* Fiber.join(blocked)
        assert.strictEqual(opened.id, first.id + 2 * sp.client.config.maxUnackedOpens)
        assert.strictEqual(yield* reasonOf(first.read), "StreamReset")
      }),
    TIMEOUT
  )

  it.effect(
    "a write blocked on a peer that half-closed and stopped reading ends when the stream is reset locally",
    () =>
      Effect.gen(function* () {
        const sp = yield* setup
        const c = yield* sp.client.openUnscoped
        const s = yield* sp.server.acceptUnscoped
        yield* s.closeWrite
        yield* eventually(() => c.state === "RemoteClosed", "the peer's FIN arrived")
        const size = sp.client.config.maxWindow + sp.client.config.writeBufferSize + 4 * 64 * 1024
        const writer = yield* Effect.forkChild(writeAll(c, payload(size, 2)))
        yield* eventually(() => sp.server.stats().bufferedBytes === sp.server.config.maxWindow, "window full")
        yield* settle()
        assert.isTrue(isRunning(writer))
        yield* c.reset
        const error = yield* Effect.flip(Fiber.join(writer))
        assert.strictEqual(error.reason._tag, "StreamReset")
        assert.isFalse((error.reason as { readonly remote: boolean }).remote, "reset locally")
        yield* eventually(() => s.state === "Reset", "the RST reached the peer")
        assert.strictEqual(yield* reasonOf(s.read), "StreamReset")
        assert.strictEqual(sp.client.stats().streams, 0)
        assert.strictEqual(sp.server.stats().streams, 0)
        assert.strictEqual(sp.server.stats().bufferedBytes, 0, "the reset stream's buffer is released")
      }),
    TIMEOUT
  )
})
