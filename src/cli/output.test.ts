// Tests of result and error printing: JSON versus human, codes, streams and the debug stack.
import { describe, expect, it } from "vitest";
import { DataDirInUseError, NotFoundError } from "../storage/errors.ts";
import { EXIT_FAILED, printError, printResult, renderError, type OutputSink } from "./output.ts";

function collector(): OutputSink & { out: string; err: string } {
  const sink = {
    out: "",
    err: "",
    stdout: (text: string) => {
      sink.out += text;
    },
    stderr: (text: string) => {
      sink.err += text;
    },
  };
  return sink;
}

describe("printResult", () => {
  it("prints the value as JSON under --json and never calls the human renderer", () => {
    const sink = collector();
    printResult(sink, true, { id: "vg1/a", sizeBytes: 512 }, () => {
      throw new Error("not called");
    });
    expect(JSON.parse(sink.out)).toEqual({ id: "vg1/a", sizeBytes: 512 });
    expect(sink.out.endsWith("\n")).toBe(true);
  });

  it("prints the human text with one trailing newline", () => {
    const sink = collector();
    printResult(sink, false, {}, () => "id: vg1/a");
    printResult(sink, false, {}, () => "two\n");
    expect(sink.out).toBe("id: vg1/a\ntwo\n");
  });

  it("prints nothing for an empty human rendering", () => {
    const sink = collector();
    printResult(sink, false, [], () => "");
    expect(sink.out).toBe("");
  });
});

describe("renderError", () => {
  const cases = [
    {
      name: "an engine error as CODE: sentence on stderr",
      err: new NotFoundError("Volume vg1/a does not exist."),
      options: { json: false, debug: false },
      stream: "stderr",
      text: "NotFound: Volume vg1/a does not exist.\n",
    },
    {
      name: "an engine error as JSON on stdout",
      err: new DataDirInUseError("The data directory /d is in use by pid 7.", 7),
      options: { json: true, debug: false },
      stream: "stdout",
      text: `${JSON.stringify({ error: { code: "DataDirInUse", message: "The data directory /d is in use by pid 7." } }, null, 2)}\n`,
    },
    {
      name: "an unexpected error as Internal without a stack",
      err: new TypeError("x is undefined"),
      options: { json: false, debug: false },
      stream: "stderr",
      text: "Internal: x is undefined\n",
    },
    {
      name: "a thrown non-Error as Internal JSON",
      err: "boom",
      options: { json: true, debug: true },
      stream: "stdout",
      text: `${JSON.stringify({ error: { code: "Internal", message: "boom" } }, null, 2)}\n`,
    },
  ] as const;

  it.each(cases)("renders $name", ({ err, options, stream, text }) => {
    expect(renderError(err, options)).toEqual({ stream, text, exitCode: EXIT_FAILED });
  });

  it("adds the stack of an unexpected error only with debug", () => {
    const err = new Error("bad state");
    expect(renderError(err, { json: false, debug: true }).text).toContain(err.stack ?? "missing stack");
    expect(renderError(err, { json: false, debug: false }).text).not.toContain(" at ");
  });

  it("never adds a stack to an engine error", () => {
    expect(renderError(new NotFoundError("Gone."), { json: false, debug: true }).text).toBe("NotFound: Gone.\n");
  });
});

describe("printError", () => {
  it("writes to the chosen stream and returns the exit status", () => {
    const sink = collector();
    expect(printError(sink, new NotFoundError("Gone."), { json: false, debug: false })).toBe(EXIT_FAILED);
    expect(sink.err).toBe("NotFound: Gone.\n");
    expect(sink.out).toBe("");
  });
});
