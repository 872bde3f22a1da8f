/**
 * Joins two transports: bytes pumped both ways with backpressure, half-close passed through.
 *
 * Invariants:
 * - Each direction reads only when the previous write completed, so a slow or stopped consumer
 *   stalls its own producer and nobody else (memory per direction is one read's worth).
 * - EOF on one side becomes `closeWrite` (FIN) on the other; the opposite direction carries on.
 * - An error in either direction resets both sides (a proxied client learns that the end was not
 *   clean) and fails `splice` with that error.
 *
 * @since 0.1.0
 */
import { Effect, type Exit, Fiber } from "effect"
import { concat } from "./Bytes.ts"
import type { Transport } from "./Transport.ts"

/** Byte counts moved by {@link splice}, per direction. */
export interface SpliceStats {
  aToB: number
  bToA: number
}

/** Copies `from` into `to` until EOF, then half-closes `to`; counts bytes into `stats[key]`. */
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
 * One direction runs in the calling fiber and only the other is forked: an idle proxied
 * connection costs two fibers (its actor and one pump), not three.
 */
export const splice = <E1, E2>(
  a: Transport<E1>,
  b: Transport<E2>,
  stats: SpliceStats = { aToB: 0, bToA: 0 }
): Effect.Effect<void, E1 | E2> =>
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

/** Reads until EOF and returns every byte in one array (for tests and small request handlers). */
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
