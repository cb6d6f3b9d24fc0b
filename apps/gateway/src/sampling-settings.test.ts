import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Json,
  removeTemporaryDirectories,
  startTestGateway,
  type TestGateway,
  temporaryDirectory,
  writeFixedKeyFile,
} from './test-support/harness.ts';

afterAll(removeTemporaryDirectories);

const MODEL = 'tracemark-ngram';
let gateway: TestGateway;

beforeAll(async () => {
  // A fixed key, so that the (seeded) completions and their verdicts are the same on every run.
  const keyFile = join(temporaryDirectory(), 'key.json');
  writeFixedKeyFile(keyFile, 23);
  gateway = await startTestGateway({ config: { keyFile } });
});
afterAll(async () => {
  await gateway?.close();
});

describe('sampling settings and the mark', () => {
  it.each([
    [0.1, 1],
    [0.1, 0.95],
    [1e-9, 1],
    [1, 1e-9],
    [0.3, 0.3],
    [1, 0.1],
  ])('temperature %s, top_p %s: the service detects its own output', async (temperature, topP) => {
    // Near-greedy text from the n-gram model can loop (about 1 in 10 leaves too few distinct scored
    // tokens: research/results/sampling.md), so three prompts, of which at least two must be found.
    const prompts = [
      'Tell me about the history of the railway in the valley.',
      'What did the committee decide about the new school?',
      'Describe the harbour town in the morning.',
    ];
    const verdicts: string[] = [];
    for (const [i, content] of prompts.entries()) {
      const completion = await gateway.call('POST', '/v1/chat/completions', {
        model: MODEL,
        messages: [{ role: 'user', content }],
        max_tokens: 200,
        temperature,
        top_p: topP,
        seed: 11 + i,
      });
      expect(completion.status).toBe(200);
      const body: Json = completion.json;
      const text: string = body.choices[0].message.content;
      const strength = body.tracemark.watermark_strength[0];
      expect(strength.index).toBe(0);
      expect(strength.tokens).toBe(body.usage.completion_tokens);
      expect(strength.expected_green_fraction).toBeGreaterThan(0.35);
      expect(strength.expected_log10_p).toBeLessThan(-4);
      expect(strength.spike_entropy_sum).toBeGreaterThan(0);
      const detected = await gateway.call('POST', '/v1/detect', { text });
      expect(detected.status).toBe(200);
      verdicts.push(detected.json.verdict);
    }
    expect(verdicts).not.toContain('not_watermarked');
    expect(verdicts.filter((verdict) => verdict === 'watermarked').length).toBeGreaterThanOrEqual(2);
  });

  it('streams carry the strength too, in the usage chunk', async () => {
    const response = await fetch(`${gateway.url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gateway.devKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: MODEL,
        prompt: 'The weather report for the coast',
        max_tokens: 40,
        temperature: 0.2,
        top_p: 0.2,
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
    const events = (await response.text())
      .split('\n\n')
      .filter((line) => line.startsWith('data: {'))
      .map((line) => JSON.parse(line.slice(6)) as Json);
    const usage = events.find((event) => event.usage !== undefined && event.usage !== null);
    expect(usage.tracemark.watermark_strength).toHaveLength(1);
    expect(usage.tracemark.watermark_strength[0].tokens).toBe(usage.usage.completion_tokens);
  });
});
