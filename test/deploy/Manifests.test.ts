/**
 * The Kubernetes manifests (deploy/kubernetes) against the Kubernetes schemas, against each other
 * and against the numbers they are derived from. Each check runs on the real files (no problem) and
 * on a copy with one drift (exactly that drift is reported). The same manifests are run against the
 * real CLI in Cli.test.ts.
 */
import { readFileSync } from "node:fs"
import * as path from "node:path"
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment"
import type { IService } from "kubernetes-models/v1/Service"
import { describe, expect, it } from "vitest"
import { SHUTDOWN_GRACE_MILLIS } from "../../src/cli/Main.ts"
import {
  benchIdleMemory,
  copy,
  type Deploy,
  kubernetesDir,
  kustomizationProblems,
  loadDeploy,
  parseFiles,
  plaitContainers,
  podProblems,
  portProblems,
  probeProblems,
  readFolder,
  referenceProblems,
  resourceProblems,
  root,
  schemaProblems,
  secretProblems,
  shutdownProblems,
  unknownFieldProblems
} from "./manifests.ts"

const version = (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }).version
const deploy = loadDeploy()

const find = <A>(d: Deploy, kind: string, name: string): A => {
  const manifest = d.manifests.find(
    (m) => m.object.kind === kind && (m.object.metadata as { name?: string } | undefined)?.name === name
  )
  if (manifest === undefined) throw new Error(`no ${kind} ${name}`)
  return manifest.object as A
}
const container = (d: Deploy, name: string) =>
  find<IDeployment>(d, "Deployment", name).spec!.template.spec!.containers[0]!
const setFlag = (d: Deploy, deployment: string, name: string, value: string) => {
  const args = container(d, deployment).args!
  args[args.indexOf(name) + 1] = value
}

/** Every problem the checks find, for the tests of one drift. */
const allProblems = (d: Deploy): Array<string> => [
  ...schemaProblems(d),
  ...kustomizationProblems(d),
  ...portProblems(d),
  ...referenceProblems(d),
  ...probeProblems(d),
  ...shutdownProblems(d, SHUTDOWN_GRACE_MILLIS),
  ...secretProblems(d),
  ...podProblems(d, version),
  ...resourceProblems(d, benchIdleMemory())
]

describe("deploy/kubernetes", () => {
  it("holds a server and a proxy Deployment, their Services, two PodDisruptionBudgets and the ConfigMap", () => {
    const kinds = deploy.manifests.map((m) => `${m.object.kind}/${(m.object.metadata as { name: string }).name}`)
    expect(kinds.sort()).toEqual(
      [
        "ConfigMap/plait-config",
        "Deployment/plait-proxy",
        "Deployment/plait-server",
        "PodDisruptionBudget/plait-proxy",
        "PodDisruptionBudget/plait-server",
        "Secret/plait-token",
        "Service/plait-proxy",
        "Service/plait-server"
      ].sort()
    )
    expect(
      plaitContainers(deploy)
        .map((c) => c.command)
        .sort()
    ).toEqual(["proxy", "server"])
  })

  it("every file parses, the same under YAML 1.1 (Kubernetes) and 1.2, without duplicate keys", () => {
    expect(parseFiles(readFolder(kubernetesDir)).problems).toEqual([])
    const files = new Map([["x.yaml", "a: 1\na: 2\n"]])
    expect(parseFiles(files).problems.join("\n")).toMatch(/x\.yaml: .*unique/i)
    const legacy = new Map([["y.yaml", "apiVersion: v1\nkind: ConfigMap\ndata:\n  enabled: on\n"]])
    expect(parseFiles(legacy).problems).toEqual([
      "y.yaml: document 1 reads differently under YAML 1.1 (Kubernetes) and 1.2: quote its strings"
    ])
  })

  it("every object validates against the Kubernetes schema of its kind", () => {
    expect(schemaProblems(deploy)).toEqual([])
    const drift = copy(deploy)
    ;(container(drift, "plait-server").ports![0] as { containerPort: unknown }).containerPort = "7001"
    expect(schemaProblems(drift)).toEqual([
      "server-deployment.yaml: Deployment plait-server: data/spec/template/spec/containers/0/ports/0/containerPort must be integer"
    ])
    const unknown = copy(deploy)
    unknown.manifests[0]!.object.kind = "Deploymnet"
    expect(schemaProblems(unknown)[0]).toMatch(/no schema for v1\/Deploymnet/)
  })

  it("no object has a field its Kubernetes type does not know", () => {
    expect(unknownFieldProblems(deploy)).toEqual([])
    const drift = copy(deploy)
    const c = container(drift, "plait-proxy") as unknown as Record<string, unknown>
    c.readinesProbe = c.readinessProbe
    delete c.readinessProbe
    const problems = unknownFieldProblems(drift)
    expect(problems).toHaveLength(1)
    expect(problems[0]).toBe(
      "proxy-deployment.yaml: Deployment plait-proxy: spec.template.spec.containers[0].readinesProbe: Object literal may only specify known properties, and 'readinesProbe' does not exist in type 'IContainer'."
    )
  })

  it("kustomization.yaml lists exactly the manifests of the folder, but the example Secret", () => {
    expect(kustomizationProblems(deploy)).toEqual([])
    const missing = copy(deploy)
    ;(missing.kustomization.resources as Array<string>).splice(0, 1)
    expect(kustomizationProblems(missing)).toEqual(["kustomization.yaml: does not list configmap.yaml"])
    const extra = copy(deploy)
    ;(extra.kustomization.resources as Array<string>).push("secret.example.yaml", "ingress.yaml")
    expect(kustomizationProblems(extra)).toEqual([
      "kustomization.yaml: lists secret.example.yaml (a placeholder token)",
      "kustomization.yaml: lists ingress.yaml, which is not in the folder"
    ])
  })

  it("every port is the one a flag binds, and the proxy's upstream is the server Service", () => {
    expect(portProblems(deploy)).toEqual([])
    const containerPort = copy(deploy)
    container(containerPort, "plait-server").ports![0]!.containerPort = 7002
    expect(portProblems(containerPort)).toEqual([
      "server-deployment.yaml: Deployment plait-server container server: containerPort link 7002 is bound by no flag (--listen 7001, --admin 9090)",
      "server-deployment.yaml: Deployment plait-server container server: containerPort 7002 is not EXPOSEd by deploy/Dockerfile",
      "server-service.yaml: Service plait-server: targetPort link is not the --listen port 7001 of server-deployment.yaml: Deployment plait-server container server"
    ])
    const admin = copy(deploy)
    setFlag(admin, "plait-proxy", "--admin", "0.0.0.0:9091")
    expect(portProblems(admin)).toEqual([
      "proxy-deployment.yaml: Deployment plait-proxy container proxy: containerPort admin 9090 is bound by no flag (--listen 7000, --admin 9091)",
      "proxy-deployment.yaml: Deployment plait-proxy container proxy: readinessProbe port admin is not the --admin port 9091",
      "proxy-deployment.yaml: Deployment plait-proxy container proxy: livenessProbe port admin is not the --admin port 9091",
      "proxy-deployment.yaml: Deployment plait-proxy container proxy: prometheus.io/port 9090 is not the --admin port 9091"
    ])
    const loopback = copy(deploy)
    setFlag(loopback, "plait-server", "--admin", "127.0.0.1:9090")
    expect(portProblems(loopback)).toEqual([
      "server-deployment.yaml: Deployment plait-server container server: --admin 127.0.0.1 is loopback: neither the kubelet nor a Service can reach it"
    ])
    const target = copy(deploy)
    find<IService>(target, "Service", "plait-proxy").spec!.ports![0]!.targetPort = 7001
    expect(portProblems(target)).toEqual([
      "proxy-service.yaml: Service plait-proxy: targetPort 7001 is not the --listen port 7000 of proxy-deployment.yaml: Deployment plait-proxy container proxy"
    ])
    const upstream = copy(deploy)
    setFlag(upstream, "plait-proxy", "--upstream", "plait-server:7000")
    expect(portProblems(upstream)).toEqual([
      "proxy-deployment.yaml: Deployment plait-proxy container proxy: --upstream port 7000 is not a port of Service plait-server"
    ])
    const selector = copy(deploy)
    find<IService>(selector, "Service", "plait-server").spec!.selector!["app.kubernetes.io/component"] = "backend"
    expect(portProblems(selector)).toEqual([
      "server-service.yaml: Service plait-server: its selector matches no Deployment's pods",
      "proxy-deployment.yaml: Deployment plait-proxy container proxy: --upstream plait-server:7001 is not a plait server Service"
    ])
  })

  it("--config is a mounted ConfigMap key, the token a key of the Secret, and each PodDisruptionBudget lets a pod go", () => {
    expect(referenceProblems(deploy)).toEqual([])
    const config = copy(deploy)
    setFlag(config, "plait-server", "--config", "/etc/plait/server.yaml")
    expect(referenceProblems(config)).toEqual([
      "server-deployment.yaml: Deployment plait-server container server: --config /etc/plait/server.yaml is not a key of a mounted ConfigMap"
    ])
    const key = copy(deploy)
    container(key, "plait-proxy").env![0]!.valueFrom!.secretKeyRef!.key = "password"
    expect(referenceProblems(key)).toEqual([
      "proxy-deployment.yaml: Deployment plait-proxy container proxy: env PLAIT_TOKEN refers to key password of Secret plait-token, which has no such key"
    ])
    const pdb = copy(deploy)
    const budget = find<{ spec: Record<string, unknown> }>(pdb, "PodDisruptionBudget", "plait-server")
    delete budget.spec.maxUnavailable
    budget.spec.minAvailable = 2
    expect(referenceProblems(pdb)).toEqual([
      "pdb.yaml: PodDisruptionBudget plait-server: lets no pod of plait-server be evicted (2 replicas): node drains would hang"
    ])
  })

  it("readiness asks /ready and liveness /healthz of the admin endpoint, which has no token", () => {
    expect(probeProblems(deploy)).toEqual([])
    const path = copy(deploy)
    container(path, "plait-server").livenessProbe!.httpGet!.path = "/ready"
    expect(probeProblems(path)).toEqual([
      "server-deployment.yaml: Deployment plait-server container server: livenessProbe asks /ready, not /healthz"
    ])
    const token = copy(deploy)
    container(token, "plait-proxy").env!.push({
      name: "PLAIT_ADMIN_TOKEN",
      valueFrom: { secretKeyRef: { name: "plait-token", key: "token" } }
    })
    expect(probeProblems(token)).toEqual([
      "proxy-deployment.yaml: Deployment plait-proxy container proxy: an admin token is set: the kubelet's /ready probe would get 401"
    ])
  })

  it(`the grace period covers preStop + --drain-timeout + the CLI's ${SHUTDOWN_GRACE_MILLIS} ms shutdown margin`, () => {
    expect(shutdownProblems(deploy, SHUTDOWN_GRACE_MILLIS)).toEqual([])
    const drain = copy(deploy)
    setFlag(drain, "plait-server", "--drain-timeout", "40s")
    expect(shutdownProblems(drain, SHUTDOWN_GRACE_MILLIS)).toEqual([
      "server-deployment.yaml: Deployment plait-server container server: terminationGracePeriodSeconds 45 must exceed preStop 5 s + --drain-timeout 40 s + shutdown margin 10 s = 55 s"
    ])
    const grace = copy(deploy)
    find<IDeployment>(grace, "Deployment", "plait-proxy").spec!.template.spec!.terminationGracePeriodSeconds = 40
    expect(shutdownProblems(grace, SHUTDOWN_GRACE_MILLIS)).toEqual([
      "proxy-deployment.yaml: Deployment plait-proxy container proxy: terminationGracePeriodSeconds 40 must exceed preStop 5 s + --drain-timeout 25 s + shutdown margin 10 s = 40 s"
    ])
  })

  it("the token comes from the Secret only, never from a literal, an argument or the ConfigMap", () => {
    expect(secretProblems(deploy)).toEqual([])
    const literal = copy(deploy)
    container(literal, "plait-server").env![0] = { name: "PLAIT_TOKEN", value: "hunter2hunter2hunter2" }
    expect(secretProblems(literal)).toEqual([
      "server-deployment.yaml: Deployment plait-server container server: PLAIT_TOKEN does not come from a secretKeyRef",
      "server-deployment.yaml: Deployment plait-server container server: env PLAIT_TOKEN has a literal value"
    ])
    const configMap = copy(deploy)
    const data = find<{ data: Record<string, string> }>(configMap, "ConfigMap", "plait-config").data
    data["proxy.yaml"] = `${data["proxy.yaml"]}token: hunter2hunter2hunter2\n`
    expect(secretProblems(configMap)).toEqual(["configmap.yaml: ConfigMap plait-config proxy.yaml sets token"])
  })

  it("pods run this version's image as the Dockerfile's non-root user, without privileges", () => {
    expect(podProblems(deploy, version)).toEqual([])
    const drift = copy(deploy)
    find<IDeployment>(drift, "Deployment", "plait-server").spec!.template.spec!.securityContext!.runAsUser = 0
    container(drift, "plait-server").image = "plait:latest"
    expect(podProblems(drift, version)).toEqual([
      `server-deployment.yaml: Deployment plait-server container server: image plait:latest is not plait:${version} (package.json)`,
      "server-deployment.yaml: Deployment plait-server container server: runAsUser 0 is not the Dockerfile's USER 1000"
    ])
  })

  it("memory requests cover the bench's idle memory per connection, limits the link buffers", () => {
    const idle = benchIdleMemory()
    // The figures the comments in the Deployments state (bench/results/2026-11-26.jsonl, or newer).
    expect(idle.bytesPerConnection / 1024).toBeGreaterThan(1)
    expect(idle.bytesPerConnection / 1024).toBeLessThan(64)
    expect(resourceProblems(deploy, idle)).toEqual([])
    const request = copy(deploy)
    container(request, "plait-proxy").resources!.requests!.memory = "128Mi"
    expect(resourceProblems(request, idle)).toEqual([
      expect.stringMatching(
        /^proxy-deployment\.yaml: Deployment plait-proxy container proxy: memory request 128Mi is below [\d.]+ MiB \+ 10000 connections × [\d.]+ KiB = [\d.]+ MiB \(.*\.jsonl\)$/
      )
    ])
    const sessions = copy(deploy)
    const data = find<{ data: Record<string, string> }>(sessions, "ConfigMap", "plait-config").data
    data["server.yaml"] = data["server.yaml"]!.replace("max-sessions: 16", "max-sessions: 64")
    expect(resourceProblems(sessions, idle)).toEqual([
      "server-deployment.yaml: Deployment plait-server container server: memory limit 512Mi is below the request + 64 link(s) × max-session-buffer 16.0 MiB = 1216.0 MiB"
    ])
  })

  it("every check passes on the real files", () => {
    expect(allProblems(deploy)).toEqual([])
  })
})
