/**
 * The coordinator's plan: the inputs in the order `tracemark scan` reads them, JSONL files cut into
 * byte ranges at line boundaries, text files whole (one document each), unreadable paths as errors.
 */
import { open, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { expandPaths, type InputFormat } from '../inputs.ts';

/** `path` as the scan names it (in sources and messages); `file`, absolute, is what workers open. */
export type Shard =
  | {
      readonly kind: 'jsonl';
      readonly path: string;
      readonly file: string;
      readonly start: number;
      readonly end: number;
    }
  | { readonly kind: 'text'; readonly path: string; readonly file: string; readonly bytes: number };

export type PlanEntry =
  | Shard
  | { readonly kind: 'error'; readonly source: string; readonly code: string; readonly message: string };

export function formatOf(path: string, format: InputFormat | undefined): InputFormat {
  if (format !== undefined) return format;
  return /\.(jsonl|ndjson)$/i.test(path) ? 'jsonl' : 'text';
}

/** Plans the scan of `paths`: JSONL ranges of about `shardBytes`, each ending after a newline or at the end. */
export async function planShards(
  paths: readonly string[],
  format: InputFormat | undefined,
  shardBytes: number,
): Promise<PlanEntry[]> {
  const entries: PlanEntry[] = [];
  for (const entry of await expandPaths(paths)) {
    if (typeof entry !== 'string') {
      entries.push({ kind: 'error', source: entry.source, ...entry.error });
      continue;
    }
    let size: number;
    try {
      size = (await stat(entry)).size;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      entries.push({
        kind: 'error',
        source: entry,
        code: 'TM_ERR_IO',
        message: `${entry}: cannot read (${code})`,
      });
      continue;
    }
    if (formatOf(entry, format) === 'text') {
      entries.push({ kind: 'text', path: entry, file: resolve(entry), bytes: size });
      continue;
    }
    for (const [start, end] of await lineRanges(entry, size, shardBytes))
      entries.push({ kind: 'jsonl', path: entry, file: resolve(entry), start, end });
  }
  return entries;
}

/** [start, end) ranges of about `shardBytes` that start at 0 or just after a newline. */
async function lineRanges(path: string, size: number, shardBytes: number): Promise<[number, number][]> {
  const ranges: [number, number][] = [];
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(64 * 1024);
    let start = 0;
    while (start < size) {
      let end = size;
      // The first newline at or after start + shardBytes − 1 ends the range.
      for (let at = start + shardBytes - 1; at < size; ) {
        const { bytesRead } = await file.read(buffer, 0, buffer.length, at);
        if (bytesRead === 0) break;
        const newline = buffer.subarray(0, bytesRead).indexOf(10);
        if (newline >= 0) {
          end = at + newline + 1;
          break;
        }
        at += bytesRead;
      }
      ranges.push([start, end]);
      start = end;
    }
  } finally {
    await file.close();
  }
  return ranges;
}
