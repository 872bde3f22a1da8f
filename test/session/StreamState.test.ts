/**
 * The stream state machine, row by row: every (state × event) pair of `transition` with the state it
 * leads to and the outcome the session acts on, plus the `canWrite`/`canReceive`/`isTerminal` tables.
 *
 * Invariants: the expected table is written out by hand from the yamux lifecycle (SYN/ACK/FIN/RST), not
 * derived from the implementation; a test checks the table covers all 7 × 7 pairs.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  canReceive,
  canWrite,
  isTerminal,
  type Outcome,
  type StreamEvent,
  type StreamState,
  transition
} from "../../src/internal/session/StreamState.ts"

const STATES: ReadonlyArray<StreamState> = [
  "SynSent",
  "SynReceived",
  "Established",
  "LocalClosed",
  "RemoteClosed",
  "Closed",
  "Reset"
]

const EVENTS: ReadonlyArray<StreamEvent> = [
  "SendAck",
  "RecvAck",
  "SendFin",
  "RecvFin",
  "SendRst",
  "RecvRst",
  "RecvData"
]

type Row = readonly [StreamState, Outcome]

/** expected[state][event] = [next state, outcome]. */
const expected: { readonly [S in StreamState]: { readonly [E in StreamEvent]: Row } } = {
  SynSent: {
    SendAck: ["SynSent", "ignore"], // only the accepting side ACKs
    RecvAck: ["Established", "ok"],
    SendFin: ["LocalClosed", "ok"], // FIN before the ACK is allowed
    RecvFin: ["RemoteClosed", "ok"],
    SendRst: ["Reset", "ok"],
    RecvRst: ["Reset", "ok"], // a refused open
    RecvData: ["SynSent", "ok"]
  },
  SynReceived: {
    SendAck: ["Established", "ok"],
    RecvAck: ["SynReceived", "ignore"],
    SendFin: ["LocalClosed", "ok"],
    RecvFin: ["RemoteClosed", "ok"], // SYN|FIN: a one-shot request
    SendRst: ["Reset", "ok"],
    RecvRst: ["Reset", "ok"],
    RecvData: ["SynReceived", "ok"]
  },
  Established: {
    SendAck: ["Established", "ignore"],
    RecvAck: ["Established", "ignore"], // a repeated ACK
    SendFin: ["LocalClosed", "ok"],
    RecvFin: ["RemoteClosed", "ok"],
    SendRst: ["Reset", "ok"],
    RecvRst: ["Reset", "ok"],
    RecvData: ["Established", "ok"]
  },
  LocalClosed: {
    SendAck: ["LocalClosed", "ignore"],
    RecvAck: ["LocalClosed", "ignore"], // the ACK arrived after our FIN: tracked apart from the state
    SendFin: ["LocalClosed", "ignore"], // a second FIN
    RecvFin: ["Closed", "ok"],
    SendRst: ["Reset", "ok"],
    RecvRst: ["Reset", "ok"],
    RecvData: ["LocalClosed", "ok"] // we may still read
  },
  RemoteClosed: {
    SendAck: ["RemoteClosed", "ignore"],
    RecvAck: ["RemoteClosed", "ignore"],
    SendFin: ["Closed", "ok"],
    RecvFin: ["RemoteClosed", "ignore"], // a repeated FIN is harmless
    SendRst: ["Reset", "ok"],
    RecvRst: ["Reset", "ok"],
    RecvData: ["RemoteClosed", "reset"] // DATA after the peer's FIN breaks the stream
  },
  Closed: {
    SendAck: ["Closed", "ignore"],
    RecvAck: ["Closed", "ignore"],
    SendFin: ["Closed", "ignore"],
    RecvFin: ["Closed", "ignore"],
    SendRst: ["Closed", "ignore"], // terminal: nothing to reset
    RecvRst: ["Closed", "ignore"],
    RecvData: ["Closed", "reset"]
  },
  Reset: {
    SendAck: ["Reset", "refuse"], // local operations after a reset are refused
    RecvAck: ["Reset", "ignore"], // anything late from the peer is dropped
    SendFin: ["Reset", "refuse"],
    RecvFin: ["Reset", "ignore"],
    SendRst: ["Reset", "ignore"],
    RecvRst: ["Reset", "ignore"],
    RecvData: ["Reset", "ignore"]
  }
}

describe("StreamState.transition", () => {
  it("the expected table covers all 7 states × 7 events", () => {
    assert.strictEqual(Object.keys(expected).length, 7)
    let rows = 0
    for (const state of STATES) {
      assert.sameMembers(Object.keys(expected[state]), [...EVENTS])
      rows += Object.keys(expected[state]).length
    }
    assert.strictEqual(rows, 49)
  })

  for (const state of STATES) {
    describe(`from ${state}`, () => {
      for (const event of EVENTS) {
        const [next, outcome] = expected[state][event]
        it(`${event} → ${next} (${outcome})`, () => {
          assert.deepStrictEqual(transition(state, event), { state: next, outcome })
        })
      }
    })
  }

  it("non-ok outcomes never change the state", () => {
    for (const state of STATES) {
      for (const event of EVENTS) {
        const t = transition(state, event)
        if (t.outcome !== "ok") assert.strictEqual(t.state, state, `${state} × ${event}`)
      }
    }
  })

  it("terminal states are absorbing: no event leaves Closed or Reset", () => {
    for (const state of ["Closed", "Reset"] as const) {
      for (const event of EVENTS) assert.strictEqual(transition(state, event).state, state)
    }
  })

  it("both FIN orders end in Closed", () => {
    const apply = (events: ReadonlyArray<StreamEvent>) =>
      events.reduce<StreamState>((s, e) => transition(s, e).state, "SynSent")
    assert.strictEqual(apply(["RecvAck", "SendFin", "RecvFin"]), "Closed")
    assert.strictEqual(apply(["RecvAck", "RecvFin", "SendFin"]), "Closed")
    assert.strictEqual(apply(["SendFin", "RecvAck", "RecvFin"]), "Closed")
    assert.strictEqual(apply(["RecvAck", "SendFin", "RecvRst"]), "Reset")
  })
})

describe("StreamState predicates", () => {
  const table: ReadonlyArray<readonly [StreamState, boolean, boolean, boolean]> = [
    // state,          canWrite, canReceive, isTerminal
    ["SynSent", true, true, false],
    ["SynReceived", true, true, false],
    ["Established", true, true, false],
    ["LocalClosed", false, true, false],
    ["RemoteClosed", true, false, false],
    ["Closed", false, false, true],
    ["Reset", false, false, true]
  ]

  it("the predicate table covers every state", () => {
    assert.sameMembers(
      table.map((row) => row[0]),
      [...STATES]
    )
  })

  for (const [state, write, receive, terminal] of table) {
    it(`${state}: canWrite=${write} canReceive=${receive} isTerminal=${terminal}`, () => {
      assert.strictEqual(canWrite(state), write)
      assert.strictEqual(canReceive(state), receive)
      assert.strictEqual(isTerminal(state), terminal)
    })
  }

  it("RecvData is accepted exactly in the states that canReceive", () => {
    for (const state of STATES) {
      if (state === "Reset") continue
      assert.strictEqual(transition(state, "RecvData").outcome === "ok", canReceive(state), state)
    }
  })
})
