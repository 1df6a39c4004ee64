// `esan check`: the engine's full consistency check; exits 1 when it finds any fault.
import type { Command } from "commander";
import { withClient } from "./context.ts";
import { formatCheckReport } from "./format.ts";
import { EXIT_FAILED } from "./output.ts";

/** Adds the `check` command to the program. */
export function registerCheckCommand(program: Command): void {
  program
    .command("check")
    .description("check refcounts, extent ownership and leaks; exit 1 if any fault is found")
    .action(async (_flags: unknown, command: Command) => {
      await withClient(command, async ({ client, print }) => {
        const report = await client.check();
        print(report, () => formatCheckReport(report));
        if (!report.ok) process.exitCode = EXIT_FAILED;
      });
    });
}
