// `esan volume attach|detach|attachments`: authorize a node to open one volume on the NBD endpoint, revoke it, list them.
import type { Command } from "commander";
import { withClient } from "./context.ts";
import { formatAttachment, formatAttachmentTable } from "./format.ts";
import { parseObjectId } from "./ids.ts";

/** Adds the attachment commands to the `volume` command group. */
export function registerAttachmentCommands(volume: Command): void {
  volume
    .command("attach")
    .argument("<vg/name>", "volume id")
    .description("issue the TLS-PSK identity and key that let a node open this volume over NBD (the same one again if it has one)")
    .requiredOption("--node <name>", "the node's name, as Kubernetes names it")
    .action(async (id: string, flags: { node: string }, command: Command) => {
      const ref = parseObjectId(id, "volume");
      await withClient(command, async ({ client, print }) => {
        const credential = await client.attach(ref.id, flags.node);
        print(credential, () => formatAttachment(credential));
      });
    });

  volume
    .command("detach")
    .argument("<vg/name>", "volume id")
    .description("revoke a node's credential for this volume and drop its NBD connections (succeeds if it was not attached)")
    .requiredOption("--node <name>", "the node's name")
    .action(async (id: string, flags: { node: string }, command: Command) => {
      const ref = parseObjectId(id, "volume");
      await withClient(command, async ({ client, print }) => {
        const { detached } = await client.detach(ref.id, flags.node);
        const summary = { volumeId: ref.id, nodeId: flags.node, detached };
        print(summary, () => (detached ? `detached ${ref.id} from node ${flags.node}` : `${ref.id} was not attached to node ${flags.node}`));
      });
    });

  volume
    .command("attachments")
    .description("list which nodes may open which volumes (keys are not shown)")
    .option("--volume <vg/name>", "only this volume's attachments (default: all)")
    .option("--node <name>", "only this node's attachments (default: all)")
    .action(async (flags: { volume?: string; node?: string }, command: Command) => {
      const volumeId = flags.volume === undefined ? undefined : parseObjectId(flags.volume, "--volume").id;
      await withClient(command, async ({ client, print }) => {
        const attachments = await client.listAttachments({
          ...(volumeId === undefined ? {} : { volumeId }),
          ...(flags.node === undefined ? {} : { nodeId: flags.node }),
        });
        print(attachments, () => formatAttachmentTable(attachments));
      });
    });
}
