/**
 * An in-memory pair of connected transports, for tests: no sockets, no timers (works under
 * `TestClock`), deterministic failure injection.
 *
 * Invariants:
 * - Each direction is a bounded pipe. `write` copies its chunks into one fresh array (so a reader
 *   never aliases the writer's memory, as with TCP), appends it and completes at once while the
 *   peer's unread bytes are at most `highWaterMark`; above that it waits until the peer reads. A
 *   peer that stops reading therefore stalls its writer, as TCP flow control would.
 * - `read` returns everything buffered (one array; several chunks are concatenated), `null` after
 *   the peer's `closeWrite`/`close` once the buffer is drained, and only one `read` may be pending.
 * - `closeWrite` is a FIN: the peer reads the remaining bytes then `null`, and may keep writing.
 *   `close` is a FIN plus shutting the local side: local pending operations fail, the peer still
 *   reads what was sent, and the peer's later writes fail (as a write to a closed socket would).
 *   `reset` is an RST: buffered bytes in both directions are dropped and every pending or later
 *   operation on either side fails with a {@link TransportError}.
 * - `blackhole` silently cuts the link (a dead peer or a partition): writes are accepted and
 *   dropped, reads never complete, FIN/close/RST no longer reach the other side. Local `close` and
 *   `reset` still end the local side's pending operations.
 * - Waiters are woken on a microtask rather than resumed synchronously, so two fibers echoing through
 *   a pair never nest each other's run loops; a woken operation re-checks the state when it runs,
 *   so a waiter interrupted before it ran loses no bytes.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { concat } from "../internal/Bytes.ts"
import { type Transport, TransportError } from "./Transport.ts"

/**
 * Options for {@link makePair}.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryPairOptions {
  /** Unread bytes per direction above which writers wait (default 256 KiB). */
  readonly highWaterMark?: number
}

/**
 * Which directions {@link MemoryPair.blackhole} cuts.
 *
 * @since 0.1.0
 * @category models
 */
export type BlackholeDirection = "both" | "aToB" | "bToA"

/**
 * Two connected in-memory transports.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryPair {
  readonly a: Transport
  readonly b: Transport
  /** Silently cuts the link in the given directions (default both); irreversible. */
  readonly blackhole: (direction?: BlackholeDirection) => Effect.Effect<void>
  /** Unread bytes currently buffered towards `a` and towards `b` (for assertions on backpressure). */
  readonly buffered: () => { readonly toA: number; readonly toB: number }
}

/**
 * Default per-direction high-water mark: 256 KiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_HIGH_WATER_MARK = 256 * 1024

const wake = (waiter: (() => void) | undefined) => {
  if (waiter !== undefined) queueMicrotask(waiter)
}

/** One direction of the link. */
class Pipe {
  chunks: Array<Uint8Array> = []
  buffered = 0
  /** The writer sent FIN. */
  eof = false
  /** Why reads and writes on this pipe fail (reset, or the reading side closed). */
  error: string | undefined = undefined
  blackholed = false
  readWaiter: (() => void) | undefined = undefined
  writeWaiters: Array<() => void> = []

  drop() {
    this.chunks = []
    this.buffered = 0
  }
  wakeReader() {
    const waiter = this.readWaiter
    this.readWaiter = undefined
    wake(waiter)
  }
  wakeWriters() {
    if (this.writeWaiters.length === 0) return
    const waiters = this.writeWaiters
    this.writeWaiters = []
    for (let i = 0; i < waiters.length; i++) wake(waiters[i])
  }
}

const failRead = (message: string) => Effect.fail(new TransportError({ operation: "read", message }))
const failWrite = (message: string) => Effect.fail(new TransportError({ operation: "write", message }))

const ENDED: Effect.Effect<Uint8Array | null, TransportError> = Effect.succeed(null)

const makeEnd = (name: string, input: Pipe, output: Pipe, highWaterMark: number): Transport => {
  let writeClosed = false
  let wasReset = false
  // Set by local close/reset: every later local operation fails with it.
  let localError: string | undefined

  const waitRead: Effect.Effect<Uint8Array | null, TransportError> = Effect.callback((resume) => {
    const waiter = () => resume(read)
    input.readWaiter = waiter
    return Effect.sync(() => {
      if (input.readWaiter === waiter) input.readWaiter = undefined
    })
  })

  const read: Effect.Effect<Uint8Array | null, TransportError> = Effect.suspend(() => {
    if (localError !== undefined) return failRead(localError)
    if (input.error !== undefined) return failRead(input.error)
    if (input.buffered > 0) {
      const out = input.chunks.length === 1 ? input.chunks[0]! : concat(input.chunks, input.buffered)
      input.drop()
      input.wakeWriters()
      return Effect.succeed(out)
    }
    if (input.eof) return ENDED
    if (input.readWaiter !== undefined) return failRead("concurrent read on one transport")
    return waitRead
  })

  const checkSpace: Effect.Effect<void, TransportError> = Effect.suspend(() => {
    if (localError !== undefined) return failWrite(localError)
    if (output.error !== undefined) return failWrite(output.error)
    if (output.blackholed || output.buffered <= highWaterMark) return Effect.void
    return waitSpace
  })

  const waitSpace: Effect.Effect<void, TransportError> = Effect.callback((resume) => {
    const waiter = () => resume(checkSpace)
    output.writeWaiters.push(waiter)
    return Effect.sync(() => {
      const i = output.writeWaiters.indexOf(waiter)
      if (i >= 0) output.writeWaiters.splice(i, 1)
    })
  })

  const write = (chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, TransportError> =>
    Effect.suspend(() => {
      if (localError !== undefined) return failWrite(localError)
      if (writeClosed) return failWrite("write after closeWrite")
      if (output.error !== undefined) return failWrite(output.error)
      if (output.blackholed) return Effect.void
      let total = 0
      for (let i = 0; i < chunks.length; i++) total += chunks[i]!.length
      if (total === 0) return Effect.void
      output.chunks.push(concat(chunks, total))
      output.buffered += total
      output.wakeReader()
      return output.buffered > highWaterMark ? waitSpace : Effect.void
    })

  const sendFin = () => {
    if (writeClosed) return
    writeClosed = true
    if (output.blackholed || output.error !== undefined) return
    output.eof = true
    output.wakeReader()
  }

  const closeWrite = Effect.sync(sendFin)

  const shutLocal = (message: string) => {
    localError = message
    input.wakeReader()
    output.wakeWriters()
  }

  const close = Effect.sync(() => {
    if (localError !== undefined) return
    sendFin()
    shutLocal(`memory:${name} closed locally`)
    if (input.blackholed || input.error !== undefined) return
    // Like a closed socket: whatever the peer still sends is refused.
    input.error = `connection closed by peer memory:${name}`
    input.drop()
    input.wakeWriters()
  })

  const reset = Effect.sync(() => {
    if (wasReset) return
    wasReset = true
    writeClosed = true
    shutLocal(`memory:${name} reset locally`)
    const error = `connection reset by peer memory:${name}`
    for (const pipe of [input, output]) {
      if (pipe.blackholed) continue
      pipe.error ??= error
      pipe.drop()
      pipe.wakeReader()
      pipe.wakeWriters()
    }
  })

  return { read, write, closeWrite, close, reset, remoteAddress: `memory:${name === "a" ? "b" : "a"}` }
}

/**
 * Synchronous {@link makePair}, for setup code outside Effect.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makePairUnsafe = (options?: MemoryPairOptions): MemoryPair => {
  const highWaterMark = options?.highWaterMark ?? DEFAULT_HIGH_WATER_MARK
  const aToB = new Pipe()
  const bToA = new Pipe()
  const cut = (pipe: Pipe) => {
    pipe.blackholed = true
    pipe.drop()
    // Writers parked on a full pipe now see their bytes "accepted"; readers stay parked forever.
    pipe.wakeWriters()
  }
  return {
    a: makeEnd("a", bToA, aToB, highWaterMark),
    b: makeEnd("b", aToB, bToA, highWaterMark),
    blackhole: (direction = "both") =>
      Effect.sync(() => {
        if (direction !== "bToA") cut(aToB)
        if (direction !== "aToB") cut(bToA)
      }),
    buffered: () => ({ toA: bToA.buffered, toB: aToB.buffered })
  }
}

/**
 * Two connected in-memory transports with bounded buffering per direction.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makePair = (options?: MemoryPairOptions): Effect.Effect<MemoryPair> =>
  Effect.sync(() => makePairUnsafe(options))
