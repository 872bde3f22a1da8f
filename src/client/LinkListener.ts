/**
 * A link that the far end dials: the proxy listens (`--link-listen`) and a server behind NAT
 * connects to it (`plait server --connect`). The proxy still opens the streams; only the direction
 * of the TCP connection is reversed. Seen from the openers it is the same {@link Link.Link} as a
 * dialled one.
 *
 * Invariants:
 * - Each accepted connection goes through the same stages as an accepted link at the server: the
 *   listener's TLS, then `handshake` (the token), then the link negotiation (acceptor side), each
 *   bounded in time; a connection failing any of them is closed, logged and counted, and nobody
 *   else notices.
 * - The newest established session is *current*: a server that lost its link and redials replaces
 *   the old session at once, even before the old one is found dead (it drains its streams or dies
 *   on its own, like a retired generation of a dialled link).
 * - At most `maxLinks` sessions and `maxHandshakes` connections in their pre-session stages are
 *   held at once; more are reset.
 * - Closing the scope stops accepting, then closes every session gracefully (GO_AWAY(0), drain).
 *
 * Security: whoever can connect to the listener and pass its handshakes gets the proxy's new client
 * streams. Off loopback, use a token (and TLS): the CLI warns loudly otherwise.
 *
 * @since 0.2.0
 */
import { Effect, Exit, FiberSet, Scope } from "effect"
import * as Events from "../observability/Events.ts"
import type { SessionConfig } from "../session/Config.ts"
import * as Session from "../session/Session.ts"
import * as Negotiation from "../transport/Negotiation.ts"
import * as Tcp from "../transport/Tcp.ts"
import type { Transport, TransportError } from "../transport/Transport.ts"
import { type Link, LinkCore } from "./Link.ts"

/**
 * Options of {@link listen}.
 *
 * @since 0.2.0
 * @category models
 */
export interface LinkListenOptions {
  /** Where servers connect. */
  readonly listen: Tcp.TcpAddress
  /** Replaces the plain TCP listener (a TLS listener); receives the listen address. */
  readonly listener?: (address: Tcp.TcpAddress) => Effect.Effect<Tcp.TcpServer, TransportError, Scope.Scope>
  /** Runs on each accepted connection before the negotiation (the token's server side). */
  readonly handshake?: (transport: Transport) => Effect.Effect<Transport, TransportError, Scope.Scope>
  readonly session?: Partial<SessionConfig>
  /** This end's role (default `proxy`). */
  readonly role?: Negotiation.Role
  /** Bound on each connection's negotiation (default 10 s). */
  readonly negotiationTimeoutMillis?: number
  /** Sessions held at once; more are reset (default 16). */
  readonly maxLinks?: number
  /** Connections in their handshakes at once; more are reset (default 1024). */
  readonly maxHandshakes?: number
}

/**
 * A listening link and its bound address.
 *
 * @since 0.2.0
 * @category models
 */
export interface ListeningLink extends Link {
  /** The bound address (the real port when 0 was asked for). */
  readonly address: Tcp.TcpAddress
}

/**
 * Listens for links; the link lives as long as the scope.
 *
 * @since 0.2.0
 * @category constructors
 */
export const listen = Effect.fnUntraced(function* (options: LinkListenOptions) {
  const events = yield* Events.current
  const scope = yield* Effect.scope
  const core = new LinkCore()
  const role = options.role ?? "proxy"
  const maxLinks = options.maxLinks ?? 16
  const maxHandshakes = options.maxHandshakes ?? 1024
  const negotiate = Negotiation.acceptor({
    role,
    ...(options.negotiationTimeoutMillis === undefined ? {} : { timeoutMillis: options.negotiationTimeoutMillis })
  })
  const sessions = new Set<Session.Session>()
  let handshaking = 0

  const serveConnection = (accepted: Transport) =>
    Effect.gen(function* () {
      handshaking++
      const { transport, agreement } = yield* Effect.suspend(() =>
        (options.handshake === undefined ? Effect.succeed(accepted) : options.handshake(accepted)).pipe(
          Effect.flatMap(negotiate)
        )
      ).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            handshaking--
          })
        )
      )
      if (sessions.size >= maxLinks) {
        yield* Effect.logWarning(`link: refusing a link from ${accepted.remoteAddress}: ${maxLinks} links already`)
        return yield* accepted.reset
      }
      const peer = transport.remoteAddress
      const publishSessionEvent = Events.forSession(events, role, peer)
      const session = yield* Session.make(transport, {
        client: false,
        ...(options.session === undefined ? {} : { config: options.session }),
        onEvent: (event) => {
          if (event._tag === "GoAwayReceived") core.down(session, "the peer sent GO_AWAY")
          else publishSessionEvent(event)
        }
      })
      sessions.add(session)
      core.up(session, agreement)
      Events.publish(events, { _tag: "LinkUp", role, peer })
      yield* Effect.logInfo(
        `link: up from ${peer} (session ${core.generation}${agreement.peer === "plait" ? "" : ", plain yamux peer"})`
      )
      const reason = (yield* session.await).message
      sessions.delete(session)
      core.down(session, reason)
      Events.publish(events, { _tag: "LinkDown", role, peer, reason })
      yield* Effect.logWarning(`link: from ${peer} down (${reason}); waiting for the server to connect again`)
    }).pipe(
      Effect.scoped,
      Effect.catch((error) =>
        Effect.suspend(() => {
          core.lastError = error.message
          return Effect.logWarning(`link: connection from ${accepted.remoteAddress} refused: ${error.message}`)
        })
      )
    )

  const connections = yield* FiberSet.make<void, never>()
  const admit = (transport: Transport) =>
    Effect.suspend(() => {
      if (handshaking >= maxHandshakes) {
        return Effect.andThen(
          Effect.logWarning(
            `link: refusing a connection from ${transport.remoteAddress}: ${maxHandshakes} handshakes already`
          ),
          transport.reset
        )
      }
      return Effect.asVoid(FiberSet.run(connections, Effect.ensuring(serveConnection(transport), transport.close)))
    })

  const listenerScope = yield* Scope.fork(scope)
  const server = yield* (options.listener ?? Tcp.listen)(options.listen).pipe(Scope.provide(listenerScope))
  core.lastError = `no server has connected to ${Tcp.formatAddress(server.address)} yet`
  yield* Effect.logInfo(`link: accepting links from servers at ${Tcp.formatAddress(server.address)}`)
  yield* Effect.forkIn(Effect.ignore(Effect.forever(Effect.flatMap(server.accept, admit))), scope)

  yield* Effect.addFinalizer(() =>
    Effect.gen(function* () {
      yield* Scope.close(listenerScope, Exit.void)
      // Each session's own scope (in its connection fiber) closes it gracefully: GO_AWAY(0), drain.
      for (const session of sessions) yield* session.close
      yield* FiberSet.clear(connections)
    })
  )

  const link: ListeningLink = { ...core.view(), address: server.address }
  return link
})
