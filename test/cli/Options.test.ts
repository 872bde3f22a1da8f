import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as fc from "fast-check"
import * as Cli from "../../src/cli/Cli.ts"
import {
  type AnySetting,
  bytes,
  duration,
  envName,
  formatBytes,
  formatDuration,
  OptionsError,
  type ProxyConfig,
  proxySettings,
  type ServerConfig,
  serverSettings
} from "../../src/cli/Options.ts"

/** What a command line asks of one command: its config, or the help text. */
type Parsed<C> = { readonly _tag: "Run"; readonly config: C } | { readonly _tag: "Help"; readonly text: string }

const noFiles = () => Result.fail("no files in this test")

/** The whole command line path (effect/cli, environment, defaults) of `plait <command> ...argv`. */
const parseArgs = <C>(command: string, argv: ReadonlyArray<string>, env: Record<string, string>) => {
  const parsed = Cli.parse([command, ...argv], env, noFiles)
  if (parsed instanceof OptionsError) return parsed
  if (parsed._tag === "Print") return { _tag: "Help", text: parsed.text } as Parsed<C>
  return { _tag: "Run", config: parsed.configured.config as C } as Parsed<C>
}
const parseProxyArgs = (argv: ReadonlyArray<string>, env: Record<string, string>) =>
  parseArgs<ProxyConfig>("proxy", argv, env)
const parseServerArgs = (argv: ReadonlyArray<string>, env: Record<string, string>) =>
  parseArgs<ServerConfig>("server", argv, env)
const proxyFlags = proxySettings as unknown as Record<string, AnySetting>
const serverFlags = serverSettings as unknown as Record<string, AnySetting>
const defaultOf = (spec: AnySetting) => ("list" in spec ? spec.defaultDoc : (spec.default ?? spec.defaultDoc))
const switchOrValue = (spec: AnySetting) =>
  !("list" in spec) && spec.switch === true ? spec.flag : `${spec.flag} ${spec.metavar}`

const config = <C>(parsed: Parsed<C> | OptionsError): C => {
  if (parsed instanceof OptionsError) assert.fail(`expected a config, got: ${parsed.message}`)
  if (parsed._tag !== "Run") assert.fail("expected a config, got help")
  return parsed.config
}

const refusal = <C>(parsed: Parsed<C> | OptionsError): OptionsError => {
  if (!(parsed instanceof OptionsError)) assert.fail(`expected an OptionsError, got ${JSON.stringify(parsed)}`)
  return parsed
}

const proxyError = (argv: ReadonlyArray<string>, env: Record<string, string> = {}) => refusal(parseProxyArgs(argv, env))

describe("parseProxyArgs", () => {
  it("uses the documented defaults with no arguments and no environment", () => {
    assert.deepStrictEqual(config(parseProxyArgs([], {})), {
      config: undefined,
      listen: { host: "127.0.0.1", port: 7000 },
      upstream: [{ host: "127.0.0.1", port: 7001 }],
      links: 1,
      linkListen: undefined,
      services: [],
      acceptProxyProtocol: false,
      proxyProtocolFrom: undefined,
      keepaliveIntervalMillis: 30_000,
      keepaliveTimeoutMillis: 10_000,
      maxWindow: 4 * 1024 * 1024,
      windowAutoTune: false,
      drainMillis: 10_000,
      logLevel: "Info",
      maxStreams: 65_536,
      acceptBacklog: 256,
      maxUnackedOpens: 256,
      maxSessionBuffer: 64 * 1024 * 1024,
      idleTimeoutMillis: 0,
      frameTimeoutMillis: 5_000,
      maxPingsPerSecond: 100,
      maxRefusedSynsPerSecond: 1_000,
      maxResetsPerSecond: 1_000,
      maxWindowUpdatesPerSecond: 10_000,
      maxControlBacklog: 65_536,
      resumeWindowMillis: 30_000,
      resumeBufferBytes: 4 * 1024 * 1024,
      token: undefined,
      admin: undefined,
      adminToken: undefined,
      linkWaitMillis: 10_000,
      maxClients: 10_000,
      tls: false,
      tlsCa: undefined,
      tlsCert: undefined,
      tlsKey: undefined,
      tlsServername: undefined
    })
  })

  it("reads every flag, as `--flag value` and as `--flag=value`", () => {
    const parsed = config(
      parseProxyArgs(
        [
          "--listen",
          "0.0.0.0:9000",
          "--upstream=example.internal:7100",
          "--keepalive-interval",
          "5s",
          "--keepalive-timeout=500ms",
          "--max-window",
          "8MiB",
          "--window-autotune",
          "--drain-timeout",
          "2m",
          "--log-level",
          "DEBUG",
          "--link-wait",
          "1.5s",
          "--max-clients",
          "300",
          "--max-streams=1000",
          "--accept-backlog",
          "32",
          "--max-unacked-opens",
          "64",
          "--max-session-buffer",
          "16MiB",
          "--idle-timeout",
          "5m",
          "--frame-timeout",
          "2s",
          "--max-pings-per-second",
          "10",
          "--max-refused-syns-per-second=20",
          "--max-resets-per-second",
          "30",
          "--max-window-updates-per-second",
          "40",
          "--max-control-backlog",
          "500",
          "--resume-window",
          "5s",
          "--resume-buffer=1MiB",
          "--token=s3cret-token-0123456789",
          "--tls",
          "--tls-ca",
          "ca.pem",
          "--tls-cert",
          "proxy.pem",
          "--tls-key=proxy-key.pem",
          "--tls-servername",
          "server.internal",
          "--link-listen=0.0.0.0:7101",
          "--accept-proxy-protocol",
          "--proxy-protocol-from",
          "10.0.0.0/8, 192.0.2.7,2001:db8::/32"
        ],
        {}
      )
    )
    assert.deepStrictEqual(parsed, {
      config: undefined,
      listen: { host: "0.0.0.0", port: 9000 },
      upstream: [{ host: "example.internal", port: 7100 }],
      links: 1,
      linkListen: { host: "0.0.0.0", port: 7101 },
      services: [],
      acceptProxyProtocol: true,
      proxyProtocolFrom: ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"],
      keepaliveIntervalMillis: 5_000,
      keepaliveTimeoutMillis: 500,
      maxWindow: 8 * 1024 * 1024,
      windowAutoTune: true,
      drainMillis: 120_000,
      logLevel: "Debug",
      maxStreams: 1_000,
      acceptBacklog: 32,
      maxUnackedOpens: 64,
      maxSessionBuffer: 16 * 1024 * 1024,
      idleTimeoutMillis: 300_000,
      frameTimeoutMillis: 2_000,
      maxPingsPerSecond: 10,
      maxRefusedSynsPerSecond: 20,
      maxResetsPerSecond: 30,
      maxWindowUpdatesPerSecond: 40,
      maxControlBacklog: 500,
      resumeWindowMillis: 5_000,
      resumeBufferBytes: 1024 * 1024,
      token: "s3cret-token-0123456789",
      admin: undefined,
      adminToken: undefined,
      linkWaitMillis: 1_500,
      maxClients: 300,
      tls: true,
      tlsCa: "ca.pem",
      tlsCert: "proxy.pem",
      tlsKey: "proxy-key.pem",
      tlsServername: "server.internal"
    })
  })

  it("falls back to PLAIT_* environment variables; flags win over them; empty ones are unset", () => {
    const env = {
      PLAIT_LISTEN: "127.0.0.1:9100",
      PLAIT_UPSTREAM: "10.0.0.1:7001",
      PLAIT_MAX_WINDOW: "262144",
      PLAIT_LOG_LEVEL: "",
      PLAIT_KEEPALIVE_INTERVAL: "0"
    }
    const fromEnv = config(parseProxyArgs([], env))
    assert.deepStrictEqual(fromEnv.listen, { host: "127.0.0.1", port: 9100 })
    assert.deepStrictEqual(fromEnv.upstream, [{ host: "10.0.0.1", port: 7001 }])
    assert.strictEqual(fromEnv.maxWindow, 262_144)
    assert.strictEqual(fromEnv.logLevel, "Info")
    assert.strictEqual(fromEnv.keepaliveIntervalMillis, 0)
    const flagged = config(parseProxyArgs(["--listen", "127.0.0.1:9200"], env))
    assert.deepStrictEqual(flagged.listen, { host: "127.0.0.1", port: 9200 })
    assert.deepStrictEqual(flagged.upstream, [{ host: "10.0.0.1", port: 7001 }])
  })

  it("keeps the last value of a repeated flag and ignores a lone `--`", () => {
    const parsed = config(parseProxyArgs(["--", "--max-clients", "5", "--max-clients", "7"], {}))
    assert.strictEqual(parsed.maxClients, 7)
  })

  it("takes a value that starts with a dash; a switch given alone leaves the next argument alone", () => {
    const parsed = config(parseProxyArgs(["--token", "-starts-with-a-dash-0123", "--tls", "--upstream", "h:1"], {}))
    assert.strictEqual(parsed.token, "-starts-with-a-dash-0123")
    assert.strictEqual(parsed.tls, true)
    assert.deepStrictEqual(parsed.upstream, [{ host: "h", port: 1 }])
    assert.strictEqual(
      proxyError(["--tls", "false"]).message,
      'plait proxy: unexpected argument "false" (see --help)',
      "a switch's value goes after ="
    )
  })

  it("refuses a --proxy-protocol-from entry that is not an IP block, naming the entry", () => {
    assert.strictEqual(
      proxyError(["--proxy-protocol-from", "10.0.0.0/33"]).message,
      'plait proxy: --proxy-protocol-from prefix must be from 0 to 32 for an IPv4 block (got "10.0.0.0/33")'
    )
    assert.strictEqual(
      proxyError(["--proxy-protocol-from", "10.0.0.0/8,lb.internal"]).message,
      'plait proxy: --proxy-protocol-from must be ADDRESS/PREFIX or an IP address, e.g. 10.0.0.0/8 or 2001:db8::/32 (got "lb.internal")'
    )
  })

  it("accepts IPv6 in brackets and host names, and port 0 to listen", () => {
    const parsed = config(parseProxyArgs(["--listen", "[::1]:0", "--upstream", "localhost:7001"], {}))
    assert.deepStrictEqual(parsed.listen, { host: "::1", port: 0 })
    assert.deepStrictEqual(parsed.upstream, [{ host: "localhost", port: 7001 }])
  })

  it("returns the help for --help or -h anywhere, even next to bad values", () => {
    for (const argv of [["--help"], ["-h"], ["--max-window", "1", "--help"], ["--bogus", "-h"]]) {
      const parsed = parseProxyArgs(argv, { PLAIT_LISTEN: "nonsense" })
      assert.ok(!(parsed instanceof OptionsError) && parsed._tag === "Help", argv.join(" "))
    }
  })

  it("documents every flag with its environment variable and default in the help", () => {
    const parsed = parseProxyArgs(["--help"], {})
    assert.ok(!(parsed instanceof OptionsError) && parsed._tag === "Help")
    const text = parsed._tag === "Help" ? parsed.text : ""
    for (const spec of Object.values(proxyFlags)) {
      assert.include(text, switchOrValue(spec))
      assert.include(text, `env ${envName(spec.flag)}, default ${defaultOf(spec)}`)
    }
    assert.include(text, "stderr")
    assert.include(text, "SIGTERM")
  })
})

describe("parseProxyArgs refusals: one line naming the flag", () => {
  const cases: ReadonlyArray<readonly [string, ReadonlyArray<string>, Record<string, string>, string, string]> = [
    [
      "window below 256 KiB",
      ["--max-window", "1000"],
      {},
      "--max-window",
      "plait proxy: --max-window must be at least 262144 bytes (got 1000)"
    ],
    [
      "resume buffer below 64 KiB",
      ["--resume-buffer", "1000"],
      {},
      "--resume-buffer",
      "plait proxy: --resume-buffer must be at least 65536 bytes (got 1000)"
    ],
    [
      "resume window without a unit",
      ["--resume-window", "30"],
      {},
      "--resume-window",
      "plait proxy: --resume-window needs a unit: ms, s, m or h (got 30; did you mean 30s?)"
    ],
    [
      "window above 4 GiB",
      ["--max-window", "4GiB"],
      {},
      "--max-window",
      "plait proxy: --max-window must be at most 4294967295 bytes (got 4GiB)"
    ],
    [
      "ambiguous size unit",
      ["--max-window", "8MB"],
      {},
      "--max-window",
      'plait proxy: --max-window must be a size like 262144, 256KiB or 8MiB (got "8MB")'
    ],
    [
      "fractional bytes",
      ["--max-window", "262144.5"],
      {},
      "--max-window",
      "plait proxy: --max-window must be a whole number of bytes (got 262144.5)"
    ],
    [
      "negative duration",
      ["--keepalive-interval", "-5s"],
      {},
      "--keepalive-interval",
      "plait proxy: --keepalive-interval must not be negative (got -5s)"
    ],
    [
      "duration without unit",
      ["--keepalive-timeout", "5"],
      {},
      "--keepalive-timeout",
      "plait proxy: --keepalive-timeout needs a unit: ms, s, m or h (got 5; did you mean 5s?)"
    ],
    [
      "zero keepalive timeout",
      ["--keepalive-timeout", "0s"],
      {},
      "--keepalive-timeout",
      "plait proxy: --keepalive-timeout must be at least 1ms (got 0s)"
    ],
    [
      "duration over a day",
      ["--drain-timeout", "25h"],
      {},
      "--drain-timeout",
      "plait proxy: --drain-timeout must be at most 24h (got 25h)"
    ],
    [
      "garbage duration",
      ["--link-wait", "soon"],
      {},
      "--link-wait",
      'plait proxy: --link-wait must be a duration like 500ms, 5s or 2m (got "soon")'
    ],
    [
      "address without port",
      ["--listen", "127.0.0.1"],
      {},
      "--listen",
      'plait proxy: --listen must be HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000 (got "127.0.0.1")'
    ],
    [
      "IPv6 without brackets",
      ["--upstream", "::1:7001"],
      {},
      "--upstream",
      'plait proxy: --upstream must be HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000 (got "::1:7001")'
    ],
    [
      "port out of range",
      ["--listen", "127.0.0.1:70000"],
      {},
      "--listen",
      "plait proxy: --listen port must be from 0 to 65535 (got 127.0.0.1:70000)"
    ],
    [
      "port 0 upstream",
      ["--upstream", "127.0.0.1:0"],
      {},
      "--upstream",
      "plait proxy: --upstream port must be from 1 to 65535 (got 127.0.0.1:0)"
    ],
    [
      "bad value from the environment names the variable",
      [],
      { PLAIT_UPSTREAM: "nowhere" },
      "--upstream",
      'plait proxy: --upstream (from PLAIT_UPSTREAM) must be HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000 (got "nowhere")'
    ],
    [
      "unknown log level",
      ["--log-level", "loud"],
      {},
      "--log-level",
      'plait proxy: --log-level must be one of trace, debug, info, warn, error, fatal, none (got "loud")'
    ],
    [
      "zero clients",
      ["--max-clients", "0"],
      {},
      "--max-clients",
      "plait proxy: --max-clients must be at least 1 (got 0)"
    ],
    [
      "non-numeric clients",
      ["--max-clients", "many"],
      {},
      "--max-clients",
      'plait proxy: --max-clients must be a whole number (got "many")'
    ],
    ["unknown flag", ["--bogus", "1"], {}, "--bogus", "plait proxy: unknown flag --bogus (see --help)"],
    [
      "server-only flag",
      ["--target", "127.0.0.1:80"],
      {},
      "--target",
      "plait proxy: unknown flag --target (see --help)"
    ],
    ["single-dash flag", ["-v"], {}, "-v", "plait proxy: unknown flag -v (see --help)"],
    ["positional argument", ["extra"], {}, "argv", 'plait proxy: unexpected argument "extra" (see --help)'],
    [
      "service without a name",
      ["--service", "127.0.0.1:1"],
      {},
      "--service",
      'plait proxy: --service must be NAME=HOST:PORT (got "127.0.0.1:1")'
    ],
    [
      "service name too long",
      ["--service", `${"n".repeat(64)}=127.0.0.1:1`],
      {},
      "--service",
      "plait proxy: --service has a bad name: a service name has at most 63 characters (got 64)"
    ],
    [
      "service from the environment",
      [],
      { PLAIT_SERVICE: "web=127.0.0.1:1 db=nowhere" },
      "--service",
      'plait proxy: --service (from PLAIT_SERVICE) must be HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000 (got "nowhere")'
    ],
    ["missing value at the end", ["--listen"], {}, "--listen", "plait proxy: --listen needs a value: HOST:PORT"],
    [
      "missing value before a flag",
      ["--upstream", "--listen", "127.0.0.1:1"],
      {},
      "--upstream",
      "plait proxy: --upstream needs a value: HOST:PORT[,HOST:PORT...]"
    ]
  ]
  for (const [name, argv, env, setting, message] of cases) {
    it(name, () => {
      const error = proxyError(argv, env)
      assert.strictEqual(error.message, message)
      assert.strictEqual(error.setting, setting)
      assert.strictEqual(error.command, "proxy")
      assert.notInclude(error.message, "\n")
    })
  }
})

describe("parseServerArgs", () => {
  it("serves the embedded echo by default", () => {
    const parsed = config(parseServerArgs([], {}))
    assert.strictEqual(parsed.target, undefined)
    assert.deepStrictEqual(parsed.listen, { host: "127.0.0.1", port: 7001 })
    assert.strictEqual(parsed.maxSessions, 64)
  })

  it("reads --dial-timeout and PLAIT_DIAL_TIMEOUT (default 10s); refuses 0", () => {
    assert.strictEqual(config(parseServerArgs([], {})).dialTimeoutMillis, 10_000)
    assert.strictEqual(config(parseServerArgs(["--dial-timeout", "750ms"], {})).dialTimeoutMillis, 750)
    assert.strictEqual(config(parseServerArgs([], { PLAIT_DIAL_TIMEOUT: "3s" })).dialTimeoutMillis, 3_000)
    assert.include(refusal(parseServerArgs(["--dial-timeout", "0"], {})).message, "--dial-timeout")
  })

  it("reads the flood budgets from PLAIT_* too, and refuses values out of range naming the flag", () => {
    const parsed = config(parseServerArgs([], { PLAIT_MAX_PINGS_PER_SECOND: "7", PLAIT_FRAME_TIMEOUT: "0" }))
    assert.strictEqual(parsed.maxPingsPerSecond, 7)
    assert.strictEqual(parsed.frameTimeoutMillis, 0)
    assert.include(refusal(parseServerArgs(["--max-resets-per-second", "0"], {})).message, "--max-resets-per-second")
    assert.include(refusal(parseServerArgs(["--max-control-backlog", "15"], {})).message, "--max-control-backlog")
  })

  it("reads --target, PLAIT_TARGET and --max-sessions", () => {
    assert.deepStrictEqual(config(parseServerArgs([], { PLAIT_TARGET: "127.0.0.1:8080" })).target, {
      host: "127.0.0.1",
      port: 8080
    })
    const parsed = config(
      parseServerArgs(["--target", "[::1]:9090", "--max-sessions=3"], { PLAIT_TARGET: "127.0.0.1:8080" })
    )
    assert.deepStrictEqual(parsed.target, { host: "::1", port: 9090 })
    assert.strictEqual(parsed.maxSessions, 3)
  })

  it("reads --connect (the reverse link) and its dialling TLS flags", () => {
    const parsed = config(
      parseServerArgs(["--connect", "proxy.example:7101", "--tls", "--tls-servername", "proxy.example"], {})
    )
    assert.deepStrictEqual(parsed.connect, { host: "proxy.example", port: 7101 })
    assert.strictEqual(parsed.tls, true)
    assert.strictEqual(parsed.tlsServername, "proxy.example")
    const plain = config(parseServerArgs([], {}))
    assert.strictEqual(plain.connect, undefined)
    assert.strictEqual(plain.tls, false)
  })

  it("refuses proxy-only flags and bad targets with the server's name", () => {
    assert.strictEqual(
      refusal(parseServerArgs(["--upstream", "127.0.0.1:1"], {})).message,
      "plait server: unknown flag --upstream (see --help)"
    )
    assert.strictEqual(
      refusal(parseServerArgs(["--target", "127.0.0.1:0"], {})).message,
      "plait server: --target port must be from 1 to 65535 (got 127.0.0.1:0)"
    )
  })

  it("reads repeated --service NAME=HOST:PORT[,proxy-protocol=v1|v2] and refuses bad options", () => {
    const parsed = config(
      parseServerArgs(["--service", "web=127.0.0.1:8081", "--service=db=[::1]:5432,proxy-protocol=v2"], {})
    )
    assert.deepStrictEqual(parsed.services, [
      { name: "web", target: { host: "127.0.0.1", port: 8081 }, proxyProtocol: undefined },
      { name: "db", target: { host: "::1", port: 5432 }, proxyProtocol: "v2" }
    ])
    assert.deepStrictEqual(
      config(parseServerArgs([], { PLAIT_SERVICE: " a=127.0.0.1:1  b=127.0.0.1:2 " })).services.map((s) => s.name),
      ["a", "b"]
    )
    assert.strictEqual(
      refusal(parseServerArgs(["--service", "db=127.0.0.1:1,proxy-protocol=v3"], {})).message,
      'plait server: --service db: proxy-protocol must be v1 or v2 (got "v3")'
    )
    assert.strictEqual(
      refusal(parseServerArgs(["--service", "db=127.0.0.1:1,tls"], {})).message,
      'plait server: --service db: unknown option "tls" (options: proxy-protocol=v1|v2)'
    )
    assert.strictEqual(
      refusal(parseServerArgs(["--service", "db=127.0.0.1:1", "--service", "db=127.0.0.1:2"], {})).message,
      'plait server: --service names service "db" twice'
    )
  })

  it("says in the help that no target means the embedded echo", () => {
    const parsed = parseServerArgs(["-h"], {})
    assert.ok(!(parsed instanceof OptionsError) && parsed._tag === "Help")
    if (parsed._tag === "Help") assert.include(parsed.text, "default none: the embedded echo service answers")
  })
})

describe("flag tables", () => {
  it("have the issue's flag names and derived environment variables", () => {
    const common = [
      "--keepalive-interval",
      "--keepalive-timeout",
      "--max-window",
      "--window-autotune",
      "--drain-timeout",
      "--log-level",
      "--max-streams",
      "--accept-backlog",
      "--max-unacked-opens",
      "--max-session-buffer",
      "--idle-timeout",
      "--frame-timeout",
      "--max-pings-per-second",
      "--max-refused-syns-per-second",
      "--max-resets-per-second",
      "--max-window-updates-per-second",
      "--max-control-backlog",
      "--resume-window",
      "--resume-buffer",
      "--token",
      "--admin",
      "--admin-token"
    ]
    assert.sameMembers(
      Object.values(proxyFlags).map((spec) => spec.flag),
      [
        "--config",
        "--listen",
        "--upstream",
        "--links",
        "--link-listen",
        "--service",
        "--accept-proxy-protocol",
        "--proxy-protocol-from",
        "--link-wait",
        "--max-clients",
        "--tls",
        "--tls-ca",
        "--tls-cert",
        "--tls-key",
        "--tls-servername",
        ...common
      ]
    )
    assert.sameMembers(
      Object.values(serverFlags).map((spec) => spec.flag),
      [
        "--config",
        "--listen",
        "--target",
        "--connect",
        "--service",
        "--max-sessions",
        "--dial-timeout",
        "--tls-cert",
        "--tls-key",
        "--tls-ca",
        "--tls",
        "--tls-servername",
        ...common
      ]
    )
    assert.strictEqual(envName("--listen"), "PLAIT_LISTEN")
    assert.strictEqual(envName("--keepalive-interval"), "PLAIT_KEEPALIVE_INTERVAL")
  })

  it("round-trip formatted durations and sizes through their parsers", () => {
    const parseDuration = duration(0)
    const parseBytes = bytes(0, Number.MAX_SAFE_INTEGER)
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 86_400_000 }), (millis) => {
        assert.deepStrictEqual(parseDuration(formatDuration(millis)), Result.succeed(millis))
      })
    )
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), (n) => {
        assert.deepStrictEqual(parseBytes(formatBytes(n)), Result.succeed(n))
      })
    )
    assert.strictEqual(formatDuration(30_000), "30s")
    assert.strictEqual(formatDuration(120_000), "2m")
    assert.strictEqual(formatBytes(4 * 1024 * 1024), "4MiB")
    assert.deepStrictEqual(parseBytes("1.5MiB"), Result.succeed(1_572_864))
    assert.deepStrictEqual(parseBytes("256kib"), Result.succeed(262_144))
  })
})
