import { Effect } from "effect"
import type { Transport } from "../../src/transport/Transport.ts"
export const tap = (t: Transport, log: (dir: string, f: string) => void): Transport => {
  const mk = (dir: string) => {
    let buf = new Uint8Array(0)
    const totals = new Map<number, number>()
    return (chunk: Uint8Array) => {
      const n = new Uint8Array(buf.length + chunk.length); n.set(buf); n.set(chunk, buf.length); buf = n
      while (buf.length >= 12) {
        const dv = new DataView(buf.buffer, buf.byteOffset)
        const type = buf[1]!, flags = dv.getUint16(2), id = dv.getUint32(4), len = dv.getUint32(8)
        const total = type === 0 ? 12 + len : 12
        if (buf.length < total) break
        if (type === 0) totals.set(id, (totals.get(id) ?? 0) + len)
        if (flags !== 0 || type !== 0 || process.env.ALL) log(dir, `type=${type} flags=${flags} id=${id} len=${len} dataTotal=${totals.get(id) ?? 0}`)
        buf = buf.subarray(total)
      }
    }
  }
  const r = mk("<-"), w = mk("->")
  return { ...t, read: Effect.tap(t.read, (c) => Effect.sync(() => { if (c) r(c) })), write: (cs) => Effect.suspend(() => { for (const c of cs) w(c); return t.write(cs) }) }
}
