/**
 * Opens streams to a plait server from inside an Effect application — no TCP client, no proxy
 * process: the application holds the supervised link itself.
 *
 * Invariants:
 * - `open` waits at most `linkWaitMillis` for a link, then fails with a typed `LinkUnavailable`;
 *   an open that fails on a live link fails with `OpenFailed` carrying the session's `MuxError`.
 * - A stream for a service is opened only where it can reach that service: when the session agreed
 *   on open messages, its first bytes are the open message (service name, client address) and
 *   the caller's bytes follow; with a plain yamux peer only the default service is reachable, and
 *   naming another fails with `ServiceUnsupported` before any stream is opened.
 * - The proxy is built on this same service, one stream per client connection.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, type Scope } from "effect"
import type { SessionConfig } from "../session/Config.ts"
import { type MuxStream, scopedStream } from "../session/MuxStream.ts"
import type * as Endpoint from "../transport/Endpoint.ts"
import * as OpenMessage from "../transport/OpenMessage.ts"
import * as Tcp from "../transport/Tcp.ts"
import type { Transport, TransportError } from "../transport/Transport.ts"
import * as Link from "./Link.ts"
import { OpenFailed, ProxyError, ServiceUnsupported } from "./ProxyError.ts"

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
  /**
   * A link made elsewhere (e.g. `LinkListener.listen`, which accepts links from servers that dial
   * this side) instead of dialling `upstream`; its scope is the caller's.
   */
  readonly link?: Link.Link
  readonly session?: Partial<SessionConfig>
  readonly retry?: Link.RetryOptions
  /** The first stream id of each session; a seam for testing id exhaustion. */
  readonly firstStreamId?: number
  /** How long `open` waits for a link (default 10 s). */
  readonly linkWaitMillis?: number
  /** Resumption of the link (`Link.LinkOptions.resume`); ignored with `link`. */
  readonly resume?: Link.LinkOptions["resume"]
}

/**
 * What a stream's open message says besides the service: the client it carries.
 *
 * @since 0.2.0
 * @category models
 */
export interface OpenOptions {
  /** The client's address (the proxy passes its TCP client's). */
  readonly source?: Endpoint.Endpoint | undefined
  /** The address the client connected to. */
  readonly destination?: Endpoint.Endpoint | undefined
}

/**
 * A stream opener over a supervised link.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientService {
  /** Opens a stream to the default service; scope exit sends FIN, interruption or failure RST. */
  readonly open: Effect.Effect<MuxStream, ProxyError, Scope.Scope>
  /** Opens a stream to the default service that the caller closes or resets itself. */
  readonly openUnscoped: Effect.Effect<MuxStream, ProxyError>
  /** Opens a stream to the named service; scope exit sends FIN, interruption or failure RST. */
  readonly openService: (service: string, options?: OpenOptions) => Effect.Effect<MuxStream, ProxyError, Scope.Scope>
  /** Opens a stream to the named service that the caller closes or resets itself. */
  readonly openServiceUnscoped: (service: string, options?: OpenOptions) => Effect.Effect<MuxStream, ProxyError>
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
 * The service of streams opened without a name.
 *
 * @since 0.2.0
 * @category constants
 */
export const DEFAULT_SERVICE = OpenMessage.DEFAULT_SERVICE

const NO_OPTIONS: OpenOptions = {}

/**
 * Starts the link; streams can be opened as long as the scope lives.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function* (options: ClientOptions = {}) {
  const upstream = options.upstream ?? DEFAULT_UPSTREAM
  const linkWaitMillis = options.linkWaitMillis ?? 10_000
  const link: Link.Link =
    options.link !== undefined
      ? options.link
      : yield* Link.make({
          dial: options.dial ?? Tcp.connect(upstream),
          upstream: Tcp.formatAddress(upstream),
          ...(options.session === undefined ? {} : { session: options.session }),
          ...(options.retry === undefined ? {} : { retry: options.retry }),
          ...(options.firstStreamId === undefined ? {} : { firstStreamId: options.firstStreamId }),
          ...(options.resume === undefined ? {} : { resume: options.resume })
        })

  const attempt = (service: string, open: OpenOptions) =>
    Effect.flatMap(link.session(linkWaitMillis), (session) => {
      const agreement = link.agreement(session)
      if (agreement.streamOpen === 0 && service !== DEFAULT_SERVICE) {
        return Effect.fail(
          new ProxyError({
            reason: new ServiceUnsupported({
              service,
              detail: `${session.remoteAddress} is a plain yamux peer (no open messages): only the default service is reachable`
            })
          })
        )
      }
      return session.openUnscoped.pipe(
        Effect.mapError((cause) => new ProxyError({ reason: new OpenFailed({ cause }) })),
        Effect.tap((stream) =>
          agreement.streamOpen === 0
            ? Effect.void
            : // Queued ahead of anything the caller writes; the opener never waits for an answer.
              stream
                .write([OpenMessage.encode({ service, source: open.source, destination: open.destination })])
                .pipe(Effect.mapError((cause) => new ProxyError({ reason: new OpenFailed({ cause }) })))
        )
      )
    })

  // An open refused by a session that is retiring in good order (the server's GO_AWAY, stream ids
  // exhausted) is tried once more: `link.session` then waits for the session that replaces it. A
  // lost link is not retried here: its clients are reset promptly.
  const openServiceUnscoped = (service: string, open: OpenOptions = NO_OPTIONS) => {
    const invalid = OpenMessage.validateServiceName(service)
    if (invalid !== undefined) {
      return Effect.fail(new ProxyError({ reason: new ServiceUnsupported({ service, detail: invalid }) }))
    }
    return attempt(service, open).pipe(
      Effect.catchIf(
        (error) =>
          error.reason._tag === "OpenFailed" &&
          (error.reason.cause.reason._tag === "RemoteGoAway" || error.reason.cause.reason._tag === "StreamsExhausted"),
        () => attempt(service, open)
      )
    )
  }
  const openUnscoped = openServiceUnscoped(DEFAULT_SERVICE)
  const service: ClientService = {
    open: Effect.flatMap(openUnscoped, scopedStream),
    openUnscoped,
    openService: (name, open) => Effect.flatMap(openServiceUnscoped(name, open), scopedStream),
    openServiceUnscoped,
    link
  }
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

/**
 * Opens a stream to `service` (default: the default service) with the {@link Client} in context;
 * scope exit sends FIN, interruption or failure RST.
 *
 * @since 0.2.0
 * @category accessors
 */
export const open = (
  service: string = DEFAULT_SERVICE,
  options?: OpenOptions
): Effect.Effect<MuxStream, ProxyError, Client | Scope.Scope> =>
  Effect.flatMap(Effect.service(Client), (client) => client.openService(service, options))
