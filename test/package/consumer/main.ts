/**
 * A consumer of the installed `plait` package (copied into a fresh project by
 * test/package/Consumer.test.ts and run there on Node, Bun and Deno). It imports only `plait` and
 * `effect`, exactly as an application would.
 *
 * It composes `Server.layer` (an in-process handler that answers each stream with its bytes
 * transformed) with `Client.layer`, and `Proxy.layer` in front of the same server; round-trips
 * patterned payloads on several concurrent streams and one TCP client through the proxy; checks
 * every byte; and checks that deep imports into the package are refused although the files exist.
 * The last stdout line is a JSON report; the exit code is 0 only if every check passed.
 */
import { existsSync } from "node:fs"
import * as net from "node:net"
import process from "node:process"
import { Effect, Layer } from "effect"
import { Client, type MuxStream, Proxy, Server } from "plait"

/** What the handler answers: each byte XOR 0x5a, so an echo (or another stream's bytes) cannot pass. */
const transform = (bytes: Uint8Array): Uint8Array => bytes.map((b) => b ^ 0x5a)

/** Payload `i`: sizes from 1 byte to beyond one 256 KiB window, a pattern unique to the stream. */
const payload = (i: number): Uint8Array => {
  const size = [1, 1000, 65_536, 300_000, 17, 4096, 131_072, 70_000][i % 8]!
  const bytes = new Uint8Array(size)
  for (let j = 0; j < size; j++) bytes[j] = (j * 31 + i * 7 + (j >> 8)) & 0xff
  return bytes
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i])

const handler = (stream: MuxStream.MuxStream) =>
  Effect.gen(function* () {
    const request = yield* stream.readAll
    yield* stream.write([transform(request)])
  })

const ServerLive = Server.layer({ listen: { host: "127.0.0.1", port: 0 }, handler })
const AppLive = Layer.unwrap(
  Effect.map(Server.Server, (server) =>
    Layer.merge(
      Client.layer({ upstream: server.address }),
      Proxy.layer({ listen: { host: "127.0.0.1", port: 0 }, upstream: server.address })
    )
  )
).pipe(Layer.provideMerge(ServerLive))

/** One stream: the payload in chunks of 10 000 bytes, FIN, then everything back. */
const roundTrip = (client: Client.ClientService, i: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const sent = payload(i)
      const stream = yield* client.open
      for (let at = 0; at < sent.length; at += 10_000) yield* stream.write([sent.subarray(at, at + 10_000)])
      yield* stream.closeWrite
      const received = yield* stream.readAll
      return { id: stream.id, bytes: sent.length, exact: sameBytes(received, transform(sent)) }
    })
  )

/** A plain TCP client through the proxy: send, half-close, read to the end. */
const throughProxy = (port: number, sent: Uint8Array) =>
  Effect.callback<Uint8Array, Error>((resume) => {
    const chunks: Array<Uint8Array> = []
    const socket = net.connect({ host: "127.0.0.1", port }, () => socket.end(sent))
    socket.on("data", (chunk: Uint8Array) => chunks.push(chunk))
    socket.on("end", () => resume(Effect.succeed(new Uint8Array(Buffer.concat(chunks)))))
    socket.on("error", (error) => resume(Effect.fail(error)))
    return Effect.sync(() => socket.destroy())
  })

/**
 * Each deep specifier must be refused by the package's `exports` although its file is there (so the
 * refusal is the package's doing). The first argument may replace the list (JSON pairs of specifier
 * and file), for the package imported another way (Deno, from the TypeScript sources).
 */
const deepImports: ReadonlyArray<readonly [string, string]> =
  process.argv[2] === undefined
    ? [
        ["plait/internal/session/Stream.js", "node_modules/plait/dist/internal/session/Stream.js"],
        ["plait/dist/index.js", "node_modules/plait/dist/index.js"],
        ["plait/src/index.ts", "node_modules/plait/src/index.ts"]
      ]
    : JSON.parse(process.argv[2])

const refusals = Effect.forEach(deepImports, ([specifier, file]) =>
  Effect.promise(async () => {
    // A variable specifier: the type checker must not resolve it, the runtime must refuse it.
    const target: string = specifier
    try {
      await import(target)
      return { specifier, fileExists: existsSync(file), refused: false, error: "" }
    } catch (error) {
      return { specifier, fileExists: existsSync(file), refused: true, error: String(error).split("\n")[0] }
    }
  })
)

const program = Effect.gen(function* () {
  const client = yield* Client.Client
  const proxy = yield* Proxy.TcpProxy
  const streams = yield* Effect.forEach(
    Array.from({ length: 8 }, (_, i) => i),
    (i) => roundTrip(client, i),
    { concurrency: "unbounded" }
  )
  const sent = payload(11)
  const viaProxy = sameBytes(yield* throughProxy(proxy.address.port, sent), transform(sent))
  const deep = yield* refusals
  return {
    runtime: "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node",
    exports: { Client: typeof Client.layer, Server: typeof Server.layer, Proxy: typeof Proxy.layer },
    streams,
    distinctIds: new Set(streams.map((s) => s.id)).size,
    links: client.link.generation(),
    viaProxy,
    deep
  }
})

const report = await Effect.runPromise(program.pipe(Effect.provide(AppLive), Effect.timeout("20 seconds")))
console.log(JSON.stringify(report))
const ok =
  report.streams.length === 8 &&
  report.streams.every((s) => s.exact) &&
  report.distinctIds === 8 &&
  report.viaProxy &&
  report.deep.every((d) => d.refused && d.fileExists)
process.exit(ok ? 0 : 1)
