// A node plugin process for the restart tests: runs createNodeService (which re-attaches recorded stagings before it
// resolves) and then answers JSON lines on stdin — {"id","method","request"} — with {"id","result"} or
// {"id","error":{"code","message"}} on stdout. Usage: node csi-node-host.ts STATE_DIR NODE_ID.
// The test kills this process with SIGKILL to play a crashing plugin, and starts it again.
import readline from "node:readline";
import pino from "pino";
import { CsiError } from "../../src/csi/errors.ts";
import { createNodeService } from "../../src/csi/node/service.ts";

const [stateDir, nodeId] = process.argv.slice(2);
if (!stateDir || !nodeId) {
  process.stderr.write("usage: csi-node-host.ts STATE_DIR NODE_ID\n");
  process.exit(2);
}
const service = await createNodeService({ nodeId, stateDir, logger: pino({ level: "info" }, pino.destination({ dest: 2, sync: true })) });
const recovered = Object.fromEntries([...service.recovered].map(([volumeId, outcome]) => [volumeId, outcome instanceof Error ? `error: ${outcome.message}` : outcome]));
process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid, recovered })}\n`);

const handlers = service as unknown as Record<string, (request: unknown) => Promise<unknown>>;
for await (const line of readline.createInterface({ input: process.stdin })) {
  const { id, method, request } = JSON.parse(line) as { id: number; method: string; request: unknown };
  try {
    const handler = handlers[method];
    if (typeof handler !== "function") throw new Error(`no method ${method}`);
    const result = await handler.call(service, request);
    process.stdout.write(`${JSON.stringify({ id, result })}\n`);
  } catch (error) {
    const code = error instanceof CsiError ? error.code : -1;
    process.stdout.write(`${JSON.stringify({ id, error: { code, message: error instanceof Error ? error.message : String(error) } })}\n`);
  }
}
