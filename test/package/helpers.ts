/**
 * Helpers of the package tests: build and pack the package the way `npm pack` does, and install the
 * tarball into a fresh project outside the repository without the network.
 *
 * Invariants:
 * - Nothing is written inside the repository: the package is staged (its `files`, manifests and
 *   build configuration, `node_modules` linked) in a temporary directory and packed there, so the
 *   `prepack` build runs exactly as `npm pack` runs it, while another `npm test` can pack at the
 *   same time.
 * - The install is offline and deterministic: the consumer gets a `package-lock.json` cut from this
 *   repository's lock (the dependency closure of the tarball, same versions, same integrity), so
 *   `npm ci --offline` reads every dependency from the npm cache that this repository's own
 *   `npm ci` filled. No registry metadata is needed.
 * - Every child runs in its own process group and is killed (the whole group) at its deadline or
 *   by {@link killAll}.
 */

import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"
import { assert } from "@effect/vitest"

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
export const BIN = path.join(ROOT, "node_modules/.bin")

export interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly timedOut: boolean
}

const running = new Set<number>()

/** Kills every child process group still running (for afterEach / afterAll). */
export const killAll = (): void => {
  for (const pid of running) {
    try {
      process.kill(-pid, "SIGKILL")
    } catch {
      // already gone
    }
  }
  running.clear()
}

/**
 * Runs `command args` in `cwd` with this repository's runtimes first on PATH (the system node may be
 * too old) and no inherited npm configuration of the outer `npm test` run.
 */
export const run = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly timeoutMs: number; readonly env?: Record<string, string> }
): Promise<Ran> =>
  new Promise((resolve) => {
    const env: Record<string, string> = {}
    for (const [key, value] of Object.entries(process.env)) {
      // `npm test` exports its own project's package and lifecycle (and its directory as the local
      // prefix): not the consumer's. The rest of npm's configuration (cache, registry, npmrc) stays,
      // so an offline install finds the cache this machine's `npm ci` filled wherever it is.
      const outer =
        key.startsWith("npm_package_") ||
        key.startsWith("npm_lifecycle_") ||
        key === "npm_config_local_prefix" ||
        key === "npm_config_loglevel"
      if (value !== undefined && !outer) env[key] = value
    }
    Object.assign(env, {
      PATH: `${BIN}${path.delimiter}${process.env.PATH ?? ""}`,
      NO_COLOR: "1",
      DENO_NO_UPDATE_CHECK: "1",
      npm_config_update_notifier: "false",
      npm_config_fund: "false",
      npm_config_audit: "false",
      ...options.env
    })
    const child = spawn(command, args, { cwd: options.cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] })
    if (child.pid !== undefined) running.add(child.pid)
    let stdout = ""
    let stderr = ""
    let timedOut = false
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      timedOut = true
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL")
    }, options.timeoutMs)
    const done = (code: number | null) => {
      clearTimeout(timer)
      if (child.pid !== undefined) {
        // The group may still hold grandchildren (npm → sh → node): end them with their parent.
        try {
          process.kill(-child.pid, "SIGKILL")
        } catch {
          // already gone
        }
        running.delete(child.pid)
      }
      resolve({ code, stdout, stderr, timedOut })
    }
    child.on("error", (error) => {
      stderr += String(error)
      done(null)
    })
    child.on("close", (code) => done(code))
  })

/** A fresh directory under the OS temp dir (outside the repository), removed by {@link removeTemp}. */
export const makeTemp = (prefix: string): string => mkdtempSync(path.join(os.tmpdir(), `plait-${prefix}-`))

export const removeTemp = (dir: string | undefined): void => {
  if (dir?.startsWith(os.tmpdir())) rmSync(dir, { recursive: true, force: true })
}

const readJson = <A>(file: string): A => JSON.parse(readFileSync(file, "utf8")) as A

/** The fields of this repository's package.json that packing and installing use. */
export interface Manifest {
  name: string
  version: string
  files: ReadonlyArray<string>
  dependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
  devDependencies?: Record<string, string>
  bin?: string | Record<string, string>
  engines?: Record<string, string>
}

/** This repository's package.json. */
export const manifest = (): Manifest => readJson<Manifest>(path.join(ROOT, "package.json"))

/**
 * Copies what `npm pack` would read (package.json, its `files`, the build script and its tsconfigs) into `dir`
 * and links this repository's node_modules there, so `npm pack` in `dir` builds and packs the
 * package as it stands in the working tree.
 */
export const stagePackage = (dir: string): void => {
  const pkg = manifest()
  const entries = new Set([
    "package.json",
    "tsconfig.json",
    "tsconfig.build.json",
    "scripts/build.ts",
    "README.md",
    "LICENSE"
  ])
  for (const entry of pkg.files) if (!entry.startsWith("!")) entries.add(entry.replace(/\/\*\*.*$/, ""))
  for (const entry of entries) {
    const from = path.join(ROOT, entry)
    // `dist` is the build's output: staging builds its own from `src`, never ships the tree's.
    if (entry === "dist" || !existsSync(from)) continue
    mkdirSync(path.dirname(path.join(dir, entry)), { recursive: true })
    cpSync(from, path.join(dir, entry), { recursive: true })
  }
  symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"), "dir")
}

/** `sha512-…` of a file, as npm writes it into a lock. */
export const integrity = (file: string): string =>
  `sha512-${createHash("sha512").update(readFileSync(file)).digest("base64")}`

interface LockEntry {
  readonly version?: string
  readonly dependencies?: Record<string, string>
  readonly optionalDependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
  readonly peerDependenciesMeta?: Record<string, { optional?: boolean }>
  readonly [key: string]: unknown
}

/** The registry tarball URL npm derives for `name@version` (the lock's `resolved`). */
const tarballUrl = (name: string, version: string): string =>
  `https://registry.npmjs.org/${name}/-/${name.slice(name.indexOf("/") + 1)}-${version}.tgz`

/** Where Node's lookup from package `from` (a lock path, "" for the root) finds `name`, in `packages`. */
const resolveIn = (packages: Record<string, LockEntry>, from: string, name: string): string | undefined => {
  let dir = from
  for (;;) {
    const candidate = dir === "" ? `node_modules/${name}` : `${dir}/node_modules/${name}`
    if (packages[candidate] !== undefined) return candidate
    if (dir === "") return undefined
    const i = dir.lastIndexOf("/node_modules/")
    dir = i < 0 ? "" : dir.slice(0, i)
  }
}

/**
 * A lock for a consumer project whose dependencies are `direct` (name → version; each must be the
 * version this repository has locked at top level) plus the packed plait tarball `tgzName` in the
 * project directory. Its entries are this repository's own, cut to the dependency closure.
 */
export const consumerLock = (options: {
  readonly name: string
  readonly tgz: string
  readonly dependencies: Record<string, string>
  readonly devDependencies: Record<string, string>
}): { readonly lock: unknown; readonly packageJson: unknown } => {
  const pkg = manifest()
  const repoLock = readJson<{ packages: Record<string, LockEntry> }>(path.join(ROOT, "package-lock.json"))
  const packages = repoLock.packages
  const plaitEntry: LockEntry = {
    version: pkg.version,
    resolved: `file:${path.basename(options.tgz)}`,
    integrity: integrity(options.tgz),
    license: "MIT",
    ...(pkg.dependencies === undefined ? {} : { dependencies: pkg.dependencies }),
    ...(pkg.peerDependencies === undefined ? {} : { peerDependencies: pkg.peerDependencies }),
    ...(pkg.peerDependenciesMeta === undefined ? {} : { peerDependenciesMeta: pkg.peerDependenciesMeta }),
    ...(pkg.bin === undefined ? {} : { bin: typeof pkg.bin === "string" ? { [pkg.name]: pkg.bin } : pkg.bin }),
    ...(pkg.engines === undefined ? {} : { engines: pkg.engines })
  }
  const out: Record<string, LockEntry> = {}
  const queue: Array<string> = []
  const need = (from: string, name: string, optional: boolean) => {
    const at = resolveIn(packages, from, name)
    if (at === undefined) {
      if (optional) return
      throw new Error(`consumer lock: ${name} (needed by ${from || "the project"}) is not in package-lock.json`)
    }
    if (out[at] !== undefined) return
    const { dev: _dev, devOptional: _devOptional, ...entry } = packages[at]!
    // With `resolved` (which this repository's lock may omit) npm goes straight to the cached
    // tarball by its integrity; without it, npm would first ask the registry for metadata.
    out[at] = { resolved: tarballUrl(at.slice(at.lastIndexOf("node_modules/") + 13), entry.version!), ...entry }
    queue.push(at)
  }
  const edges = (entry: LockEntry): Array<[string, boolean]> => [
    ...Object.keys(entry.dependencies ?? {}).map((n): [string, boolean] => [n, false]),
    ...Object.keys(entry.optionalDependencies ?? {}).map((n): [string, boolean] => [n, true]),
    // npm installs peers that are not optional; plait's own peers are the consumer's to provide.
    ...Object.keys(entry.peerDependencies ?? {}).map((n): [string, boolean] => [
      n,
      entry.peerDependenciesMeta?.[n]?.optional === true
    ])
  ]
  for (const [name, version] of Object.entries({ ...options.dependencies, ...options.devDependencies })) {
    need("", name, false)
    const locked = out[`node_modules/${name}`]?.version
    if (locked !== version) throw new Error(`consumer lock: ${name}@${version} wanted, the repository has ${locked}`)
  }
  for (const [name, optional] of edges(plaitEntry)) need("", name, optional)
  while (queue.length > 0) {
    const at = queue.shift()!
    for (const [name, optional] of edges(out[at]!)) need(at, name, optional)
  }
  const dependencies = { ...options.dependencies, plait: `file:${path.basename(options.tgz)}` }
  const root = { name: options.name, version: "1.0.0", dependencies, devDependencies: options.devDependencies }
  const lock = {
    name: options.name,
    version: "1.0.0",
    lockfileVersion: 3,
    requires: true,
    packages: { "": root, "node_modules/plait": plaitEntry, ...out }
  }
  return { lock, packageJson: { ...root, private: true, type: "module" } }
}

export const writeJson = (file: string, value: unknown): void =>
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`)

/** The consumer program's (test/package/consumer/main.ts) last stdout line, checked in full. */
export const checkConsumerReport = (ran: Ran, runtime: string, deepImports: number): void => {
  const explain = `exit ${ran.code}${ran.timedOut ? " (timed out)" : ""}\n--- stdout\n${ran.stdout}\n--- stderr\n${ran.stderr}`
  assert.strictEqual(ran.code, 0, explain)
  const report = JSON.parse(ran.stdout.trim().split("\n").at(-1)!)
  assert.strictEqual(report.runtime, runtime)
  assert.deepStrictEqual(report.exports, { Client: "function", Server: "function", Proxy: "function" })
  assert.deepStrictEqual(
    report.streams.map((s: { bytes: number; exact: boolean }) => [s.bytes, s.exact]),
    [1, 1000, 65_536, 300_000, 17, 4096, 131_072, 70_000].map((bytes) => [bytes, true]),
    explain
  )
  assert.strictEqual(report.distinctIds, 8, "every stream its own id")
  assert.strictEqual(report.links, 1, "one link for all streams")
  assert.isTrue(report.viaProxy, "a TCP client through Proxy.layer got its bytes back, transformed")
  assert.lengthOf(report.deep, deepImports)
  for (const deep of report.deep) {
    assert.isTrue(deep.fileExists, `${deep.specifier}: its file should be there`)
    assert.isTrue(deep.refused, `${deep.specifier} should be refused`)
  }
}
