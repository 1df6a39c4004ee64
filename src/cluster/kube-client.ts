// A small Kubernetes REST client over node:https (bearer token, the cluster's CA), for the cluster runner and the e2e
// tests: get, list, create, patch and delete by path, with the API's own failure message in every error. It also
// writes kubeconfig files, as JSON (which kubectl, helm and client-go read as YAML).
import fs from "node:fs";
import https from "node:https";

/** A Kubernetes object as JSON. */
export type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; annotations?: Record<string, string>; labels?: Record<string, string>; deletionTimestamp?: string; [key: string]: unknown };
  [key: string]: unknown;
};

/** A failed API call: its HTTP status and the API's message. */
export class KubeApiError extends Error {
  readonly statusCode: number;
  constructor(message: string, statusCode: number) {
    super(message);
    this.name = "KubeApiError";
    this.statusCode = statusCode;
  }
}

/** The path of a collection or of one object: `apiPath("v1", "persistentvolumeclaims", "default", "data")`. */
export function apiPath(apiVersion: string, plural: string, namespace?: string, name?: string): string {
  const base = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const scoped = namespace ? `${base}/namespaces/${namespace}/${plural}` : `${base}/${plural}`;
  return name ? `${scoped}/${name}` : scoped;
}

/** Calls one API server with one bearer token. */
export class KubeClient {
  readonly server: string;
  readonly #agent: https.Agent;
  readonly #token: string;

  constructor(server: string, caFile: string, token: string) {
    this.server = server;
    this.#token = token;
    this.#agent = new https.Agent({ ca: fs.readFileSync(caFile), keepAlive: true, maxSockets: 8 });
  }

  /** One call; resolves the parsed body of a 2xx answer and rejects with a KubeApiError otherwise. */
  request<T = KubeObject>(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const request = https.request(
        `${this.server}${path}`,
        {
          method,
          agent: this.#agent,
          headers: {
            authorization: `Bearer ${this.#token}`,
            accept: "application/json",
            ...(payload === undefined ? {} : { "content-type": contentType, "content-length": Buffer.byteLength(payload) }),
          },
          timeout: 30_000,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            const statusCode = response.statusCode ?? 0;
            if (statusCode >= 200 && statusCode < 300) {
              try {
                resolve((text === "" ? {} : JSON.parse(text)) as T);
              } catch {
                // /readyz and friends answer plain text.
                resolve(text as T);
              }
              return;
            }
            let message = text;
            try {
              message = (JSON.parse(text) as { message?: string }).message ?? text;
            } catch {
              // Not a Status object.
            }
            reject(new KubeApiError(`${method} ${path} failed with HTTP ${statusCode}: ${message}`, statusCode));
          });
        },
      );
      request.on("timeout", () => request.destroy(new Error(`${method} ${path} got no answer within 30 s`)));
      request.on("error", reject);
      request.end(payload);
    });
  }

  /** The object at `path`, or null when it does not exist. */
  async get<T = KubeObject>(path: string): Promise<T | null> {
    try {
      return await this.request<T>("GET", path);
    } catch (error) {
      if (error instanceof KubeApiError && error.statusCode === 404) return null;
      throw error;
    }
  }

  /** The items of the collection at `path` (optionally `?labelSelector=…`). */
  async list<T = KubeObject>(path: string): Promise<T[]> {
    return (await this.request<{ items: T[] }>("GET", path)).items;
  }

  /** Creates `object` in the collection at `path`. */
  create<T = KubeObject>(path: string, object: unknown): Promise<T> {
    return this.request<T>("POST", path, object);
  }

  /** A JSON merge patch of the object at `path`. */
  patch<T = KubeObject>(path: string, patch: unknown): Promise<T> {
    return this.request<T>("PATCH", path, patch, "application/merge-patch+json");
  }

  /** Deletes the object at `path`; resolves false when it did not exist. */
  async delete(path: string, options: Record<string, unknown> = {}): Promise<boolean> {
    try {
      await this.request("DELETE", path, Object.keys(options).length > 0 ? options : undefined);
      return true;
    } catch (error) {
      if (error instanceof KubeApiError && error.statusCode === 404) return false;
      throw error;
    }
  }

  /** Whether the API server answers /readyz with "ok". */
  async ready(): Promise<boolean> {
    try {
      await this.request("GET", "/readyz");
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    this.#agent.destroy();
  }
}

/** Writes a kubeconfig (mode 0600) for `user` with `token`, trusting `caFile`. */
export function writeKubeconfig(file: string, server: string, caFile: string, user: string, token: string): void {
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "esan-local", cluster: { server, "certificate-authority-data": fs.readFileSync(caFile).toString("base64") } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: `${user}@esan-local`, context: { cluster: "esan-local", user } }],
    "current-context": `${user}@esan-local`,
    preferences: {},
  };
  fs.writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
}
