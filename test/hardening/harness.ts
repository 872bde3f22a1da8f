/**
 * Helpers for the hardening tests: plain `node:net` probes (clients, attackers, backends) that check
 * the code under test from the outside, a steady byte-exact echo workload, and leak counters.
 *
 * Invariants:
 * - Every wait has a deadline and fails with a {@link HardeningError} that says what was awaited
 *   and what was seen, so a hang in the code under test fails a test instead of stalling it.
 * - Every socket and listener made here is destroyed when its scope closes, also on failure.
 * - Attacker probes decode what the server sends back with the sans-IO decoder, frame by frame, as
 *   bytes arrive; nothing here goes through a session.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { Data, Effect, Fiber, References, type Scope } from "effect"
import { HEADER_SIZE } from "../../src/protocol/Constants.ts"
import { Decoder, FrameError } from "../../src/protocol/Decoder.ts"
import type { Frame } from "../../src/protocol/Frame.ts"

/** A hardening check that did not hold in time. */
export class HardeningError extends Data.TaggedError("HardeningError")<{ readonly message: string }> {}

/** Log lines from the code under test below `Error` are dropped (set PLAIT_TEST_LOG=Debug to see them). */
export const quiet = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(
    effect,
    References.MinimumLogLevel,
    (process.env.PLAIT_TEST_LOG as "Debug" | "Info" | "Warn" | undefined) ?? "Error"
  )

/**
 * Prints an observed measurement (`PLAIT_TEST_NOTES=1`): the numbers behind a test's bounds, for
 * reports, without cluttering normal runs.
 */
export const note = (line: string): Effect.Effect<void> =>
  Effect.sync(() => {
    if (process.env.PLAIT_TEST_NOTES === "1") console.log(`hardening: ${line}`)
  })

/**
 * Re-checks `check` every few milliseconds until it returns a value (not `undefined`/`false`);
 * fails after `timeoutMs` with `detail()` in the message. For state that has no event to wait on
 * (counters of the code under test).
 */
export const eventually = <A>(
  what: string,
  check: () => A | undefined | false,
  timeoutMs: number,
  detail: () => string = () => ""
): Effect.Effect<A, HardeningError> =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMs
    // Bounded by the deadline.
    while (true) {
      const value = check()
      if (value !== undefined && value !== false) return value
      if (Date.now() > deadline) {
        return yield* new HardeningError({ message: `${what}: not within ${timeoutMs} ms ${detail()}` })
      }
      yield* Effect.sleep(5)
    }
  })

/** Open file descriptors of this process (Linux `/proc`), or undefined where that is not available. */
export const fdCount = (): number | undefined => {
  try {
    return fs.readdirSync("/proc/self/fd").length
  } catch {
    return undefined
  }
}

let collect: (() => void) | undefined
const gc = (): void => {
  if (collect === undefined) {
    try {
      v8.setFlagsFromString("--expose-gc")
      collect = vm.runInNewContext("gc") as () => void
    } catch {
      collect = () => {}
    }
  }
  collect()
}

/**
 * Live memory of this process (heap plus array buffers) after full garbage collections, so the
 * garbage of a flood does not count. Array buffer backing stores are released by a concurrent
 * sweeper, hence two collections with a few event-loop turns between them. Without a collector
 * (not Node) the number includes garbage.
 */
export const retainedBytes: Effect.Effect<number> = Effect.gen(function* () {
  gc()
  yield* Effect.sleep(20)
  gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
})

/** `n` bytes from a cheap LCG seeded with `seed`: distinct streams for distinct seeds. */
export const pattern = (n: number, seed: number): Uint8Array => {
  const out = new Uint8Array(n)
  let state = (Math.imul(seed, 2_654_435_761) + 1) >>> 0
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0
    out[i] = state >>> 24
  }
  return out
}

/** Whether two byte arrays hold the same bytes. */
export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b))

/** A 12-byte header with any field values, including a version other than 0 (shared with the session tests). */
export { header as rawHeader } from "../session/rawPeer.ts"

/** Concatenates byte arrays. */
export const concatBytes = (parts: ReadonlyArray<Uint8Array>): Uint8Array => new Uint8Array(Buffer.concat(parts))

/** A short description of a frame, for messages. */
export const describeFrame = (f: Frame): string => {
  const type = ["DATA", "WINDOW_UPDATE", "PING", "GO_AWAY"][f.type] ?? `type${f.type}`
  const flags = (["SYN", "ACK", "FIN", "RST"] as const).filter((_, i) => (f.flags & (1 << i)) !== 0).join("|")
  return `${type}${flags ? `[${flags}]` : ""}(${f.streamId}, ${f.length})`
}

// ---------------------------------------------------------------------------------------------
// Probes: node:net sockets with bounded waits

/** How a probe's connection ended. */
export interface SocketEnd {
  /** `eof`: the peer's FIN; `error`: a reset or other error (or a close without FIN). */
  readonly kind: "eof" | "error"
  /** `Date.now()` when it was seen. */
  readonly at: number
  readonly error?: string
}

/** A connected socket with bounded waits on what it receives. */
export interface Probe {
  readonly socket: net.Socket
  /** Bytes received so far. */
  readonly received: () => number
  /** How the connection ended, if it has. */
  readonly end: () => SocketEnd | undefined
  /** Writes bytes; completes once the runtime handed them to the kernel (or the socket failed). */
  readonly send: (bytes: Uint8Array) => Effect.Effect<void>
  /** The next `n` received bytes not taken yet; fails if the connection ends first or after `timeoutMs`. */
  readonly take: (n: number, timeoutMs: number) => Effect.Effect<Uint8Array, HardeningError>
  /** Every byte not taken yet (without waiting). */
  readonly drain: () => Uint8Array
  /** Waits until `check` returns a value; re-checked on every event of the socket. */
  readonly until: <A>(what: string, check: () => A | undefined, timeoutMs: number) => Effect.Effect<A, HardeningError>
  /** Waits for the end of the connection. */
  readonly closed: (timeoutMs: number) => Effect.Effect<SocketEnd, HardeningError>
  /** Frames decoded from everything received (attackers only; empty otherwise). */
  readonly frames: () => ReadonlyArray<Frame>
  /** The decoder's error, if the peer sent bytes that are not yamux (attackers only). */
  readonly badFrames: () => FrameError | undefined
  /** A summary for failure messages. */
  readonly describe: () => string
}

/** Options of {@link connectProbe}. */
export interface ProbeOptions {
  /** Decode received bytes as yamux frames (an attacker facing a server). */
  readonly frames?: boolean
  /** On the peer's FIN, end our side too (default true), so the peer's socket can close. */
  readonly endOnEof?: boolean
  /** Start with reading paused (the socket's receive buffer fills, TCP pushes back). */
  readonly paused?: boolean
}

/**
 * A raw `node:net` client socket (half-open allowed) connected to `127.0.0.1:port`, destroyed when
 * the scope closes; a failed connect becomes `fail("connect to PORT: …")`.
 */
export const connectRaw = <E>(port: number, fail: (message: string) => E): Effect.Effect<net.Socket, E, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<net.Socket, E>((resume) => {
      const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true })
      const onError = (error: Error) => resume(Effect.fail(fail(`connect to ${port}: ${error.message}`)))
      socket.once("error", onError)
      socket.once("connect", () => {
        socket.off("error", onError)
        resume(Effect.succeed(socket))
      })
      return Effect.sync(() => socket.destroy())
    }),
    (socket) => Effect.sync(() => socket.destroy())
  )

/** Connects a probe to `127.0.0.1:port`; the socket is destroyed when the scope closes. */
export const connectProbe = (
  port: number,
  options: ProbeOptions = {}
): Effect.Effect<Probe, HardeningError, Scope.Scope> =>
  Effect.gen(function* () {
    const socket = yield* connectRaw(port, (message) => new HardeningError({ message }))
    socket.setNoDelay(true)
    if (options.paused === true) socket.pause()
    return makeProbe(socket, options)
  })

/** Wraps a connected socket (client or accepted) as a {@link Probe}. */
export const makeProbe = (socket: net.Socket, options: ProbeOptions = {}): Probe => {
  let pending: Array<Buffer> = []
  let pendingBytes = 0
  let received = 0
  let ended: SocketEnd | undefined
  const frames: Array<Frame> = []
  let badFrames: FrameError | undefined
  const decoder = options.frames === true ? new Decoder() : undefined
  const watchers = new Set<() => void>()
  const notify = () => {
    for (const watcher of watchers) watcher()
  }
  socket.on("data", (chunk: Buffer) => {
    received += chunk.length
    pending.push(chunk)
    pendingBytes += chunk.length
    if (decoder !== undefined && badFrames === undefined) {
      decoder.push(chunk)
      // Bounded: every frame consumes at least one header of the input.
      const budget = decoder.pendingBytes / HEADER_SIZE + 1
      for (let i = 0; i <= budget; i++) {
        const frame = decoder.next()
        if (frame === undefined) break
        if (frame instanceof FrameError) {
          badFrames = frame
          break
        }
        // Payload views alias the chunk, which is never reused; copy nothing.
        frames.push(frame)
      }
    }
    notify()
  })
  const finish = (kind: "eof" | "error", error?: string) => {
    if (ended !== undefined) return
    ended = { kind, at: Date.now(), ...(error === undefined ? {} : { error }) }
    notify()
  }
  socket.on("end", () => {
    finish("eof")
    if (options.endOnEof !== false) socket.end()
  })
  socket.on("error", (error: NodeJS.ErrnoException) => finish("error", error.code ?? error.message))
  socket.on("close", () => finish("error", "closed"))

  const describe = () =>
    `(received ${received} bytes, ${frames.length} frames${
      frames.length > 0 ? ` [${frames.slice(-4).map(describeFrame).join(", ")}]` : ""
    }, ended: ${ended === undefined ? "no" : `${ended.kind}${ended.error ? ` ${ended.error}` : ""}`})`

  const until = <A>(what: string, check: () => A | undefined, timeoutMs: number): Effect.Effect<A, HardeningError> =>
    Effect.callback<A>((resume) => {
      const watcher = () => {
        const value = check()
        if (value !== undefined) {
          watchers.delete(watcher)
          resume(Effect.succeed(value))
        }
      }
      watchers.add(watcher)
      watcher()
      return Effect.sync(() => watchers.delete(watcher))
    }).pipe(
      Effect.timeoutOrElse({
        duration: timeoutMs,
        orElse: () => Effect.fail(new HardeningError({ message: `${what}: not within ${timeoutMs} ms ${describe()}` }))
      })
    )

  const drain = (): Uint8Array => {
    const out = pending.length === 1 ? pending[0]! : Buffer.concat(pending)
    pending = []
    pendingBytes = 0
    return out
  }

  const take = (n: number, timeoutMs: number): Effect.Effect<Uint8Array, HardeningError> =>
    until(`${n} bytes`, () => (pendingBytes >= n ? true : ended !== undefined ? false : undefined), timeoutMs).pipe(
      Effect.flatMap((ok) => {
        if (!ok)
          return Effect.fail(new HardeningError({ message: `the connection ended before ${n} bytes ${describe()}` }))
        const all = drain()
        if (all.length > n) {
          pending = [Buffer.from(all.subarray(n))]
          pendingBytes = all.length - n
        }
        return Effect.succeed(all.subarray(0, n))
      })
    )

  return {
    socket,
    received: () => received,
    end: () => ended,
    send: (bytes) =>
      Effect.callback<void>((resume) => {
        if (socket.destroyed || socket.writableEnded) return resume(Effect.void)
        socket.write(bytes, () => resume(Effect.void))
      }),
    take,
    drain,
    until,
    closed: (timeoutMs) => until("the end of the connection", () => ended, timeoutMs),
    frames: () => frames,
    badFrames: () => badFrames,
    describe
  }
}

// ---------------------------------------------------------------------------------------------
// Backends

/** A loopback TCP server run by the test, counting its connections. */
export interface Backend {
  readonly port: number
  /** Connections open now (accepted and not yet closed). */
  readonly open: () => number
  /** Connections accepted so far. */
  readonly accepted: () => number
  /** Stops listening (the port is refused from then on) and destroys every connection. */
  readonly close: Effect.Effect<void>
}

/**
 * A `node:net` server on a free loopback port running `onConnection` for each socket
 * (`allowHalfOpen`); it and its sockets are destroyed when the scope closes.
 */
export const startBackend = (
  onConnection: (socket: net.Socket) => void
): Effect.Effect<Backend, HardeningError, Scope.Scope> =>
  Effect.gen(function* () {
    const sockets = new Set<net.Socket>()
    let accepted = 0
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      accepted++
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
      socket.on("error", () => socket.destroy())
      onConnection(socket)
    })
    const close = Effect.sync(() => {
      for (const socket of sockets) socket.destroy()
      if (server.listening) server.close()
    })
    const port = yield* Effect.acquireRelease(
      Effect.callback<number, HardeningError>((resume) => {
        server.once("error", (error) =>
          resume(Effect.fail(new HardeningError({ message: `backend: ${error.message}` })))
        )
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as net.AddressInfo).port)))
      }),
      () => close
    )
    return { port, open: () => sockets.size, accepted: () => accepted, close }
  })

/** An echo backend: every byte back, FIN after the peer's FIN. */
export const startEchoBackend = startBackend((socket) => socket.pipe(socket))

// ---------------------------------------------------------------------------------------------
// A steady, byte-exact echo workload

/** A running echo workload: persistent clients doing round trips with unique payloads. */
export interface Healthy {
  /** Round trips completed, all clients together. */
  readonly rounds: () => number
  /** The slowest round trip so far, in ms. */
  readonly maxLatency: () => number
  /** What went wrong (wrong bytes, a round trip over the bound, a closed connection). */
  readonly failures: () => ReadonlyArray<string>
  /** Waits until `more` further round trips were completed. */
  readonly progressed: (more: number, timeoutMs: number) => Effect.Effect<void, HardeningError>
  /** Stops the clients after their current round trip and waits for them. */
  readonly stop: Effect.Effect<void>
}

/** Options of {@link startHealthy}. */
export interface HealthyOptions {
  readonly clients: number
  /** Largest payload of one round trip (sizes vary from 1 byte up to this). */
  readonly maxBlock: number
  /** A round trip slower than this is a failure. */
  readonly boundMillis: number
  /** Pause between round trips of one client (a steady workload, not a CPU burner). */
  readonly pauseMillis?: number
  /** Seed of the payloads (distinct per workload). */
  readonly seed?: number
}

/** Starts `clients` connections to `port`, each doing echo round trips until stopped (bounded). */
export const startHealthy = (
  port: number,
  options: HealthyOptions
): Effect.Effect<Healthy, HardeningError, Scope.Scope> =>
  Effect.gen(function* () {
    const MAX_ROUNDS = 1_000_000
    let rounds = 0
    let maxLatency = 0
    let stopped = false
    const failures: Array<string> = []
    const probes = yield* Effect.forEach(
      Array.from({ length: options.clients }, (_, i) => i),
      () => connectProbe(port),
      { concurrency: "unbounded" }
    )
    const client = (probe: Probe, id: number) =>
      Effect.gen(function* () {
        for (let round = 0; round < MAX_ROUNDS && !stopped; round++) {
          const seed = (options.seed ?? 0) * 1_000_003 + id * 100_003 + round
          const size = 1 + ((Math.imul(seed, 2_654_435_761) >>> 0) % options.maxBlock)
          const block = pattern(size, seed)
          const started = performance.now()
          yield* probe.send(block)
          const got = yield* probe.take(size, options.boundMillis)
          const latency = performance.now() - started
          if (latency > maxLatency) maxLatency = latency
          if (!sameBytes(got, block)) {
            failures.push(`client ${id} round ${round}: ${size} bytes came back different`)
            return
          }
          rounds++
          if (options.pauseMillis !== undefined) yield* Effect.sleep(options.pauseMillis)
        }
      }).pipe(Effect.catch((error) => Effect.sync(() => failures.push(`client ${id}: ${error.message}`))))
    const fibers = yield* Effect.forEach(probes, (probe, id) => Effect.forkScoped(client(probe, id)))
    return {
      rounds: () => rounds,
      maxLatency: () => maxLatency,
      failures: () => failures,
      progressed: (more, timeoutMs) => {
        const target = rounds + more
        return eventually(
          `${more} more healthy round trips`,
          () => rounds >= target || failures.length > 0,
          timeoutMs,
          () => `(rounds ${rounds}, failures ${failures.join("; ")})`
        ).pipe(
          Effect.flatMap(() =>
            failures.length > 0
              ? Effect.fail(new HardeningError({ message: `healthy workload failed: ${failures.join("; ")}` }))
              : Effect.void
          )
        )
      },
      stop: Effect.suspend(() => {
        stopped = true
        return Effect.asVoid(Effect.forEach(fibers, Fiber.await))
      })
    }
  })
