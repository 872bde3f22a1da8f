/**
 * A wake-up signal between the synchronous session core and the fibers waiting on it.
 *
 * Invariants:
 * - `notify` never blocks and never runs a fiber: Effect resumes a fiber synchronously inside
 *   `resume`, so waking from the middle of a core mutation (planning a write batch, routing a frame,
 *   failing every stream) would let the woken fiber mutate the same structures re-entrantly. Woken
 *   fibers are instead queued and resumed together from one microtask — one hop for a whole batch
 *   of wake-ups, after the core has finished its step.
 * - A waiter is woken at most once per `wait`; an interrupted waiter is removed (and a queued
 *   resume of an interrupted fiber is ignored by Effect), so no wake-up is retained by a dead fiber.
 * - Waiters must re-check their condition in a loop.
 *
 * @since 0.1.0
 */
import { setImmediate } from "node:timers"
import { Effect } from "effect"

type Resume = (effect: Effect.Effect<void>) => void

let pending: Array<Resume | (() => void)> = []
let scheduled = false

const flush = (): void => {
  scheduled = false
  const woken = pending
  pending = []
  for (let i = 0; i < woken.length; i++) woken[i]!(Effect.void)
}

const schedule = (): void => {
  if (!scheduled) {
    scheduled = true
    queueMicrotask(flush)
  }
}

let later: Array<Signal> = []
let laterScheduled = false

const flushLater = (): void => {
  laterScheduled = false
  const signals = later
  later = []
  for (let i = 0; i < signals.length; i++) signals[i]!.notify()
}

/** Runs `f` on the wake-up microtask, after the current core step (e.g. completing a Deferred). */
export const defer = (f: () => void): void => {
  pending.push(f)
  schedule()
}

/** A set of fibers waiting for "something changed". */
export class Signal {
  private waiters: Array<Resume> = []
  private pendingLater = false

  /** Suspends until the next {@link Signal.notify}. */
  readonly wait: Effect.Effect<void> = Effect.callback<void>((resume) => {
    this.waiters.push(resume)
    return Effect.sync(() => {
      const i = this.waiters.indexOf(resume)
      if (i >= 0) this.waiters.splice(i, 1)
      // Woken, then interrupted before it ran: pass the wake-up on, so no `notifyOne` is lost.
      else this.notifyOne()
    })
  })

  /**
   * Runs `f` once, on the wake-up microtask of the next {@link Signal.notify} (or `notifyOne`): for
   * callback-level waiters that have no fiber to suspend (the session's direct link input).
   */
  onNotify(f: () => void): void {
    this.waiters.push(f)
  }

  /** Number of fibers currently waiting (for tests and leak checks). */
  get size(): number {
    return this.waiters.length
  }

  /**
   * Wakes the longest-waiting fiber only (on the next microtask): for one freed slot, so a burst of
   * N waiters costs N wake-ups instead of N² (every waiter woken for every slot).
   */
  notifyOne(): void {
    const resume = this.waiters.shift()
    if (resume === undefined) return
    pending.push(resume)
    schedule()
  }

  /**
   * Wakes every current waiter once the event loop reaches its check phase (`setImmediate`), i.e.
   * after every I/O callback of this turn. Only for fibers fed by sockets: fibers that keep waking
   * each other through microtasks alone would keep the event loop from ever getting there.
   */
  notifyLater(): void {
    if (this.pendingLater) return
    this.pendingLater = true
    later.push(this)
    if (!laterScheduled) {
      laterScheduled = true
      setImmediate(flushLater)
    }
  }

  /** Wakes every current waiter (on the next microtask). */
  notify(): void {
    this.pendingLater = false
    if (this.waiters.length === 0) return
    const woken = this.waiters
    this.waiters = []
    for (let i = 0; i < woken.length; i++) pending.push(woken[i]!)
    schedule()
  }
}
