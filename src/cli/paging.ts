// Collecting every entry of a paginated engine listing.
import type { ListPage } from "../storage/types.ts";

/** Calls `fetchPage` with each `nextToken` in turn until the SAN says there is no more, and returns all entries. */
export async function listAll<T>(fetchPage: (startingToken: string | undefined) => ListPage<T> | Promise<ListPage<T>>): Promise<T[]> {
  const entries: T[] = [];
  let token: string | undefined;
  for (;;) {
    const page = await fetchPage(token);
    entries.push(...page.entries);
    if (!page.nextToken || page.nextToken === token) return entries;
    token = page.nextToken;
  }
}
