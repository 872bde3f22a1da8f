/**
 * The per-stream lifecycle (SYN/ACK/FIN/RST) as an explicit state machine.
 *
 * Invariants: every state change of a stream goes through {@link transition}, a pure function,
 * called from one private method of the stream and nowhere else (the stream's state field is
 * private); every event below is driven by the stream or the session: `SendAck` on accept,
 * `RecvAck`/`RecvFin`/`RecvRst`/`RecvData` as frames arrive, `SendFin` when the writer frames the
 * FIN, `SendRst` on any local abort (a reset, an open timeout, the session's death). `Closed` and
 * `Reset` are terminal; a stream's id leaves the registry exactly when it reaches one of them.
 * Whether the peer has ACKed our SYN is tracked apart from the state (a stream can send FIN
 * before its ACK arrives), by the stream.
 *
 * @since 0.1.0
 */

/** Where a stream is in its life. */
export type StreamState =
  /** We sent SYN; both directions open. */
  | "SynSent"
  /** The peer sent SYN; waiting in the accept backlog, not yet ACKed. */
  | "SynReceived"
  /** Both directions open. */
  | "Established"
  /** We sent FIN: we may still read. */
  | "LocalClosed"
  /** The peer sent FIN: we may still write. */
  | "RemoteClosed"
  /** Both sides sent FIN. Terminal. */
  | "Closed"
  /** RST sent or received. Terminal. */
  | "Reset"

/** Something that happens to a stream. */
export type StreamEvent = "SendAck" | "RecvAck" | "SendFin" | "RecvFin" | "SendRst" | "RecvRst" | "RecvData"

/** What a transition asks of the session besides the new state. */
export type Outcome =
  /** Apply the new state (and send/deliver what the event implies). */
  | "ok"
  /** Nothing to do: a repeated or late event that is harmless (e.g. a second FIN). */
  | "ignore"
  /** The peer broke the stream's protocol: reset this stream (not the session). */
  | "reset"
  /** A local operation that the state forbids (e.g. write after FIN). */
  | "refuse"

/** The result of one transition. */
export interface Transition {
  readonly state: StreamState
  readonly outcome: Outcome
}

const ok = (state: StreamState): Transition => ({ state, outcome: "ok" })
const same = (state: StreamState, outcome: Outcome): Transition => ({ state, outcome })

/** Whether a state is terminal (the stream is gone from the registry). */
export const isTerminal = (state: StreamState): boolean => state === "Closed" || state === "Reset"

/** Whether the local side may still send DATA in this state. */
export const canWrite = (state: StreamState): boolean =>
  state === "SynSent" || state === "SynReceived" || state === "Established" || state === "RemoteClosed"

/** Whether the peer may still send DATA in this state. */
export const canReceive = (state: StreamState): boolean =>
  state === "SynSent" || state === "SynReceived" || state === "Established" || state === "LocalClosed"

/** The one place where stream states change. */
export const transition = (state: StreamState, event: StreamEvent): Transition => {
  if (state === "Reset") {
    // Everything after a reset is late: a local operation is refused, anything from the peer dropped.
    return same(state, event === "SendFin" || event === "SendAck" ? "refuse" : "ignore")
  }
  switch (event) {
    case "SendAck":
      return state === "SynReceived" ? ok("Established") : same(state, "ignore")
    case "RecvAck":
      return state === "SynSent" ? ok("Established") : same(state, "ignore")
    case "SendFin":
      switch (state) {
        case "SynSent":
        case "SynReceived":
        case "Established":
          return ok("LocalClosed")
        case "RemoteClosed":
          return ok("Closed")
        default:
          return same(state, "ignore")
      }
    case "RecvFin":
      switch (state) {
        case "SynSent":
        case "SynReceived":
        case "Established":
          return ok("RemoteClosed")
        case "LocalClosed":
          return ok("Closed")
        default:
          return same(state, "ignore")
      }
    case "SendRst":
      return state === "Closed" ? same(state, "ignore") : ok("Reset")
    case "RecvRst":
      return state === "Closed" ? same(state, "ignore") : ok("Reset")
    case "RecvData":
      return canReceive(state) ? same(state, "ok") : same(state, "reset")
  }
}
