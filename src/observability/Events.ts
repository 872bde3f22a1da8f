/**
 * Lifecycle events of links and streams, published on an Effect `PubSub` that logs and metrics
 * subscribe to.
 *
 * Invariants: events describe lifecycle only (a link up or down, a stream opened or closed, a client
 * refused) — never data, so the data path never touches the PubSub. Publishing never blocks: the
 * PubSub slides (drops the oldest event) when a subscriber falls behind.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, PubSub } from "effect"
import type { ResumeEvent } from "../resume/Resume.ts"
import { failureCode, type ResumeFailureCode } from "../resume/ResumeError.ts"
import type { SessionEvent, SessionLimit } from "../session/Session.ts"

/**
 * One lifecycle event. `role` says which side of plait saw it; `service` (on stream events) which
 * service the stream belongs to, {@link DEFAULT_SERVICE} when absent.
 *
 * @since 0.1.0
 * @category models
 */
export type PlaitEvent =
  | { readonly _tag: "LinkUp"; readonly role: Role; readonly peer: string }
  | { readonly _tag: "LinkDown"; readonly role: Role; readonly peer: string; readonly reason: string }
  | {
      readonly _tag: "StreamOpened"
      readonly role: Role
      readonly peer: string
      readonly streamId: number
      readonly service?: string
    }
  | {
      readonly _tag: "StreamClosed"
      readonly role: Role
      readonly peer: string
      readonly streamId: number
      readonly reset: boolean
      readonly service?: string
    }
  | {
      readonly _tag: "ClientRefused"
      readonly role: Role
      readonly peer: string
      /** A bounded code, for metrics labels; `reason` is the human-readable line. */
      readonly code: RefusalCode
      readonly reason: string
    }
  | {
      readonly _tag: "LimitReached"
      readonly role: Role
      readonly peer: string
      readonly limit: SessionLimit
      readonly streamId: number
      /** What happened, when the limit ended the link (a flood budget, a frame deadline). */
      readonly detail?: string
    }
  /** The connection beneath a resumable session was lost: the session waits for a resume. */
  | { readonly _tag: "LinkSuspended"; readonly role: Role; readonly peer: string; readonly reason: string }
  /** A suspended session continues on a new connection. */
  | {
      readonly _tag: "LinkResumed"
      readonly role: Role
      readonly peer: string
      /** Bytes this side sent again. */
      readonly replayedBytes: number
      /** From the loss to the resume. */
      readonly pausedMillis: number
    }
  /** A resume failed: refused (by reason), the window ran out, or the peer could not be verified. */
  | {
      readonly _tag: "ResumeFailed"
      readonly role: Role
      readonly peer: string
      /** A bounded code, for metrics labels; `detail` is the human-readable line. */
      readonly reason: ResumeFailureCode
      readonly detail: string
    }

/**
 * Which component published an event.
 *
 * @since 0.1.0
 * @category models
 */
export type Role = "proxy" | "server" | "client"

/**
 * Why a client (at the proxy) or a link (at the server) was refused: no link within the wait bound,
 * the stream could not be opened, a connection limit, or (`untrustedSource`) a client that must send
 * a PROXY protocol header connected from outside the trusted sources.
 *
 * @since 0.1.0
 * @category models
 */
export type RefusalCode =
  | "linkUnavailable"
  | "openFailed"
  /** The link stopped opening streams for the rest of a second: clients were resetting right after connecting. */
  | "resetRate"
  | "maxClients"
  | "maxSessions"
  | "maxHandshakes"
  | "untrustedSource"

/**
 * The service of streams that name none: every stream until services are configured.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_SERVICE = "default"

/**
 * Events buffered per subscriber before the oldest are dropped.
 *
 * @since 0.1.0
 * @category constants
 */
export const EVENT_CAPACITY = 4096

/**
 * The event bus shared by the proxy, the server and their observers.
 *
 * @since 0.1.0
 * @category services
 */
export class Events extends Context.Service<Events, PubSub.PubSub<PlaitEvent>>()("plait/observability/Events") {
  /** A sliding PubSub: a slow subscriber loses old events, publishers never wait. */
  static readonly layer: Layer.Layer<Events> = Layer.effect(Events, PubSub.sliding<PlaitEvent>(EVENT_CAPACITY))
}

/**
 * Translates a session's lifecycle events into bus events for one link (`peer`), seen by `role`.
 * Returns the session's `onEvent` callback; `GoAwayReceived` and `SessionClosed` are the link
 * owner's business (it reports LinkDown itself).
 *
 * @since 0.1.0
 * @category utils
 */
export const forSession =
  (events: PubSub.PubSub<PlaitEvent>, role: Role, peer: string) =>
  (event: SessionEvent): void => {
    switch (event._tag) {
      case "StreamOpened":
        publish(events, { _tag: "StreamOpened", role, peer, streamId: event.streamId })
        break
      case "StreamClosed":
        publish(events, { _tag: "StreamClosed", role, peer, streamId: event.streamId, reset: event.reset })
        break
      case "LimitReached":
        publish(events, {
          _tag: "LimitReached",
          role,
          peer,
          limit: event.limit,
          streamId: event.streamId,
          ...(event.detail === undefined ? {} : { detail: event.detail })
        })
        break
    }
  }

/**
 * Translates a resumable transport's events into bus events for one link, seen by `role`; `peer`
 * is read when each event happens (the connection changes with every resume).
 *
 * @since 0.1.0
 * @category utils
 */
export const forResume =
  (events: PubSub.PubSub<PlaitEvent>, role: Role, peer: () => string) =>
  (event: ResumeEvent): void => {
    switch (event._tag) {
      case "Lost":
        publish(events, { _tag: "LinkSuspended", role, peer: peer(), reason: event.reason })
        break
      case "Resumed":
        publish(events, {
          _tag: "LinkResumed",
          role,
          peer: peer(),
          replayedBytes: event.replayedBytes,
          pausedMillis: event.pausedMillis
        })
        break
      case "Ended": {
        const reason = failureCode(event.error)
        if (reason !== undefined) {
          publish(events, { _tag: "ResumeFailed", role, peer: peer(), reason, detail: event.error.message })
        }
        break
      }
    }
  }

/**
 * Publishes from synchronous code (session callbacks); never blocks.
 *
 * @since 0.1.0
 * @category utils
 */
export const publish = (events: PubSub.PubSub<PlaitEvent>, event: PlaitEvent): void => {
  PubSub.publishUnsafe(events, event)
}

/**
 * The event bus if one is provided, else a private one nobody listens to.
 *
 * @since 0.1.0
 * @category utils
 */
export const current: Effect.Effect<PubSub.PubSub<PlaitEvent>> = Effect.serviceOption(Events).pipe(
  Effect.flatMap((option) =>
    option._tag === "Some" ? Effect.succeed(option.value) : PubSub.sliding<PlaitEvent>(EVENT_CAPACITY)
  )
)
