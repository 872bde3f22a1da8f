/**
 * The command line as a user meets it, on every runtime: `--help` through each launcher, bad options
 * (flags, environment, `--config` files) refused with exit code 2 and one line naming the flag or the
 * key and the file, and a service that cannot start exits 1.
 */

import * as path from "node:path"
import process from "node:process"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type Entry, type RuntimeName, root, spawnCli, spawnProcess, startServer } from "./helpers.ts"

const bin = (name: string) => path.join(root, "node_modules/.bin", name)

const refusals: ReadonlyArray<{
  readonly runtime: RuntimeName
  readonly entry: Entry
  readonly args: ReadonlyArray<string>
  readonly env?: Readonly<Record<string, string>>
  readonly message: string
}> = [
  {
    runtime: "node",
    entry: "proxy",
    args: ["--max-window", "1000"],
    message: "plait proxy: --max-window must be at least 262144 bytes (got 1000)"
  },
  {
    runtime: "bun",
    entry: "server",
    args: ["--listen", "127.0.0.1:70000"],
    message: "plait server: --listen port must be from 0 to 65535 (got 127.0.0.1:70000)"
  },
  {
    runtime: "deno",
    entry: "proxy",
    args: ["--keepalive-interval", "-5s"],
    message: "plait proxy: --keepalive-interval must not be negative (got -5s)"
  },
  {
    runtime: "node",
    entry: "server",
    args: ["--bogus"],
    message: "plait server: unknown flag --bogus (see --help)"
  },
  {
    runtime: "bun",
    entry: "proxy",
    args: ["--log-level", "loud"],
    message: 'plait proxy: --log-level must be one of trace, debug, info, warn, error, fatal, none (got "loud")'
  },
  {
    runtime: "deno",
    entry: "server",
    args: [],
    env: { PLAIT_TARGET: "backend" },
    message:
      'plait server: --target (from PLAIT_TARGET) must be HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000 (got "backend")'
  },
  {
    runtime: "node",
    entry: "proxy",
    args: ["--upstream"],
    message: "plait proxy: --upstream needs a value: HOST:PORT[,HOST:PORT...]"
  },
  {
    runtime: "bun",
    entry: "proxy",
    args: ["--config", "test/cli/fixtures/unknown-key.yaml"],
    message:
      "plait proxy: max-windw (in test/cli/fixtures/unknown-key.yaml) is not a setting of plait proxy (did you mean max-window?)"
  },
  {
    runtime: "deno",
    entry: "server",
    args: [],
    env: { PLAIT_CONFIG: "test/cli/fixtures/bad-address.yaml" },
    message:
      'plait server: services.web (in test/cli/fixtures/bad-address.yaml) must be HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000 (got "nowhere")'
  }
]

describe("e2e: command line", () => {
  it.live(
    "bad options exit 2 with one line naming the flag, on every runtime",
    () =>
      Effect.forEach(
        refusals,
        ({ runtime, entry, args, env, message }) =>
          Effect.scoped(
            Effect.gen(function* () {
              const cli = yield* spawnCli(runtime, entry, args, env === undefined ? {} : { env })
              // Generous: a refusal exits before anything starts, but a loaded CI machine starts runtimes slowly.
              const exit = yield* cli.waitForExit("30 seconds")
              assert.deepStrictEqual(exit, { code: 2, signal: null }, `${runtime} ${entry} ${args.join(" ")}`)
              assert.deepStrictEqual(cli.lines(), [message])
            })
          ),
        { concurrency: 3, discard: true }
      ),
    90_000
  )

  it.live(
    "a server whose port is taken exits 1 naming the address",
    () =>
      Effect.gen(function* () {
        const first = yield* startServer("node")
        const second = yield* spawnCli("bun", "server", ["--listen", `127.0.0.1:${first.port}`])
        const exit = yield* second.waitForExit("10 seconds")
        assert.deepStrictEqual(exit, { code: 1, signal: null })
        yield* second.waitForLine(new RegExp(`ERROR server: cannot listen on 127\\.0\\.0\\.1:${first.port}`))
      }),
    30_000
  )

  it.live(
    "--help works through npm run, bun run and deno task, and exits 0",
    () =>
      Effect.forEach(
        [
          { launcher: "npm", args: ["run", "--silent", "proxy", "--", "--help"], usage: "plait proxy [flags]" },
          { launcher: bin("bun"), args: ["run", "proxy", "--help"], usage: "plait proxy [flags]" },
          { launcher: bin("deno"), args: ["task", "server", "--help"], usage: "plait server [flags]" }
        ],
        ({ launcher, args, usage }) =>
          Effect.scoped(
            Effect.gen(function* () {
              const cli = yield* spawnProcess(path.basename(launcher), launcher, args, {
                // Like `npm run`: the project's runtimes first on PATH.
                env: { PATH: `${path.join(root, "node_modules/.bin")}:${process.env.PATH ?? ""}` }
              })
              const exit = yield* cli.waitForExit("20 seconds")
              assert.deepStrictEqual(exit, { code: 0, signal: null }, cli.output())
              assert.include(cli.output(), usage)
              assert.include(cli.output(), "--drain-timeout DURATION")
            })
          ),
        { concurrency: 3, discard: true }
      ),
    40_000
  )

  it.live(
    "the launchers start the service under their own runtime (npm → node, bun run → bun, deno task → deno)",
    () =>
      Effect.forEach(
        [
          { launcher: "npm", args: ["run", "--silent", "proxy", "--"], entry: "proxy", runtime: "node" },
          { launcher: bin("bun"), args: ["run", "proxy"], entry: "proxy", runtime: "bun" },
          { launcher: bin("deno"), args: ["task", "server"], entry: "server", runtime: "deno" }
        ],
        ({ launcher, args, entry, runtime }) =>
          Effect.scoped(
            Effect.gen(function* () {
              // Extra arguments pass through; the process group is killed when the scope closes.
              const cli = yield* spawnProcess(
                path.basename(launcher),
                launcher,
                [...args, "--listen", "127.0.0.1:0", "--log-level", "info"],
                { env: { PATH: `${path.join(root, "node_modules/.bin")}:${process.env.PATH ?? ""}` } }
              )
              yield* cli.waitForLine(new RegExp(`${entry}: starting on ${runtime} `), "20 seconds")
              yield* cli.waitForLine(new RegExp(`${entry}: listening on 127\\.0\\.0\\.1:\\d+`), "20 seconds")
            })
          ),
        { concurrency: 3, discard: true }
      ),
    40_000
  )
})
