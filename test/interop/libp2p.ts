/**
 * Drives `@chainsafe/libp2p-yamux` (an independent yamux implementation) over a raw `net.Socket`,
 * so plait can be tested against it on real TCP.
 *
 * libp2p-yamux 8 takes a libp2p `MessageStream` (the connection) and emits `message`, `drain`,
 * `close` events on it; {@link SocketConnection} is that adapter, built on `AbstractMultiaddrConnection`
 * from `@libp2p/utils` (what `@libp2p/tcp` does too): socket `'data'` → `onData`, `'drain'` →
 * `'drain'`, `'end'` → remote close-write, `'close'` → transport closed, and `sendData` writes
 * every chunk of a frame batch to the socket. The muxer comes from `yamux(init)()` →
 * `createStreamMuxer(connection)`; the connection's `direction` makes it the client ('outbound',
 * odd ids) or the server ('inbound', even ids).
 *
 * The rest are promise helpers for libp2p streams: send with drain backpressure, collect until EOF
 * (the `'end'` event, which — unlike the async iterator — cannot miss a FIN that arrived before the
 * reader), an echo server, and a scoped listener/dialer for tests.
 *
 * A tiny in-band protocol lets one echo server serve two behaviours: the first byte of a stream's
 * payload selects the {@link EchoMode}.
 */
import * as net from "node:net"
import type { YamuxMuxerInit } from "@chainsafe/libp2p-yamux"
import { yamux } from "@chainsafe/libp2p-yamux"
import type { AbortOptions, Stream, StreamCloseEvent, StreamMessageEvent } from "@libp2p/interface"
import { logger } from "@libp2p/logger"
import { AbstractMultiaddrConnection, ipPortToMultiaddr, type SendResult } from "@libp2p/utils"
import { Effect, type Scope } from "effect"

/** The byte-list type of the libp2p packages (their own copy of `uint8arraylist`). */
type ByteList = Parameters<AbstractMultiaddrConnection["sendData"]>[0]

/** The libp2p-yamux muxer type (not exported by name from the package). */
export type YamuxMuxer = ReturnType<ReturnType<ReturnType<typeof yamux>>["createStreamMuxer"]>

/** A libp2p message stream over a TCP socket (the part of `@libp2p/tcp` that libp2p-yamux needs). */
export class SocketConnection extends AbstractMultiaddrConnection {
  readonly socket: net.Socket

  constructor(socket: net.Socket, direction: "inbound" | "outbound") {
    const remoteAddr = ipPortToMultiaddr(socket.remoteAddress ?? "127.0.0.1", socket.remotePort ?? 0)
    super({ remoteAddr, direction, log: logger(`plait:interop:${direction}`), inactivityTimeout: 0 })
    this.socket = socket
    socket.setNoDelay(true)
    socket.on("data", (buf: Uint8Array) => this.onData(buf))
    socket.on("error", (err) => this.abort(err))
    socket.once("end", () => this.onRemoteCloseWrite())
    socket.once("close", (hadError) => {
      if (hadError) this.abort(new Error("TCP transmission error"))
      else this.onTransportClosed()
    })
    socket.on("drain", () => this.safeDispatchEvent("drain"))
  }

  sendData(data: ByteList): SendResult {
    let canSendMore = true
    for (const chunk of data) canSendMore = this.socket.write(chunk)
    return { sentBytes: data.byteLength, canSendMore }
  }

  async sendClose(_options?: AbortOptions): Promise<void> {
    if (this.socket.destroyed) return
    await new Promise<void>((resolve) => {
      this.socket.once("close", () => resolve())
      this.socket.end()
    })
  }

  sendReset(): void {
    if (typeof this.socket.resetAndDestroy === "function") {
      try {
        this.socket.resetAndDestroy()
        return
      } catch {
        // not a TCP handle: fall through
      }
    }
    this.socket.destroy()
  }

  sendPause(): void {
    this.socket.pause()
  }

  sendResume(): void {
    this.socket.resume()
  }
}

/** A libp2p-yamux endpoint on one TCP connection. */
export interface Libp2pPeer {
  readonly connection: SocketConnection
  readonly muxer: YamuxMuxer
  /** Resolves once the TCP socket has closed (both directions). */
  readonly closed: Promise<void>
}

/** A libp2p-yamux muxer over `socket`; `outbound` makes it the dialling side (odd ids). */
export const muxOver = (
  socket: net.Socket,
  direction: "inbound" | "outbound",
  init: YamuxMuxerInit = {}
): Libp2pPeer => {
  const connection = new SocketConnection(socket, direction)
  const muxer = yamux(init)().createStreamMuxer(connection)
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()))
  return { connection, muxer, closed }
}

// ---------------------------------------------------------------------------------------------
// Stream helpers (promises)
// ---------------------------------------------------------------------------------------------

const toBytes = (data: Uint8Array | ByteList): Uint8Array => (data instanceof Uint8Array ? data : data.subarray())

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let total = 0
  for (const p of parts) total += p.length
  const out = new Uint8Array(total)
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

/** Bytes a libp2p stream delivered after its `'end'` event (see {@link collect}). */
export interface LateBytes {
  late: number
}

/**
 * Reads a libp2p stream until the peer's FIN; rejects if the stream closes with an error.
 *
 * libp2p-yamux 8.0.1 handles a DATA frame's flags before its payload, so for DATA|FIN it emits
 * `'end'` (and ends the async iterator) first and the frame's bytes as a `'message'` right after, in
 * the same tick. Standard consumers (`for await`) lose those bytes. To still check plait's bytes
 * exactly, this reader keeps listening until a microtask after `'end'` and counts what came late in
 * `late` (a peer bug, reported by the tests that use it).
 */
export const collect = (stream: Stream, onChunk?: (chunk: Uint8Array) => void, late?: LateBytes): Promise<Uint8Array> =>
  new Promise<Uint8Array>((resolve, reject) => {
    const parts: Array<Uint8Array> = []
    let ended = false
    const cleanup = () => {
      stream.removeEventListener("message", onMessage)
      stream.removeEventListener("end", onEnd)
      stream.removeEventListener("close", onClose)
    }
    const onMessage = (evt: StreamMessageEvent) => {
      const chunk = toBytes(evt.data)
      if (ended && late !== undefined) late.late += chunk.length
      parts.push(chunk)
      onChunk?.(chunk)
    }
    const onEnd = () => {
      ended = true
      queueMicrotask(() => {
        cleanup()
        resolve(concat(parts))
      })
    }
    const onClose = (evt: StreamCloseEvent) => {
      if (evt.error === undefined) return
      cleanup()
      reject(evt.error)
    }
    if (stream.readableEnded) return resolve(concat(parts))
    // 'end' and 'close' first: adding the 'message' listener flushes buffered data (and may end).
    stream.addEventListener("end", onEnd)
    stream.addEventListener("close", onClose)
    stream.addEventListener("message", onMessage)
  })

/** Sends `bytes` in `chunkSize` pieces, waiting for `drain` whenever the stream asks to. */
export const sendAll = async (stream: Stream, bytes: Uint8Array, chunkSize = 64 * 1024): Promise<void> => {
  for (let offset = 0; offset < bytes.length; offset += chunkSize) {
    if (!stream.send(bytes.subarray(offset, offset + chunkSize))) await stream.onDrain()
  }
}

/** How the echo side answers, chosen by the first payload byte of the stream. */
export const EchoMode = {
  /** Echo each chunk as it arrives (both directions busy at once); FIN after the peer's FIN. */
  Streaming: 0,
  /** Read everything up to the peer's FIN, then write it all back and FIN (half-close). */
  AfterEof: 1
} as const

/**
 * Echoes one libp2p stream according to its first byte (see {@link EchoMode}). Must be called
 * synchronously from the `'stream'` event so no event is missed. Streaming mode pauses reading
 * (which withholds window updates from the peer) while its own writes wait for `drain`.
 */
export const echoStream = (stream: Stream): Promise<void> => {
  let mode: number | undefined
  let pending = Promise.resolve()
  const parts: Array<Uint8Array> = []
  const done = collect(stream, (chunk) => {
    if (mode === undefined) mode = chunk[0]
    if (mode === EchoMode.AfterEof) {
      parts.push(chunk)
      return
    }
    if (!stream.send(chunk)) {
      stream.pause()
      pending = pending.then(async () => {
        await stream.onDrain()
        if (stream.readStatus === "paused") stream.resume()
      })
    }
  })
  return done.then(
    async () => {
      await pending
      if (mode === EchoMode.AfterEof) await sendAll(stream, concat(parts))
      await stream.close()
    },
    (error: unknown) => {
      pending.catch(() => {}) // the stream failed: a drain that never comes is not a second error
      throw error
    }
  )
}

/** Serves every inbound stream of `muxer` with {@link echoStream}; failures abort that stream. */
export const serveEcho = (muxer: YamuxMuxer, onError?: (error: unknown) => void): void => {
  muxer.addEventListener("stream", (evt) => {
    const stream = evt.detail
    echoStream(stream).catch((error: unknown) => {
      onError?.(error)
      stream.abort(error instanceof Error ? error : new Error(String(error)))
    })
  })
}

/** Opens a stream, sends `payload`, half-closes, and returns everything read back until FIN. */
export const roundTrip = async (muxer: YamuxMuxer, payload: Uint8Array): Promise<Uint8Array> => {
  const stream = await muxer.createStream()
  const reply = collect(stream)
  await sendAll(stream, payload)
  await stream.close()
  return reply
}

// ---------------------------------------------------------------------------------------------
// Scoped endpoints (Effect)
// ---------------------------------------------------------------------------------------------

/** Ends a peer by closing its socket: the muxer and its streams see the transport close (no errors thrown). */
const shutdown = (peer: Libp2pPeer): void => {
  peer.connection.socket.destroy()
}

/**
 * Listens on 127.0.0.1 (port 0); each accepted connection gets a server muxer handed to `onPeer`.
 * Scoped: closing the scope aborts the muxers and closes the server.
 */
export const listenLibp2p = (
  onPeer: (peer: Libp2pPeer) => void,
  init: YamuxMuxerInit = {}
): Effect.Effect<{ readonly port: number; readonly peers: ReadonlyArray<Libp2pPeer> }, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<{ server: net.Server; port: number; peers: Array<Libp2pPeer> }, Error>((resume) => {
      const peers: Array<Libp2pPeer> = []
      const server = net.createServer((socket) => {
        const peer = muxOver(socket, "inbound", init)
        peers.push(peer)
        onPeer(peer)
      })
      server.once("error", (err) => resume(Effect.fail(err)))
      server.listen({ host: "127.0.0.1", port: 0 }, () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({ server, port, peers }))
      })
    }),
    ({ server, peers }) =>
      Effect.sync(() => {
        for (const peer of peers) shutdown(peer)
        server.close()
      })
  )

/** Dials 127.0.0.1:`port` and runs a client muxer on the connection. Scoped like {@link listenLibp2p}. */
export const dialLibp2p = (port: number, init: YamuxMuxerInit = {}): Effect.Effect<Libp2pPeer, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<Libp2pPeer, Error>((resume) => {
      const socket = net.connect({ host: "127.0.0.1", port })
      socket.once("error", (err) => resume(Effect.fail(err)))
      socket.once("connect", () => resume(Effect.succeed(muxOver(socket, "outbound", init))))
    }),
    (peer) => Effect.sync(() => shutdown(peer))
  )
