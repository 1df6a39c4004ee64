// The fsfreeze seam of group snapshots: freeze a mounted filesystem so a snapshot taken meanwhile is filesystem-
// consistent, and thaw it again. Thaw is safe to repeat (thawing a filesystem that is not frozen succeeds), because
// the group controller must always thaw, also after a failure.
import { runTool } from "./commands.ts";
import { isMountPoint } from "./mounts.ts";

/** `fsfreeze -f DIR`: flushes and blocks writes to the filesystem mounted at `dir` until thawed. */
export async function freezeFilesystem(dir: string): Promise<void> {
  if (!isMountPoint(dir)) throw new Error(`Cannot freeze ${dir}: no filesystem is mounted there.`);
  const result = await runTool("fsfreeze", ["-f", dir]);
  if (result.code !== 0) throw new Error(`Cannot freeze ${dir}: fsfreeze -f exited with ${result.code}: ${result.stderr.trim()}`);
}

/** `fsfreeze -u DIR`; succeeds when the filesystem was not frozen (EINVAL) or is no longer mounted. */
export async function thawFilesystem(dir: string): Promise<void> {
  if (!isMountPoint(dir)) return;
  const result = await runTool("fsfreeze", ["-u", dir]);
  if (result.code === 0 || /Invalid argument/i.test(result.stderr)) return;
  throw new Error(`Cannot thaw ${dir}: fsfreeze -u exited with ${result.code}: ${result.stderr.trim()}`);
}
