/**
 * Views of a {@link MuxStream} for code written against Effect's own abstractions: an Effect
 * `Stream` of chunks, and Effect's `Socket`, so existing Socket-based code runs over a virtual stream.
 *
 * Invariants: both views read through the stream's own `read`, so credit is returned exactly as
 * for direct reads; the peer's FIN ends the `Stream` and appears to Socket code as a clean close
 * (code 1000), a reset as a read error. Releasing the Socket writer's scope half-closes the stream.
 *
 * @since 0.1.0
 */
import { Cause, Effect, Stream } from "effect"
import * as Socket from "effect/socket/Socket"
import type { MuxStream } from "../internal/session/Stream.ts"
import type { MuxError } from "./MuxError.ts"

/**
 * The stream's inbound bytes as an Effect `Stream`, ending at the peer's FIN.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toStream = (stream: MuxStream): Stream.Stream<Uint8Array, MuxError> =>
  Stream.fromPull(
    Effect.succeed(
      Effect.flatMap(stream.read, (chunk) => (chunk === null ? Cause.done() : Effect.succeed([chunk] as const)))
    )
  )

const encoder = new TextEncoder()

const readError = (cause: MuxError) => new Socket.SocketError({ reason: new Socket.SocketReadError({ cause }) })
const writeError = (cause: MuxError) => new Socket.SocketError({ reason: new Socket.SocketWriteError({ cause }) })
const closed = new Socket.SocketError({ reason: new Socket.SocketCloseError({ code: 1000 }) })

/**
 * Presents the stream as Effect's `Socket`. TLS upgrade is not supported on a virtual stream.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toSocket = (stream: MuxStream): Socket.Socket =>
  Socket.make({
    reader: Effect.succeed({
      pull: stream.read.pipe(
        Effect.mapError(readError),
        Effect.flatMap((chunk) => (chunk === null ? Effect.fail(closed) : Effect.succeed([chunk] as const)))
      ),
      upgrade: () =>
        Effect.fail(
          new Socket.SocketError({
            reason: new Socket.SocketUpgradeError({
              cause: new Error("TLS upgrade is not available on a plait stream")
            })
          })
        )
    }),
    writer: Effect.acquireRelease(
      Effect.succeed({
        write: (chunk: Uint8Array | string | Socket.CloseEvent) => {
          if (Socket.isCloseEvent(chunk)) return chunk.code === 1000 ? stream.closeWrite : stream.reset
          return stream
            .write([typeof chunk === "string" ? encoder.encode(chunk) : chunk])
            .pipe(Effect.mapError(writeError))
        },
        writeAll: (chunks: ReadonlyArray<Uint8Array | string>) =>
          stream
            .write(chunks.map((chunk) => (typeof chunk === "string" ? encoder.encode(chunk) : chunk)))
            .pipe(Effect.mapError(writeError))
      }),
      () => stream.closeWrite
    )
  })
