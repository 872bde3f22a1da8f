import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric } from "effect"
import * as Events from "../../src/observability/Events.ts"
import * as Metrics from "../../src/observability/Metrics.ts"
import * as Proxy from "../../src/proxy/Proxy.ts"
import * as Server from "../../src/server/Server.ts"
import * as Tcp from "../../src/transport/Tcp.ts"

const counter = (metric: Metric.Counter<number>) => Effect.map(Metric.value(metric), (state) => state.count)

/** Polls `check` until it holds, at most `tries` times, yielding between tries. */
const eventually = (check: Effect.Effect<boolean>, tries = 1_000) =>
  Effect.gen(function* () {
    for (let i = 0; i < tries; i++) {
      if (yield* check) return true
      yield* Effect.sleep(2)
    }
    return false
  })

describe("lifecycle metrics", () => {
  it.live("links and streams of a real proxy + server are counted from the event bus", () =>
    Effect.gen(function* () {
      const server = yield* Server.make({ listen: { host: "127.0.0.1", port: 0 } })
      const proxy = yield* Proxy.make({ listen: { host: "127.0.0.1", port: 0 }, upstream: server.address })
      for (let i = 0; i < 3; i++) {
        yield* Effect.scoped(
          Effect.gen(function* () {
            const client = yield* Tcp.connect(proxy.address)
            yield* client.write([new Uint8Array([1, 2, 3])])
            yield* client.closeWrite
            while ((yield* client.read) !== null) {}
          })
        )
      }
      // Both roles publish: the proxy and the server each see one link and three streams.
      assert.isTrue(yield* eventually(Effect.map(counter(Metrics.streamsClosed), (n) => n >= 6)))
      assert.strictEqual(yield* counter(Metrics.linksUp), 2)
      assert.strictEqual(yield* counter(Metrics.streamsOpened), 6)
      assert.strictEqual(yield* counter(Metrics.streamsReset), 0)
      assert.strictEqual((yield* Metric.value(Metrics.streamsOpen)).value, 0)
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.provideMerge(Metrics.layer, Events.Events.layer)),
      Effect.timeout(10_000)
    )
  )
})
