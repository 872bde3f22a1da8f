/**
 * A plain histogram: observations go into fixed buckets with a few arithmetic steps and no Effect,
 * so a component can record one per connection or per dial inside its own callbacks. The metrics
 * module reads it when metrics are exported (a pull series), never the other way round.
 *
 * Invariants: `counts[i]` holds observations `<= boundaries[i]` (and above the previous boundary);
 * the last slot holds those above every boundary. `count` and `sum` cover every observation.
 *
 * @since 0.1.0
 */
import type { Metric } from "effect"

/** Buckets for latencies in seconds: 0.5 ms to 10 s. */
export const LATENCY_SECONDS: ReadonlyArray<number> = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
]

/** A histogram of plain numbers. */
export class Histogram {
  readonly boundaries: ReadonlyArray<number>
  readonly counts: Array<number>
  count = 0
  sum = 0
  min = Number.POSITIVE_INFINITY
  max = Number.NEGATIVE_INFINITY

  constructor(boundaries: ReadonlyArray<number> = LATENCY_SECONDS) {
    this.boundaries = [...boundaries].sort((a, b) => a - b)
    this.counts = new Array<number>(this.boundaries.length + 1).fill(0)
  }

  observe(value: number): void {
    const bounds = this.boundaries
    // Few buckets: a linear scan is as fast as a binary search and simpler.
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    this.counts[i]!++
    this.count++
    this.sum += value
    if (value < this.min) this.min = value
    if (value > this.max) this.max = value
  }

  /** The state in the shape of Effect's histogram metric: cumulative counts per boundary. */
  state(): Metric.HistogramState {
    const buckets: Array<[number, number]> = []
    let cumulative = 0
    for (let i = 0; i < this.boundaries.length; i++) {
      cumulative += this.counts[i]!
      buckets.push([this.boundaries[i]!, cumulative])
    }
    return {
      buckets,
      count: this.count,
      sum: this.sum,
      min: this.count === 0 ? 0 : this.min,
      max: this.count === 0 ? 0 : this.max
    }
  }
}
