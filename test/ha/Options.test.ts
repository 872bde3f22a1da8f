/**
 * `--upstream A[,B,…]` and `--links N` of `plait proxy`: flags, environment, config file (a string
 * or a list), and their refusals (one line naming the setting).
 */
import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as Cli from "../../src/cli/Cli.ts"
import { OptionsError, type ProxyConfig } from "../../src/cli/Options.ts"

const parse = (argv: ReadonlyArray<string>, env: Record<string, string> = {}, files: Record<string, string> = {}) =>
  Cli.parse(["proxy", ...argv], env, (file: string) =>
    file in files ? Result.succeed(files[file]!) : Result.fail("no such file")
  )

const config = (argv: ReadonlyArray<string>, env: Record<string, string> = {}, files: Record<string, string> = {}) => {
  const parsed = parse(argv, env, files)
  if (parsed instanceof OptionsError) return assert.fail(`expected a config, got: ${parsed.message}`)
  if (parsed._tag !== "Run") return assert.fail("expected a config")
  return parsed.configured.config as ProxyConfig
}

const refusal = (argv: ReadonlyArray<string>, env: Record<string, string> = {}, files: Record<string, string> = {}) => {
  const parsed = parse(argv, env, files)
  if (!(parsed instanceof OptionsError)) return assert.fail("expected a refusal")
  return parsed
}

describe("--upstream and --links", () => {
  it("a comma-separated list of servers and a link count, from flags or the environment", () => {
    const flagged = config(["--upstream", "10.0.0.1:7001,[::1]:7002, server.example:7003", "--links", "4"])
    assert.deepStrictEqual(flagged.upstream, [
      { host: "10.0.0.1", port: 7001 },
      { host: "::1", port: 7002 },
      { host: "server.example", port: 7003 }
    ])
    assert.strictEqual(flagged.links, 4)
    const fromEnv = config([], { PLAIT_UPSTREAM: "a.example:1,b.example:2", PLAIT_LINKS: "3" })
    assert.deepStrictEqual(fromEnv.upstream, [
      { host: "a.example", port: 1 },
      { host: "b.example", port: 2 }
    ])
    assert.strictEqual(fromEnv.links, 3)
    const defaults = config([])
    assert.deepStrictEqual(defaults.upstream, [{ host: "127.0.0.1", port: 7001 }])
    assert.strictEqual(defaults.links, 1)
  })

  it("in a config file: a list, or the flag's comma-separated string (YAML and TOML)", () => {
    const yaml = config(["--config", "p.yaml"], {}, { "p.yaml": "upstream: [127.0.0.1:1, 127.0.0.1:2]\nlinks: 2\n" })
    assert.deepStrictEqual(yaml.upstream, [
      { host: "127.0.0.1", port: 1 },
      { host: "127.0.0.1", port: 2 }
    ])
    assert.strictEqual(yaml.links, 2)
    const toml = config(["--config", "p.toml"], {}, { "p.toml": 'upstream = "h:1,h:2"\nlinks = "5"\n' })
    assert.deepStrictEqual(toml.upstream, [
      { host: "h", port: 1 },
      { host: "h", port: 2 }
    ])
    assert.strictEqual(toml.links, 5)
    const tomlList = config(["--config", "p.toml"], {}, { "p.toml": 'upstream = ["h:1", "h:3"]\n' })
    assert.deepStrictEqual(tomlList.upstream, [
      { host: "h", port: 1 },
      { host: "h", port: 3 }
    ])
  })

  it("refuses a bad list or count with one line naming the setting", () => {
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, Record<string, string>, string, string]> = [
      [["--upstream", "127.0.0.1:1,127.0.0.1:1"], {}, "--upstream", "plait proxy: --upstream names 127.0.0.1:1 twice"],
      [
        ["--upstream", "127.0.0.1:1,"],
        {},
        "--upstream",
        'plait proxy: --upstream must be HOST:PORT[,HOST:PORT...] with no empty entry (got "127.0.0.1:1,")'
      ],
      [
        ["--upstream", "127.0.0.1:1,127.0.0.1:0"],
        {},
        "--upstream",
        "plait proxy: --upstream port must be from 1 to 65535 (got 127.0.0.1:0)"
      ],
      [
        [],
        { PLAIT_UPSTREAM: "h:1,nowhere" },
        "--upstream",
        'plait proxy: --upstream (from PLAIT_UPSTREAM) must be HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000 (got "nowhere")'
      ],
      [["--links", "0"], {}, "--links", "plait proxy: --links must be at least 1 (got 0)"],
      [["--links", "257"], {}, "--links", "plait proxy: --links must be at most 256 (got 257)"],
      [["--links", "two"], {}, "--links", 'plait proxy: --links must be a whole number (got "two")']
    ]
    for (const [argv, env, setting, message] of cases) {
      const error = refusal(argv, env)
      assert.strictEqual(error.setting, setting, message)
      assert.strictEqual(error.message, message)
    }
    const many = Array.from({ length: 65 }, (_, i) => `127.0.0.1:${i + 1}`).join(",")
    assert.strictEqual(
      refusal(["--upstream", many]).message,
      "plait proxy: --upstream must list at most 64 addresses (got 65)"
    )
    const file = refusal(["--config", "p.yaml"], {}, { "p.yaml": "upstream: [127.0.0.1:1, {host: x}]\n" })
    assert.strictEqual(file.message, "plait proxy: upstream.1 (in p.yaml) must be a string HOST:PORT (got a table)")
    const badEntry = refusal(["--config", "q.yaml"], {}, { "q.yaml": "upstream: [127.0.0.1:1, nowhere]\n" })
    assert.strictEqual(badEntry.setting, "upstream")
    assert.strictEqual(
      badEntry.message,
      'plait proxy: upstream (in q.yaml) must be HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000 (got "nowhere")'
    )
  })
})
