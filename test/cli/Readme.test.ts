/**
 * The README's flag table stays in step with the commands' setting tables: every flag of
 * `plait proxy` and `plait server` has a row naming its environment variable, and every row names a
 * flag that exists. (The help is generated from the same tables, so the three agree.)
 */
import { readFileSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { type AnySetting, envName, proxySettings, serverSettings } from "../../src/cli/Options.ts"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const readme = readFileSync(path.join(root, "README.md"), "utf8")

/** The rows of the table under `### Flags`: the flags of the first column and the second column. */
const rows = (): ReadonlyArray<{ readonly flags: ReadonlyArray<string>; readonly env: string }> => {
  const section = readme.slice(readme.indexOf("### Flags"))
  const table = section.slice(0, section.indexOf("\n\n", section.indexOf("| flag |")))
  return table
    .split("\n")
    .filter((line) => line.startsWith("| `--"))
    .map((line) => {
      const [first, env] = line.split(/(?<!\\)\|/).slice(1, 3)
      return { flags: [...first!.matchAll(/`(--[a-z-]+)/g)].map((match) => match[1]!), env: env ?? "" }
    })
}

describe("README flag table", () => {
  it("has a row for every flag of both commands, with its environment variable", () => {
    const table = rows()
    assert.isAbove(table.length, 10)
    for (const settings of [proxySettings, serverSettings]) {
      for (const setting of Object.values(settings) as Array<AnySetting>) {
        const row = table.find((row) => row.flags.includes(setting.flag))
        assert.isDefined(row, `README has no row for ${setting.flag}`)
        assert.include(row!.env, envName(setting.flag), `the row of ${setting.flag} names ${envName(setting.flag)}`)
      }
    }
  })

  it("names no flag that does not exist", () => {
    const known = new Set([
      "--help",
      "--version",
      ...[proxySettings, serverSettings].flatMap((settings) =>
        (Object.values(settings) as Array<AnySetting>).map((setting) => setting.flag)
      )
    ])
    for (const row of rows()) for (const flag of row.flags) assert.isTrue(known.has(flag), `README lists ${flag}`)
  })
})
