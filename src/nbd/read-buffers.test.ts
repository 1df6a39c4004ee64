import net from "node:net";
import { afterEach, expect, test } from "vitest";
import { BufferPool } from "./buffer-pool.ts";
import { adoptWithReusedBuffers, ReadBuffers } from "./read-buffers.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A connected pair: the accepted side adopted with reused read buffers, and the client socket. */
async function adoptedPair(pool: BufferPool, onChunk: (chunk: Buffer) => void): Promise<{ server: net.Socket; client: net.Socket; reads: ReadBuffers }> {
  const reads = new ReadBuffers(pool, onChunk);
  let accept!: (socket: net.Socket) => void;
  const accepted = new Promise<net.Socket>((resolve) => (accept = resolve));
  const listener = net.createServer({ pauseOnConnect: true }, (socket) => accept(adoptWithReusedBuffers(socket, reads)));
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const client = net.connect((listener.address() as net.AddressInfo).port, "127.0.0.1");
  const server = await accepted;
  cleanups.push(() => {
    client.destroy();
    server.destroy();
    listener.close();
  });
  return { server, client, reads };
}

/** Writes `data` from the client and resolves with the next chunk the server side sees. */
function roundTrip(client: net.Socket, chunks: Buffer[], data: string): Promise<Buffer> {
  const before = chunks.length;
  client.write(data);
  return new Promise((resolve) => {
    const poll = (): void => (chunks.length > before ? resolve(chunks[before]!) : void setImmediate(poll));
    poll();
  });
}

test("reads land in one reused buffer; a held buffer is replaced and goes back to the pool when released", async () => {
  const pool = new BufferPool();
  const chunks: Buffer[] = [];
  const seen: string[] = [];
  let release: (() => void) | null = null;
  const { server, client, reads } = await adoptedPair(pool, (chunk) => {
    seen.push(chunk.toString());
    chunks.push(chunk);
    if (chunk.toString() === "hold") release = reads.hold(chunk.subarray(0, 2));
  });
  expect(server).toBeInstanceOf(net.Socket);
  const first = await roundTrip(client, chunks, "one");
  const second = await roundTrip(client, chunks, "two");
  expect(second.buffer).toBe(first.buffer);
  const held = await roundTrip(client, chunks, "hold");
  expect(held.buffer).toBe(first.buffer);
  const after = await roundTrip(client, chunks, "next");
  expect(after.buffer).not.toBe(held.buffer);
  expect(held.toString()).toBe("hold");
  expect(seen).toEqual(["one", "two", "hold", "next"]);
  const idle = pool.idleBytes;
  release!();
  expect(pool.idleBytes).toBe(idle + held.buffer.byteLength);
});

test("views of memory other than the current read buffer need no hold", () => {
  const reads = new ReadBuffers(new BufferPool(), () => undefined);
  const release = reads.hold(Buffer.alloc(10));
  expect(() => release()).not.toThrow();
});

test("a socket without the handle Node's reads need is left as it is, for the default read path", () => {
  const unconnected = new net.Socket();
  expect(adoptWithReusedBuffers(unconnected, new ReadBuffers(new BufferPool(), () => undefined))).toBe(unconnected);
  unconnected.destroy();
});
