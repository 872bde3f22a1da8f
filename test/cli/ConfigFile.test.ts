/**
 * `--config FILE`: YAML and TOML files read through the whole command-line path (effect/cli, the
 * environment, the file, the defaults), their precedence, and one test per class of refusal — unknown
 * key, wrong type, bad address or value, unreadable file, bad syntax — each a single line naming the
 * key and the file. Files come from `fixtures/` or from an in-memory reader; no process is started.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as Cli from "../../src/cli/Cli.ts"
import { MAX_CONFIG_BYTES } from "../../src/cli/ConfigFile.ts"
import { changedKeys } from "../../src/cli/Main.ts"
import { OptionsError, type ProxyConfig, proxySettings, type ServerConfig } from "../../src/cli/Options.ts"

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures")
const fixture = (name: string) => path.join(fixtures, name)

/** A reader over in-memory files. */
const files =
  (contents: Readonly<Record<string, string>>) =>
  (file: string): Result.Result<string, string> =>
    file in contents ? Result.succeed(contents[file]!) : Result.fail("cannot read the file (no such file)")

const run = (
  argv: ReadonlyArray<string>,
  env: Record<string, string> = {},
  read?: (file: string) => Result.Result<string, string>
) => {
  const parsed = Cli.parse(argv, env, read)
  if (parsed instanceof OptionsError) assert.fail(`expected a config, got: ${parsed.message}`)
  if (parsed._tag !== "Run") assert.fail("expected a config, got help")
  return parsed.configured.config
}
const proxyConfig = (...args: Parameters<typeof run>) => run(...args) as ProxyConfig
const serverConfig = (...args: Parameters<typeof run>) => run(...args) as ServerConfig

const refusal = (
  argv: ReadonlyArray<string>,
  env: Record<string, string> = {},
  read?: (file: string) => Result.Result<string, string>
) => {
  const parsed = Cli.parse(argv, env, read)
  if (!(parsed instanceof OptionsError)) assert.fail(`expected an OptionsError, got ${JSON.stringify(parsed)}`)
  assert.notInclude(parsed.message, "\n", "one line")
  return parsed
}

describe("config file: values", () => {
  it("reads every kind of value from YAML (addresses, sizes, counts, durations, booleans, levels, services)", () => {
    const config = proxyConfig(["proxy", "--config", fixture("proxy.yaml")])
    assert.strictEqual(config.config, fixture("proxy.yaml"))
    assert.deepStrictEqual(config.listen, { host: "127.0.0.1", port: 7100 })
    assert.deepStrictEqual(config.upstream, [{ host: "::1", port: 7101 }])
    assert.strictEqual(config.maxWindow, 8 * 1024 * 1024)
    assert.strictEqual(config.maxClients, 300)
    assert.strictEqual(config.keepaliveIntervalMillis, 5_000)
    assert.strictEqual(config.idleTimeoutMillis, 0)
    assert.strictEqual(config.windowAutoTune, true)
    assert.strictEqual(config.logLevel, "Warn")
    assert.strictEqual(config.token, "s3cret-token-0123456789")
    assert.deepStrictEqual(config.services, [
      { name: "web", listen: { host: "127.0.0.1", port: 7200 } },
      { name: "db", listen: { host: "127.0.0.1", port: 7201 } }
    ])
    // Not in the file: the default.
    assert.strictEqual(config.keepaliveTimeoutMillis, 10_000)
  })

  it("reads TOML, with server services and their PROXY protocol option", () => {
    const config = serverConfig(["server", "--config", fixture("server.toml")])
    assert.deepStrictEqual(config.listen, { host: "127.0.0.1", port: 7101 })
    assert.deepStrictEqual(config.target, { host: "127.0.0.1", port: 8080 })
    assert.strictEqual(config.maxSessions, 3)
    assert.strictEqual(config.maxSessionBuffer, 16 * 1024 * 1024)
    assert.strictEqual(config.drainMillis, 120_000)
    assert.deepStrictEqual(config.services, [
      { name: "web", target: { host: "127.0.0.1", port: 8081 }, proxyProtocol: undefined },
      { name: "db", target: { host: "::1", port: 5432 }, proxyProtocol: "v2" }
    ])
  })

  it("lets a flag win over its variable, the variable over the file, the file over the default", () => {
    const read = files({ "p.yaml": "listen: 127.0.0.1:1001\nupstream: 127.0.0.1:1002\nmax-clients: 5\n" })
    const env = { PLAIT_UPSTREAM: "127.0.0.1:2002", PLAIT_MAX_CLIENTS: "" }
    const config = proxyConfig(["proxy", "--config", "p.yaml", "--listen", "127.0.0.1:3001"], env, read)
    assert.deepStrictEqual(config.listen, { host: "127.0.0.1", port: 3001 }, "flag over file")
    assert.deepStrictEqual(config.upstream, [{ host: "127.0.0.1", port: 2002 }], "env over file")
    assert.strictEqual(config.maxClients, 5, "file over default (an empty variable is unset)")
    assert.strictEqual(config.linkWaitMillis, 10_000, "default")
  })

  it("takes the file from PLAIT_CONFIG, and --config over it", () => {
    const read = files({ "a.yaml": "max-clients: 1\n", "b.toml": "max-clients = 2\n" })
    assert.strictEqual(proxyConfig(["proxy"], { PLAIT_CONFIG: "a.yaml" }, read).maxClients, 1)
    assert.strictEqual(proxyConfig(["proxy", "--config=b.toml"], { PLAIT_CONFIG: "a.yaml" }, read).maxClients, 2)
  })

  it("lets --service flags replace the file's services whole", () => {
    const read = files({ "p.yaml": "services:\n  web: 127.0.0.1:7200\n" })
    const config = proxyConfig(["proxy", "--config", "p.yaml", "--service", "api=127.0.0.1:7300"], {}, read)
    assert.deepStrictEqual(config.services, [{ name: "api", listen: { host: "127.0.0.1", port: 7300 } }])
    const server = serverConfig(
      ["server", "--service", "a=127.0.0.1:1", "--service", "b=[::1]:2,proxy-protocol=v1"],
      {},
      read
    )
    assert.deepStrictEqual(server.services, [
      { name: "a", target: { host: "127.0.0.1", port: 1 }, proxyProtocol: undefined },
      { name: "b", target: { host: "::1", port: 2 }, proxyProtocol: "v1" }
    ])
  })

  it("accepts an empty file and sizes written as numbers", () => {
    const read = files({ "e.yaml": "", "n.toml": "max-window = 8388608\nmax-session-buffer = 268435456\n" })
    assert.strictEqual(proxyConfig(["proxy", "--config", "e.yaml"], {}, read).maxClients, 10_000)
    assert.strictEqual(proxyConfig(["proxy", "--config", "n.toml"], {}, read).maxWindow, 8 * 1024 * 1024)
  })

  it("names the settings that changed between two configs, never their values", () => {
    const read = files({
      "a.yaml": "max-clients: 5\ntoken: first-secret-0123456789\n",
      "b.yaml": "max-clients: 6\ntoken: second-secret-0123456789\n"
    })
    const a = proxyConfig(["proxy", "--config", "a.yaml"], {}, read)
    const b = proxyConfig(["proxy", "--config", "b.yaml"], {}, read)
    assert.deepStrictEqual(changedKeys(proxySettings, a, b), ["config", "token", "max-clients"])
    assert.deepStrictEqual(changedKeys(proxySettings, a, a), [])
  })
})

describe("config file: refusals name the key and the file, exit 2", () => {
  const cases: ReadonlyArray<{
    readonly name: string
    readonly command: "proxy" | "server"
    readonly file: string
    readonly text: string
    readonly setting: string
    readonly message: string
  }> = [
    {
      name: "unknown key",
      command: "proxy",
      file: "p.yaml",
      text: "listen: 127.0.0.1:7100\nmax-windw: 8MiB\n",
      setting: "max-windw",
      message: "plait proxy: max-windw (in p.yaml) is not a setting of plait proxy (did you mean max-window?)"
    },
    {
      name: "a setting of the other command",
      command: "proxy",
      file: "p.toml",
      text: 'target = "127.0.0.1:80"\n',
      setting: "target",
      message: "plait proxy: target (in p.toml) is not a setting of plait proxy (see --help)"
    },
    {
      name: "unknown key inside a service",
      command: "server",
      file: "s.yaml",
      text: "services:\n  db:\n    target: 127.0.0.1:5432\n    proxy-proto: v2\n",
      setting: "services.db.proxy-proto",
      message: "plait server: services.db.proxy-proto (in s.yaml) is not a known key"
    },
    {
      name: "config inside the config",
      command: "proxy",
      file: "p.yaml",
      text: "config: other.yaml\n",
      setting: "config",
      message: "plait proxy: config (in p.yaml) can only be given as --config or PLAIT_CONFIG"
    },
    {
      name: "wrong type: a number for an address",
      command: "proxy",
      file: "p.yaml",
      text: "listen: 7000\n",
      setting: "listen",
      message: "plait proxy: listen (in p.yaml) must be a string (got 7000)"
    },
    {
      name: "wrong type: a string for a boolean",
      command: "proxy",
      file: "p.yaml",
      text: "tls: yes\n",
      setting: "tls",
      message: 'plait proxy: tls (in p.yaml) must be true or false (got "yes")'
    },
    {
      name: "wrong type: a boolean for a count",
      command: "server",
      file: "s.toml",
      text: "max-sessions = true\n",
      setting: "max-sessions",
      message: "plait server: max-sessions (in s.toml) must be a number or a string (got true)"
    },
    {
      name: "wrong type: a list for a service",
      command: "proxy",
      file: "p.yaml",
      text: "services:\n  web: [1, 2]\n",
      setting: "services.web",
      message: "plait proxy: services.web (in p.yaml) must be an address HOST:PORT or a table with listen (got a list)"
    },
    {
      name: "bad address",
      command: "proxy",
      file: "p.yaml",
      text: "upstream: nowhere\n",
      setting: "upstream",
      message: 'plait proxy: upstream (in p.yaml) must be HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000 (got "nowhere")'
    },
    {
      name: "bad address of a service",
      command: "server",
      file: "s.toml",
      text: '[services.db]\ntarget = "db.internal:0"\n',
      setting: "services.db.target",
      message: "plait server: services.db.target (in s.toml) port must be from 1 to 65535 (got db.internal:0)"
    },
    {
      name: "bad PROXY protocol version",
      command: "server",
      file: "s.yaml",
      text: "services:\n  db: { target: 127.0.0.1:1, proxy-protocol: v3 }\n",
      setting: "services.db.proxy-protocol",
      message: 'plait server: services.db.proxy-protocol (in s.yaml) must be v1 or v2 (got "v3")'
    },
    {
      name: "bad service name",
      command: "proxy",
      file: "p.yaml",
      text: "services:\n  'no spaces': 127.0.0.1:1\n",
      setting: "services.no spaces",
      message:
        "plait proxy: services.no spaces (in p.yaml) has a bad name: a service name is letters, digits, '.', '_' and '-', starting with a letter or digit (got \"no spaces\")"
    },
    {
      name: "bad size",
      command: "proxy",
      file: "p.yaml",
      text: "max-window: 1000\n",
      setting: "max-window",
      message: "plait proxy: max-window (in p.yaml) must be at least 262144 bytes (got 1000)"
    },
    {
      name: "duration without a unit",
      command: "proxy",
      file: "p.toml",
      text: "keepalive-timeout = 5\n",
      setting: "keepalive-timeout",
      message: "plait proxy: keepalive-timeout (in p.toml) needs a unit: ms, s, m or h (got 5; did you mean 5s?)"
    },
    {
      name: "not a mapping",
      command: "proxy",
      file: "p.yaml",
      text: "- listen\n- upstream\n",
      setting: "--config",
      message: "plait proxy: --config p.yaml: must hold a mapping of settings (got a list)"
    },
    {
      name: "bad YAML",
      command: "proxy",
      file: "p.yaml",
      text: "listen: 127.0.0.1:7100\n  upstream: [\n",
      setting: "--config",
      message:
        "plait proxy: --config p.yaml: invalid YAML at line 1, column 9: Nested mappings are not allowed in compact mappings"
    },
    {
      name: "duplicate YAML key",
      command: "proxy",
      file: "p.yaml",
      text: "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n",
      setting: "--config",
      message: "plait proxy: --config p.yaml: invalid YAML at line 2, column 1: Map keys must be unique"
    },
    {
      name: "bad TOML",
      command: "server",
      file: "s.toml",
      text: 'listen = "127.0.0.1:7101"\nmax-sessions = = 3\n',
      setting: "--config",
      message: "plait server: --config s.toml: invalid TOML at line 2, column 16: invalid value"
    },
    {
      name: "unknown extension",
      command: "proxy",
      file: "p.json",
      text: "{}",
      setting: "--config",
      message: "plait proxy: --config p.json: must end in .yaml, .yml or .toml (the format is told by the extension)"
    }
  ]
  for (const { name, command, file, text, setting, message } of cases) {
    it(name, () => {
      const error = refusal([command, "--config", file], {}, files({ [file]: text }))
      assert.strictEqual(error.message, message)
      assert.strictEqual(error.setting, setting)
      assert.strictEqual(error.command, command)
      assert.strictEqual(error.file, file)
    })
  }

  it("never repeats a secret: not a token of the wrong type, nor the line a parser refused", () => {
    const wrongType = refusal(["proxy", "--config", "p.yaml"], {}, files({ "p.yaml": "token: 1234567890123456\n" }))
    assert.strictEqual(wrongType.message, "plait proxy: token (in p.yaml) must be a string")
    for (const [file, text] of [
      ["p.yaml", 'listen: 127.0.0.1:1\ntoken: "s3cret-never-shown\n'],
      ["p.toml", "token = s3cret-never-shown\n"]
    ] as const) {
      const error = refusal(["proxy", "--config", file], {}, files({ [file]: text }))
      assert.notInclude(error.message, "s3cret", file)
      assert.match(error.message, /invalid (YAML|TOML) at line \d+, column \d+/)
    }
  })

  it("refuses an empty --config and a bad value that came from the file's variable", () => {
    assert.strictEqual(refusal(["proxy", "--config="]).message, "plait proxy: --config must not be empty")
    assert.strictEqual(
      refusal(["proxy"], { PLAIT_CONFIG: "p.yaml" }, files({ "p.yaml": "max-clients: 0\n" })).message,
      "plait proxy: max-clients (in p.yaml) must be at least 1 (got 0)"
    )
  })
})

describe("config file: reading real files", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "plait-config-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it("refuses a missing file, a directory and an oversized file", () => {
    const missing = path.join(dir, "missing.yaml")
    assert.strictEqual(
      refusal(["proxy", "--config", missing]).message,
      `plait proxy: --config ${missing}: cannot read the file (no such file)`
    )
    const directory = path.join(dir, "conf.yaml")
    mkdirSync(directory)
    assert.strictEqual(
      refusal(["proxy", "--config", directory]).message,
      `plait proxy: --config ${directory}: not a regular file`
    )
    const big = path.join(dir, "big.yaml")
    writeFileSync(big, `# ${"x".repeat(MAX_CONFIG_BYTES)}\n`)
    assert.strictEqual(
      refusal(["proxy", "--config", big]).message,
      `plait proxy: --config ${big}: larger than ${MAX_CONFIG_BYTES} bytes`
    )
  })

  it("reads a file written on disk", () => {
    const file = path.join(dir, "ok.toml")
    writeFileSync(file, 'listen = "127.0.0.1:0"\nlog-level = "debug"\n')
    const config = proxyConfig(["proxy", "--config", file])
    assert.deepStrictEqual(config.listen, { host: "127.0.0.1", port: 0 })
    assert.strictEqual(config.logLevel, "Debug")
  })
})
