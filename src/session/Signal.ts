/**
 * A wake-up signal between the synchronous session core and the fibers waiting on it.
 *
 * Invariants: `notify` never blocks and may be called from plain code (the read loop's frame
 * handler); a waiter is woken at most once per `wait`; an interrupted waiter is removed, so no
 * wake-up is lost to or retained by a dead fiber. Waiters must re-check their condition in a loop.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"

type Resume = (effect: Effect.Effect<void>) => void

/** A set of fibers waiting for "something changed". */
export class Signal {
  private waiters: Array<Resume> = []

  /** Suspends until the next {@link Signal.notify}. */
  readonly wait: Effect.Effect<void> = Effect.callback<void>((resume) => {
    this.waiters.push(resume)
    return Effect.sync(() => {
      const i = this.waiters.indexOf(resume)
      if (i >= 0) this.waiters.splice(i, 1)
    })
  })

  /** Number of fibers currently waiting (for tests and leak checks). */
  get size(): number {
    return this.waiters.length
  }

  /** Wakes every current waiter. */
  notify(): void {
    if (this.waiters.length === 0) return
    const woken = this.waiters
    this.waiters = []
    for (let i = 0; i < woken.length; i++) woken[i]!(Effect.void)
  }
}
