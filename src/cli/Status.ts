/**
 * `plait status`: asks a running proxy's or server's admin endpoint for `GET /status` and renders
 * it as one terminal screen (`Status.render`).
 *
 * Invariants: one request, bounded by {@link STATUS_TIMEOUT_MILLIS}; every failure is one
 * {@link StatusError} line naming the endpoint and what went wrong (unreachable, refused token,
 * not a plait status), never a stack trace; the token is sent, never printed.
 *
 * @since 0.1.0
 */
import { Data, Effect, Redacted } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"
import * as Status from "../admin/Status.ts"
import { formatAddress, type StatusConfig } from "./Options.ts"

/**
 * How long `plait status` waits for the admin endpoint.
 *
 * @since 0.1.0
 * @category constants
 */
export const STATUS_TIMEOUT_MILLIS = 5_000

/**
 * Why no status could be printed; `message` is the line to print.
 *
 * @since 0.1.0
 * @category errors
 */
export class StatusError extends Data.TaggedError("StatusError")<{
  readonly endpoint: string
  readonly kind: "Unreachable" | "Unauthorized" | "BadStatus" | "NotAStatus"
  readonly detail: string
}> {
  override get message(): string {
    return `plait status: ${this.endpoint}: ${this.detail}`
  }
}

/**
 * Fetches and renders the status of the admin endpoint in `config`.
 *
 * @since 0.1.0
 * @category commands
 */
export const status = (config: StatusConfig): Effect.Effect<string, StatusError> => {
  const endpoint = `http://${formatAddress(config.admin)}`
  const fail = (kind: StatusError["kind"], detail: string) => new StatusError({ endpoint, kind, detail })
  let request = HttpClientRequest.get(`${endpoint}/status`).pipe(HttpClientRequest.acceptJson)
  if (config.adminToken !== undefined) {
    request = HttpClientRequest.bearerToken(request, Redacted.make(config.adminToken))
  }
  return Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const response = yield* client
      .execute(request)
      .pipe(Effect.mapError((error) => fail("Unreachable", `cannot reach the admin endpoint (${error.message})`)))
    if (response.status === 401) {
      return yield* fail(
        "Unauthorized",
        config.adminToken === undefined
          ? "the admin endpoint requires a token (--admin-token)"
          : "the admin endpoint refused the token"
      )
    }
    if (response.status !== 200) return yield* fail("BadStatus", `GET /status answered HTTP ${response.status}`)
    const body = yield* response.text.pipe(
      Effect.mapError((error) => fail("Unreachable", `reading the answer failed (${error.message})`))
    )
    const decoded = yield* Status.decode(body).pipe(
      Effect.mapError(() => fail("NotAStatus", "the answer is not a plait status document (is this a plait --admin?)"))
    )
    return Status.render(decoded)
  }).pipe(
    Effect.scoped,
    Effect.timeoutOrElse({
      duration: STATUS_TIMEOUT_MILLIS,
      orElse: () => Effect.fail(fail("Unreachable", `no answer within ${STATUS_TIMEOUT_MILLIS} ms`))
    }),
    Effect.provide(FetchHttpClient.layer)
  )
}
