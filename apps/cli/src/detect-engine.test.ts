import { createWatermarkKey, serializeKeyFile } from '@tracemark/core';
import { describe, expect, it } from 'vitest';
import { createEngine, type Outcome, outcomeJson } from './detect-engine.ts';

const keyFiles = [serializeKeyFile(createWatermarkKey({ secret: new Uint8Array(32).fill(7) }))];
const texts = [
  JSON.stringify({ text: 'The committee met on Tuesday to discuss the budget for the coming year.' }),
  '',
  '{not json',
  JSON.stringify({ text: 'Short.' }),
  JSON.stringify({ output: 'An answer written by a model, read from the output field.', prompt: 'Q?' }),
  JSON.stringify({ text: [1, 2, 3, 2 ** 31] }),
  JSON.stringify({ text: 'Tokens and text alike end up in the same results.' }),
];

describe('detect engine: a batch printed in the worker', () => {
  it('gives the JSON and the counts that printing each outcome on the main thread gives', () => {
    const engine = createEngine({ keyFiles, window: false });
    const job = { kind: 'lines' as const, source: 'in.jsonl', firstLine: 1, texts };
    const plain = engine.run(job);
    const rendered = engine.run({ ...job, render: 'json' });
    if (plain.kind !== 'outcomes' || rendered.kind !== 'rendered') throw new Error('unexpected result kinds');
    const outcomes: Outcome[] = plain.outcomes;
    const scored = outcomes.filter((outcome) => !('error' in outcome));
    expect(rendered.rendered.json).toBe(outcomes.map((o) => JSON.stringify(outcomeJson(o))).join(',\n'));
    expect(rendered.rendered.documents).toBe(6);
    expect(rendered.rendered.errors).toBe(2);
    expect(
      rendered.rendered.watermarked + rendered.rendered.notWatermarked + rendered.rendered.insufficient,
    ).toBe(4);
    expect(rendered.rendered.numTokens).toBe(scored.reduce((sum, o) => sum + o.numTokens, 0));
    expect(rendered.rendered.first).toEqual(scored.slice(0, 2));
  });

  it('renders an empty batch as no text', () => {
    const engine = createEngine({ keyFiles, window: false });
    const result = engine.run({
      kind: 'lines',
      source: 'in.jsonl',
      firstLine: 1,
      texts: ['', ''],
      render: 'json',
    });
    expect(result).toEqual({
      kind: 'rendered',
      rendered: {
        json: '',
        documents: 0,
        errors: 0,
        watermarked: 0,
        notWatermarked: 0,
        insufficient: 0,
        numTokens: 0,
        first: [],
      },
    });
  });
});

describe('detect engine: raw line batches', () => {
  it('decodes bytes to the outcomes the same lines give as strings; errors name the file and line', () => {
    const engine = createEngine({ keyFiles, window: false });
    const data = new TextEncoder().encode(`\uFEFF${texts.join('\r\n')}\n`);
    const fromBytes = engine.run({ kind: 'line-bytes', source: 'in.jsonl', firstLine: 1, data });
    const fromTexts = engine.run({ kind: 'lines', source: 'in.jsonl', firstLine: 1, texts });
    if (fromBytes.kind !== 'outcomes' || fromTexts.kind !== 'outcomes')
      throw new Error('unexpected result kinds');
    expect(fromBytes.outcomes).toEqual(fromTexts.outcomes);
    expect(fromBytes.outcomes[1]).toMatchObject({
      source: 'in.jsonl:3',
      error: { code: 'TM_ERR_INVALID_JSON', message: 'in.jsonl:3: not valid JSON' },
    });
    // a later batch keeps a leading U+FEFF: it is part of the line, which is then not JSON
    const later = engine.run({ kind: 'line-bytes', source: 'in.jsonl', firstLine: 41, data, render: 'json' });
    if (later.kind !== 'rendered') throw new Error('unexpected result kind');
    expect(later.rendered.json.split(',\n')[0]).toContain('"in.jsonl:41: not valid JSON"');
  });
});
