import { expect, test } from "vitest";
import { formatListenAddress, parseListenAddress } from "./listen-address.ts";

test.each([
  ["unix:///run/esan/nbd.sock", { transport: "unix", path: "/run/esan/nbd.sock" }],
  ["tcp://127.0.0.1:0", { transport: "tcp", host: "127.0.0.1", port: 0 }],
  ["tcp://[::1]:10809", { transport: "tcp", host: "::1", port: 10809 }],
])("parses %s", (text, expected) => {
  const parsed = parseListenAddress(text);
  expect(parsed).toEqual(expected);
  expect(formatListenAddress(parsed)).toBe(text);
});

test.each(["unix://relative.sock", "tcp://127.0.0.1", "tcp://127.0.0.1:70000", "http://x:1", "127.0.0.1:10809"])("refuses %s", (text) => {
  expect(() => parseListenAddress(text)).toThrow(/listen address/);
});
