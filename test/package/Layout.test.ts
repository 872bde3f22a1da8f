/**
 * The layout rules a newcomer relies on, checked over the sources:
 * - the core never reads the environment: only `src/cli/` may touch `process.env` (or Deno's and
 *   Bun's equivalents); everything else takes its settings as options;
 * - `src/index.ts` is the public surface: one namespace per public module (never an `internal/`
 *   one), at least the namespaces the package promises;
 * - every export reachable from it has JSDoc with `@since` and `@category` (namespaces `@since`);
 * - dependencies point one way: nothing outside `src/cli/` imports it, nothing under `src/`
 *   imports tests, benchmarks, tools or examples, and `src/protocol/` (sans-IO) imports no other
 *   part of `src/` and no I/O module.
 * - documents (README, docs/, bench/, deploy/) point only inside the repository, and their relative
 *   links resolve.
 * The export reader is itself checked on a small fixture, so that "nothing missing" means something.
 */

import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { missing, namespaces, type PublicExport, publicExports, ROOT } from "./exports.ts"
import { makeTemp, removeTemp } from "./helpers.ts"

const sources = (dir: string): ReadonlyArray<string> =>
  readdirSync(path.join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(".ts"))
    .map((entry) => path.relative(ROOT, path.join(entry.parentPath, entry.name)))
    .sort()

/** Source text without comments, so that prose mentioning `process.env` does not count. */
const code = (file: string): string =>
  readFileSync(path.join(ROOT, file), "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(^|[^:"'`])\/\/[^\n]*/g, "$1")

const relativeImports = (file: string): ReadonlyArray<string> =>
  [...code(file).matchAll(/(?:from|import)\s*\(?\s*"(\.[^"]+)"/g)].map((m) =>
    path.relative(ROOT, path.resolve(path.dirname(path.join(ROOT, file)), m[1]!))
  )

const REQUIRED = [
  "Client",
  "Server",
  "Proxy",
  "Session",
  "MuxStream",
  "MuxError",
  "Transport",
  "Tcp",
  "Tls",
  "Auth",
  "Events",
  "Metrics",
  "Adapters",
  "Config"
]

describe("layout", () => {
  it("only src/cli/ reads the environment", () => {
    const environment =
      /\bprocess\s*\.\s*env\b|\bprocess\s*\[\s*["'`]env["'`]\s*\]|\b(?:Deno|Bun)\s*\.\s*env\b|\bimport\.meta\.env\b|\{[^}]*\benv\b[^}]*\}\s*from\s*"(?:node:)?process"/
    const readers = sources("src").filter((file) => !file.startsWith("src/cli/") && environment.test(code(file)))
    assert.deepStrictEqual(readers, [])
    // The pattern finds what it is meant to find.
    assert.isTrue(
      sources("src/cli").some((file) => environment.test(code(file))),
      "src/cli reads no environment?"
    )
  })

  it("src/index.ts exports the promised namespaces, none of them internal", () => {
    const exported = namespaces()
    const names = exported.map((n) => n.name)
    for (const name of REQUIRED) assert.include(names, name, `src/index.ts must export ${name}`)
    assert.strictEqual(new Set(names).size, names.length, "a namespace is exported twice")
    for (const { name, module } of exported) {
      assert.notInclude(module, "/internal/", `${name} exports an internal module`)
      assert.isTrue(sources("src").includes(module), `${name}: ${module} does not exist`)
    }
  })

  it("every export reachable from src/index.ts has JSDoc with @since and @category", () => {
    const all = publicExports()
    // The reader sees the real surface (not an empty list that would trivially pass).
    const names = new Set(all.map((e) => e.name))
    for (const name of ["Client.layer", "Client.Client", "Server.layer", "Proxy.layer", "MuxError.MuxError"]) {
      assert.isTrue(names.has(name), `${name} not found by the export reader`)
    }
    assert.isAbove(all.length, 150)
    const gaps = all
      .filter((e) => missing(e).length > 0)
      .map((e) => `${e.at} ${e.name}: missing ${missing(e).join(", ")}`)
    assert.deepStrictEqual(gaps, [])
  })

  it("dependencies point one way: cli last, nothing from outside src/, protocol sans-IO", () => {
    const offenders: Array<string> = []
    for (const file of sources("src")) {
      for (const target of relativeImports(file)) {
        if (!target.startsWith("src/")) offenders.push(`${file} imports ${target} (outside src/)`)
        else if (target.startsWith("src/cli/") && !file.startsWith("src/cli/"))
          offenders.push(`${file} imports ${target}`)
        else if (file.startsWith("src/protocol/") && !target.startsWith("src/protocol/")) {
          offenders.push(`${file} imports ${target} (protocol is sans-IO and self-contained)`)
        }
      }
      if (
        file.startsWith("src/protocol/") &&
        /from\s+"node:(?:net|tls|fs|dgram|child_process|http|https)"/.test(code(file))
      ) {
        offenders.push(`${file} imports an I/O module`)
      }
    }
    assert.deepStrictEqual(offenders, [])
  })
})

describe("documents", () => {
  const documents = [
    "README.md",
    ...["docs", "bench", "deploy"].flatMap((dir) =>
      existsSync(path.join(ROOT, dir))
        ? readdirSync(path.join(ROOT, dir), { recursive: true, encoding: "utf8" })
            .filter((file) => file.endsWith(".md") && !file.startsWith("results"))
            .map((file) => path.join(dir, file))
        : []
    )
  ]

  it("point only inside the repository, and every relative link resolves", () => {
    assert.include(documents, "docs/protocol.md")
    const problems: Array<string> = []
    for (const document of documents) {
      const text = readFileSync(path.join(ROOT, document), "utf8")
      const links = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!)
      const quoted = [...text.matchAll(/`(\.\.\/[^`\s]+)`/g)].map((m) => m[1]!)
      for (const target of [...links, ...quoted]) {
        if (/^[a-z]+:/i.test(target) || target.startsWith("#")) continue
        const resolved = path.relative(ROOT, path.resolve(ROOT, path.dirname(document), target.split("#")[0]!))
        if (resolved.startsWith("..")) problems.push(`${document}: ${target} points outside the repository`)
        else if (links.includes(target) && !existsSync(path.join(ROOT, resolved))) {
          problems.push(`${document}: ${target} does not exist`)
        }
      }
    }
    assert.deepStrictEqual(problems, [])
  })
})

describe("the export reader", () => {
  const root = makeTemp("layout")
  afterAll(() => removeTemp(root))

  const write = (file: string, text: string) => {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true })
    writeFileSync(path.join(root, file), text)
  }

  it("finds declarations, re-exports and namespaces, and reports exactly the undocumented ones", () => {
    write(
      "src/index.ts",
      `/**\n * Good.\n *\n * @since 0.1.0\n */\nexport * as Good from "./good/Good.ts"\n/** Undated. */\nexport * as Bad from "./bad/Bad.ts"\n`
    )
    write(
      "src/good/Good.ts",
      [
        "/**\n * A value.\n *\n * @since 0.1.0\n * @category constants\n */",
        "export const value = 1",
        "/**\n * @since 0.1.0\n * @category models\n */",
        "export interface Shape {\n  readonly a: number\n}",
        'export {\n  /**\n   * Re-exported with its own doc.\n   *\n   * @since 0.1.0\n   * @category utils\n   */\n  helper\n} from "../internal/impl.ts"',
        'export type { Inner } from "../internal/impl.ts"',
        ""
      ].join("\n")
    )
    write(
      "src/internal/impl.ts",
      "export const helper = 2\n/**\n * Documented at its declaration.\n *\n * @since 0.1.0\n * @category models\n */\nexport interface Inner {}\n"
    )
    write(
      "src/bad/Bad.ts",
      [
        "/** No tags. */",
        "export const untagged = 1",
        "/**\n * @since 0.1.0\n */",
        "export class NoCategory {}",
        "export type Bare = string",
        'export { helper as again } from "../internal/impl.ts"',
        ""
      ].join("\n")
    )
    const all = publicExports(root)
    const report = (e: PublicExport) => `${e.name} ${missing(e).join(",") || "ok"}`
    assert.deepStrictEqual(all.map(report), [
      "Good ok",
      "Good.value ok",
      "Good.Shape ok",
      "Good.helper ok",
      "Good.Inner ok",
      "Bad @since",
      "Bad.untagged @since,@category",
      "Bad.NoCategory @category",
      "Bad.Bare JSDoc",
      "Bad.again JSDoc"
    ])
  })
})
