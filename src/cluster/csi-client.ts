// Promise-based unary calls on a CSI endpoint, from the CSI proto esan itself serves: the cluster uses it to unpublish
// and unstage on stop, and the e2e tests to play kubelet on the node plugin's socket.
import { credentials, type Client, type ServiceError } from "@grpc/grpc-js";
import { csiServiceClient, type CsiServiceName } from "../csi/proto.ts";

/** Calls one CSI endpoint (`unix:///PATH`). */
export class CsiClient {
  readonly endpoint: string;
  readonly #clients = new Map<CsiServiceName, Client>();

  constructor(endpoint: string) {
    this.endpoint = endpoint;
  }

  /** One unary call; resolves the decoded response, rejects with the gRPC ServiceError (code and details). */
  call<T = Record<string, unknown>>(service: CsiServiceName, method: string, request: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<T> {
    let client = this.#clients.get(service);
    if (!client) {
      const Service = csiServiceClient(service);
      client = new Service(this.endpoint, credentials.createInsecure());
      this.#clients.set(service, client);
    }
    const methods = client as unknown as Record<string, (r: unknown, o: { deadline: Date }, cb: (err: ServiceError | null, value: T) => void) => void>;
    const invoke = methods[method];
    if (!invoke) return Promise.reject(new Error(`CSI service ${service} has no method ${method}`));
    return new Promise((resolve, reject) => {
      invoke.call(client, request, { deadline: new Date(Date.now() + timeoutMs) }, (err, value) => (err ? reject(err) : resolve(value)));
    });
  }

  close(): void {
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}
