/**
 * MuxError reasons: the GO_AWAY code a session sends when each reason ends it, whether retrying can
 * help, and messages that carry the key values (stream id, sizes, codes, timeouts).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { GoAwayCode } from "../../src/protocol/Constants.ts"
import {
  BudgetExceeded,
  FrameTimeout,
  KeepaliveTimeout,
  MuxError,
  type MuxErrorReason,
  muxError,
  OpenTimeout,
  ProtocolError,
  RemoteGoAway,
  SessionClosed,
  StreamClosed,
  StreamReset,
  StreamsExhausted,
  TransportFailed,
  WindowExceeded
} from "../../src/session/MuxError.ts"

interface Case {
  readonly reason: MuxErrorReason
  readonly tag: MuxErrorReason["_tag"]
  readonly goAwayCode: number
  readonly isRetryable: boolean
  /** Substrings the message must contain. */
  readonly mentions: ReadonlyArray<string>
}

const cases: ReadonlyArray<Case> = [
  {
    reason: new ProtocolError({ kind: "BadVersion", message: "unsupported version 7", streamId: 0 }),
    tag: "ProtocolError",
    goAwayCode: GoAwayCode.ProtocolError,
    isRetryable: false,
    mentions: ["unsupported version 7"]
  },
  {
    reason: new WindowExceeded({ streamId: 5, length: 300_000, window: 262_144 }),
    tag: "WindowExceeded",
    goAwayCode: GoAwayCode.ProtocolError,
    isRetryable: false,
    mentions: ["stream 5", "300000", "262144"]
  },
  {
    reason: new StreamReset({ streamId: 7, remote: true }),
    tag: "StreamReset",
    goAwayCode: GoAwayCode.Normal,
    isRetryable: false,
    mentions: ["stream 7", "by the peer"]
  },
  {
    reason: new StreamReset({ streamId: 9, remote: false }),
    tag: "StreamReset",
    goAwayCode: GoAwayCode.Normal,
    isRetryable: false,
    mentions: ["stream 9", "locally"]
  },
  {
    reason: new StreamClosed({ streamId: 11 }),
    tag: "StreamClosed",
    goAwayCode: GoAwayCode.Normal,
    isRetryable: false,
    mentions: ["stream 11", "write after close"]
  },
  {
    reason: new RemoteGoAway({ code: 0 }),
    tag: "RemoteGoAway",
    goAwayCode: GoAwayCode.Normal,
    isRetryable: true,
    mentions: ["GO_AWAY(0)"]
  },
  {
    reason: new RemoteGoAway({ code: 2 }),
    tag: "RemoteGoAway",
    goAwayCode: GoAwayCode.Normal,
    isRetryable: true,
    mentions: ["GO_AWAY(2)"]
  },
  {
    reason: new SessionClosed({ message: "the peer closed the link" }),
    tag: "SessionClosed",
    goAwayCode: GoAwayCode.Normal,
    isRetryable: true,
    mentions: ["the peer closed the link"]
  },
  {
    reason: new KeepaliveTimeout({ timeoutMillis: 10_000 }),
    tag: "KeepaliveTimeout",
    goAwayCode: GoAwayCode.InternalError,
    isRetryable: true,
    mentions: ["10000 ms"]
  },
  {
    reason: new OpenTimeout({ streamId: 13, timeoutMillis: 75_000 }),
    tag: "OpenTimeout",
    goAwayCode: GoAwayCode.Normal,
    isRetryable: true,
    mentions: ["stream 13", "75000 ms"]
  },
  {
    reason: new StreamsExhausted(),
    tag: "StreamsExhausted",
    goAwayCode: GoAwayCode.Normal,
    isRetryable: true,
    mentions: ["exhausted"]
  },
  {
    reason: new TransportFailed({ message: "connection reset by peer memory:a", cause: new Error("boom") }),
    tag: "TransportFailed",
    goAwayCode: GoAwayCode.InternalError,
    isRetryable: true,
    mentions: ["connection reset by peer memory:a"]
  },
  {
    reason: new BudgetExceeded({ budget: "maxPingsPerSecond", limit: 100 }),
    tag: "BudgetExceeded",
    goAwayCode: GoAwayCode.ProtocolError,
    isRetryable: false,
    mentions: ["maxPingsPerSecond", "more than 100 pings in one second"]
  },
  {
    reason: new BudgetExceeded({ budget: "maxControlBacklog", limit: 65_536 }),
    tag: "BudgetExceeded",
    goAwayCode: GoAwayCode.ProtocolError,
    isRetryable: false,
    mentions: ["maxControlBacklog", "65536 control frames"]
  },
  {
    reason: new FrameTimeout({ part: "header", streamId: 0, received: 5, expected: 12, timeoutMillis: 5_000 }),
    tag: "FrameTimeout",
    goAwayCode: GoAwayCode.ProtocolError,
    isRetryable: true,
    mentions: ["frame header", "5 of 12 bytes", "5000 ms"]
  },
  {
    reason: new FrameTimeout({ part: "body", streamId: 3, received: 0, expected: 100, timeoutMillis: 2_000 }),
    tag: "FrameTimeout",
    goAwayCode: GoAwayCode.ProtocolError,
    isRetryable: true,
    mentions: ["stream 3", "0 of 100 bytes", "2000 ms"]
  }
]

describe("MuxError reasons", () => {
  it("every reason tag is covered", () => {
    const tags: Array<MuxErrorReason["_tag"]> = [
      "ProtocolError",
      "WindowExceeded",
      "StreamReset",
      "StreamClosed",
      "RemoteGoAway",
      "SessionClosed",
      "KeepaliveTimeout",
      "OpenTimeout",
      "StreamsExhausted",
      "TransportFailed",
      "BudgetExceeded",
      "FrameTimeout"
    ]
    assert.sameMembers([...new Set(cases.map((c) => c.tag))], tags)
  })

  for (const c of cases) {
    describe(`${c.tag}: ${c.reason.message}`, () => {
      it(`goAwayCode ${c.goAwayCode}, isRetryable ${c.isRetryable}`, () => {
        assert.strictEqual(c.reason._tag, c.tag)
        assert.strictEqual(c.reason.goAwayCode, c.goAwayCode)
        assert.strictEqual(c.reason.isRetryable, c.isRetryable)
      })

      it("the reason's message carries the key values", () => {
        for (const m of c.mentions) assert.include(c.reason.message, m)
      })

      it("MuxError delegates to its reason and prefixes the tag", () => {
        const error = muxError(c.reason)
        assert.instanceOf(error, MuxError)
        assert.strictEqual(error._tag, "MuxError")
        assert.strictEqual(error.reason, c.reason)
        assert.strictEqual(error.goAwayCode, c.goAwayCode)
        assert.strictEqual(error.isRetryable, c.isRetryable)
        assert.isTrue(error.message.startsWith(`${c.tag}: `), error.message)
        for (const m of c.mentions) assert.include(error.message, m)
      })
    })
  }

  it("reasons are structurally equal by value", () => {
    assert.deepStrictEqual(
      new StreamReset({ streamId: 3, remote: true }),
      new StreamReset({ streamId: 3, remote: true })
    )
    assert.notDeepEqual(new StreamReset({ streamId: 3, remote: true }), new StreamReset({ streamId: 3, remote: false }))
  })

  it.effect("a failed effect carries the MuxError, matched by reason._tag", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Effect.fail(muxError(new OpenTimeout({ streamId: 21, timeoutMillis: 5 }))))
      assert.strictEqual(error.reason._tag, "OpenTimeout")
      if (error.reason._tag === "OpenTimeout") assert.strictEqual(error.reason.streamId, 21)
    })
  )

  it("TransportFailed keeps its cause", () => {
    const cause = new Error("boom")
    const reason = new TransportFailed({ message: "x", cause })
    assert.strictEqual(reason.cause, cause)
  })
})
