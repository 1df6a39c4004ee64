// The one handler wrapper every CSI RPC goes through: validate the request (a pure hook), take the per-object locks (a
// conflicting concurrent call gets ABORTED), await the handler, map any error to a status with a sentence (errors.ts),
// record the duration metric, and log the call with secrets redacted. grpc-js does not await handlers by itself.
import {
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { Logger } from "pino";
import { CsiError, grpcCodeName, toCsiStatus } from "./errors.ts";
import type { CsiMetrics } from "./metrics.ts";
import { redact } from "./redact.ts";

/** What a handler gets besides its request. */
export interface CallContext {
  /** `c<N>`, also in every log line of the call and in an INTERNAL error's sentence. */
  requestId: string;
  logger: Logger;
  /** True once the client went away. */
  cancelled: () => boolean;
}

/** What both kinds of method share; `Req` is the decoded request type. */
interface MethodBase<Req> {
  /** Pure checks of the request, run first; throw a CsiError (INVALID_ARGUMENT and the like) to refuse. */
  validate?: (request: Req) => void;
  /**
   * Keys of the objects the call works on (`volume:VG/NAME`, `volume-name:…`). While one call holds a key, another
   * call naming it is refused with ABORTED, which every CO retries with backoff.
   */
  lockKeys?: (request: Req) => readonly string[];
  /** Changes state: logged at info; calls that only read are logged at debug. */
  mutating?: boolean;
}

/** One request, one response. */
export interface UnaryMethod<Req> extends MethodBase<Req> {
  kind?: "unary";
  handle: (request: Req, context: CallContext) => Promise<unknown>;
}

/** One request, a stream of responses. */
export interface StreamMethod<Req> extends MethodBase<Req> {
  kind: "stream";
  handle: (request: Req, context: CallContext) => AsyncIterable<unknown>;
}

/** A method of any request type, as a service's table holds it. */
export type AnyMethod = UnaryMethod<never> | StreamMethod<never>;

/** The handlers of one CSI service, by method name as in csi.proto (`CreateVolume`). */
export type CsiMethods = Record<string, AnyMethod>;

/** A unary method whose handler sees `Req` (the decoded request type of its RPC). */
export function unary<Req>(method: UnaryMethod<Req>): AnyMethod {
  return method;
}

/** A server-streaming method whose handler sees `Req`. */
export function stream<Req>(method: Omit<StreamMethod<Req>, "kind">): AnyMethod {
  return { ...method, kind: "stream" };
}

/** A handler with no request fields to read (capabilities, info). */
export function answer(response: () => unknown): AnyMethod {
  return { handle: () => Promise.resolve(response()) };
}

/** Options of RpcWrapper. */
export interface RpcWrapperOptions {
  logger: Logger;
  /** Where call durations go (default: nowhere). */
  metrics?: CsiMetrics;
}

/** Wraps CSI handlers into grpc-js service implementations. One instance per process, so locks span all services. */
export class RpcWrapper {
  readonly #logger: Logger;
  readonly #metrics: CsiMetrics | undefined;
  readonly #held = new Map<string, string>();
  #nextRequest = 1;
  #inFlight = 0;

  constructor(options: RpcWrapperOptions) {
    this.#logger = options.logger;
    this.#metrics = options.metrics;
  }

  /** Calls being handled right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * The grpc-js implementation of `definition` from `methods`. A method of the service that `methods` lacks answers
   * UNIMPLEMENTED with a sentence naming it (`service` is the name the sentence uses).
   */
  implementation(service: string, definition: ServiceDefinition, methods: CsiMethods): UntypedServiceImplementation {
    const implementation: UntypedServiceImplementation = {};
    for (const [name, method] of Object.entries(definition)) {
      const handler: AnyMethod = methods[name] ?? unimplemented(service, name, method.responseStream);
      // grpc-js types each handler by its call shape; the definition says which shape a method has.
      implementation[name] = (handler.kind === "stream" ? this.#stream(name, handler) : this.#unary(name, handler)) as UntypedServiceImplementation[string];
    }
    return implementation;
  }

  #unary(name: string, method: UnaryMethod<never>) {
    return (call: ServerUnaryCall<never, unknown>, callback: sendUnaryData<unknown>): void => {
      void this.#run(name, method, call, async (context) => {
        const response = await method.handle(call.request, context);
        callback(null, response);
        return response;
      }).then((failure) => failure && callback(failure));
    };
  }

  #stream(name: string, method: StreamMethod<never>) {
    return (call: ServerWritableStream<never, unknown>): void => {
      void this.#run(name, method, call, async (context) => {
        let messages = 0;
        for await (const message of method.handle(call.request, context)) {
          if (call.cancelled) return { messages, cancelled: true };
          messages++;
          if (!call.write(message)) await new Promise((resolve) => call.once("drain", resolve));
        }
        call.end();
        return { messages };
      }).then((failure) => failure && call.emit("error", failure));
    };
  }

  /**
   * The wrapper proper. Resolves with null when `body` answered, or with the status to send. An unexpected error is
   * logged with its stack here and reaches the client only as a generic sentence with the request id.
   */
  async #run(
    rpc: string,
    method: MethodBase<never>,
    call: ServerUnaryCall<never, unknown> | ServerWritableStream<never, unknown>,
    body: (context: CallContext) => Promise<unknown>,
  ): Promise<{ code: status; details: string } | null> {
    const requestId = `c${this.#nextRequest++}`;
    const started = performance.now();
    const logger = this.#logger.child({ requestId, rpc });
    const context: CallContext = { requestId, logger, cancelled: () => call.cancelled };
    const request = call.request;
    let keys: readonly string[] = [];
    let code: status = status.OK;
    this.#inFlight++;
    try {
      method.validate?.(request);
      keys = method.lockKeys?.(request) ?? [];
      this.#lock(rpc, keys, requestId);
      const response = await body(context);
      logger[method.mutating === true ? "info" : "debug"]({ request: redact(request), response: redact(response), durationMs: elapsed(started) }, "ok");
      return null;
    } catch (err) {
      const mapped = toCsiStatus(err, requestId);
      code = mapped.code;
      const fields = { request: redact(request), code: grpcCodeName(mapped.code), durationMs: elapsed(started) };
      if (!mapped.known) logger.error({ ...fields, err }, "failed unexpectedly");
      else logger.info(fields, mapped.details);
      return { code: mapped.code, details: mapped.details };
    } finally {
      for (const key of keys) if (this.#held.get(key) === requestId) this.#held.delete(key);
      this.#inFlight--;
      this.#metrics?.observe(rpc, grpcCodeName(code), (performance.now() - started) / 1000);
    }
  }

  /** Takes every key at once, or none: a key held by another call refuses this one with ABORTED. */
  #lock(rpc: string, keys: readonly string[], requestId: string): void {
    // Locks are taken synchronously (no await between the check and the take), so two calls can never both win.
    for (const key of keys) {
      const holder = this.#held.get(key);
      if (holder !== undefined) {
        throw new CsiError(
          status.ABORTED,
          `Cannot run ${rpc} now: another call on ${key.replace(/^[a-z-]+:/, "")} is in progress. Retry when it completes.`,
        );
      }
    }
    for (const key of keys) this.#held.set(key, requestId);
  }
}

/** A method the driver does not offer: UNIMPLEMENTED, saying which. */
function unimplemented(service: string, name: string, streaming: boolean): AnyMethod {
  const refusal = (): CsiError => new CsiError(status.UNIMPLEMENTED, `esan does not implement ${service}.${name}; its capabilities do not advertise it.`);
  if (streaming) {
    return stream({
      // eslint-disable-next-line require-yield
      handle: async function* () {
        await Promise.resolve();
        throw refusal();
      },
    });
  }
  return { handle: () => Promise.reject(refusal()) };
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}
