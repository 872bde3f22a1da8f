/**
 * What the dashboard charts: one sample per second of links, streams and throughput per service,
 * kept for the last minutes in a ring, and the most recent operator-relevant events.
 *
 * Invariants: memory is bounded — at most `capacity` samples and {@link RECENT_EVENTS} events,
 * whatever the traffic. Stream open/close events are never kept (they are counted, not listed):
 * the list shows links going up and down, refusals and limits.
 *
 * @since 0.1.0
 */
import type { PlaitEvent } from "../../observability/Events.ts"
import { describe } from "../../observability/Metrics.ts"
import type { Observed, ServiceFacts } from "../../observability/Observed.ts"

/**
 * Whether `/status` and the dashboard list a service: while it is configured, and after a reload
 * removed it only until its last stream has ended (its metrics series stay until restart).
 */
export const listed = (service: ServiceFacts): boolean => service.active || service.streams > 0

/** Events kept for the dashboard. */
export const RECENT_EVENTS = 100

/** One second of the component's life. */
export interface Sample {
  /** Clock milliseconds. */
  readonly t: number
  readonly links: number
  readonly ready: boolean
  /** Per service: streams open now. */
  readonly streams: Readonly<Record<string, number>>
  /** Per service: bytes per second toward the backend and back since the previous sample. */
  readonly up: Readonly<Record<string, number>>
  readonly down: Readonly<Record<string, number>>
}

/** An event as the dashboard lists it. */
export interface RecentEvent {
  readonly t: number
  readonly kind: Exclude<PlaitEvent["_tag"], "StreamOpened" | "StreamClosed">
  readonly text: string
}

export class History {
  readonly capacity: number
  readonly samples: Array<Sample> = []
  readonly events: Array<RecentEvent> = []
  private last: { t: number; up: Map<string, number>; down: Map<string, number> } | undefined

  constructor(capacity: number) {
    this.capacity = capacity
  }

  /** Records one sample of `observed` at time `t` (ms). */
  sample(observed: Observed, t: number): void {
    const streams: Record<string, number> = {}
    const up: Record<string, number> = {}
    const down: Record<string, number> = {}
    const nowUp = new Map<string, number>()
    const nowDown = new Map<string, number>()
    const last = this.last
    const seconds = last === undefined ? 0 : (t - last.t) / 1000
    for (const service of observed.services()) {
      if (!listed(service)) continue
      streams[service.name] = service.streams
      nowUp.set(service.name, service.bytesUp)
      nowDown.set(service.name, service.bytesDown)
      const rate = (now: number, before: number | undefined) =>
        seconds > 0 && before !== undefined ? Math.max(0, Math.round((now - before) / seconds)) : 0
      up[service.name] = rate(service.bytesUp, last?.up.get(service.name))
      down[service.name] = rate(service.bytesDown, last?.down.get(service.name))
    }
    this.last = { t, up: nowUp, down: nowDown }
    this.samples.push({ t, links: observed.sessions().length, ready: observed.readiness().ready, streams, up, down })
    if (this.samples.length > this.capacity) this.samples.splice(0, this.samples.length - this.capacity)
  }

  /** Keeps `event` if an operator would want to see it. */
  record(event: PlaitEvent, t: number): void {
    if (event._tag === "StreamOpened" || event._tag === "StreamClosed") return
    this.events.push({ t, kind: event._tag, text: describe(event) })
    if (this.events.length > RECENT_EVENTS) this.events.splice(0, this.events.length - RECENT_EVENTS)
  }

  /** Samples newer than `since` (ms). */
  since(since: number): ReadonlyArray<Sample> {
    let i = this.samples.length
    while (i > 0 && this.samples[i - 1]!.t > since) i--
    return this.samples.slice(i)
  }
}
