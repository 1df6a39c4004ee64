// Loads proto/csi/v1/csi.proto at run time (no generated code) and exposes the CSI services and enum names.
import path from "node:path";
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceDefinition } from "@grpc/grpc-js";
import { loadSync, type Options } from "@grpc/proto-loader";

/** The CSI .proto file (CSI spec 1.12, package csi.v1). */
export const CSI_PROTO_FILE = path.join(import.meta.dirname, "..", "..", "proto", "csi", "v1", "csi.proto");

/**
 * How both sides of esan decode CSI messages: camelCase field names, int64 as JS numbers (sizes stay below 2^53),
 * enums as their names, unset scalars as defaults, and the name of the set oneof member (`accessType`, `type`).
 */
export const CSI_LOADER_OPTIONS: Options = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true };

/** The CSI services, by their names in csi.v1. */
export type CsiServiceName = "Identity" | "Controller" | "GroupController" | "SnapshotMetadata" | "Node";

let loaded: GrpcObject | undefined;

/** The csi.v1 package: service client classes and message types. */
export function csiPackage(): GrpcObject {
  if (!loaded) {
    const root = loadPackageDefinition(loadSync(CSI_PROTO_FILE, CSI_LOADER_OPTIONS));
    loaded = (root.csi as GrpcObject).v1 as GrpcObject;
  }
  return loaded;
}

/** The client class of one CSI service (tests and tools dial the driver with it). */
export function csiServiceClient(name: CsiServiceName): ServiceClientConstructor {
  return csiPackage()[name] as ServiceClientConstructor;
}

/** The definition a grpc Server registers one CSI service's handlers against. */
export function csiServiceDefinition(name: CsiServiceName): ServiceDefinition {
  return csiServiceClient(name).service;
}
