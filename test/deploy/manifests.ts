/**
 * The deployment files (deploy/Dockerfile, deploy/kubernetes/*.yaml) as data, and the checks the
 * deploy tests run on them.
 *
 * Every check is a pure function from the files (parsed) to a list of problems, one readable line
 * each (`server-deployment.yaml: Deployment plait-server: …`), so a test asserts `[]` on the real
 * files and a specific line on a mutated copy: that is how the tests prove a check can fail.
 * Nothing here starts a process; the checks against the running CLI are in Cli.test.ts.
 */
import { spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"
import type { Instruction } from "dockerfile-ast"
import { DockerfileParser } from "dockerfile-ast"
import { Deployment, type IDeployment } from "kubernetes-models/apps/v1/Deployment"
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget"
import { ConfigMap, type IConfigMap } from "kubernetes-models/v1/ConfigMap"
import type { IContainer } from "kubernetes-models/v1/Container"
import { type ISecret, Secret } from "kubernetes-models/v1/Secret"
import { type IService, Service } from "kubernetes-models/v1/Service"
import * as Yaml from "yaml"

/** The repository root. */
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
/** The folder of the Kubernetes manifests. */
export const kubernetesDir = path.join(root, "deploy/kubernetes")
/** The Dockerfile, built with the repository root as context. */
export const dockerfilePath = path.join(root, "deploy/Dockerfile")
/** The example Secret: in the folder for reference, deliberately not a kustomize resource. */
export const SECRET_EXAMPLE = "secret.example.yaml"

// ---------------------------------------------------------------------------------------------
// Loading

/** The text of every `*.yaml` file of a folder, by file name. */
export const readFolder = (dir: string): Map<string, string> =>
  new Map(
    readdirSync(dir)
      .filter((name) => name.endsWith(".yaml") || name.endsWith(".yml"))
      .sort()
      .map((name) => [name, readFileSync(path.join(dir, name), "utf8")])
  )

/** One object of a manifest file. */
export interface Manifest {
  readonly file: string
  readonly object: Record<string, unknown>
}

/** The parsed deployment: the manifests, the kustomization, and the file list they came from. */
export interface Deploy {
  readonly files: ReadonlyArray<string>
  readonly kustomization: Record<string, unknown>
  readonly manifests: ReadonlyArray<Manifest>
  readonly dockerfile: string
}

const label = (manifest: Manifest): string => {
  const metadata = manifest.object.metadata as { name?: unknown } | undefined
  return `${manifest.file}: ${String(manifest.object.kind)} ${String(metadata?.name)}`
}

/**
 * Parses every file (all documents of each). Kubernetes reads YAML with go-yaml, whose YAML 1.1
 * turns unquoted `yes`, `on`, `0755` into other types than YAML 1.2 does: a file that reads
 * differently under the two is refused, as is a syntax error or a duplicate key.
 */
export const parseFiles = (
  files: ReadonlyMap<string, string>
): { deploy: Omit<Deploy, "dockerfile">; problems: Array<string> } => {
  const problems: Array<string> = []
  const manifests: Array<Manifest> = []
  let kustomization: Record<string, unknown> = {}
  for (const [file, text] of files) {
    const documents = Yaml.parseAllDocuments(text, { uniqueKeys: true })
    const legacy = Yaml.parseAllDocuments(text, { version: "1.1" })
    documents.forEach((document, index) => {
      for (const error of document.errors) problems.push(`${file}: ${error.message.split("\n")[0]}`)
      const value = document.toJS() as unknown
      if (JSON.stringify(value) !== JSON.stringify(legacy[index]?.toJS())) {
        problems.push(
          `${file}: document ${index + 1} reads differently under YAML 1.1 (Kubernetes) and 1.2: quote its strings`
        )
      }
      if (value === null || value === undefined) return
      if (typeof value !== "object" || Array.isArray(value)) {
        problems.push(`${file}: document ${index + 1} is not a mapping`)
        return
      }
      if (file === "kustomization.yaml") kustomization = value as Record<string, unknown>
      else manifests.push({ file, object: value as Record<string, unknown> })
    })
  }
  return { deploy: { files: [...files.keys()], kustomization, manifests }, problems }
}

/** Reads and parses the real deployment files; throws on a parse problem (the tests report it). */
export const loadDeploy = (): Deploy => {
  const { deploy, problems } = parseFiles(readFolder(kubernetesDir))
  if (problems.length > 0) throw new Error(problems.join("\n"))
  return { ...deploy, dockerfile: readFileSync(dockerfilePath, "utf8") }
}

/** A deep copy to mutate in a test. */
export const copy = (deploy: Deploy): Deploy => structuredClone(deploy)

// ---------------------------------------------------------------------------------------------
// Typed access

const kindOf = (manifest: Manifest) => `${String(manifest.object.apiVersion)}/${String(manifest.object.kind)}`

/** The objects of one kind, typed. Only call after {@link schemaProblems} found none. */
const ofKind = <A>(deploy: Deploy, kind: string): Array<{ readonly file: string; readonly object: A }> =>
  deploy.manifests
    .filter((manifest) => manifest.object.kind === kind)
    .map((manifest) => ({ file: manifest.file, object: manifest.object as A }))

/** The resources kustomize applies (everything but the example Secret). */
export const resources = (deploy: Deploy): Array<Manifest> => {
  const listed = new Set((deploy.kustomization.resources as Array<string> | undefined) ?? [])
  return deploy.manifests.filter((manifest) => listed.has(manifest.file))
}

export const deployments = (deploy: Deploy) => ofKind<IDeployment>(deploy, "Deployment")
export const services = (deploy: Deploy) => ofKind<IService>(deploy, "Service")
export const configMaps = (deploy: Deploy) => ofKind<IConfigMap>(deploy, "ConfigMap")
export const secrets = (deploy: Deploy) => ofKind<ISecret>(deploy, "Secret")

/** A Deployment's one container with what the checks need of it. */
export interface PlaitContainer {
  readonly where: string
  readonly deployment: IDeployment
  readonly container: IContainer
  /** `server` or `proxy`: the first argument. */
  readonly command: string
  /** `--flag` → value, in order. */
  readonly flags: ReadonlyArray<readonly [string, string]>
}

/** Splits `--flag value` / `--flag=value` arguments after the subcommand. */
export const splitFlags = (args: ReadonlyArray<string>): Array<[string, string]> => {
  const out: Array<[string, string]> = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    const eq = arg.indexOf("=")
    if (eq > 0) out.push([arg.slice(0, eq), arg.slice(eq + 1)])
    else if (args[i + 1] !== undefined && !args[i + 1]!.startsWith("--")) out.push([arg, args[++i]!])
    else out.push([arg, ""])
  }
  return out
}

/** The plait container of every Deployment. */
export const plaitContainers = (deploy: Deploy): Array<PlaitContainer> =>
  deployments(deploy).flatMap(({ file, object }) =>
    (object.spec?.template.spec?.containers ?? []).map((container) => {
      const args = container.args ?? []
      return {
        where: `${file}: Deployment ${object.metadata?.name} container ${container.name}`,
        deployment: object,
        container,
        command: args[0] ?? "",
        flags: splitFlags(args.slice(1))
      }
    })
  )

/** The last value of a flag (the CLI keeps the last one given). */
export const flag = (container: PlaitContainer, name: string): string | undefined =>
  container.flags.findLast(([key]) => key === name)?.[1]

/** `HOST:PORT` (IPv6 in brackets), as the CLI reads it. */
export const parseAddress = (text: string): { host: string; port: number } | undefined => {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(text)
  return match === null ? undefined : { host: match[1] ?? match[2]!, port: Number(match[3]) }
}

/** A duration as the CLI reads it (`500ms`, `25s`, `2m`, `1h`, `0`), in milliseconds. */
export const parseDuration = (text: string): number | undefined => {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (match === null || (match[2] === undefined && Number(match[1]) !== 0)) return undefined
  const units: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
  return Number(match[1]) * units[match[2] ?? "ms"]!
}

/** A size as the CLI reads it (`262144`, `256KiB`, `16MiB`), in bytes. */
export const parseBytes = (text: string | number): number | undefined => {
  if (typeof text === "number") return text
  const match = /^(\d+(?:\.\d+)?)\s*(|b|kib|mib|gib)$/i.exec(text.trim())
  if (match === null) return undefined
  return Number(match[1]) * { "": 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 }[match[2]!.toLowerCase()]!
}

/** A Kubernetes quantity (`192Mi`, `1Gi`, `500M`, `1024`), in bytes. */
export const parseQuantity = (value: string | number | undefined): number | undefined => {
  if (value === undefined) return undefined
  if (typeof value === "number") return value
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(value)
  if (match === null) return undefined
  const units: Record<string, number> = {
    "": 1,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    Ti: 1024 ** 4,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12
  }
  return Number(match[1]) * units[match[2] ?? ""]!
}

const MiB = 1024 ** 2

// ---------------------------------------------------------------------------------------------
// Checks: schema and kustomize

/** The kubernetes-models class of each apiVersion/kind the manifests may use. */
const MODELS: Readonly<Record<string, new (data: never) => { validate(): void }>> = {
  "apps/v1/Deployment": Deployment,
  "v1/Service": Service,
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget
}

/** The TypeScript type of each kind, for the unknown-field check. */
export const MODEL_TYPES: Readonly<Record<string, { readonly module: string; readonly type: string }>> = {
  "apps/v1/Deployment": { module: "kubernetes-models/apps/v1/Deployment", type: "IDeployment" },
  "v1/Service": { module: "kubernetes-models/v1/Service", type: "IService" },
  "v1/ConfigMap": { module: "kubernetes-models/v1/ConfigMap", type: "IConfigMap" },
  "v1/Secret": { module: "kubernetes-models/v1/Secret", type: "ISecret" },
  "policy/v1/PodDisruptionBudget": {
    module: "kubernetes-models/policy/v1/PodDisruptionBudget",
    type: "IPodDisruptionBudget"
  }
}

/** Each object against the Kubernetes OpenAPI schema of its kind (types, formats, required fields). */
export const schemaProblems = (deploy: Deploy): Array<string> =>
  deploy.manifests.flatMap((manifest) => {
    const Model = MODELS[kindOf(manifest)]
    if (Model === undefined) return [`${label(manifest)}: no schema for ${kindOf(manifest)}`]
    try {
      new Model(manifest.object as never).validate()
      return []
    } catch (error) {
      return [`${label(manifest)}: ${error instanceof Error ? error.message : String(error)}`]
    }
  })

/** kustomization.yaml lists exactly the manifests of the folder (but the example Secret), each once. */
export const kustomizationProblems = (deploy: Deploy): Array<string> => {
  const problems: Array<string> = []
  const k = deploy.kustomization
  if (k.apiVersion !== "kustomize.config.k8s.io/v1beta1" || k.kind !== "Kustomization") {
    problems.push("kustomization.yaml: must be apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization")
  }
  const listed = (k.resources as Array<string> | undefined) ?? []
  const expected = deploy.files.filter((file) => file !== "kustomization.yaml" && file !== SECRET_EXAMPLE)
  for (const file of expected) if (!listed.includes(file)) problems.push(`kustomization.yaml: does not list ${file}`)
  for (const file of listed) {
    if (file === SECRET_EXAMPLE) problems.push(`kustomization.yaml: lists ${SECRET_EXAMPLE} (a placeholder token)`)
    else if (!deploy.files.includes(file))
      problems.push(`kustomization.yaml: lists ${file}, which is not in the folder`)
  }
  if (new Set(listed).size !== listed.length) problems.push("kustomization.yaml: lists a file twice")
  const names = new Map<string, string>()
  for (const manifest of deploy.manifests) {
    const key = `${manifest.object.kind}/${(manifest.object.metadata as { name?: string } | undefined)?.name}`
    const other = names.get(key)
    if (other !== undefined) problems.push(`${manifest.file}: ${key} is also defined in ${other}`)
    names.set(key, manifest.file)
  }
  return problems
}

// ---------------------------------------------------------------------------------------------
// Checks: wiring between the objects

const matches = (selector: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>) =>
  selector !== undefined &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([key, value]) => labels[key] === value)

const podLabels = (deployment: IDeployment) => deployment.spec?.template.metadata?.labels ?? {}

/** The container port a probe or Service names (by name or number), or undefined. */
const resolvePort = (container: IContainer, port: string | number | undefined): number | undefined =>
  typeof port === "number"
    ? container.ports?.find((p) => p.containerPort === port)?.containerPort
    : container.ports?.find((p) => p.name === port)?.containerPort

/** The port `--listen` binds and the port `--admin` binds, with their hosts. */
const boundPorts = (container: PlaitContainer) => ({
  listen: parseAddress(flag(container, "--listen") ?? ""),
  admin: parseAddress(flag(container, "--admin") ?? "")
})

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1)$/

/**
 * Every port is the one a flag binds: each containerPort is `--listen`'s or `--admin`'s, on an
 * address the kubelet and the Service can reach; the probes use the admin port; each Service's
 * targetPort is the `--listen` port of the pods it selects; the Prometheus annotation names the
 * admin port; the image EXPOSEs every container port; and the proxy's `--upstream` is the server
 * Service's name and port.
 */
export const portProblems = (deploy: Deploy): Array<string> => {
  const problems: Array<string> = []
  const containers = plaitContainers(deploy)
  for (const c of containers) {
    const { listen, admin } = boundPorts(c)
    if (listen === undefined) problems.push(`${c.where}: no --listen HOST:PORT`)
    if (admin === undefined) problems.push(`${c.where}: no --admin HOST:PORT (the probes need the admin endpoint)`)
    for (const [name, address] of [
      ["--listen", listen],
      ["--admin", admin]
    ] as const) {
      if (address !== undefined && LOOPBACK.test(address.host)) {
        problems.push(`${c.where}: ${name} ${address.host} is loopback: neither the kubelet nor a Service can reach it`)
      }
    }
    const bound = new Map([
      [listen?.port, "--listen"],
      [admin?.port, "--admin"]
    ])
    for (const port of c.container.ports ?? []) {
      if (!bound.has(port.containerPort)) {
        problems.push(
          `${c.where}: containerPort ${port.name ?? ""} ${port.containerPort} is bound by no flag (--listen ${listen?.port}, --admin ${admin?.port})`
        )
      }
    }
    for (const probe of ["readinessProbe", "livenessProbe"] as const) {
      const get = c.container[probe]?.httpGet
      if (get === undefined) continue
      const port = resolvePort(c.container, get.port)
      if (port === undefined || port !== admin?.port) {
        problems.push(`${c.where}: ${probe} port ${get.port} is not the --admin port ${admin?.port}`)
      }
    }
    const annotations = c.deployment.spec?.template.metadata?.annotations ?? {}
    if (annotations["prometheus.io/port"] !== undefined && Number(annotations["prometheus.io/port"]) !== admin?.port) {
      problems.push(
        `${c.where}: prometheus.io/port ${annotations["prometheus.io/port"]} is not the --admin port ${admin?.port}`
      )
    }
  }
  const exposed = new Set(
    DockerfileParser.parse(deploy.dockerfile)
      .getInstructions()
      .filter((instruction) => instruction.getKeyword() === "EXPOSE")
      .flatMap((instruction) => instruction.getArguments().map((arg) => Number(arg.getValue().split("/")[0])))
  )
  for (const c of containers) {
    for (const port of c.container.ports ?? []) {
      if (!exposed.has(port.containerPort))
        problems.push(`${c.where}: containerPort ${port.containerPort} is not EXPOSEd by deploy/Dockerfile`)
    }
  }

  for (const { file, object: service } of services(deploy)) {
    const where = `${file}: Service ${service.metadata?.name}`
    const selected = containers.filter((c) => matches(service.spec?.selector, podLabels(c.deployment)))
    if (selected.length === 0) {
      problems.push(`${where}: its selector matches no Deployment's pods`)
      continue
    }
    for (const c of selected) {
      for (const port of service.spec?.ports ?? []) {
        const target = resolvePort(c.container, port.targetPort ?? port.port)
        const listen = boundPorts(c).listen?.port
        if (target === undefined || target !== listen) {
          problems.push(
            `${where}: targetPort ${port.targetPort ?? port.port} is not the --listen port ${listen} of ${c.where}`
          )
        }
      }
    }
  }

  const servers = services(deploy).filter(({ object }) =>
    containers.some((c) => c.command === "server" && matches(object.spec?.selector, podLabels(c.deployment)))
  )
  for (const c of containers.filter((c) => c.command === "proxy")) {
    const upstream = parseAddress(flag(c, "--upstream") ?? "")
    const service = servers.find(({ object }) => {
      const name = object.metadata?.name ?? ""
      return upstream !== undefined && (upstream.host === name || upstream.host.startsWith(`${name}.`))
    })
    if (upstream === undefined || service === undefined) {
      problems.push(`${c.where}: --upstream ${flag(c, "--upstream")} is not a plait server Service`)
    } else if (!(service.object.spec?.ports ?? []).some((port) => port.port === upstream.port)) {
      problems.push(
        `${c.where}: --upstream port ${upstream.port} is not a port of Service ${service.object.metadata?.name}`
      )
    }
  }
  return problems
}

/**
 * References between objects resolve: `--config` is a file of a mounted ConfigMap key that exists;
 * every secretKeyRef names the Secret and key of the example; every PodDisruptionBudget selects a
 * Deployment and lets at least one pod of it be evicted.
 */
export const referenceProblems = (deploy: Deploy): Array<string> => {
  const problems: Array<string> = []
  for (const c of plaitContainers(deploy)) {
    const config = flag(c, "--config")
    if (config === undefined) {
      problems.push(`${c.where}: no --config (the settings come from the ConfigMap)`)
    } else if (configFileOf(deploy, c) === undefined) {
      problems.push(`${c.where}: --config ${config} is not a key of a mounted ConfigMap`)
    }
    for (const env of c.container.env ?? []) {
      const ref = env.valueFrom?.secretKeyRef
      if (ref === undefined) continue
      const secret = secrets(deploy).find(({ object }) => object.metadata?.name === ref.name)
      if (secret === undefined)
        problems.push(`${c.where}: env ${env.name} refers to Secret ${ref.name}, not the one in ${SECRET_EXAMPLE}`)
      else if (secret.object.stringData?.[ref.key] === undefined && secret.object.data?.[ref.key] === undefined) {
        problems.push(
          `${c.where}: env ${env.name} refers to key ${ref.key} of Secret ${ref.name}, which has no such key`
        )
      }
    }
  }
  for (const { file, object: pdb } of ofKind<{ metadata?: { name?: string }; spec?: Record<string, unknown> }>(
    deploy,
    "PodDisruptionBudget"
  )) {
    const where = `${file}: PodDisruptionBudget ${pdb.metadata?.name}`
    const selector = (pdb.spec?.selector as { matchLabels?: Record<string, string> } | undefined)?.matchLabels
    const target = deployments(deploy).find(({ object }) => matches(selector, podLabels(object)))
    if (target === undefined) {
      problems.push(`${where}: its selector matches no Deployment's pods`)
      continue
    }
    const replicas = target.object.spec?.replicas ?? 1
    const { minAvailable, maxUnavailable } = pdb.spec as { minAvailable?: number; maxUnavailable?: number }
    const evictable = maxUnavailable ?? (minAvailable === undefined ? 1 : replicas - minAvailable)
    if (typeof evictable !== "number" || evictable < 1) {
      problems.push(
        `${where}: lets no pod of ${target.object.metadata?.name} be evicted (${replicas} replicas): node drains would hang`
      )
    }
    if (replicas < 2)
      problems.push(`${where}: ${target.object.metadata?.name} has ${replicas} replica: an eviction is an outage`)
  }
  return problems
}

/** The ConfigMap key mounted at a container's `--config` path, with its text. */
export const configFileOf = (
  deploy: Deploy,
  c: PlaitContainer
): { readonly configMap: string; readonly key: string; readonly text: string } | undefined => {
  const config = flag(c, "--config")
  if (config === undefined) return undefined
  const volumes = c.deployment.spec?.template.spec?.volumes ?? []
  for (const mount of c.container.volumeMounts ?? []) {
    const relative = path.posix.relative(mount.mountPath, config)
    if (relative.startsWith("..") || relative === "") continue
    const source = volumes.find((volume) => volume.name === mount.name)?.configMap
    if (source === undefined) continue
    const key = source.items === undefined ? relative : source.items.find((item) => item.path === relative)?.key
    const map = configMaps(deploy).find(({ object }) => object.metadata?.name === source.name)
    const text = key === undefined ? undefined : map?.object.data?.[key]
    if (key !== undefined && text !== undefined) return { configMap: source.name ?? "", key, text }
  }
  return undefined
}

/** A container's config file, parsed (the CLI test runs the real loader on the same text). */
export const configOf = (deploy: Deploy, c: PlaitContainer): Record<string, unknown> =>
  (Yaml.parse(configFileOf(deploy, c)?.text ?? "") as Record<string, unknown> | null) ?? {}

// ---------------------------------------------------------------------------------------------
// Checks: probes, shutdown, secrets, image, resources

/**
 * Readiness on `/ready` and liveness on `/healthz` of the admin endpoint, as plain httpGet probes:
 * the kubelet sends no credentials, so nothing may set an admin token (`/ready` would answer 401
 * and the pod would never become ready).
 */
export const probeProblems = (deploy: Deploy): Array<string> =>
  plaitContainers(deploy).flatMap((c) => {
    const problems: Array<string> = []
    for (const [probe, wanted] of [
      ["readinessProbe", "/ready"],
      ["livenessProbe", "/healthz"]
    ] as const) {
      const get = c.container[probe]?.httpGet
      if (get === undefined) problems.push(`${c.where}: no ${probe} httpGet ${wanted}`)
      else if (get.path !== wanted) problems.push(`${c.where}: ${probe} asks ${get.path}, not ${wanted}`)
      else if ((get.httpHeaders ?? []).length > 0)
        problems.push(`${c.where}: ${probe} sends headers (a secret in a manifest?)`)
    }
    const adminToken =
      c.flags.some(([name]) => name === "--admin-token") ||
      (c.container.env ?? []).some((env) => env.name === "PLAIT_ADMIN_TOKEN") ||
      "admin-token" in configOf(deploy, c)
    if (adminToken) problems.push(`${c.where}: an admin token is set: the kubelet's /ready probe would get 401`)
    return problems
  })

/** `sleep N` of a preStop hook, in seconds (exec `sleep N` or the native sleep action). */
const preStopSeconds = (container: IContainer): number | undefined => {
  const preStop = container.lifecycle?.preStop as
    | { exec?: { command?: Array<string> }; sleep?: { seconds?: number } }
    | undefined
  if (preStop?.sleep?.seconds !== undefined) return preStop.sleep.seconds
  const command = preStop?.exec?.command ?? []
  const at = command.findIndex((part) => part === "sleep" || part.endsWith("/sleep"))
  return at < 0 ? undefined : Number(command[at + 1])
}

/**
 * Termination lines up with the drain: the grace period covers the preStop sleep, `--drain-timeout`
 * and the CLI's own margin past it (`shutdownGraceMillis`), so plait finishes (or gives up and exits)
 * before the kubelet's SIGKILL.
 */
export const shutdownProblems = (deploy: Deploy, shutdownGraceMillis: number): Array<string> =>
  plaitContainers(deploy).flatMap((c) => {
    const problems: Array<string> = []
    const drain = parseDuration(flag(c, "--drain-timeout") ?? "")
    const sleep = preStopSeconds(c.container)
    const grace = c.deployment.spec?.template.spec?.terminationGracePeriodSeconds ?? 30
    if (drain === undefined)
      problems.push(`${c.where}: no --drain-timeout DURATION next to terminationGracePeriodSeconds`)
    if (sleep === undefined || !Number.isFinite(sleep)) problems.push(`${c.where}: no preStop sleep`)
    if (drain !== undefined && sleep !== undefined) {
      const needed = sleep + (drain + shutdownGraceMillis) / 1000
      if (!(grace > needed)) {
        problems.push(
          `${c.where}: terminationGracePeriodSeconds ${grace} must exceed preStop ${sleep} s + --drain-timeout ${drain / 1000} s + shutdown margin ${shutdownGraceMillis / 1000} s = ${needed} s`
        )
      }
    }
    return problems
  })

const SECRET_NAME = /token|secret|password|key/i

/**
 * The token comes from the Secret only: PLAIT_TOKEN via secretKeyRef, no `--token` argument, no
 * secret-looking literal env value, no token in a ConfigMap, and no Secret among the resources.
 */
export const secretProblems = (deploy: Deploy): Array<string> => {
  const problems: Array<string> = []
  for (const c of plaitContainers(deploy)) {
    if (c.flags.some(([name]) => name === "--token")) problems.push(`${c.where}: --token in args (use the Secret)`)
    const token = (c.container.env ?? []).find((env) => env.name === "PLAIT_TOKEN")
    if (token?.valueFrom?.secretKeyRef === undefined)
      problems.push(`${c.where}: PLAIT_TOKEN does not come from a secretKeyRef`)
    for (const env of c.container.env ?? []) {
      if (env.value !== undefined && SECRET_NAME.test(env.name))
        problems.push(`${c.where}: env ${env.name} has a literal value`)
    }
  }
  for (const { file, object } of configMaps(deploy)) {
    for (const [key, text] of Object.entries(object.data ?? {})) {
      if (SECRET_NAME.test(key)) problems.push(`${file}: ConfigMap ${object.metadata?.name} has a key ${key}`)
      const parsed = Yaml.parse(text) as unknown
      if (parsed !== null && typeof parsed === "object") {
        for (const setting of Object.keys(parsed)) {
          if (/token/i.test(setting))
            problems.push(`${file}: ConfigMap ${object.metadata?.name} ${key} sets ${setting}`)
        }
      }
    }
  }
  for (const manifest of resources(deploy)) {
    if (manifest.object.kind === "Secret") problems.push(`${label(manifest)}: a Secret among the kustomize resources`)
  }
  return problems
}

/** The numeric `uid` of the runtime stage's USER, or undefined when it is missing or not numeric. */
export const dockerfileUser = (dockerfile: string): number | undefined => {
  const instructions = DockerfileParser.parse(dockerfile).getInstructions()
  const lastFrom = instructions.findLastIndex((instruction: Instruction) => instruction.getKeyword() === "FROM")
  const user = instructions.slice(lastFrom).findLast((instruction) => instruction.getKeyword() === "USER")
  const uid = user?.getArgumentsContent()?.split(":")[0]
  return uid !== undefined && /^\d+$/.test(uid) ? Number(uid) : undefined
}

/**
 * Pods run the image of this package's version as the image's non-root user, with no privilege,
 * a read-only root file system and no service account token.
 */
export const podProblems = (deploy: Deploy, version: string): Array<string> =>
  plaitContainers(deploy).flatMap((c) => {
    const problems: Array<string> = []
    const pod = c.deployment.spec?.template.spec
    const image = c.container.image ?? ""
    if (image !== `plait:${version}`) problems.push(`${c.where}: image ${image} is not plait:${version} (package.json)`)
    if (pod?.securityContext?.runAsNonRoot !== true) problems.push(`${c.where}: runAsNonRoot is not set`)
    const uid = dockerfileUser(deploy.dockerfile)
    const runAs = c.container.securityContext?.runAsUser ?? pod?.securityContext?.runAsUser
    if (runAs === undefined || runAs === 0 || runAs !== uid) {
      problems.push(`${c.where}: runAsUser ${runAs} is not the Dockerfile's USER ${uid}`)
    }
    const security = c.container.securityContext
    if (security?.allowPrivilegeEscalation !== false) problems.push(`${c.where}: allowPrivilegeEscalation is not false`)
    if (security?.readOnlyRootFilesystem !== true) problems.push(`${c.where}: readOnlyRootFilesystem is not true`)
    if (!(security?.capabilities?.drop ?? []).includes("ALL")) problems.push(`${c.where}: capabilities are not dropped`)
    if (pod?.automountServiceAccountToken !== false)
      problems.push(`${c.where}: mounts a service account token it never uses`)
    return problems
  })

/** What the bench measured of idle connections on Node (the container's runtime). */
export interface IdleMemory {
  readonly file: string
  /** RSS of a process before the idle row (after the bench's earlier rows), largest of all. */
  readonly baselineBytes: number
  /** RSS added per connection held, largest of the repetitions and of proxy and server. */
  readonly bytesPerConnection: number
}

/** The idle row of the newest bench result that has one for plait-node. */
export const benchIdleMemory = (): IdleMemory => {
  const dir = path.join(root, "bench/results")
  const files = readdirSync(dir)
    .filter((name) => name.endsWith(".jsonl"))
    .sort()
    .reverse()
  for (const name of files) {
    let baseline = 0
    let perConnection = 0
    for (const line of readFileSync(path.join(dir, name), "utf8").split("\n")) {
      if (line.trim() === "") continue
      const row = JSON.parse(line) as {
        workload?: string
        system?: string
        params?: { connections?: number }
        memory?: Record<string, { rssBefore: number; rssHeld: number }>
      }
      if (row.workload !== "idle" || row.system !== "plait-node" || row.memory === undefined) continue
      for (const role of ["proxy", "server"]) {
        const memory = row.memory[role]
        if (memory === undefined || row.params?.connections === undefined) continue
        baseline = Math.max(baseline, memory.rssBefore)
        perConnection = Math.max(perConnection, (memory.rssHeld - memory.rssBefore) / row.params.connections)
      }
    }
    if (perConnection > 0) return { file: name, baselineBytes: baseline, bytesPerConnection: perConnection }
  }
  throw new Error("no bench result with an idle row for plait-node in bench/results")
}

/**
 * Memory requests cover the bench's measured idle memory at the planned connection count (a
 * proxy: `max-clients`; a server: its share of all proxies' clients), and limits add what the links
 * may buffer (`max-session-buffer` per link: one link per proxy, `max-sessions` links per server).
 */
export const resourceProblems = (deploy: Deploy, idle: IdleMemory): Array<string> => {
  const containers = plaitContainers(deploy)
  const proxies = containers.filter((c) => c.command === "proxy")
  const servers = containers.filter((c) => c.command === "server")
  const clientsOf = (c: PlaitContainer) => Number(configOf(deploy, c)["max-clients"] ?? 10_000)
  const totalClients = proxies.reduce((sum, c) => sum + (c.deployment.spec?.replicas ?? 1) * clientsOf(c), 0)
  const serverReplicas = servers.reduce((sum, c) => sum + (c.deployment.spec?.replicas ?? 1), 0)
  return containers.flatMap((c) => {
    const problems: Array<string> = []
    const config = configOf(deploy, c)
    const connections = c.command === "proxy" ? clientsOf(c) : Math.ceil(totalClients / Math.max(1, serverReplicas))
    const links = c.command === "proxy" ? 1 : Number(config["max-sessions"] ?? 64)
    const buffer = parseBytes((config["max-session-buffer"] as string | number | undefined) ?? "64MiB") ?? Number.NaN
    const request = parseQuantity(c.container.resources?.requests?.memory)
    const limit = parseQuantity(c.container.resources?.limits?.memory)
    const needed = idle.baselineBytes + connections * idle.bytesPerConnection
    const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`
    if (request === undefined || request < needed) {
      problems.push(
        `${c.where}: memory request ${c.container.resources?.requests?.memory} is below ${mib(idle.baselineBytes)} + ${connections} connections × ${(idle.bytesPerConnection / 1024).toFixed(2)} KiB = ${mib(needed)} (${idle.file})`
      )
    }
    if (request !== undefined && (limit === undefined || limit < request + links * buffer)) {
      problems.push(
        `${c.where}: memory limit ${c.container.resources?.limits?.memory} is below the request + ${links} link(s) × max-session-buffer ${mib(buffer)} = ${mib(request + links * buffer)}`
      )
    }
    if (c.container.resources?.requests?.cpu === undefined) problems.push(`${c.where}: no CPU request`)
    return problems
  })
}

// ---------------------------------------------------------------------------------------------
// Check: no unknown field

/**
 * Fields the Kubernetes types do not have. The JSON schema check above ignores them (the API's
 * OpenAPI schemas allow additional properties), yet a misspelt `readinesProbe` would silently drop
 * the probe. Each object is written as a literal of its kubernetes-models type and TypeScript's
 * excess-property check, run by the repository's own compiler, names every unknown field.
 */
export const unknownFieldProblems = (deploy: Deploy): Array<string> => {
  // Under node_modules so that the types resolve from the repository's own node_modules.
  mkdirSync(path.join(root, "node_modules/.cache"), { recursive: true })
  const dir = mkdtempSync(path.join(root, "node_modules/.cache/plait-deploy-"))
  try {
    const typed = deploy.manifests.filter((manifest) => MODEL_TYPES[kindOf(manifest)] !== undefined)
    const imports = [...new Set(typed.map((manifest) => MODEL_TYPES[kindOf(manifest)]!))]
    // One field per line, remembering which manifest and field each line is, to name the field.
    const lines = imports.map(({ module, type }) => `import type { ${type} } from "${module}"`)
    const origin: Array<{ manifest: Manifest; field: string } | undefined> = lines.map(() => undefined)
    for (const [i, manifest] of typed.entries()) {
      const emit = (text: string, field: string) => {
        lines.push(text)
        origin.push({ manifest, field })
      }
      const write = (value: unknown, field: string, prefix: string, suffix: string, indent: string) => {
        if (value !== null && typeof value === "object") {
          const entries = Array.isArray(value)
            ? value.map((item, at) => [`${field}[${at}]`, "", item] as const)
            : Object.entries(value).map(([key, item]) => [`${field}.${key}`, `${JSON.stringify(key)}: `, item] as const)
          emit(`${indent}${prefix}${Array.isArray(value) ? "[" : "{"}`, field)
          for (const [j, [path, key, item]] of entries.entries()) {
            write(item, path, key, j < entries.length - 1 ? "," : "", `${indent}  `)
          }
          emit(`${indent}${Array.isArray(value) ? "]" : "}"}${suffix}`, field)
        } else {
          emit(`${indent}${prefix}${JSON.stringify(value)}${suffix}`, field)
        }
      }
      write(manifest.object, "", `export const m${i}: ${MODEL_TYPES[kindOf(manifest)]!.type} = `, "", "")
    }
    writeFileSync(path.join(dir, "manifests.ts"), `${lines.join("\n")}\n`)
    writeFileSync(
      path.join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: "es2023",
          lib: ["es2023"],
          module: "preserve",
          moduleResolution: "bundler",
          skipLibCheck: true,
          types: []
        },
        files: ["manifests.ts"]
      })
    )
    const tsc = path.join(path.dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin/tsc")
    const result = spawnSync(process.execPath, [tsc, "-p", path.join(dir, "tsconfig.json"), "--pretty", "false"], {
      encoding: "utf8",
      timeout: 60_000
    })
    if (result.status === 0) return []
    const problems = result.stdout
      .split("\n")
      .map((line) => /manifests\.ts\((\d+),\d+\): error TS\d+: (.*)$/.exec(line))
      .flatMap((match) => {
        if (match === null) return []
        const at = origin[Number(match[1]) - 1]
        const message = match[2]!.replaceAll(/'"([^"']*)"'/g, "'$1'")
        return [at === undefined ? message : `${label(at.manifest)}: ${at.field.slice(1)}: ${message}`]
      })
    return problems.length > 0 ? problems : [`tsc failed: ${result.stdout}${result.stderr}${result.error ?? ""}`]
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
