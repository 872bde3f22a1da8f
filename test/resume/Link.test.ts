/**
 * The proxy's link and the server with resumption, over real TCP through an in-process relay
 * that cuts the connection (RST) or black-holes it: the same yamux session continues on the new
 * connection — its streams complete byte-exact, none is reset, the link's generation stays 1 —
 * and where resumption cannot work (server restarted, GO_AWAY) the link starts a fresh session.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, PubSub } from "effect"
import * as Client from "../../src/client/Client.ts"
import * as Link from "../../src/client/Link.ts"
import * as Events from "../../src/observability/Events.ts"
import * as Server from "../../src/server/Server.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import { firstDifference, pattern } from "./harness.ts"
import { relay } from "./relay.ts"

const TIMEOUT = 30_000
/** Keepalive timeout → the layer's silence (1 s) and heartbeat (250 ms). */
const SESSION = { keepaliveTimeoutMillis: 1_000 }
const RESUME = { config: { windowMillis: 10_000 } }

/** Polls `condition` every 10 ms for at most `millis` (live clock). */
const waitFor = (condition: () => boolean, what: string, millis = 10_000) =>
  Effect.gen(function* () {
    const deadline = Date.now() + millis
    while (!condition()) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`not within ${millis} ms: ${what}`))
      yield* Effect.sleep(10)
    }
  })

const setup = (options: { readonly serverResume?: boolean } = {}) =>
  Effect.gen(function* () {
    const events = yield* PubSub.unbounded<Events.PlaitEvent>()
    const seen: Array<Events.PlaitEvent> = []
    const subscription = yield* PubSub.subscribe(events)
    yield* Effect.forkScoped(Effect.forever(Effect.map(PubSub.take(subscription), (e) => seen.push(e))))
    const server = yield* Server.make({
      listen: { host: "127.0.0.1", port: 0 },
      session: SESSION,
      ...(options.serverResume === false ? {} : { resume: RESUME })
    }).pipe(Effect.provideService(Events.Events, events))
    const cut = yield* relay(server.address)
    const link = yield* Link.make({
      dial: Tcp.connect(cut.address),
      upstream: Tcp.formatAddress(cut.address),
      session: SESSION,
      retry: { initialMillis: 20, maxMillis: 200 },
      resume: RESUME
    }).pipe(Effect.provideService(Events.Events, events))
    const client = yield* Client.make({ link })
    return { server, cut, link, client, seen }
  })

/** Opens `n` streams; each sends `bytes` in pieces and reads the echo back. */
const echoStreams = (client: Client.ClientService, n: number, bytes: number, pace: Effect.Effect<void>) =>
  Effect.suspend(() =>
    Effect.forkChild(
      Effect.forEach(
        Array.from({ length: n }, (_, i) => i),
        (i) =>
          Effect.scoped(
            Effect.gen(function* () {
              const stream = yield* client.open
              const data = pattern(bytes, i + 1)
              const reader = yield* Effect.forkChild(
                Effect.gen(function* () {
                  const out = new Uint8Array(bytes)
                  let at = 0
                  while (at < bytes) {
                    const chunk = yield* stream.read
                    if (chunk === null) break
                    out.set(chunk, at)
                    at += chunk.length
                  }
                  return out.subarray(0, at)
                })
              )
              for (let at = 0; at < bytes; at += 16 * 1024) {
                yield* stream.write([data.subarray(at, Math.min(bytes, at + 16 * 1024))])
                yield* pace
              }
              yield* stream.closeWrite
              const got = yield* Fiber.join(reader)
              return firstDifference(got, data)
            })
          ),
        { concurrency: "unbounded" }
      )
    )
  )

describe("Link + Server with resumption, over real TCP", () => {
  it.live(
    "the link is reset (RST) mid-transfer: the same session resumes, every stream completes byte-exact",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const { client, cut, link, seen, server } = yield* setup()
          const transfer = yield* echoStreams(client, 20, 512 * 1024, Effect.sleep(5))
          yield* waitFor(() => server.stats().bytesUp > 2 * 1024 * 1024, "bytes flowing")
          cut.reset()
          const results = yield* Fiber.join(transfer)
          assert.deepStrictEqual(results, Array(20).fill(-1), "every stream byte-exact")
          assert.strictEqual(link.generation(), 1, "no fresh session: the same one resumed")
          assert.isAtLeast(cut.accepted(), 2)
          assert.isTrue(seen.some((e) => e._tag === "LinkResumed" && e.role === "proxy"))
          assert.isTrue(seen.some((e) => e._tag === "LinkResumed" && e.role === "server"))
          assert.isFalse(
            seen.some((e) => e._tag === "StreamClosed" && e.reset),
            "no stream was reset"
          )
        })
      ),
    TIMEOUT
  )

  it.live(
    "the link is black-holed (no RST, nothing delivered): silence detects it, the session resumes",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const { client, cut, link, server } = yield* setup()
          const transfer = yield* echoStreams(client, 10, 256 * 1024, Effect.sleep(5))
          yield* waitFor(() => server.stats().bytesUp > 512 * 1024, "bytes flowing")
          cut.blackhole()
          const results = yield* Fiber.join(transfer)
          assert.deepStrictEqual(results, Array(10).fill(-1))
          assert.strictEqual(link.generation(), 1)
        })
      ),
    TIMEOUT
  )

  it.live(
    "the server restarted (its sessions are gone): the resume is refused, the link starts a fresh session at once",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const { client, cut, link } = yield* setup()
          const first = yield* link.session(5_000)
          const stream = yield* client.openUnscoped
          yield* stream.write([pattern(1000, 1)])
          // A new server (no knowledge of the session) takes over the address the relay points at.
          const restarted = yield* Server.make({
            listen: { host: "127.0.0.1", port: 0 },
            session: SESSION,
            resume: RESUME
          })
          cut.retarget(restarted.address)
          cut.reset()
          yield* waitFor(() => link.generation() === 2, "a fresh session")
          const error = yield* Effect.flip(stream.read)
          assert.strictEqual(error.reason._tag, "TransportFailed")
          assert.match(error.message, /UnknownTicket|knows no session/)
          // The fresh session works.
          const second = yield* link.session(5_000)
          assert.notStrictEqual(second, first)
          assert.isTrue(second.isOpen())
        })
      ),
    TIMEOUT
  )

  it.live(
    "the server process is gone (connections reset, its port refuses): the session is given up at once, not after the window",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const { client, cut, link } = yield* setup()
          yield* link.session(5_000)
          const stream = yield* client.openUnscoped
          yield* stream.write([pattern(1000, 1)])
          const killedAt = Date.now()
          cut.kill()
          const error = yield* Effect.flip(stream.read)
          // Well inside the 10 s window: the refused redial proves the session's holder is gone.
          assert.isBelow(Date.now() - killedAt, 2_000)
          assert.strictEqual(error.reason._tag, "TransportFailed")
          yield* waitFor(() => link.current() === undefined, "no session until a server is back", 1_000)
        })
      ),
    TIMEOUT
  )

  it.live(
    "a server without resumption: the link runs plain sessions and a cut ends the session as before",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const { client, cut, link } = yield* setup({ serverResume: false })
          yield* link.session(5_000)
          const stream = yield* client.openUnscoped
          yield* stream.write([pattern(100, 1)])
          cut.reset()
          yield* waitFor(() => link.generation() === 2, "a fresh session")
          const error = yield* Effect.flip(stream.read)
          assert.strictEqual(error.reason._tag, "TransportFailed")
        })
      ),
    TIMEOUT
  )
})
