/**
 * Token tables saved as files. Building a tokenizer's tables from its rank file (base64 decoding, then
 * hashing every token) takes about 70 ms of CPU, in every process and every worker thread; reading them
 * from a file takes a few. `pnpm build` writes the default tokenizer's file into dist/tables/; a file is
 * used only if it was made from the rank file installed now (js-tiktoken's version and the file's size)
 * and its content hashes to the digest it carries; anything else is rebuilt from the rank file.
 *
 * Layout: the 8 magic bytes, the header's length (u32, little-endian), the header (JSON), zeros to a
 * multiple of 4 bytes, then the arrays in the header's order, each a multiple of 4 bytes long.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ByteTable } from './byte-table.js';
import type { TokenizerId } from './encodings.js';
import type { TokenTableSlots } from './token-table.js';

const MAGIC = 'TMTOKTB1';
const require = createRequire(import.meta.url);

/** Where the rank file of `id` lies, and what identifies its content: its package's version and its size. */
export interface RankSource {
  readonly path: string;
  readonly version: string;
  readonly size: number;
}

export function rankSource(id: TokenizerId): RankSource {
  const path = require.resolve(`js-tiktoken/ranks/${id}`);
  return { path, version: packageVersion(path), size: statSync(path).size };
}

/** The version in the package.json of js-tiktoken above `path` (its exports map hides the file from require). */
function packageVersion(path: string): string {
  for (let directory = dirname(path); directory !== dirname(directory); directory = dirname(directory)) {
    try {
      const found = JSON.parse(readFileSync(join(directory, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (found.name === 'js-tiktoken' && typeof found.version === 'string') return found.version;
    } catch {
      // no package.json here: look further up
    }
  }
  return 'unknown';
}

interface Header {
  readonly id: TokenizerId;
  readonly rankVersion: string;
  readonly rankSize: number;
  readonly pattern: string;
  readonly ordinaryTokenCount: number;
  readonly longestToken: number;
  readonly longestProbe: number;
  /** Lengths of the arrays, in elements: offsets, slots, byteIds, pairIds, bytes (padded to 4 bytes). */
  readonly lengths: readonly [number, number, number, number, number];
  /** SHA-256 of everything after the header's padding, hex. */
  readonly sha256: string;
}

/** A tokenizer's tables as a file holds them. */
export interface TableFileContent {
  readonly pattern: string;
  readonly ordinaryTokenCount: number;
  readonly byteTable: ByteTable;
  readonly slots: TokenTableSlots;
}

const padded = (bytes: number): number => Math.ceil(bytes / 4) * 4;

/** The bytes of a table file for `id`, made from the rank file `source`. */
export function encodeTableFile(id: TokenizerId, source: RankSource, content: TableFileContent): Uint8Array {
  const { byteTable, slots } = content;
  const arrays = [byteTable.offsets, slots.slots, slots.byteIds, slots.pairIds] as const;
  const bytesLength = byteTable.bytes.length;
  const payload = new Uint8Array(
    arrays.reduce((sum, array) => sum + array.byteLength, 0) + padded(bytesLength),
  );
  let at = 0;
  for (const array of arrays) {
    payload.set(new Uint8Array(array.buffer, array.byteOffset, array.byteLength), at);
    at += array.byteLength;
  }
  payload.set(byteTable.bytes, at);
  const header: Header = {
    id,
    rankVersion: source.version,
    rankSize: source.size,
    pattern: content.pattern,
    ordinaryTokenCount: content.ordinaryTokenCount,
    longestToken: slots.longestToken,
    longestProbe: slots.longestProbe,
    lengths: [byteTable.offsets.length, slots.slots.length, 256, 1 << 16, bytesLength],
    sha256: createHash('sha256').update(payload).digest('hex'),
  };
  const headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const start = padded(MAGIC.length + 4 + headerBytes.length);
  const file = new Uint8Array(start + payload.length);
  file.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(file.buffer).setUint32(MAGIC.length, headerBytes.length, true);
  file.set(headerBytes, MAGIC.length + 4);
  file.set(payload, start);
  return file;
}

/** Writes the table file of `id` to `path`. */
export function writeTableFile(
  path: string,
  id: TokenizerId,
  source: RankSource,
  content: TableFileContent,
): void {
  writeFileSync(path, encodeTableFile(id, source, content));
}

/**
 * The tables in `file` if it is a table file of `id` made from the rank file `source` and whole (its
 * digest matches); null otherwise.
 */
export function decodeTableFile(
  file: Uint8Array,
  id: TokenizerId,
  source: RankSource,
): TableFileContent | null {
  if (file.length < MAGIC.length + 4) return null;
  if (new TextDecoder().decode(file.subarray(0, MAGIC.length)) !== MAGIC) return null;
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const headerLength = view.getUint32(MAGIC.length, true);
  if (MAGIC.length + 4 + headerLength > file.length) return null;
  let header: Header;
  try {
    header = JSON.parse(
      new TextDecoder().decode(file.subarray(MAGIC.length + 4, MAGIC.length + 4 + headerLength)),
    ) as Header;
  } catch {
    return null;
  }
  if (header.id !== id || header.rankVersion !== source.version || header.rankSize !== source.size) {
    return null;
  }
  const start = padded(MAGIC.length + 4 + headerLength);
  const [offsetCount, slotCount, byteIdCount, pairIdCount, bytesLength] = header.lengths;
  const end = start + 4 * (offsetCount + slotCount + byteIdCount + pairIdCount) + padded(bytesLength);
  if (end !== file.length) return null;
  let payload = file.subarray(start, end);
  if (createHash('sha256').update(payload).digest('hex') !== header.sha256) return null;
  // The typed arrays view the file's memory where it is aligned to 4 bytes (a file read whole is), else a copy.
  if (payload.byteOffset % 4 !== 0) payload = new Uint8Array(payload);
  let at = payload.byteOffset;
  const words = (count: number): Int32Array => {
    const array = new Int32Array(payload.buffer, at, count);
    at += 4 * count;
    return array;
  };
  const offsets = new Uint32Array(payload.buffer, at, offsetCount);
  at += 4 * offsetCount;
  const slots = words(slotCount);
  const byteIds = words(byteIdCount);
  const pairIds = words(pairIdCount);
  const bytes = new Uint8Array(payload.buffer, at, bytesLength);
  return {
    pattern: header.pattern,
    ordinaryTokenCount: header.ordinaryTokenCount,
    byteTable: { bytes, offsets },
    slots: {
      slots,
      byteIds,
      pairIds,
      longestToken: header.longestToken,
      longestProbe: header.longestProbe,
    },
  };
}

/** {@link decodeTableFile} of the file at `path`; null where it cannot be read. */
export function readTableFile(
  path: string | URL,
  id: TokenizerId,
  source: RankSource,
): TableFileContent | null {
  let file: Uint8Array;
  try {
    file = readFileSync(path);
  } catch {
    return null;
  }
  return decodeTableFile(file, id, source);
}
