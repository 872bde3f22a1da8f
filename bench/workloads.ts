/**
 * The load generator behind `npm start` (the demo) and `npm run bench`: plain callback `node:net`
 * code, not Effect — it is a measuring instrument, not the product, and it must stay cheaper than
 * what it measures. It runs unchanged on Node, Bun and Deno.
 *
 * Every workload talks to an echo service (directly, or through a proxy) and checks every byte it
 * gets back against what it sent. Payloads are distinct per client: each client draws its bytes from
 * its own seeded pseudo-random block, and request/response payloads also carry the client id and a
 * sequence number, so bytes crossing between streams, lost, duplicated or reordered are detected.
 *
 * Workloads:
 * - {@link runBulk}: N streams each send M bytes and read the echo; goodput in MB/s.
 * - {@link runReqResp}: C clients each write a payload, wait for its whole echo, repeat; req/s and
 *   latency percentiles.
 * - {@link runConnRate}: W workers open a connection, echo 64 B, close (FIN both ways), repeat.
 * - {@link runIdle}: open K connections, echo a few bytes on each, hold them (the caller measures
 *   memory meanwhile), echo again, close.
 * - {@link runHol}: request/response latency while bulk streams saturate the same path.
 * - {@link runMixed}: the demo's traffic: clients of random message sizes that reconnect now and then.
 *
 * A failed check never throws out of a workload: it is counted in `errors` (with the first few
 * messages kept) and the workload carries on or winds down; callers decide what an error means.
 *
 * @since 0.1.0
 */
import * as net from "node:net"
import process from "node:process"

/** Where to connect. */
export interface Target {
  readonly host: string
  readonly port: number
}

/** Live counters a caller may watch while a workload runs (the demo's progress line). */
export interface Progress {
  /** Connections open now. */
  connected: number
  /** Connections opened since start. */
  opened: number
  /** Bytes echoed back and verified. */
  verifiedBytes: number
  /** Completed exchanges (request/response, connection cycles). */
  requests: number
  errors: number
}

/** A fresh set of zeroed counters. */
export const makeProgress = (): Progress => ({ connected: 0, opened: 0, verifiedBytes: 0, requests: 0, errors: 0 })

/** Latency percentiles in milliseconds. */
export interface Latency {
  readonly count: number
  readonly mean: number
  readonly p50: number
  readonly p99: number
  readonly p999: number
  readonly max: number
}

/** What every workload reports. */
export interface BaseResult {
  readonly workload: string
  /** Measured wall time in seconds (after warm-up). */
  readonly seconds: number
  /** Bytes echoed back and verified byte-exact (whole run, warm-up included). */
  readonly verifiedBytes: number
  readonly errors: number
  /** The first few error messages. */
  readonly errorSamples: ReadonlyArray<string>
}

// ---------------------------------------------------------------------------------------------
// Payloads

/** A small seeded PRNG (xorshift32). */
export const rng = (seed: number): (() => number) => {
  let state = seed >>> 0 || 0x9e3779b9
  return () => {
    state ^= state << 13
    state >>>= 0
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    return state
  }
}

const randomBuffer = (n: number, seed: number): Buffer => {
  const words = new Uint32Array(Math.ceil(n / 4))
  const next = rng(seed)
  for (let i = 0; i < words.length; i++) words[i] = next()
  return Buffer.from(words.buffer, 0, n)
}

/**
 * A client's byte stream: an endless pseudo-random sequence with an odd period a little above
 * `minPeriod` (default 256 KiB), different for every seed. `slice(offset, n)` is free (a view); `verify` compares with memcmp.
 */
export class Pattern {
  readonly period: number
  private readonly doubled: Buffer

  constructor(seed: number, minPeriod = 256 * 1024) {
    const period = minPeriod + 2 * (seed % 997) + 1
    this.period = period
    const block = randomBuffer(period, seed * 2_654_435_761 + 1)
    this.doubled = Buffer.concat([block, block])
  }

  /** The bytes at `[offset, offset + n)`; `n` must not exceed the period. */
  slice(offset: number, n: number): Buffer {
    const start = offset % this.period
    return this.doubled.subarray(start, start + n)
  }

  /** Whether `chunk` equals the stream's bytes at `offset`. */
  verify(chunk: Uint8Array, offset: number): boolean {
    let done = 0
    while (done < chunk.length) {
      const n = Math.min(this.period, chunk.length - done)
      if (!this.slice(offset + done, n).equals(chunk.subarray(done, done + n))) return false
      done += n
    }
    return true
  }
}

/** Index of the first differing byte (or the shorter length), for error messages. */
const firstDifference = (a: Uint8Array, b: Uint8Array): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return n
}

// ---------------------------------------------------------------------------------------------
// Statistics

/** A growable sample of latencies (ms). */
export class Samples {
  private data = new Float64Array(4096)
  private n = 0

  add(value: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2)
      bigger.set(this.data)
      this.data = bigger
    }
    this.data[this.n++] = value
  }

  get count(): number {
    return this.n
  }

  summary(): Latency {
    const n = this.n
    if (n === 0) return { count: 0, mean: 0, p50: 0, p99: 0, p999: 0, max: 0 }
    const sorted = this.data.slice(0, n).sort()
    let sum = 0
    for (let i = 0; i < n; i++) sum += sorted[i]!
    const at = (q: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!
    const round = (x: number) => Math.round(x * 1000) / 1000
    return {
      count: n,
      mean: round(sum / n),
      p50: round(at(0.5)),
      p99: round(at(0.99)),
      p999: round(at(0.999)),
      max: round(sorted[n - 1]!)
    }
  }
}

class Errors {
  count = 0
  readonly samples: Array<string> = []
  private readonly progress: Progress | undefined
  constructor(progress: Progress | undefined) {
    this.progress = progress
  }

  add(message: string): void {
    this.count++
    if (this.progress) this.progress.errors++
    if (this.samples.length < 5) this.samples.push(message)
  }
}

const now = (): number => performance.now()

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Runs `worker(i)` for `i < count`, at most `concurrency` at a time. */
const pool = async (count: number, concurrency: number, worker: (i: number) => Promise<void>): Promise<void> => {
  let next = 0
  const lane = async () => {
    while (next < count) await worker(next++)
  }
  await Promise.all(Array.from({ length: Math.min(count, concurrency) }, lane))
}

// ---------------------------------------------------------------------------------------------
// Connections

/** Connects with Nagle off; rejects on error or after `timeoutMs`. */
export const connect = (target: Target, timeoutMs = 10_000): Promise<net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`connect to ${target.host}:${target.port} timed out after ${timeoutMs} ms`))
    }, timeoutMs)
    const onError = (error: Error) => {
      clearTimeout(timer)
      socket.destroy()
      reject(error)
    }
    socket.once("error", onError)
    socket.once("connect", () => {
      clearTimeout(timer)
      socket.off("error", onError)
      socket.setNoDelay(true)
      resolve(socket)
    })
  })

/**
 * One connection to an echo service used for exchanges: write a payload, wait until exactly that
 * payload came back. A byte too many, a wrong byte, or the connection ending mid-exchange fails the
 * exchange; after a failure the connection is destroyed.
 */
export class EchoConn {
  private expected: Buffer | undefined
  private received = 0
  private resolve: (() => void) | undefined
  private reject: ((error: Error) => void) | undefined
  private failure: Error | undefined
  private ended = false
  private readonly closed: Promise<void>

  readonly socket: net.Socket
  private readonly progress: Progress | undefined

  constructor(socket: net.Socket, progress?: Progress) {
    this.socket = socket
    this.progress = progress
    socket.on("data", (chunk: Buffer) => this.onData(chunk))
    socket.on("end", () => {
      this.ended = true
      if (this.expected !== undefined) this.fail(new Error(`peer closed after ${this.received} bytes of an echo`))
    })
    this.closed = new Promise((resolve) => {
      socket.on("close", () => {
        if (this.expected !== undefined) this.fail(new Error("connection closed during an exchange"))
        resolve()
      })
    })
    socket.on("error", (error) => this.fail(error))
  }

  /** Opens a connection for exchanges. */
  static async open(target: Target, progress?: Progress): Promise<EchoConn> {
    const socket = await connect(target)
    if (progress) {
      progress.connected++
      progress.opened++
      socket.once("close", () => progress.connected--)
    }
    return new EchoConn(socket, progress)
  }

  private fail(error: Error): void {
    this.failure ??= error
    const reject = this.reject
    this.expected = undefined
    this.resolve = this.reject = undefined
    this.socket.destroy()
    reject?.(error)
  }

  private onData(chunk: Buffer): void {
    const expected = this.expected
    if (expected === undefined) {
      this.fail(new Error(`${chunk.length} unexpected bytes between exchanges`))
      return
    }
    const end = this.received + chunk.length
    if (end > expected.length) {
      this.fail(new Error(`echo longer than the request: ${end} > ${expected.length} bytes`))
      return
    }
    const want = expected.subarray(this.received, end)
    if (!want.equals(chunk)) {
      const at = this.received + firstDifference(want, chunk)
      this.fail(new Error(`echo differs at byte ${at} of ${expected.length}`))
      return
    }
    this.received = end
    if (end === expected.length) {
      if (this.progress) this.progress.verifiedBytes += expected.length
      const resolve = this.resolve!
      this.expected = undefined
      this.resolve = this.reject = undefined
      resolve()
    }
  }

  /** Sends `payload` (not to be mutated until the promise settles) and waits for its exact echo. */
  exchange(payload: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure)
    if (this.expected !== undefined) return Promise.reject(new Error("exchange already in progress"))
    return new Promise((resolve, reject) => {
      this.expected = payload
      this.received = 0
      this.resolve = resolve
      this.reject = reject
      this.socket.write(payload)
    })
  }

  /**
   * Closes gracefully: sends FIN, expects the peer's FIN with no further bytes, resolves when the
   * socket closed; gives up (destroys) after `timeoutMs`. Rejects if the close was not clean.
   */
  async close(timeoutMs = 5_000): Promise<void> {
    if (this.failure) {
      this.socket.destroy()
      throw this.failure
    }
    this.socket.end()
    let timer: ReturnType<typeof setTimeout> | undefined
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs)
    })
    const outcome = await Promise.race([this.closed, timedOut])
    clearTimeout(timer)
    if (outcome === "timeout") {
      this.socket.destroy()
      throw new Error(`no FIN from the peer within ${timeoutMs} ms of ours`)
    }
    if (this.failure) throw this.failure
    if (!this.ended) throw new Error("connection closed without the peer's FIN")
  }

  /** Destroys the socket at once. */
  destroy(): void {
    this.socket.destroy()
  }
}

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** A request payload: client id and sequence number, then the client's pattern bytes. */
const makeRequest = (buffer: Buffer, pattern: Pattern, client: number, seq: number): Buffer => {
  pattern.slice(seq * 7919, buffer.length).copy(buffer)
  if (buffer.length >= 8) {
    buffer.writeUInt32LE(client >>> 0, 0)
    buffer.writeUInt32LE(seq >>> 0, 4)
  }
  return buffer
}

// ---------------------------------------------------------------------------------------------
// Bulk streaming

interface StreamOptions {
  readonly target: Target
  readonly pattern: Pattern
  /** Bytes to send; with `until`, a cap. */
  readonly bytes: number
  /** Stops sending (then FIN) once this returns true. */
  readonly until?: () => boolean
  readonly chunkSize: number
  readonly progress: Progress | undefined
  readonly errors: Errors
}

/** One bulk stream: sends, reads the echo concurrently, verifies every byte; resolves with bytes echoed. */
const bulkStream = (options: StreamOptions): Promise<number> =>
  connect(options.target).then(
    (socket) =>
      new Promise<number>((resolve) => {
        const { pattern, progress, errors } = options
        if (progress) {
          progress.connected++
          progress.opened++
        }
        let sent = 0
        let received = 0
        let failed = false
        let gotEnd = false
        const fail = (message: string) => {
          if (failed) return
          failed = true
          errors.add(message)
          socket.destroy()
        }
        const pump = () => {
          while (!failed) {
            if (sent >= options.bytes || options.until?.()) {
              socket.end()
              return
            }
            const n = Math.min(options.chunkSize, options.bytes - sent, pattern.period)
            const chunk = pattern.slice(sent, n)
            sent += n
            if (!socket.write(chunk)) return void socket.once("drain", pump)
          }
        }
        socket.on("data", (chunk: Buffer) => {
          if (failed) return
          if (received + chunk.length > sent)
            return fail(`bulk: echo ahead of what was sent (${received} + ${chunk.length} > ${sent})`)
          if (!pattern.verify(chunk, received))
            return fail(`bulk: echo differs in bytes ${received}..${received + chunk.length}`)
          received += chunk.length
          if (progress) progress.verifiedBytes += chunk.length
        })
        socket.on("end", () => {
          gotEnd = true
          if (received !== sent) fail(`bulk: echo ended after ${received} of ${sent} bytes`)
        })
        socket.on("error", (error) => fail(`bulk: ${error.message}`))
        socket.on("close", () => {
          if (progress) progress.connected--
          if (!failed && !gotEnd) fail("bulk: closed without FIN")
          resolve(received)
        })
        pump()
      }),
    (error: unknown) => {
      options.errors.add(`bulk: connect: ${describe(error)}`)
      return 0
    }
  )

/** Options of {@link runBulk}. */
export interface BulkOptions {
  readonly target: Target
  readonly streams: number
  readonly bytesPerStream: number
  /** Write size (default 64 KiB). */
  readonly chunkSize?: number
  readonly progress?: Progress
  /**
   * Timed bulk (the WAN rows): every stream sends until `warmupMs + durationMs` (`bytesPerStream` is
   * then only a cap), and `mbps` counts the bytes verified during `durationMs` after `warmupMs`.
   */
  readonly durationMs?: number
  readonly warmupMs?: number
}

/** Result of {@link runBulk}: `mbps` is bytes echoed (counted once) per second, in 10^6 bytes. */
export interface BulkResult extends BaseResult {
  readonly workload: "bulk"
  readonly streams: number
  readonly bytesPerStream: number
  readonly mbps: number
}

/** N streams at once, each sending M bytes (or, timed, until the window ends) and reading them back. */
export const runBulk = async (options: BulkOptions): Promise<BulkResult> => {
  const progress = options.progress ?? makeProgress()
  const errors = new Errors(progress)
  const start = now()
  const timed = options.durationMs !== undefined
  const from = start + (options.warmupMs ?? 0)
  const until = from + (options.durationMs ?? 0)
  // Timed: the verified-byte counter at the window's two ends.
  let atFrom = 0
  let atUntil = 0
  const timers = timed
    ? [
        setTimeout(() => (atFrom = progress.verifiedBytes), from - now()),
        setTimeout(() => (atUntil = progress.verifiedBytes), until - now())
      ]
    : []
  const stop = () => now() >= until
  const echoed = await Promise.all(
    Array.from({ length: options.streams }, (_, i) =>
      bulkStream({
        target: options.target,
        pattern: new Pattern(1000 + i),
        bytes: options.bytesPerStream,
        chunkSize: options.chunkSize ?? 64 * 1024,
        progress,
        errors,
        ...(timed ? { until: stop } : {})
      })
    )
  )
  for (const timer of timers) clearTimeout(timer)
  const elapsed = (now() - start) / 1000
  const verifiedBytes = echoed.reduce((a, b) => a + b, 0)
  const seconds = timed ? options.durationMs! / 1000 : elapsed
  return {
    workload: "bulk",
    seconds,
    verifiedBytes,
    errors: errors.count,
    errorSamples: errors.samples,
    streams: options.streams,
    bytesPerStream: options.bytesPerStream,
    mbps: (timed ? atUntil - atFrom : verifiedBytes) / seconds / 1e6
  }
}

// ---------------------------------------------------------------------------------------------
// Request/response

/** Options of {@link runReqResp}. */
export interface ReqRespOptions {
  readonly target: Target
  readonly clients: number
  /** Payload size (default 1024). */
  readonly size?: number
  readonly durationMs: number
  /** Exchanges in this first stretch are not counted (default 0). */
  readonly warmupMs?: number
  readonly progress?: Progress
  /** Stops early when it returns true (checked between exchanges). */
  readonly stop?: () => boolean
  /** Client ids start here (distinct payloads across concurrent workloads). */
  readonly firstClientId?: number
}

/** Result of {@link runReqResp}. */
export interface ReqRespResult extends BaseResult {
  readonly workload: "reqresp"
  readonly clients: number
  readonly size: number
  readonly requests: number
  readonly rps: number
  readonly latency: Latency
}

/**
 * C clients, each: write a payload, wait for its full echo, repeat. Latency counts every exchange
 * *started* in the measuring window, however late it ends (slow exchanges are not dropped); clients
 * start no exchange after the window.
 */
export const runReqResp = async (options: ReqRespOptions): Promise<ReqRespResult> => {
  const size = options.size ?? 1024
  const errors = new Errors(options.progress)
  const samples = new Samples()
  const warmupMs = options.warmupMs ?? 0
  const start = now()
  const measureFrom = start + warmupMs
  const deadline = measureFrom + options.durationMs
  let verifiedBytes = 0
  const client = async (i: number) => {
    const id = (options.firstClientId ?? 0) + i
    let conn: EchoConn
    try {
      conn = await EchoConn.open(options.target, options.progress)
    } catch (error) {
      return errors.add(`reqresp: connect: ${describe(error)}`)
    }
    const pattern = new Pattern(id + 1, Math.max(4096, 2 * size))
    const buffer = Buffer.allocUnsafe(size)
    let seq = 0
    try {
      while (now() < deadline && !options.stop?.()) {
        const payload = makeRequest(buffer, pattern, id, seq++)
        const t0 = now()
        await conn.exchange(payload)
        const t1 = now()
        verifiedBytes += size
        if (options.progress) options.progress.requests++
        if (t0 >= measureFrom) samples.add(t1 - t0)
      }
      await conn.close()
    } catch (error) {
      conn.destroy()
      errors.add(`reqresp: client ${id} request ${seq}: ${describe(error)}`)
    }
  }
  await Promise.all(Array.from({ length: options.clients }, (_, i) => client(i)))
  const seconds = Math.max(1e-9, (deadline - measureFrom) / 1000)
  const latency = samples.summary()
  return {
    workload: "reqresp",
    seconds,
    verifiedBytes,
    errors: errors.count,
    errorSamples: errors.samples,
    clients: options.clients,
    size,
    requests: latency.count,
    rps: latency.count / seconds,
    latency
  }
}

// ---------------------------------------------------------------------------------------------
// Connection rate

/** Options of {@link runConnRate}. */
export interface ConnRateOptions {
  readonly target: Target
  /** Connections in flight at once. */
  readonly workers: number
  readonly durationMs: number
  readonly warmupMs?: number
  /** Echoed bytes per connection (default 64). */
  readonly size?: number
  readonly progress?: Progress
}

/** Result of {@link runConnRate}: `latency` is the whole open–echo–close cycle. */
export interface ConnRateResult extends BaseResult {
  readonly workload: "connrate"
  readonly workers: number
  readonly connections: number
  readonly perSecond: number
  readonly latency: Latency
}

/** W workers, each: open, echo `size` bytes, close with FIN both ways, repeat. */
export const runConnRate = async (options: ConnRateOptions): Promise<ConnRateResult> => {
  const size = options.size ?? 64
  const errors = new Errors(options.progress)
  const samples = new Samples()
  const start = now()
  const measureFrom = start + (options.warmupMs ?? 0)
  const deadline = measureFrom + options.durationMs
  let verifiedBytes = 0
  const worker = async (w: number) => {
    const pattern = new Pattern(50_000 + w, 4096)
    let seq = 0
    let failures = 0
    while (now() < deadline && failures < 100) {
      const t0 = now()
      let conn: EchoConn | undefined
      try {
        conn = await EchoConn.open(options.target, options.progress)
        await conn.exchange(makeRequest(Buffer.allocUnsafe(size), pattern, w, seq++))
        await conn.close()
        const t1 = now()
        verifiedBytes += size
        if (options.progress) options.progress.requests++
        if (t0 >= measureFrom) samples.add(t1 - t0)
      } catch (error) {
        conn?.destroy()
        failures++
        errors.add(`connrate: worker ${w} connection ${seq}: ${describe(error)}`)
      }
    }
  }
  await Promise.all(Array.from({ length: options.workers }, (_, w) => worker(w)))
  const seconds = Math.max(1e-9, (deadline - measureFrom) / 1000)
  const latency = samples.summary()
  return {
    workload: "connrate",
    seconds,
    verifiedBytes,
    errors: errors.count,
    errorSamples: errors.samples,
    workers: options.workers,
    connections: latency.count,
    perSecond: latency.count / seconds,
    latency
  }
}

// ---------------------------------------------------------------------------------------------
// Idle connections

/** Options of {@link runIdle}. */
export interface IdleOptions {
  readonly target: Target
  readonly connections: number
  /** Connections being opened at once (default 200). */
  readonly concurrency?: number
  /** Pause between "all open" and `onHeld` so the processes settle (default 500 ms). */
  readonly settleMs?: number
  /** Called while every connection is open and verified; the connections stay open until it settles. */
  readonly onHeld?: () => Promise<void>
  readonly progress?: Progress
}

/** Result of {@link runIdle}. */
export interface IdleResult extends BaseResult {
  readonly workload: "idle"
  readonly connections: number
  /** Connections open and verified twice (before and after holding). */
  readonly held: number
  /** Seconds to open and verify all of them. */
  readonly openSeconds: number
  /** Opened connections per second while opening. */
  readonly openRate: number
}

/** Opens K connections, echoes 32 B on each, holds them for `onHeld`, echoes again, closes them. */
export const runIdle = async (options: IdleOptions): Promise<IdleResult> => {
  const errors = new Errors(options.progress)
  const concurrency = options.concurrency ?? 200
  const conns: Array<EchoConn | undefined> = new Array(options.connections)
  const pattern = new Pattern(777, 4096)
  let verifiedBytes = 0
  const ping = async (i: number, round: number) => {
    const conn = conns[i]
    if (conn === undefined) return
    try {
      await conn.exchange(makeRequest(Buffer.allocUnsafe(32), pattern, i, round * 1_000_003 + i))
      verifiedBytes += 32
    } catch (error) {
      conns[i] = undefined
      conn.destroy()
      errors.add(`idle: connection ${i} round ${round}: ${describe(error)}`)
    }
  }
  const start = now()
  await pool(options.connections, concurrency, async (i) => {
    try {
      conns[i] = await EchoConn.open(options.target, options.progress)
    } catch (error) {
      errors.add(`idle: connect ${i}: ${describe(error)}`)
      return
    }
    await ping(i, 0)
  })
  const openSeconds = (now() - start) / 1000
  await sleep(options.settleMs ?? 500)
  const heldFrom = now()
  if (options.onHeld) {
    try {
      await options.onHeld()
    } catch (error) {
      errors.add(`idle: while held: ${describe(error)}`)
    }
  }
  const seconds = (now() - heldFrom) / 1000
  await pool(options.connections, concurrency, (i) => ping(i, 1))
  let held = 0
  await pool(options.connections, concurrency, async (i) => {
    const conn = conns[i]
    if (conn === undefined) return
    try {
      await conn.close()
      held++
    } catch (error) {
      errors.add(`idle: close ${i}: ${describe(error)}`)
    }
  })
  return {
    workload: "idle",
    seconds,
    verifiedBytes,
    errors: errors.count,
    errorSamples: errors.samples,
    connections: options.connections,
    held,
    openSeconds,
    openRate: options.connections / openSeconds
  }
}

// ---------------------------------------------------------------------------------------------
// Head-of-line

/** Options of {@link runHol}. */
export interface HolOptions {
  readonly target: Target
  /** Request/response clients measured. */
  readonly clients: number
  /** Bulk streams saturating the path (default 1). */
  readonly bulkStreams?: number
  /** Request size (default 1024). */
  readonly size?: number
  readonly durationMs: number
  /** Lead time for the bulk streams to fill the pipes before latencies count (default 300 ms). */
  readonly warmupMs?: number
  readonly progress?: Progress
}

/** Result of {@link runHol}: small-request latency while `bulkMbps` flows alongside. */
export interface HolResult extends BaseResult {
  readonly workload: "hol"
  readonly clients: number
  readonly requests: number
  readonly rps: number
  readonly latency: Latency
  readonly bulkMbps: number
}

/** Small request/response clients measured while bulk streams run flat out over the same path. */
export const runHol = async (options: HolOptions): Promise<HolResult> => {
  const errors = new Errors(options.progress)
  const warmupMs = options.warmupMs ?? 300
  let stopBulk = false
  const start = now()
  const bulk = Promise.all(
    Array.from({ length: options.bulkStreams ?? 1 }, (_, i) =>
      bulkStream({
        target: options.target,
        pattern: new Pattern(9000 + i),
        bytes: Number.MAX_SAFE_INTEGER,
        until: () => stopBulk,
        chunkSize: 64 * 1024,
        progress: options.progress,
        errors
      })
    )
  )
  const small = await runReqResp({
    target: options.target,
    clients: options.clients,
    size: options.size ?? 1024,
    durationMs: options.durationMs,
    warmupMs,
    firstClientId: 100_000,
    ...(options.progress === undefined ? {} : { progress: options.progress })
  })
  stopBulk = true
  const bulkBytes = (await bulk).reduce((a, b) => a + b, 0)
  const bulkSeconds = (now() - start) / 1000
  return {
    workload: "hol",
    seconds: small.seconds,
    verifiedBytes: small.verifiedBytes + bulkBytes,
    errors: errors.count + small.errors,
    errorSamples: [...errors.samples, ...small.errorSamples].slice(0, 5),
    clients: options.clients,
    requests: small.requests,
    rps: small.rps,
    latency: small.latency,
    bulkMbps: bulkBytes / bulkSeconds / 1e6
  }
}

// ---------------------------------------------------------------------------------------------
// Mixed (the demo)

/** Options of {@link runMixed}. */
export interface MixedOptions {
  readonly target: Target
  readonly clients: number
  readonly durationMs: number
  /** Largest message (default 64 KiB); sizes are spread log-uniformly from 16 B. */
  readonly maxMessage?: number
  /** Clients start spread over this long (default 500 ms). */
  readonly rampMs?: number
  readonly progress?: Progress
}

/** Result of {@link runMixed}. */
export interface MixedResult extends BaseResult {
  readonly workload: "mixed"
  readonly clients: number
  /** TCP connections the clients opened (each client reconnects every few dozen messages). */
  readonly connections: number
  /** Connections that ended cleanly with every byte verified. */
  readonly completed: number
  readonly requests: number
  /** Per message (the first on each connection included). */
  readonly latency: Latency
  /** From starting the TCP connect to the first message's echo complete (includes opening the path). */
  readonly setup: Latency
  /** From our FIN to the connection closed (the peer's FIN seen). */
  readonly close: Latency
}

/**
 * The demo's traffic: each client exchanges messages of random size (16 B to `maxMessage`), each
 * echoed and verified, and closes and reopens its connection every 10–60 messages.
 */
export const runMixed = async (options: MixedOptions): Promise<MixedResult> => {
  const progress = options.progress ?? makeProgress()
  const errors = new Errors(progress)
  const samples = new Samples()
  const setupSamples = new Samples()
  const closeSamples = new Samples()
  const maxMessage = options.maxMessage ?? 64 * 1024
  const rampMs = options.rampMs ?? 500
  const start = now()
  const deadline = start + options.durationMs
  let connections = 0
  let completed = 0
  let verifiedBytes = 0
  const logMax = Math.log(maxMessage / 16)
  const client = async (id: number) => {
    await sleep((rampMs * id) / Math.max(1, options.clients))
    const random = rng(id * 7 + 3)
    const pattern = new Pattern(id + 1, maxMessage)
    const scratch = Buffer.allocUnsafe(maxMessage)
    let seq = 0
    let failures = 0
    while (now() < deadline && failures < 3) {
      let conn: EchoConn | undefined
      try {
        const opening = now()
        conn = await EchoConn.open(options.target, progress)
        connections++
        const messages = 10 + (random() % 51)
        for (let m = 0; m < messages && (m === 0 || now() < deadline); m++) {
          const size = Math.min(maxMessage, Math.round(16 * Math.exp((random() / 0x1_0000_0000) * logMax)))
          const payload = makeRequest(scratch.subarray(0, size), pattern, id, seq++)
          const t0 = now()
          await conn.exchange(payload)
          const t1 = now()
          samples.add(t1 - t0)
          if (m === 0) setupSamples.add(t1 - opening)
          verifiedBytes += size
          progress.requests++
        }
        const closing = now()
        await conn.close()
        closeSamples.add(now() - closing)
        completed++
      } catch (error) {
        conn?.destroy()
        failures++
        errors.add(`client ${id} message ${seq}: ${describe(error)}`)
      }
    }
  }
  await Promise.all(Array.from({ length: options.clients }, (_, i) => client(i)))
  const latency = samples.summary()
  return {
    workload: "mixed",
    seconds: (now() - start) / 1000,
    verifiedBytes,
    errors: errors.count,
    errorSamples: errors.samples,
    clients: options.clients,
    connections,
    completed,
    requests: latency.count,
    latency,
    setup: setupSamples.summary(),
    close: closeSamples.summary()
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers for callers

/** Parses `HOST:PORT` (IPv6 in brackets). */
export const parseTarget = (text: string): Target => {
  const match = /^\[?([^\]]*)\]?:(\d+)$/.exec(text)
  if (match === null) throw new Error(`expected HOST:PORT, got ${JSON.stringify(text)}`)
  return { host: match[1]!, port: Number(match[2]) }
}

/** The runtime executing this code. */
export const runtimeName = (): "node" | "bun" | "deno" =>
  "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node"

/** CPU time used by this process during `f`, as a share of one core over the wall time. */
export const withCpu = async <A>(
  f: () => Promise<A>
): Promise<{ readonly value: A; readonly cpu: { user: number; system: number; wall: number; share: number } }> => {
  const cpu0 = process.cpuUsage()
  const t0 = now()
  const value = await f()
  const wall = (now() - t0) / 1000
  const used = process.cpuUsage(cpu0)
  const user = used.user / 1e6
  const system = used.system / 1e6
  return { value, cpu: { user, system, wall, share: (user + system) / wall } }
}
