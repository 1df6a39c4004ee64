// How every command reports: JSON or human text on stdout, and errors as `CODE: sentence` (or JSON) with an exit code.
import { SanApiError } from "../san/errors.ts";
import { EsanError } from "../storage/errors.ts";

/** Exit status of a command that did what it was asked. */
export const EXIT_OK = 0;
/** Exit status when the engine refused the request, an internal error happened, or `check` found faults. */
export const EXIT_FAILED = 1;
/** Exit status of a command line that could not be parsed (unknown command, missing option or argument). */
export const EXIT_USAGE = 2;

/** Where rendered text goes; the CLI passes process streams, tests pass collectors. */
export interface OutputSink {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** The sink that writes to the process's own stdout and stderr. */
export const processSink: OutputSink = {
  stdout: (text) => {
    process.stdout.write(text);
  },
  stderr: (text) => {
    process.stderr.write(text);
  },
};

/** Renders a value as the CLI's JSON: two-space indented, newline-terminated. */
export function renderJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Prints one command's result: `value` as-is under --json, else the human rendering (a trailing newline is added). */
export function printResult(sink: OutputSink, json: boolean, value: unknown, human: () => string): void {
  if (json) {
    sink.stdout(renderJson(value));
    return;
  }
  const text = human();
  if (text !== "") sink.stdout(text.endsWith("\n") ? text : `${text}\n`);
}

/** An error ready to print: which stream, what text, and the exit status it implies. */
export interface RenderedError {
  stream: "stdout" | "stderr";
  text: string;
  exitCode: number;
}

/** Options of renderError: `json` selects the JSON shape, `debug` (ESAN_DEBUG=1) adds the stack of unexpected errors. */
export interface RenderErrorOptions {
  json: boolean;
  debug: boolean;
}

/**
 * Turns a thrown value into what the user sees. EsanErrors keep their code and sentence, and so do SanApiErrors (an
 * unreachable service, refused credentials) and the service's own Internal sentence. Anything else is a bug,
 * shown as `Internal: message`; its stack is printed only with ESAN_DEBUG=1 so users never see a trace by default.
 * JSON errors go to stdout, so a tool reading --json output gets the failure on the same stream as the success.
 */
export function renderError(err: unknown, options: RenderErrorOptions): RenderedError {
  const known = err instanceof EsanError || err instanceof SanApiError;
  const code = known ? err.code : "Internal";
  const message = err instanceof Error ? err.message : String(err);
  if (options.json) {
    return { stream: "stdout", text: renderJson({ error: { code, message } }), exitCode: EXIT_FAILED };
  }
  let text = `${code}: ${message}\n`;
  if (!known && options.debug && err instanceof Error && err.stack) text += `${err.stack}\n`;
  return { stream: "stderr", text, exitCode: EXIT_FAILED };
}

/** Prints a thrown value with renderError and returns the exit status to use. */
export function printError(sink: OutputSink, err: unknown, options: RenderErrorOptions): number {
  const rendered = renderError(err, options);
  sink[rendered.stream](rendered.text);
  return rendered.exitCode;
}
