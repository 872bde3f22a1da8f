/**
 * Helpers shared by the transport tests: deterministic random bytes, chunked writers, bounded
 * readers and a byte comparison that reports the first difference.
 *
 * Every loop here is bounded (by a byte budget or an iteration cap) so a broken transport fails a
 * test instead of hanging it.
 */
import { Effect } from "effect"
import type { Transport, TransportError } from "../../src/transport/Transport.ts"

/** A small seeded PRNG (xorshift32) so failures reproduce. */
export const rng = (seed: number) => {
  let state = seed >>> 0 || 0x9e3779b9
  return (): number => {
    state ^= state << 13
    state >>>= 0
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    return state
  }
}

/** `n` pseudo-random bytes from `seed`. */
export const randomBytes = (n: number, seed: number): Uint8Array => {
  const next = rng(seed)
  const out = new Uint8Array(n)
  let i = 0
  for (; i + 4 <= n; i += 4) {
    const v = next()
    out[i] = v
    out[i + 1] = v >>> 8
    out[i + 2] = v >>> 16
    out[i + 3] = v >>> 24
  }
  for (; i < n; i++) out[i] = next()
  return out
}

/** Index of the first differing byte, or -1 when equal (length included). */
export const firstDifference = (a: Uint8Array, b: Uint8Array): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return a.length === b.length ? -1 : n
}

/** Concatenates chunks. */
export const concatAll = (chunks: ReadonlyArray<Uint8Array>): Uint8Array => {
  let total = 0
  for (const c of chunks) total += c.length
  const out = new Uint8Array(total)
  let offset = 0
  for (const c of chunks) {
    out.set(c, offset)
    offset += c.length
  }
  return out
}

/**
 * Writes `bytes` in random pieces (1 byte to `maxChunk`), grouping 1–4 pieces per `write` call, so
 * both the single-chunk and the gathered path are exercised.
 */
export const writeChunked = (
  transport: Transport,
  bytes: Uint8Array,
  seed: number,
  maxChunk = 64 * 1024
): Effect.Effect<void, TransportError> =>
  Effect.gen(function* () {
    const next = rng(seed)
    let offset = 0
    while (offset < bytes.length) {
      const group: Array<Uint8Array> = []
      const pieces = 1 + (next() % 4)
      for (let i = 0; i < pieces && offset < bytes.length; i++) {
        // Mostly large pieces, sometimes tiny ones.
        const size = next() % 8 === 0 ? 1 + (next() % 16) : 1 + (next() % maxChunk)
        const end = Math.min(bytes.length, offset + size)
        group.push(bytes.subarray(offset, end))
        offset = end
      }
      yield* transport.write(group)
    }
  })

/** Reads until EOF and returns the bytes; fails the test if more than `maxBytes` arrive. */
export const readAll = (
  transport: Transport,
  maxBytes = 256 * 1024 * 1024
): Effect.Effect<Uint8Array, TransportError> =>
  Effect.gen(function* () {
    const chunks: Array<Uint8Array> = []
    let total = 0
    while (total <= maxBytes) {
      const chunk = yield* transport.read
      if (chunk === null) return concatAll(chunks)
      chunks.push(chunk)
      total += chunk.length
    }
    return yield* Effect.die(new Error(`readAll: more than ${maxBytes} bytes`))
  })

/** Reads exactly `n` bytes (fails on early EOF); returns them and any surplus from the last read. */
export const readExactly = (transport: Transport, n: number): Effect.Effect<Uint8Array, TransportError> =>
  Effect.gen(function* () {
    const chunks: Array<Uint8Array> = []
    let total = 0
    while (total < n) {
      const chunk = yield* transport.read
      if (chunk === null) return yield* Effect.die(new Error(`readExactly: EOF after ${total} of ${n} bytes`))
      chunks.push(chunk)
      total += chunk.length
    }
    return concatAll(chunks)
  })

/** Text helpers for small payloads. */
export const text = (s: string): Uint8Array => new TextEncoder().encode(s)
export const decode = (b: Uint8Array): string => new TextDecoder().decode(b)
