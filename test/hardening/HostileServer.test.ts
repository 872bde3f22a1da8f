/**
 * Hostile input against a running server over real TCP: attackers dial the server's link port
 * directly and write raw yamux (or garbage), while a healthy proxy session on the same server runs a
 * steady byte-exact echo workload through to a backend.
 *
 * Each attack gets its defined outcome, read off the wire by the attacker:
 * - a session-fatal violation: GO_AWAY(1) as the last frame, then the link is closed (FIN);
 * - a stream-level violation or a refused SYN: an RST for that stream, the session carries on;
 * - abuse (floods, 1-byte writes, a peer that sends one byte per 50 ms, random bytes): answered,
 *   refused or closed in bounded time, never a hang.
 * After every attack the healthy workload has kept going (every echo byte-exact, every round trip
 * under {@link HEALTHY_BOUND}), and the server's `stats()`, the backend's open connections and this
 * process's file descriptors return to the healthy baseline — nothing leaks.
 *
 * Everything runs in this process (server, proxy, backend, attackers), so "the healthy session was
 * not disturbed" includes sharing one event loop with the attack.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import fc from "fast-check"
import { Flags, FrameType, INITIAL_WINDOW, MAX_UINT32 } from "../../src/protocol/Constants.ts"
import { data, encodeFrame, ping, windowUpdate } from "../../src/protocol/Frame.ts"
import {
  enc,
  expectGoAwayAndClose,
  expectPong,
  GO_AWAY_1,
  HEALTHY_CLIENTS,
  hasFlag,
  MAX_WINDOW,
  OUTCOME_BOUND,
  openStream,
  SETTLE_BOUND,
  setup,
  streamBytes,
  summary,
  TEST_TIMEOUT
} from "./fixture.ts"
import {
  concatBytes,
  connectProbe,
  describeFrame,
  eventually,
  note,
  type Probe,
  pattern,
  quiet,
  rawHeader,
  retainedBytes,
  sameBytes
} from "./harness.ts"

interface FatalCase {
  readonly name: string
  /** Streams the attacker opens (ACKed, backend connected) before the violation. */
  readonly open?: ReadonlyArray<number>
  readonly send: Uint8Array
}

const fatalCases: ReadonlyArray<FatalCase> = [
  { name: "malformed header: version 1", send: rawHeader({ version: 1, type: 0, streamId: 1 }) },
  { name: "malformed header: version 255 on a PING", send: rawHeader({ version: 255, type: 2, flags: Flags.SYN }) },
  { name: "unknown type 4", send: rawHeader({ type: 4, streamId: 1 }) },
  { name: "unknown type 255", send: rawHeader({ type: 255 }) },
  {
    name: "unknown flag bit 0x10 on a stream-opening WINDOW_UPDATE",
    send: rawHeader({ type: FrameType.WindowUpdate, flags: Flags.SYN | 0x10, streamId: 1 })
  },
  { name: "DATA on stream 0", send: rawHeader({ type: FrameType.Data, length: 4 }) },
  {
    name: "PING on a stream (non-zero id)",
    open: [1],
    send: rawHeader({ type: FrameType.Ping, flags: Flags.SYN, streamId: 1, length: 9 })
  },
  {
    name: "DATA|SYN longer than the initial window (the header alone)",
    send: rawHeader({ type: FrameType.Data, flags: Flags.SYN, streamId: 1, length: INITIAL_WINDOW + 1 })
  },
  {
    name: "DATA longer than an accepted stream's window (the header alone)",
    open: [1],
    send: rawHeader({ type: FrameType.Data, streamId: 1, length: MAX_WINDOW + 1 })
  },
  {
    name: "DATA of 16 MiB + 1 (beyond the sanity bound)",
    open: [1],
    send: rawHeader({ type: FrameType.Data, streamId: 1, length: 16 * 1024 * 1024 + 1 })
  },
  { name: "WINDOW_UPDATE for a never-opened stream", send: enc(windowUpdate(5, 0, 100)) },
  { name: "DATA for a never-opened stream beyond the highest seen", open: [1], send: enc(data(3, 0, pattern(10, 1))) },
  { name: "DATA for a never-opened stream of the server's parity", send: enc(data(2, 0, pattern(10, 2))) },
  { name: "RST for a never-opened stream", send: enc(windowUpdate(7, Flags.RST, 0)) },
  { name: "wrong-parity SYN (an even id from the dialling side)", send: enc(windowUpdate(2, Flags.SYN, 0)) },
  { name: "wrong-parity DATA|SYN", send: enc(data(4, Flags.SYN, pattern(5, 3))) },
  { name: "duplicate SYN for a live stream", open: [1], send: enc(windowUpdate(1, Flags.SYN, 0)) },
  {
    name: "duplicate SYN in one write (the first still in the accept backlog)",
    send: enc(windowUpdate(3, Flags.SYN, 0), data(3, Flags.SYN, pattern(4, 4)))
  },
  { name: "window credit overflowing 2^32-1 in one update", open: [1], send: enc(windowUpdate(1, 0, MAX_UINT32)) },
  {
    name: "window credit overflowing 2^32-1 over two updates",
    open: [1],
    send: enc(windowUpdate(1, 0, MAX_UINT32 - INITIAL_WINDOW), windowUpdate(1, 0, 1))
  },
  {
    name: "window credit overflow carried on the SYN itself",
    send: enc(windowUpdate(1, Flags.SYN, MAX_UINT32 - INITIAL_WINDOW + 1))
  }
]

describe("HostileServer: session-fatal input → GO_AWAY(1) and close; the healthy session carries on", () => {
  for (const c of fatalCases) {
    it.live(
      c.name,
      () =>
        Effect.gen(function* () {
          const fixture = yield* setup()
          const attacker = yield* fixture.attacker()
          for (const id of c.open ?? []) yield* openStream(fixture, attacker, id)
          const sentAt = Date.now()
          yield* attacker.send(c.send)
          yield* expectGoAwayAndClose(attacker, sentAt)
          yield* fixture.verify
        }).pipe(quiet),
      TEST_TIMEOUT
    )
  }
})

describe("HostileServer: stream-level input → that stream only", () => {
  it.live(
    "DATA after the attacker's own FIN → RST on that stream, its backend connection closed, the session alive",
    () =>
      Effect.gen(function* () {
        const fixture = yield* setup()
        const attacker = yield* fixture.attacker()
        yield* openStream(fixture, attacker, 1)
        const hello = pattern(100, 11)
        yield* attacker.send(enc(data(1, 0, hello)))
        yield* attacker.until(
          "the echo",
          () => (streamBytes(attacker, 1).length >= 100 ? true : undefined),
          OUTCOME_BOUND
        )
        assert.ok(sameBytes(streamBytes(attacker, 1), hello))
        // FIN and more DATA in one write: the server sees both in one read.
        yield* attacker.send(enc(data(1, Flags.FIN, pattern(10, 12)), data(1, 0, pattern(10, 13))))
        yield* attacker.until(
          "RST of stream 1",
          () => (hasFlag(attacker, 1, Flags.RST) ? true : undefined),
          OUTCOME_BOUND
        )
        yield* expectPong(attacker, 7)
        assert.isFalse(
          attacker.frames().some((f) => f.type === FrameType.GoAway),
          "no GO_AWAY for a stream-level violation"
        )
        // The reset stream's backend connection is gone while the attacker's session stays up.
        yield* eventually(
          "the backend connection of the reset stream closed",
          () => fixture.backend.open() === fixture.baseline.backendOpen,
          SETTLE_BOUND
        )
        assert.strictEqual(fixture.server.stats().sessions, 2)
        // A fresh stream on the same session still works.
        yield* openStream(fixture, attacker, 3)
        const more = pattern(5000, 14)
        yield* attacker.send(enc(data(3, Flags.FIN, more)))
        yield* attacker.until(
          "FIN of stream 3",
          () => (hasFlag(attacker, 3, Flags.FIN) ? true : undefined),
          OUTCOME_BOUND
        )
        assert.ok(sameBytes(streamBytes(attacker, 3), more))
        attacker.socket.end()
        yield* attacker.closed(OUTCOME_BOUND)
        yield* fixture.verify
      }).pipe(quiet),
    TEST_TIMEOUT
  )

  it.live(
    "late frames for a finished stream are dropped silently; the session answers the next ping",
    () =>
      Effect.gen(function* () {
        const fixture = yield* setup()
        const attacker = yield* fixture.attacker()
        yield* openStream(fixture, attacker, 1)
        yield* attacker.send(enc(data(1, Flags.FIN, pattern(30, 21))))
        // The backend echoes and half-closes: both FINs are out, the stream is gone.
        yield* attacker.until(
          "FIN of stream 1",
          () => (hasFlag(attacker, 1, Flags.FIN) ? true : undefined),
          OUTCOME_BOUND
        )
        yield* eventually(
          "the stream's backend connection closed",
          () => fixture.backend.open() === fixture.baseline.backendOpen,
          SETTLE_BOUND
        )
        const seen = attacker.frames().length
        yield* attacker.send(enc(data(1, 0, pattern(8, 22)), windowUpdate(1, 0, 100), windowUpdate(1, Flags.RST, 0)))
        yield* expectPong(attacker, 99)
        assert.deepStrictEqual(
          attacker.frames().slice(seen).map(summary),
          [{ type: FrameType.Ping, flags: Flags.ACK, streamId: 0, length: 99 }],
          "nothing but the pong"
        )
        attacker.socket.end()
        yield* attacker.closed(OUTCOME_BOUND)
        yield* fixture.verify
      }).pipe(quiet),
    TEST_TIMEOUT
  )

  it.live(
    "SYN flood: 1000 SYNs in one write against maxStreams 64 → each id gets exactly one ACK or RST, at most 64 backend connections",
    () =>
      Effect.gen(function* () {
        const maxStreams = 64
        const fixture = yield* setup({ session: { maxStreams } })
        const attacker = yield* fixture.attacker()
        const ids = Array.from({ length: 1000 }, (_, i) => 2 * i + 1)
        yield* attacker.send(enc(...ids.map((id) => windowUpdate(id, Flags.SYN, 0))))
        const answers = yield* attacker.until(
          "an ACK or RST for every SYN",
          () => {
            const byId = new Map<number, Array<string>>()
            for (const f of attacker.frames()) {
              if (f.streamId === 0) continue
              const kind = (f.flags & Flags.RST) !== 0 ? "RST" : (f.flags & Flags.ACK) !== 0 ? "ACK" : undefined
              if (kind === undefined) continue
              byId.set(f.streamId, [...(byId.get(f.streamId) ?? []), kind])
            }
            return byId.size === ids.length ? byId : undefined
          },
          OUTCOME_BOUND
        )
        const acked = ids.filter((id) => answers.get(id)!.includes("ACK"))
        for (const id of ids) assert.strictEqual(answers.get(id)!.length, 1, `stream ${id}: ${answers.get(id)}`)
        assert.isAtLeast(acked.length, 1)
        assert.isAtMost(acked.length, maxStreams)
        yield* note(`SYN flood: ${acked.length} of ${ids.length} SYNs accepted, the rest reset`)
        // The refused ones are refused without ever reaching the backend.
        yield* eventually(
          "one backend connection per accepted stream",
          () => fixture.backend.open() === fixture.baseline.backendOpen + acked.length,
          SETTLE_BOUND,
          () => `(open ${fixture.backend.open()}, acked ${acked.length})`
        )
        assert.isAtMost(fixture.backend.accepted(), fixture.baseline.backendOpen + maxStreams)
        yield* expectPong(attacker, 5)
        assert.isFalse(attacker.frames().some((f) => f.type === FrameType.GoAway))
        // The attacker vanishes (RST): every accepted stream and its backend connection is released.
        attacker.socket.resetAndDestroy()
        yield* fixture.verify
      }).pipe(quiet),
    TEST_TIMEOUT
  )
})

describe("HostileServer: abuse", () => {
  it.live(
    "ping flood within a raised budget: 20k pings answered with 20k pongs in order while the healthy session keeps its latency",
    () =>
      Effect.gen(function* () {
        // The ping budget is lifted to look at ordering and latency (Floods.test.ts trips it).
        const fixture = yield* setup({ session: { maxPingsPerSecond: 1_000_000 } })
        const attacker = yield* fixture.attacker()
        const count = 20_000
        const per = 1000
        for (let i = 0; i < count; i += per) {
          yield* attacker.send(enc(...Array.from({ length: per }, (_, j) => ping(Flags.SYN, i + j + 1))))
        }
        yield* attacker.until(`${count} pongs`, () => (attacker.frames().length >= count ? true : undefined), 10_000)
        const frames = attacker.frames()
        for (let i = 0; i < count; i++) {
          const f = frames[i]!
          if (f.type !== FrameType.Ping || f.flags !== Flags.ACK || f.length !== i + 1) {
            assert.fail(`frame ${i} is ${describeFrame(f)}, expected PING[ACK](0, ${i + 1})`)
          }
        }
        attacker.socket.end()
        yield* attacker.closed(OUTCOME_BOUND)
        yield* fixture.verify
      }).pipe(quiet),
    TEST_TIMEOUT
  )

  it.live(
    "ping flood from an attacker that never reads its pongs (ping budget lifted): the control backlog budget closes its session, memory stays bounded, others unaffected",
    () =>
      Effect.gen(function* () {
        const backlog = 4096
        const fixture = yield* setup({ session: { maxPingsPerSecond: 1_000_000_000, maxControlBacklog: backlog } })
        const attacker = yield* fixture.attacker({ paused: true })
        const before = yield* retainedBytes
        const chunk = enc(...Array.from({ length: 1000 }, (_, j) => ping(Flags.SYN, j + 1)))
        const CAP = 64 * 1024 * 1024
        const started = Date.now()
        let written = 0
        // Bounded by the byte cap and by 8 s; ends once the server has dropped the session (its
        // socket then reads and discards, so the writes alone would not stall).
        while (written < CAP && Date.now() - started < 8_000 && fixture.server.stats().sessions > 1) {
          const done = yield* attacker.send(chunk).pipe(Effect.timeoutOption(500))
          if (done._tag === "None") continue
          written += chunk.length
        }
        yield* eventually("the flooder's session closed", () => fixture.server.stats().sessions === 1, OUTCOME_BOUND)
        const growth = (yield* retainedBytes) - before
        yield* note(`unread ping flood: session closed after ${written} bytes; live memory +${growth} bytes`)
        // What the server held for this session: the control backlog (48 KiB here), the batch
        // carrying it and one read (256 KiB); everything else sat in kernel buffers.
        assert.isAtMost(growth, 8 * 1024 * 1024, `live memory grew by ${growth} bytes after ${written} flood bytes`)
        // Reading again: valid yamux (pongs in order), then the GO_AWAY(1) that says why.
        attacker.socket.resume()
        yield* attacker.closed(OUTCOME_BOUND)
        assert.isUndefined(attacker.badFrames(), "the server writes valid yamux")
        const frames = attacker.frames()
        assert.deepStrictEqual(summary(frames.at(-1)!), GO_AWAY_1, attacker.describe())
        frames.slice(0, -1).forEach((f, i) => {
          if (f.type !== FrameType.Ping || f.flags !== Flags.ACK || f.length !== (i % 1000) + 1) {
            assert.fail(`frame ${i} is ${describeFrame(f)}, expected a pong of ${(i % 1000) + 1}`)
          }
        })
        yield* fixture.verify
      }).pipe(quiet),
    TEST_TIMEOUT
  )

  it.live(
    "1-byte writes: SYN, DATA, PING and DATA|FIN written one byte at a time are decoded and echoed byte-exact",
    () =>
      Effect.gen(function* () {
        const fixture = yield* setup()
        const attacker = yield* fixture.attacker()
        const payload = pattern(40, 31)
        const tail = pattern(3, 32)
        const wire = enc(
          windowUpdate(1, Flags.SYN, 0),
          data(1, 0, payload),
          ping(Flags.SYN, 4242),
          data(1, Flags.FIN, tail)
        )
        for (let i = 0; i < wire.length; i++) yield* attacker.send(wire.subarray(i, i + 1))
        yield* attacker.until(
          "FIN of stream 1",
          () => (hasFlag(attacker, 1, Flags.FIN) ? true : undefined),
          OUTCOME_BOUND
        )
        assert.isTrue(
          attacker.frames().some((f) => f.type === FrameType.Ping && f.flags === Flags.ACK && f.length === 4242)
        )
        assert.ok(sameBytes(streamBytes(attacker, 1), concatBytes([payload, tail])))
        // And a violation split the same way is still caught at its header.
        const sentAt = Date.now()
        const bad = rawHeader({ version: 3, type: 0, streamId: 1 })
        for (let i = 0; i < bad.length; i++) yield* attacker.send(bad.subarray(i, i + 1))
        yield* expectGoAwayAndClose(attacker, sentAt)
        yield* fixture.verify
      }).pipe(quiet),
    TEST_TIMEOUT
  )

  it.live(
    "slow peers (1 byte every 50 ms) neither block the server nor hold more than their session slots",
    () =>
      Effect.gen(function* () {
        // The healthy link plus three slow peers fill the four session slots.
        const fixture = yield* setup({ maxSessions: 4 })
        const payload = pattern(4, 41)
        const wire = enc(windowUpdate(1, Flags.SYN, 0), data(1, 0, payload))
        const slow = yield* Effect.forEach([0, 1, 2], () => fixture.attacker())
        yield* eventually("three slow sessions admitted", () => fixture.server.stats().sessions === 4, OUTCOME_BOUND)
        const roundsBefore = fixture.healthy.rounds()
        const trickle = (attacker: Probe) =>
          Effect.gen(function* () {
            for (let i = 0; i < wire.length; i++) {
              yield* attacker.send(wire.subarray(i, i + 1))
              yield* Effect.sleep(50)
            }
          })
        const trickling = yield* Effect.forkChild(Effect.forEach(slow, trickle, { concurrency: "unbounded" }))
        // A fourth slow peer finds no slot: refused at once (reset), counted.
        const extra = yield* fixture.attacker()
        const refused = yield* extra.closed(OUTCOME_BOUND)
        assert.strictEqual(refused.kind, "error", `the link beyond maxSessions is reset ${extra.describe()}`)
        assert.strictEqual(fixture.server.stats().refusedLinks, 1)
        yield* Fiber.join(trickling)
        const roundsDuring = fixture.healthy.rounds() - roundsBefore
        // 28 bytes at 50 ms each: ~1.4 s during which the healthy clients kept going.
        assert.isAtLeast(roundsDuring, HEALTHY_CLIENTS * 5, "the healthy workload ran while the slow peers trickled")
        yield* note(
          `slow peers: ${roundsDuring} healthy round trips during the trickle, max RTT ${fixture.healthy.maxLatency().toFixed(1)} ms`
        )
        for (const attacker of slow) {
          yield* attacker.until(
            "the echo of the slow stream",
            () => (streamBytes(attacker, 1).length >= payload.length ? true : undefined),
            OUTCOME_BOUND
          )
          assert.ok(sameBytes(streamBytes(attacker, 1), payload))
          assert.isUndefined(attacker.end(), "a slow but valid peer is not dropped")
        }
        assert.strictEqual(fixture.server.stats().sessions, 4)
        for (const attacker of slow) attacker.socket.end()
        yield* Effect.forEach(slow, (attacker) => attacker.closed(OUTCOME_BOUND))
        yield* fixture.verify
      }).pipe(quiet),
    TEST_TIMEOUT
  )
})

// ---------------------------------------------------------------------------------------------
// Property: random frame sequences and random bytes

const u32 = fc.integer({ min: 0, max: MAX_UINT32 })

const oddId = fc.constantFrom(1, 3, 5, 7, 9)

/** A well-formed frame an honest dialler could send (on the dialler's odd ids). */
const plausibleFrame: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc
    .record({
      id: oddId,
      flags: fc.constantFrom(Flags.SYN, Flags.SYN, 0, Flags.FIN, Flags.RST, Flags.SYN | Flags.FIN),
      delta: fc.integer({ min: 0, max: 65_536 })
    })
    .map(({ delta, flags, id }) => encodeFrame(windowUpdate(id, flags, delta))),
  fc
    .record({
      id: oddId,
      flags: fc.constantFrom(0, 0, Flags.SYN, Flags.FIN, Flags.SYN | Flags.FIN),
      payload: fc.uint8Array({ maxLength: 48 })
    })
    .map(({ flags, id, payload }) => encodeFrame(data(id, flags, payload))),
  fc
    .record({ flags: fc.constantFrom(Flags.SYN, Flags.ACK), opaque: u32 })
    .map(({ flags, opaque }) => encodeFrame(ping(flags, opaque)))
)

/** A header with every field drawn near the validity boundaries (DATA followed by some payload). */
const nearlyValidFrame: fc.Arbitrary<Uint8Array> = fc
  .record({
    version: fc.constantFrom(0, 0, 0, 0, 0, 0, 1, 255),
    type: fc.constantFrom(0, 0, 1, 1, 2, 3, 4, 200),
    flags: fc.oneof(
      fc.integer({ min: 0, max: 15 }),
      fc.integer({ min: 0, max: 15 }),
      fc.integer({ min: 0, max: 0xffff })
    ),
    streamId: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 12 }), u32),
    payload: fc.uint8Array({ maxLength: 48 }),
    honest: fc.boolean(),
    length: fc.oneof(fc.integer({ min: 0, max: 64 }), u32)
  })
  .map((r) => {
    const isData = r.type === FrameType.Data
    const length = isData && r.honest ? r.payload.length : r.length
    return concatBytes([
      rawHeader({ version: r.version, type: r.type, flags: r.flags, streamId: r.streamId, length }),
      isData ? r.payload : new Uint8Array(0)
    ])
  })

/** One piece of attacker input: a plausible frame, a nearly valid one, or raw bytes. */
const piece: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: plausibleFrame },
  { weight: 3, arbitrary: nearlyValidFrame },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }) }
)

interface Script {
  readonly pieces: ReadonlyArray<Uint8Array>
  readonly leave: "fin" | "rst"
  readonly split: boolean
}

const script: fc.Arbitrary<Script> = fc.record({
  pieces: fc.array(piece, { minLength: 1, maxLength: 12 }),
  /** How the attacker leaves: half-close and wait for the server, or vanish with an RST. */
  leave: fc.constantFrom<"fin" | "rst">("fin", "fin", "rst"),
  /** Write everything at once, or piece by piece. */
  split: fc.boolean()
})

describe("HostileServer: property", () => {
  it.live(
    "random frame sequences and random bytes never disturb the healthy session, and leave nothing behind",
    () =>
      Effect.gen(function* () {
        const fixture = yield* setup()
        const services = yield* Effect.context<never>()
        const outcomes: Record<string, number> = {}
        const attack = (s: Script) =>
          Effect.scoped(
            Effect.gen(function* () {
              const attacker = yield* connectProbe(fixture.server.address.port, { frames: true })
              if (s.split) for (const p of s.pieces) yield* attacker.send(p)
              else yield* attacker.send(concatBytes(s.pieces))
              if (s.leave === "rst") {
                attacker.socket.resetAndDestroy()
                outcomes.rst = (outcomes.rst ?? 0) + 1
              } else {
                attacker.socket.end()
                // The server ends the link within the bound: GO_AWAY(1) then FIN for a violation, a
                // plain close after our FIN otherwise (or a reset when it was still writing). A
                // GO_AWAY(0) from the attacker makes the server drain and close with GO_AWAY(0).
                const end = yield* attacker.closed(OUTCOME_BOUND)
                assert.isUndefined(attacker.badFrames(), "the server writes valid yamux")
                const goAways = attacker.frames().filter((f) => f.type === FrameType.GoAway)
                const codes = goAways.map((f) => f.length)
                for (const f of goAways)
                  assert.deepStrictEqual({ ...summary(f), length: 0 }, { ...GO_AWAY_1, length: 0 })
                assert.includeMembers([0, 1], codes, `GO_AWAY codes ${codes}`)
                assert.strictEqual(new Set(codes).size, codes.length, `GO_AWAY codes ${codes}`)
                if (codes.includes(1)) {
                  assert.strictEqual(attacker.frames().at(-1)?.length, 1, "nothing after the GO_AWAY(1)")
                  assert.strictEqual(attacker.frames().at(-1)?.type, FrameType.GoAway, "nothing after the GO_AWAY(1)")
                }
                const key = `${codes.length > 0 ? `goaway${codes.join("+")}` : "close"}/${end.kind}`
                outcomes[key] = (outcomes[key] ?? 0) + 1
              }
              assert.deepStrictEqual(fixture.healthy.failures(), [])
              // Nothing of this attacker is left behind before the next one comes.
              yield* fixture.settled
            })
          )
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(script, (s) => Effect.runPromiseWith(services)(quiet(attack(s)))),
            {
              numRuns: Number(process.env.HARDENING_RUNS ?? 100),
              interruptAfterTimeLimit: 25_000,
              markInterruptAsFailure: true
            }
          )
        )
        yield* note(
          `property outcomes ${JSON.stringify(outcomes)}; healthy max RTT ${fixture.healthy.maxLatency().toFixed(1)} ms`
        )
        // Both kinds of ending were exercised, and some scripts were violations.
        assert.isAtLeast(outcomes["goaway1/eof"] ?? 0, 1, JSON.stringify(outcomes))
        assert.isAtLeast(outcomes.rst ?? 0, 1, JSON.stringify(outcomes))
        yield* fixture.verify
      }).pipe(quiet),
    40_000
  )
})
