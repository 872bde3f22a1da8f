/**
 * TLS transport over `node:tls`, the same code on Node (OpenSSL), Bun (BoringSSL) and Deno (rustls).
 *
 * The link between proxy and server can run over TLS: the server presents a certificate, the proxy
 * verifies it against the CAs it is given (or the system trust store), and with a CA configured on
 * the server, the proxy must present a client certificate signed by it (mutual TLS). Once the
 * handshake is done, the `TLSSocket` is wrapped by {@link Tcp.makeTransport}, so the invariants of
 * the TCP transport (pulled reads, awaited writes, half-close, close grace) hold unchanged on every
 * runtime (on Deno through its own flow control, see the runtime notes); `reset` falls back to
 * `destroy` (no RST through TLS).
 *
 * Invariants:
 * - {@link connect} succeeds only after `'secureConnect'` with the server's certificate verified
 *   (unless `rejectUnauthorized: false`), including the host name or IP against its subjectAltName
 *   (or `servername` when given). A failure before the TCP connection is a `connect`
 *   {@link TransportError}; a failure after it — certificate not trusted, wrong name, expired, not a
 *   TLS server, handshake timeout — is a `handshake` error whose message says what to change.
 * - {@link listen} hands out only connections whose handshake completed (and, with `ca`, whose
 *   client certificate verified). A peer that connects and never completes the handshake is
 *   destroyed after `handshakeTimeoutMillis`; failed handshakes are counted and logged as warnings and
 *   never reach `accept`. At most `maxPendingHandshakes` handshakes are in flight; connections
 *   beyond that are dropped at once.
 * - Closing the listener's scope stops listening, destroys in-flight handshakes and connections
 *   nobody accepted, and fails pending and later `accept`s. Accepted connections belong to their
 *   owners.
 *
 * Runtime notes (checked with throwaway certificates on Node 24, Bun 1.4, Deno 2.9):
 * - With TLS 1.3 the *client* finishes its handshake before the server has checked the client
 *   certificate. A proxy without an acceptable client certificate therefore sees {@link connect}
 *   succeed and the first read fail with an alert (`ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED`,
 *   `…_UNKNOWN_CA`); the server never accepts that connection either way. Put token
 *   authentication (`Auth.ts`) on top and the failure surfaces during the dial instead.
 * - Error codes and messages come from the runtime's TLS stack and differ in wording (Deno's
 *   rustls: `received fatal alert: CertificateRequired`); the hints here key on the codes, which
 *   the three runtimes share for the common failures.
 * - When the *client* refuses the server's certificate, Node and Bun never report the connection
 *   to the server as established; Deno's server may (it completes its side of the TLS 1.3
 *   handshake first), so `accept` can hand out a connection whose first read fails. Client
 *   certificates, by contrast, are verified before `accept` on all three.
 * - Deno (2.9): `pause()` on a TLS socket stops nothing (the TLS handle keeps reading and
 *   buffering), and pausing the TCP socket under it alone loses the peer's EOF; the transport stops
 *   the TLS handle's reads and pauses the TCP socket together, which keeps every byte and the EOF
 *   and pushes back through TCP as on Node and Bun (see `DENO_TLS_FLOW`).
 * - The server-side handshake timeout uses `tls.createServer({ handshakeTimeout })`, reported as
 *   `'tlsClientError'` on all three runtimes; the listener destroys the socket itself (Node does
 *   not when a `'tlsClientError'` listener exists).
 *
 * @since 0.1.0
 */
import * as net from "node:net"
import * as tls from "node:tls"
import { Cause, Effect, Exit, Queue, type Scope } from "effect"
import { codeOf, rawMessage } from "../internal/errorText.ts"
import * as Tcp from "./Tcp.ts"
import { type Transport, TransportError } from "./Transport.ts"

/**
 * PEM text (or its bytes): a certificate chain, a private key or CA certificates.
 *
 * @since 0.1.0
 * @category models
 */
export type Pem = string | Uint8Array

/**
 * Default bound on a TLS handshake, both sides: 10 s.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_HANDSHAKE_TIMEOUT_MILLIS = 10_000

/**
 * Default bound on concurrent in-flight server handshakes.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_PENDING_HANDSHAKES = 1024

/**
 * Options of {@link connect}; `ca`/`cert`/`key`/`servername` map to `--tls-ca`/`--tls-cert`/…
 *
 * @since 0.1.0
 * @category models
 */
export interface TlsConnectOptions extends Tcp.TcpOptions {
  /** CA certificates that may sign the server's certificate; default: the system trust store. */
  readonly ca?: Pem | ReadonlyArray<Pem>
  /** Client certificate chain, for servers that require mutual TLS (needs `key`). */
  readonly cert?: Pem
  /** Private key of `cert`. */
  readonly key?: Pem
  /** Name to send (SNI) and to check the certificate against; default: the host when it is a name. */
  readonly servername?: string
  /** Verify the server certificate (default `true`; `false` is for debugging only). */
  readonly rejectUnauthorized?: boolean
  /** Bound on TCP connect plus TLS handshake (default {@link DEFAULT_HANDSHAKE_TIMEOUT_MILLIS}). */
  readonly handshakeTimeoutMillis?: number
}

/**
 * Options of {@link listen}; `cert`/`key`/`ca` map to `--tls-cert`/`--tls-key`/`--tls-ca`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TlsListenOptions extends Tcp.TcpOptions {
  /** The server's certificate chain. */
  readonly cert: Pem
  /** Its private key. */
  readonly key: Pem
  /** When set, clients must present a certificate signed by one of these CAs (mutual TLS). */
  readonly ca?: Pem | ReadonlyArray<Pem>
  /** A connection whose handshake takes longer is destroyed (default {@link DEFAULT_HANDSHAKE_TIMEOUT_MILLIS}). */
  readonly handshakeTimeoutMillis?: number
  /** Handshakes in flight at once; more connections are dropped (default {@link DEFAULT_MAX_PENDING_HANDSHAKES}). */
  readonly maxPendingHandshakes?: number
  /** Kernel accept backlog (default 511). */
  readonly backlog?: number
  /** Called (synchronously, from the I/O callback) for every failed handshake, after it is counted. */
  readonly onHandshakeFailure?: (failure: HandshakeFailure) => void
}

/**
 * A handshake a TLS listener refused.
 *
 * @since 0.1.0
 * @category models
 */
export interface HandshakeFailure {
  /** The peer's address, e.g. `127.0.0.1:53122`. */
  readonly peer: string
  /** What the TLS stack reported, code first (e.g. `ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE: …`). */
  readonly reason: string
}

/**
 * Counters of a TLS listener.
 *
 * @since 0.1.0
 * @category models
 */
export interface TlsServerStats {
  /** Handshakes completed (connections handed to `accept`). */
  readonly handshakes: number
  /** Handshakes that failed, timed out or were dropped over `maxPendingHandshakes`. */
  readonly handshakeFailures: number
  /** Handshakes in flight now. */
  readonly pending: number
}

/**
 * A listening TLS server: a {@link Tcp.TcpServer} of verified connections, plus counters.
 *
 * @since 0.1.0
 * @category models
 */
export interface TlsServer extends Tcp.TcpServer {
  readonly stats: () => TlsServerStats
}

const toBuffer = (pem: Pem): string | Buffer => (typeof pem === "string" ? pem : Buffer.from(pem))

const toBuffers = (pem: Pem | ReadonlyArray<Pem>): Array<string | Buffer> =>
  typeof pem === "string" || pem instanceof Uint8Array ? [toBuffer(pem)] : pem.map(toBuffer)

const UNTRUSTED = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "INVALID_CA"
])

/**
 * What a client-side TLS failure most likely means and what to change, from the error code the
 * runtime reports. Exported for the CLI and tests.
 *
 * @since 0.1.0
 * @category utils
 */
export const clientHint = (cause: unknown): string | undefined => {
  const code = codeOf(cause) ?? ""
  const message = cause instanceof Error ? cause.message : ""
  if (UNTRUSTED.has(code))
    return "the server's certificate is not signed by a trusted CA (give the CA that signed it with --tls-ca)"
  if (code === "CERT_HAS_EXPIRED") return "the server's certificate has expired"
  if (code === "CERT_NOT_YET_VALID") return "the server's certificate is not valid yet (check the clocks)"
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID")
    return "the server's certificate does not name the host dialled (dial a name it carries, or set --tls-servername)"
  if (code.includes("CERTIFICATE_REQUIRED"))
    return "the server requires a client certificate (set --tls-cert and --tls-key)"
  if (code.includes("ALERT_UNKNOWN_CA") || code.includes("ALERT_BAD_CERTIFICATE") || code.includes("DECRYPT_ERROR"))
    return "the server rejected our client certificate (is it signed by the CA the server was given with --tls-ca?)"
  if (code.includes("WRONG_VERSION_NUMBER") || code.includes("PACKET_LENGTH_TOO_LONG") || code.includes("RECORD"))
    return "the server does not speak TLS (is it started with --tls-cert/--tls-key?)"
  if (code === "ECONNRESET" || code === "EPIPE" || message.includes("before secure TLS connection"))
    return "the server closed the connection during the TLS handshake (is it a TLS server? does it require a client certificate?)"
  return undefined
}

const handshakeError = (where: string, cause: unknown): TransportError => {
  const hint = clientHint(cause)
  return new TransportError({
    operation: "handshake",
    message:
      hint === undefined
        ? `TLS handshake with ${where} failed: ${rawMessage(cause)}`
        : `TLS handshake with ${where} failed: ${hint} (${rawMessage(cause)})`,
    cause
  })
}

const ignoreError = () => {}

/** A native stream handle of Deno's `node:net`/`node:tls`, as far as flow control needs it. */
interface DenoHandle {
  readonly readStop?: () => unknown
  readonly readStart?: () => unknown
}

/** The parts of a Deno `node:tls` socket its flow control needs: its TLS handle and the TCP socket under it. */
interface DenoTlsSocket {
  readonly _handle?: DenoHandle | null
  readonly _parent?: { readonly _handle?: DenoHandle | null } | null
}

/**
 * On Deno (2.9), `pause()` on a `node:tls` socket pushes nothing back: its TLS handle keeps
 * reading TCP and buffers everything the peer sends (256 MiB from a peer that was never read,
 * measured). Pausing the TCP socket under it with `pause()` does push back, but loses the peer's
 * EOF, and after a few pause/resume cycles the TLS handle stops reading altogether. Stopping the
 * reads of both native handles — the TLS handle's (`readStop` keeps decrypted data and a pending
 * EOF for the next `readStart`, see denoland/deno#33524) and the TCP handle's under it — and
 * starting them again in the reverse order does all three: the peer is stopped after the kernel's
 * buffers (about 4 MiB on loopback, as on Node and Bun), every byte and the EOF arrive after each
 * resume, through any number of cycles (`test/runtimes/scenarios/tls-backpressure.ts`). Elsewhere
 * `pause()` does it all. The stream-level pause comes last: first, it leaves the TCP socket reading.
 */
const DENO_TLS_FLOW: Tcp.SocketFlow = {
  pause: (socket) => {
    const deno = socket as unknown as DenoTlsSocket
    deno._handle?.readStop?.()
    deno._parent?._handle?.readStop?.()
    socket.pause()
  },
  resume: (socket) => {
    const deno = socket as unknown as DenoTlsSocket
    deno._parent?._handle?.readStart?.()
    deno._handle?.readStart?.()
    socket.resume()
  }
}

const FLOW: Tcp.SocketFlow | undefined = "Deno" in globalThis ? DENO_TLS_FLOW : undefined

/** Wraps a TLS socket whose handshake completed. */
const wrap = (socket: tls.TLSSocket, options: Tcp.TcpOptions): Transport => Tcp.makeTransport(socket, options, FLOW)

/**
 * The peer of a server-side TLS socket, also after it was destroyed: Node and Deno then only know
 * it through the wrapped raw socket.
 */
const peerOf = (socket: tls.TLSSocket): string => {
  if (socket.remoteAddress !== undefined) return Tcp.formatHostPort(socket.remoteAddress, socket.remotePort)
  const parent = (socket as { _parent?: { remoteAddress?: string; remotePort?: number } })._parent
  return Tcp.formatHostPort(parent?.remoteAddress, parent?.remotePort)
}

/**
 * Dials `host:port` over TLS. Scoped: closing the scope `close`s the transport (TLS close_notify
 * and FIN). Interrupting the dial, or a dial that does not complete within `handshakeTimeoutMillis`,
 * destroys the half-open socket.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (
  address: Tcp.TcpAddress,
  options: TlsConnectOptions = {}
): Effect.Effect<Transport, TransportError, Scope.Scope> =>
  Effect.acquireRelease(dialTls(address, options), (transport) => transport.close)

const dialTls = (address: Tcp.TcpAddress, options: TlsConnectOptions): Effect.Effect<Transport, TransportError> =>
  Effect.suspend(() => {
    const where = Tcp.formatAddress(address)
    const timeoutMillis = options.handshakeTimeoutMillis ?? DEFAULT_HANDSHAKE_TIMEOUT_MILLIS
    let tcpConnected = false
    const dial = Effect.callback<Transport, TransportError>((resume) => {
      const servername = options.servername ?? (net.isIP(address.host) === 0 ? address.host : undefined)
      let socket: tls.TLSSocket
      // On Deno the TCP socket is dialled here and handed to TLS: only then does the TLS socket
      // know it (`_parent`), which its flow control pauses (see DENO_TLS_FLOW).
      const raw =
        FLOW === undefined ? undefined : net.connect({ host: address.host, port: address.port, allowHalfOpen: true })
      raw?.on("error", ignoreError)
      try {
        const connectOptions: tls.ConnectionOptions & { readonly allowHalfOpen: boolean } = {
          ...(raw === undefined ? { host: address.host, port: address.port } : { socket: raw }),
          allowHalfOpen: true,
          rejectUnauthorized: options.rejectUnauthorized ?? true,
          ...(servername === undefined ? {} : { servername }),
          ...(options.ca === undefined ? {} : { ca: toBuffers(options.ca) }),
          ...(options.cert === undefined ? {} : { cert: toBuffer(options.cert) }),
          ...(options.key === undefined ? {} : { key: toBuffer(options.key) })
        }
        socket = tls.connect(connectOptions)
      } catch (cause) {
        raw?.destroy()
        // Bad PEM and the like throw synchronously.
        resume(
          Effect.fail(
            new TransportError({
              operation: "handshake",
              message: `TLS setup for ${where} failed: ${rawMessage(cause)}`,
              cause
            })
          )
        )
        return
      }
      socket.pause()
      const detach = () => {
        socket.off("error", onError)
        socket.off("connect", onConnect)
        socket.off("secureConnect", onSecure)
        raw?.off("connect", onConnect)
        raw?.off("error", onError)
      }
      const onConnect = () => {
        tcpConnected = true
      }
      const onError = (cause: Error) => {
        detach()
        socket.on("error", ignoreError)
        socket.destroy()
        raw?.destroy()
        resume(
          Effect.fail(
            tcpConnected
              ? handshakeError(where, cause)
              : new TransportError({
                  operation: "connect",
                  message: `cannot connect to ${where}: ${rawMessage(cause)}`,
                  cause
                })
          )
        )
      }
      const onSecure = () => {
        detach()
        resume(Effect.succeed(wrap(socket, options)))
      }
      socket.on("connect", onConnect)
      raw?.once("connect", onConnect)
      raw?.once("error", onError)
      socket.once("error", onError)
      socket.once("secureConnect", onSecure)
      return Effect.sync(() => {
        detach()
        socket.on("error", ignoreError)
        socket.destroy()
        raw?.destroy()
      })
    })
    return dial.pipe(
      Effect.timeoutOrElse({
        duration: timeoutMillis,
        orElse: () =>
          Effect.fail(
            tcpConnected
              ? new TransportError({
                  operation: "handshake",
                  message: `TLS handshake with ${where} did not complete within ${timeoutMillis} ms (is it a TLS server?)`
                })
              : new TransportError({
                  operation: "connect",
                  message: `cannot connect to ${where}: no answer within ${timeoutMillis} ms`
                })
          )
      })
    )
  })

/**
 * Listens on `host:port` (port 0 picks a free one) and serves TLS with `cert`/`key`; with `ca`,
 * requires client certificates signed by it. Scoped; see the module invariants.
 *
 * @since 0.1.0
 * @category constructors
 */
export const listen = (
  address: Tcp.TcpAddress,
  options: TlsListenOptions
): Effect.Effect<TlsServer, TransportError, Scope.Scope> =>
  Effect.gen(function* () {
    const where = Tcp.formatAddress(address)
    const handshakeTimeoutMillis = options.handshakeTimeoutMillis ?? DEFAULT_HANDSHAKE_TIMEOUT_MILLIS
    const maxPending = options.maxPendingHandshakes ?? DEFAULT_MAX_PENDING_HANDSHAKES
    const queue = yield* Queue.unbounded<Transport, TransportError>()
    // Handshake failures, logged by a fiber of the listener's scope; never blocks the event handler.
    const failures = yield* Queue.dropping<string>(256)
    yield* Effect.forkScoped(
      Effect.forever(Effect.flatMap(Queue.take(failures), (message) => Effect.logWarning(message)))
    )

    let closed = false
    let handshakes = 0
    let handshakeFailures = 0
    // Raw sockets whose handshake is in flight, keyed by remote address and port.
    const pending = new Map<string, net.Socket>()
    const failed = new WeakSet<object>()

    const recordFailure = (socket: object | undefined, peer: string, reason: string) => {
      if (socket !== undefined) {
        if (failed.has(socket)) return
        failed.add(socket)
      }
      handshakeFailures++
      Queue.offerUnsafe(failures, `tls: handshake with ${peer} failed: ${reason}`)
      options.onHandshakeFailure?.({ peer, reason })
    }

    let server: tls.Server
    try {
      server = tls.createServer({
        cert: toBuffer(options.cert),
        key: toBuffer(options.key),
        allowHalfOpen: true,
        handshakeTimeout: handshakeTimeoutMillis,
        ...(options.ca === undefined ? {} : { ca: toBuffers(options.ca), requestCert: true, rejectUnauthorized: true })
      })
    } catch (cause) {
      return yield* Effect.fail(
        new TransportError({
          operation: "listen",
          message: `cannot set up TLS on ${where}: ${rawMessage(cause)} (check --tls-cert, --tls-key and --tls-ca)`,
          cause
        })
      )
    }

    server.on("connection", (raw: net.Socket) => {
      const peer = Tcp.formatHostPort(raw.remoteAddress, raw.remotePort)
      if (closed || pending.size >= maxPending) {
        if (!closed) recordFailure(undefined, peer, `more than ${maxPending} handshakes in flight; dropped`)
        raw.on("error", ignoreError)
        raw.destroy()
        return
      }
      pending.set(peer, raw)
      raw.once("close", () => {
        if (pending.get(peer) === raw) pending.delete(peer)
      })
    })
    server.on("tlsClientError", (cause: Error, socket: tls.TLSSocket) => {
      const peer = peerOf(socket)
      const raw = pending.get(peer)
      pending.delete(peer)
      // Node and Deno verify the client certificate after the handshake and just destroy the socket
      // (the error is then a bare ECONNRESET); the verification result says what happened.
      const verifyError = (socket as { authorizationError?: unknown }).authorizationError
      const reason =
        typeof verifyError === "string" || verifyError instanceof Error
          ? `client certificate rejected: ${String(verifyError instanceof Error ? rawMessage(verifyError) : verifyError)}`
          : rawMessage(cause)
      recordFailure(socket, peer, reason)
      socket.on("error", ignoreError)
      socket.destroy()
      raw?.destroy()
    })
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      const peer = peerOf(socket)
      pending.delete(peer)
      if (closed) {
        socket.on("error", ignoreError)
        socket.destroy()
        return
      }
      handshakes++
      Queue.offerUnsafe(queue, wrap(socket, options))
    })

    const failQueue = (message: string, cause?: unknown) =>
      Queue.failCauseUnsafe(queue, Cause.fail(new TransportError({ operation: "listen", message, cause })))

    yield* Effect.acquireRelease(Tcp.bindServer(server, address, options.backlog, failQueue), () =>
      Effect.sync(() => {
        closed = true
        server.close()
        for (const raw of pending.values()) {
          raw.on("error", ignoreError)
          raw.destroy()
        }
        pending.clear()
        for (let exit = Queue.takeUnsafe(queue); exit !== undefined; exit = Queue.takeUnsafe(queue)) {
          if (Exit.isFailure(exit)) break
          Effect.runSync(exit.value.reset)
        }
        failQueue("server closed")
      })
    )
    const bound = server.address()
    const boundAddress: Tcp.TcpAddress =
      bound !== null && typeof bound === "object"
        ? { host: bound.address, port: bound.port }
        : { host: address.host, port: address.port }
    const tlsServer: TlsServer = {
      address: boundAddress,
      accept: Queue.take(queue),
      stats: () => ({ handshakes, handshakeFailures, pending: pending.size })
    }
    return tlsServer
  })
