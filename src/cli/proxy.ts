/**
 * `plait proxy` as its own entry point (`node src/cli/proxy.ts [flags]` is `plait proxy [flags]`),
 * kept for scripts and tests that start the proxy by file.
 *
 * @since 0.1.0
 */
import process from "node:process"
import { run } from "./Main.ts"

run(() => import("./Commands.ts").then((module) => module.commands), ["proxy", ...process.argv.slice(2)])
