// Tests of endpoint URL parsing: the accepted forms round-trip, and every refusal is an InvalidArgument sentence.
import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../storage/errors.ts";
import { formatEndpoint, grpcTarget, parseEndpoint } from "./endpoints.ts";

describe("parseEndpoint", () => {
  it.each([
    { text: "unix:///run/esan/api.sock", endpoint: { kind: "unix", path: "/run/esan/api.sock" }, target: "unix:///run/esan/api.sock" },
    { text: "tcp://127.0.0.1:7443", endpoint: { kind: "tcp", host: "127.0.0.1", port: 7443 }, target: "127.0.0.1:7443" },
    { text: "tcp://localhost:0", endpoint: { kind: "tcp", host: "localhost", port: 0 }, target: "localhost:0" },
    { text: "tcp://[::1]:10809", endpoint: { kind: "tcp", host: "::1", port: 10809 }, target: "[::1]:10809" },
  ])("reads $text", ({ text, endpoint, target }) => {
    const parsed = parseEndpoint(text, "--api");
    expect(parsed).toEqual(endpoint);
    expect(formatEndpoint(parsed)).toBe(text);
    expect(grpcTarget(parsed)).toBe(target);
  });

  it.each([
    { text: "unix://relative.sock", hint: "three slashes" },
    { text: `unix:///${"x".repeat(120)}`, hint: "at most 107 bytes" },
    { text: "tcp://127.0.0.1", hint: "tcp://HOST:PORT" },
    { text: "tcp://127.0.0.1:99999", hint: "tcp://HOST:PORT" },
    { text: "tcp://127.0.0.1:80/path", hint: "tcp://HOST:PORT" },
    { text: "http://127.0.0.1:80", hint: "unix:///PATH" },
    { text: "/run/esan.sock", hint: "unix:///PATH" },
  ])("refuses $text with a sentence", ({ text, hint }) => {
    expect(() => parseEndpoint(text, "--api")).toThrow(InvalidArgumentError);
    expect(() => parseEndpoint(text, "--api")).toThrow(hint);
  });
});
