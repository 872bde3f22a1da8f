/**
 * `npm run build` (and `prepack`, so every `npm pack` / `npm publish`): compiles `src/` to `dist/`
 * (JavaScript, declarations, declaration maps, source maps) with the TypeScript compiler in the tree,
 * per `tsconfig.build.json`.
 *
 * `dist/` is removed first: tsc never deletes outputs whose source was moved or deleted, and a
 * stale module left in `dist/` would ship in the tarball.
 */
import { spawnSync } from "node:child_process"
import { rmSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import process from "node:process"

const root = join(import.meta.dirname, "..")
const tsc = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin", "tsc")
rmSync(join(root, "dist"), { recursive: true, force: true })
const result = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], {
  cwd: root,
  stdio: "inherit"
})
process.exit(result.status ?? 1)
