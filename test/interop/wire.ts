/**
 * A passive frame log between a plait session and its transport, for asserting what actually
 * crossed the wire in interop tests (which flags rode on which frame, who ACKed, GO_AWAY codes).
 *
 * The parser here is deliberately independent of `src/protocol` (12-byte header, big-endian, payload
 * only for DATA) so a codec bug cannot hide itself. Only headers are kept, never payloads.
 */
import { Effect } from "effect"
import type { Transport } from "../../src/transport/Transport.ts"

/** One frame header seen on the wire. */
export interface WireFrame {
  /** `out`: plait sent it; `in`: plait received it. */
  readonly dir: "in" | "out"
  readonly type: number
  readonly flags: number
  readonly streamId: number
  readonly length: number
}

/** Frame types and flags as numbers (spec values), for readable assertions. */
export const T = { Data: 0, WindowUpdate: 1, Ping: 2, GoAway: 3 } as const
export const F = { SYN: 1, ACK: 2, FIN: 4, RST: 8 } as const

const parser = (dir: "in" | "out", frames: Array<WireFrame>) => {
  const header = new Uint8Array(12)
  let have = 0
  let skip = 0
  return (chunk: Uint8Array): void => {
    let offset = 0
    while (offset < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - offset)
        skip -= n
        offset += n
        continue
      }
      const n = Math.min(12 - have, chunk.length - offset)
      header.set(chunk.subarray(offset, offset + n), have)
      have += n
      offset += n
      if (have < 12) return
      have = 0
      const view = new DataView(header.buffer)
      const type = view.getUint8(1)
      const length = view.getUint32(8)
      frames.push({ dir, type, flags: view.getUint16(2), streamId: view.getUint32(4), length })
      if (type === T.Data) skip = length
    }
  }
}

/** Wraps `transport` so every frame header read or written is appended to `frames`. */
export const tapFrames = (
  transport: Transport
): { readonly transport: Transport; readonly frames: Array<WireFrame> } => {
  const frames: Array<WireFrame> = []
  const onIn = parser("in", frames)
  const onOut = parser("out", frames)
  return {
    frames,
    transport: {
      read: Effect.tap(transport.read, (chunk) =>
        Effect.sync(() => {
          if (chunk !== null) onIn(chunk)
        })
      ),
      write: (chunks) =>
        Effect.suspend(() => {
          for (const chunk of chunks) onOut(chunk)
          return transport.write(chunks)
        }),
      closeWrite: transport.closeWrite,
      close: transport.close,
      reset: transport.reset,
      remoteAddress: transport.remoteAddress
    }
  }
}
