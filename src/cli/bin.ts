#!/usr/bin/env node
/**
 * The `plait` binary: `plait proxy [flags]`, `plait server [flags]`, `plait --help`, `plait --version`.
 * Installed as `plait` by npm (`dist/cli/bin.js`); in the repository `npm run proxy`, `bun run proxy`
 * and `deno task server` run this file. See `Main.ts` for logs, signals and exit codes, `Cli.ts` for
 * the command line, `Options.ts` for the settings.
 *
 * @since 0.1.0
 */
// First: on Deno, keeps Effect from chaining an async context per fiber suspension (a leak there).
import { restore } from "./DenoAsyncContext.ts"
import { run } from "./Main.ts"

restore()
run(() => import("./Commands.ts").then((module) => module.commands))
