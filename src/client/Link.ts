/**
 * The proxy's persistent link to the server: a supervised, scoped resource that is redialled
 * whenever it is lost.
 *
 * Invariants:
 * - At most one session is *current* (open for new streams) at a time. A session that dies (TCP
 *   error, keepalive timeout) or receives GO_AWAY stops being current at once; a new one is dialled
 *   while the old one's streams finish or fail on their own.
 * - Dialling retries forever by default with capped exponential backoff and jitter; each failed
 *   attempt is logged with its reason.
 * - A caller waiting for a session waits at most its bound, then gets a typed `LinkUnavailable`.
 * - Closing the link's scope stops redialling and closes the current session gracefully.
 * - Every connection is negotiated (`Negotiation.dialer`) before its session starts, inside the
 *   retried attempt: a peer that answers the probe with garbage or stalls mid-hello is a failed
 *   dial (logged, backed off), and a plain yamux peer gets a plain session. The agreement of each
 *   session is kept with it ({@link Link.agreement}) for the openers to consult.
 * - With `resume` (and both ends offering it in the negotiation), each session runs over a
 *   resumable transport (`Resume.dial`, inside the retried attempt): a lost connection (TCP error,
 *   silence beneath the session) is redialled and the same session resumed — its streams pause,
 *   they are not reset — until the resume window runs out or the server refuses; only then does
 *   the session end and a fresh one get dialled. The yamux keepalive is off for such sessions:
 *   liveness is the layer's heartbeat.
 * - Which end dialled is independent of which end opens streams: a proxy dials a server (`make`
 *   with role `proxy`), or a server dials a proxy (`make` with role `server` and `onSession` serving
 *   the streams), and a proxy may instead accept links (`LinkListener.listen`), behind the same
 *   {@link Link} interface.
 *
 * @since 0.1.0
 */
import { Clock, Deferred, Effect, Exit, Fiber, Schedule, Scope } from "effect"
import { Signal } from "../internal/session/Signal.ts"
import * as Events from "../observability/Events.ts"
import * as Resume from "../resume/Resume.ts"
import type { SessionConfig } from "../session/Config.ts"
import { ConfigError } from "../session/Config.ts"
import * as Session from "../session/Session.ts"
import * as Negotiation from "../transport/Negotiation.ts"
import type { Transport, TransportError } from "../transport/Transport.ts"
import { LinkUnavailable, ProxyError } from "./ProxyError.ts"

/**
 * Backoff between dial attempts.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryOptions {
  /** First delay (default 100 ms). */
  readonly initialMillis?: number
  /** Largest delay before jitter (default 5 s). */
  readonly maxMillis?: number
  /** Give up after this many failed attempts (default: never). */
  readonly maxAttempts?: number
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface LinkOptions {
  /** Dials the server once; the transport lives as long as the given scope. */
  readonly dial: Effect.Effect<Transport, TransportError, Scope.Scope>
  /** Describes the upstream in logs, e.g. `127.0.0.1:7001`. */
  readonly upstream: string
  readonly session?: Partial<SessionConfig>
  readonly retry?: RetryOptions
  /** The first stream id of each session (default 1); a seam for testing id exhaustion. */
  readonly firstStreamId?: number
  /** This end's role in the negotiation (default `proxy`: it opens the streams). */
  readonly role?: Negotiation.Role
  /** Bound on the link negotiation of each connection (default 10 s). */
  readonly negotiationTimeoutMillis?: number
  /**
   * Runs with each new session, in that session's scope (which closes once the session has ended):
   * a server that dials out serves the session's streams here.
   */
  readonly onSession?: (
    session: Session.Session,
    agreement: Negotiation.Agreement
  ) => Effect.Effect<void, never, Scope.Scope>
  /**
   * Resumption (`docs/resume.md`): offered in each negotiation when set and its window is above 0.
   * `token` is the link's `--token` (it keys the session secret).
   */
  readonly resume?: { readonly config?: Partial<Resume.ResumeConfig>; readonly token?: string }
}

/**
 * The supervised link.
 *
 * @since 0.1.0
 * @category models
 */
export interface Link {
  /** The current session, waiting up to `waitMillis` for one to come up. */
  readonly session: (waitMillis: number) => Effect.Effect<Session.Session, ProxyError>
  /** The current session, if one is up. */
  readonly current: () => Session.Session | undefined
  /** How many sessions have been established so far. */
  readonly generation: () => number
  /** Why the link is not up (the last dial error or the reason the last session ended). */
  readonly lastError: () => string
  /** What was negotiated for `session` (plain yamux for a session this link does not know). */
  readonly agreement: (session: Session.Session) => Negotiation.Agreement
  /**
   * The current session's connection was lost and a resume is under way: its streams wait, and an
   * opener with another link (a pool) should use that one. Always false without resumption.
   */
  readonly suspended: () => boolean
}

/** Default first backoff delay. */
const DEFAULT_INITIAL_MILLIS = 100
/** Default largest backoff delay before jitter. */
const DEFAULT_MAX_MILLIS = 5_000

/**
 * The dial schedule: capped exponential backoff with jitter, forever unless bounded.
 *
 * @since 0.1.0
 * @category utils
 */
export const retrySchedule = (options: RetryOptions = {}): Schedule.Schedule<unknown, unknown> => {
  const base = Schedule.min([
    Schedule.exponential(options.initialMillis ?? DEFAULT_INITIAL_MILLIS),
    Schedule.spaced(options.maxMillis ?? DEFAULT_MAX_MILLIS)
  ]).pipe(Schedule.jittered)
  return options.maxAttempts === undefined ? base : base.pipe(Schedule.upTo({ times: options.maxAttempts - 1 }))
}

/** A session that lived at least this long resets the quick-death backoff. */
const HEALTHY_MILLIS = 5_000

/**
 * The delay before redialling after the `n`-th session in a row that died quickly: the same
 * policy as {@link retrySchedule} (a dial that "succeeded" but was refused straight after counts as
 * a failed attempt), computed here because it spans generations rather than one retried effect.
 */
const backoffMillis = (retry: RetryOptions | undefined, n: number): number => {
  const initial = retry?.initialMillis ?? DEFAULT_INITIAL_MILLIS
  const max = retry?.maxMillis ?? DEFAULT_MAX_MILLIS
  const base = Math.min(initial * 2 ** Math.min(n - 1, 30), max)
  return Math.round(base * (0.5 + Math.random() * 0.5))
}

/**
 * The state every kind of link shares: the current session, its agreement, and waiting for one.
 * @internal
 * @since 0.1.0
 * @category models
 */
export class LinkCore {
  current: Session.Session | undefined = undefined
  generation = 0
  lastError = "not connected yet"
  /** The current session waits for a resume (its connection was lost). */
  suspended = false
  readonly changed = new Signal()
  readonly agreements = new WeakMap<Session.Session, Negotiation.Agreement>()

  /** A session is up and takes new streams. */
  up(session: Session.Session, agreement: Negotiation.Agreement): void {
    this.agreements.set(session, agreement)
    this.generation++
    this.current = session
    this.changed.notify()
  }

  /** `session` stopped taking new streams because of `reason`. */
  down(session: Session.Session, reason: string): void {
    if (this.current === session) {
      this.current = undefined
      this.suspended = false
    }
    this.lastError = reason
    this.changed.notify()
  }

  readonly waitForSession: Effect.Effect<Session.Session> = Effect.suspend(() => this.loop())
  private loop(): Effect.Effect<Session.Session> {
    const current = this.current
    if (current?.isOpen()) return Effect.succeed(current)
    return Effect.flatMap(this.changed.wait, () => this.loop())
  }

  /** The {@link Link} view of this state. */
  view(): Link {
    return {
      session: (waitMillis) =>
        Effect.suspend(() => {
          // The common case, a live session, costs no timer.
          const current = this.current
          return current?.isOpen()
            ? Effect.succeed(current)
            : this.waitForSession.pipe(
                Effect.timeoutOrElse({
                  duration: waitMillis,
                  orElse: () =>
                    Effect.fail(
                      new ProxyError({
                        reason: new LinkUnavailable({ waitedMillis: waitMillis, lastError: this.lastError })
                      })
                    )
                })
              )
        }),
      current: () => this.current,
      generation: () => this.generation,
      lastError: () => this.lastError,
      agreement: (session) => this.agreements.get(session) ?? Negotiation.PLAIN,
      suspended: () => this.suspended
    }
  }
}

/**
 * Starts the supervisor; the link lives as long as the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function* (options: LinkOptions) {
  const events = yield* Events.current
  const scope = yield* Effect.scope
  const core = new LinkCore()
  const role = options.role ?? "proxy"
  // Resumption: the layer's settings follow the session's keepalive unless given (validated here,
  // once: a bad setting is a programming error of the caller; the CLI validates its flags first).
  const resumeConfig =
    options.resume === undefined || (options.resume.config?.windowMillis ?? Resume.defaults.windowMillis) === 0
      ? undefined
      : Resume.linkConfig(options.session, options.resume.config)
  if (resumeConfig !== undefined) {
    const valid = Resume.validateResumeConfig(resumeConfig)
    if (valid instanceof ConfigError) return yield* Effect.die(valid)
  }
  const negotiate = Negotiation.dialer({
    role,
    resume: resumeConfig !== undefined,
    ...(options.negotiationTimeoutMillis === undefined ? {} : { timeoutMillis: options.negotiationTimeoutMillis })
  })
  let attempt = 0
  let quickDeaths = 0

  // Dial, negotiation and (when agreed) the resumable session's hello are one attempt: a peer that
  // garbles any of them is retried like one that refuses the connection.
  const dialWithRetry = (generationScope: Scope.Scope) =>
    Effect.suspend(() => {
      attempt++
      return options.dial.pipe(
        Effect.flatMap(negotiate),
        Effect.flatMap((negotiated) => resumable(negotiated)),
        Scope.provide(generationScope)
      )
    }).pipe(
      Effect.tapError((error) =>
        Effect.suspend(() => {
          core.lastError = error.message
          return Effect.logWarning(`link: dial attempt ${attempt} to ${options.upstream} failed: ${error.message}`)
        })
      ),
      Effect.retry(retrySchedule(options.retry))
    )

  /** Opens the resumable session over a negotiated connection that agreed on it. */
  const resumable = (negotiated: Negotiation.Negotiated) =>
    resumeConfig === undefined || !negotiated.agreement.resume
      ? Effect.succeed({ ...negotiated, resumed: undefined })
      : Resume.dial(negotiated.transport, {
          config: resumeConfig,
          ...(options.resume?.token === undefined ? {} : { token: options.resume.token }),
          // The dialler always reaches the same address: the peer does not change with a resume.
          onEvent: Events.forResume(events, role, () => negotiated.transport.remoteAddress)
        }).pipe(
          Effect.catchTag("ConfigError", (error) => Effect.die(error)),
          Effect.map((dialed) =>
            dialed._tag === "Plain"
              ? { transport: dialed.transport, agreement: negotiated.agreement, resumed: undefined }
              : { transport: dialed.transport, agreement: negotiated.agreement, resumed: dialed.transport }
          )
        )

  /** Redials and resumes each time the connection beneath `transport` is lost. */
  const keepResumed = (transport: Resume.DialerTransport) =>
    Resume.keepResumed(
      transport,
      // A server that no longer offers resumption (restarted without it) cannot resume this session.
      options.dial.pipe(
        Effect.flatMap(negotiate),
        Effect.flatMap((negotiated) =>
          negotiated.agreement.resume
            ? Effect.succeed(negotiated.transport)
            : Effect.andThen(negotiated.transport.close, Effect.fail(Resume.unsupportedError(options.upstream)))
        )
      ),
      {
        onLoss: (reason) =>
          Effect.andThen(
            Effect.sync(() => {
              core.suspended = true
            }),
            Effect.logWarning(
              `link: connection to ${options.upstream} lost (${reason}); resuming session ${transport.ticket}`
            )
          ),
        onResumed: (attempts) =>
          Effect.andThen(
            Effect.sync(() => {
              core.suspended = false
            }),
            Effect.logInfo(
              `link: session ${transport.ticket} resumed (attempt ${attempts}, ${transport.stats().resumes} resume(s) so far)`
            )
          ),
        onAttemptFailed: (error, n) =>
          Effect.logWarning(`link: resume attempt ${n} of session ${transport.ticket} failed: ${error.message}`)
      }
    )

  const runGeneration = Effect.gen(function* () {
    const generationScope = yield* Scope.make()
    generations.add(generationScope)
    const { transport, agreement, resumed } = yield* dialWithRetry(generationScope)
    if (resumed !== undefined) yield* Effect.forkIn(keepResumed(resumed), generationScope)
    const goAway = Deferred.makeUnsafe<string>()
    const peer = transport.remoteAddress
    const publishSessionEvent = Events.forSession(events, role, peer)
    const sessionConfig =
      resumed === undefined ? options.session : Resume.sessionConfig(options.session, resumed.windowMillis)
    const session = yield* Session.make(transport, {
      client: true,
      ...(sessionConfig === undefined ? {} : { config: sessionConfig }),
      ...(options.firstStreamId === undefined ? {} : { firstStreamId: options.firstStreamId }),
      onEvent: (event) => {
        if (event._tag === "GoAwayReceived") Deferred.doneUnsafe(goAway, Exit.succeed("the peer sent GO_AWAY"))
        else if (event._tag === "StreamsExhausted") Deferred.doneUnsafe(goAway, Exit.succeed("stream ids exhausted"))
        else publishSessionEvent(event)
      }
    }).pipe(Scope.provide(generationScope))
    attempt = 0
    core.up(session, agreement)
    Events.publish(events, { _tag: "LinkUp", role, peer })
    yield* Effect.logInfo(
      `link: up to ${peer} (session ${core.generation}${agreement.peer === "plait" ? "" : ", plain yamux peer"})${
        resumed === undefined ? "" : `, resumable as ${resumed.ticket}`
      }`
    )
    if (options.onSession !== undefined) {
      yield* Effect.forkIn(options.onSession(session, agreement).pipe(Scope.provide(generationScope)), generationScope)
    }
    const startedAt = yield* Clock.currentTimeMillis
    const reason = yield* Effect.raceFirst(
      Effect.map(session.await, (error) => error.message),
      Deferred.await(goAway)
    )
    core.down(session, reason)
    Events.publish(events, { _tag: "LinkDown", role, peer, reason })
    // A session that dies at once (the peer refuses the handshake, a certificate is rejected after
    // connecting) would otherwise be redialled in a tight loop: back off as for a failed dial.
    const lived = (yield* Clock.currentTimeMillis) - startedAt
    quickDeaths = lived < HEALTHY_MILLIS ? quickDeaths + 1 : 0
    const backoff = quickDeaths === 0 ? 0 : backoffMillis(options.retry, quickDeaths)
    yield* Effect.logWarning(
      `link: down (${reason}); redialling ${options.upstream}${backoff > 0 ? ` in ${backoff} ms` : ""}`
    )
    // The old session's streams drain or fail on their own; its scope closes when it is gone.
    yield* Effect.forkIn(
      Effect.andThen(
        session.await,
        Effect.suspend(() => {
          generations.delete(generationScope)
          return Scope.close(generationScope, Exit.void)
        })
      ),
      scope
    )
    if (backoff > 0) yield* Effect.sleep(backoff)
  })

  // Sessions live in scopes of their own so that shutdown can stop redialling before closing them.
  const generations = new Set<Scope.Closeable>()
  const supervisor = yield* Effect.forkIn(Effect.forever(runGeneration), scope)
  yield* Effect.addFinalizer(() =>
    Effect.gen(function* () {
      yield* Fiber.interrupt(supervisor)
      for (const generationScope of generations) yield* Scope.close(generationScope, Exit.void)
      generations.clear()
    })
  )
  return core.view()
})
