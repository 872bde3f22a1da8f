/**
 * TCP transport over `node:net`, the same code on Node, Bun and Deno.
 *
 * Invariants:
 * - Reads are pulled. A socket starts paused and is resumed only by a `read` that finds nothing
 *   buffered (or that drains the buffer); while nobody reads, at most `readHighWaterMark` bytes (plus
 *   one chunk) are buffered here before the socket is paused again, so an unread transport pushes
 *   back on the peer through TCP flow control.
 * - `read` returns everything buffered at once: the single chunk as is (no copy), several chunks
 *   concatenated into one array. Returned arrays may be Node `Buffer`s; treat them as `Uint8Array`
 *   (use `subarray`, never `Buffer#slice`). They are never reused by the adapter.
 * - `read` yields `null` only after the peer's FIN and only once every buffered byte was returned;
 *   an error or a close without FIN fails it with a {@link TransportError} after the buffered bytes.
 *   Only one `read` may be pending at a time.
 * - `write` corks the socket, writes every chunk, uncorks (one `writev` on Node), and completes as soon
 *   as the socket's own buffer is below its high-water mark or the kernel took every byte at once —
 *   i.e. at once in the common case, after `'drain'` (or `'finish'` after `closeWrite`) otherwise.
 *   Chunks must not be mutated afterwards.
 * - `closeWrite` sends FIN; `close` sends FIN, fails local pending operations, discards further input
 *   and destroys the socket when it closes or after `closeGraceMillis`; `reset` aborts with RST where the
 *   runtime supports it (`resetAndDestroy`; TLS sockets, older runtimes and sockets whose FIN is
 *   already queued fall back to `destroy`: libuv refuses an RST after shutdown and Node would then
 *   never close the handle). All three are idempotent, synchronous and never fail.
 * - As a {@link DirectPort} (for `splice`), `'data'` goes straight to the attached listener while
 *   input is resumed; paused, it is buffered as for `read`. A close after both directions ended is
 *   a normal end, any other close or error is reported as a failure.
 * - Failures are recorded cheaply and become a {@link TransportError} only when observed (every
 *   connection records one when it closes; an error's stack trace is not free).
 *
 * Runtime notes: on all three runtimes the adapter uses only `'data'` events with `pause`/`resume`
 * (never `'readable'`, whose behaviour after `pause` differs on Deno), `allowHalfOpen: true`,
 * `pauseOnConnect` for accepted sockets and `setNoDelay(true)`. Bun delivers larger chunks than the
 * 64 KiB Node and Deno use; nothing here depends on chunk sizes.
 *
 * A waiting `read` is resumed synchronously from the socket's `'data'` handler, so the reading fiber
 * runs in the I/O callback with no extra scheduler hop.
 *
 * @since 0.1.0
 */

import * as net from "node:net"
import { clearTimeout as clearNodeTimeout, setTimeout as setNodeTimeout } from "node:timers"
import { Cause, Effect, Exit, FiberSet, Queue, type Scope } from "effect"
import { concat } from "../internal/Bytes.ts"
import { type DirectListener, type DirectPort, type Transport, TransportError } from "./Transport.ts"

/**
 * Tuning for one TCP transport.
 *
 * @since 0.1.0
 * @category models
 */
export interface TcpOptions {
  /** Buffered unread bytes above which the socket is paused (default 256 KiB). */
  readonly readHighWaterMark?: number
  /** How long `close` waits for the peer's FIN before destroying the socket (default 2000 ms). */
  readonly closeGraceMillis?: number
}

/**
 * Where to connect or listen.
 *
 * @since 0.1.0
 * @category models
 */
export interface TcpAddress {
  readonly host: string
  readonly port: number
}

/**
 * A listening TCP server.
 *
 * @since 0.1.0
 * @category models
 */
export interface TcpServer {
  /** The bound address; `port` is the real port when 0 was asked for. */
  readonly address: TcpAddress
  /**
   * The next accepted connection, oldest first. Fails with a `listen` {@link TransportError} once the
   * server's scope has closed or the server failed. The caller owns (and must close) the transport.
   */
  readonly accept: Effect.Effect<Transport, TransportError>
}

/**
 * Default read high-water mark: 256 KiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_READ_HIGH_WATER_MARK = 256 * 1024

/**
 * Default grace between `close` and a forced destroy.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_CLOSE_GRACE_MILLIS = 2000

type Resume<A> = (effect: Effect.Effect<A, TransportError>) => void

/**
 * `host:port` for logs, IPv6 in brackets; `unknown` when the socket no longer knows its peer.
 *
 * @since 0.1.0
 * @category utils
 */
export const formatHostPort = (host: string | undefined, port: number | undefined): string =>
  host === undefined ? "unknown" : host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`

/**
 * Formats an address as `host:port` (IPv6 in brackets).
 *
 * @since 0.1.0
 * @category utils
 */
export const formatAddress = (address: TcpAddress): string => formatHostPort(address.host, address.port)

const describeCause = (cause: unknown): string => {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code
    return typeof code === "string" ? `${code}: ${cause.message}` : cause.message
  }
  return String(cause)
}

const ENDED: Effect.Effect<Uint8Array | null, TransportError> = Effect.succeed(null)

const writeAfterEnd = () => new TransportError({ operation: "write", message: "write after closeWrite" })

/** Never written to: `chunks` is replaced by a fresh array before the first push. */
const NO_CHUNKS: Array<Uint8Array> = []

/**
 * A recorded failure whose {@link TransportError} is built only when someone observes it: every
 * connection records one when it closes, and building an error (its stack trace) cost ~10% of the
 * CPU of a proxy opening and closing connections at full rate.
 */
class Failure {
  private readonly operation: "read" | "write"
  private readonly message: string
  private readonly cause: unknown
  private error: TransportError | undefined = undefined
  constructor(operation: "read" | "write", message: string, cause: unknown) {
    this.operation = operation
    this.message = message
    this.cause = cause
  }
  get value(): TransportError {
    this.error ??= new TransportError({ operation: this.operation, message: this.message, cause: this.cause })
    return this.error
  }
}

/**
 * Wraps a connected socket (a `net.Socket`, a `tls.TLSSocket` after its handshake, or any socket-like
 * duplex) as a {@link Transport}. Not scoped: the caller owns the transport and must `close` or
 * `reset` it; {@link connect} and {@link serve} do that for you. The socket is paused at once and
 * gets an `'error'` listener, so it never throws an unhandled error event.
 * @since 0.1.0
 * @category constructors
 */
export const fromSocket = (socket: net.Socket, options?: TcpOptions): Effect.Effect<Transport> =>
  Effect.sync(() => makeTransport(socket, options))

/**
 * How a transport stops and restarts a socket's input (default: `pause()` and `resume()`). A
 * runtime whose sockets need more than that to push back through TCP supplies its own (Deno's TLS
 * sockets, see `Tls.ts`).
 *
 * @since 0.1.0
 * @category models
 */
export interface SocketFlow {
  readonly pause: (socket: net.Socket) => void
  readonly resume: (socket: net.Socket) => void
}

const PLAIN_FLOW: SocketFlow = {
  pause: (socket) => {
    socket.pause()
  },
  resume: (socket) => {
    socket.resume()
  }
}

/**
 * The synchronous core of {@link fromSocket}, for event handlers that cannot run an Effect.
 * `flow` replaces how the socket is paused and resumed (see {@link SocketFlow}).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeTransport = (socket: net.Socket, options?: TcpOptions, flow: SocketFlow = PLAIN_FLOW): Transport =>
  new TcpTransport(
    socket,
    options?.readHighWaterMark ?? DEFAULT_READ_HIGH_WATER_MARK,
    options?.closeGraceMillis ?? DEFAULT_CLOSE_GRACE_MILLIS,
    flow
  )

/**
 * Whether the socket holds no unwritten bytes: the kernel took a write whole, at once. `write()`
 * answers `false` for any chunk of the high-water mark's size or more (it compares before writing),
 * so without this every 64 KiB chunk would wait for a `'drain'` that is already on its way (on
 * Node a write that completes at once leaves nothing buffered).
 */
const written = (socket: net.Socket): boolean => socket.writableLength === 0

const kTransport = Symbol.for("plait/transport/Tcp/transport")

type SocketWithTransport = net.Socket & { [kTransport]?: TcpTransport }

// Listeners are shared module functions that find their transport on the socket (EventEmitter calls
// them with `this` = the socket): an idle connection then carries no per-connection closures.
function onSocketData(this: SocketWithTransport, chunk: Uint8Array) {
  this[kTransport]?.onData(chunk)
}
function onSocketEnd(this: SocketWithTransport) {
  this[kTransport]?.onEnd()
}
function onSocketError(this: SocketWithTransport, cause: Error) {
  this[kTransport]?.onError(cause)
}
function onSocketClose(this: SocketWithTransport) {
  this[kTransport]?.onClose()
}
function onSocketDrain(this: SocketWithTransport) {
  this[kTransport]?.onDrain()
}
function onGraceTimeout(socket: net.Socket) {
  socket.destroy()
}

/**
 * A {@link Transport} over one socket; see the module invariants. It is its own {@link DirectPort}:
 * while a listener is attached, `'data'` goes straight to it (no fiber, no buffering unless paused).
 */
class TcpTransport implements Transport, DirectPort<TransportError> {
  readonly remoteAddress: string
  readonly eventLoopDriven = true
  private readonly socket: net.Socket
  private readonly highWaterMark: number
  private readonly closeGraceMillis: number
  private readonly flow: SocketFlow
  /** Unread chunks; the shared empty array while there are none (most of an idle life). */
  private chunks: Array<Uint8Array> = NO_CHUNKS
  private buffered = 0
  private ended = false
  private flowing = false
  private readError: Failure | undefined = undefined
  private writeError: Failure | undefined = undefined
  /** Set by local close/reset: stop delivering input at all. */
  private shut = false
  private readWaiter: Resume<Uint8Array | null> | undefined = undefined
  private writeWaiters: Array<Resume<void>> | undefined = undefined
  private graceTimer: ReturnType<typeof setNodeTimeout> | undefined = undefined
  private listener: DirectListener<TransportError> | undefined = undefined
  private inputPaused = false
  private endDelivered = false
  private drainHooked = false
  /** An `'error'` was seen: unlike a close after both FINs, never a normal end. */
  private errored = false

  constructor(socket: net.Socket, highWaterMark: number, closeGraceMillis: number, flow: SocketFlow) {
    this.socket = socket
    this.highWaterMark = highWaterMark
    this.closeGraceMillis = closeGraceMillis
    this.flow = flow
    this.remoteAddress = formatHostPort(socket.remoteAddress, socket.remotePort)
    ;(socket as SocketWithTransport)[kTransport] = this
    flow.pause(socket)
    socket.on("data", onSocketData)
    socket.on("end", onSocketEnd)
    socket.on("error", onSocketError)
    socket.on("close", onSocketClose)
    if (typeof socket.setNoDelay === "function") socket.setNoDelay(true)
    if (socket.destroyed) this.onClose()
  }

  /**
   * Listens for `'drain'` once a write first overflowed: most connections never fill their socket
   * buffer, and every listener costs memory on each of thousands of idle sockets.
   */
  private hookDrain(): void {
    if (this.drainHooked) return
    this.drainHooked = true
    this.socket.on("drain", onSocketDrain)
    // After `end()` Node emits 'finish' instead of 'drain' once the buffer is flushed.
    this.socket.on("finish", onSocketDrain)
  }

  private pause(): void {
    if (this.flowing) {
      this.flowing = false
      this.flow.pause(this.socket)
    }
  }

  private resumeSocket(): void {
    if (!this.flowing && !this.ended && !this.socket.destroyed) {
      this.flowing = true
      this.flow.resume(this.socket)
    }
  }

  private wakeReader(effect: Effect.Effect<Uint8Array | null, TransportError>): void {
    const waiter = this.readWaiter
    if (waiter !== undefined) {
      this.readWaiter = undefined
      waiter(effect)
    }
  }

  /** @internal */
  wakeWriters(effect: Effect.Effect<void, TransportError>): void {
    const waiters = this.writeWaiters
    if (waiters === undefined || waiters.length === 0) return
    this.writeWaiters = undefined
    for (let i = 0; i < waiters.length; i++) waiters[i]!(effect)
  }

  /** @internal */
  onData(chunk: Uint8Array): void {
    if (this.shut) return
    if (this.listener !== undefined && !this.inputPaused && this.buffered === 0) {
      this.listener.input(chunk)
      return
    }
    if (this.readWaiter !== undefined && this.buffered === 0) {
      // Hand the chunk straight to the parked reader: no buffering, no copy.
      this.wakeReader(Effect.succeed(chunk))
      return
    }
    if (this.chunks === NO_CHUNKS) this.chunks = []
    this.chunks.push(chunk)
    this.buffered += chunk.length
    if (this.buffered >= this.highWaterMark) this.pause()
  }

  /** @internal */
  onEnd(): void {
    this.ended = true
    this.flowing = false
    if (this.buffered === 0) {
      this.wakeReader(ENDED)
      if (this.listener !== undefined && !this.inputPaused) this.deliverEnd(this.listener)
    }
  }

  private fail(message: string, cause: unknown): void {
    this.readError ??= new Failure("read", message, cause)
    this.writeError ??= new Failure("write", message, cause)
    if (this.buffered === 0 && !this.ended) this.failReader(this.readError)
    this.failWriters(this.writeError)
    const failure = this.listenerFailure()
    if (this.listener !== undefined && failure !== undefined) this.listener.failure(failure.value)
  }

  /** Fails a parked `read` (the error is built only when there is one). */
  private failReader(failure: Failure): void {
    if (this.readWaiter !== undefined) this.wakeReader(Effect.fail(failure.value))
  }

  /** Fails parked writers (the error is built only when there are some). */
  private failWriters(failure: Failure): void {
    if (this.writeWaiters !== undefined && this.writeWaiters.length > 0) this.wakeWriters(Effect.fail(failure.value))
  }

  /**
   * What a splice must hear of a recorded failure: before the peer's FIN, any close or error; after
   * it, an error, or a close before our own FIN went out. A close after both FINs is a normal end.
   */
  private listenerFailure(): Failure | undefined {
    if (!this.ended) return this.readError
    return this.errored || !this.socket.writableEnded ? this.writeError : undefined
  }

  /** @internal */
  onError(cause: Error): void {
    this.errored = true
    this.fail(`connection to ${this.remoteAddress} failed: ${describeCause(cause)}`, cause)
  }

  /** @internal */
  onDrain(): void {
    this.wakeWriters(Effect.void)
    this.listener?.writable()
  }

  /** @internal */
  onClose(): void {
    if (this.graceTimer !== undefined) {
      clearNodeTimeout(this.graceTimer)
      this.graceTimer = undefined
    }
    this.fail(`connection to ${this.remoteAddress} closed`, undefined)
  }

  private takeBuffered(): Uint8Array {
    const out = this.chunks.length === 1 ? this.chunks[0]! : concat(this.chunks, this.buffered)
    this.chunks = NO_CHUNKS
    this.buffered = 0
    return out
  }

  private waitRead(): Effect.Effect<Uint8Array | null, TransportError> {
    return Effect.callback<Uint8Array | null, TransportError>((resume) => {
      this.readWaiter = resume
      this.resumeSocket()
      return Effect.sync(() => {
        if (this.readWaiter === resume) this.readWaiter = undefined
      })
    })
  }

  get read(): Effect.Effect<Uint8Array | null, TransportError> {
    return Effect.suspend(() => {
      if (this.buffered > 0) {
        const out = this.takeBuffered()
        // Read ahead while the caller processes this batch; bounded by the high-water mark.
        if (!this.shut) this.resumeSocket()
        return Effect.succeed(out)
      }
      if (this.readError !== undefined && (this.shut || !this.ended)) return Effect.fail(this.readError.value)
      if (this.ended) return ENDED
      if (this.readWaiter !== undefined) {
        return Effect.fail(new TransportError({ operation: "read", message: "concurrent read on one transport" }))
      }
      return this.waitRead()
    })
  }

  private waitDrain(): Effect.Effect<void, TransportError> {
    return Effect.callback<void, TransportError>((resume) => {
      if (this.writeError !== undefined) return resume(Effect.fail(this.writeError.value))
      if (!this.socket.writableNeedDrain) return resume(Effect.void)
      this.hookDrain()
      if (this.writeWaiters === undefined) this.writeWaiters = []
      this.writeWaiters.push(resume)
      return Effect.sync(() => {
        const i = this.writeWaiters?.indexOf(resume) ?? -1
        if (i >= 0) this.writeWaiters!.splice(i, 1)
      })
    })
  }

  write(writeChunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, TransportError> {
    return Effect.suspend(() => {
      if (this.writeError !== undefined) return Effect.fail(this.writeError.value)
      const socket = this.socket
      if (socket.writableEnded) return Effect.fail(writeAfterEnd())
      let ok = true
      if (writeChunks.length === 1) {
        if (writeChunks[0]!.length > 0) ok = socket.write(writeChunks[0]!)
      } else if (writeChunks.length > 1) {
        socket.cork()
        for (let i = 0; i < writeChunks.length; i++) {
          const chunk = writeChunks[i]!
          if (chunk.length > 0) ok = socket.write(chunk)
        }
        socket.uncork()
      }
      return ok || written(socket) ? Effect.void : this.waitDrain()
    })
  }

  get closeWrite(): Effect.Effect<void> {
    return Effect.sync(() => this.sendEnd())
  }

  private shutDown(message: string): void {
    this.shut = true
    this.chunks = NO_CHUNKS
    this.buffered = 0
    this.readError = new Failure("read", message, undefined)
    this.writeError ??= new Failure("write", message, undefined)
    this.failReader(this.readError)
    this.failWriters(this.writeError)
    this.listener?.failure(this.readError.value)
  }

  get close(): Effect.Effect<void> {
    return Effect.sync(() => {
      if (this.shut) return
      this.shutDown(`connection to ${this.remoteAddress} closed locally`)
      const socket = this.socket
      if (socket.destroyed) return
      if (!socket.writableEnded) socket.end()
      // Keep reading (and discarding) so the peer's FIN arrives and the kernel never answers unread
      // data with an RST; give up after the grace period.
      this.flowing = true
      this.flow.resume(socket)
      this.graceTimer = setNodeTimeout(onGraceTimeout, this.closeGraceMillis, socket)
      this.graceTimer.unref()
    })
  }

  get reset(): Effect.Effect<void> {
    return Effect.sync(() => this.abort())
  }

  // DirectPort ----------------------------------------------------------------------------------

  directPort(): DirectPort<TransportError> | undefined {
    return this.readWaiter === undefined && this.listener === undefined && !this.shut ? this : undefined
  }

  attach(listener: DirectListener<TransportError>): void {
    this.listener = listener
    this.inputPaused = true
  }

  detach(): void {
    this.listener = undefined
    this.inputPaused = false
    this.pause()
  }

  pauseInput(): void {
    this.inputPaused = true
    this.pause()
  }

  resumeInput(): void {
    const listener = this.listener
    if (listener === undefined) return
    this.inputPaused = false
    if (this.buffered > 0) {
      listener.input(this.takeBuffered())
      if (this.inputPaused || this.listener !== listener) return
    }
    const failure = this.listenerFailure()
    if (failure !== undefined) listener.failure(failure.value)
    else if (this.ended) this.deliverEnd(listener)
    else this.resumeSocket()
  }

  private deliverEnd(listener: DirectListener<TransportError>): void {
    if (this.endDelivered) return
    this.endDelivered = true
    listener.inputEnd()
  }

  send(chunk: Uint8Array): boolean {
    const socket = this.socket
    if (this.writeError !== undefined || socket.writableEnded) {
      this.listener?.failure(this.writeError?.value ?? writeAfterEnd())
      return true
    }
    if (chunk.length === 0) return true
    if (socket.write(chunk) || written(socket)) return true
    this.hookDrain()
    return false
  }

  sendEnd(): void {
    if (!this.socket.writableEnded && !this.socket.destroyed) this.socket.end()
  }

  abort(): void {
    const socket = this.socket
    if (socket.destroyed) {
      if (!this.shut) this.shutDown(`connection to ${this.remoteAddress} reset locally`)
      return
    }
    this.shutDown(`connection to ${this.remoteAddress} reset locally`)
    if (this.graceTimer !== undefined) {
      clearNodeTimeout(this.graceTimer)
      this.graceTimer = undefined
    }
    try {
      // After `end()` libuv refuses the RST (`uv_tcp_close_reset` fails on a shutting handle) and
      // Node then never closes the handle: the fd would leak. Our FIN is out; a plain close it is.
      if (typeof socket.resetAndDestroy === "function" && !socket.writableEnded) socket.resetAndDestroy()
      else socket.destroy()
    } catch {
      // resetAndDestroy throws for non-TCP handles (TLS); a plain destroy still closes the socket.
      socket.destroy()
    }
  }
}

/**
 * The callback core of {@link dial}: calls `done` once with the transport or the `connect` error,
 * unless the returned cancel function runs first (it destroys the half-open socket). For callers
 * that compose a dial into their own callback-level state machine (the server's forwarder).
 * @since 0.1.0
 * @category constructors
 */
export const dialWith = (
  address: TcpAddress,
  options: TcpOptions | undefined,
  done: (result: Transport | TransportError) => void
): (() => void) => {
  const socket = net.createConnection({ host: address.host, port: address.port, allowHalfOpen: true })
  socket.pause()
  const onError = (cause: Error) => {
    socket.off("connect", onConnect)
    socket.destroy()
    done(
      new TransportError({
        operation: "connect",
        message: `cannot connect to ${address.host}:${address.port}: ${describeCause(cause)}`,
        cause
      })
    )
  }
  const onConnect = () => {
    socket.off("error", onError)
    done(makeTransport(socket, options))
  }
  socket.once("error", onError)
  socket.once("connect", onConnect)
  return () => {
    socket.off("error", onError)
    socket.off("connect", onConnect)
    socket.on("error", ignoreError)
    socket.destroy()
  }
}

/**
 * Dials `host:port`; the caller owns the transport and must `close` or `reset` it (see
 * {@link connect} for the scoped form). Interrupting the dial destroys the half-open socket. Fails
 * with a `connect` {@link TransportError}.
 * @since 0.1.0
 * @category constructors
 */
export const dial = (address: TcpAddress, options?: TcpOptions): Effect.Effect<Transport, TransportError> =>
  Effect.callback<Transport, TransportError>((resume) => {
    const cancel = dialWith(address, options, (result) =>
      resume(result instanceof TransportError ? Effect.fail(result) : Effect.succeed(result))
    )
    return Effect.sync(cancel)
  })

/**
 * {@link dial}, scoped: closing the scope `close`s the transport.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (
  address: TcpAddress,
  options?: TcpOptions
): Effect.Effect<Transport, TransportError, Scope.Scope> =>
  Effect.acquireRelease(dial(address, options), (transport) => transport.close)

/**
 * Server options: where to listen plus per-connection tuning.
 *
 * @since 0.1.0
 * @category models
 */
export interface ListenOptions extends TcpAddress, TcpOptions {
  /** Kernel accept backlog (default 511). */
  readonly backlog?: number
}

/**
 * Listens on `host:port` (port 0 picks a free one; read it from `address`). Scoped: closing the
 * scope stops listening, resets connections nobody accepted and fails pending and later `accept`s.
 * It does not wait for, or touch, connections already accepted: their owners close them.
 * Accepted connections wait, paused, in an unbounded queue until taken with `accept` (each costs a
 * socket and a few objects, no read buffers).
 *
 * @since 0.1.0
 * @category constructors
 */
export const listen = (options: ListenOptions): Effect.Effect<TcpServer, TransportError, Scope.Scope> =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<Transport, TransportError>()
    let closed = false
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      if (closed) {
        socket.on("error", ignoreError)
        socket.destroy()
        return
      }
      Queue.offerUnsafe(queue, makeTransport(socket, options))
    })
    const failQueue = (message: string, cause?: unknown) =>
      Queue.failCauseUnsafe(queue, Cause.fail(new TransportError({ operation: "listen", message, cause })))
    yield* Effect.acquireRelease(bindServer(server, options, options.backlog, failQueue), () =>
      Effect.gen(function* () {
        closed = true
        // The callback of `close` waits for every accepted connection, which are not ours to wait for.
        server.close()
        for (let exit = Queue.takeUnsafe(queue); exit !== undefined; exit = Queue.takeUnsafe(queue)) {
          if (Exit.isFailure(exit)) break
          yield* exit.value.reset
        }
        failQueue("server closed")
      })
    )
    const bound = server.address()
    const address: TcpAddress =
      bound !== null && typeof bound === "object"
        ? { host: bound.address, port: bound.port }
        : { host: options.host, port: options.port }
    return { address, accept: Queue.take(queue) }
  })

const ignoreError = () => {}

/**
 * Binds `server` (plain or TLS) to `address`; fails with a `listen` {@link TransportError} naming the
 * address. Errors after binding go to `onServerError` (which fails the accept queue).
 * @since 0.1.0
 * @category constructors
 */
export const bindServer = (
  server: net.Server,
  address: TcpAddress,
  backlog: number | undefined,
  onServerError: (message: string, cause: unknown) => void
): Effect.Effect<void, TransportError> =>
  Effect.callback<void, TransportError>((resume) => {
    const onError = (cause: Error) => {
      server.off("listening", onListening)
      resume(
        Effect.fail(
          new TransportError({
            operation: "listen",
            message: `cannot listen on ${formatAddress(address)}: ${describeCause(cause)}`,
            cause
          })
        )
      )
    }
    const onListening = () => {
      server.off("error", onError)
      server.on("error", (cause) => onServerError(`server failed: ${describeCause(cause)}`, cause))
      resume(Effect.void)
    }
    server.once("error", onError)
    server.once("listening", onListening)
    server.listen({ host: address.host, port: address.port, backlog: backlog ?? 511 })
  })

/**
 * Accepts connections until `accept` fails, running `handler` for each in its own fiber. A
 * connection is `close`d when its handler ends, however it ends; handlers handle their own failures.
 * Interrupting `serve` interrupts every handler.
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = <R>(
  server: TcpServer,
  handler: (transport: Transport) => Effect.Effect<void, never, R>
): Effect.Effect<never, TransportError, R> =>
  Effect.scoped(
    Effect.gen(function* () {
      const fibers = yield* FiberSet.make<void, never>()
      return yield* Effect.forever(
        Effect.flatMap(server.accept, (transport) =>
          FiberSet.run(fibers, Effect.ensuring(handler(transport), transport.close))
        )
      )
    })
  )
