/**
 * The backend every benchmarked system forwards to: a plain `node:net` echo server (every byte back,
 * FIN after the client's FIN, backpressure through pause/resume). Runs on Node, Bun or Deno.
 *
 * Usage: `<runtime> bench/procs/echo.ts [--listen HOST:PORT]` (default 127.0.0.1:0); prints
 * `echo listening on HOST:PORT` once bound. Exits on SIGTERM/SIGINT.
 */
import * as net from "node:net"
import process from "node:process"

const args = process.argv.slice(2)
const at = args.indexOf("--listen")
const listen = at >= 0 ? args[at + 1]! : "127.0.0.1:0"
const colon = listen.lastIndexOf(":")
const host = listen.slice(0, colon).replace(/^\[|\]$/g, "")
const port = Number(listen.slice(colon + 1))

const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) => {
  socket.setNoDelay(true)
  socket.on("data", (chunk: Buffer) => {
    if (!socket.write(chunk)) socket.pause()
  })
  socket.on("drain", () => socket.resume())
  socket.on("end", () => socket.end())
  socket.on("error", () => socket.destroy())
})
server.on("error", (error) => {
  console.error(`echo: ${error.message}`)
  process.exit(1)
})
server.listen({ host, port, backlog: 4096 }, () => {
  const address = server.address() as net.AddressInfo
  console.log(`echo listening on ${address.address}:${address.port}`)
})
const stop = () => process.exit(0)
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
