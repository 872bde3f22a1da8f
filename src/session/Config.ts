/**
 * Session configuration: one validated record with hashicorp-compatible defaults.
 *
 * Invariants: a {@link SessionConfig} that exists has passed {@link makeSessionConfig}; every bad
 * value is refused with a {@link ConfigError} naming the setting, what it must be, and what was given.
 * Durations are milliseconds (`…Millis`), rates are per second (`…PerSecond`), switches are booleans.
 *
 * The flood budgets (`max…PerSecond`, `maxControlBacklog`) and the partial-frame deadline
 * (`frameTimeoutMillis`) bound what a hostile peer can make a session do; their defaults sit far
 * above what healthy traffic reaches (a plait peer pings once per keepalive interval, is never
 * refused a SYN with matching limits, resets streams as its clients vanish, returns credit once per
 * half window), so reaching one is taken as abuse: GO_AWAY(1) and the session closes.
 *
 * @since 0.1.0
 */
import { Data, Effect } from "effect"
import { DEFAULT_MAX_FRAME, INITIAL_WINDOW, MAX_UINT32 } from "../protocol/Constants.ts"

/**
 * Every tunable of a session.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionConfig {
  /** Inbound streams waiting for `accept`; a SYN beyond it is refused with RST. */
  readonly acceptBacklog: number
  /** Outbound opens not yet ACKed by the peer; further opens wait locally (backpressure). */
  readonly maxUnackedOpens: number
  /** Streams open at once; beyond it inbound SYNs are refused with RST and local opens wait. */
  readonly maxStreams: number
  /** Idle time after which a ping is sent (0 disables keepalive). */
  readonly keepaliveIntervalMillis: number
  /** How long to wait for that ping's answer before the session is declared dead. */
  readonly keepaliveTimeoutMillis: number
  /** Receive window per stream, advertised to the peer with SYN/ACK (≥ 256 KiB, the spec's initial). */
  readonly maxWindow: number
  /**
   * `true`: advertise only 256 KiB at open and double a stream's window (up to `maxWindow`) each
   * time its reader consumes half of it, while the session buffers less than half of
   * `maxSessionBuffer`. Streams whose readers stall then hold little memory. `false` (default): the
   * whole `maxWindow` at open.
   */
  readonly windowAutoTune: boolean
  /** Largest DATA payload sent in one frame. */
  readonly maxFrameSize: number
  /** Bytes buffered by all streams of the session before the session stops reading the link. */
  readonly maxSessionBuffer: number
  /** Bytes a stream's writer may queue beyond the peer's window before `write` waits. */
  readonly writeBufferSize: number
  /** Bytes the writer gathers into one transport write. */
  readonly maxBatchBytes: number
  /** An outbound stream not ACKed in this time is reset (that stream only). */
  readonly openTimeoutMillis: number
  /** A stream whose write side is closed and whose peer stays silent this long is reset. */
  readonly closeTimeoutMillis: number
  /** On graceful close, how long open streams may drain before they are reset. */
  readonly drainTimeoutMillis: number
  /** A stream with no DATA either way for this long is reset (0: never). */
  readonly idleTimeoutMillis: number
  /** How often timers (open, close, idle and partial-frame timeouts) are checked. */
  readonly timerResolutionMillis: number
  /**
   * A frame header or body that has started arriving and is not complete within this time ends
   * the session (GO_AWAY(1)): a peer trickling a frame a byte at a time cannot hold a session.
   * Time the session itself stops reading (`maxSessionBuffer`) does not count. 0: no deadline.
   */
  readonly frameTimeoutMillis: number
  /** PING requests the peer may send in one second; more end the session (GO_AWAY(1)). */
  readonly maxPingsPerSecond: number
  /**
   * SYNs the session may refuse (accept backlog or `maxStreams` full) in one second; more end the
   * session (GO_AWAY(1)).
   */
  readonly maxRefusedSynsPerSecond: number
  /**
   * RSTs the peer may send in one second on streams it opened less than a second before (rapid
   * reset: open + RST in a loop); more end the session (GO_AWAY(1)). Resets of streams that lived
   * longer, as when many clients vanish at once, do not count.
   */
  readonly maxResetsPerSecond: number
  /**
   * Frames that carry nothing but credit the peer may send in one second: WINDOW_UPDATEs without
   * flags, and DATA frames without payload or flags; more end the session (GO_AWAY(1)).
   */
  readonly maxWindowUpdatesPerSecond: number
  /**
   * Control frames (pongs, RSTs, credit, ACKs) queued for a peer that does not read them; one more
   * ends the session (GO_AWAY(1), then the link is closed after a bounded flush).
   */
  readonly maxControlBacklog: number
}

/**
 * Documented defaults (see the README's table).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults: SessionConfig = {
  acceptBacklog: 256,
  maxUnackedOpens: 256,
  maxStreams: 65_536,
  keepaliveIntervalMillis: 30_000,
  keepaliveTimeoutMillis: 10_000,
  maxWindow: 4 * 1024 * 1024,
  windowAutoTune: false,
  maxFrameSize: DEFAULT_MAX_FRAME,
  maxSessionBuffer: 64 * 1024 * 1024,
  writeBufferSize: 256 * 1024,
  maxBatchBytes: 256 * 1024,
  openTimeoutMillis: 75_000,
  closeTimeoutMillis: 300_000,
  drainTimeoutMillis: 30_000,
  idleTimeoutMillis: 0,
  timerResolutionMillis: 1_000,
  frameTimeoutMillis: 5_000,
  maxPingsPerSecond: 100,
  maxRefusedSynsPerSecond: 1_000,
  maxResetsPerSecond: 1_000,
  maxWindowUpdatesPerSecond: 10_000,
  maxControlBacklog: 65_536
}

/**
 * A configuration value was refused.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfigError extends Data.TaggedError("ConfigError")<{
  readonly setting: string
  readonly message: string
}> {}

/** A numeric setting's range, or a boolean setting. */
type Rule = { readonly min: number; readonly max: number; readonly unit: string } | "boolean"

const DAY = 86_400_000

const rules: { readonly [K in keyof SessionConfig]: Rule } = {
  acceptBacklog: { min: 1, max: 1_000_000, unit: "streams" },
  maxUnackedOpens: { min: 1, max: 1_000_000, unit: "streams" },
  maxStreams: { min: 1, max: 10_000_000, unit: "streams" },
  keepaliveIntervalMillis: { min: 0, max: DAY, unit: "ms" },
  keepaliveTimeoutMillis: { min: 1, max: DAY, unit: "ms" },
  maxWindow: { min: INITIAL_WINDOW, max: MAX_UINT32, unit: "bytes" },
  windowAutoTune: "boolean",
  maxFrameSize: { min: 1024, max: 16 * 1024 * 1024, unit: "bytes" },
  maxSessionBuffer: { min: INITIAL_WINDOW, max: Number.MAX_SAFE_INTEGER, unit: "bytes" },
  writeBufferSize: { min: 1, max: MAX_UINT32, unit: "bytes" },
  maxBatchBytes: { min: 1024, max: 64 * 1024 * 1024, unit: "bytes" },
  openTimeoutMillis: { min: 1, max: DAY, unit: "ms" },
  closeTimeoutMillis: { min: 1, max: DAY, unit: "ms" },
  drainTimeoutMillis: { min: 0, max: DAY, unit: "ms" },
  idleTimeoutMillis: { min: 0, max: DAY, unit: "ms" },
  timerResolutionMillis: { min: 1, max: 60_000, unit: "ms" },
  frameTimeoutMillis: { min: 0, max: DAY, unit: "ms" },
  maxPingsPerSecond: { min: 1, max: 1_000_000_000, unit: "per second" },
  maxRefusedSynsPerSecond: { min: 1, max: 1_000_000_000, unit: "per second" },
  maxResetsPerSecond: { min: 1, max: 1_000_000_000, unit: "per second" },
  maxWindowUpdatesPerSecond: { min: 1, max: 1_000_000_000, unit: "per second" },
  maxControlBacklog: { min: 16, max: 100_000_000, unit: "frames" }
}

/** Validates a value against its rule; returns an error message or undefined. */
const check = (setting: keyof SessionConfig, value: unknown): string | undefined => {
  const rule = rules[setting]
  if (rule === "boolean") {
    return typeof value === "boolean" ? undefined : `${setting} must be true or false (got ${String(value)})`
  }
  if (typeof value !== "number" || !Number.isInteger(value) || value < rule.min || value > rule.max) {
    return `${setting} must be an integer from ${rule.min} to ${rule.max} ${rule.unit} (got ${String(value)})`
  }
  return undefined
}

/**
 * Validates a partial configuration over the defaults, synchronously.
 *
 * @since 0.1.0
 * @category constructors
 */
export const validateSessionConfig = (input: Partial<SessionConfig> = {}): SessionConfig | ConfigError => {
  const merged: Record<string, unknown> = { ...defaults }
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue
    if (!(key in rules)) return new ConfigError({ setting: key, message: `unknown session setting ${key}` })
    merged[key] = value
  }
  for (const key of Object.keys(rules) as Array<keyof SessionConfig>) {
    const message = check(key, merged[key])
    if (message !== undefined) return new ConfigError({ setting: key, message })
  }
  const config = merged as unknown as SessionConfig
  if (config.maxFrameSize > config.maxWindow) {
    return new ConfigError({
      setting: "maxFrameSize",
      message: `maxFrameSize (${config.maxFrameSize}) must not exceed maxWindow (${config.maxWindow})`
    })
  }
  return config
}

/**
 * Validates a partial configuration over the defaults.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSessionConfig = (input: Partial<SessionConfig> = {}): Effect.Effect<SessionConfig, ConfigError> =>
  Effect.suspend(() => {
    const result = validateSessionConfig(input)
    return result instanceof ConfigError ? Effect.fail(result) : Effect.succeed(result)
  })
