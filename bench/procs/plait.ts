/**
 * Starts a plait proxy or server for the benchmark when the CLI entry points are not available
 * (`src/cli/proxy.ts`, `src/cli/server.ts`): same flags, same "listening on" line.
 *
 * Usage:
 *   <runtime> bench/procs/plait.ts proxy --listen HOST:PORT --upstream HOST:PORT
 *   <runtime> bench/procs/plait.ts server --listen HOST:PORT --target HOST:PORT
 * Prints `plait <role> listening on HOST:PORT`; stops gracefully on SIGTERM/SIGINT.
 */

import process from "node:process"
import { Effect, Fiber } from "effect"
import * as PlaitProxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import type { TcpAddress } from "../../src/transport/Tcp.ts"

const args = process.argv.slice(2)
const role = args[0]
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
const address = (text: string): TcpAddress => {
  const colon = text.lastIndexOf(":")
  return { host: text.slice(0, colon).replace(/^\[|\]$/g, ""), port: Number(text.slice(colon + 1)) }
}
const listen = address(flag("--listen") ?? "127.0.0.1:0")

const program =
  role === "proxy"
    ? Effect.gen(function* () {
        const upstream = address(flag("--upstream") ?? "127.0.0.1:7001")
        const proxy = yield* PlaitProxy.make({ listen, upstream, maxClients: 50_000 })
        console.log(`plait proxy listening on ${proxy.address.host}:${proxy.address.port}`)
        return yield* Effect.never
      })
    : Effect.gen(function* () {
        const target = flag("--target")
        const server = yield* Server.make({
          listen,
          handler: target === undefined ? Server.echo : Server.forward(address(target))
        })
        console.log(`plait server listening on ${server.address.host}:${server.address.port}`)
        return yield* Effect.never
      })

const fiber = Effect.runFork(Effect.scoped(program))
const stop = () => {
  Effect.runFork(Fiber.interrupt(fiber)).addObserver(() => process.exit(0))
  setTimeout(() => process.exit(0), 3000).unref()
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
fiber.addObserver((exit) => {
  if (exit._tag === "Failure") {
    console.error(`plait ${role} failed: ${String(exit.cause)}`)
    process.exit(1)
  }
})
