/**
 * Builds the bench's compiled tools (Go, standard library plus Debian's hashicorp/yamux) into
 * `bench/native/bin/`, offline: GOPATH mode (`GO111MODULE=off`, the Debian Go libraries under
 * `/usr/share/gocode`), no proxy, no cgo, the build cache under `bench/native/.go/` (git-ignored).
 *
 * - `loadgen`: the load generator (`bench/native/loadgen/`), same command line and RESULT line as
 *   `bench/loadgen.ts`.
 * - `echo`: the backend echo server, with a sink mode (`bench/native/echo/`).
 * - `yamux`: the Go yamux proxy and server pair (`bench/native/yamux/`, `yamux proxy|server`).
 * - `delay`: the WAN delay relay, also the tests' corrupting relay (`bench/native/delay/`).
 *
 * Debian's yamux (0.0+git20190923) predates hashicorp/yamux#131 (v0.1.2, 2024): a Read after the
 * stream's own Close (the half-close that passes a client's FIN on) returns EOF as soon as its buffer
 * is empty, which loses the rest of an echo. The build applies that upstream fix — one `case` removed
 * from `Stream.Read` — through `go build -overlay`, leaving Debian's files untouched; the version
 * string records it.
 *
 * Rebuilds only when a source, the Go version or the yamux package changed (a content hash in
 * `bin/.stamp`); concurrent builds (the bench and a test) wait on a lock directory.
 *
 * Usage: `node bench/native/build.ts` (prints the binaries and versions; exit 1 with an install hint
 * when Go or the yamux package is missing). Programmatic: {@link buildNative}.
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"
import { gunzipSync } from "node:zlib"

const HERE = path.dirname(fileURLToPath(import.meta.url))
/** Where the binaries go (git-ignored). */
export const NATIVE_BIN = path.join(HERE, "bin")
const WORK = path.join(HERE, ".go")
const GOCODE = "/usr/share/gocode"
const YAMUX_SRC = path.join(GOCODE, "src/github.com/hashicorp/yamux")
const YAMUX_DEB = "golang-github-hashicorp-yamux-dev"
const TOOLS = ["loadgen", "echo", "yamux", "delay"] as const
export type Tool = (typeof TOOLS)[number]

export const INSTALL_HINT = "apt-get install golang-go golang-github-hashicorp-yamux-dev"

/** The built tools. */
export interface NativeBuild {
  readonly bin: { readonly [T in Tool]: string }
  readonly goVersion: string
  /** Debian package version of hashicorp/yamux, plus the patch applied. */
  readonly yamuxVersion: string
  /** Whether this call compiled (false: the binaries were up to date). */
  readonly built: boolean
}

const run = (cmd: string, args: ReadonlyArray<string>, env?: NodeJS.ProcessEnv, cwd?: string): string =>
  execFileSync(cmd, [...args], {
    encoding: "utf8",
    env: env ?? process.env,
    cwd: cwd ?? HERE,
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 16 * 1024 * 1024
  })

const findGo = (): string | undefined => {
  try {
    return run("sh", ["-c", "command -v go"]).trim() || undefined
  } catch {
    return undefined
  }
}

/** The Debian package version of hashicorp/yamux (dpkg, else its changelog), or "unknown". */
export const yamuxPackageVersion = (): string => {
  try {
    const v = run("dpkg-query", ["-W", "-f", "$" + "{Version}", YAMUX_DEB]).trim()
    if (v !== "") return v
  } catch {
    // not a dpkg system, or not installed through dpkg
  }
  try {
    const log = gunzipSync(readFileSync(`/usr/share/doc/${YAMUX_DEB}/changelog.Debian.gz`)).toString("utf8")
    const m = /^\S+ \(([^)]+)\)/.exec(log)
    if (m) return m[1]!
  } catch {
    // no changelog
  }
  return "unknown"
}

/** hashicorp/yamux#131: reads stay allowed after the stream's own Close (a half-close). */
const patchStreamRead = (source: string): { text: string; patched: boolean } => {
  const bug = "\tswitch s.state {\n\tcase streamLocalClose:\n\t\tfallthrough\n\tcase streamRemoteClose:\n"
  const at = source.indexOf(bug, source.indexOf("func (s *Stream) Read("))
  if (at < 0) return { text: source, patched: false }
  return {
    text: `${source.slice(0, at)}\tswitch s.state {\n\tcase streamRemoteClose:\n${source.slice(at + bug.length)}`,
    patched: true
  }
}

const goFiles = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) return e.name === "bin" || e.name.startsWith(".") ? [] : goFiles(p)
    return e.name.endsWith(".go") ? [p] : []
  })

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)

/** Takes the build lock (a directory), waiting up to `timeoutMs` for another build; returns its release. */
const lock = (timeoutMs: number): (() => void) => {
  const dir = path.join(WORK, "lock")
  mkdirSync(WORK, { recursive: true })
  const deadline = Date.now() + timeoutMs
  while (true) {
    try {
      mkdirSync(dir)
      return () => rmSync(dir, { recursive: true, force: true })
    } catch {
      // A lock older than the timeout is a crashed build's.
      try {
        if (Date.now() - statSync(dir).mtimeMs > timeoutMs) rmSync(dir, { recursive: true, force: true })
      } catch {
        // gone meanwhile
      }
      if (Date.now() > deadline) throw new Error(`bench/native: another build held ${dir} for ${timeoutMs} ms`)
      sleepSync(100)
    }
  }
}

/**
 * Builds the tools when needed and returns their paths and versions. Throws with an install hint
 * when `go` or Debian's yamux package is missing, and with the compiler's output when a build fails.
 */
export const buildNative = (options: { readonly log?: (line: string) => void } = {}): NativeBuild => {
  const log = options.log ?? (() => {})
  const go = findGo()
  if (go === undefined) throw new Error(`bench/native: \`go\` not found on PATH — ${INSTALL_HINT}`)
  if (!existsSync(path.join(YAMUX_SRC, "stream.go")))
    throw new Error(`bench/native: hashicorp/yamux not found in ${YAMUX_SRC} — ${INSTALL_HINT}`)
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GO111MODULE: "off",
    GOPATH: `${path.join(WORK, "gopath")}:${GOCODE}`,
    GOCACHE: path.join(WORK, "cache"),
    GOTMPDIR: path.join(WORK, "tmp"),
    GOFLAGS: "",
    GOPROXY: "off",
    GOTOOLCHAIN: "local",
    GOTELEMETRY: "off",
    CGO_ENABLED: "0"
  }
  const goVersion = run(go, ["env", "GOVERSION"], env).trim()
  const bin = Object.fromEntries(TOOLS.map((t) => [t, path.join(NATIVE_BIN, t)])) as { [T in Tool]: string }

  const streamGo = readFileSync(path.join(YAMUX_SRC, "stream.go"), "utf8")
  const patch = patchStreamRead(streamGo)
  const debVersion = yamuxPackageVersion()
  const yamuxVersion = patch.patched
    ? `${debVersion} (Debian ${YAMUX_DEB}) + hashicorp/yamux#131 read-after-close fix`
    : `${debVersion} (Debian ${YAMUX_DEB})`

  const hash = createHash("sha256")
  hash.update(`${goVersion}\n${yamuxVersion}\n`)
  hash.update(readFileSync(fileURLToPath(import.meta.url)))
  for (const f of [...goFiles(HERE), ...goFiles(YAMUX_SRC)].sort()) hash.update(`${f}\n`).update(readFileSync(f))
  const stamp = hash.digest("hex")
  const stampFile = path.join(NATIVE_BIN, ".stamp")
  const upToDate = () =>
    existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp && TOOLS.every((t) => existsSync(bin[t]))
  if (upToDate()) return { bin, goVersion, yamuxVersion, built: false }

  const release = lock(180_000)
  try {
    if (upToDate()) return { bin, goVersion, yamuxVersion, built: false }
    log(`bench/native: building ${TOOLS.join(", ")} with ${goVersion} (yamux ${yamuxVersion})`)
    mkdirSync(env.GOTMPDIR!, { recursive: true })
    const args = ["build", "-trimpath"]
    if (patch.patched) {
      const patched = path.join(WORK, "overlay", "yamux-stream.go")
      mkdirSync(path.dirname(patched), { recursive: true })
      writeFileSync(patched, patch.text)
      const overlay = path.join(WORK, "overlay", "overlay.json")
      writeFileSync(overlay, JSON.stringify({ Replace: { [path.join(YAMUX_SRC, "stream.go")]: patched } }))
      args.push(`-overlay=${overlay}`)
    }
    // Build into a fresh directory, then rename into bin/: a binary running meanwhile is not touched.
    const out = path.join(WORK, `out-${process.pid}`)
    rmSync(out, { recursive: true, force: true })
    mkdirSync(out, { recursive: true })
    try {
      run(go, [...args, "-o", `${out}/`, ...TOOLS.map((t) => `./${t}`)], env)
    } catch (error) {
      const e = error as { stderr?: string; message: string }
      throw new Error(`bench/native: go build failed:\n${e.stderr ?? e.message}`)
    }
    mkdirSync(NATIVE_BIN, { recursive: true })
    for (const t of TOOLS) renameSync(path.join(out, t), bin[t])
    rmSync(out, { recursive: true, force: true })
    writeFileSync(path.join(NATIVE_BIN, "versions.json"), `${JSON.stringify({ goVersion, yamuxVersion }, null, 2)}\n`)
    writeFileSync(stampFile, stamp)
    return { bin, goVersion, yamuxVersion, built: true }
  } finally {
    release()
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const b = buildNative({ log: (line) => console.log(line) })
    console.log(`${b.built ? "built" : "up to date"}: ${Object.values(b.bin).join(" ")}`)
    console.log(`go ${b.goVersion}; hashicorp/yamux ${b.yamuxVersion}`)
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error))
    process.exit(1)
  }
}
