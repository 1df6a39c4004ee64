// Table tests of the SAN API's error mapping: every esan code gets its gRPC status and comes back as the same class
// with the same sentence (and limit, retry time, pid); anything else is INTERNAL with a generic sentence.
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import {
  AlreadyExistsError,
  BusyError,
  CapacityExceededError,
  CorruptError,
  DataDirInUseError,
  EsanError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  ReadOnlyError,
  SnapshotCountExceededError,
  SnapshotOperationRateExceededError,
} from "../storage/errors.ts";
import { SanApiError } from "./errors.ts";
import { fromStatus, toStatus } from "./status.ts";

/** What a client receives for a status the server sent. */
function received(sent: ReturnType<typeof toStatus>): ServiceError {
  return Object.assign(new Error(sent.details), { code: sent.code, details: sent.details, metadata: sent.metadata });
}

describe("toStatus and fromStatus", () => {
  it.each([
    { error: new InvalidArgumentError("bad."), code: status.INVALID_ARGUMENT },
    { error: new NotFoundError("gone."), code: status.NOT_FOUND },
    { error: new AlreadyExistsError("twice."), code: status.ALREADY_EXISTS },
    { error: new FailedPreconditionError("not now."), code: status.FAILED_PRECONDITION },
    { error: new OutOfRangeError("too far."), code: status.OUT_OF_RANGE },
    { error: new ReadOnlyError("snapshot."), code: status.FAILED_PRECONDITION },
    { error: new CapacityExceededError("full."), code: status.RESOURCE_EXHAUSTED },
    { error: new SnapshotCountExceededError("many.", 200), code: status.RESOURCE_EXHAUSTED },
    { error: new SnapshotOperationRateExceededError("fast.", 7, 12_345), code: status.RESOURCE_EXHAUSTED },
    { error: new BusyError("busy."), code: status.ABORTED },
    { error: new DataDirInUseError("held.", 4242), code: status.FAILED_PRECONDITION },
    { error: new CorruptError("broken."), code: status.DATA_LOSS },
  ])("maps $error.code to gRPC $code and back to the same class and sentence", ({ error, code }) => {
    const sent = toStatus(error, "r1");
    expect(sent).toMatchObject({ code, details: error.message, known: true });
    const rebuilt = fromStatus(received(sent), "unix:///x");
    expect(rebuilt).toBeInstanceOf(error.constructor);
    expect(rebuilt).toMatchObject({ code: error.code, message: error.message });
    if (error instanceof SnapshotCountExceededError) expect((rebuilt as SnapshotCountExceededError).limit).toBe(200);
    if (error instanceof SnapshotOperationRateExceededError) expect(rebuilt).toMatchObject({ limit: 7, retryAfterMs: 12_345 });
    if (error instanceof DataDirInUseError) expect((rebuilt as DataDirInUseError).pid).toBe(4242);
  });

  it("sends an unexpected error as INTERNAL with a generic sentence, keeping the detail out", () => {
    const sent = toStatus(new TypeError("x is undefined at /src/secret.ts:1"), "r42");
    expect(sent).toMatchObject({ code: status.INTERNAL, known: false });
    expect(sent.details).toBe("The SAN service failed unexpectedly while handling request r42; its log has the details.");
    const rebuilt = fromStatus(received(sent), "unix:///x");
    expect(rebuilt).toBeInstanceOf(SanApiError);
    expect(rebuilt).not.toBeInstanceOf(EsanError);
    expect((rebuilt as SanApiError).code).toBe("Internal");
  });

  it.each([
    { code: status.UNAUTHENTICATED, expected: "Unauthenticated" },
    { code: status.UNAVAILABLE, expected: "Unavailable" },
    { code: status.DEADLINE_EXCEEDED, expected: "Internal" },
  ])("turns a status without an esan code ($code) into a SanApiError $expected", ({ code, expected }) => {
    const err = Object.assign(new Error("x"), { code, details: "No connection established.", metadata: new Metadata() });
    const rebuilt = fromStatus(err, "unix:///run/api.sock");
    expect(rebuilt).toBeInstanceOf(SanApiError);
    expect((rebuilt as SanApiError).code).toBe(expected);
    if (expected === "Unavailable") {
      expect(rebuilt.message).toBe("Cannot reach the SAN API at unix:///run/api.sock: No connection established. Check that 'esan san serve' is running there.");
    }
  });
});
