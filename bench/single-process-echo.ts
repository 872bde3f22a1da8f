/**
 * Baseline for the `npm start` demo's "connection setup" line: a plain `node:net` echo server and
 * 300 clients (64 KiB echoes, a new connection every 20 messages) in ONE process, as the demo runs.
 * It shows how long connect-to-first-echo takes when one event loop serves everyone — without plait.
 *
 * Usage: `npx node bench/single-process-echo.ts` (5 s).
 */
import * as net from "node:net"
import process from "node:process"

const CLIENTS = 300
const MESSAGE = Buffer.alloc(64 * 1024, 7)
const firstEcho: Array<number> = []

const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
  socket.on("error", () => {})
  socket.resume()
  socket.pipe(socket)
})

const client = (port: number): void => {
  const started = performance.now()
  const socket = net.connect({ port, host: "127.0.0.1" })
  let messages = 0
  let received = 0
  let first = true
  socket.on("error", () => {})
  socket.on("connect", () => socket.write(MESSAGE))
  socket.on("data", (chunk: Buffer) => {
    if (first) {
      first = false
      firstEcho.push(performance.now() - started)
    }
    received += chunk.length
    if (received < MESSAGE.length) return
    received = 0
    if (++messages < 20) {
      socket.write(MESSAGE)
      return
    }
    socket.destroy()
    client(port)
  })
}

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as net.AddressInfo
  for (let i = 0; i < CLIENTS; i++) client(port)
  setTimeout(() => {
    firstEcho.sort((a, b) => a - b)
    const at = (q: number) => firstEcho[Math.min(firstEcho.length - 1, Math.floor(firstEcho.length * q))]!.toFixed(1)
    console.log(
      `plain node:net, one process, ${CLIENTS} clients: connect to first echo p50 ${at(0.5)} ms, p99 ${at(0.99)} ms (${firstEcho.length} connections)`
    )
    process.exit(0)
  }, 5000)
})
