/**
 * An in-process TCP relay for link-loss tests: it listens on 127.0.0.1 (port 0), connects each
 * accepted connection to `target` and copies bytes both ways (with half-close), and can cut every
 * connection it carries in the two ways a link dies:
 * - `reset()`: TCP RST on both sides (`resetAndDestroy`), as a middlebox or a crashed NAT does;
 * - `blackhole()`: from now on the bytes of the current connections are silently dropped — no FIN,
 *   no RST — as on a partitioned network; the sockets stay open until the relay closes.
 * New connections after a cut are relayed normally (the network is back), unless `refuse(true)`;
 * `kill()` resets everything and closes the port, as the death of the server process does.
 * Everything is closed by `close()`, which the tests run in a finalizer.
 */
import * as net from "node:net"
import { Effect, type Scope } from "effect"
import type { TcpAddress } from "../../src/transport/Tcp.ts"

interface Pair {
  readonly client: net.Socket
  readonly upstream: net.Socket
  hole: boolean
}

/** The first bytes a relayed connection carried each way, as an eavesdropper on the path sees them. */
export interface Captured {
  /** Toward the target (what the dialler sent). */
  up: Buffer
  /** Back from the target. */
  down: Buffer
}

/** Bytes recorded per direction of each connection. */
const CAPTURE_BYTES = 4096

/** A running relay. */
export interface Relay {
  readonly address: TcpAddress
  /** RSTs every connection currently relayed. */
  readonly reset: () => void
  /** Silently drops the bytes of every connection currently relayed, from now on. */
  readonly blackhole: () => void
  /** While on, new connections are reset as soon as they arrive (the far side is unreachable). */
  readonly refuse: (on: boolean) => void
  /** Connections accepted so far. */
  readonly accepted: () => number
  /** The first bytes of each relayed connection, in the order they were accepted. */
  readonly captured: () => ReadonlyArray<Captured>
  /** Connections currently relayed (not cut). */
  readonly live: () => number
  /** Points new connections at another target (a restarted server). */
  readonly retarget: (target: TcpAddress) => void
  /**
   * As a SIGKILL of the server process looks from outside: every connection is reset and the port
   * is closed, so new connections are refused (ECONNREFUSED).
   */
  readonly kill: () => void
}

/** Starts a relay to `target` for the scope's lifetime. */
export const relay = (initial: TcpAddress): Effect.Effect<Relay, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<{ relay: Relay; close: () => Promise<void> }>((resolve) => {
          let target = initial
          let refusing = false
          let accepted = 0
          const capture: Array<Captured> = []
          const pairs = new Set<Pair>()
          // Black-holed pairs stay open (silent) until the relay closes.
          const holes = new Set<Pair>()
          const server = net.createServer({ allowHalfOpen: true }, (client) => {
            accepted++
            if (refusing) {
              client.resetAndDestroy()
              return
            }
            const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true })
            const pair: Pair = { client, upstream, hole: false }
            pairs.add(pair)
            const seen: Captured = { up: Buffer.alloc(0), down: Buffer.alloc(0) }
            capture.push(seen)
            const forget = () => pairs.delete(pair)
            const copy = (from: net.Socket, to: net.Socket) => {
              const way = from === client ? "up" : "down"
              from.on("data", (chunk: Buffer) => {
                if (seen[way].length < CAPTURE_BYTES) {
                  seen[way] = Buffer.concat([seen[way], chunk]).subarray(0, CAPTURE_BYTES)
                }
                if (!pair.hole && !to.destroyed) to.write(chunk)
              })
              from.on("end", () => {
                if (!pair.hole && !to.destroyed) to.end()
              })
              from.on("error", () => {
                forget()
                if (!pair.hole) to.destroy()
              })
              from.on("close", () => {
                forget()
                if (!pair.hole && !to.destroyed) to.destroy()
              })
            }
            copy(client, upstream)
            copy(upstream, client)
          })
          server.listen(0, "127.0.0.1", () => {
            const port = (server.address() as net.AddressInfo).port
            resolve({
              relay: {
                address: { host: "127.0.0.1", port },
                reset: () => {
                  for (const pair of pairs) {
                    pairs.delete(pair)
                    pair.client.resetAndDestroy()
                    pair.upstream.resetAndDestroy()
                  }
                },
                blackhole: () => {
                  for (const pair of pairs) {
                    pairs.delete(pair)
                    pair.hole = true
                    holes.add(pair)
                  }
                },
                refuse: (on) => {
                  refusing = on
                },
                accepted: () => accepted,
                captured: () => capture,
                live: () => pairs.size,
                retarget: (next) => {
                  target = next
                },
                kill: () => {
                  server.close()
                  for (const pair of pairs) {
                    pairs.delete(pair)
                    pair.client.resetAndDestroy()
                    pair.upstream.resetAndDestroy()
                  }
                }
              },
              close: () =>
                new Promise<void>((done) => {
                  for (const pair of [...pairs, ...holes]) {
                    pair.client.destroy()
                    pair.upstream.destroy()
                  }
                  if (server.listening) server.close(() => done())
                  else done()
                })
            })
          })
        })
    ),
    ({ close }) => Effect.promise(close)
  ).pipe(Effect.map(({ relay }) => relay))
