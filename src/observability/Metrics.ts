/**
 * Metrics of plait, in two kinds, both rendered by `PrometheusMetrics.format()` from
 * `effect/observability` (the admin endpoint's `/metrics`):
 *
 * - **Event metrics** ({@link layer}): counters derived from the lifecycle {@link Events} bus — links
 *   up and down, streams opened, closed and reset, clients refused, limits reached.
 * - **Pull metrics** ({@link observe}): series whose value is read from a running proxy or server
 *   when metrics are exported — links up now, reconnects, streams opened, closed, reset and open
 *   and bytes carried by service, backend dial failures, latency histograms, bytes buffered per
 *   link — plus process RSS and event-loop delay. The stream counters of an observed role replace
 *   the event metrics of the same name: a session's events cannot tell services apart (with
 *   {@link layer} alone, every stream counts under `service="default"`), the component's
 *   per-service counters can.
 *
 * Invariants: nothing here runs on the data path. Event metrics are updated by one subscriber fiber
 * that takes events in batches at most every {@link BATCH_MILLIS} and updates each series once per
 * batch, so its cost does not grow with the connection rate; a slow subscriber loses events (the
 * bus slides) rather than slowing the proxy. Pull series cost nothing until they are read: the
 * components keep plain counters (bytes per splice read, one histogram bucket per open or dial)
 * and a read sums them. The sampler behind {@link observe} wakes a few times a second: it measures
 * the event loop's delay, pings each link every {@link ObserveOptions.pingMillis} for its round
 * trip, and keeps the per-link and per-service series in step with the links and services.
 *
 * Labels: `role` (`proxy`, `server`, `client`) on every plait series, `service` on stream and byte
 * series (the service's name; `default` for `--listen`/`--target`), `direction` (`up`: toward the backend,
 * `down`: back) on bytes, `reason` on refusals, `limit` on limits, `peer` on per-link series.
 *
 * @since 0.1.0
 */
import process from "node:process"
import { Clock, Effect, Layer, LogLevel, Metric, PubSub, type Scope } from "effect"
import { Histogram } from "../internal/observability/Histogram.ts"
import type { Session } from "../session/Session.ts"
import { DEFAULT_SERVICE, Events, type PlaitEvent } from "./Events.ts"
import type { Observed, ServiceFacts } from "./Observed.ts"

// ---------------------------------------------------------------------------------------------
// Event metrics

/**
 * Links established, by `role`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const linksUp = Metric.counter("plait_links_up_total", { description: "links established" })
/**
 * Links lost or closed, by `role`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const linksDown = Metric.counter("plait_links_down_total", { description: "links lost or closed" })
/**
 * Streams opened, by `role` and `service`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const streamsOpened = Metric.counter("plait_streams_opened_total", { description: "streams opened" })
/**
 * Streams ended with FIN both ways, by `role` and `service`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const streamsClosed = Metric.counter("plait_streams_closed_total", { description: "streams closed cleanly" })
/**
 * Streams ended by RST, by `role` and `service`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const streamsReset = Metric.counter("plait_streams_reset_total", { description: "streams reset" })
/**
 * Clients (at the proxy) or links (at the server) refused, by `role` and `reason`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const clientsRefused = Metric.counter("plait_clients_refused_total", {
  description: "clients or links refused, by reason"
})
/**
 * Limits reached (refused SYNs, idle resets, paused reads, connection limits), by `role` and `limit`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const limitsReached = Metric.counter("plait_limits_reached_total", {
  description: "limits reached, by limit"
})

/**
 * Connections lost beneath resumable sessions (the session waited for a resume), by `role`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const linkSuspensions = Metric.counter("plait_link_suspensions_total", {
  description: "connections lost beneath resumable sessions"
})
/**
 * Resumable sessions continued on a new connection, by `role`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const resumes = Metric.counter("plait_resumes_total", { description: "sessions resumed on a new connection" })
/**
 * Bytes sent again after resumes, by `role`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const resumeReplayedBytes = Metric.counter("plait_resume_replayed_bytes_total", {
  description: "bytes sent again after resumes"
})
/**
 * Failed resumes (refused by reason, window expired, peer unverified), by `role` and `reason`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const resumeFailures = Metric.counter("plait_resume_failures_total", {
  description: "resumes that failed, by reason"
})

/**
 * How long the metrics subscriber lets events gather between two batches: at most this stale, and
 * at most 1000 / this wake-ups per second however many connections come and go (the bus slides,
 * so a burst larger than its capacity within this window drops the oldest events).
 *
 * @since 0.1.0
 * @category constants
 */
export const BATCH_MILLIS = 10

/**
 * Limit hits between two warning lines: the first is logged, then one line per this many.
 *
 * @since 0.1.0
 * @category constants
 */
export const LIMIT_LOG_EVERY = 1000

/** Refusals that are a limit being reached count as that limit too. */
const REFUSAL_LIMITS: ReadonlySet<string> = new Set(["maxClients", "maxSessions", "maxHandshakes"])

/** Counts of one batch by series: the metrics are updated once per batch and series, not per event. */
class Tally {
  readonly counts = new Map<string, { readonly metric: Metric.Counter<number>; n: number }>()

  add(metric: Metric.Counter<number>, attributes: Readonly<Record<string, string>>, amount = 1): void {
    const key = `${metric.id}\u0000${Object.values(attributes).join("\u0000")}`
    const entry = this.counts.get(key)
    if (entry !== undefined) entry.n += amount
    else this.counts.set(key, { metric: Metric.withAttributes(metric, attributes), n: amount })
  }

  updates(): Array<Effect.Effect<void>> {
    return Array.from(this.counts.values(), ({ metric, n }) => Metric.update(metric, n))
  }
}

const tally = (events: Iterable<PlaitEvent>): Tally => {
  const t = new Tally()
  for (const event of events) {
    const role = event.role
    switch (event._tag) {
      case "LinkUp":
        t.add(linksUp, { role })
        break
      case "LinkDown":
        t.add(linksDown, { role })
        break
      case "StreamOpened":
        t.add(streamsOpened, { role, service: event.service ?? DEFAULT_SERVICE })
        break
      case "StreamClosed":
        t.add(event.reset ? streamsReset : streamsClosed, { role, service: event.service ?? DEFAULT_SERVICE })
        break
      case "ClientRefused":
        t.add(clientsRefused, { role, reason: event.code })
        if (REFUSAL_LIMITS.has(event.code)) t.add(limitsReached, { role, limit: event.code })
        break
      case "LimitReached":
        t.add(limitsReached, { role, limit: event.limit })
        break
      case "LinkSuspended":
        t.add(linkSuspensions, { role })
        break
      case "LinkResumed":
        t.add(resumes, { role })
        if (event.replayedBytes > 0) t.add(resumeReplayedBytes, { role }, event.replayedBytes)
        break
      case "ResumeFailed":
        t.add(resumeFailures, { role, reason: event.reason })
        break
    }
  }
  return t
}

/**
 * One line describing an event, as logged and as shown on the dashboard.
 *
 * @since 0.1.0
 * @category formatting
 */
export const describe = (event: PlaitEvent): string => {
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
      return `${event.role}: ${event.role === "server" ? "link" : "client"} ${event.peer} refused: ${event.reason}`
    case "LimitReached":
      return event.detail === undefined
        ? `${event.role}: limit ${event.limit} reached on the link with ${event.peer} (stream ${event.streamId})`
        : `${event.role}: limit ${event.limit} reached on the link with ${event.peer}: ${event.detail}`
    case "LinkSuspended":
      return `${event.role}: link to ${event.peer} lost (${event.reason}); its session waits for a resume`
    case "LinkResumed":
      return `${event.role}: link to ${event.peer} resumed after ${event.pausedMillis} ms (${event.replayedBytes} bytes sent again)`
    case "ResumeFailed":
      return `${event.role}: resume with ${event.peer} failed (${event.reason}): ${event.detail}`
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

/**
 * Subscribes to {@link Events} and keeps the event metrics current; logs each event at debug level.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<never, never, Events> = Layer.effectDiscard(
  Effect.gen(function* () {
    const events = yield* Events
    const subscription = yield* PubSub.subscribe(events)
    const hits = new Map<string, number>()
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.flatMap(PubSub.takeAll(subscription), (batch) =>
          Effect.flatMap(LogLevel.isEnabled("Debug"), (debug) => {
            // At thousands of connections per second the bus carries two events per stream: one
            // metric update per batch and series, and no log line built unless debug logging is on.
            const effects = tally(batch).updates()
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

// ---------------------------------------------------------------------------------------------
// Pull metrics

/**
 * Options of {@link observe}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ObserveOptions {
  /** How often each link is pinged for its round-trip time (default 5 s; 0: never). */
  readonly pingMillis?: number
  /** How long a ping may take before it counts as unanswered (default 5 s). */
  readonly pingTimeoutMillis?: number
}

/** How often the sampler measures the event loop's delay. */
const TICK_MILLIS = 250

/**
 * What the sampler of {@link observe} measures: link round trips and the event loop's delay.
 *
 * @since 0.1.0
 * @category models
 */
export interface Probe {
  /** Ping round trips, in seconds. */
  readonly pingRtt: Histogram
  /** The last round trip measured on a link, in milliseconds. */
  readonly rttMillis: (session: Session) => number | undefined
  /** How late the sampler's timer fired, in seconds, one observation per tick. */
  readonly eventLoopDelay: Histogram
  /** The last such delay, in seconds. */
  readonly lastEventLoopDelay: () => number
  /**
   * Brings the per-link and per-service series in step with the component now (the sampler does
   * it four times a second): call before exporting, so a service added a moment ago is there.
   */
  readonly refresh: () => void
}

type Registrar = (metric: Metric.Metric<never, unknown>, get: () => unknown) => Metric.Registration

const counterState = (count: number): Metric.CounterState<number> => ({ count, incremental: true })
const gaugeState = (value: number): Metric.GaugeState<number> => ({ value })

/**
 * Registers the pull series of `observed` (and the process's RSS and event-loop delay, labelled
 * with its role) in the current metric registry, and runs the sampler, for the lifetime of the
 * scope. Returns what the sampler measures.
 *
 * @since 0.1.0
 * @category constructors
 */
export const observe = (observed: Observed, options: ObserveOptions = {}): Effect.Effect<Probe, never, Scope.Scope> =>
  Effect.gen(function* () {
    const pingRtt = new Histogram()
    const rtts = new WeakMap<Session, number>()
    const eventLoopDelay = new Histogram([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5])
    let lastEventLoopDelay = 0
    const context = yield* Effect.context<never>()
    const registrations: Array<Metric.Registration> = []
    const register: Registrar = (metric, get) =>
      Metric.registerUnsafe(metric, context, { get: () => get(), update: () => {}, modify: () => {} })
    const add = (metric: Metric.Metric<never, unknown>, get: () => unknown) => {
      registrations.push(register(metric, get))
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const registration of registrations) registration.remove()
        for (const registration of linkSeries.values()) registration.remove()
      })
    )
    const role = observed.role
    // One snapshot of the services per synchronous run (a scrape reads every series in one go):
    // consistent figures, and the component's stats summed once per scrape, not once per series.
    let snapshot: Map<string, ServiceFacts> | undefined
    const service = (name: string) => {
      if (snapshot === undefined) {
        snapshot = new Map(observed.services().map((s) => [s.name, s]))
        queueMicrotask(() => {
          snapshot = undefined
        })
      }
      return snapshot.get(name)
    }

    add(Metric.gauge("plait_links", { description: "links up now", attributes: { role } }), () =>
      gaugeState(observed.sessions().length)
    )
    add(
      Metric.gauge("plait_ready", { description: "1 while ready for traffic (see /ready)", attributes: { role } }),
      () => gaugeState(observed.readiness().ready ? 1 : 0)
    )
    add(
      Metric.counter("plait_link_reconnects_total", {
        description: "links established after the first",
        attributes: { role }
      }),
      () => counterState(observed.reconnects())
    )
    // Per-service series follow the services: registered the first time a service is seen (at
    // start, on each sampler tick, and before each scrape through `refresh`) and kept while the
    // scope lives, as the component keeps a removed service's totals. The stream counters are
    // registered under the event metrics' own keys, so for this role the component's per-service
    // counts replace the session events' (which cannot tell services apart): one series each.
    const serviceSeries = new Set<string>()
    const syncServices = () => {
      for (const { name } of observed.services()) {
        if (serviceSeries.has(name)) continue
        serviceSeries.add(name)
        const attributes = { role, service: name }
        add(Metric.gauge("plait_streams_open", { description: "streams open now, by service", attributes }), () =>
          gaugeState(service(name)?.streams ?? 0)
        )
        add(Metric.withAttributes(streamsOpened, attributes), () => counterState(service(name)?.opened ?? 0))
        add(Metric.withAttributes(streamsClosed, attributes), () => counterState(service(name)?.closed ?? 0))
        add(Metric.withAttributes(streamsReset, attributes), () => counterState(service(name)?.reset ?? 0))
        for (const direction of ["up", "down"] as const) {
          add(
            Metric.counter("plait_bytes_total", {
              description: "bytes carried, by service and direction (up: toward the backend)",
              attributes: { ...attributes, direction }
            }),
            () => {
              const facts = service(name)
              return counterState(facts === undefined ? 0 : direction === "up" ? facts.bytesUp : facts.bytesDown)
            }
          )
        }
      }
    }
    syncServices()
    if (observed.openLatency !== undefined) {
      const histogram = observed.openLatency
      add(
        Metric.histogram("plait_stream_open_seconds", {
          description: "time from a client's arrival until its stream is open",
          attributes: { role },
          boundaries: histogram.boundaries
        }),
        () => histogram.state()
      )
    }
    if (observed.dialLatency !== undefined) {
      const histogram = observed.dialLatency
      add(
        Metric.histogram("plait_backend_dial_seconds", {
          description: "time to connect to the backend",
          attributes: { role },
          boundaries: histogram.boundaries
        }),
        () => histogram.state()
      )
      add(
        Metric.counter("plait_backend_dial_failures_total", {
          description: "backend connections that failed",
          attributes: { role }
        }),
        () => counterState(observed.dialFailures())
      )
    }
    add(
      Metric.histogram("plait_ping_rtt_seconds", {
        description: "link round-trip time (pings)",
        attributes: { role },
        boundaries: pingRtt.boundaries
      }),
      () => pingRtt.state()
    )
    add(
      Metric.gauge("plait_process_resident_memory_bytes", { description: "resident set size", attributes: { role } }),
      () => gaugeState(process.memoryUsage.rss())
    )
    add(
      Metric.gauge("plait_process_heap_used_bytes", { description: "JavaScript heap in use", attributes: { role } }),
      () => gaugeState(process.memoryUsage().heapUsed)
    )
    add(
      Metric.histogram("plait_event_loop_delay_seconds", {
        description: "how late a timer fires (sampled 4 times a second)",
        attributes: { role },
        boundaries: eventLoopDelay.boundaries
      }),
      () => eventLoopDelay.state()
    )

    // Per-link series follow the links: the sampler registers one for each new link and removes
    // those of links that are gone.
    const linkSeries = new Map<Session, Metric.Registration>()
    const syncLinks = () => {
      const sessions = observed.sessions()
      for (const [session, registration] of linkSeries) {
        if (!sessions.includes(session)) {
          registration.remove()
          linkSeries.delete(session)
        }
      }
      for (const session of sessions) {
        if (linkSeries.has(session)) continue
        const metric = Metric.gauge("plait_link_buffered_bytes", {
          description: "bytes received and not yet read, per link",
          attributes: { role, peer: session.remoteAddress }
        })
        linkSeries.set(
          session,
          register(metric, () => gaugeState(session.stats().bufferedBytes))
        )
      }
    }

    const pingMillis = options.pingMillis ?? 5_000
    const pingTimeout = options.pingTimeoutMillis ?? 5_000
    const pingAll = Effect.suspend(() =>
      Effect.forEach(
        observed.sessions(),
        (session) =>
          session.ping.pipe(
            Effect.timeoutOption(pingTimeout),
            Effect.tap((rtt) =>
              Effect.sync(() => {
                if (rtt._tag === "None") return
                pingRtt.observe(rtt.value / 1000)
                rtts.set(session, rtt.value)
              })
            ),
            Effect.ignore
          ),
        { concurrency: "unbounded", discard: true }
      )
    )

    syncLinks()
    const clock = yield* Clock.Clock
    let lastPing = Number.NEGATIVE_INFINITY
    const tick = Effect.gen(function* () {
      const before = clock.currentTimeMillisUnsafe()
      yield* Effect.sleep(TICK_MILLIS)
      const now = clock.currentTimeMillisUnsafe()
      lastEventLoopDelay = Math.max(0, now - before - TICK_MILLIS) / 1000
      eventLoopDelay.observe(lastEventLoopDelay)
      syncLinks()
      syncServices()
      if (pingMillis > 0 && now - lastPing >= pingMillis) {
        lastPing = now
        // Pings run beside the sampler: a link that does not answer must not stall the others.
        yield* Effect.forkScoped(pingAll)
      }
    })
    yield* Effect.forkScoped(Effect.forever(tick))
    const probe: Probe = {
      pingRtt,
      rttMillis: (session) => rtts.get(session),
      eventLoopDelay,
      lastEventLoopDelay: () => lastEventLoopDelay,
      refresh: () => {
        syncLinks()
        syncServices()
      }
    }
    return probe
  })
