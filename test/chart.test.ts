// The Helm chart (deploy/helm/esan) and the manifests of examples/: `helm lint` and `helm template` pass, the chart
// renders the objects the driver needs with the RBAC each component needs and no more, and every example parses,
// names esan.csi.dev or a class the chart creates, and matches the chart's class of the same name.
// helm comes from the Kubernetes tools build named in .esan/e2e-tools.env; without it every test here fails with a
// sentence saying so (never a skip: CI has the tools). helm also serves as the YAML parser (its `fromYaml`), so the
// test parses manifests exactly as Kubernetes tooling does, without a YAML dependency.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { groupSnapshotParameters, snapshotParameters, volumeParameters } from "../src/csi/parameters.ts";
import { parseEnvFile, PROJECT_ROOT, toolsEnvFile } from "../src/cluster/tools.ts";

const DRIVER = "esan.csi.dev";
const CHART_DIR = path.join(PROJECT_ROOT, "deploy", "helm", "esan");
const EXAMPLES_DIR = path.join(PROJECT_ROOT, "examples");
const RELEASE = "esan";
const NAMESPACE = "esan-system";
const SMS_API = "cbt.storage.k8s.io/v1beta1/SnapshotMetadataService";
const CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBdGVzdA==\n-----END CERTIFICATE-----\n";

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}

interface Binding extends KubeObject {
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

let work: string;
let helmBinary: string | undefined;
let helmProblem: Error | undefined;

/** The helm binary of the tools build; throws a sentence when the build has not run. */
function findHelm(): string {
  const envFile = toolsEnvFile();
  if (!fs.existsSync(envFile)) {
    throw new Error(`The chart test needs helm from the Kubernetes tools build, but ${envFile} does not exist: run \`bash scripts/setup\` (it builds the tools and writes that file).`);
  }
  const binDir = parseEnvFile(fs.readFileSync(envFile, "utf8")).get("BIN_DIR") ?? "";
  const helm = path.join(binDir, "helm");
  try {
    fs.accessSync(helm, fs.constants.X_OK);
  } catch (error) {
    throw new Error(`The chart test needs helm, but ${envFile} names BIN_DIR=${binDir || "(unset)"} and ${helm} is not an executable: run \`bash scripts/setup\` to rebuild the tools.`, { cause: error });
  }
  return helm;
}

/** Runs helm with its own config and cache homes (it writes nothing under ~); returns status, stdout and stderr. */
function runHelm(args: string[]): { status: number; stdout: string; stderr: string } {
  if (helmBinary === undefined) throw helmProblem ?? new Error("helm was not looked up before the tests ran.");
  const home = path.join(work, "helm-home");
  const result = spawnSync(helmBinary, args, {
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "", HOME: home, HELM_CACHE_HOME: path.join(home, "cache"), HELM_CONFIG_HOME: path.join(home, "config"), HELM_DATA_HOME: path.join(home, "data") },
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw new Error(`Cannot run ${helmBinary}: ${result.error.message}`, { cause: result.error });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

function helm(args: string[]): string {
  const result = runHelm(args);
  if (result.status !== 0) throw new Error(`\`helm ${args.join(" ")}\` exited with ${result.status}: ${result.stderr.trim() || result.stdout.trim()}`);
  return result.stdout;
}

/**
 * Parses YAML documents with helm's own parser: each document goes into a scratch chart whose one template emits them
 * all as JSON. A document that does not parse comes back as `{Error: …}`, which this turns into a thrown sentence.
 */
function parseYaml(documents: { source: string; text: string }[]): KubeObject[] {
  const chart = fs.mkdtempSync(path.join(work, "yaml-"));
  fs.mkdirSync(path.join(chart, "templates"));
  fs.mkdirSync(path.join(chart, "docs"));
  fs.writeFileSync(path.join(chart, "Chart.yaml"), "apiVersion: v2\nname: yaml-to-json\nversion: 0.0.0\n");
  fs.writeFileSync(
    path.join(chart, "templates", "json.yaml"),
    [
      "{{- $docs := list }}",
      '{{- range $path, $_ := .Files.Glob "docs/*.yaml" }}',
      "{{- $docs = append $docs ($.Files.Get $path | fromYaml) }}",
      "{{- end }}",
      "apiVersion: v1",
      "kind: List",
      "items: {{ toJson $docs }}",
      "",
    ].join("\n"),
  );
  documents.forEach((document, index) => fs.writeFileSync(path.join(chart, "docs", `${String(index).padStart(4, "0")}.yaml`), document.text));
  const output = helm(["template", "yaml-to-json", chart]);
  const line = output.split("\n").find((l) => l.startsWith("items: "));
  if (line === undefined) throw new Error(`The YAML-to-JSON chart printed no items line: ${output}`);
  const parsed = JSON.parse(line.slice("items: ".length)) as (KubeObject & { Error?: string })[];
  parsed.forEach((object, index) => {
    if (object.Error !== undefined) throw new Error(`${documents[index]?.source ?? `document ${index}`} is not valid YAML: ${object.Error}`);
  });
  return parsed;
}

/** `helm template` of the chart, parsed; empty documents are dropped. */
function render(args: string[] = []): KubeObject[] {
  const output = helm(["template", RELEASE, CHART_DIR, "--namespace", NAMESPACE, ...args]);
  const documents = output
    .split(/^---$/m)
    .filter((text) => text.split("\n").some((line) => line.trim() !== "" && !line.trim().startsWith("#")))
    .map((text, index) => ({ source: `rendered document ${index} (${/# Source: (.*)/.exec(text)?.[1] ?? "?"})`, text }));
  return parseYaml(documents);
}

const key = (object: KubeObject) => `${object.kind}/${object.metadata.namespace ? `${object.metadata.namespace}/` : ""}${object.metadata.name}`;
const find = (objects: KubeObject[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);

/** Whether `rules` let a subject do `verb` on `group`/`resource` (optionally one named object). */
function allows(rules: PolicyRule[], group: string, resource: string, verb: string, name?: string): boolean {
  return rules.some(
    (rule) =>
      (rule.apiGroups ?? []).includes(group) &&
      (rule.resources ?? []).includes(resource) &&
      rule.verbs.includes(verb) &&
      (rule.resourceNames === undefined || rule.resourceNames.length === 0 || (name !== undefined && rule.resourceNames.includes(name))),
  );
}

/** Every rule that reaches `account` through the rendered bindings, split into cluster-wide and namespaced. */
function rulesOf(objects: KubeObject[], account: string): { cluster: PolicyRule[]; namespaced: PolicyRule[] } {
  const bound = (objects.filter((o) => o.kind === "ClusterRoleBinding" || o.kind === "RoleBinding") as Binding[]).filter((b) =>
    (b.subjects ?? []).some((s) => s.kind === "ServiceAccount" && s.name === account && s.namespace === NAMESPACE),
  );
  const result = { cluster: [] as PolicyRule[], namespaced: [] as PolicyRule[] };
  for (const binding of bound) {
    const role = find(objects, binding.roleRef.kind, binding.roleRef.name);
    if (role === undefined) throw new Error(`${key(binding)} refers to ${binding.roleRef.kind} ${binding.roleRef.name}, which the chart does not render.`);
    (binding.kind === "ClusterRoleBinding" ? result.cluster : result.namespaced).push(...(role.rules as PolicyRule[]));
  }
  return result;
}

/** A value made on first use. When making it throws, every test that needs it fails with that error. */
function once<T>(make: () => T): () => T {
  let made: { value: T } | undefined;
  return () => (made ??= { value: make() }).value;
}

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "esan-chart-test-"));
  // A missing helm fails each test with the sentence, rather than failing this hook, which vitest reports as skips.
  try {
    helmBinary = findHelm();
  } catch (error) {
    helmProblem = error as Error;
  }
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe("the Helm chart", () => {
  const rendered = once(() => render());

  it("passes helm lint --strict", () => {
    const output = helm(["lint", CHART_DIR, "--strict", "--namespace", NAMESPACE]);
    expect(output).toContain("0 chart(s) failed");
  });

  it("renders exactly the driver object, the accounts, their RBAC and the classes, and no workload", () => {
    expect(rendered().map(key).sort()).toEqual(
      [
        `CSIDriver/${DRIVER}`,
        `ServiceAccount/${NAMESPACE}/esan-controller`,
        `ServiceAccount/${NAMESPACE}/esan-node`,
        `ServiceAccount/${NAMESPACE}/esan-snapshot-controller`,
        "ClusterRole/esan-external-provisioner",
        "ClusterRole/esan-external-attacher",
        "ClusterRole/esan-external-resizer",
        "ClusterRole/esan-external-snapshotter",
        "ClusterRole/esan-external-snapshot-metadata",
        "ClusterRole/esan-snapshot-metadata-client",
        "ClusterRole/esan-snapshot-controller",
        "ClusterRoleBinding/esan-external-provisioner",
        "ClusterRoleBinding/esan-external-attacher",
        "ClusterRoleBinding/esan-external-resizer",
        "ClusterRoleBinding/esan-external-snapshotter",
        "ClusterRoleBinding/esan-external-snapshot-metadata",
        "ClusterRoleBinding/esan-snapshot-controller",
        `Role/${NAMESPACE}/esan-controller-leader-election`,
        `Role/${NAMESPACE}/esan-snapshot-controller-leader-election`,
        `RoleBinding/${NAMESPACE}/esan-controller-leader-election`,
        `RoleBinding/${NAMESPACE}/esan-snapshot-controller-leader-election`,
        "StorageClass/esan",
        "VolumeSnapshotClass/esan-instant",
        "VolumeSnapshotClass/esan-durable",
        "VolumeGroupSnapshotClass/esan-group",
      ].sort(),
    );
    for (const object of rendered()) {
      expect(object.metadata.labels?.["app.kubernetes.io/part-of"], key(object)).toBe("esan");
    }
  });

  it("declares the CSIDriver kubelet needs: attach required, no pod info, persistent volumes, fsGroup by file", () => {
    const driver = find(rendered(), "CSIDriver", DRIVER);
    expect(driver?.apiVersion).toBe("storage.k8s.io/v1");
    expect(driver?.spec).toEqual({
      attachRequired: true,
      podInfoOnMount: false,
      volumeLifecycleModes: ["Persistent"],
      fsGroupPolicy: "File",
      storageCapacity: false,
      requiresRepublish: false,
    });
  });

  it("binds every ServiceAccount that holds a token, and gives the node plugin's none", () => {
    const accounts = rendered().filter((o) => o.kind === "ServiceAccount");
    const bindings = rendered().filter((o) => o.kind === "ClusterRoleBinding" || o.kind === "RoleBinding") as Binding[];
    const boundNames = new Set(bindings.flatMap((b) => (b.subjects ?? []).map((s) => `${s.namespace}/${s.name}`)));
    for (const account of accounts) {
      const name = `${account.metadata.namespace}/${account.metadata.name}`;
      if (account.automountServiceAccountToken === false) {
        expect(boundNames.has(name), `${name} mounts no token, so nothing should be bound to it`).toBe(false);
      } else {
        expect(boundNames.has(name), `${name} is not bound to any role`).toBe(true);
      }
    }
    expect(find(rendered(), "ServiceAccount", "esan-node")?.automountServiceAccountToken).toBe(false);
    // Every subject is an account the chart creates, and every roleRef a role it renders.
    for (const binding of bindings) {
      for (const subject of binding.subjects ?? []) {
        expect(accounts.some((a) => a.metadata.name === subject.name && a.metadata.namespace === subject.namespace), `${key(binding)} binds ${subject.name}`).toBe(true);
      }
      expect(find(rendered(), binding.roleRef.kind, binding.roleRef.name), `${key(binding)} refers to ${binding.roleRef.name}`).toBeDefined();
    }
  });

  // What each sidecar calls at its pinned version (read from its source and deploy/kubernetes/rbac.yaml).
  const CONTROLLER_NEEDS: [string, string, string, string, string?][] = [
    ["csi-provisioner", "", "persistentvolumes", "create"],
    ["csi-provisioner", "", "persistentvolumes", "delete"],
    ["csi-provisioner", "", "persistentvolumeclaims", "update"],
    ["csi-provisioner", "storage.k8s.io", "storageclasses", "watch"],
    ["csi-provisioner", "snapshot.storage.k8s.io", "volumesnapshots", "update"],
    ["csi-provisioner", "snapshot.storage.k8s.io", "volumesnapshotcontents", "get"],
    ["csi-provisioner", "storage.k8s.io", "volumeattachments", "watch"],
    ["csi-provisioner", "storage.k8s.io", "csinodes", "list"],
    ["csi-provisioner", "", "nodes", "list"],
    ["csi-provisioner", "", "events", "create"],
    ["csi-attacher", "storage.k8s.io", "volumeattachments", "patch"],
    ["csi-attacher", "storage.k8s.io", "volumeattachments/status", "patch"],
    ["csi-attacher", "", "persistentvolumes", "patch"],
    ["csi-resizer", "", "persistentvolumeclaims/status", "patch"],
    ["csi-resizer", "", "pods", "watch"],
    ["csi-snapshotter", "snapshot.storage.k8s.io", "volumesnapshotclasses", "watch"],
    ["csi-snapshotter", "snapshot.storage.k8s.io", "volumesnapshotcontents/status", "update"],
    ["csi-snapshotter", "groupsnapshot.storage.k8s.io", "volumegroupsnapshotclasses", "list"],
    ["csi-snapshotter", "groupsnapshot.storage.k8s.io", "volumegroupsnapshotcontents", "patch"],
    ["csi-snapshotter", "groupsnapshot.storage.k8s.io", "volumegroupsnapshotcontents/status", "patch"],
    ["csi-snapshot-metadata", "authentication.k8s.io", "tokenreviews", "create"],
    ["csi-snapshot-metadata", "authorization.k8s.io", "subjectaccessreviews", "create"],
    ["csi-snapshot-metadata", "cbt.storage.k8s.io", "snapshotmetadataservices", "get", DRIVER],
    ["csi-snapshot-metadata", "snapshot.storage.k8s.io", "volumesnapshotclasses", "list"],
  ];

  it.each(CONTROLLER_NEEDS)("lets the controller account's %s %s/%s %s", (_sidecar, group, resource, verb, name) => {
    expect(allows(rulesOf(rendered(), "esan-controller").cluster, group, resource, verb, name)).toBe(true);
  });

  it("gives the controller account leases in its namespace only, and no secrets, wildcards or other drivers' metadata", () => {
    const { cluster, namespaced } = rulesOf(rendered(), "esan-controller");
    for (const verb of ["get", "create", "update"]) expect(allows(namespaced, "coordination.k8s.io", "leases", verb)).toBe(true);
    expect(allows(cluster, "coordination.k8s.io", "leases", "create")).toBe(false);
    for (const verb of ["get", "list", "watch"]) expect(allows([...cluster, ...namespaced], "", "secrets", verb)).toBe(false);
    expect(allows(cluster, "cbt.storage.k8s.io", "snapshotmetadataservices", "get", "other.csi.dev")).toBe(false);
    expect(allows(cluster, "storage.k8s.io", "volumeattributesclasses", "get")).toBe(false);
    for (const rule of [...cluster, ...namespaced]) {
      expect([...(rule.apiGroups ?? []), ...(rule.resources ?? []), ...rule.verbs]).not.toContain("*");
    }
  });

  it("gives the snapshot-controller what it needs to bind snapshots and to make group members", () => {
    const { cluster, namespaced } = rulesOf(rendered(), "esan-snapshot-controller");
    expect(allows(cluster, "snapshot.storage.k8s.io", "volumesnapshots", "create")).toBe(true);
    expect(allows(cluster, "snapshot.storage.k8s.io", "volumesnapshotcontents", "create")).toBe(true);
    expect(allows(cluster, "snapshot.storage.k8s.io", "volumesnapshots/status", "update")).toBe(true);
    expect(allows(cluster, "groupsnapshot.storage.k8s.io", "volumegroupsnapshotcontents", "create")).toBe(true);
    expect(allows(cluster, "groupsnapshot.storage.k8s.io", "volumegroupsnapshots/status", "patch")).toBe(true);
    expect(allows(cluster, "", "persistentvolumeclaims", "list")).toBe(true);
    expect(allows(namespaced, "coordination.k8s.io", "leases", "update")).toBe(true);
    expect(allows(cluster, "", "secrets", "get")).toBe(false);
  });

  it("makes a StorageClass of esan.csi.dev whose parameters esan accepts", () => {
    const storageClass = find(rendered(), "StorageClass", "esan") as KubeObject & { parameters?: Record<string, string> };
    expect(storageClass).toMatchObject({ provisioner: DRIVER, reclaimPolicy: "Delete", volumeBindingMode: "Immediate", allowVolumeExpansion: true });
    expect(storageClass.metadata.annotations?.["storageclass.kubernetes.io/is-default-class"]).toBeUndefined();
    expect(volumeParameters(storageClass.parameters, "csi")).toEqual({ volumeGroup: "csi" });
  });

  it("makes the instant, durable and group snapshot classes with parameters esan accepts", () => {
    const instant = find(rendered(), "VolumeSnapshotClass", "esan-instant") as KubeObject & { parameters?: Record<string, string> };
    const durable = find(rendered(), "VolumeSnapshotClass", "esan-durable") as KubeObject & { parameters?: Record<string, string> };
    const group = find(rendered(), "VolumeGroupSnapshotClass", "esan-group") as KubeObject & { parameters?: Record<string, string> };
    expect(instant).toMatchObject({ apiVersion: "snapshot.storage.k8s.io/v1", driver: DRIVER, deletionPolicy: "Delete" });
    expect(durable).toMatchObject({ apiVersion: "snapshot.storage.k8s.io/v1", driver: DRIVER, deletionPolicy: "Delete" });
    expect(group).toMatchObject({ apiVersion: "groupsnapshot.storage.k8s.io/v1", driver: DRIVER, deletionPolicy: "Delete" });
    expect(snapshotParameters(instant.parameters)).toEqual({ tier: "instant" });
    expect(snapshotParameters(durable.parameters)).toEqual({ tier: "durable" });
    expect(groupSnapshotParameters(group.parameters)).toEqual({ fsfreeze: false });
    expect(instant.metadata.annotations?.["snapshot.storage.kubernetes.io/is-default-class"]).toBe("true");
    expect(durable.metadata.annotations?.["snapshot.storage.kubernetes.io/is-default-class"]).toBeUndefined();
  });

  it("renders class parameters given with --set as strings, as Kubernetes requires", () => {
    const rendered = render(["--set", "volumeGroupSnapshotClass.parameters.fsfreeze=true", "--set", "storageClass.parameters.sectorSize=4096"]);
    const group = find(rendered, "VolumeGroupSnapshotClass", "esan-group") as KubeObject & { parameters: Record<string, unknown> };
    const storageClass = find(rendered, "StorageClass", "esan") as KubeObject & { parameters: Record<string, string> };
    expect(group.parameters.fsfreeze).toBe("true");
    expect(storageClass.parameters.sectorSize).toBe("4096");
    expect(volumeParameters(storageClass.parameters, "csi")).toEqual({ volumeGroup: "csi", sectorSize: 4096 });
  });

  it("leaves out the snapshot-controller's account and RBAC when the cluster has its own", () => {
    const rendered = render(["--set", "snapshotController.enabled=false"]);
    expect(rendered.filter((o) => o.metadata.name.includes("snapshot-controller")).map(key)).toEqual([]);
  });

  it("takes WaitForFirstConsumer and refuses other binding modes with a sentence", () => {
    expect(find(render(["--set", "storageClass.volumeBindingMode=WaitForFirstConsumer"]), "StorageClass", "esan")?.volumeBindingMode).toBe("WaitForFirstConsumer");
    const refused = runHelm(["template", RELEASE, CHART_DIR, "--set", "storageClass.volumeBindingMode=Later"]);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain('storageClass.volumeBindingMode must be Immediate or WaitForFirstConsumer; got "Later".');
  });

  it("renders the SnapshotMetadataService only when asked and the cluster serves its API, and then requires a CA", () => {
    const on = ["--set", "snapshotMetadata.service.create=true"];
    expect(render().some((o) => o.kind === "SnapshotMetadataService")).toBe(false);
    expect(render(["--api-versions", SMS_API]).some((o) => o.kind === "SnapshotMetadataService")).toBe(false);
    expect(render([...on]).some((o) => o.kind === "SnapshotMetadataService")).toBe(false);

    const caFile = path.join(work, "ca.pem");
    fs.writeFileSync(caFile, CA_PEM);
    const service = find(render([...on, "--api-versions", SMS_API, "--set-file", `snapshotMetadata.service.caCert=${caFile}`]), "SnapshotMetadataService", DRIVER);
    expect(service?.apiVersion).toBe("cbt.storage.k8s.io/v1beta1");
    expect(service?.spec).toEqual({ address: `esan-snapshot-metadata.${NAMESPACE}:6443`, audience: "esan-snapshot-metadata", caCert: Buffer.from(CA_PEM).toString("base64") });

    const withoutCa = runHelm(["template", RELEASE, CHART_DIR, ...on, "--api-versions", SMS_API]);
    expect(withoutCa.status).not.toBe(0);
    expect(withoutCa.stderr).toContain("snapshotMetadata.service.caCert is required");
    const notPem = runHelm(["template", RELEASE, CHART_DIR, ...on, "--api-versions", SMS_API, "--set", "snapshotMetadata.service.caCert=Zm9v"]);
    expect(notPem.status).not.toBe(0);
    expect(notPem.stderr).toContain("snapshotMetadata.service.caCert must be PEM text");
  });
});

describe("examples/", () => {
  // Every file, what it holds, and the API version the pinned external-snapshotter v8.6.0 serves for it.
  const EXPECTED: Record<string, { apiVersion: string; kind: string }> = {
    "storageclass.yaml": { apiVersion: "storage.k8s.io/v1", kind: "StorageClass" },
    "volumesnapshotclass-instant.yaml": { apiVersion: "snapshot.storage.k8s.io/v1", kind: "VolumeSnapshotClass" },
    "volumesnapshotclass-durable.yaml": { apiVersion: "snapshot.storage.k8s.io/v1", kind: "VolumeSnapshotClass" },
    "volumegroupsnapshotclass.yaml": { apiVersion: "groupsnapshot.storage.k8s.io/v1", kind: "VolumeGroupSnapshotClass" },
    "pvc.yaml": { apiVersion: "v1", kind: "PersistentVolumeClaim" },
    "volumesnapshot.yaml": { apiVersion: "snapshot.storage.k8s.io/v1", kind: "VolumeSnapshot" },
    "pvc-from-snapshot.yaml": { apiVersion: "v1", kind: "PersistentVolumeClaim" },
    "pvc-clone.yaml": { apiVersion: "v1", kind: "PersistentVolumeClaim" },
    "volumegroupsnapshot.yaml": { apiVersion: "groupsnapshot.storage.k8s.io/v1", kind: "VolumeGroupSnapshot" },
  };
  const examples = once(() => {
    const files = fs.readdirSync(EXAMPLES_DIR).filter((f) => /\.ya?ml$/.test(f)).sort();
    for (const file of files) {
      const text = fs.readFileSync(path.join(EXAMPLES_DIR, file), "utf8");
      if (/^---\s*$/m.test(text)) throw new Error(`examples/${file} holds more than one document; each example is one object a user applies alone.`);
    }
    const parsed = parseYaml(files.map((file) => ({ source: `examples/${file}`, text: fs.readFileSync(path.join(EXAMPLES_DIR, file), "utf8") })));
    return new Map(files.map((file, index) => [file, parsed[index]]));
  });
  const chart = once(() => render());

  const get = <T = KubeObject>(file: string) => examples().get(file) as T & KubeObject;

  it("holds exactly the expected files, each one object of the expected kind and API version", () => {
    expect([...examples().keys()].sort()).toEqual(Object.keys(EXPECTED).sort());
    for (const [file, expected] of Object.entries(EXPECTED)) {
      expect({ apiVersion: get(file).apiVersion, kind: get(file).kind }, file).toEqual(expected);
      expect(get(file).metadata.name, file).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      expect(get(file).metadata.namespace, `${file} should apply to the user's namespace`).toBeUndefined();
    }
  });

  it.each(["storageclass.yaml", "volumesnapshotclass-instant.yaml", "volumesnapshotclass-durable.yaml", "volumegroupsnapshotclass.yaml"])(
    "%s is the chart's class of the same name, for esan.csi.dev",
    (file) => {
      const example = get(file);
      const ours = find(chart(), example.kind, example.metadata.name);
      expect(ours, `the chart renders no ${example.kind} ${example.metadata.name}`).toBeDefined();
      const spec = (object: KubeObject) => {
        const { apiVersion: _apiVersion, kind: _kind, metadata, ...rest } = object;
        return { ...rest, annotations: metadata.annotations ?? {} };
      };
      expect(spec(example)).toEqual(spec(ours as KubeObject));
      expect(example.provisioner ?? example.driver).toBe(DRIVER);
    },
  );

  it("has class parameters that esan accepts, and an Immediate, expandable StorageClass", () => {
    const storageClass = get<{ parameters?: Record<string, string> }>("storageclass.yaml");
    expect(storageClass).toMatchObject({ volumeBindingMode: "Immediate", allowVolumeExpansion: true });
    expect(() => volumeParameters(storageClass.parameters, "csi")).not.toThrow();
    expect(snapshotParameters(get<{ parameters?: Record<string, string> }>("volumesnapshotclass-instant.yaml").parameters).tier).toBe("instant");
    expect(snapshotParameters(get<{ parameters?: Record<string, string> }>("volumesnapshotclass-durable.yaml").parameters).tier).toBe("durable");
    expect(() => groupSnapshotParameters(get<{ parameters?: Record<string, string> }>("volumegroupsnapshotclass.yaml").parameters)).not.toThrow();
  });

  it("has claims and snapshots that name the chart's classes and one another", () => {
    const classNames = (kind: string) => chart().filter((o) => o.kind === kind).map((o) => o.metadata.name);
    const pvc = get<{ spec: { storageClassName: string } }>("pvc.yaml");
    for (const file of ["pvc.yaml", "pvc-from-snapshot.yaml", "pvc-clone.yaml"]) {
      expect(classNames("StorageClass"), file).toContain(get<{ spec: { storageClassName: string } }>(file).spec.storageClassName);
    }
    const snapshot = get<{ spec: { volumeSnapshotClassName: string; source: { persistentVolumeClaimName: string } } }>("volumesnapshot.yaml");
    expect(classNames("VolumeSnapshotClass")).toContain(snapshot.spec.volumeSnapshotClassName);
    expect(snapshot.spec.source.persistentVolumeClaimName).toBe(pvc.metadata.name);

    const restore = get<{ spec: { dataSource: Record<string, string> } }>("pvc-from-snapshot.yaml");
    expect(restore.spec.dataSource).toEqual({ apiGroup: "snapshot.storage.k8s.io", kind: "VolumeSnapshot", name: snapshot.metadata.name });
    const clone = get<{ spec: { dataSource: Record<string, string> } }>("pvc-clone.yaml");
    expect(clone.spec.dataSource).toEqual({ kind: "PersistentVolumeClaim", name: pvc.metadata.name });

    const group = get<{ spec: { volumeGroupSnapshotClassName: string; source: { selector: { matchLabels: Record<string, string> } } } }>("volumegroupsnapshot.yaml");
    expect(classNames("VolumeGroupSnapshotClass")).toContain(group.spec.volumeGroupSnapshotClassName);
    const selector = group.spec.source.selector.matchLabels;
    expect(Object.keys(selector).length).toBeGreaterThan(0);
    expect(pvc.metadata.labels ?? {}).toMatchObject(selector);
    // Restores and clones stay out of the group, so applying every example and then the group snapshot takes one volume.
    for (const file of ["pvc-from-snapshot.yaml", "pvc-clone.yaml"]) {
      const labels = get(file).metadata.labels ?? {};
      expect(Object.entries(selector).every(([k, v]) => labels[k] === v), file).toBe(false);
    }
  });
});
