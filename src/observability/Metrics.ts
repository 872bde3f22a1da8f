/**
 * Metrics and logs fed by the lifecycle {@link Events} bus.
 *
 * Invariants: metrics are derived from events by one subscriber fiber, never updated on the data
 * path; a slow subscriber loses events (the bus slides) rather than slowing the proxy.
 * `PrometheusMetrics.format()` from `effect/observability` renders them.
 *
 * @since 0.1.0
 */
import { Effect, Layer, Metric, PubSub } from "effect"
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

/** Limit hits between two warning lines: the first is logged, then one line per this many. */
export const LIMIT_LOG_EVERY = 1000

const record = (open: { count: number }, event: PlaitEvent): Effect.Effect<void> => {
  switch (event._tag) {
    case "LinkUp":
      return Metric.update(linksUp, 1)
    case "LinkDown":
      return Metric.update(linksDown, 1)
    case "StreamOpened":
      open.count++
      return Effect.andThen(Metric.update(streamsOpened, 1), Metric.update(streamsOpen, open.count))
    case "StreamClosed":
      open.count--
      return Effect.andThen(
        Metric.update(event.reset ? streamsReset : streamsClosed, 1),
        Metric.update(streamsOpen, open.count)
      )
    case "ClientRefused":
      return Metric.update(clientsRefused, 1)
    case "LimitReached":
      return Metric.update(Metric.withAttributes(limitsReached, { limit: event.limit }), 1)
  }
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
          Effect.forEach(
            batch,
            (event) =>
              Effect.andThen(
                record(open, event),
                event._tag === "LimitReached" ? warnLimit(hits, event) : Effect.logDebug(describe(event))
              ),
            { discard: true }
          )
        )
      )
    )
  })
)
