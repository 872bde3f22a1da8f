/**
 * Scenario: a slow reader on a TLS link pushes back through TCP on this runtime, as a plain TCP
 * socket does. Deno's `node:tls` needs its own flow control for that (`Tls.ts`, `DENO_TLS_FLOW`):
 * without it a TLS socket that nobody reads buffers whatever the peer sends (256 MiB measured).
 *
 * Checks, both directions (the server's transport not reading, then the client's): the writer stalls
 * after a bounded number of bytes (kernel buffers plus the transport's high-water mark; on loopback
 * about 4 MiB, bound 16 MiB); reading then delivers every byte exact, through many pause/resume
 * cycles, and the writer's FIN arrives after the last byte (the EOF survives the pauses). The
 * reading process's memory grows by no more than the bound meanwhile.
 */
import { Effect, Fiber } from "effect"
import type * as Tcp from "../../../src/transport/Tcp.ts"
import * as Tls from "../../../src/transport/Tls.ts"
import type { Transport } from "../../../src/transport/Transport.ts"
import { makePki } from "../../security/certs.ts"
import { check, equal, pattern, runScenario } from "../lib.ts"

const ANY: Tcp.TcpAddress = { host: "127.0.0.1", port: 0 }
const MiB = 1024 * 1024
/** What the writer may get ahead of a reader that does not read (kernel buffers, transport, TLS records). */
const BOUND = 16 * MiB
const TOTAL = 32 * MiB
const PIECE = 64 * 1024
/** The writer counts as stalled once it has made no progress for this long (polled, bounded). */
const STALL_MILLIS = 500

/**
 * Writes `TOTAL` bytes of a pattern to `writer` while `reader` reads nothing; returns how far the
 * writer got before it stalled. Then reads everything from `reader`, checks it byte-exact and that
 * the FIN follows the last byte.
 */
const slowReader = (writer: Transport, reader: Transport, what: string) =>
  Effect.gen(function* () {
    const data = pattern(TOTAL, 41)
    let written = 0
    const writing = yield* Effect.forkChild(
      Effect.gen(function* () {
        for (let offset = 0; offset < TOTAL; offset += PIECE) {
          yield* writer.write([data.subarray(offset, offset + PIECE)])
          written = offset + PIECE
        }
        yield* writer.closeWrite
      })
    )
    // Polling with a deadline: the writer has stalled when `written` stops moving.
    const rssBefore = process.memoryUsage().rss
    let last = -1
    let still = 0
    const deadline = Date.now() + 20_000
    while (still < STALL_MILLIS && written < TOTAL && Date.now() < deadline) {
      yield* Effect.sleep(50)
      if (written === last) still += 50
      else {
        still = 0
        last = written
      }
    }
    const rssGrowth = process.memoryUsage().rss - rssBefore
    yield* check(
      written < BOUND,
      `${what}: the writer stalled after ${(written / MiB).toFixed(1)} MiB while nobody read (bound ${BOUND / MiB} MiB)`
    )
    yield* check(rssGrowth < BOUND + 16 * MiB, `${what}: memory grew ${(rssGrowth / MiB).toFixed(1)} MiB meanwhile`)
    // Reading now: every byte, in order, through the transport's pause/resume cycles, then the EOF.
    const parts: Array<Uint8Array> = []
    let received = 0
    for (let i = 0; i < 1_000_000; i++) {
      const chunk = yield* reader.read
      if (chunk === null) break
      parts.push(chunk)
      received += chunk.length
    }
    yield* Fiber.join(writing)
    const got = new Uint8Array(received)
    let offset = 0
    for (const part of parts) {
      got.set(part, offset)
      offset += part.length
    }
    yield* check(equal(got, data), `${what}: all ${TOTAL / MiB} MiB read byte-exact, then the writer's FIN`)
  })

runScenario(
  "tls-backpressure",
  Effect.gen(function* () {
    const pki = makePki()
    const server = yield* Tls.listen(ANY, { cert: pki.server.cert, key: pki.server.key })
    const [client, accepted] = yield* Effect.all([Tls.connect(server.address, { ca: pki.ca.cert }), server.accept], {
      concurrency: 2
    })
    yield* Effect.addFinalizer(() => accepted.close)
    yield* slowReader(client, accepted, "client → server (the server does not read)")
    yield* slowReader(accepted, client, "server → client (the client does not read)")
  }),
  { timeout: "50 seconds" }
)
