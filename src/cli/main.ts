// Entry point of the `esan` admin CLI (bin/esan runs this file on Node 24).
import { runCli } from "./program.ts";

// A reader that closes stdout early (`| head`) must not crash the CLI with an unhandled EPIPE;
// the streaming read notices the closed stream and stops (see OutputClosedError).
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code !== "EPIPE") throw err;
});

process.exitCode = await runCli(process.argv);
