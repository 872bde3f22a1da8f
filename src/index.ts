/**
 * plait: a TCP multiplexing proxy on Effect. Many client connections travel as yamux streams over
 * one persistent link between a proxy and a server; the server forwards each stream to a backend
 * or serves it with an in-process Effect handler.
 *
 * The public surface, one namespace per concept, in the order of the architecture:
 * protocol (`Constants`, `Frame`, `Decoder`) → session (`Session`, `MuxStream`, `MuxError`, `Config`,
 * `Adapters`) → resumption beneath the session (`Resume`, `ResumeError`) → transport (`Transport`,
 * `Tcp`, `Tls`, `Auth`, `Negotiation`, `OpenMessage`, `ProxyProtocol`, `Endpoint`, `Memory`,
 * `Splice`) → client, proxy and server (`Client`, `Link`,
 * `LinkPool`, `ProxyError`, `Proxy`, `Server`) → observability (`Events`, `Metrics`, `Observed`) → the admin
 * endpoint (`Admin`, `Status`). The command line (`src/cli/`, the `plait` binary) is not part of it.
 *
 * Invariants (test/package/Layout.test.ts): every namespace is a public module, never one under
 * `internal/`, which is implementation and may change without notice; every export reachable from
 * here has JSDoc with `@since` and `@category`; the package's `exports` map refuses deeper imports.
 *
 * ```ts
 * import { Client, Server } from "plait"
 * ```
 *
 * @since 0.1.0
 */

/**
 * The admin endpoint: Prometheus metrics, health, readiness, status and a live dashboard over HTTP.
 *
 * @since 0.1.0
 */
export * as Admin from "./admin/Admin.ts"
/**
 * The admin endpoint's `/status` document: schema, decoding, terminal rendering.
 *
 * @since 0.1.0
 */
export * as Status from "./admin/Status.ts"
/**
 * Opens streams to a plait server from inside an Effect application, over a supervised link.
 *
 * @since 0.1.0
 */
export * as Client from "./client/Client.ts"
/**
 * The supervised, redialled link to a server.
 *
 * @since 0.1.0
 */
export * as Link from "./client/Link.ts"
/**
 * A link that servers dial (`plait proxy --link-listen`): accepted, negotiated, newest session current.
 *
 * @since 0.2.0
 */
export * as LinkListener from "./client/LinkListener.ts"
/**
 * A pool of links over several servers: new streams on the least-loaded live link, per-server
 * backoff, failover and rebalancing (`plait proxy --upstream A,B --links N`).
 *
 * @since 0.2.0
 */
export * as LinkPool from "./client/LinkPool.ts"
/**
 * The client's and proxy's one error type: link unavailable, open failed, client limit.
 *
 * @since 0.1.0
 */
export * as ProxyError from "./client/ProxyError.ts"
/**
 * Lifecycle events (links, streams, refusals, limits) on a PubSub.
 *
 * @since 0.1.0
 */
export * as Events from "./observability/Events.ts"
/**
 * Counters and gauges fed by the lifecycle events.
 *
 * @since 0.1.0
 */
export * as Metrics from "./observability/Metrics.ts"
/**
 * The read-only facts of a running proxy or server (links, services, limits, readiness).
 *
 * @since 0.1.0
 */
export * as Observed from "./observability/Observed.ts"
/**
 * yamux protocol constants: frame types, flags, GO_AWAY codes, sizes.
 *
 * @since 0.1.0
 */
export * as Constants from "./protocol/Constants.ts"
/**
 * The incremental yamux frame decoder (sans-IO: bytes in, frames out) and its `FrameError`.
 *
 * @since 0.1.0
 */
export * as Decoder from "./protocol/Decoder.ts"
/**
 * yamux frames: building and encoding headers and frames (sans-IO).
 *
 * @since 0.1.0
 */
export * as Frame from "./protocol/Frame.ts"
/**
 * The proxy: accepts TCP clients and carries each as a stream over the link.
 *
 * @since 0.1.0
 */
export * as Proxy from "./proxy/Proxy.ts"
/**
 * Streams that survive the loss of the link: the resumption layer beneath the session (resumable
 * transport, dialler and acceptor handshakes, the registry of broken sessions).
 *
 * @since 0.1.0
 */
export * as Resume from "./resume/Resume.ts"
/**
 * The resumption layer's one error type, with tagged reasons (refusals, window expired, aborted).
 *
 * @since 0.1.0
 */
export * as ResumeError from "./resume/ResumeError.ts"
/**
 * The server: accepts links and serves each stream with a handler (forward to a backend, echo, or
 * your own Effect).
 *
 * @since 0.1.0
 */
export * as Server from "./server/Server.ts"
/**
 * A stream as an Effect `Stream` or an Effect `Socket`.
 *
 * @since 0.1.0
 */
export * as Adapters from "./session/Adapters.ts"
/**
 * Session settings with validated defaults.
 *
 * @since 0.1.0
 */
export * as Config from "./session/Config.ts"
/**
 * The session's one error type, with tagged reasons that know their protocol outcome.
 *
 * @since 0.1.0
 */
export * as MuxError from "./session/MuxError.ts"
/**
 * A multiplexed stream: read, write, half-close, reset.
 *
 * @since 0.1.0
 */
export * as MuxStream from "./session/MuxStream.ts"
/**
 * A yamux session over one transport: opening and accepting streams, windows, keepalive, GO_AWAY.
 *
 * @since 0.1.0
 */
export * as Session from "./session/Session.ts"
/**
 * The token handshake: HMAC challenge-response before the session starts.
 *
 * @since 0.1.0
 */
export * as Auth from "./transport/Auth.ts"
/**
 * IP endpoints (family, address, port) as open messages and PROXY protocol headers carry them.
 *
 * @since 0.2.0
 */
export * as Endpoint from "./transport/Endpoint.ts"
/**
 * In-memory transport pairs, with fault injection, for tests and embedding.
 *
 * @since 0.1.0
 */
export * as Memory from "./transport/Memory.ts"
/**
 * Link negotiation: plait peers agree on capabilities before the session; plain yamux peers see
 * plain yamux.
 *
 * @since 0.2.0
 */
export * as Negotiation from "./transport/Negotiation.ts"
/**
 * The stream open message: service name and client address at the start of each stream.
 *
 * @since 0.2.0
 */
export * as OpenMessage from "./transport/OpenMessage.ts"
/**
 * The PROXY protocol (haproxy's v1 and v2): encoding, parsing, reading a header off a connection.
 *
 * @since 0.2.0
 */
export * as ProxyProtocol from "./transport/ProxyProtocol.ts"
/**
 * Joining two transports (a socket and a stream) both ways, with half-close and backpressure.
 *
 * @since 0.1.0
 */
export * as Splice from "./transport/Splice.ts"
/**
 * TCP transports on `node:net` (Node, Bun, Deno): dial, listen, serve.
 *
 * @since 0.1.0
 */
export * as Tcp from "./transport/Tcp.ts"
/**
 * TLS links, server and client, with mutual TLS.
 *
 * @since 0.1.0
 */
export * as Tls from "./transport/Tls.ts"
/**
 * The byte-transport interface every link and stream implements, and its error.
 *
 * @since 0.1.0
 */
export * as Transport from "./transport/Transport.ts"
