/**
 * Helpers shared by the security tests: a client that pushes bytes through a proxy and reads the
 * echo, a bounded wait for a refused peer to be closed, and temporary PEM files.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { Effect, Fiber, type Scope } from "effect"
import * as Tcp from "../../src/transport/Tcp.ts"
import type { Transport } from "../../src/transport/Transport.ts"
import { readAll, writeChunked } from "../transport/helpers.ts"

export const HOST = "127.0.0.1"
export const ANY_PORT: Tcp.TcpAddress = { host: HOST, port: 0 }

/** Connects to `address`, sends `payload` (random chunking) then FIN, and returns all bytes read back. */
export const roundTrip = (address: Tcp.TcpAddress, payload: Uint8Array, seed = 1) =>
  Effect.scoped(
    Effect.gen(function* () {
      const client = yield* Tcp.connect(address)
      const reader = yield* Effect.forkChild(readAll(client))
      yield* writeChunked(client, payload, seed, 16 * 1024)
      yield* client.closeWrite
      return yield* Fiber.join(reader)
    })
  )

/**
 * How a peer's connection ended within `withinMs` — `"eof"` (FIN), `"error"` (reset or failure) or
 * `"open"` (still open, or more than `maxBytes` arrived) — and how many bytes it read (discarded).
 */
export const awaitEnd = (transport: Transport, withinMs: number, maxBytes = 1024 * 1024) =>
  Effect.suspend(() => {
    let bytes = 0
    return Effect.gen(function* () {
      while (bytes <= maxBytes) {
        const chunk = yield* transport.read
        if (chunk === null) return "eof" as const
        bytes += chunk.length
      }
      return "open" as const
    }).pipe(
      Effect.catch(() => Effect.succeed("error" as const)),
      Effect.timeoutOrElse({ duration: withinMs, orElse: () => Effect.succeed("open" as const) }),
      Effect.map((end) => ({ end, bytes }))
    )
  })

/** A temporary directory, removed with the scope; `write` puts a file in it and returns its path. */
export const tempDir: Effect.Effect<
  { readonly dir: string; readonly write: (name: string, content: string) => string },
  never,
  Scope.Scope
> = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = mkdtempSync(path.join(tmpdir(), "plait-security-"))
    return {
      dir,
      write: (name: string, content: string) => {
        const file = path.join(dir, name)
        writeFileSync(file, content, { mode: 0o600 })
        return file
      }
    }
  }),
  ({ dir }) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)
