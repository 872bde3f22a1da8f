/**
 * Per-service counters of a proxy or a server: streams opened, closed cleanly, reset and open now,
 * and bytes each way, with where the service is (the proxy's listen address, the server's target).
 *
 * Invariants:
 * - Cheap: a tally moves once when a stream of its service starts and once when it ends, never per
 *   frame or per splice read. The bytes of streams still open are not in the tally: the component
 *   adds them from its per-stream splice counters when stats are read ({@link ServiceTallies.stats}).
 * - A tally exists from the first time its service is configured until the component stops: a
 *   service removed by a reload keeps its totals (marked inactive), and one added again under the
 *   same name continues them, so a Prometheus counter never goes back. The tallies are bounded by
 *   the names ever configured, never by names a peer sends.
 *
 * @since 0.2.0
 */

/**
 * One service's counters, as a proxy's or a server's stats report them.
 *
 * @since 0.2.0
 * @category models
 */
export interface ServiceStats {
  readonly name: string
  /** Proxy: the bound listen address; server: the target `host:port`, `echo`, or `handler` (an Effect function). */
  readonly address: string
  /** Whether the service is configured now (false: removed by a reload; its totals stay until restart). */
  readonly active: boolean
  /** Streams of this service opened since start (proxy: a client's stream opened; server: a stream routed to it). */
  readonly opened: number
  /** Of those, streams that ended cleanly (FIN both ways, or the handler returned). */
  readonly closed: number
  /** Of those, streams that ended by RST (a failed splice or handler, a drain deadline). */
  readonly reset: number
  /** Streams of this service open now. */
  readonly open: number
  /** Bytes toward the backend (client → server), since start, open streams included. */
  readonly bytesUp: number
  /** Bytes back toward the client, since start, open streams included. */
  readonly bytesDown: number
}

/** One service's running counters; the component holds a reference per stream (no lookup on end). */
export class ServiceTally {
  readonly name: string
  address = ""
  active = false
  opened = 0
  closed = 0
  reset = 0
  open = 0
  bytesUp = 0
  bytesDown = 0
  constructor(name: string) {
    this.name = name
  }

  started(): void {
    this.opened++
    this.open++
  }

  /** A stream ended, cleanly or not, having carried these bytes. */
  ended(clean: boolean, bytesUp: number, bytesDown: number): void {
    this.open--
    if (clean) this.closed++
    else this.reset++
    this.bytesUp += bytesUp
    this.bytesDown += bytesDown
  }
}

/** Every service's tally, by name, in the order the services were first configured. */
export class ServiceTallies {
  readonly #byName = new Map<string, ServiceTally>()

  /** The tally of `name`, created (not yet active: see {@link configure}) the first time. */
  of(name: string): ServiceTally {
    let tally = this.#byName.get(name)
    if (tally === undefined) {
      tally = new ServiceTally(name)
      this.#byName.set(name, tally)
    }
    return tally
  }

  /** Marks `name` as configured now at `address`. */
  configure(name: string, address: string): ServiceTally {
    const tally = this.of(name)
    tally.address = address
    tally.active = true
    return tally
  }

  /** Marks `name` as removed (its totals stay). */
  remove(name: string): void {
    const tally = this.#byName.get(name)
    if (tally !== undefined) tally.active = false
  }

  /**
   * Every tally that is active or has carried a stream (one made for a listener that was rolled
   * back, say, is not), with the bytes of its open streams added: `live` yields, per open stream,
   * its tally and the bytes it has carried so far each way.
   */
  stats(live: (add: (tally: ServiceTally, up: number, down: number) => void) => void): Array<ServiceStats> {
    const extra = new Map<ServiceTally, { up: number; down: number }>()
    live((tally, up, down) => {
      const entry = extra.get(tally)
      if (entry === undefined) extra.set(tally, { up, down })
      else {
        entry.up += up
        entry.down += down
      }
    })
    const out: Array<ServiceStats> = []
    for (const t of this.#byName.values()) {
      if (!t.active && t.opened === 0) continue
      const open = extra.get(t)
      out.push({
        name: t.name,
        address: t.address,
        active: t.active,
        opened: t.opened,
        closed: t.closed,
        reset: t.reset,
        open: t.open,
        bytesUp: t.bytesUp + (open?.up ?? 0),
        bytesDown: t.bytesDown + (open?.down ?? 0)
      })
    }
    return out
  }
}
