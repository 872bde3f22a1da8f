/**
 * A multiplexed stream as its users see it: one client's bytes, both ways, with its own credit
 * windows. The implementation (buffers, windows, the writer's queue) lives in
 * `internal/session/Stream.ts` and is driven by the session alone.
 *
 * @since 0.1.0
 */
export type { MuxStream } from "../internal/session/Stream.ts"
export {
  /**
   * The stream bound to the current scope: scope exit closes it (FIN, then wait for the peer's),
   * interruption or failure resets it (RST).
   *
   * @since 0.1.0
   * @category constructors
   */
  scopedStream
} from "../internal/session/Stream.ts"
