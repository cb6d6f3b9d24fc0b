import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createBytePairEncoder } from './byte-pair-encoder.js';
import { loadCorpus } from './reference-encoders.test-helper.js';
import { decodeTableFile, rankSource, readTableFile } from './table-file.js';
import { TokenTable } from './token-table.js';
import { getTokenizer, TABLE_FILE_IDS, writeTableFiles } from './tokenizer.js';

describe('token table files', () => {
  const directory = mkdtempSync(join(tmpdir(), 'tracemark-tables-'));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));
  const [path] = writeTableFiles(directory);
  const id = TABLE_FILE_IDS[0]!;
  const source = rankSource(id);

  it('hold the tables the rank file builds: the same ids for every document of the corpus sample', async () => {
    expect(TABLE_FILE_IDS).toEqual(['cl100k_base']);
    const file = readTableFile(path!, id, source);
    expect(file).not.toBeNull();
    const fromFile = createBytePairEncoder({
      pattern: file!.pattern,
      table: new TokenTable(file!.byteTable, file!.ordinaryTokenCount, file!.slots),
    });
    const built = getTokenizer(id);
    for (const document of await loadCorpus('sample')) {
      const text = built.normalize(document.text);
      expect(Array.from(fromFile.encode(text))).toEqual(Array.from(built.encode(text)));
    }
    // decode reads the byte table: every ordinary token's bytes, and the special tokens'
    const { bytes, offsets } = file!.byteTable;
    for (const token of [0, 9906, 100_255, 100_257, 100_276]) {
      expect(built.decode([token])).toBe(
        new TextDecoder().decode(bytes.subarray(offsets[token]!, offsets[token + 1]!)),
      );
    }
  });

  it('are refused when corrupt, cut short, of another rank file or another id, so that the tables are built instead', () => {
    const bytes = readFileSync(path!);
    expect(decodeTableFile(bytes, id, source)).not.toBeNull();
    const flipped = Uint8Array.from(bytes);
    flipped[flipped.length - 1000]! ^= 1;
    expect(decodeTableFile(flipped, id, source)).toBeNull();
    expect(decodeTableFile(bytes.subarray(0, bytes.length - 4), id, source)).toBeNull();
    expect(decodeTableFile(bytes.subarray(0, 6), id, source)).toBeNull();
    expect(decodeTableFile(bytes, id, { ...source, version: '0.0.0' })).toBeNull();
    expect(decodeTableFile(bytes, id, { ...source, size: source.size + 1 })).toBeNull();
    expect(decodeTableFile(bytes, 'gpt2', source)).toBeNull();
    const garbled = Uint8Array.from(bytes);
    garbled[14] = 0x7b; // the header is no longer JSON
    expect(decodeTableFile(garbled, id, source)).toBeNull();
    expect(readTableFile(join(directory, 'missing.bin'), id, source)).toBeNull();
  });

  it('are read from an unaligned buffer by copying it', () => {
    const bytes = readFileSync(path!);
    const shifted = new Uint8Array(bytes.length + 1).subarray(1);
    shifted.set(bytes);
    const file = decodeTableFile(shifted, id, source);
    expect(file).not.toBeNull();
    expect(Array.from(file!.slots.byteIds.subarray(97, 100))).toEqual([64, 65, 66]);
  });

  it('the build writes one to dist/tables/ for the default tokenizer', () => {
    const built = new URL(`../dist/tables/${id}.bin`, import.meta.url);
    // `pnpm test` builds first
    expect(decodeTableFile(readFileSync(built), id, source)).not.toBeNull();
  });

  it('a file made by this build equals the one the build wrote', () => {
    const again = join(directory, 'again');
    writeTableFiles(again);
    expect(readFileSync(join(again, `${id}.bin`)).equals(readFileSync(path!))).toBe(true);
  });
});
