/**
 * `plait server` as its own entry point (`node src/cli/server.ts [flags]` is `plait server [flags]`),
 * kept for scripts and tests that start the server by file.
 *
 * @since 0.1.0
 */
import process from "node:process"
import { run } from "./Main.ts"

run(() => import("./Commands.ts").then((module) => module.commands), ["server", ...process.argv.slice(2)])
