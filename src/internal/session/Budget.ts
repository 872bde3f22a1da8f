/**
 * A per-second flood budget: at most `limit` events in any one-second window.
 *
 * Invariants:
 * - Windows are fixed, one second long, and start with the first event after the previous window
 *   ended (not on a timer): `limit` events in a burst never trip, `limit + 1` within a second of
 *   the first always do, and a steady rate of `limit` per second never does.
 * - The caller passes the time (the session reads the clock once per chunk read from the link, not
 *   per frame); the cost per event is a subtraction, a comparison and an increment. No timers.
 *
 * @since 0.1.0
 */

/** One second, the width of a budget window. */
const WINDOW_MILLIS = 1_000

/** Counts events in one-second windows against a limit. */
export class RateBudget {
  readonly limit: number
  #count = 0
  #windowStart = Number.NEGATIVE_INFINITY

  constructor(limit: number) {
    this.limit = limit
  }

  /** Records one event at `now` (ms); `true` once the window holds more than `limit` events. */
  hit(now: number): boolean {
    if (now - this.#windowStart >= WINDOW_MILLIS) {
      this.#windowStart = now
      this.#count = 0
    }
    return ++this.#count > this.limit
  }

  /** Whether the window that holds `now` already has `limit` events (one more would trip). */
  full(now: number): boolean {
    return now - this.#windowStart < WINDOW_MILLIS && this.#count >= this.limit
  }

  /** Events in the current window (for tests and stats). */
  get count(): number {
    return this.#count
  }
}
