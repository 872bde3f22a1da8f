/**
 * A plain `node:net` relay, the baseline a multiplexing proxy is compared with: one process, two
 * sockets per client, bytes piped both ways with half-close passed through. No multiplexing.
 *
 * Usage: `<runtime> bench/procs/relay.ts --listen HOST:PORT --target HOST:PORT`; prints
 * `relay listening on HOST:PORT` once bound. Exits on SIGTERM/SIGINT.
 */
import * as net from "node:net"
import process from "node:process"

const args = process.argv.slice(2)
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(name)
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback
}
const split = (text: string) => {
  const colon = text.lastIndexOf(":")
  return { host: text.slice(0, colon), port: Number(text.slice(colon + 1)) }
}
const listen = split(flag("--listen", "127.0.0.1:0"))
const target = split(flag("--target", "127.0.0.1:7001"))

const server = net.createServer({ allowHalfOpen: true }, (client) => {
  const backend = net.connect({ ...target, allowHalfOpen: true })
  client.setNoDelay(true)
  backend.setNoDelay(true)
  client.pipe(backend)
  backend.pipe(client)
  const destroyBoth = () => {
    client.destroy()
    backend.destroy()
  }
  client.on("error", destroyBoth)
  backend.on("error", destroyBoth)
})
server.listen(listen.port, listen.host, () => {
  const address = server.address() as net.AddressInfo
  console.log(`relay listening on ${address.address}:${address.port}`)
})
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(0))
