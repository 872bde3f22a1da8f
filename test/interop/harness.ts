/**
 * The plait side of the interop checks, shared by `Libp2pYamux.test.ts` and the cross-runtime
 * scenario: deterministic payloads, an echo handler that speaks the same tiny in-band protocol as
 * the libp2p echo ({@link EchoMode}: first byte), and a round trip with half-close.
 *
 * Every loop is bounded by the bytes it was given or by the peer's FIN; callers put a timeout on
 * the whole.
 */
import { Effect, Fiber } from "effect"
import type { MuxStream } from "../../src/internal/session/Stream.ts"
import type { Session } from "../../src/session/Session.ts"
import { EchoMode } from "./libp2p.ts"

/** `n` pseudo-random bytes from `seed` (xorshift32), first byte set to `mode`. */
export const payload = (n: number, seed: number, mode: number): Uint8Array => {
  const out = new Uint8Array(n)
  let state = (seed * 0x9e3779b1) >>> 0 || 1
  for (let i = 0; i < n; i++) {
    state ^= state << 13
    state >>>= 0
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    out[i] = state & 0xff
  }
  if (n > 0) out[0] = mode
  return out
}

/** Index of the first differing byte, or -1 when equal (length included). */
export const firstDifference = (a: Uint8Array, b: Uint8Array): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return a.length === b.length ? -1 : n
}

/** A one-line description of a mismatch, or undefined when `got` equals `want`. */
export const mismatch = (label: string, got: Uint8Array, want: Uint8Array): string | undefined => {
  const at = firstDifference(got, want)
  return at < 0 ? undefined : `${label}: got ${got.length} bytes, want ${want.length}, first difference at ${at}`
}

/**
 * Echoes one plait stream by its first byte: {@link EchoMode.Streaming} writes each chunk back as
 * it arrives; {@link EchoMode.AfterEof} reads up to the peer's FIN, then writes everything back.
 * Either way it half-closes (FIN) after the last byte.
 */
export const echo = (stream: MuxStream) =>
  Effect.gen(function* () {
    let mode: number | undefined
    const parts: Array<Uint8Array> = []
    while (true) {
      const chunk = yield* stream.read
      if (chunk === null) break
      if (mode === undefined) mode = chunk[0]
      if (mode === EchoMode.AfterEof) parts.push(chunk)
      else yield* stream.write([chunk])
    }
    if (parts.length > 0) yield* stream.write(parts)
    yield* stream.closeWrite
  })

/** Opens a stream, writes `bytes` in `chunkSize` pieces while reading, half-closes, reads to FIN. */
export const roundTrip = (session: Session, bytes: Uint8Array, chunkSize = 48 * 1024) =>
  Effect.scoped(
    Effect.gen(function* () {
      const stream = yield* session.open
      const reader = yield* Effect.forkChild(stream.readAll)
      for (let offset = 0; offset < bytes.length; offset += chunkSize) {
        yield* stream.write([bytes.subarray(offset, offset + chunkSize)])
      }
      yield* stream.closeWrite
      return yield* Fiber.join(reader)
    })
  )
