/**
 * The public surface of the package, read from the sources: every export reachable from
 * `src/index.ts`, where it is declared, and the JSDoc that documents it.
 *
 * A line-level reader, not a TypeScript parser: it relies on the formatter's layout (Biome puts
 * every top-level statement at column 0 and a declaration's JSDoc directly above it), which every
 * file under `src/` has. What it understands:
 * - `export * as Name from "./m.ts"` (the entry point's namespaces) and `export * from "./m.ts"`;
 * - `export { a, b as c } from "./m.ts"` and `export type { … } from …`, with a JSDoc per specifier
 *   inside the braces, or else the one above the statement, or else the declaration's in `m.ts`;
 * - `export { a }` of a local name (documented where it is declared);
 * - `export [declare] [abstract] const|let|function|class|interface|type|enum Name`.
 * An export it cannot read is reported as such rather than skipped.
 *
 * Run `node test/package/exports.ts` for the list of exports missing `@since` or `@category`, with
 * `--list` for every public export and where it is declared.
 */
import { readFileSync } from "node:fs"
import * as path from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

/** One exported name as a consumer reaches it. */
export interface PublicExport {
  /** `Namespace.name` as a consumer writes it (`Client.layer`), or the namespace itself (`Client`). */
  readonly name: string
  /** Where its documentation was found (or should be): `src/…:line`. */
  readonly at: string
  /** The JSDoc block that documents it, `undefined` if none. */
  readonly doc: string | undefined
  /** A namespace of the entry point (documented with `@since`; categories are for members). */
  readonly namespace: boolean
}

interface Statement {
  readonly line: number
  readonly text: string
  readonly doc: string | undefined
}

const read = (file: string): ReadonlyArray<string> => readFileSync(file, "utf8").split("\n")

/** The JSDoc block that ends on the line just above `index`, if any. */
const docAbove = (lines: ReadonlyArray<string>, index: number): string | undefined => {
  const end = index - 1
  if (end < 0 || !lines[end]!.trimEnd().endsWith("*/")) return undefined
  for (let i = end; i >= 0; i--) {
    const line = lines[i]!.trimStart()
    if (line.startsWith("/**")) return lines.slice(i, end + 1).join("\n")
    if (i !== end && !line.startsWith("*")) return undefined
  }
  return undefined
}

/** Every top-level `export …` statement of a module, with the text up to its end and its JSDoc. */
const exportStatements = (lines: ReadonlyArray<string>): ReadonlyArray<Statement> => {
  const out: Array<Statement> = []
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.startsWith("export ")) continue
    let text = lines[i]!
    // Re-export lists span lines until their closing brace.
    if (/^export (type )?\{/.test(text) && !text.includes("}")) {
      let j = i + 1
      while (j < lines.length && !lines[j]!.startsWith("}")) text += `\n${lines[j++]}`
      text += `\n${lines[j] ?? ""}`
    }
    out.push({ line: i + 1, text, doc: docAbove(lines, i) })
  }
  return out
}

const declaration =
  /^export (?:declare )?(?:abstract )?(?:const|let|var|function\*?|async function\*?|class|interface|type|enum) ([A-Za-z_$][\w$]*)/

interface Specifier {
  readonly exported: string
  readonly local: string
  readonly doc: string | undefined
}

/** The specifiers of `export { … }`, each with the JSDoc written just before it inside the braces. */
const specifiers = (text: string): ReadonlyArray<Specifier> => {
  const body = text.slice(text.indexOf("{") + 1, text.lastIndexOf("}"))
  const out: Array<Specifier> = []
  const pattern = /(\/\*\*[\s\S]*?\*\/\s*)?(?:type\s+)?([A-Za-z_$][\w$]*)(?:\s+as\s+([A-Za-z_$][\w$]*))?\s*(?:,|$)/g
  // Line comments inside the braces are not documentation.
  const clean = body.replace(/\/\/[^\n]*/g, "")
  for (const match of clean.matchAll(pattern)) {
    out.push({ local: match[2]!, exported: match[3] ?? match[2]!, doc: match[1]?.trim() })
  }
  return out
}

const fromPath = (text: string): string | undefined => /from\s+"([^"]+)"/.exec(text)?.[1]

/** `src/…` relative path of a module imported as `specifier` from `file`. */
const resolveModule = (file: string, specifier: string): string => path.join(path.dirname(file), specifier)

interface Found {
  readonly at: string
  readonly doc: string | undefined
}

/** The exports of one module, name → where it is documented; re-exports followed. */
const moduleExports = (root: string, file: string, seen: Set<string> = new Set()): Map<string, Found> => {
  const rel = (f: string) => path.relative(root, f)
  const out = new Map<string, Found>()
  if (seen.has(file)) return out
  seen.add(file)
  const lines = read(file)
  for (const statement of exportStatements(lines)) {
    const at = `${rel(file)}:${statement.line}`
    const named = declaration.exec(statement.text)
    if (named !== null) {
      out.set(named[1]!, { at, doc: statement.doc })
      continue
    }
    const target = fromPath(statement.text)
    if (/^export \* from /.test(statement.text) && target !== undefined) {
      for (const [name, found] of moduleExports(root, resolveModule(file, target), seen)) out.set(name, found)
      continue
    }
    if (/^export (type )?\{/.test(statement.text)) {
      const source = target === undefined ? undefined : moduleExports(root, resolveModule(file, target), new Set(seen))
      for (const spec of specifiers(statement.text)) {
        const doc = spec.doc ?? statement.doc
        if (doc !== undefined) {
          out.set(spec.exported, { at, doc })
          continue
        }
        if (source !== undefined) {
          out.set(spec.exported, source.get(spec.local) ?? { at, doc: undefined })
          continue
        }
        // A local name re-exported: documented where it is declared in this file.
        const index = lines.findIndex((line) =>
          new RegExp(
            `^(?:declare )?(?:abstract )?(?:const|let|function|class|interface|type|enum) ${spec.local}\\b`
          ).test(line)
        )
        out.set(spec.exported, {
          at: index < 0 ? at : `${rel(file)}:${index + 1}`,
          doc: index < 0 ? undefined : docAbove(lines, index)
        })
      }
      continue
    }
    out.set(`(unreadable export at line ${statement.line})`, { at, doc: undefined })
  }
  return out
}

/** Every export reachable from `src/index.ts` under `root`: the namespaces and their members. */
export const publicExports = (root: string = ROOT): ReadonlyArray<PublicExport> => {
  const index = path.join(root, "src/index.ts")
  const lines = read(index)
  const out: Array<PublicExport> = []
  for (const statement of exportStatements(lines)) {
    const namespace = /^export \* as ([A-Za-z_$][\w$]*) from "([^"]+)"/.exec(statement.text)
    if (namespace === null) {
      out.push({
        name: `(not a namespace: ${statement.text.split("\n")[0]})`,
        at: `src/index.ts:${statement.line}`,
        doc: undefined,
        namespace: true
      })
      continue
    }
    out.push({ name: namespace[1]!, at: `src/index.ts:${statement.line}`, doc: statement.doc, namespace: true })
    for (const [name, found] of moduleExports(root, resolveModule(index, namespace[2]!))) {
      out.push({ name: `${namespace[1]}.${name}`, at: found.at, doc: found.doc, namespace: false })
    }
  }
  return out
}

/** The namespaces of the entry point and the module each comes from. */
export const namespaces = (root: string = ROOT): ReadonlyArray<{ readonly name: string; readonly module: string }> =>
  exportStatements(read(path.join(root, "src/index.ts"))).flatMap((statement) => {
    const match = /^export \* as ([A-Za-z_$][\w$]*) from "([^"]+)"/.exec(statement.text)
    return match === null ? [] : [{ name: match[1]!, module: path.join("src", match[2]!) }]
  })

/** What is missing from an export's JSDoc (empty when it is complete). */
export const missing = (entry: PublicExport): ReadonlyArray<string> => {
  if (entry.doc === undefined) return ["JSDoc"]
  const gaps: Array<string> = []
  if (!/@since \d+\.\d+\.\d+/.test(entry.doc)) gaps.push("@since")
  if (!entry.namespace && !/@category \S/.test(entry.doc)) gaps.push("@category")
  return gaps
}

if (import.meta.main && process.argv.includes("--list")) {
  for (const entry of publicExports()) console.log(`${entry.name.padEnd(48)} ${entry.at}`)
} else if (import.meta.main) {
  const gaps = publicExports().filter((entry) => missing(entry).length > 0)
  for (const entry of gaps) console.log(`${entry.at}  ${entry.name}: missing ${missing(entry).join(", ")}`)
  console.log(`${gaps.length} of ${publicExports().length} public exports incomplete`)
  process.exitCode = gaps.length > 0 ? 1 : 0
}
