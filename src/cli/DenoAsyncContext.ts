/**
 * Imported first by the `plait` binary (`bin.ts`), before anything loads `effect`: on Deno it hides
 * `node:async_hooks`'s `AsyncResource` from Effect while Effect's core module is evaluated, so that
 * Effect does not capture an async context each time a fiber suspends.
 *
 * Why: Effect 4 creates an `AsyncResource` at every fiber suspension and resumes the fiber inside
 * it, so the next suspension's resource is created inside the previous one's scope. On Deno 2.9 each
 * such resource keeps the one it was created in (it is the "current resource" of its context since
 * denoland/deno#34188), so a long-lived fiber builds an ever longer chain: about 430 bytes per
 * suspension that are never freed (measured: 110 MiB after 250 000 suspensions of one fiber; flat on
 * Node and Bun). A server on Deno grew by about 20 MiB a minute under the soak's load and kept it
 * (`npm run soak`). Without the resource, Effect propagates no async context across suspensions,
 * which only `AsyncLocalStorage` users would miss: plait has none.
 *
 * Nothing happens on Node and Bun. Applications that embed plait on Deno need the same first
 * import (see the README's Known limits); {@link restore} puts `getBuiltinModule` back once Effect
 * has loaded.
 *
 * @since 0.1.0
 */
import process from "node:process"

type GetBuiltinModule = (id: string) => unknown

const original: GetBuiltinModule | undefined =
  "Deno" in globalThis
    ? (process as { getBuiltinModule?: GetBuiltinModule }).getBuiltinModule?.bind(process)
    : undefined

if (original !== undefined) {
  ;(process as { getBuiltinModule?: GetBuiltinModule }).getBuiltinModule = (id: string) => {
    const module = original(id)
    return id === "node:async_hooks" || id === "async_hooks"
      ? { ...(module as object), AsyncResource: undefined }
      : module
  }
}

/**
 * Puts `process.getBuiltinModule` back (Effect has captured what it needs by then).
 *
 * @since 0.1.0
 * @category lifecycle
 */
export const restore = (): void => {
  if (original !== undefined) (process as { getBuiltinModule?: GetBuiltinModule }).getBuiltinModule = original
}
