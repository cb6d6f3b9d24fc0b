/** The Brown bigram table of the spoofing test: built once, stored in the cache directory, read back equal. */
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, describe, expect, it } from 'vitest';
import { loadBrownBigramCounts } from './reference-bigrams.ts';

const directory = mkdtempSync(join(tmpdir(), 'tracemark-bigrams-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

describe('the Brown bigram table', () => {
  it('is written to the cache directory once, read back with the same counts, and rebuilt when damaged', async () => {
    const tokenizer = getTokenizer('cl100k_base');
    const built = await loadBrownBigramCounts(tokenizer, directory);
    const [file] = readdirSync(directory).filter((name) => name.startsWith('brown-bigrams-'));
    expect(file).toMatch(/^brown-bigrams-.+-cl100k_base-v1\.bin$/);
    expect(statSync(join(directory, file!)).size).toBe(12 + built.size * 12);
    const text = tokenizer.encodeFast(
      'The committee said on Tuesday that the jury had found no evidence of it.',
    );
    const countsOf = (table: typeof built) => Array.from(text, (_, i) => table.count(text, i));
    expect(countsOf(built).some((count) => count > 0)).toBe(true);

    const read = await loadBrownBigramCounts(tokenizer, directory);
    expect(read).not.toBe(built);
    expect(read.size).toBe(built.size);
    expect(countsOf(read)).toEqual(countsOf(built));

    writeFileSync(join(directory, file!), 'not a table');
    const rebuilt = await loadBrownBigramCounts(tokenizer, directory);
    expect(countsOf(rebuilt)).toEqual(countsOf(built));
    expect(statSync(join(directory, file!)).size).toBe(12 + built.size * 12);
  }, 60_000);
});
