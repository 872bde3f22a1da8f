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
import { Effect } from "effect"
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
): Effect.Effect<void, E1 | E2> =>
  Effect.gen(function* () {
    while (true) {
      const chunk = yield* from.read
      if (chunk === null) return yield* to.closeWrite
      stats[key] += chunk.length
      yield* to.write([chunk])
    }
  })

/**
 * Pumps `a → b` and `b → a` until both directions reached EOF. On failure or interruption both
 * sides are reset. Pass `stats` to count the bytes moved.
 */
export const splice = <E1, E2>(
  a: Transport<E1>,
  b: Transport<E2>,
  stats: SpliceStats = { aToB: 0, bToA: 0 }
): Effect.Effect<void, E1 | E2> =>
  Effect.all([pump(a, b, stats, "aToB"), pump(b, a, stats, "bToA")], { concurrency: 2, discard: true }).pipe(
    Effect.onExit((exit) => (exit._tag === "Success" ? Effect.void : Effect.andThen(a.reset, b.reset)))
  )
