/**
 * Helpers for cross-runtime scenarios (`test/runtimes/scenarios/*.ts`), which run unchanged under
 * Node, Bun and Deno as plain scripts (no vitest).
 *
 * Contract with the harness (`run.ts`): a scenario prints one `  ✓ …` line per check as it goes,
 * ends with a single summary line `ok <name> on <runtime>: N checks`, and exits 0; anything else
 * (non-zero exit, a failed check, a timeout) is a failure. {@link runScenario} also fails a scenario
 * that leaves handles open (sockets, timers) so the process cannot exit by itself.
 */

import process from "node:process"
import { Cause, Duration, Effect, Exit, Fiber, type Scope } from "effect"
import { readAll } from "../../src/transport/Splice.ts"
import * as Tcp from "../../src/transport/Tcp.ts"
import type { TransportError } from "../../src/transport/Transport.ts"

/** The runtime executing this scenario. */
export const runtime: "node" | "bun" | "deno" = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node"

/** The runtime's version string, for the summary line. */
export const runtimeVersion: string =
  runtime === "deno"
    ? (globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno
    : runtime === "bun"
      ? (globalThis as unknown as { Bun: { version: string } }).Bun.version
      : process.versions.node

let checks = 0

/** Records a passed check, or dies with `what` when `condition` is false. */
export const check = (condition: boolean, what: string): Effect.Effect<void> =>
  condition
    ? Effect.sync(() => {
        checks++
        console.log(`  ✓ ${what}`)
      })
    : Effect.die(new Error(`check failed: ${what}`))

/** `n` deterministic bytes from `seed` (a position-dependent pattern: a shifted or swapped chunk shows). */
export const pattern = (n: number, seed: number): Uint8Array => {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (i * 131 + seed * 17 + (i >>> 8)) & 0xff
  return out
}

/** Byte-exact equality. */
export const equal = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * `clients` concurrent TCP clients of an echo path at `address`: client `i` writes its own
 * `pattern(size(i), i + 1)` in `piece`-byte writes, half-closes, and reads until EOF. True when every
 * client got exactly its own bytes back.
 */
export const echoClients = (
  address: Tcp.TcpAddress,
  clients: number,
  size: (i: number) => number,
  piece: number
): Effect.Effect<boolean, TransportError> =>
  Effect.map(
    Effect.forEach(
      Array.from({ length: clients }, (_, i) => i),
      (i) =>
        Effect.scoped(
          Effect.gen(function* () {
            const client = yield* Tcp.connect(address)
            const payload = pattern(size(i), i + 1)
            const reader = yield* Effect.forkChild(readAll(client))
            for (let offset = 0; offset < payload.length; offset += piece) {
              yield* client.write([payload.subarray(offset, offset + piece)])
            }
            yield* client.closeWrite
            return equal(yield* Fiber.join(reader), payload)
          })
        ),
      { concurrency: "unbounded" }
    ),
    (results) => results.every((ok) => ok)
  )

/** Options for {@link runScenario}. */
export interface ScenarioOptions {
  /** Whole-scenario timeout (default 45 s, below the harness's hard kill at 60 s). */
  readonly timeout?: Duration.Input
  /** How long the process may linger after success before it counts as leaking handles (default 5 s). */
  readonly exitGrace?: Duration.Input
}

/**
 * Runs a scenario: scoped, under a timeout, printing the summary and setting the exit code.
 * Never returns a value; call it once at the top level of a scenario file.
 */
export const runScenario = <E>(
  name: string,
  scenario: Effect.Effect<void, E, Scope.Scope>,
  options?: ScenarioOptions
): void => {
  const timeout = options?.timeout ?? "45 seconds"
  const program = scenario.pipe(
    Effect.scoped,
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () =>
        Effect.die(new Error(`scenario timed out after ${Duration.format(Duration.fromInputUnsafe(timeout))}`))
    })
  )
  Effect.runPromiseExit(program).then(
    (exit) => {
      if (Exit.isSuccess(exit)) {
        console.log(`ok ${name} on ${runtime} ${runtimeVersion}: ${checks} checks`)
        process.exitCode = 0
        // The scope closed everything; a process still alive after the grace leaked a handle.
        const grace = Duration.toMillis(options?.exitGrace ?? "5 seconds")
        setTimeout(() => {
          console.error(`FAIL ${name}: handles still open ${grace} ms after success (leaked socket or timer?)`)
          process.exit(1)
        }, grace).unref()
      } else {
        console.error(`FAIL ${name} on ${runtime} ${runtimeVersion}:\n${Cause.pretty(exit.cause)}`)
        process.exit(1)
      }
    },
    (error: unknown) => {
      console.error(`FAIL ${name}: ${String(error)}`)
      process.exit(1)
    }
  )
}
