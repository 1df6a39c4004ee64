// Where the cluster's Kubernetes binaries and CRDs are: scripts/build-e2e-tools builds them from the Go module proxy
// and names them in .esan/e2e-tools.env (KEY=VALUE lines). kubectl comes from the machine (PEERS.md).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

/** The binaries the local cluster runs, from BIN_DIR. */
export const CLUSTER_BINARIES = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "snapshot-controller",
  "csi-provisioner",
  "csi-attacher",
  "csi-snapshotter",
  "csi-resizer",
  "csi-snapshot-metadata",
  "helm",
] as const;

export type ClusterBinary = (typeof CLUSTER_BINARIES)[number];

/** The tools of one build, as the env file names them. */
export interface ClusterTools {
  envFile: string;
  binDir: string;
  snapshotCrdDir: string;
  metadataCrdDir: string;
  kubectl: string;
  /** The absolute path of one binary. */
  bin: (name: ClusterBinary) => string;
}

/** The project's root directory (where package.json is). */
export const PROJECT_ROOT = path.resolve(import.meta.dirname, "..", "..");

/** The env file: ESAN_E2E_TOOLS_ENV, else .esan/e2e-tools.env in the project. */
export function toolsEnvFile(): string {
  return process.env.ESAN_E2E_TOOLS_ENV ?? path.join(PROJECT_ROOT, ".esan", "e2e-tools.env");
}

/** Parses KEY=VALUE lines (no quoting; `#` comments). */
export function parseEnvFile(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const equals = trimmed.indexOf("=");
    if (equals > 0) values.set(trimmed.slice(0, equals), trimmed.slice(equals + 1));
  }
  return values;
}

/**
 * Reads the env file and checks that every binary, both CRD directories and kubectl are there; throws one sentence
 * naming everything missing and how to get it.
 */
export function loadClusterTools(envFile = toolsEnvFile()): ClusterTools {
  let text: string;
  try {
    text = fs.readFileSync(envFile, "utf8");
  } catch (error) {
    throw new Error(`Cannot read ${envFile} (${(error as Error).message}): run \`bash scripts/setup\`, which builds the Kubernetes tools and writes it.`, { cause: error });
  }
  const values = parseEnvFile(text);
  const binDir = values.get("BIN_DIR") ?? "";
  const snapshotCrdDir = values.get("SNAPSHOT_CRD_DIR") ?? "";
  const metadataCrdDir = values.get("METADATA_CRD_DIR") ?? "";
  const missing: string[] = [];
  for (const name of CLUSTER_BINARIES) {
    if (!isExecutable(path.join(binDir, name))) missing.push(`${name} in ${binDir || "BIN_DIR (unset)"}`);
  }
  for (const [key, dir] of [["SNAPSHOT_CRD_DIR", snapshotCrdDir], ["METADATA_CRD_DIR", metadataCrdDir]] as const) {
    if (dir === "" || !fs.existsSync(dir) || !fs.readdirSync(dir).some((f) => f.endsWith(".yaml"))) missing.push(`the CRDs in ${key} (${dir || "unset"})`);
  }
  const kubectl = findKubectl();
  if (kubectl === null) missing.push("kubectl on PATH");
  if (missing.length > 0) {
    throw new Error(`The local cluster needs ${missing.join(", ")} (named by ${envFile}): run \`bash scripts/setup\` to build them.`);
  }
  return {
    envFile,
    binDir,
    snapshotCrdDir,
    metadataCrdDir,
    kubectl: kubectl ?? "kubectl",
    bin: (name) => path.join(binDir, name),
  };
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function findKubectl(): string | null {
  try {
    return execFileSync("sh", ["-c", "command -v kubectl"], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}
