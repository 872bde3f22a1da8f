/**
 * Cross-runtime scenario: resumption over real TCP loopback. A server and a proxy (both with
 * resumption) in this process, a relay between them that resets the link (RST) and then
 * black-holes it while 20 clients stream through: every client's echo is byte-exact, the proxy
 * never needed a fresh session (the same one resumed twice), and the metrics events say so.
 */
import { Effect, Fiber, PubSub } from "effect"
import * as Events from "../../../src/observability/Events.ts"
import * as Proxy from "../../../src/proxy/Proxy.ts"
import * as Server from "../../../src/server/Server.ts"
import { relay } from "../../resume/relay.ts"
import { check, echoClients, runScenario } from "../lib.ts"

const loopback = { host: "127.0.0.1", port: 0 }
// Keepalive timeout 1 s: the layer's silence (a black hole) is noticed after 1 s.
const session = { keepaliveTimeoutMillis: 1_000 }
const resume = { config: { windowMillis: 15_000 } }

runScenario(
  "resume-tcp",
  Effect.gen(function* () {
    const events = yield* PubSub.unbounded<Events.PlaitEvent>()
    const subscription = yield* PubSub.subscribe(events)
    let resumedByProxy = 0
    let resets = 0
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.map(PubSub.take(subscription), (event) => {
          if (event._tag === "LinkResumed" && event.role === "proxy") resumedByProxy++
          if (event._tag === "StreamClosed" && event.reset) resets++
        })
      )
    )
    const server = yield* Server.make({ listen: loopback, session, resume }).pipe(
      Effect.provideService(Events.Events, events)
    )
    const cut = yield* relay(server.address)
    const proxy = yield* Proxy.make({ listen: loopback, upstream: cut.address, session, resume }).pipe(
      Effect.provideService(Events.Events, events)
    )
    yield* proxy.link.session(10_000)

    // Each client writes 2 MiB in 16 KiB pieces; the cuts land while they are all mid-transfer.
    const transfer = yield* Effect.forkChild(echoClients(proxy.address, 20, () => 2 * 1024 * 1024, 16 * 1024))
    yield* Effect.sleep(300)
    cut.reset()
    yield* Effect.sleep(1_000)
    cut.blackhole()
    yield* check(yield* Fiber.join(transfer), "20 clients × 2 MiB echoed byte-exact through an RST and a black hole")
    yield* check(proxy.link.generation() === 1, "one session for the whole run: resumed, never replaced")
    yield* check(resumedByProxy >= 1, `the proxy resumed the session (${resumedByProxy} time(s))`)
    yield* check(resets === 0, "no stream was reset")
  })
)
