/**
 * The admin endpoint's `/status` document: its schema (the server encodes with it, `plait status`
 * decodes with it) and its rendering as one terminal screen.
 *
 * Invariants: the document holds facts only — addresses, counts, limits, versions — never a token,
 * a key or a TLS file path. A document that does not match the schema is refused by
 * {@link decode} with a typed error, never half-rendered.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * One link: its peer, since when it is up, its last ping round trip, streams and buffered bytes.
 *
 * @since 0.1.0
 * @category schemas
 */
export const LinkStatus = Schema.Struct({
  peer: Schema.String,
  /** When the link came up (ISO 8601). */
  since: Schema.String,
  ageSeconds: Schema.Finite,
  /** The last ping round trip, null until one was measured. */
  rttMillis: Schema.NullOr(Schema.Finite),
  streams: Schema.Finite,
  bufferedBytes: Schema.Finite
})

/**
 * A link in the status document.
 *
 * @since 0.1.0
 * @category models
 */
export type LinkStatus = typeof LinkStatus.Type

/**
 * One service: where it is (the proxy's listen address, the server's target), its streams open now,
 * opened, closed and reset since start, and the bytes it carried each way. `active` is false for a
 * service a reload removed whose last streams are still open.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ServiceStatus = Schema.Struct({
  name: Schema.String,
  address: Schema.String,
  active: Schema.Boolean,
  streams: Schema.Finite,
  opened: Schema.Finite,
  closed: Schema.Finite,
  reset: Schema.Finite,
  bytesUp: Schema.Finite,
  bytesDown: Schema.Finite
})

/**
 * A service in the status document.
 *
 * @since 0.1.0
 * @category models
 */
export type ServiceStatus = typeof ServiceStatus.Type

/**
 * The whole `/status` document.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Status = Schema.Struct({
  role: Schema.Literals(["proxy", "server"]),
  version: Schema.String,
  runtime: Schema.String,
  pid: Schema.Finite,
  startedAt: Schema.String,
  uptimeSeconds: Schema.Finite,
  /** Where it accepts connections; `none` for a server that only dials its proxy. */
  listen: Schema.String,
  /** The proxy's upstream(s), or the proxy a dialling server's link goes to; null otherwise. */
  upstream: Schema.NullOr(Schema.String),
  ready: Schema.Boolean,
  /** Why the component is not ready; null when it is. */
  reason: Schema.NullOr(Schema.String),
  links: Schema.Array(LinkStatus),
  services: Schema.Array(ServiceStatus),
  limits: Schema.Record(Schema.String, Schema.Finite),
  process: Schema.Struct({ rssBytes: Schema.Finite, eventLoopDelaySeconds: Schema.Finite })
})

/**
 * The status document.
 *
 * @since 0.1.0
 * @category models
 */
export type Status = typeof Status.Type

/**
 * Decodes a `/status` body (JSON text).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = Schema.decodeUnknownEffect(Schema.fromJsonString(Status))

/**
 * A byte count for people: `512 B`, `1.5 KiB`, `3.2 MiB`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatBytes = (bytes: number): string => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`
}

/**
 * A duration for people: `42s`, `3m 05s`, `2h 10m`, `4d 1h`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatAge = (seconds: number): string => {
  const s = Math.floor(seconds)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`
}

/** A limit for people: milliseconds as a duration, window and buffer sizes in bytes. */
const formatLimit = (name: string, value: number): string => {
  if (name.endsWith("Millis")) {
    if (value === 0) return "0 (off)"
    return value % 1000 === 0 ? `${value / 1000}s` : `${value}ms`
  }
  if (/Window$|Buffer$/.test(name)) return formatBytes(value).replace(" ", "")
  return String(value)
}

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): Array<string> => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    `  ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join("  ")}`.trimEnd()
  return [line(header), ...rows.map(line)]
}

/**
 * The status as one terminal screen (plain text, no colour): identity and readiness, links,
 * services, limits.
 *
 * @since 0.1.0
 * @category formatting
 */
export const render = (status: Status): string => {
  const lines: Array<string> = []
  const where =
    status.upstream === null
      ? status.listen
      : status.listen === "none"
        ? `dials ${status.upstream}`
        : `${status.listen} → ${status.upstream}`
  lines.push(`plait ${status.role} ${status.version} on ${status.runtime} (pid ${status.pid}), ${where}`)
  lines.push(
    `${status.ready ? "READY" : `NOT READY: ${status.reason ?? "unknown"}`} · up ${formatAge(status.uptimeSeconds)} · RSS ${formatBytes(status.process.rssBytes)} · event-loop delay ${(status.process.eventLoopDelaySeconds * 1000).toFixed(1)} ms`
  )
  lines.push("")
  lines.push(`links (${status.links.length})`)
  if (status.links.length === 0) lines.push("  none")
  else
    lines.push(
      ...table(
        ["peer", "age", "rtt", "streams", "buffered"],
        status.links.map((link) => [
          link.peer,
          formatAge(link.ageSeconds),
          link.rttMillis === null ? "–" : `${link.rttMillis} ms`,
          String(link.streams),
          formatBytes(link.bufferedBytes)
        ])
      )
    )
  lines.push("")
  lines.push("services")
  lines.push(
    ...table(
      ["name", status.role === "proxy" ? "listen" : "target", "streams", "opened", "reset", "up", "down"],
      status.services.map((service) => [
        service.active ? service.name : `${service.name} (removed)`,
        service.address,
        String(service.streams),
        String(service.opened),
        String(service.reset),
        formatBytes(service.bytesUp),
        formatBytes(service.bytesDown)
      ])
    )
  )
  lines.push("")
  lines.push("limits")
  const limits = Object.entries(status.limits)
  for (let i = 0; i < limits.length; i += 3) {
    lines.push(
      `  ${limits
        .slice(i, i + 3)
        .map(([name, value]) => `${name}=${formatLimit(name, value)}`.padEnd(34))
        .join("")
        .trimEnd()}`
    )
  }
  return `${lines.join("\n")}\n`
}
