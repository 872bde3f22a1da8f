/**
 * Helpers for the high-availability tests: in-process servers that can be stopped gracefully or cut
 * abruptly, a black hole that accepts TCP and never speaks, and byte-exact round trips over streams.
 *
 * Everything binds 127.0.0.1 (or ::1) on port 0 and is closed with its scope; every wait is bounded.
 */
import * as net from "node:net"
import { Data, Effect, Exit, Scope } from "effect"
import * as Server from "../../src/server/Server.ts"
import type { SessionConfig } from "../../src/session/Config.ts"
import type { MuxStream } from "../../src/session/MuxStream.ts"
import type { TcpAddress } from "../../src/transport/Tcp.ts"

/** A step of a high-availability test that did not happen as it should. */
export class HaError extends Data.TaggedError("HaError")<{ readonly message: string }> {}

/** Session settings for fast tests: no keepalive pings of its own, short drains. */
export const SESSION: Partial<SessionConfig> = { keepaliveIntervalMillis: 0, drainTimeoutMillis: 2_000 }

/**
 * Polls `check` (live clock) until it gives a value; fails after `timeoutMillis` naming `what` and
 * `detail()`.
 */
export const eventually = <A>(
  what: string,
  check: () => A | undefined | false,
  timeoutMillis: number,
  detail: () => string = () => ""
): Effect.Effect<A, HaError> =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMillis
    while (true) {
      const value = check()
      if (value !== undefined && value !== false) return value
      if (Date.now() > deadline) {
        return yield* new HaError({ message: `${what}: not within ${timeoutMillis} ms ${detail()}` })
      }
      yield* Effect.sleep(10)
    }
  })

/** `n` bytes distinct per `seed`, so mixed-up streams are caught. */
export const payload = (n: number, seed: number): Uint8Array => {
  const out = new Uint8Array(n)
  let state = (seed * 2_654_435_761 + 1) >>> 0
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0
    out[i] = state >>> 24
  }
  return out
}

/** Writes `bytes` on an echo stream and reads exactly as many back; fails unless they are the same. */
export const roundTrip = (stream: MuxStream, bytes: Uint8Array) =>
  Effect.gen(function* () {
    yield* stream.write([bytes])
    const back = new Uint8Array(bytes.length)
    let got = 0
    while (got < bytes.length) {
      const chunk = yield* stream.read
      if (chunk === null) return yield* new HaError({ message: `stream ${stream.id}: EOF after ${got} bytes` })
      back.set(chunk.subarray(0, bytes.length - got), got)
      got += chunk.length
    }
    if (got !== bytes.length || !Buffer.from(back).equals(Buffer.from(bytes))) {
      return yield* new HaError({ message: `stream ${stream.id}: the echo differs from what was sent` })
    }
  })

/** An in-process echo server in a scope of its own, so a test can stop it while the test goes on. */
export interface RunningServer {
  readonly server: Server.ServerService
  readonly address: TcpAddress
  /** Graceful stop, as on SIGTERM: stop accepting, GO_AWAY (retire), drain, close. */
  readonly stop: Effect.Effect<void>
  /** Abrupt stop, as on SIGKILL: every link reset, then the listener closed. */
  readonly kill: Effect.Effect<void>
}

/** Starts an echo server on `address` (default 127.0.0.1, a free port). */
export const startServer = (
  address: TcpAddress = { host: "127.0.0.1", port: 0 },
  options: {
    readonly drainMillis?: number
    readonly session?: Partial<SessionConfig>
    readonly resume?: Server.ServerOptions["resume"]
  } = {}
): Effect.Effect<RunningServer, HaError, Scope.Scope> =>
  Effect.gen(function* () {
    const outer = yield* Effect.scope
    const scope = yield* Scope.fork(outer)
    const server = yield* Server.make({
      listen: address,
      handler: Server.echo,
      session: options.session ?? SESSION,
      drainMillis: options.drainMillis ?? 5_000,
      ...(options.resume === undefined ? {} : { resume: options.resume })
    }).pipe(
      Scope.provide(scope),
      Effect.mapError(
        (error) => new HaError({ message: `server on ${address.host}:${address.port}: ${error.message}` })
      )
    )
    const stop = Scope.close(scope, Exit.void)
    const kill = Effect.andThen(
      Effect.forEach(server.sessions(), (session) => session.abort, { discard: true }),
      stop
    )
    return { server, address: server.address, stop, kill }
  })

/**
 * A TCP listener that accepts connections and never sends a byte (a server stuck before its
 * handshake); counts the connections it accepted.
 */
export const startBlackHole = (): Effect.Effect<
  { readonly address: TcpAddress; readonly accepted: () => number },
  HaError,
  Scope.Scope
> =>
  Effect.acquireRelease(
    Effect.callback<{ server: net.Server; sockets: Set<net.Socket>; accepted: { n: number } }, HaError>((resume) => {
      const sockets = new Set<net.Socket>()
      const accepted = { n: 0 }
      const server = net.createServer((socket) => {
        accepted.n++
        sockets.add(socket)
        socket.on("error", () => {})
        socket.on("close", () => sockets.delete(socket))
      })
      server.once("error", (error) => resume(Effect.fail(new HaError({ message: `black hole: ${error.message}` }))))
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, sockets, accepted })))
    }),
    ({ server, sockets }) =>
      Effect.sync(() => {
        for (const socket of sockets) socket.destroy()
        server.close()
      })
  ).pipe(
    Effect.map(({ server, accepted }) => ({
      address: { host: "127.0.0.1", port: (server.address() as net.AddressInfo).port },
      accepted: () => accepted.n
    }))
  )

/** Whether ::1 can be bound here (IPv6 loopback). */
export const ipv6Usable: Effect.Effect<boolean> = Effect.callback<boolean>((resume) => {
  const server = net.createServer()
  server.once("error", () => resume(Effect.succeed(false)))
  server.listen(0, "::1", () => server.close(() => resume(Effect.succeed(true))))
})
