/**
 * The writer's queue, driven directly: real streams on a fake StreamHost feed an Outbox, and every
 * batch is decoded with the protocol Decoder to assert the frames on the wire.
 *
 * Covered: control frames precede DATA; round-robin across streams (within and across batches), each
 * frame ≤ maxFrameSize; never beyond a stream's send window; FIN after the last byte (a WINDOW_UPDATE|FIN
 * right after the stream's last DATA frame, never DATA|FIN, which libp2p-yamux mishandles; alone when
 * nothing is queued); payloads > 2 KiB passed by reference, small ones copied; batches bounded by
 * maxBatchBytes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { Outbox } from "../../src/internal/session/Outbox.ts"
import {
  type CoreStream,
  MuxStreamImpl,
  type OutboundStream,
  type StreamHost
} from "../../src/internal/session/Stream.ts"
import type { StreamState } from "../../src/internal/session/StreamState.ts"
import { Flags, FrameType, HEADER_SIZE, INITIAL_WINDOW, MAX_UINT32 } from "../../src/protocol/Constants.ts"
import { Decoder, FrameError } from "../../src/protocol/Decoder.ts"
import type { Frame } from "../../src/protocol/Frame.ts"
import { defaults, type SessionConfig } from "../../src/session/Config.ts"

const KiB = 1024

/** A StreamHost that forwards to an Outbox and records the rest. */
class FakeHost implements StreamHost {
  readonly config: SessionConfig
  readonly outbox: Outbox
  readonly released: Array<number> = []
  readonly closingIds: Array<number> = []
  constructor(overrides: Partial<SessionConfig> = {}) {
    this.config = { ...defaults, writeBufferSize: MAX_UINT32, ...overrides }
    this.outbox = new Outbox(this.config.maxFrameSize, this.config.maxBatchBytes)
  }
  control(type: FrameType, flags: number, streamId: number, length: number): void {
    this.outbox.pushControl(type, flags, streamId, length)
  }
  ready(stream: OutboundStream): void {
    this.outbox.ready(stream)
  }
  release(stream: CoreStream): void {
    this.released.push(stream.id)
  }
  closing(stream: CoreStream): void {
    this.closingIds.push(stream.id)
  }
  buffered(): void {}
  consumed(): void {}
  canGrowWindow(): boolean {
    return false
  }
  failure() {
    return undefined
  }
  stream(id: number, sendWindow = INITIAL_WINDOW, state: StreamState = "Established"): MuxStreamImpl {
    return new MuxStreamImpl(this, id, (id & 1) === 1, state, INITIAL_WINDOW, sendWindow)
  }
}

const write = (s: MuxStreamImpl, ...chunks: Array<Uint8Array>) => Effect.runSync(s.write(chunks))

const pattern = (n: number, seed: number): Uint8Array => {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (i * 7 + seed * 13) & 0xff
  return out
}

const batchBytes = (batch: ReadonlyArray<Uint8Array>) => batch.reduce((n, c) => n + c.length, 0)

/** Decodes a batch chunk by chunk (as a peer would receive it); fails on leftovers or errors. */
const decode = (batch: ReadonlyArray<Uint8Array>): Array<Frame> => {
  const decoder = new Decoder()
  const frames: Array<Frame> = []
  for (const chunk of batch) {
    decoder.push(chunk)
    // Bounded: each frame consumes at least one header.
    for (let i = 0; i <= batchBytes(batch) / HEADER_SIZE; i++) {
      const next = decoder.next()
      if (next === undefined) break
      if (next instanceof FrameError) assert.fail(`batch does not decode: ${next.message}`)
      // Copy the payload: it may be a view of a chunk the test inspects later.
      frames.push({ ...next, payload: next.payload.slice() })
    }
  }
  assert.strictEqual(decoder.pendingBytes, 0, "a batch ends on a frame boundary")
  return frames
}

/** Takes batches until the outbox is empty (bounded), returning every frame. */
const drainAll = (outbox: Outbox, maxBatches = 1000): Array<Frame> => {
  const frames: Array<Frame> = []
  for (let i = 0; i < maxBatches && outbox.hasWork; i++) frames.push(...decode(outbox.takeBatch()))
  assert.isFalse(outbox.hasWork, "outbox drained within the bound")
  return frames
}

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

const dataOf = (frames: ReadonlyArray<Frame>, id: number) =>
  concat(frames.filter((f) => f.streamId === id && f.type === FrameType.Data).map((f) => f.payload))

const summary = (f: Frame) => ({ type: f.type, flags: f.flags, streamId: f.streamId, length: f.length })

describe("Outbox", () => {
  it("an empty outbox has no work and yields an empty batch", () => {
    const host = new FakeHost()
    assert.isFalse(host.outbox.hasWork)
    assert.deepStrictEqual(host.outbox.takeBatch(), [])
  })

  it("control frames precede DATA queued before them, in their own order", () => {
    const host = new FakeHost()
    const s = host.stream(1)
    write(s, pattern(100, 1))
    host.control(FrameType.WindowUpdate, Flags.ACK, 2, 1000)
    host.control(FrameType.Ping, Flags.ACK, 0, 77)
    host.control(FrameType.WindowUpdate, Flags.RST, 4, 0)
    const frames = decode(host.outbox.takeBatch())
    assert.deepStrictEqual(frames.map(summary), [
      { type: FrameType.WindowUpdate, flags: Flags.ACK, streamId: 2, length: 1000 },
      { type: FrameType.Ping, flags: Flags.ACK, streamId: 0, length: 77 },
      { type: FrameType.WindowUpdate, flags: Flags.RST, streamId: 4, length: 0 },
      { type: FrameType.Data, flags: 0, streamId: 1, length: 100 }
    ])
    assert.deepStrictEqual(frames[3]!.payload, pattern(100, 1))
    assert.isFalse(host.outbox.hasWork)
  })

  it("the control lane grows beyond its initial 16 headers without losing frames", () => {
    const host = new FakeHost()
    for (let i = 0; i < 100; i++) host.control(FrameType.Ping, Flags.SYN, 0, i)
    assert.strictEqual(host.outbox.controlBytes, 100 * HEADER_SIZE)
    const frames = decode(host.outbox.takeBatch())
    assert.deepStrictEqual(
      frames.map((f) => f.length),
      Array.from({ length: 100 }, (_, i) => i)
    )
    assert.strictEqual(host.outbox.controlBytes, 0)
  })

  it("round-robin: frames alternate between streams, each ≤ maxFrameSize", () => {
    const host = new FakeHost({ maxFrameSize: 4 * KiB, maxBatchBytes: 1024 * KiB })
    const a = host.stream(1)
    const b = host.stream(3)
    const c = host.stream(5)
    const pa = pattern(10 * KiB, 1)
    const pb = pattern(9 * KiB, 2)
    const pc = pattern(4 * KiB, 3)
    write(a, pa)
    write(b, pb)
    write(c, pc)
    const frames = decode(host.outbox.takeBatch())
    assert.deepStrictEqual(
      frames.map((f) => [f.streamId, f.length]),
      [
        [1, 4096],
        [3, 4096],
        [5, 4096],
        [1, 4096],
        [3, 4096],
        [1, 2048],
        [3, 1024]
      ]
    )
    for (const f of frames) assert.isAtMost(f.length, 4 * KiB)
    assert.deepStrictEqual(dataOf(frames, 1), pa)
    assert.deepStrictEqual(dataOf(frames, 3), pb)
    assert.deepStrictEqual(dataOf(frames, 5), pc)
    assert.isFalse(host.outbox.hasWork)
  })

  it("round-robin continues across batches: no stream goes twice before the others had a turn", () => {
    // Exactly two 1 KiB frames (with their headers) fit one batch.
    const host = new FakeHost({ maxFrameSize: 1 * KiB, maxBatchBytes: 2 * KiB + 2 * HEADER_SIZE })
    const streams = [host.stream(1), host.stream(3), host.stream(5)]
    for (const [i, s] of streams.entries()) write(s, pattern(3 * KiB, i))
    const order: Array<number> = []
    for (let i = 0; i < 20 && host.outbox.hasWork; i++) {
      const batch = host.outbox.takeBatch()
      assert.isAtMost(batchBytes(batch), 2 * KiB + 2 * HEADER_SIZE)
      for (const f of decode(batch)) {
        assert.strictEqual(f.length, 1 * KiB)
        order.push(f.streamId)
      }
    }
    assert.deepStrictEqual(order, [1, 3, 5, 1, 3, 5, 1, 3, 5])
  })

  it("a large single stream is cut into maxFrameSize frames in byte order", () => {
    const host = new FakeHost()
    const s = host.stream(1, MAX_UINT32 - 1)
    const payload = pattern(200 * KiB + 5, 9)
    write(s, payload.subarray(0, 70_000), payload.subarray(70_000))
    const frames = drainAll(host.outbox)
    assert.deepStrictEqual(
      frames.map((f) => f.length),
      [65536, 65536, 65536, 8 * KiB + 5]
    )
    assert.deepStrictEqual(dataOf(frames, 1), payload)
  })

  it("never sends beyond the stream's send window; credit resumes it", () => {
    const host = new FakeHost({ maxFrameSize: 4 * KiB })
    const s = host.stream(1, 5000)
    const payload = pattern(12_000, 4)
    write(s, payload)
    const first = drainAll(host.outbox)
    assert.deepStrictEqual(
      first.map((f) => f.length),
      [4096, 904]
    )
    assert.strictEqual(s.snapshot().sendWindow, 0)
    assert.strictEqual(s.snapshot().queued, 7000)
    assert.strictEqual(host.outbox.readyStreams, 0, "a blocked stream leaves the ring")

    // More writes while blocked do not make it sendable.
    write(s, pattern(10, 5))
    assert.isFalse(host.outbox.hasWork)

    assert.isTrue(s.onCredit(3000))
    const second = drainAll(host.outbox)
    assert.deepStrictEqual(
      second.map((f) => f.length),
      [3000]
    )
    assert.isTrue(s.onCredit(100_000))
    const third = drainAll(host.outbox)
    assert.deepStrictEqual(dataOf([...first, ...second, ...third], 1), concat([payload, pattern(10, 5)]))
    assert.strictEqual(s.snapshot().sendWindow, 5000 + 3000 + 100_000 - 12_010)
  })

  it("a stream with a zero window does not enter the ring at all", () => {
    const host = new FakeHost()
    const s = host.stream(1, 0)
    write(s, pattern(10, 1))
    assert.isFalse(host.outbox.hasWork)
    assert.deepStrictEqual(host.outbox.takeBatch(), [])
  })

  it("FIN follows the last DATA frame at once, on its own WINDOW_UPDATE (never DATA|FIN)", () => {
    const host = new FakeHost({ maxFrameSize: 4 * KiB })
    const s = host.stream(1)
    write(s, pattern(10_000, 2))
    s.finish()
    assert.deepStrictEqual(host.closingIds, [1])
    const frames = drainAll(host.outbox)
    assert.deepStrictEqual(frames.map(summary), [
      { type: FrameType.Data, flags: 0, streamId: 1, length: 4096 },
      { type: FrameType.Data, flags: 0, streamId: 1, length: 4096 },
      { type: FrameType.Data, flags: 0, streamId: 1, length: 1808 },
      { type: FrameType.WindowUpdate, flags: Flags.FIN, streamId: 1, length: 0 }
    ])
    assert.isFalse(s.snapshot().finPending)
    assert.strictEqual(s.state, "LocalClosed")
  })

  it("FIN of several streams: each right after its own last DATA frame, round-robin kept", () => {
    const host = new FakeHost({ maxFrameSize: 1 * KiB })
    const a = host.stream(1)
    const b = host.stream(3)
    write(a, pattern(2 * KiB, 1))
    write(b, pattern(1 * KiB, 2))
    a.finish()
    b.finish()
    assert.deepStrictEqual(
      drainAll(host.outbox).map((f) => [f.streamId, f.type, f.flags, f.length]),
      [
        [1, FrameType.Data, 0, 1024],
        [3, FrameType.Data, 0, 1024],
        [3, FrameType.WindowUpdate, Flags.FIN, 0],
        [1, FrameType.Data, 0, 1024],
        [1, FrameType.WindowUpdate, Flags.FIN, 0]
      ]
    )
  })

  it("a FIN that does not fit the batch's budget waits for the next batch, still after the last byte", () => {
    // Budget for exactly one 1 KiB frame and its header: no room for the FIN's header.
    const host = new FakeHost({ maxFrameSize: 1 * KiB, maxBatchBytes: 1 * KiB + HEADER_SIZE })
    const s = host.stream(1)
    write(s, pattern(1 * KiB, 1))
    s.finish()
    const first = decode(host.outbox.takeBatch())
    assert.deepStrictEqual(first.map(summary), [{ type: FrameType.Data, flags: 0, streamId: 1, length: 1024 }])
    assert.isTrue(s.snapshot().finPending)
    const second = decode(host.outbox.takeBatch())
    assert.deepStrictEqual(second.map(summary), [
      { type: FrameType.WindowUpdate, flags: Flags.FIN, streamId: 1, length: 0 }
    ])
    assert.isFalse(host.outbox.hasWork)
  })

  it("FIN with nothing queued is a WINDOW_UPDATE|FIN with zero delta", () => {
    const host = new FakeHost()
    const s = host.stream(2)
    s.finish()
    const frames = drainAll(host.outbox)
    assert.deepStrictEqual(frames.map(summary), [
      { type: FrameType.WindowUpdate, flags: Flags.FIN, streamId: 2, length: 0 }
    ])
    // A second closeWrite sends nothing more.
    s.finish()
    assert.isFalse(host.outbox.hasWork)
  })

  it("FIN waits behind bytes blocked by the window, and goes right after the last of them", () => {
    const host = new FakeHost({ maxFrameSize: 4 * KiB })
    const s = host.stream(1, 1000)
    write(s, pattern(3000, 3))
    s.finish()
    const first = drainAll(host.outbox)
    assert.deepStrictEqual(first.map(summary), [{ type: FrameType.Data, flags: 0, streamId: 1, length: 1000 }])
    assert.isTrue(s.snapshot().finPending)
    assert.isTrue(s.onCredit(1500))
    const second = drainAll(host.outbox)
    assert.deepStrictEqual(second.map(summary), [{ type: FrameType.Data, flags: 0, streamId: 1, length: 1500 }])
    assert.isTrue(s.onCredit(10_000))
    const third = drainAll(host.outbox)
    assert.deepStrictEqual(third.map(summary), [
      { type: FrameType.Data, flags: 0, streamId: 1, length: 500 },
      { type: FrameType.WindowUpdate, flags: Flags.FIN, streamId: 1, length: 0 }
    ])
    assert.deepStrictEqual(dataOf([...first, ...second, ...third], 1), pattern(3000, 3))
  })

  it("FIN after the peer's FIN closes the stream and releases it", () => {
    const host = new FakeHost()
    const s = host.stream(1, INITIAL_WINDOW, "RemoteClosed")
    write(s, pattern(10, 1))
    s.finish()
    const frames = drainAll(host.outbox)
    assert.deepStrictEqual(frames.map(summary), [
      { type: FrameType.Data, flags: 0, streamId: 1, length: 10 },
      { type: FrameType.WindowUpdate, flags: Flags.FIN, streamId: 1, length: 0 }
    ])
    assert.strictEqual(s.state, "Closed")
    assert.deepStrictEqual(host.released, [1])
  })

  it("after the peer's FIN, bytes blocked by the window still go out, then the FIN; only then is the stream released", () => {
    const host = new FakeHost()
    const s = host.stream(1, 1000, "RemoteClosed")
    write(s, pattern(3000, 2))
    s.finish()
    assert.deepStrictEqual(drainAll(host.outbox).map(summary), [
      { type: FrameType.Data, flags: 0, streamId: 1, length: 1000 }
    ])
    assert.deepStrictEqual(host.released, [], "still waiting for credit")
    assert.isTrue(s.onCredit(5000))
    assert.deepStrictEqual(drainAll(host.outbox).map(summary), [
      { type: FrameType.Data, flags: 0, streamId: 1, length: 2000 },
      { type: FrameType.WindowUpdate, flags: Flags.FIN, streamId: 1, length: 0 }
    ])
    assert.strictEqual(s.state, "Closed")
    assert.deepStrictEqual(host.released, [1])
  })

  it("a reset stream's queued bytes are dropped; only the RST goes out", () => {
    const host = new FakeHost()
    const a = host.stream(1)
    const b = host.stream(3)
    write(a, pattern(5000, 1))
    write(b, pattern(10, 2))
    a.resetNow(false)
    const frames = drainAll(host.outbox)
    assert.deepStrictEqual(frames.map(summary), [
      { type: FrameType.WindowUpdate, flags: Flags.RST, streamId: 1, length: 0 },
      { type: FrameType.Data, flags: 0, streamId: 3, length: 10 }
    ])
  })

  it("payloads above 2 KiB are passed by reference, small ones copied beside their header", () => {
    const host = new FakeHost()
    const small = host.stream(1)
    const large = host.stream(3)
    const threshold = host.stream(5)
    const smallPayload = pattern(100, 1)
    const largePayload = pattern(4096, 2)
    const exactPayload = pattern(2048, 3)
    write(small, smallPayload)
    write(large, largePayload)
    write(threshold, exactPayload)
    const batch = host.outbox.takeBatch()
    const byRef = batch.filter((c) => c.buffer === largePayload.buffer)
    assert.strictEqual(byRef.length, 1, "the large payload is one chunk of the batch")
    assert.strictEqual(byRef[0], largePayload, "the very same view, not a copy")
    assert.isFalse(
      batch.some((c) => c.buffer === smallPayload.buffer || c.buffer === exactPayload.buffer),
      "payloads ≤ 2 KiB are copied"
    )
    // Headers and small payloads share one arena: the batch is [arena part, large, arena part].
    assert.strictEqual(batch.length, 3)
    assert.strictEqual(batch[0]!.buffer, batch[2]!.buffer)
    const frames = decode(batch)
    assert.deepStrictEqual(dataOf(frames, 1), smallPayload)
    assert.deepStrictEqual(dataOf(frames, 3), largePayload)
    assert.deepStrictEqual(dataOf(frames, 5), exactPayload)
  })

  it("a large chunk cut at frame size is sent as views of the same buffer", () => {
    const host = new FakeHost({ maxFrameSize: 16 * KiB })
    const s = host.stream(1)
    const payload = pattern(40 * KiB, 6)
    write(s, payload)
    const batch = host.outbox.takeBatch()
    const views = batch.filter((c) => c.buffer === payload.buffer)
    assert.deepStrictEqual(
      views.map((v) => [v.byteOffset, v.length]),
      [
        [0, 16 * KiB],
        [16 * KiB, 16 * KiB],
        [32 * KiB, 8 * KiB]
      ]
    )
    assert.deepStrictEqual(dataOf(decode(batch), 1), payload)
  })

  it("a small tail of a large chunk is copied", () => {
    const host = new FakeHost({ maxFrameSize: 4 * KiB })
    const s = host.stream(1)
    const payload = pattern(4 * KiB + 100, 7)
    write(s, payload)
    const batch = host.outbox.takeBatch()
    const views = batch.filter((c) => c.buffer === payload.buffer)
    assert.deepStrictEqual(
      views.map((v) => [v.byteOffset, v.length]),
      [[0, 4 * KiB]]
    )
    assert.deepStrictEqual(dataOf(decode(batch), 1), payload)
  })

  it("many small writes of one stream are gathered into one frame", () => {
    const host = new FakeHost()
    const s = host.stream(1)
    const parts = Array.from({ length: 50 }, (_, i) => pattern(10, i))
    for (const p of parts) write(s, p)
    const batch = host.outbox.takeBatch()
    assert.strictEqual(batch.length, 1, "one arena chunk")
    const frames = decode(batch)
    assert.deepStrictEqual(frames.map(summary), [{ type: FrameType.Data, flags: 0, streamId: 1, length: 500 }])
    assert.deepStrictEqual(frames[0]!.payload, concat(parts))
  })

  it("a batch's DATA respects maxBatchBytes; the rest follows in later batches", () => {
    const maxBatchBytes = 64 * KiB
    const host = new FakeHost({ maxFrameSize: 16 * KiB, maxBatchBytes })
    const streams = [host.stream(1), host.stream(3), host.stream(5)]
    const payloads = streams.map((_, i) => pattern(100 * KiB + i, i))
    for (const [i, s] of streams.entries()) write(s, payloads[i]!)
    const frames: Array<Frame> = []
    let batches = 0
    for (; batches < 100 && host.outbox.hasWork; batches++) {
      const batch = host.outbox.takeBatch()
      assert.isAtMost(batchBytes(batch), maxBatchBytes, `batch ${batches}`)
      frames.push(...decode(batch))
    }
    assert.isFalse(host.outbox.hasWork)
    // 300 KiB of payload in 64 KiB batches: at least five batches.
    assert.isAtLeast(batches, 5)
    for (const f of frames) assert.isAtMost(f.length, 16 * KiB)
    for (const [i, s] of streams.entries()) assert.deepStrictEqual(dataOf(frames, s.id), payloads[i]!)
  })

  it("regression: a full batch is exactly maxBatchBytes, not one frame header more", () => {
    const host = new FakeHost({ maxFrameSize: 16 * KiB, maxBatchBytes: 64 * KiB })
    const s = host.stream(1)
    write(s, pattern(100 * KiB, 1))
    const batch = host.outbox.takeBatch()
    assert.strictEqual(batchBytes(batch), 64 * KiB)
    // Three full frames, then the fourth cut so that its header fits too.
    assert.deepStrictEqual(
      decode(batch).map((f) => f.length),
      [16 * KiB, 16 * KiB, 16 * KiB, 16 * KiB - 4 * HEADER_SIZE]
    )
  })

  it("control frames are not held back by a full data budget", () => {
    const host = new FakeHost({ maxFrameSize: 16 * KiB, maxBatchBytes: 16 * KiB })
    const s = host.stream(1)
    write(s, pattern(200 * KiB, 1))
    decode(host.outbox.takeBatch())
    host.control(FrameType.Ping, Flags.ACK, 0, 5)
    const frames = decode(host.outbox.takeBatch())
    assert.deepStrictEqual(summary(frames[0]!), { type: FrameType.Ping, flags: Flags.ACK, streamId: 0, length: 5 })
    assert.strictEqual(frames[1]!.type, FrameType.Data)
  })

  it("clear drops everything and the streams can be queued again", () => {
    const host = new FakeHost()
    const s = host.stream(1)
    write(s, pattern(10, 1))
    host.control(FrameType.Ping, Flags.SYN, 0, 1)
    host.outbox.clear()
    assert.isFalse(host.outbox.hasWork)
    assert.isFalse(s.snapshot().inReady)
    host.outbox.ready(s)
    assert.deepStrictEqual(drainAll(host.outbox).map(summary), [
      { type: FrameType.Data, flags: 0, streamId: 1, length: 10 }
    ])
  })

  it("ready is idempotent: a stream sits in the ring once", () => {
    const host = new FakeHost()
    const s = host.stream(1)
    write(s, pattern(10, 1))
    write(s, pattern(10, 2))
    host.outbox.ready(s)
    assert.strictEqual(host.outbox.readyStreams, 1)
  })

  it.effect("pushControl and ready wake the writer's signal", () =>
    Effect.gen(function* () {
      const host = new FakeHost()
      const waiting = yield* Effect.forkChild(host.outbox.signal.wait)
      yield* Effect.yieldNow
      assert.strictEqual(host.outbox.signal.size, 1)
      host.control(FrameType.Ping, Flags.SYN, 0, 1)
      yield* Fiber.join(waiting)
      assert.strictEqual(host.outbox.signal.size, 0)
    })
  )
})
