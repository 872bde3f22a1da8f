/**
 * Joins two transports: bytes pumped both ways with backpressure, half-close passed through.
 *
 * Invariants:
 * - Each direction reads only when the previous write completed, so a slow or stopped consumer
 *   stalls its own producer and nobody else (memory per direction is one read's worth).
 * - EOF on one side becomes `closeWrite` (FIN) on the other; the opposite direction carries on.
 * - An error in either direction resets both sides (a proxied client learns that the end was not
 *   clean) and fails `splice` with that error.
 * - When both transports offer a {@link DirectPort} (TCP sockets, multiplexed streams), `splice`
 *   wires them with callbacks: a chunk goes from one side's input handler straight into the other
 *   side's output, with no fiber and no allocation of its own; the fiber only waits for the end.
 *   Its completion is resumed from a microtask, never from inside a port's callback (a session's core
 *   may be mid-step there).
 *
 * @since 0.1.0
 */
import { Effect, type Exit, Fiber } from "effect"
import { concat } from "../internal/Bytes.ts"
import type { DirectListener, DirectPort, Transport } from "./Transport.ts"

/**
 * Byte counts moved by {@link splice}, per direction.
 *
 * @since 0.1.0
 * @category models
 */
export interface SpliceStats {
  aToB: number
  bToA: number
}

/**
 * Copies `from` into `to` until EOF, then half-closes `to`; counts bytes into `stats[key]`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const pump = <E1, E2>(
  from: Transport<E1>,
  to: Transport<E2>,
  stats: SpliceStats = { aToB: 0, bToA: 0 },
  key: keyof SpliceStats = "aToB"
): Effect.Effect<void, E1 | E2> => {
  // A flatMap loop rather than a generator: a parked pump then holds no generator object, and an
  // idle proxied connection is mostly parked pumps.
  const loop: Effect.Effect<void, E1 | E2> = Effect.flatMap(from.read, (chunk): Effect.Effect<void, E1 | E2> => {
    if (chunk === null) return to.closeWrite
    stats[key] += chunk.length
    return Effect.flatMap(to.write([chunk]), () => loop)
  })
  return loop
}

/**
 * Pumps `a → b` and `b → a` until both directions reached EOF. On failure or interruption both
 * sides are reset. Pass `stats` to count the bytes moved.
 *
 * Direct ports when both sides have them; otherwise one direction runs in the calling fiber and
 * only the other is forked: an idle proxied connection costs two fibers, not three.
 *
 * @since 0.1.0
 * @category combinators
 */
export const splice = <E1, E2>(
  a: Transport<E1>,
  b: Transport<E2>,
  stats: SpliceStats = { aToB: 0, bToA: 0 }
): Effect.Effect<void, E1 | E2> =>
  Effect.suspend(() => {
    const portA = a.directPort?.()
    const portB = portA === undefined ? undefined : b.directPort?.()
    return portA !== undefined && portB !== undefined ? spliceDirect(portA, portB, stats) : splicePumps(a, b, stats)
  })

/** One direction of a direct splice: listens on `from`, writes to `to`. A class, so no closures. */
class SpliceSide<E> implements DirectListener<E> {
  ended = false
  readonly splice: DirectSplice<unknown, unknown>
  readonly from: DirectPort<unknown>
  readonly to: DirectPort<unknown>
  readonly forward: boolean

  constructor(
    splice: DirectSplice<unknown, unknown>,
    from: DirectPort<unknown>,
    to: DirectPort<unknown>,
    forward: boolean
  ) {
    this.splice = splice
    this.from = from
    this.to = to
    this.forward = forward
  }

  input(chunk: Uint8Array): void {
    const splice = this.splice
    if (splice.done) return
    if (this.forward) splice.stats.aToB += chunk.length
    else splice.stats.bToA += chunk.length
    if (!this.to.send(chunk)) this.from.pauseInput()
  }

  inputEnd(): void {
    if (this.splice.done) return
    this.ended = true
    this.to.sendEnd()
    this.splice.check()
  }

  /** `from`'s output drained: the side writing into it may produce again. */
  writable(): void {
    if (!this.splice.done) this.to.resumeInput()
  }

  failure(error: E): void {
    this.splice.fail(error)
  }
}

class DirectSplice<E1, E2> {
  done = false
  readonly a: DirectPort<E1>
  readonly b: DirectPort<E2>
  readonly stats: SpliceStats
  readonly resume: (error: E1 | E2 | undefined) => void
  readonly sideA: SpliceSide<E1>
  readonly sideB: SpliceSide<E2>

  constructor(a: DirectPort<E1>, b: DirectPort<E2>, stats: SpliceStats, resume: (error: E1 | E2 | undefined) => void) {
    this.a = a
    this.b = b
    this.stats = stats
    this.resume = resume
    const self = this as DirectSplice<unknown, unknown>
    this.sideA = new SpliceSide(self, a as DirectPort<unknown>, b as DirectPort<unknown>, true)
    this.sideB = new SpliceSide(self, b as DirectPort<unknown>, a as DirectPort<unknown>, false)
  }

  start(): void {
    this.a.attach(this.sideA)
    this.b.attach(this.sideB)
    this.a.resumeInput()
    if (!this.done) this.b.resumeInput()
  }

  /** Ends the splice once: no further events from either port. False if it had already ended. */
  private end(): boolean {
    if (this.done) return false
    this.done = true
    this.a.detach()
    this.b.detach()
    return true
  }

  check(): void {
    if (this.sideA.ended && this.sideB.ended && this.end()) queueMicrotask(() => this.resume(undefined))
  }

  fail(error: E1 | E2): void {
    // Reset from a microtask: the failure may be reported from inside a session's core step.
    if (this.end()) queueMicrotask(() => this.resetBoth(error))
  }

  interrupt(): void {
    if (this.end()) this.resetBoth(undefined)
  }

  private resetBoth(error: E1 | E2 | undefined): void {
    this.a.abort()
    this.b.abort()
    if (error !== undefined) this.resume(error)
  }
}

/**
 * The callback core of a direct splice: joins `a` and `b` and calls `done` (from a microtask) with
 * `undefined` once both directions ended, or with the error that reset both sides. The returned
 * function interrupts: it resets both sides and `done` is never called.
 *
 * @since 0.1.0
 * @category combinators
 */
export const startDirectSplice = <E1, E2>(
  a: DirectPort<E1>,
  b: DirectPort<E2>,
  stats: SpliceStats,
  done: (error: E1 | E2 | undefined) => void
): (() => void) => {
  const splice = new DirectSplice(a, b, stats, done)
  splice.start()
  return () => splice.interrupt()
}

const spliceDirect = <E1, E2>(a: DirectPort<E1>, b: DirectPort<E2>, stats: SpliceStats): Effect.Effect<void, E1 | E2> =>
  Effect.callback<void, E1 | E2>((resume) =>
    Effect.sync(
      startDirectSplice(a, b, stats, (error) => resume(error === undefined ? Effect.void : Effect.fail(error)))
    )
  )

const splicePumps = <E1, E2>(a: Transport<E1>, b: Transport<E2>, stats: SpliceStats): Effect.Effect<void, E1 | E2> =>
  // Plain combinators rather than a generator: an idle proxied connection is parked here.
  Effect.uninterruptibleMask((restore) => {
    const resetBoth = Effect.andThen(a.reset, b.reset)
    // A failure of the forked direction resets both sides at once, which ends the other direction.
    const backward = Effect.forkChild(restore(pump(b, a, stats, "bToA")).pipe(Effect.onError(() => resetBoth)))
    return Effect.flatMap(backward, (back) => {
      const failWith = <E>(exit: Exit.Exit<void, E>) =>
        Effect.andThen(Effect.andThen(resetBoth, Fiber.interrupt(back)), exit)
      return Effect.flatMap(Effect.exit(restore(pump(a, b, stats, "aToB"))), (forward) =>
        forward._tag === "Failure"
          ? failWith(forward)
          : Effect.flatMap(Effect.exit(restore(Fiber.join(back))), (done) =>
              done._tag === "Failure" ? failWith(done) : Effect.void
            )
      )
    })
  })

/**
 * Reads until EOF and returns every byte in one array (for tests and small request handlers).
 *
 * @since 0.1.0
 * @category combinators
 */
export const readAll = <E>(from: Pick<Transport<E>, "read">): Effect.Effect<Uint8Array, E> =>
  Effect.gen(function* () {
    const parts: Array<Uint8Array> = []
    let total = 0
    while (true) {
      const chunk = yield* from.read
      if (chunk === null) return concat(parts, total)
      parts.push(chunk)
      total += chunk.length
    }
  })
