/**
 * Metrics and logs fed by the lifecycle {@link Events} bus.
 *
 * Invariants: metrics are derived from events by one subscriber fiber, never updated on the data
 * path; a slow subscriber loses events (the bus slides) rather than slowing the proxy. The
 * subscriber takes events in batches at most every {@link BATCH_MILLIS} and updates each metric
 * once per batch, so its cost does not grow with the connection rate.
 * `PrometheusMetrics.format()` from `effect/observability` renders them.
 *
 * @since 0.1.0
 */
import { Effect, Layer, LogLevel, Metric, PubSub } from "effect"
import { Events, type PlaitEvent } from "./Events.ts"

/** Links established. */
export const linksUp = Metric.counter("plait_links_up_total", { description: "links established" })
/** Links lost or closed. */
export const linksDown = Metric.counter("plait_links_down_total", { description: "links lost or closed" })
/** Streams opened. */
export const streamsOpened = Metric.counter("plait_streams_opened_total", { description: "streams opened" })
/** Streams ended with FIN both ways. */
export const streamsClosed = Metric.counter("plait_streams_closed_total", { description: "streams closed cleanly" })
/** Streams ended by RST. */
export const streamsReset = Metric.counter("plait_streams_reset_total", { description: "streams reset" })
/** Client connections refused (no link, limits). */
export const clientsRefused = Metric.counter("plait_clients_refused_total", { description: "clients refused" })
/** Limits reached (refused SYNs, idle resets, paused reads), by `limit`. */
export const limitsReached = Metric.counter("plait_limits_reached_total", {
  description: "limits reached, by limit"
})
/** Streams open now. */
export const streamsOpen = Metric.gauge("plait_streams_open", { description: "streams open now" })

/**
 * How long the metrics subscriber lets events gather between two batches: at most this stale, and
 * at most 1000 / this wake-ups per second however many connections come and go (the bus slides,
 * so a burst larger than its capacity within this window drops the oldest events).
 */
export const BATCH_MILLIS = 10

/** Limit hits between two warning lines: the first is logged, then one line per this many. */
export const LIMIT_LOG_EVERY = 1000

/** Event counts of one batch taken from the bus: the metrics are updated once per batch, not per event. */
interface Tally {
  linksUp: number
  linksDown: number
  opened: number
  closed: number
  reset: number
  refused: number
  limits: Map<string, number> | undefined
}

const tally = (events: Iterable<PlaitEvent>): Tally => {
  const t: Tally = { linksUp: 0, linksDown: 0, opened: 0, closed: 0, reset: 0, refused: 0, limits: undefined }
  for (const event of events) {
    switch (event._tag) {
      case "LinkUp":
        t.linksUp++
        break
      case "LinkDown":
        t.linksDown++
        break
      case "StreamOpened":
        t.opened++
        break
      case "StreamClosed":
        if (event.reset) t.reset++
        else t.closed++
        break
      case "ClientRefused":
        t.refused++
        break
      case "LimitReached":
        t.limits ??= new Map()
        t.limits.set(event.limit, (t.limits.get(event.limit) ?? 0) + 1)
        break
    }
  }
  return t
}

const record = (open: { count: number }, t: Tally): Array<Effect.Effect<void>> => {
  const updates: Array<Effect.Effect<void>> = []
  const add = (counter: Metric.Counter<number>, n: number) => {
    if (n > 0) updates.push(Metric.update(counter, n))
  }
  add(linksUp, t.linksUp)
  add(linksDown, t.linksDown)
  add(streamsOpened, t.opened)
  add(streamsClosed, t.closed)
  add(streamsReset, t.reset)
  add(clientsRefused, t.refused)
  if (t.limits !== undefined) {
    for (const [limit, n] of t.limits) updates.push(Metric.update(Metric.withAttributes(limitsReached, { limit }), n))
  }
  if (t.opened + t.closed + t.reset > 0) {
    open.count += t.opened - t.closed - t.reset
    updates.push(Metric.update(streamsOpen, open.count))
  }
  return updates
}

const describe = (event: PlaitEvent): string => {
  switch (event._tag) {
    case "LinkUp":
      return `${event.role}: link up (${event.peer})`
    case "LinkDown":
      return `${event.role}: link down (${event.peer}): ${event.reason}`
    case "StreamOpened":
      return `${event.role}: stream ${event.streamId} opened (${event.peer})`
    case "StreamClosed":
      return `${event.role}: stream ${event.streamId} ${event.reset ? "reset" : "closed"} (${event.peer})`
    case "ClientRefused":
      return `${event.role}: client ${event.peer} refused: ${event.reason}`
    case "LimitReached":
      return `${event.role}: limit ${event.limit} reached on the link with ${event.peer} (stream ${event.streamId})`
  }
}

/** Warns on the first hit of each limit and then once per {@link LIMIT_LOG_EVERY}, so a flood logs a few lines. */
const warnLimit = (hits: Map<string, number>, event: PlaitEvent): Effect.Effect<void> => {
  if (event._tag !== "LimitReached") return Effect.void
  const count = (hits.get(event.limit) ?? 0) + 1
  hits.set(event.limit, count)
  if (count !== 1 && count % LIMIT_LOG_EVERY !== 0) return Effect.void
  return Effect.logWarning(`${describe(event)}; ${count} time(s) so far`)
}

/** Subscribes to {@link Events} and keeps the metrics above current; logs each event at debug level. */
export const layer: Layer.Layer<never, never, Events> = Layer.effectDiscard(
  Effect.gen(function* () {
    const events = yield* Events
    const subscription = yield* PubSub.subscribe(events)
    const open = { count: 0 }
    const hits = new Map<string, number>()
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.flatMap(PubSub.takeAll(subscription), (batch) =>
          Effect.flatMap(LogLevel.isEnabled("Debug"), (debug) => {
            // At thousands of connections per second the bus carries two events per stream: one
            // metric update per batch, and no log line built unless debug logging is on.
            const effects = record(open, tally(batch))
            for (const event of batch) {
              if (event._tag === "LimitReached") effects.push(warnLimit(hits, event))
              else if (debug) effects.push(Effect.logDebug(describe(event)))
            }
            // Then let events gather: a subscriber waiting on the bus is resumed by every single
            // publish, inside the publisher's own step (a session routing frames).
            return Effect.andThen(Effect.all(effects, { discard: true }), Effect.sleep(BATCH_MILLIS))
          })
        )
      )
    )
  })
)
