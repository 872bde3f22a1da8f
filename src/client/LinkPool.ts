/**
 * A pool of links over several servers — the proxy's `--upstream A,B,… --links N` — seen from the
 * openers as one {@link Link.Link}: `session` hands out the best live session of the pool.
 *
 * Invariants:
 * - The pool keeps `links` supervised links, each made by {@link Link.make} and a unit of its own
 *   (it dials, negotiates and redials by itself, in its own scope). The pool only decides which server
 *   each dial attempt goes to, which live link takes each new stream, and when a link moves.
 * - New streams go to the live link (session open, not moving away) with the fewest open streams;
 *   ties go to the lowest measured round trip. A link that dies fails only its own streams; while some
 *   links are down, new streams go to the others at once. Only when no link is up does an opener wait
 *   (bounded by its `waitMillis`).
 * - Servers: each configured address, and each address a DNS name resolves to (looked up again at each
 *   dial round, and every 10 s while all links are up, all addresses), is a server of its own. An attempt goes to the eligible server with the
 *   fewest links (ties: fewer failures, then the one picked longest ago). Each server has its own
 *   backoff: a failed dial, TLS or token handshake or negotiation, a session that dies within 5 s
 *   without a GO_AWAY, or a health ping unanswered within the keepalive timeout (not while the link
 *   is suspended for a resume, which has its own deadline) each count against
 *   it and push its next attempt back (capped exponential, with jitter). Such a server is tried less
 *   often, never dropped; when no server is eligible, the attempt waits for the earliest one.
 * - A server's GO_AWAY(0) (its graceful shutdown) is no failure: the link redials at once, and since
 *   a draining server no longer accepts, the attempt lands on another one.
 * - With resumption, a link whose connection was lost takes no new streams while it resumes, and its
 *   redials go to the server that holds its session (no other can continue it).
 * - Rebalancing: when a server carries two links more than an eligible one, a probe link dials the
 *   lighter server; once it is up it takes the slot, and the link it replaces stops taking new
 *   streams and is closed once its streams are done — a move never resets a stream. A probe that
 *   fails counts against its server and changes nothing. One move at a time.
 * - Time only through Effect's Clock; every wait is bounded or ends with the pool's scope, which
 *   closes every link at once (each drains as a single link does).
 *
 * @since 0.2.0
 */
import * as dns from "node:dns"
import * as net from "node:net"
import { Clock, Effect, Exit, Scope } from "effect"
import { Signal } from "../internal/session/Signal.ts"
import type { SessionConfig } from "../session/Config.ts"
import type * as Session from "../session/Session.ts"
import * as Negotiation from "../transport/Negotiation.ts"
import * as Tcp from "../transport/Tcp.ts"
import { type Transport, TransportError } from "../transport/Transport.ts"
import * as Link from "./Link.ts"
import { LinkUnavailable, ProxyError } from "./ProxyError.ts"

/**
 * One server of the pool: the address dialled, and the host it was configured as.
 *
 * @since 0.2.0
 * @category models
 */
export interface Upstream {
  /** What is dialled: the configured address, or one address its host name resolved to. */
  readonly address: Tcp.TcpAddress
  /** The configured host (a name or an address): the name a TLS certificate must carry. */
  readonly host: string
}

/**
 * Options of {@link make}.
 *
 * @since 0.2.0
 * @category models
 */
export interface PoolOptions {
  /** The configured servers (at least one); a host name counts once per address it resolves to. */
  readonly servers: ReadonlyArray<Tcp.TcpAddress>
  /** Links kept open (default 1). */
  readonly links?: number
  /** Dials one server (TLS, token); default plain TCP to `upstream.address`. */
  readonly dial?: (upstream: Upstream) => Effect.Effect<Transport, TransportError, Scope.Scope>
  /** Resolves a host name to its addresses (default `node:dns` lookup, all addresses). */
  readonly resolve?: (host: string) => Effect.Effect<ReadonlyArray<string>, TransportError>
  readonly session?: Partial<SessionConfig>
  /** Resumption of each link (`Link.LinkOptions.resume`): each link resumes on its own. */
  readonly resume?: Link.LinkOptions["resume"]
  /** Each server's backoff (default 100 ms doubling to 5 s, jittered); `maxAttempts` is ignored. */
  readonly retry?: Link.RetryOptions
  /** Bound on one dial, handshakes included (default 10 s). */
  readonly dialTimeoutMillis?: number
  /** Bound on each link's negotiation (default 10 s). */
  readonly negotiationTimeoutMillis?: number
  /** How often each link is pinged for its round trip and health (default 5 s; 0: never). */
  readonly healthIntervalMillis?: number
  /** How often the spread of links over servers is checked (default 1 s; 0: never rebalance). */
  readonly rebalanceIntervalMillis?: number
  /**
   * While every link is up nothing dials, so host names are looked up again this often for the
   * rebalancing check: a server that appears under a name (a new pod) gets links (default 10 s).
   */
  readonly resolveIntervalMillis?: number
}

/**
 * One link of the pool, for status pages.
 *
 * @since 0.2.0
 * @category models
 */
export interface LinkFacts {
  /** The slot, 0 to `links` − 1. */
  readonly slot: number
  /** `up`: takes new streams; `connecting`: dialling or backing off; `draining`: moving away. */
  readonly state: "up" | "connecting" | "draining"
  /** The server of the current (or last) attempt, as `host:port`. */
  readonly server: string | undefined
  readonly session: Session.Session | undefined
  /** Streams open on it now. */
  readonly streams: number
  /** The last health ping's round trip. */
  readonly rttMillis: number | undefined
}

/**
 * One server of the pool, for status pages.
 *
 * @since 0.2.0
 * @category models
 */
export interface ServerFacts {
  /** The address dialled, `host:port`. */
  readonly address: string
  /** The configured host it came from. */
  readonly host: string
  /** Links on it now (up or dialling). */
  readonly links: number
  /** Failures in a row (reset once a link to it has stayed up 5 s). */
  readonly failures: number
  /** Milliseconds until it may be tried again (0: now). */
  readonly retryInMillis: number
  readonly lastError: string | undefined
}

/**
 * A running pool: a {@link Link.Link} whose `session` and `current` give the best live session.
 *
 * @since 0.2.0
 * @category models
 */
export interface LinkPool extends Link.Link {
  /** Links kept open. */
  readonly size: number
  /** Every link's state, by slot (moving links included). */
  readonly links: () => ReadonlyArray<LinkFacts>
  /** Every server seen so far (configured or resolved). */
  readonly servers: () => ReadonlyArray<ServerFacts>
  /** The sessions alive now, draining ones included: one per link, for status pages. */
  readonly sessions: () => ReadonlyArray<Session.Session>
  /** Sessions established beyond each slot's first. */
  readonly reconnects: () => number
}

/** A link that lived this long was healthy: its server's failures are forgotten. */
const HEALTHY_MILLIS = 5_000
const DEFAULT_INITIAL_MILLIS = 100
const DEFAULT_MAX_MILLIS = 5_000
const DEFAULT_DIAL_TIMEOUT_MILLIS = 10_000
const DEFAULT_HEALTH_MILLIS = 5_000
const DEFAULT_REBALANCE_MILLIS = 1_000
/** Addresses resolved this recently are reused by the next dial round (startup dials N at once). */
const RESOLVE_REUSE_MILLIS = 1_000
const DEFAULT_RESOLVE_MILLIS = 10_000
const RESOLVE_TIMEOUT_MILLIS = 5_000
/**
 * The links' own retry policy: next to nothing, since every attempt first waits, in the pool, for a
 * server whose backoff has run out (a tight loop is impossible).
 */
const LINK_RETRY: Link.RetryOptions = { initialMillis: 1, maxMillis: 1 }

/**
 * Resolves a host name with the system resolver (`/etc/hosts`, DNS), every address.
 *
 * @since 0.2.0
 * @category utils
 */
export const lookupAll = (host: string): Effect.Effect<ReadonlyArray<string>, TransportError> =>
  Effect.callback<ReadonlyArray<string>, TransportError>((resume) => {
    dns.lookup(host, { all: true }, (error, addresses) => {
      resume(
        error === null
          ? Effect.succeed(addresses.map((entry) => entry.address))
          : Effect.fail(
              new TransportError({
                operation: "connect",
                message: `cannot resolve ${host}: ${error.code ?? error.message}`
              })
            )
      )
    })
  })

class ServerState {
  readonly key: string
  readonly upstream: Upstream
  failures = 0
  nextAttemptAt = 0
  lastError: string | undefined = undefined
  /** When it was last picked (a counter): ties go to the one picked longest ago. */
  picked = 0
  constructor(upstream: Upstream) {
    this.upstream = upstream
    this.key = Tcp.formatAddress(upstream.address)
  }
}

type Kind = "active" | "probe" | "retiring"

class Member {
  readonly slot: number
  kind: Kind
  readonly scope: Scope.Closeable
  link: Link.Link | undefined = undefined
  /** The server of the attempt in progress, or of the session it gave (counts as that server's load). */
  target: ServerState | undefined = undefined
  /** A probe's server, and the member it replaces once up. */
  readonly probeTarget: ServerState | undefined
  readonly replaces: Member | undefined
  attempts = 0
  dialFailed = false
  sessionsAtAttempt = 0
  sessions = 0
  session: Session.Session | undefined = undefined
  rttMillis: number | undefined = undefined
  retiredAt = 0
  constructor(slot: number, kind: Kind, scope: Scope.Closeable, probeTarget?: ServerState, replaces?: Member) {
    this.slot = slot
    this.kind = kind
    this.scope = scope
    this.probeTarget = probeTarget
    this.replaces = replaces
  }
  /**
   * Its session, if it takes new streams. Only once the pool has seen it (`onSession` runs just after
   * the link makes it current): before, its agreement (open messages or not) is not known here.
   */
  live(): Session.Session | undefined {
    const link = this.link
    const session = link?.current()
    return session !== undefined && session === this.session && session.isOpen() && !link!.suspended()
      ? session
      : undefined
  }
  /** Its link is redialling to resume its current session (which must go to the same server). */
  resuming(): boolean {
    const session = this.session
    return session !== undefined && !session.isClosed() && this.link?.current() === session
  }
}

/** Backoff before the `n`-th attempt in a row after failures: capped exponential with jitter. */
const backoffMillis = (retry: Link.RetryOptions | undefined, n: number): number => {
  const initial = retry?.initialMillis ?? DEFAULT_INITIAL_MILLIS
  const max = retry?.maxMillis ?? DEFAULT_MAX_MILLIS
  const base = Math.min(initial * 2 ** Math.min(n - 1, 30), max)
  return Math.round(base * (0.5 + Math.random() * 0.5))
}

/**
 * Starts the pool; it lives as long as the scope.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function* (options: PoolOptions) {
  if (options.servers.length === 0) {
    return yield* new TransportError({ operation: "connect", message: "a link pool needs at least one server" })
  }
  const size = Math.max(1, Math.floor(options.links ?? 1))
  const poolScope = yield* Effect.scope
  const clock = yield* Clock.Clock
  const now = () => clock.currentTimeMillisUnsafe()
  const dialUpstream = options.dial ?? ((upstream: Upstream) => Tcp.connect(upstream.address))
  const resolve = options.resolve ?? lookupAll
  const dialTimeoutMillis = options.dialTimeoutMillis ?? DEFAULT_DIAL_TIMEOUT_MILLIS
  const healthMillis = options.healthIntervalMillis ?? DEFAULT_HEALTH_MILLIS
  const rebalanceMillis = options.rebalanceIntervalMillis ?? DEFAULT_REBALANCE_MILLIS
  const resolveMillis = options.resolveIntervalMillis ?? DEFAULT_RESOLVE_MILLIS
  const configured = options.servers.map(Tcp.formatAddress).join(",")
  const named = options.servers.some((server) => net.isIP(server.host) === 0)

  const known = new Map<string, ServerState>()
  const serverFor = (upstream: Upstream) => {
    const key = Tcp.formatAddress(upstream.address)
    let state = known.get(key)
    if (state === undefined) {
      state = new ServerState(upstream)
      known.set(key, state)
    }
    return state
  }
  // The last addresses each configured entry resolved to: kept when a later lookup fails.
  const lastResolved = new Map<number, ReadonlyArray<ServerState>>()
  let candidates: ReadonlyArray<ServerState> = []
  let resolvedAt = Number.NEGATIVE_INFINITY
  let picks = 0

  const members: Array<Member> = []
  const probes = new Set<Member>()
  const retiring = new Set<Member>()
  const live = new Set<Session.Session>()
  const agreements = new WeakMap<Session.Session, Negotiation.Agreement>()
  const everUp = new Set<number>()
  const changed = new Signal()
  let generation = 0

  const fail = (server: ServerState, message: string) => {
    server.failures++
    server.lastError = message
    server.nextAttemptAt = now() + backoffMillis(options.retry, server.failures)
  }

  const loadOf = (server: ServerState, except?: Member) => {
    let load = 0
    for (const m of members) if (m !== except && m.target === server) load++
    for (const m of probes) if (m !== except && m.target === server) load++
    return load
  }

  const resolveEntry = (entry: Tcp.TcpAddress, index: number): Effect.Effect<ReadonlyArray<ServerState>> => {
    if (net.isIP(entry.host) !== 0) return Effect.succeed([serverFor({ address: entry, host: entry.host })])
    return resolve(entry.host).pipe(
      Effect.timeoutOrElse({
        duration: RESOLVE_TIMEOUT_MILLIS,
        orElse: () =>
          Effect.fail(new TransportError({ operation: "connect", message: `resolving ${entry.host} timed out` }))
      }),
      Effect.filterOrFail(
        (addresses) => addresses.length > 0,
        () => new TransportError({ operation: "connect", message: `${entry.host} has no address` })
      ),
      Effect.map((addresses) => {
        const servers = [...new Set(addresses)].map((host) =>
          serverFor({ address: { host, port: entry.port }, host: entry.host })
        )
        lastResolved.set(index, servers)
        return servers
      }),
      Effect.catch((error) =>
        Effect.gen(function* () {
          const previous = lastResolved.get(index)
          yield* Effect.logWarning(
            `pool: ${error.message}${previous === undefined ? "" : `; keeping its last ${previous.length} address(es)`}`
          )
          // Never resolved: the name itself stays a server, so its dials fail, back off and say why.
          return previous ?? [serverFor({ address: entry, host: entry.host })]
        })
      )
    )
  }

  /** The servers of this dial round (lookups younger than a second are reused). */
  const resolveAll = Effect.suspend(() => {
    if (now() - resolvedAt < RESOLVE_REUSE_MILLIS) return Effect.succeed(candidates)
    return Effect.map(Effect.forEach(options.servers, resolveEntry, { concurrency: "unbounded" }), (lists) => {
      const seen = new Set<ServerState>()
      for (const list of lists) for (const server of list) seen.add(server)
      candidates = [...seen]
      resolvedAt = now()
      return candidates
    })
  })

  /** The eligible server with the fewest links; waits for the earliest one when none is eligible. */
  const choose = (member: Member): Effect.Effect<ServerState> =>
    Effect.flatMap(resolveAll, (servers) => {
      const t = now()
      let best: ServerState | undefined
      let bestLoad = 0
      let earliest = Number.POSITIVE_INFINITY
      for (const server of servers) {
        if (server.nextAttemptAt > t) {
          earliest = Math.min(earliest, server.nextAttemptAt)
          continue
        }
        const load = loadOf(server, member)
        if (
          best === undefined ||
          load < bestLoad ||
          (load === bestLoad &&
            (server.failures < best.failures || (server.failures === best.failures && server.picked < best.picked)))
        ) {
          best = server
          bestLoad = load
        }
      }
      if (best !== undefined) {
        // Taken at once, in this synchronous step: a member choosing next counts this one's load.
        member.target = best
        return Effect.succeed(best)
      }
      return Effect.andThen(Effect.sleep(Math.max(1, earliest - t)), choose(member))
    })

  /** What the member's previous attempt came to, counted against its server. */
  const settle = (member: Member) => {
    const server = member.target
    if (server === undefined) return
    member.target = undefined
    if (member.sessions === member.sessionsAtAttempt) {
      // Connected, but the negotiation failed (a failed dial was counted when it failed).
      if (!member.dialFailed) fail(server, member.link?.lastError() ?? "the link negotiation failed")
      return
    }
    const session = member.session
    if (session === undefined) return
    const retiredByServer = !session.isClosed() // it stopped taking streams but still drains: a GO_AWAY
    const lived = now() - session.startedAt
    if (!retiredByServer && lived < HEALTHY_MILLIS) fail(server, `the link died after ${lived} ms`)
  }

  const attempt = (member: Member, server: ServerState) =>
    Effect.suspend(() => {
      member.target = server
      member.attempts++
      member.dialFailed = false
      member.sessionsAtAttempt = member.sessions
      server.picked = ++picks
      return dialUpstream(server.upstream).pipe(
        Effect.timeoutOrElse({
          duration: dialTimeoutMillis,
          orElse: () =>
            Effect.fail(
              new TransportError({
                operation: "connect",
                message: `cannot connect to ${server.key}: no connection within ${dialTimeoutMillis} ms`
              })
            )
        }),
        Effect.tapError((error) =>
          Effect.sync(() => {
            member.dialFailed = true
            fail(server, error.message)
          })
        )
      )
    })

  /** Dials `server` again for a resume, without counting it as a new attempt. */
  const redial = (server: ServerState) =>
    dialUpstream(server.upstream).pipe(
      Effect.timeoutOrElse({
        duration: dialTimeoutMillis,
        orElse: () =>
          Effect.fail(
            new TransportError({
              operation: "connect",
              message: `cannot connect to ${server.key}: no connection within ${dialTimeoutMillis} ms`
            })
          )
      })
    )

  const closeMember = (member: Member) => Effect.forkIn(Scope.close(member.scope, Exit.void), poolScope)

  /** The dial of one member's link, run once per attempt by that link's own retry loop. */
  const dialFor = (member: Member): Effect.Effect<Transport, TransportError, Scope.Scope> =>
    Effect.suspend(() => {
      // A resume of the session in place: only the server that holds it can continue it.
      if (member.resuming() && member.target !== undefined) return redial(member.target)
      settle(member)
      if (member.kind === "retiring") return Effect.never
      if (member.kind === "probe") {
        if (member.attempts === 0) return attempt(member, member.probeTarget!)
        // The probe's one attempt failed (counted against its server): the links stay as they are.
        probes.delete(member)
        return Effect.andThen(
          Effect.andThen(
            Effect.logInfo(
              `pool: ${member.probeTarget!.key} did not take link ${member.slot + 1} (${member.probeTarget!.lastError ?? "failed"}); it stays where it is`
            ),
            closeMember(member)
          ),
          Effect.never
        )
      }
      return Effect.flatMap(choose(member), (server) => attempt(member, server))
    })

  const retire = (member: Member) => {
    member.kind = "retiring"
    member.retiredAt = now()
    retiring.add(member)
  }

  /** Health: the round trip now and every interval; an unanswered ping ends the link. */
  const watch = (member: Member, session: Session.Session, server: ServerState | undefined) =>
    Effect.gen(function* () {
      let healthy = false
      const markHealthy = () => {
        if (!healthy && server !== undefined && now() - session.startedAt >= HEALTHY_MILLIS && session.isOpen()) {
          healthy = true
          server.failures = 0
          server.lastError = undefined
        }
      }
      if (healthMillis === 0) {
        yield* Effect.sleep(HEALTHY_MILLIS)
        markHealthy()
        return
      }
      const timeoutMillis = session.config.keepaliveTimeoutMillis
      // A suspended link waits for its resume, which has its own deadline: no verdict from here.
      const suspended = () => member.link?.suspended() === true
      while (!session.isClosed()) {
        if (suspended()) {
          yield* Effect.sleep(healthMillis)
          continue
        }
        const answered = yield* session.ping.pipe(Effect.timeoutOption(timeoutMillis), Effect.option)
        if (answered._tag === "None") return // the session died
        if (answered.value._tag === "None") {
          if (session.isClosed()) return
          if (suspended()) continue
          const reason = `no answer to a health ping within ${timeoutMillis} ms`
          if (server !== undefined) fail(server, reason)
          yield* Effect.logWarning(`pool: link ${member.slot + 1} to ${session.remoteAddress}: ${reason}; closing it`)
          return yield* session.abort
        }
        member.rttMillis = answered.value.value
        markHealthy()
        yield* Effect.sleep(healthMillis)
      }
    })

  /** A member's link is up (runs in that session's scope, which closes once the session has ended). */
  const onSession = (member: Member, session: Session.Session, agreement: Negotiation.Agreement) =>
    Effect.gen(function* () {
      member.sessions++
      member.session = session
      member.rttMillis = undefined
      agreements.set(session, agreement)
      live.add(session)
      yield* Effect.addFinalizer(() => Effect.sync(() => live.delete(session)))
      generation++
      everUp.add(member.slot)
      if (member.kind === "probe") {
        probes.delete(member)
        member.kind = "active"
        const replaced = member.replaces!
        if (members[member.slot] === replaced) retire(replaced)
        members[member.slot] = member
        yield* Effect.logInfo(
          `pool: link ${member.slot + 1} moved to ${session.remoteAddress}; the one it replaces drains`
        )
      }
      changed.notify()
      yield* watch(member, session, member.target)
    })

  const startMember = (slot: number, kind: Kind, probeTarget?: ServerState, replaces?: Member) =>
    Effect.gen(function* () {
      const scope = yield* Scope.fork(poolScope)
      const member = new Member(slot, kind, scope, probeTarget, replaces)
      if (kind === "probe") probes.add(member)
      member.link = yield* Link.make({
        dial: dialFor(member),
        upstream: `a pool server (link ${slot + 1} of ${size})`,
        retry: LINK_RETRY,
        ...(options.session === undefined ? {} : { session: options.session }),
        ...(options.resume === undefined ? {} : { resume: options.resume }),
        ...(options.negotiationTimeoutMillis === undefined
          ? {}
          : { negotiationTimeoutMillis: options.negotiationTimeoutMillis }),
        onSession: (session, agreement) => onSession(member, session, agreement)
      }).pipe(Scope.provide(scope))
      return member
    })

  /** Closes moved-away links once their streams are done; starts a move when the spread is uneven. */
  const rebalance = Effect.gen(function* () {
    const t = now()
    for (const member of retiring) {
      const session = member.link?.current() ?? member.session
      const idle = session === undefined || session.isClosed() || session.stats().streams === 0
      // A grace of one interval: an opener that picked this session just before the move still opens on it.
      if (idle && t - member.retiredAt >= rebalanceMillis) {
        retiring.delete(member)
        yield* closeMember(member)
      }
    }
    if (probes.size > 0) return
    if (named && t - resolvedAt >= resolveMillis) yield* resolveAll
    if (candidates.length < 2) return
    let light: ServerState | undefined
    let lightLoad = Number.POSITIVE_INFINITY
    let heavy: ServerState | undefined
    let heavyLoad = -1
    for (const server of candidates) {
      const load = loadOf(server)
      if (server.nextAttemptAt <= t && load < lightLoad) {
        light = server
        lightLoad = load
      }
      if (load > heavyLoad) {
        heavy = server
        heavyLoad = load
      }
    }
    if (light === undefined || heavy === undefined || heavyLoad - lightLoad < 2) return
    // Move the up link of the heavy server that carries the fewest streams.
    let victim: Member | undefined
    let victimStreams = Number.POSITIVE_INFINITY
    for (const member of members) {
      const session = member.live()
      if (member.target !== heavy || session === undefined) continue
      const streams = session.stats().streams
      if (streams < victimStreams) {
        victim = member
        victimStreams = streams
      }
    }
    if (victim === undefined) return
    yield* Effect.logInfo(
      `pool: ${heavy.key} has ${heavyLoad} links and ${light.key} ${lightLoad}: moving link ${victim.slot + 1}`
    )
    yield* startMember(victim.slot, "probe", light, victim)
  })

  yield* Effect.logInfo(`pool: ${size} link(s) over ${configured}`)
  for (let slot = 0; slot < size; slot++) members.push(yield* startMember(slot, "active"))
  if (rebalanceMillis > 0) {
    yield* Effect.forkIn(Effect.forever(Effect.andThen(Effect.sleep(rebalanceMillis), rebalance)), poolScope)
  }
  // Every link closes at once (each drains as a single link does), not one drain after another.
  yield* Effect.addFinalizer(() =>
    Effect.forEach([...members, ...probes, ...retiring], (member) => Scope.close(member.scope, Exit.void), {
      concurrency: "unbounded",
      discard: true
    })
  )

  /** The live link with the fewest open streams; ties: the lowest round trip. */
  const pick = (): Session.Session | undefined => {
    let best: Session.Session | undefined
    let bestStreams = Number.POSITIVE_INFINITY
    let bestRtt = Number.POSITIVE_INFINITY
    for (const member of members) {
      const session = member.live()
      if (session === undefined) continue
      const streams = session.stats().streams
      const rtt = member.rttMillis ?? Number.POSITIVE_INFINITY
      if (streams < bestStreams || (streams === bestStreams && rtt < bestRtt)) {
        best = session
        bestStreams = streams
        bestRtt = rtt
      }
    }
    return best
  }

  const lastError = (): string => {
    const failing: Array<string> = []
    for (const server of known.values()) {
      if (server.lastError !== undefined) failing.push(`${server.key}: ${server.lastError}`)
    }
    if (failing.length > 0) return failing.join("; ")
    for (const member of members) {
      const error = member.link?.lastError()
      if (error !== undefined && error !== "") return error
    }
    return "not connected yet"
  }

  const waitForSession: Effect.Effect<Session.Session> = Effect.suspend(
    function loop(): Effect.Effect<Session.Session> {
      const session = pick()
      return session !== undefined ? Effect.succeed(session) : Effect.flatMap(changed.wait, loop)
    }
  )

  const factsOf = (member: Member): LinkFacts => {
    const up = member.live()
    const session = up ?? (member.session?.isClosed() === false ? member.session : undefined)
    return {
      slot: member.slot,
      state: member.kind === "retiring" ? "draining" : up !== undefined ? "up" : "connecting",
      server: member.target?.key ?? session?.remoteAddress,
      session,
      streams: session?.stats().streams ?? 0,
      rttMillis: member.rttMillis
    }
  }

  const pool: LinkPool = {
    size,
    session: (waitMillis) =>
      Effect.suspend(() => {
        const session = pick()
        return session !== undefined
          ? Effect.succeed(session)
          : waitForSession.pipe(
              Effect.timeoutOrElse({
                duration: waitMillis,
                orElse: () =>
                  Effect.fail(
                    new ProxyError({
                      reason: new LinkUnavailable({ waitedMillis: waitMillis, lastError: lastError() })
                    })
                  )
              })
            )
      }),
    current: pick,
    generation: () => generation,
    lastError,
    agreement: (session) => agreements.get(session) ?? Negotiation.PLAIN,
    suspended: () => pick() === undefined && members.some((member) => member.link?.suspended() === true),
    links: () => [...members, ...retiring].map(factsOf),
    servers: () => {
      const t = now()
      return [...known.values()].map((server) => ({
        address: server.key,
        host: server.upstream.host,
        links: loadOf(server),
        failures: server.failures,
        retryInMillis: Math.max(0, server.nextAttemptAt - t),
        lastError: server.lastError
      }))
    },
    sessions: () => [...live].filter((session) => !session.isClosed()),
    reconnects: () => generation - everUp.size
  }
  return pool
})
