/**
 * A gateway serving with a Gumbel key (docs/spec/watermark-gumbel.md): the embedded model's output
 * carries the distortion-free mark, /v1/detect finds it, and nothing reports a green-list strength.
 * Through the real HTTP server.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createWatermarkKey, serializeKeyFile } from '@tracemark/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Json,
  removeTemporaryDirectories,
  startTestGateway,
  type TestGateway,
  temporaryDirectory,
} from './test-support/harness.ts';

afterAll(removeTemporaryDirectories);

const MODEL = 'tracemark-ngram';
let gateway: TestGateway;

beforeAll(async () => {
  const keyFile = join(temporaryDirectory(), 'gumbel-key.json');
  const key = createWatermarkKey({
    secret: new Uint8Array(32).fill(41),
    scheme: { name: 'gumbel', contextWidth: 4 },
  });
  writeFileSync(keyFile, serializeKeyFile(key), { mode: 0o600 });
  gateway = await startTestGateway({ config: { keyFile } });
});
afterAll(async () => {
  await gateway?.close();
});

describe('a Gumbel serving key', () => {
  it('marks the embedded model output; /v1/detect finds it with the Gumbel score', async () => {
    const completion = await gateway.call('POST', '/v1/chat/completions', {
      model: MODEL,
      messages: [{ role: 'user', content: 'Tell me about the history of the railway in the valley.' }],
      max_tokens: 160,
      seed: 5,
    });
    expect(completion.status).toBe(200);
    const body: Json = completion.json;
    expect(body.tracemark.watermark_strength).toBeUndefined();
    const text: string = body.choices[0].message.content;
    const detected = await gateway.call('POST', '/v1/detect', { text });
    expect(detected.status).toBe(200);
    expect(detected.json.verdict).toBe('watermarked');
    expect(detected.json.numGreen).toBeNull();
    expect(detected.json.score).toBeGreaterThan(detected.json.numScored);
    // Unmarked text under the same key: never not_watermarked (the Gumbel schemes have no alternative).
    const human = await gateway.call('POST', '/v1/detect', {
      text: 'The committee met on Tuesday and decided, after a long debate about the budget, that the new school would open in the autumn of next year.',
    });
    expect(human.status).toBe(200);
    expect(human.json.verdict).toBe('insufficient');
  });

  it('/v1/verify finds the issued completion and the mark, with the Gumbel score in the report', async () => {
    const completion = await gateway.call('POST', '/v1/chat/completions', {
      model: MODEL,
      messages: [{ role: 'user', content: 'Describe the harbour town in the morning.' }],
      max_tokens: 120,
      seed: 9,
    });
    expect(completion.status).toBe(200);
    const text: string = completion.json.choices[0].message.content;
    const verified = await gateway.call('POST', '/v1/verify', { text });
    expect(verified.status).toBe(200);
    expect(verified.json.verdict).toBe('watermarked');
    expect(verified.json.issuance.match).toBe('exact');
    expect(verified.json.detection.numGreen).toBeNull();
    expect(verified.json.detection.score).toBeGreaterThan(verified.json.detection.numScored);
    expect(verified.json.summary).not.toMatch(/NaN/);
  });

  it('/v1/scan finds a corpus of its outputs radioactive, with the exact null and no fake keys', async () => {
    const documents: { text: string }[] = [];
    for (const [i, content] of [
      'The river in spring.',
      'A letter from the mayor.',
      'Notes on the harvest.',
    ].entries()) {
      const completion = await gateway.call('POST', '/v1/chat/completions', {
        model: MODEL,
        messages: [{ role: 'user', content }],
        max_tokens: 60,
        seed: 30 + i,
      });
      documents.push({ text: completion.json.choices[0].message.content });
    }
    const response = await gateway.call('POST', '/v1/scan', { documents });
    expect(response.status, response.text).toBe(200);
    expect(response.json.verdict).toBe('radioactive');
    expect(response.json.keys[0].calibration).toBeNull();
  });
});
