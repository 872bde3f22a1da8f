/**
 * Type-level checks of the installed package (type-checked in the consumer project, never run):
 * the public namespaces carry real types, and deep imports do not resolve.
 */
import { Effect, type Layer } from "effect"
import { Adapters, Client, Config, Events, MuxError, type MuxStream, Proxy, Server, type Session, Tcp } from "plait"

// The layers have the service and error types an application composes with.
export const client: Layer.Layer<Client.Client> = Client.layer({ upstream: { host: "127.0.0.1", port: 7001 } })
export const proxy: Layer.Layer<Proxy.TcpProxy, unknown> = Proxy.layer({})
export const server: Layer.Layer<Server.Server, unknown> = Server.layer({ handler: Server.echo })
export const events: Layer.Layer<Events.Events> = Events.Events.layer
export const address: string = Tcp.formatAddress({ host: "::1", port: 7000 })
export const defaults: Config.SessionConfig = Config.defaults
export const isMuxError = (u: unknown): u is MuxError.MuxError => u instanceof MuxError.MuxError
export const chunks = (stream: MuxStream.MuxStream) => Adapters.toStream(stream)
export type AnySession = Session.Session

// The declarations resolve all the way down: none of these is `any`.
type IsAny<T> = 0 extends 1 & T ? true : false
type NotAny<T> = IsAny<T> extends true ? never : true
export const typed: [
  NotAny<typeof Client.layer>,
  NotAny<Server.ServerService["address"]>,
  NotAny<MuxStream.MuxStream["readAll"]>,
  NotAny<Session.Session>,
  NotAny<MuxError.MuxError["reason"]>
] = [true, true, true, true, true]

// A handler's stream is typed: reading yields bytes.
export const handler: Server.Handler = (stream) => Effect.map(stream.readAll, (bytes: Uint8Array) => void bytes.length)

// Deep imports are not part of the package: each must fail to resolve (else the directive errors).
// @ts-expect-error internal modules are not exported
export type Internal = typeof import("plait/internal/session/Stream.js")
// @ts-expect-error the build output is reachable only through the entry point
export type Dist = typeof import("plait/dist/index.js")
// @ts-expect-error the TypeScript sources are not an entry point of the npm package
export type Source = typeof import("plait/src/index.ts")
