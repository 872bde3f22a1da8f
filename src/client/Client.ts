/**
 * Opens streams to a plait server from inside an Effect application — no TCP client, no proxy
 * process: the application holds the supervised link itself.
 *
 * Invariants: `open` waits at most `linkWaitMillis` for a link, then fails with a typed
 * `LinkUnavailable`; an open that fails on a live link fails with `OpenFailed` carrying the
 * session's `MuxError`. The proxy is built on this same service, one stream per client connection.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, type Scope } from "effect"
import { type MuxStream, scopedStream } from "../internal/session/Stream.ts"
import type { SessionConfig } from "../session/Config.ts"
import * as Tcp from "../transport/Tcp.ts"
import type { Transport, TransportError } from "../transport/Transport.ts"
import * as Link from "./Link.ts"
import { OpenFailed, ProxyError } from "./ProxyError.ts"

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions {
  /** The server's link address (default 127.0.0.1:7001). */
  readonly upstream?: Tcp.TcpAddress
  /** Replaces the plain TCP dial (TLS, authentication). */
  readonly dial?: Effect.Effect<Transport, TransportError, Scope.Scope>
  readonly session?: Partial<SessionConfig>
  readonly retry?: Link.RetryOptions
  /** The first stream id of each session; a seam for testing id exhaustion. */
  readonly firstStreamId?: number
  /** How long `open` waits for a link (default 10 s). */
  readonly linkWaitMillis?: number
}

/**
 * A stream opener over a supervised link.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientService {
  /** Opens a stream; scope exit sends FIN, interruption or failure RST. */
  readonly open: Effect.Effect<MuxStream, ProxyError, Scope.Scope>
  /** Opens a stream the caller closes or resets itself. */
  readonly openUnscoped: Effect.Effect<MuxStream, ProxyError>
  /** The supervised link underneath. */
  readonly link: Link.Link
}

/**
 * Default server address.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_UPSTREAM: Tcp.TcpAddress = { host: "127.0.0.1", port: 7001 }

/**
 * Starts the link; streams can be opened as long as the scope lives.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function* (options: ClientOptions = {}) {
  const upstream = options.upstream ?? DEFAULT_UPSTREAM
  const linkWaitMillis = options.linkWaitMillis ?? 10_000
  const link = yield* Link.make({
    dial: options.dial ?? Tcp.connect(upstream),
    upstream: Tcp.formatAddress(upstream),
    ...(options.session === undefined ? {} : { session: options.session }),
    ...(options.retry === undefined ? {} : { retry: options.retry }),
    ...(options.firstStreamId === undefined ? {} : { firstStreamId: options.firstStreamId })
  })
  const attempt = Effect.flatMap(link.session(linkWaitMillis), (session) =>
    Effect.mapError(session.openUnscoped, (cause) => new ProxyError({ reason: new OpenFailed({ cause }) }))
  )
  // An open refused by a session that is retiring in good order (the server's GO_AWAY, stream ids
  // exhausted) is tried once more: `link.session` then waits for the session that replaces it. A
  // lost link is not retried here: its clients are reset promptly.
  const openUnscoped = attempt.pipe(
    Effect.catchIf(
      (error) =>
        error.reason._tag === "OpenFailed" &&
        (error.reason.cause.reason._tag === "RemoteGoAway" || error.reason.cause.reason._tag === "StreamsExhausted"),
      () => attempt
    )
  )
  const service: ClientService = { open: Effect.flatMap(openUnscoped, scopedStream), openUnscoped, link }
  return service
})

/**
 * The client as a service.
 *
 * @since 0.1.0
 * @category services
 */
export class Client extends Context.Service<Client, ClientService>()("plait/client/Client") {}

/**
 * A layer holding the link for the layer's lifetime.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: ClientOptions = {}): Layer.Layer<Client> => Layer.effect(Client, make(options))
