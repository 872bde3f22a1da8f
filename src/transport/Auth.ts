/**
 * Shared-token authentication of a link, before its yamux session starts: a challenge-response in
 * which the token never crosses the wire, run over any {@link Transport} (plain TCP or TLS).
 *
 * Wire format (version 1; all lengths fixed):
 * 1. server → client, the challenge (43 bytes): ASCII `plait-auth` ‖ version `0x01` ‖ 32-byte
 *    server nonce.
 * 2. client → server, the answer (65 bytes): version `0x01` ‖ 32-byte client nonce ‖
 *    `HMAC-SHA256(token, "plait-auth-v1/client" ‖ server nonce ‖ client nonce)`.
 * 3. server → client, the verdict: `0x00` ‖ `HMAC-SHA256(token, "plait-auth-v1/server" ‖ client
 *    nonce ‖ server nonce)` (33 bytes) when the answer verifies (compared in constant time), else
 *    the single byte `0x01`, after which the server closes the connection.
 * The client checks the server's proof too, so a proxy knows it reached a server holding the token.
 * The two proofs use different labels, so neither side's proof can be replayed as the other's.
 * Then both sides start yamux on the same connection; bytes that arrived behind the handshake are
 * handed to the session first, none is lost.
 *
 * Invariants:
 * - Every read is bounded in size (exactly the bytes of the message expected; anything that
 *   arrived behind it is kept for the session) and the whole handshake in time (`timeoutMillis`,
 *   default 10 s), so a silent or slow-loris peer cannot hold a link slot for longer.
 * - Any failure — wrong token, timeout, garbage, a peer that closes — fails with a `handshake`
 *   {@link TransportError} (its `cause` an {@link AuthError} with the reason) on that side and closes
 *   the connection: a peer without the token never gets a session, let alone a stream. The server
 *   side counts failures by reason ({@link AuthServer.stats}) and logs each one as a warning.
 * - Garbage is refused as soon as a byte of it is seen: the challenge's magic and each version byte
 *   are checked on arrival, before the rest of the message.
 *
 * Trade-offs (document for users):
 * - Without `--token` and without TLS the link is plain yamux, so any yamux implementation
 *   (hashicorp/yamux, go-yamux, the JS ports) can be a peer — and so can anyone who reaches the
 *   port. With a token the link is no longer plain yamux: other yamux peers cannot connect (they
 *   see `p`, 0x70, where a yamux version byte 0 belongs and fail at once).
 * - The token authenticates who may open a session; it does not encrypt or integrity-protect the
 *   traffic. Without TLS an eavesdropper sees all data, and an attacker on the path can relay a
 *   handshake or take over the connection after it. An observed handshake also lets an attacker
 *   test guesses offline, so use a long random token (`openssl rand -hex 32`). For anything but a
 *   trusted network combine `--token` with TLS, which protects the token exchange as well.
 *
 * @since 0.1.0
 */
import * as crypto from "node:crypto"
import { Data, Effect } from "effect"
import { type Transport, TransportError } from "./Transport.ts"

/**
 * The challenge's magic: ASCII `plait-auth`.
 *
 * @since 0.1.0
 * @category constants
 */
export const MAGIC: Uint8Array = new TextEncoder().encode("plait-auth")
/**
 * The protocol version this module speaks.
 *
 * @since 0.1.0
 * @category constants
 */
export const VERSION = 1
/**
 * Bytes of each nonce.
 *
 * @since 0.1.0
 * @category constants
 */
export const NONCE_LENGTH = 32
/**
 * Bytes of an HMAC-SHA256 proof.
 *
 * @since 0.1.0
 * @category constants
 */
export const PROOF_LENGTH = 32
/**
 * Bytes of the challenge: magic, version, server nonce.
 *
 * @since 0.1.0
 * @category constants
 */
export const CHALLENGE_LENGTH = MAGIC.length + 1 + NONCE_LENGTH
/**
 * Bytes of the answer: version, client nonce, proof.
 *
 * @since 0.1.0
 * @category constants
 */
export const ANSWER_LENGTH = 1 + NONCE_LENGTH + PROOF_LENGTH
/**
 * Verdict status byte: accepted (followed by the server's proof).
 *
 * @since 0.1.0
 * @category constants
 */
export const ACCEPTED = 0x00
/**
 * Verdict status byte: rejected (the server closes the connection after it).
 *
 * @since 0.1.0
 * @category constants
 */
export const REJECTED = 0x01
/**
 * Default bound on the whole handshake: 10 s.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_TIMEOUT_MILLIS = 10_000
/**
 * Shortest token accepted without a warning.
 *
 * @since 0.1.0
 * @category constants
 */
export const MIN_RECOMMENDED_TOKEN_LENGTH = 16

const CLIENT_LABEL = new TextEncoder().encode("plait-auth-v1/client")
const SERVER_LABEL = new TextEncoder().encode("plait-auth-v1/server")

/**
 * Why a handshake failed.
 *
 * @since 0.1.0
 * @category errors
 */
export type AuthFailureReason =
  /** The token did not match (the server refused the client, or the client the server). */
  | "rejected"
  /** The handshake did not complete within the bound. */
  | "timeout"
  /** Bytes that are not this protocol (another protocol, another version, garbage). */
  | "malformed"
  /** The peer closed or reset the connection mid-handshake. */
  | "closed"

/**
 * The `cause` of a handshake {@link TransportError} raised here.
 *
 * @since 0.1.0
 * @category errors
 */
export class AuthError extends Data.TaggedError("AuthError")<{
  readonly reason: AuthFailureReason
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * The reason of an authentication failure, if `error` is one.
 *
 * @since 0.1.0
 * @category errors
 */
export const failureReason = (error: TransportError): AuthFailureReason | undefined =>
  error.operation === "handshake" && error.cause instanceof AuthError ? error.cause.reason : undefined

/**
 * Options of both sides.
 *
 * @since 0.1.0
 * @category models
 */
export interface AuthOptions {
  /** Bound on the whole handshake (default {@link DEFAULT_TIMEOUT_MILLIS}). */
  readonly timeoutMillis?: number
}

/**
 * Handshake counters of a server.
 *
 * @since 0.1.0
 * @category models
 */
export interface AuthStats {
  /** Peers that proved the token. */
  readonly accepted: number
  /** Peers that failed, by reason. */
  readonly rejected: number
  readonly timedOut: number
  readonly malformed: number
  readonly closed: number
  /** All failures. */
  readonly failed: number
}

/**
 * The server side: a handshake for `Server.make({ handshake })` and its counters.
 *
 * @since 0.1.0
 * @category models
 */
export interface AuthServer {
  readonly handshake: (transport: Transport) => Effect.Effect<Transport, TransportError>
  readonly stats: () => AuthStats
}

const hmac = (token: string, label: Uint8Array, first: Uint8Array, second: Uint8Array): Uint8Array =>
  new Uint8Array(crypto.createHmac("sha256", token).update(label).update(first).update(second).digest())

const randomNonce = (): Uint8Array => new Uint8Array(crypto.randomBytes(NONCE_LENGTH))

const equalInConstantTime = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && crypto.timingSafeEqual(a, b)

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  if (a.length === 0) return b
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

const authFailure = (reason: AuthFailureReason, message: string, cause?: unknown): TransportError =>
  new TransportError({
    operation: "handshake",
    message,
    cause: new AuthError({ reason, message, ...(cause === undefined ? {} : { cause }) })
  })

/**
 * Reads fixed-size messages off a transport, keeping whatever arrives behind them. Holds at most
 * one message plus one transport read.
 */
class Reader {
  private buffered: Uint8Array = new Uint8Array(0)
  private readonly transport: Transport
  private readonly peer: string
  constructor(transport: Transport, peer: string) {
    this.transport = transport
    this.peer = peer
  }

  /**
   * Exactly `n` bytes. `check` sees the bytes received so far (at most `n`) after every read and
   * returns an error to stop at the first bad byte.
   */
  take(n: number, what: string, check?: (partial: Uint8Array) => TransportError | undefined) {
    return Effect.gen({ self: this }, function* () {
      // Bounded: every pass either returns, fails, or adds at least one byte towards `n`.
      while (this.buffered.length < n) {
        const chunk = yield* this.transport.read.pipe(
          Effect.mapError((error) =>
            authFailure("closed", `connection to ${this.peer} failed during ${what}: ${error.message}`, error)
          )
        )
        if (chunk === null) {
          return yield* authFailure(
            "closed",
            `${this.peer} closed the connection during ${what} (after ${this.buffered.length} of ${n} bytes)`
          )
        }
        this.buffered = concat(this.buffered, chunk)
        const bad = check?.(this.buffered.subarray(0, Math.min(n, this.buffered.length)))
        if (bad !== undefined) return yield* bad
      }
      const message = this.buffered.subarray(0, n)
      this.buffered = this.buffered.subarray(n)
      return message
    })
  }

  /** The bytes received behind the last message. */
  rest(): Uint8Array {
    return this.buffered
  }
}

/**
 * `transport`, whose first `read` returns `leftover` (when non-empty).
 *
 * @since 0.1.0
 * @category utils
 */
export const withLeftover = (transport: Transport, leftover: Uint8Array): Transport => {
  if (leftover.length === 0) return transport
  let pending: Uint8Array | undefined = leftover
  // Delegates member by member: transports may be classes whose operations are prototype getters,
  // which an object spread would not copy.
  return {
    read: Effect.suspend(() => {
      const bytes = pending
      if (bytes === undefined) return transport.read
      pending = undefined
      return Effect.succeed(bytes)
    }),
    write: (chunks) => transport.write(chunks),
    closeWrite: Effect.suspend(() => transport.closeWrite),
    close: Effect.suspend(() => transport.close),
    reset: Effect.suspend(() => transport.reset),
    remoteAddress: transport.remoteAddress,
    ...(transport.eventLoopDriven === true ? { eventLoopDriven: true } : {}),
    // Once the leftover is read, the transport's own port (a session then reads it by callbacks).
    ...(transport.directPort === undefined
      ? {}
      : { directPort: () => (pending === undefined ? transport.directPort?.() : undefined) })
  }
}

const describeBytes = (bytes: Uint8Array): string =>
  Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join(" ")

/** Bounds `handshake` in time and closes the transport when it fails, however it fails. */
const guarded = <A>(
  transport: Transport,
  timeoutMillis: number,
  onTimeout: () => TransportError,
  handshake: Effect.Effect<A, TransportError>
): Effect.Effect<A, TransportError> =>
  handshake.pipe(
    Effect.timeoutOrElse({ duration: timeoutMillis, orElse: () => Effect.fail(onTimeout()) }),
    Effect.onExit((exit) => (exit._tag === "Failure" ? transport.close : Effect.void))
  )

/**
 * The client side (the proxy): answers the server's challenge with `token`, checks the server's
 * proof and returns the transport to run the session over. Compose it with a dial:
 * `Tcp.connect(address).pipe(Effect.flatMap(Auth.client(token)))`.
 *
 * @since 0.1.0
 * @category handshakes
 */
export const client =
  (token: string, options: AuthOptions = {}) =>
  (transport: Transport): Effect.Effect<Transport, TransportError> =>
    Effect.suspend(() => {
      const peer = transport.remoteAddress
      const timeoutMillis = options.timeoutMillis ?? DEFAULT_TIMEOUT_MILLIS
      const reader = new Reader(transport, peer)
      let stage: "challenge" | "verdict" = "challenge"
      const handshake = Effect.gen(function* () {
        const challenge = yield* reader.take(CHALLENGE_LENGTH, "the auth challenge", (partial) => {
          for (let i = 0; i < partial.length && i < MAGIC.length; i++) {
            if (partial[i] !== MAGIC[i]) {
              const hint =
                partial[0] === 0
                  ? "it speaks plain yamux: is the server started with --token?"
                  : partial[0] === 0x16
                    ? "it speaks TLS: dial with --tls"
                    : "is it a plait server started with --token?"
              return authFailure(
                "malformed",
                `${peer} sent no plait auth challenge (${hint}); got ${describeBytes(partial)}`
              )
            }
          }
          if (partial.length > MAGIC.length && partial[MAGIC.length] !== VERSION) {
            return authFailure(
              "malformed",
              `${peer} speaks auth version ${partial[MAGIC.length]}, this proxy speaks ${VERSION}: upgrade one side`
            )
          }
          return undefined
        })
        const serverNonce = challenge.subarray(MAGIC.length + 1)
        const clientNonce = randomNonce()
        const proof = hmac(token, CLIENT_LABEL, serverNonce, clientNonce)
        yield* transport
          .write([Uint8Array.of(VERSION), clientNonce, proof])
          .pipe(
            Effect.mapError((error) =>
              authFailure("closed", `cannot send the auth answer to ${peer}: ${error.message}`, error)
            )
          )
        stage = "verdict"
        const status = (yield* reader.take(1, "the auth verdict"))[0]
        if (status === REJECTED) {
          return yield* authFailure(
            "rejected",
            `${peer} rejected our token (check --token / PLAIT_TOKEN on both sides)`
          )
        }
        if (status !== ACCEPTED) {
          return yield* authFailure("malformed", `${peer} sent an unknown auth verdict 0x${status!.toString(16)}`)
        }
        const serverProof = yield* reader.take(PROOF_LENGTH, "the server's proof")
        if (!equalInConstantTime(serverProof, hmac(token, SERVER_LABEL, clientNonce, serverNonce))) {
          return yield* authFailure(
            "rejected",
            `${peer} could not prove it holds the token (a different token on the server?); link refused`
          )
        }
        return withLeftover(transport, reader.rest())
      })
      return guarded(
        transport,
        timeoutMillis,
        () =>
          stage === "challenge"
            ? authFailure(
                "timeout",
                `no auth challenge from ${peer} within ${timeoutMillis} ms (is the server started with --token?)`
              )
            : authFailure("timeout", `no auth verdict from ${peer} within ${timeoutMillis} ms`),
        handshake
      )
    })

/**
 * The server side: challenges each link, and hands on the transport only when the peer proved the
 * token. Failures are counted in `stats` and logged; the connection is closed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeServer = (token: string, options: AuthOptions = {}): AuthServer => {
  const timeoutMillis = options.timeoutMillis ?? DEFAULT_TIMEOUT_MILLIS
  let accepted = 0
  let rejected = 0
  let timedOut = 0
  let malformed = 0
  let closed = 0

  const count = (reason: AuthFailureReason | undefined) => {
    if (reason === "rejected") rejected++
    else if (reason === "timeout") timedOut++
    else if (reason === "malformed") malformed++
    else closed++
  }

  const handshake = (transport: Transport): Effect.Effect<Transport, TransportError> =>
    Effect.suspend(() => {
      const peer = transport.remoteAddress
      const reader = new Reader(transport, peer)
      const run = Effect.gen(function* () {
        const serverNonce = randomNonce()
        yield* transport
          .write([MAGIC, Uint8Array.of(VERSION), serverNonce])
          .pipe(
            Effect.mapError((error) =>
              authFailure("closed", `cannot send the auth challenge to ${peer}: ${error.message}`, error)
            )
          )
        const answer = yield* reader.take(ANSWER_LENGTH, "the auth answer", (partial) =>
          partial[0] === VERSION
            ? undefined
            : authFailure(
                "malformed",
                partial[0] === 0
                  ? `${peer} speaks plain yamux, not the auth handshake (no --token on the proxy?)`
                  : `${peer} sent no valid auth answer; got ${describeBytes(partial)}`
              )
        )
        const clientNonce = answer.subarray(1, 1 + NONCE_LENGTH)
        const proof = answer.subarray(1 + NONCE_LENGTH)
        if (!equalInConstantTime(proof, hmac(token, CLIENT_LABEL, serverNonce, clientNonce))) {
          // Tell the peer why before closing; a failed write changes nothing.
          yield* Effect.ignore(transport.write([Uint8Array.of(REJECTED)]))
          return yield* authFailure("rejected", `${peer} answered with a wrong token`)
        }
        yield* transport
          .write([Uint8Array.of(ACCEPTED), hmac(token, SERVER_LABEL, clientNonce, serverNonce)])
          .pipe(
            Effect.mapError((error) =>
              authFailure("closed", `cannot send the auth verdict to ${peer}: ${error.message}`, error)
            )
          )
        return withLeftover(transport, reader.rest())
      })
      return guarded(
        transport,
        timeoutMillis,
        () => authFailure("timeout", `${peer} did not complete the auth handshake within ${timeoutMillis} ms`),
        run
      ).pipe(
        Effect.tap(() =>
          Effect.sync(() => {
            accepted++
          })
        ),
        Effect.tapError((error) =>
          Effect.suspend(() => {
            count(failureReason(error))
            return Effect.logWarning(`auth: link from ${peer} refused: ${error.message}`)
          })
        )
      )
    })

  return {
    handshake,
    stats: () => ({
      accepted,
      rejected,
      timedOut,
      malformed,
      closed,
      failed: rejected + timedOut + malformed + closed
    })
  }
}

/**
 * The server-side handshake alone, for `Server.make({ handshake: Auth.server(token) })`.
 *
 * @since 0.1.0
 * @category handshakes
 */
export const server = (
  token: string,
  options: AuthOptions = {}
): ((transport: Transport) => Effect.Effect<Transport, TransportError>) => makeServer(token, options).handshake
