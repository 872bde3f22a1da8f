/**
 * Byte helpers shared by the transports. Plain functions, no Effect.
 *
 * @since 0.1.0
 */

/** Concatenates `chunks` (whose lengths add up to `total`) into one new array. */
export const concat = (chunks: ReadonlyArray<Uint8Array>, total: number): Uint8Array => {
  const out = new Uint8Array(total)
  let offset = 0
  for (let i = 0; i < chunks.length; i++) {
    out.set(chunks[i]!, offset)
    offset += chunks[i]!.length
  }
  return out
}
