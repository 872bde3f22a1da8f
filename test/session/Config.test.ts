/**
 * Session configuration: documented defaults, and every bad value refused with a ConfigError that
 * names the setting (below the minimum, above the maximum, not an integer, not a number; a boolean
 * setting given anything but a boolean), unknown keys refused, and the cross-setting rule
 * maxFrameSize ≤ maxWindow.
 *
 * Invariants: bounds are written out here from the documentation, not read from the implementation.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { INITIAL_WINDOW, MAX_UINT32 } from "../../src/protocol/Constants.ts"
import {
  ConfigError,
  defaults,
  makeSessionConfig,
  type SessionConfig,
  validateSessionConfig
} from "../../src/session/Config.ts"

const KiB = 1024
const MiB = 1024 * 1024
const DAY = 86_400_000

type NumericSetting = { [K in keyof SessionConfig]: SessionConfig[K] extends number ? K : never }[keyof SessionConfig]
type BooleanSetting = Exclude<keyof SessionConfig, NumericSetting>

/** Documented bounds of every numeric setting (inclusive). */
const bounds: { readonly [K in NumericSetting]: readonly [min: number, max: number] } = {
  acceptBacklog: [1, 1_000_000],
  maxUnackedOpens: [1, 1_000_000],
  maxStreams: [1, 10_000_000],
  keepaliveIntervalMillis: [0, DAY],
  keepaliveTimeoutMillis: [1, DAY],
  maxWindow: [256 * KiB, MAX_UINT32],
  maxFrameSize: [1 * KiB, 16 * MiB],
  maxSessionBuffer: [256 * KiB, Number.MAX_SAFE_INTEGER],
  writeBufferSize: [1, MAX_UINT32],
  maxBatchBytes: [1 * KiB, 64 * MiB],
  openTimeoutMillis: [1, DAY],
  closeTimeoutMillis: [1, DAY],
  drainTimeoutMillis: [0, DAY],
  idleTimeoutMillis: [0, DAY],
  timerResolutionMillis: [1, 60_000],
  frameTimeoutMillis: [0, DAY],
  maxPingsPerSecond: [1, 1_000_000_000],
  maxRefusedSynsPerSecond: [1, 1_000_000_000],
  maxResetsPerSecond: [1, 1_000_000_000],
  maxWindowUpdatesPerSecond: [1, 1_000_000_000],
  maxControlBacklog: [16, 100_000_000]
}

/** The settings that are booleans. */
const BOOLEANS: ReadonlyArray<BooleanSetting> = ["windowAutoTune"]

const SETTINGS = Object.keys(bounds) as Array<NumericSetting>

/** Other settings that must move for a boundary value of `setting` to be valid on its own. */
const companions = (setting: keyof SessionConfig, value: number): Partial<SessionConfig> =>
  setting === "maxFrameSize" && value > defaults.maxWindow ? { maxWindow: MAX_UINT32 } : {}

const refused = (input: Record<string, unknown>): ConfigError => {
  const result = validateSessionConfig(input as Partial<SessionConfig>)
  assert.instanceOf(result, ConfigError, `expected ${JSON.stringify(input)} to be refused`)
  return result as ConfigError
}

describe("Config defaults", () => {
  it("the defaults validate to themselves", () => {
    assert.deepStrictEqual(validateSessionConfig(), defaults)
    assert.deepStrictEqual(validateSessionConfig({}), defaults)
  })

  it("documented values (hashicorp-compatible)", () => {
    assert.strictEqual(INITIAL_WINDOW, 256 * KiB)
    assert.strictEqual(defaults.acceptBacklog, 256)
    assert.strictEqual(defaults.maxUnackedOpens, 256)
    assert.strictEqual(defaults.keepaliveIntervalMillis, 30_000)
    assert.strictEqual(defaults.keepaliveTimeoutMillis, 10_000)
    assert.strictEqual(defaults.maxFrameSize, 64 * KiB)
    assert.strictEqual(defaults.openTimeoutMillis, 75_000)
    assert.strictEqual(defaults.closeTimeoutMillis, 5 * 60_000)
    // "max window a few MiB": above the spec's initial window.
    assert.isAtLeast(defaults.maxWindow, 2 * MiB)
    assert.isAtMost(defaults.maxWindow, 16 * MiB)
    assert.isAtMost(defaults.maxFrameSize, defaults.maxWindow)
  })

  it("flood budgets and the partial-frame deadline (README, Security)", () => {
    assert.strictEqual(defaults.frameTimeoutMillis, 5_000)
    assert.strictEqual(defaults.maxPingsPerSecond, 100)
    assert.strictEqual(defaults.maxRefusedSynsPerSecond, 1_000)
    assert.strictEqual(defaults.maxResetsPerSecond, 1_000)
    assert.strictEqual(defaults.maxWindowUpdatesPerSecond, 10_000)
    assert.strictEqual(defaults.maxControlBacklog, 65_536)
    // The deadline is separate from (and shorter than) keepalive's detection of a dead link.
    assert.isBelow(defaults.frameTimeoutMillis, defaults.keepaliveIntervalMillis + defaults.keepaliveTimeoutMillis)
  })

  it("every default lies within its documented bounds", () => {
    assert.sameMembers(Object.keys(defaults), [...SETTINGS, ...BOOLEANS])
    for (const setting of SETTINGS) {
      const [min, max] = bounds[setting]
      assert.isAtLeast(defaults[setting], min, setting)
      assert.isAtMost(defaults[setting], max, setting)
    }
  })

  it("undefined values fall back to the defaults", () => {
    assert.deepStrictEqual(
      validateSessionConfig({ acceptBacklog: undefined } as unknown as Partial<SessionConfig>),
      defaults
    )
  })

  it.effect("makeSessionConfig merges overrides over the defaults", () =>
    Effect.gen(function* () {
      const config = yield* makeSessionConfig({ acceptBacklog: 4, maxWindow: 16 * MiB })
      assert.deepStrictEqual(config, { ...defaults, acceptBacklog: 4, maxWindow: 16 * MiB })
    })
  )
})

describe("Config bounds", () => {
  for (const setting of SETTINGS) {
    const [min, max] = bounds[setting]
    describe(setting, () => {
      it(`accepts ${min} and ${max}`, () => {
        for (const value of [min, max]) {
          const result = validateSessionConfig({ ...companions(setting, value), [setting]: value })
          assert.notInstanceOf(result, ConfigError, `${setting}=${value}`)
          assert.strictEqual((result as SessionConfig)[setting], value)
        }
      })

      it(`refuses ${min - 1} (below the minimum)`, () => {
        const error = refused({ [setting]: min - 1 })
        assert.strictEqual(error.setting, setting)
        assert.include(error.message, setting)
        assert.include(error.message, String(min))
        assert.include(error.message, `got ${min - 1}`)
      })

      it("refuses a value above the maximum", () => {
        const above = max === Number.MAX_SAFE_INTEGER ? 2 ** 53 + 2 : max + 1
        const error = refused({ ...companions(setting, max), [setting]: above })
        assert.strictEqual(error.setting, setting)
        assert.include(error.message, setting)
        assert.include(error.message, String(max))
      })

      it("refuses non-integers and non-numbers", () => {
        for (const value of [min + 0.5, Number.NaN, Number.POSITIVE_INFINITY, "10", null, true]) {
          const error = refused({ [setting]: value })
          assert.strictEqual(error.setting, setting, `${setting}=${String(value)}`)
          assert.include(error.message, `got ${String(value)}`)
        }
      })
    })
  }
})

describe("Config booleans", () => {
  for (const setting of BOOLEANS) {
    describe(setting, () => {
      it("accepts true and false", () => {
        for (const value of [true, false]) {
          const result = validateSessionConfig({ [setting]: value })
          assert.notInstanceOf(result, ConfigError, `${setting}=${value}`)
          assert.strictEqual((result as SessionConfig)[setting], value)
        }
      })

      it("refuses numbers, strings and null", () => {
        for (const value of [0, 1, "true", null]) {
          const error = refused({ [setting]: value })
          assert.strictEqual(error.setting, setting, `${setting}=${String(value)}`)
          assert.include(error.message, "true or false")
          assert.include(error.message, `got ${String(value)}`)
        }
      })
    })
  }
})

describe("Config rules", () => {
  it("an unknown key is refused, naming it", () => {
    const error = refused({ acceptBacklogg: 10 })
    assert.strictEqual(error._tag, "ConfigError")
    assert.strictEqual(error.setting, "acceptBacklogg")
    assert.include(error.message, "acceptBacklogg")
  })

  it("maxFrameSize > maxWindow is refused, naming maxFrameSize", () => {
    const error = refused({ maxWindow: 256 * KiB, maxFrameSize: 256 * KiB + 1 })
    assert.strictEqual(error.setting, "maxFrameSize")
    assert.include(error.message, "maxWindow")
    assert.include(error.message, String(256 * KiB + 1))
  })

  it("maxFrameSize = maxWindow is accepted", () => {
    const result = validateSessionConfig({ maxWindow: 256 * KiB, maxFrameSize: 256 * KiB })
    assert.notInstanceOf(result, ConfigError)
  })

  it("a default that an override makes inconsistent is refused (maxWindow below the default frame)", () => {
    // maxWindow at its minimum is fine with the default 64 KiB frame; a 1 MiB frame is not.
    const error = refused({ maxFrameSize: 1 * MiB, maxWindow: 256 * KiB })
    assert.strictEqual(error.setting, "maxFrameSize")
  })

  it.effect("makeSessionConfig fails with the ConfigError", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(makeSessionConfig({ keepaliveTimeoutMillis: 0 }))
      assert.strictEqual(error._tag, "ConfigError")
      assert.strictEqual(error.setting, "keepaliveTimeoutMillis")
    })
  )
})
