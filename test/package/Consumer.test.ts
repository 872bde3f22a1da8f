/**
 * The package as a user gets it: `npm pack` (whose `prepack` builds `dist/`), then the tarball
 * installed offline into a fresh project under the OS temp dir, and there:
 * - the tarball holds the build (JavaScript, declarations, maps) and the bin, and no tests;
 * - a strict consumer type-checks against the shipped `.d.ts` with this tree's `tsc`, deep imports
 *   do not resolve;
 * - the consumer program (test/package/consumer/main.ts), the README's library snippet and
 *   examples/embedded.ts (its import of `../src/index.ts` turned into `plait`) run on Node, Bun and
 *   Deno, importing only `plait` and `effect`;
 * - the `plait` bin: `npx plait --version`, `--help`, and a bad flag (exit 2, one line naming it).
 */

import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { afterAll, afterEach, assert, beforeAll, describe, it } from "@effect/vitest"
import {
  BIN,
  checkConsumerReport,
  consumerLock,
  killAll,
  makeTemp,
  manifest,
  type Ran,
  ROOT,
  removeTemp,
  run,
  stagePackage,
  writeJson
} from "./helpers.ts"

/** The `ts` block of the README's library section, and the output its `// prints "…"` comment promises. */
const readmeSnippet = (): { readonly code: string; readonly prints: string } => {
  const readme = readFileSync(path.join(ROOT, "README.md"), "utf8")
  const section = readme.slice(readme.indexOf("\n## As a library"))
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1]
  if (code === undefined) throw new Error("README: no ```ts block in the library section")
  const prints = /\/\/ prints "([^"]*)"/.exec(code)?.[1]
  if (prints === undefined) throw new Error('README: the library snippet has no `// prints "…"` comment')
  return { code, prints }
}

const explain = (ran: Ran): string =>
  `exit ${ran.code}${ran.timedOut ? " (timed out)" : ""}\n--- stdout\n${ran.stdout}\n--- stderr\n${ran.stderr}`

const runtimes = {
  node: (file: string) => [path.join(BIN, "node"), file],
  bun: (file: string) => [path.join(BIN, "bun"), file],
  deno: (file: string, dir: string) => [
    path.join(BIN, "deno"),
    "run",
    "--no-remote",
    "--cached-only",
    "--no-lock",
    "--no-prompt",
    "--allow-net=127.0.0.1",
    `--allow-read=${dir}`,
    "--allow-env",
    "--allow-sys",
    file
  ]
} as const

describe("the npm package, installed from its tarball into a fresh project", () => {
  let stage: string | undefined
  let consumer: string | undefined
  let tarball: ReadonlyArray<string> = []

  const inConsumer = (command: string, args: ReadonlyArray<string>, timeoutMs = 30_000) =>
    run(command, args, { cwd: consumer!, timeoutMs })

  beforeAll(async () => {
    stage = makeTemp("stage")
    consumer = makeTemp("consumer")
    stagePackage(stage)
    const packed = await run("npm", ["pack", "--pack-destination", stage], { cwd: stage, timeoutMs: 120_000 })
    if (packed.code !== 0) throw new Error(`npm pack failed: ${explain(packed)}`)
    const name = packed.stdout.trim().split("\n").at(-1)!
    const tgz = path.join(consumer, name)
    copyFileSync(path.join(stage, name), tgz)
    const listed = await run("tar", ["tzf", tgz], { cwd: consumer, timeoutMs: 10_000 })
    tarball = listed.stdout.split("\n").filter((line) => line !== "")

    const { lock, packageJson } = consumerLock({
      name: "plait-consumer",
      tgz,
      dependencies: { effect: manifest().devDependencies?.effect ?? manifest().dependencies!.effect! },
      devDependencies: { "@types/node": manifest().devDependencies!["@types/node"]! }
    })
    writeJson(path.join(consumer, "package.json"), packageJson)
    writeJson(path.join(consumer, "package-lock.json"), lock)
    const installed = await inConsumer("npm", ["ci", "--offline", "--no-audit", "--no-fund"], 120_000)
    if (installed.code !== 0) throw new Error(`npm ci --offline failed: ${explain(installed)}`)

    for (const file of ["main.ts", "types.ts"]) {
      copyFileSync(path.join(ROOT, "test/package/consumer", file), path.join(consumer, file))
    }
    writeFileSync(path.join(consumer, "readme.ts"), readmeSnippet().code)
    const embedded = readFileSync(path.join(ROOT, "examples/embedded.ts"), "utf8")
    writeFileSync(path.join(consumer, "embedded.ts"), embedded.replaceAll(`"../src/index.ts"`, `"plait"`))
    writeJson(path.join(consumer, "tsconfig.json"), {
      compilerOptions: {
        strict: true,
        target: "es2023",
        lib: ["es2023"],
        module: "nodenext",
        moduleResolution: "nodenext",
        types: ["node"],
        noEmit: true,
        skipLibCheck: false,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        verbatimModuleSyntax: true,
        erasableSyntaxOnly: true
      },
      include: ["*.ts"]
    })
  }, 240_000)

  afterEach(() => killAll())
  afterAll(() => {
    killAll()
    removeTemp(stage)
    removeTemp(consumer)
  })

  it("the tarball holds dist/ (JavaScript, declarations, maps), the bin and the docs, and no tests", () => {
    const files = new Set(tarball.map((line) => line.replace(/^package\//, "")))
    for (const file of ["package.json", "README.md", "dist/index.js", "dist/index.d.ts", "dist/index.js.map"]) {
      assert.isTrue(files.has(file), `${file} missing from the tarball`)
    }
    const bin = manifest().bin
    for (const target of typeof bin === "string" ? [bin] : Object.values(bin ?? {})) {
      assert.isTrue(files.has(target.replace(/^\.\//, "")), `bin ${target} missing from the tarball`)
    }
    assert.isTrue(
      [...files].some((file) => file.startsWith("docs/")),
      "docs/ missing from the tarball"
    )
    const js = [...files].filter((file) => file.startsWith("dist/") && file.endsWith(".js"))
    assert.isAbove(js.length, 10)
    for (const file of js) {
      assert.isTrue(files.has(file.replace(/\.js$/, ".d.ts")), `${file} has no declarations`)
      assert.isTrue(files.has(`${file}.map`), `${file} has no source map`)
    }
    const unwanted = [...files].filter((file) =>
      /(^|\/)(test|tests|bench|examples|tools|scripts|node_modules)\/|\.test\.|\.tsbuildinfo$/.test(file)
    )
    assert.deepStrictEqual(unwanted, [])
  })

  it("uses the application's effect: a peer dependency, installed once", () => {
    assert.isTrue(existsSync(path.join(consumer!, "node_modules/effect/package.json")))
    assert.isFalse(existsSync(path.join(consumer!, "node_modules/plait/node_modules/effect")))
    assert.isDefined(manifest().peerDependencies?.effect)
    assert.isUndefined(manifest().dependencies?.effect, "effect must not be a plain dependency (two copies)")
  })

  it("type-checks a strict consumer against the shipped .d.ts; deep imports do not resolve", async () => {
    // skipLibCheck is off so that plait's own declarations are checked too (an import they cannot
    // resolve would otherwise silently become `any`). Other libraries' declarations are not ours:
    // effect's need the DOM lib for WebCrypto types, which a Node consumer does not load.
    const ran = await inConsumer(path.join(BIN, "tsc"), ["-p", "tsconfig.json", "--pretty", "false"], 60_000)
    const diagnostics = ran.stdout.split("\n").filter((line) => /error TS\d+/.test(line))
    const ours = diagnostics.filter(
      (line) => !line.startsWith("node_modules/") || line.startsWith("node_modules/plait/")
    )
    assert.deepStrictEqual(ours, [], explain(ran))
    assert.isTrue(ran.code === 0 || diagnostics.length > 0, explain(ran))
  }, 70_000)

  for (const [runtime, command] of Object.entries(runtimes)) {
    it(`runs on ${runtime}: Server.layer + Client.layer + Proxy.layer, byte-exact on 8 concurrent streams; deep imports refused`, async () => {
      const [bin, ...args] = command("main.ts", consumer!)
      const ran = await inConsumer(bin!, args)
      assert.strictEqual(ran.code, 0, explain(ran))
      checkConsumerReport(ran, runtime, 3)
    }, 40_000)

    it(`runs the README's library snippet and examples/embedded.ts on ${runtime}`, async () => {
      const [readmeBin, ...readmeArgs] = command("readme.ts", consumer!)
      const readme = await inConsumer(readmeBin!, readmeArgs)
      assert.strictEqual(readme.code, 0, explain(readme))
      // Effect's default logger shares stdout: the snippet's own output is the last line.
      assert.strictEqual(readme.stdout.trim().split("\n").at(-1), readmeSnippet().prints, explain(readme))
      const [embeddedBin, ...embeddedArgs] = command("embedded.ts", consumer!)
      const embedded = await inConsumer(embeddedBin!, embeddedArgs)
      assert.strictEqual(embedded.code, 0, explain(embedded))
      assert.match(embedded.stdout + embedded.stderr, /answers: HELLO FROM PLAIT/)
    }, 70_000)
  }

  it("npx plait --version prints the package's version", async () => {
    const ran = await inConsumer("npx", ["--offline", "--no-install", "plait", "--version"])
    assert.strictEqual(ran.code, 0, explain(ran))
    assert.include(ran.stdout, manifest().version)
  })

  it("npx plait --help exits 0 and lists both commands", async () => {
    const ran = await inConsumer("npx", ["--offline", "--no-install", "plait", "--help"])
    assert.strictEqual(ran.code, 0, explain(ran))
    assert.match(ran.stdout, /proxy/)
    assert.match(ran.stdout, /server/)
  })

  it("npx plait proxy --listen bad exits 2 with one line on stderr naming the flag", async () => {
    const ran = await inConsumer("npx", ["--offline", "--no-install", "plait", "proxy", "--listen", "bad"])
    assert.strictEqual(ran.code, 2, explain(ran))
    const lines = ran.stderr.split("\n").filter((line) => line.trim() !== "")
    assert.strictEqual(lines.length, 1, explain(ran))
    assert.match(lines[0]!, /--listen/)
  })
})
