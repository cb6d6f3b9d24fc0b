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
