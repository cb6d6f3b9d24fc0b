import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTextCorpus } from './text-corpus.js';
import { trainFromText } from './train.js';

let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'tracemark-lm-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('loadTextCorpus', () => {
  it('splits a text file at blank lines', async () => {
    const path = join(directory, 'corpus.txt');
    await writeFile(path, '\n\nFirst document,\nsecond line.\n\n\n  \nSecond document.\r\n\r\nThird.\n');
    expect(await loadTextCorpus(path)).toEqual([
      'First document,\nsecond line.',
      'Second document.',
      'Third.',
    ]);
  });

  it('reads JSONL with the default or a chosen field', async () => {
    const path = join(directory, 'corpus.jsonl');
    await writeFile(path, '{"text": "one", "body": "uno"}\n\n{"text": "two\\nlines", "body": "dos"}\n');
    expect(await loadTextCorpus(path)).toEqual(['one', 'two\nlines']);
    expect(await loadTextCorpus(path, { field: 'body' })).toEqual(['uno', 'dos']);
    const other = join(directory, 'records.log');
    await writeFile(other, '{"text": "forced"}\n');
    expect(await loadTextCorpus(other, { format: 'jsonl' })).toEqual(['forced']);
  });

  it('reports the line of a bad record', async () => {
    const path = join(directory, 'bad.jsonl');
    await writeFile(path, '{"text": "ok"}\n{"text": 3}\n');
    await expect(loadTextCorpus(path)).rejects.toThrow(/bad\.jsonl:2: field "text" is not a string/);
    await writeFile(path, '{"text": "ok"}\nnot json\n');
    await expect(loadTextCorpus(path)).rejects.toThrow(/bad\.jsonl:2: not valid JSON/);
    await expect(loadTextCorpus(join(directory, 'missing.txt'))).rejects.toThrow(/ENOENT/);
    await expect(loadTextCorpus(path, { format: 'csv' as 'text' })).rejects.toThrow(RangeError);
  });

  it('trains a model on a user JSONL file', async () => {
    const path = join(directory, 'student.jsonl');
    const sentences = [
      'The watermark detector reads the text and counts the green tokens.',
      'A green token is chosen by a keyed hash of the previous token.',
      'The detector reports a p-value for the number of green tokens.',
    ];
    const lines = Array.from({ length: 30 }, (_, i) => JSON.stringify({ text: sentences[i % 3], id: i }));
    await writeFile(path, `${lines.join('\n')}\n`);
    const tokenizer = getTokenizer('cl100k_base');
    const model = await trainFromText({ texts: await loadTextCorpus(path), tokenizer, order: 3 });
    expect(model.metadata.trainingDocuments).toBe(30);
    const seen = model.perplexity(tokenizer.encode(sentences[0]!));
    const unseen = model.perplexity(
      tokenizer.encode('Purple elephants dance quietly under the autumn moon.'),
    );
    expect(seen).toBeLessThan(2);
    expect(unseen).toBeGreaterThan(100 * seen);
  });
});
