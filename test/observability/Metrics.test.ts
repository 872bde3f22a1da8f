import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as Events from "../../src/observability/Events.ts"
import * as Metrics from "../../src/observability/Metrics.ts"
import * as Observed from "../../src/observability/Observed.ts"
import * as Proxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import { pump } from "../../src/transport/Splice.ts"
import * as Tcp from "../../src/transport/Tcp.ts"

const loopback = { host: "127.0.0.1", port: 0 }

const counter = (metric: Metric.Counter<number>, attributes: Record<string, string>) =>
  Effect.map(Metric.value(Metric.withAttributes(metric, attributes)), (state) => state.count)

/** Polls `check` until it holds, at most `tries` times, yielding between tries. */
const eventually = (check: Effect.Effect<boolean>, tries = 1_000) =>
  Effect.gen(function* () {
    for (let i = 0; i < tries; i++) {
      if (yield* check) return true
      yield* Effect.sleep(2)
    }
    return false
  })

/** The value of one series of an exposition, or undefined when absent. */
const sample = (exposition: string, series: string): number | undefined => {
  const line = exposition.split("\n").find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

/** `n` echo round trips of `bytes` bytes each through the proxy. */
const echoes = (address: Tcp.TcpAddress, n: number, bytes: number) =>
  Effect.forEach(
    Array.from({ length: n }, (_, i) => i),
    (i) =>
      Effect.scoped(
        Effect.gen(function* () {
          const client = yield* Tcp.connect(address)
          yield* client.write([new Uint8Array(bytes).fill(i)])
          yield* client.closeWrite
          let got = 0
          for (let chunk = yield* client.read; chunk !== null; chunk = yield* client.read) got += chunk.length
          return got
        })
      )
  )

/** A plain TCP echo backend for the server to forward to. */
const echoBackend = Effect.gen(function* () {
  const listener = yield* Tcp.listen(loopback)
  yield* Effect.forkScoped(Tcp.serve(listener, (t) => Effect.ignore(Effect.ensuring(pump(t, t), t.close))))
  return listener.address
})

/** An address nobody listens on (bound once, then released). */
const deadAddress = Effect.scoped(Effect.map(Tcp.listen(loopback), (listener) => listener.address))

const isolated = <A, E>(effect: Effect.Effect<A, E, Events.Events>) =>
  effect.pipe(
    Effect.provide(Layer.provideMerge(Metrics.layer, Events.Events.layer)),
    Effect.provideService(Metric.MetricRegistry, new Map()),
    Effect.timeout(10_000)
  )

describe("lifecycle metrics", () => {
  it.live("links and streams of a real proxy + server are counted from the event bus, by role and service", () =>
    isolated(
      Effect.gen(function* () {
        const server = yield* Server.make({ listen: loopback })
        const proxy = yield* Proxy.make({ listen: loopback, upstream: server.address })
        const got = yield* echoes(proxy.address, 3, 3)
        assert.deepStrictEqual(got, [3, 3, 3])
        const proxyStreams = { role: "proxy", service: "default" }
        const serverStreams = { role: "server", service: "default" }
        assert.isTrue(
          yield* eventually(
            Effect.map(
              Effect.all([counter(Metrics.streamsClosed, proxyStreams), counter(Metrics.streamsClosed, serverStreams)]),
              ([p, s]) => p === 3 && s === 3
            )
          )
        )
        assert.strictEqual(yield* counter(Metrics.linksUp, { role: "proxy" }), 1)
        assert.strictEqual(yield* counter(Metrics.linksUp, { role: "server" }), 1)
        assert.strictEqual(yield* counter(Metrics.streamsOpened, proxyStreams), 3)
        assert.strictEqual(yield* counter(Metrics.streamsOpened, serverStreams), 3)
        assert.strictEqual(yield* counter(Metrics.streamsReset, proxyStreams), 0)
      }).pipe(Effect.scoped)
    )
  )

  it.live("a refusal counts by reason, and a refusal by a connection limit as that limit too", () =>
    isolated(
      Effect.gen(function* () {
        const server = yield* Server.make({ listen: loopback })
        const proxy = yield* Proxy.make({ listen: loopback, upstream: server.address, maxClients: 1 })
        // One client holds the only slot (its stream stays open while it does not half-close).
        const holder = yield* Tcp.connect(proxy.address)
        yield* holder.write([new Uint8Array([1])])
        assert.strictEqual((yield* holder.read)?.length, 1)
        const refused = yield* Tcp.connect(proxy.address)
        assert.strictEqual(yield* Effect.exit(refused.read).pipe(Effect.map((exit) => exit._tag)), "Failure")
        assert.isTrue(
          yield* eventually(
            Effect.map(counter(Metrics.clientsRefused, { role: "proxy", reason: "maxClients" }), (n) => n === 1)
          )
        )
        assert.strictEqual(yield* counter(Metrics.limitsReached, { role: "proxy", limit: "maxClients" }), 1)
      }).pipe(Effect.scoped)
    )
  )
})

describe("pull metrics", () => {
  it.live("bytes by service and direction, streams open, links and latencies are read from the components", () =>
    isolated(
      Effect.gen(function* () {
        const server = yield* Server.make({ listen: loopback, handler: Server.forward(yield* echoBackend) })
        const proxy = yield* Proxy.make({ listen: loopback, upstream: server.address })
        yield* Metrics.observe(Observed.fromProxy(proxy), { pingMillis: 0 })
        yield* Metrics.observe(Observed.fromServer(server), { pingMillis: 0 })
        const got = yield* echoes(proxy.address, 4, 1000)
        assert.deepStrictEqual(got, [1000, 1000, 1000, 1000])
        // The proxy's actor finishes its bookkeeping just after the client's EOF: wait for it.
        assert.isTrue(yield* eventually(Effect.sync(() => proxy.stats().clients === 0 && server.stats().streams === 0)))
        const text = yield* PrometheusMetrics.format()
        for (const role of ["proxy", "server"]) {
          assert.strictEqual(sample(text, `plait_bytes_total{role="${role}",service="default",direction="up"}`), 4000)
          assert.strictEqual(sample(text, `plait_bytes_total{role="${role}",service="default",direction="down"}`), 4000)
          assert.strictEqual(sample(text, `plait_streams_open{role="${role}",service="default"}`), 0)
          assert.strictEqual(sample(text, `plait_links{role="${role}"}`), 1)
          assert.strictEqual(sample(text, `plait_ready{role="${role}"}`), 1)
        }
        assert.strictEqual(sample(text, `plait_stream_open_seconds_count{role="proxy"}`), 4)
        assert.strictEqual(sample(text, `plait_backend_dial_seconds_count{role="server"}`), 4)
        assert.strictEqual(sample(text, `plait_backend_dial_failures_total{role="server"}`), 0)
        assert.strictEqual(sample(text, `plait_link_reconnects_total{role="proxy"}`), 0)
        assert.isAbove(sample(text, `plait_process_resident_memory_bytes{role="proxy"}`) ?? 0, 0)
      }).pipe(Effect.scoped)
    )
  )

  it.live("bytes of a stream still open are counted, and a failed backend dial is counted", () =>
    isolated(
      Effect.gen(function* () {
        const server = yield* Server.make({ listen: loopback, handler: Server.forward(yield* echoBackend) })
        const proxy = yield* Proxy.make({ listen: loopback, upstream: server.address })
        const observed = Observed.fromProxy(proxy)
        const client = yield* Tcp.connect(proxy.address)
        yield* client.write([new Uint8Array(5000)])
        let got = 0
        while (got < 5000) got += (yield* client.read)?.length ?? 0
        const facts = observed.services()[0]!
        assert.strictEqual(facts.bytesUp, 5000)
        assert.strictEqual(facts.bytesDown, 5000)
        assert.strictEqual(facts.streams, 1)

        // A target nobody listens on: the dial fails and the stream is reset.
        const failing = yield* Server.make({ listen: loopback, handler: Server.forward(yield* deadAddress) })
        const proxy2 = yield* Proxy.make({ listen: loopback, upstream: failing.address })
        const victim = yield* Tcp.connect(proxy2.address)
        yield* victim.write([new Uint8Array([1])])
        yield* Effect.exit(victim.read)
        assert.isTrue(yield* eventually(Effect.sync(() => failing.stats().dialFailures === 1)))
        assert.strictEqual(Observed.fromServer(failing).dialFailures(), 1)
      }).pipe(Effect.scoped)
    )
  )
})
