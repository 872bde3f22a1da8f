/**
 * Link negotiation: how two plait peers find out, before their yamux session starts, that both are
 * plait, and agree on a set of capabilities — while a plain yamux peer on either end sees nothing
 * but yamux and keeps working exactly as before.
 *
 * Wire format (version 1), after TLS and the token handshake when those are configured:
 * 1. The dialer (the side that opened the TCP connection) sends {@link PROBE}: a valid yamux frame,
 *    PING with SYN on stream 0 whose opaque value is the magic `0x706c6169` (ASCII `plai`), and
 *    nothing else until it gets an answer.
 * 2. A plain yamux acceptor answers it like any ping (PING with ACK): its first byte is the yamux
 *    version, 0. The dialer then starts a plain yamux session over the connection; the pong and
 *    whatever followed it are handed to the session, which ignores the unsolicited pong.
 *    A plait acceptor answers with its {@link Hello} instead, whose first byte is `p` (never 0).
 * 3. The dialer answers a hello with its own. Both then compute the same agreement (each capability
 *    listed by both, see {@link agree}) and start the session; bytes behind the hellos belong to it.
 * An acceptor whose first bytes from the peer are anything but the probe (or who gets nothing
 * within the deadline) treats the peer as plain yamux and hands every byte read to the session.
 *
 * A hello (all integers big-endian):
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0 | 10 | ASCII `plait-link` |
 * | 10 | 1 | version, `0x01` |
 * | 11 | 1 | role: `1` proxy (opens streams), `2` server (serves them) |
 * | 12 | 2 | length `L` of the capability list, at most {@link MAX_CAPABILITIES_LENGTH} |
 * | 14 | L | capabilities: `id` (2 bytes), `length` (2 bytes), value; each id at most once |
 *
 * Capabilities of version 1: {@link Capability.StreamOpen} (value: the highest open message version
 * the sender reads and writes, 1 byte) and {@link Capability.Resume} (value: the resumption
 * version, 1 byte; both listing it run the resumption handshake of `docs/resume.md` next, before
 * the session); ids a side does not know are ignored, so a later capability never breaks an older
 * peer. The hello's own version changes
 * only if this framing does.
 *
 * Invariants:
 * - Bounded in size (a hello is at most 14 + {@link MAX_CAPABILITIES_LENGTH} bytes; nothing more is
 *   buffered than one message plus one transport read) and in time (`timeoutMillis`, default 10 s).
 * - Consistent: the dialer decides by the first byte it receives, the acceptor by the first bytes
 *   it receives, and a plait acceptor sends a hello only to a dialer that sent the probe — so the
 *   two ends never disagree on whether the link is plain. A late or garbled exchange fails the
 *   handshake (a `handshake` {@link TransportError}, the connection is closed, the dialer redials).
 * - Never throws; every failure names the peer and what was wrong.
 *
 * @since 0.2.0
 */
import { Cause, Data, Effect } from "effect"
import { withLeftover } from "./Auth.ts"
import { type Transport, TransportError } from "./Transport.ts"

/**
 * The opaque value of the probe ping: ASCII `plai`.
 *
 * @since 0.2.0
 * @category constants
 */
export const PROBE_OPAQUE = 0x706c6169

/**
 * The dialer's probe: yamux PING (type 2) with SYN (flag 1) on stream 0, opaque {@link PROBE_OPAQUE}.
 *
 * @since 0.2.0
 * @category constants
 */
export const PROBE: Uint8Array = Uint8Array.of(0x00, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0x70, 0x6c, 0x61, 0x69)

/**
 * The hello's magic: ASCII `plait-link`.
 *
 * @since 0.2.0
 * @category constants
 */
export const MAGIC: Uint8Array = new TextEncoder().encode("plait-link")

/**
 * The hello version this module speaks.
 *
 * @since 0.2.0
 * @category constants
 */
export const VERSION = 1

/**
 * Bytes of a hello before its capability list.
 *
 * @since 0.2.0
 * @category constants
 */
export const HELLO_HEADER_LENGTH = MAGIC.length + 4

/**
 * The longest capability list accepted.
 *
 * @since 0.2.0
 * @category constants
 */
export const MAX_CAPABILITIES_LENGTH = 1024

/**
 * Default bound on the whole negotiation: 10 s.
 *
 * @since 0.2.0
 * @category constants
 */
export const DEFAULT_TIMEOUT_MILLIS = 10_000

/**
 * Capability ids.
 *
 * @since 0.2.0
 * @category constants
 */
export const Capability = {
  /** Every stream starts with an open message (service name, client address); value: its version. */
  StreamOpen: 1,
  /** The resumption layer beneath yamux (`docs/resume.md`); value: its version. */
  Resume: 2
} as const

/** The resumption version offered with {@link Capability.Resume}. */
const RESUME_VERSION = 1

/**
 * Which end of the tunnel a peer is: the proxy opens streams, the server serves them. Independent
 * of who dialled the TCP connection.
 *
 * @since 0.2.0
 * @category models
 */
export type Role = "proxy" | "server"

/**
 * A hello, decoded.
 *
 * @since 0.2.0
 * @category models
 */
export interface Hello {
  readonly role: Role
  /** Capability id → value. */
  readonly capabilities: ReadonlyMap<number, Uint8Array>
}

/**
 * What the two ends agreed on.
 *
 * @since 0.2.0
 * @category models
 */
export interface Agreement {
  /** `plait` when both sent hellos; `yamux` for a plain yamux peer (nothing agreed). */
  readonly peer: "plait" | "yamux"
  /** The peer's role, when it is plait. */
  readonly peerRole: Role | undefined
  /** The open message version in use on every stream; 0 when streams carry none. */
  readonly streamOpen: number
  /** Both offered resumption: the resumption handshake follows, then the session over it. */
  readonly resume: boolean
}

/**
 * The agreement with a plain yamux peer.
 *
 * @since 0.2.0
 * @category constants
 */
export const PLAIN: Agreement = { peer: "yamux", peerRole: undefined, streamOpen: 0, resume: false }

/**
 * A negotiated link: the transport to run the session over (bytes read behind the negotiation
 * first) and the agreement.
 *
 * @since 0.2.0
 * @category models
 */
export interface Negotiated {
  readonly transport: Transport
  readonly agreement: Agreement
}

/**
 * Why a negotiation failed: the `cause` of its `handshake` {@link TransportError}.
 *
 * @since 0.2.0
 * @category errors
 */
export class NegotiationError extends Data.TaggedError("NegotiationError")<{
  readonly reason: "malformed" | "timeout" | "closed" | "role"
  readonly message: string
}> {}

const failure = (reason: NegotiationError["reason"], message: string): TransportError =>
  new TransportError({ operation: "handshake", message, cause: new NegotiationError({ reason, message }) })

/**
 * Options of both sides.
 *
 * @since 0.2.0
 * @category models
 */
export interface NegotiationOptions {
  /** This side's role. */
  readonly role: Role
  /** The highest open message version offered (default 1; 0 offers none). */
  readonly streamOpen?: number
  /** Offer resumption (default false). */
  readonly resume?: boolean
  /** Bound on the negotiation (default {@link DEFAULT_TIMEOUT_MILLIS}). */
  readonly timeoutMillis?: number
}

// -----------------------------------------------------------------------------------------------
// The hello codec (sans-IO)

const roleByte = (role: Role) => (role === "proxy" ? 1 : 2)

/**
 * The hello of a side with `options`.
 *
 * @since 0.2.0
 * @category encoding
 */
export const helloOf = (options: NegotiationOptions): Hello => {
  const streamOpen = options.streamOpen ?? 1
  const capabilities = new Map<number, Uint8Array>()
  if (streamOpen > 0) capabilities.set(Capability.StreamOpen, Uint8Array.of(streamOpen))
  if (options.resume === true) capabilities.set(Capability.Resume, Uint8Array.of(RESUME_VERSION))
  return { role: options.role, capabilities }
}

/**
 * Encodes a hello.
 *
 * @since 0.2.0
 * @category encoding
 */
export const encodeHello = (hello: Hello): Uint8Array => {
  let listLength = 0
  for (const value of hello.capabilities.values()) listLength += 4 + value.length
  const out = new Uint8Array(HELLO_HEADER_LENGTH + listLength)
  const view = new DataView(out.buffer)
  out.set(MAGIC, 0)
  out[MAGIC.length] = VERSION
  out[MAGIC.length + 1] = roleByte(hello.role)
  view.setUint16(MAGIC.length + 2, listLength)
  let at = HELLO_HEADER_LENGTH
  for (const [id, value] of hello.capabilities) {
    view.setUint16(at, id)
    view.setUint16(at + 2, value.length)
    out.set(value, at + 4)
    at += 4 + value.length
  }
  return out
}

/**
 * Checks the bytes of a hello received so far (any prefix of one): an error at the first bad byte,
 * else the total length of the hello once its header is complete, else `undefined`.
 *
 * @since 0.2.0
 * @category decoding
 */
export const checkHelloPrefix = (bytes: Uint8Array, peer: string): number | TransportError | undefined => {
  for (let i = 0; i < bytes.length && i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) return failure("malformed", `${peer} sent no plait link hello: ${hint(bytes)}`)
  }
  if (bytes.length > MAGIC.length && bytes[MAGIC.length] !== VERSION) {
    return failure(
      "malformed",
      `${peer} speaks link hello version ${bytes[MAGIC.length]}, this side speaks ${VERSION}: upgrade one side`
    )
  }
  if (bytes.length > MAGIC.length + 1) {
    const role = bytes[MAGIC.length + 1]
    if (role !== 1 && role !== 2) return failure("malformed", `${peer} sent a hello with unknown role ${role}`)
  }
  if (bytes.length < HELLO_HEADER_LENGTH) return undefined
  const listLength = (bytes[MAGIC.length + 2]! << 8) | bytes[MAGIC.length + 3]!
  if (listLength > MAX_CAPABILITIES_LENGTH) {
    return failure(
      "malformed",
      `${peer} sent a hello with ${listLength} bytes of capabilities (at most ${MAX_CAPABILITIES_LENGTH})`
    )
  }
  return HELLO_HEADER_LENGTH + listLength
}

/**
 * Decodes a complete hello (exactly its bytes).
 *
 * @since 0.2.0
 * @category decoding
 */
export const decodeHello = (bytes: Uint8Array, peer: string): Hello | TransportError => {
  const total = checkHelloPrefix(bytes, peer)
  if (total instanceof TransportError) return total
  if (total === undefined || bytes.length !== total) {
    return failure("malformed", `${peer} sent a hello of ${bytes.length} bytes, its header says ${total ?? "?"}`)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const capabilities = new Map<number, Uint8Array>()
  let at = HELLO_HEADER_LENGTH
  while (at < bytes.length) {
    if (at + 4 > bytes.length) return failure("malformed", `${peer} sent a hello that ends inside a capability header`)
    const id = view.getUint16(at)
    const length = view.getUint16(at + 2)
    if (at + 4 + length > bytes.length)
      return failure("malformed", `${peer} sent a hello that ends inside capability ${id}`)
    if (capabilities.has(id)) return failure("malformed", `${peer} listed capability ${id} twice`)
    capabilities.set(id, bytes.slice(at + 4, at + 4 + length))
    at += 4 + length
  }
  return { role: bytes[MAGIC.length + 1] === 1 ? "proxy" : "server", capabilities }
}

/**
 * The agreement between two hellos: the same on both ends whichever is `ours`. A capability is in
 * effect when both list it; a versioned one at the lower of the two versions.
 *
 * @since 0.2.0
 * @category decoding
 */
export const agree = (ours: Hello, theirs: Hello): Agreement => {
  const version = (hello: Hello) => hello.capabilities.get(Capability.StreamOpen)?.[0] ?? 0
  const resume = (hello: Hello) => (hello.capabilities.get(Capability.Resume)?.[0] ?? 0) >= RESUME_VERSION
  return {
    peer: "plait",
    peerRole: theirs.role,
    streamOpen: Math.min(version(ours), version(theirs)),
    resume: resume(ours) && resume(theirs)
  }
}

const describeBytes = (bytes: Uint8Array): string =>
  Array.from(bytes.subarray(0, 12), (b) => b.toString(16).padStart(2, "0")).join(" ")

const hint = (bytes: Uint8Array): string => {
  if (new TextDecoder().decode(bytes.subarray(0, 7)) === "plait-a") {
    return "it asks for a token (start this side with the same --token)"
  }
  if (bytes[0] === 0x16) return "it speaks TLS (dial with --tls)"
  return `got ${describeBytes(bytes)}`
}

// -----------------------------------------------------------------------------------------------
// Running it over a transport

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  if (a.length === 0) return b
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

/** Bytes read off a transport, kept until handed on. */
class Buffered {
  bytes: Uint8Array = new Uint8Array(0)
  private readonly transport: Transport
  private readonly peer: string
  constructor(transport: Transport, peer: string) {
    this.transport = transport
    this.peer = peer
  }
  /** One more read; fails when the peer closes or the transport fails. */
  get more(): Effect.Effect<void, TransportError> {
    return this.transport.read.pipe(
      Effect.mapError((error) =>
        failure("closed", `connection to ${this.peer} failed during link negotiation: ${error.message}`)
      ),
      Effect.flatMap((chunk) => {
        if (chunk === null) {
          return Effect.fail(
            failure(
              "closed",
              `${this.peer} closed the connection during link negotiation (after ${this.bytes.length} bytes)`
            )
          )
        }
        this.bytes = concat(this.bytes, chunk)
        return Effect.void
      })
    )
  }
  /** Reads a whole hello off the front (bounded by its header), keeping what follows. */
  get hello(): Effect.Effect<Hello, TransportError> {
    return Effect.suspend(() => {
      const checked = checkHelloPrefix(this.bytes, this.peer)
      if (checked instanceof TransportError) return Effect.fail(checked)
      if (checked === undefined || this.bytes.length < checked) return Effect.flatMap(this.more, () => this.hello)
      const hello = decodeHello(this.bytes.subarray(0, checked), this.peer)
      this.bytes = this.bytes.subarray(checked)
      return hello instanceof TransportError ? Effect.fail(hello) : Effect.succeed(hello)
    })
  }
}

const writeTo = (transport: Transport, peer: string, bytes: Uint8Array, what: string) =>
  transport
    .write([bytes])
    .pipe(Effect.mapError((error) => failure("closed", `cannot send the ${what} to ${peer}: ${error.message}`)))

const checkRoles = (ours: Role, theirs: Hello, peer: string): Effect.Effect<void, TransportError> =>
  theirs.role === ours
    ? Effect.fail(
        failure(
          "role",
          `${peer} is a plait ${theirs.role} too: a link joins a proxy and a server (check --connect / --link-listen / --upstream)`
        )
      )
    : Effect.void

/** Bounds `run` by `timeoutMillis` and closes the transport when it fails. */
const guarded = <A>(
  transport: Transport,
  timeoutMillis: number,
  onTimeout: () => TransportError,
  run: Effect.Effect<A, TransportError>
): Effect.Effect<A, TransportError> =>
  run.pipe(
    Effect.timeoutOrElse({ duration: timeoutMillis, orElse: () => Effect.fail(onTimeout()) }),
    Effect.onExit((exit) => (exit._tag === "Failure" ? transport.close : Effect.void))
  )

/**
 * The dialling side: probes, and either agrees with a plait acceptor or hands the link to a plain
 * yamux session. A peer that stays silent for the whole deadline is taken for plain yamux (the
 * session's keepalive then judges it); one that starts a hello and stalls, or sends neither yamux
 * nor a hello, fails.
 *
 * @since 0.2.0
 * @category running
 */
export const dialer =
  (options: NegotiationOptions) =>
  (transport: Transport): Effect.Effect<Negotiated, TransportError> =>
    Effect.suspend(() => {
      const peer = transport.remoteAddress
      const timeoutMillis = options.timeoutMillis ?? DEFAULT_TIMEOUT_MILLIS
      const ours = helloOf(options)
      const buffered = new Buffered(transport, peer)
      const plain = (): Negotiated => ({ transport: withLeftover(transport, buffered.bytes), agreement: PLAIN })
      const run = Effect.gen(function* () {
        yield* writeTo(transport, peer, PROBE, "link probe")
        // Phase 1: the first byte. Silence for the whole deadline is what a plain yamux peer with
        // nothing to say may do: not an error (the session's keepalive then judges the peer).
        const answered = yield* Effect.suspend(function loop(): Effect.Effect<void, TransportError> {
          return buffered.bytes.length > 0 ? Effect.void : Effect.flatMap(buffered.more, loop)
        }).pipe(Effect.timeoutOption(timeoutMillis))
        // A yamux frame starts with version 0; a hello never does.
        if (answered._tag === "None" || buffered.bytes[0] === 0) return plain()
        // Phase 2: a hello has started; it must complete.
        const theirs = yield* buffered.hello.pipe(
          Effect.timeoutOrElse({
            duration: timeoutMillis,
            orElse: () =>
              Effect.fail(
                failure("timeout", `${peer} started a link hello but did not finish it within ${timeoutMillis} ms`)
              )
          })
        )
        yield* checkRoles(options.role, theirs, peer)
        yield* writeTo(transport, peer, encodeHello(ours), "link hello")
        const negotiated: Negotiated = {
          transport: withLeftover(transport, buffered.bytes),
          agreement: agree(ours, theirs)
        }
        return negotiated
      })
      // The phases carry their own deadlines; this outer bound only catches a stuck write.
      return guarded(
        transport,
        3 * timeoutMillis,
        () => failure("timeout", `${peer} did not complete the link negotiation within ${3 * timeoutMillis} ms`),
        run
      )
    })

/**
 * The accepting side: answers a plait dialer's probe with its hello and reads the dialer's; any
 * other first bytes (or none within the deadline) mean a plain yamux dialer.
 *
 * @since 0.2.0
 * @category running
 */
export const acceptor =
  (options: NegotiationOptions) =>
  (transport: Transport): Effect.Effect<Negotiated, TransportError> =>
    Effect.suspend(() => {
      const peer = transport.remoteAddress
      const timeoutMillis = options.timeoutMillis ?? DEFAULT_TIMEOUT_MILLIS
      const ours = helloOf(options)
      const buffered = new Buffered(transport, peer)
      const plain = (): Negotiated => ({ transport: withLeftover(transport, buffered.bytes), agreement: PLAIN })
      const diverges = () => {
        const bytes = buffered.bytes
        for (let i = 0; i < bytes.length && i < PROBE.length; i++) if (bytes[i] !== PROBE[i]) return true
        return false
      }
      // Phase 1: is it the probe? Bounded by the deadline; a silent or partial peer is plain.
      const probe: Effect.Effect<boolean, TransportError> = Effect.suspend(function loop(): Effect.Effect<
        boolean,
        TransportError
      > {
        if (diverges()) return Effect.succeed(false)
        if (buffered.bytes.length >= PROBE.length) return Effect.succeed(true)
        return Effect.flatMap(buffered.more, loop)
      })
      const run = Effect.gen(function* () {
        const probed = yield* probe.pipe(
          Effect.timeoutOption(timeoutMillis),
          Effect.map((result) => result._tag === "Some" && result.value)
        )
        if (!probed) return plain()
        buffered.bytes = buffered.bytes.subarray(PROBE.length)
        yield* writeTo(transport, peer, encodeHello(ours), "link hello")
        const theirs = yield* buffered.hello.pipe(
          Effect.timeoutOrElse({
            duration: timeoutMillis,
            orElse: () =>
              Effect.fail(failure("timeout", `${peer} sent the link probe but no hello within ${timeoutMillis} ms`))
          })
        )
        yield* checkRoles(options.role, theirs, peer)
        const negotiated: Negotiated = {
          transport: withLeftover(transport, buffered.bytes),
          agreement: agree(ours, theirs)
        }
        return negotiated
      })
      // The phases carry their own deadlines; this outer bound only catches a stuck write.
      return guarded(
        transport,
        3 * timeoutMillis,
        () => failure("timeout", `${peer} did not complete the link negotiation within ${3 * timeoutMillis} ms`),
        run
      )
    })

/**
 * An acceptor negotiation run inside the session's transport, for sides that serve streams (the
 * server): the session starts at once, as it did before negotiation existed, and the negotiation
 * runs in its first `read`; its writes wait until the peer's kind is known. A peer that stays
 * silent, trickles bytes or floods garbage is therefore a session from the start, bounded by the
 * session's own limits, keepalive and `maxSessions` as before. The agreement is known by the time
 * the session sees any of the peer's frames (so before any stream is accepted).
 *
 * @since 0.2.0
 * @category models
 */
export interface InlineNegotiation {
  /** The transport to run the session over. */
  readonly transport: Transport
  /** The agreement once decided; plain yamux until then. */
  readonly agreement: () => Agreement
}

/**
 * The acceptor side, inline: see {@link InlineNegotiation}. A failed negotiation fails the
 * session's read (and its pending writes) with the `handshake` error, so the session ends.
 *
 * @since 0.2.0
 * @category running
 */
export const acceptInline =
  (options: NegotiationOptions) =>
  (transport: Transport): InlineNegotiation => {
    const negotiate = acceptor(options)
    let negotiated: Negotiated | undefined
    let failed: TransportError | undefined
    let running = false
    // Writers (the session's writer fiber) wait here until the peer's kind is known.
    const waiters: Array<() => void> = []
    const release = () => {
      for (const wake of waiters.splice(0)) wake()
    }
    const decided = Effect.callback<void>((resume) => {
      if (negotiated !== undefined || failed !== undefined) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      waiters.push(wake)
      return Effect.sync(() => {
        const i = waiters.indexOf(wake)
        if (i >= 0) waiters.splice(i, 1)
      })
    })
    const read: Effect.Effect<Uint8Array | null, TransportError> = Effect.suspend(() => {
      if (negotiated !== undefined) return negotiated.transport.read
      if (failed !== undefined) return Effect.fail(failed)
      if (running) return Effect.flatMap(decided, () => read)
      running = true
      return negotiate(transport).pipe(
        Effect.onExit((exit) =>
          Effect.sync(() => {
            running = false
            if (exit._tag === "Success") negotiated = exit.value
            else {
              const error = Cause.findErrorOption(exit.cause)
              failed =
                error._tag === "Some"
                  ? error.value
                  : failure("closed", `link negotiation with ${transport.remoteAddress} was interrupted`)
            }
            release()
          })
        ),
        Effect.flatMap((n) => n.transport.read)
      )
    })
    const write = (chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, TransportError> =>
      negotiated !== undefined
        ? transport.write(chunks)
        : Effect.flatMap(decided, () => (failed !== undefined ? Effect.fail(failed) : transport.write(chunks)))
    return {
      transport: {
        read,
        write,
        closeWrite: Effect.suspend(() => transport.closeWrite),
        close: Effect.suspend(() => transport.close),
        reset: Effect.suspend(() => transport.reset),
        remoteAddress: transport.remoteAddress,
        ...(transport.eventLoopDriven === true ? { eventLoopDriven: true } : {}),
        // After the negotiation, the negotiated transport's port (a session then reads it by callbacks).
        directPort: () => negotiated?.transport.directPort?.()
      },
      agreement: () => negotiated?.agreement ?? PLAIN
    }
  }
