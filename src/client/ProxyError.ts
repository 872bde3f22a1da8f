/**
 * The error of the proxy domain: why a client connection could not be carried.
 *
 * Invariants: every reason knows whether retrying can help; a client refused for any of them is
 * closed with a logged reason, never left hanging.
 *
 * @since 0.1.0
 */
import { Data } from "effect"
import type { MuxError } from "../session/MuxError.ts"
import type { ProxyProtocolError } from "../transport/ProxyProtocol.ts"

/**
 * No link to the server came up within the wait bound.
 *
 * @since 0.1.0
 * @category errors
 */
export class LinkUnavailable extends Data.TaggedError("LinkUnavailable")<{
  readonly waitedMillis: number
  readonly lastError: string
}> {
  get isRetryable(): boolean {
    return true
  }
  override get message(): string {
    return `no link to the server within ${this.waitedMillis} ms (last error: ${this.lastError})`
  }
}

/**
 * The link was up but opening a stream on it failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class OpenFailed extends Data.TaggedError("OpenFailed")<{
  readonly cause: MuxError
}> {
  get isRetryable(): boolean {
    return this.cause.isRetryable
  }
  override get message(): string {
    return `cannot open a stream: ${this.cause.message}`
  }
}

/**
 * The proxy already carries its maximum number of client connections.
 *
 * @since 0.1.0
 * @category errors
 */
export class ClientLimit extends Data.TaggedError("ClientLimit")<{
  readonly limit: number
}> {
  get isRetryable(): boolean {
    return true
  }
  override get message(): string {
    return `client limit of ${this.limit} connections reached`
  }
}

/**
 * The service cannot be reached over this link: the peer is a plain yamux server (its streams
 * carry no open message, so only the default service is reachable), or the name is not a valid
 * service name. `detail` says which.
 *
 * @since 0.2.0
 * @category errors
 */
export class ServiceUnsupported extends Data.TaggedError("ServiceUnsupported")<{
  readonly service: string
  readonly detail: string
}> {
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    return `cannot open a stream for service ${JSON.stringify(this.service)}: ${this.detail}`
  }
}

/**
 * The proxy expects a PROXY protocol header from each client (`acceptProxyProtocol`) and this
 * client's was malformed, missing or late, or the client is not a trusted source of headers
 * (`proxyProtocolFrom`).
 *
 * @since 0.2.0
 * @category errors
 */
export class ClientProxyHeader extends Data.TaggedError("ClientProxyHeader")<{
  readonly cause: ProxyProtocolError
}> {
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    return this.cause.message
  }
}

/**
 * Every reason a proxy operation can fail.
 *
 * @since 0.1.0
 * @category errors
 */
export type ProxyErrorReason = LinkUnavailable | OpenFailed | ClientLimit | ServiceUnsupported | ClientProxyHeader

/**
 * Why a client connection could not be carried. Match on `reason._tag`.
 *
 * @since 0.1.0
 * @category errors
 */
export class ProxyError extends Data.TaggedError("ProxyError")<{
  readonly reason: ProxyErrorReason
}> {
  get isRetryable(): boolean {
    return this.reason.isRetryable
  }
  override get message(): string {
    return this.reason.message
  }
}
