// Loads proto/esan/v1/san.proto at run time (no generated code) and exposes the SanService definition and client class.
import path from "node:path";
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceDefinition } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { MAX_IO_BYTES } from "./san-client.ts";

/** The SAN API's .proto file. */
export const SAN_PROTO_FILE = path.join(import.meta.dirname, "..", "..", "proto", "esan", "v1", "san.proto");

/** Largest message either side accepts: one full read or write plus room for the envelope. */
export const MAX_MESSAGE_BYTES = MAX_IO_BYTES + 64 * 1024;

/** Channel and server options every SAN API endpoint uses. */
export const CHANNEL_OPTIONS = {
  "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
  "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
} as const;

let loaded: ServiceClientConstructor | undefined;

/** The generated-at-run-time client class of esan.v1.SanService; sizes decode as JS numbers (esan keeps them < 2^53). */
export function sanServiceClient(): ServiceClientConstructor {
  if (!loaded) {
    const definition = loadSync(SAN_PROTO_FILE, { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true });
    const root = loadPackageDefinition(definition);
    loaded = ((root.esan as GrpcObject).v1 as GrpcObject).SanService as ServiceClientConstructor;
  }
  return loaded;
}

/** The service definition a grpc Server registers handlers against. */
export function sanServiceDefinition(): ServiceDefinition {
  return sanServiceClient().service;
}
