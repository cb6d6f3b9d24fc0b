/**
 * Upstream round trips per token at temperature 0.7, with the embedded model behind an OpenAI-compatible
 * server that serves `n` (test-support/quirky-upstream.ts in front of test-support/model-server.ts). One
 * sample per round trip is how token driving worked before; the default asks for several. The numbers are
 * printed for the README; TRACEMARK_MEASURE_CHOICES=64,256 adds larger settings (slow: the server is Node).
 *
 *   pnpm exec vitest run apps/gateway/src/upstream-round-trips.test.ts
 */
import { createRandom, createWatermarker, createWatermarkKey } from '@tracemark/core';
import { createTextDetector } from '@tracemark/detection';
import { loadDefaultModel } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUpstreamBackend, DEFAULT_DRAFT_CHOICES } from './backends/upstream.ts';
import { type ModelServer, startModelServer } from './test-support/model-server.ts';
import { type QuirkyUpstream, startQuirkyUpstream } from './test-support/quirky-upstream.ts';

const tokenizer = getTokenizer('cl100k_base');
const key = createWatermarkKey({ secret: new Uint8Array(32).fill(5) });
const watermarker = createWatermarker(key);
const PROMPTS = ['The committee said on Tuesday that', 'It was late in the evening when'];
const TOKENS_PER_PROMPT = 150;
let server: ModelServer;
let proxy: QuirkyUpstream;

beforeAll(async () => {
  const model = await loadDefaultModel({ tokenizerId: 'cl100k_base' });
  server = await startModelServer({ model, tokenizer });
  proxy = await startQuirkyUpstream({ target: server.url });
});
afterAll(async () => {
  await proxy?.close();
  await server?.close();
});

async function measure(draftChoices: number, draftTokens: number, marker = watermarker, label = 'lefthash') {
  const backend = await createUpstreamBackend({
    url: proxy.url,
    apiKey: null,
    model: null,
    api: 'completions',
    topLogprobs: 20,
    draftTokens,
    draftChoices,
    timeoutMs: 60_000,
    tokenizer,
  });
  const before = backend.stats.roundTrips;
  let tokens = 0;
  const texts: string[] = [];
  for (const [index, prompt] of PROMPTS.entries()) {
    const out: number[] = [];
    for await (const step of backend.generate({
      model: 'ngram-upstream',
      promptTokens: tokenizer.encode(prompt),
      messages: null,
      maxTokens: TOKENS_PER_PROMPT,
      temperature: 0.7,
      topP: 1,
      random: createRandom(100 + index),
      seed: 100 + index,
      watermarker: marker,
      signal: new AbortController().signal,
      topLogprobs: null,
    })) {
      out.push(step.token);
    }
    tokens += out.length;
    texts.push(tokenizer.decode(out));
  }
  const tripsPerToken = (backend.stats.roundTrips - before) / tokens;
  console.info(
    `round trips per token at T = 0.7 (${label}): ${tripsPerToken.toFixed(3)} with n = ${draftChoices} samples of D = ${draftTokens} tokens (${tokens} tokens)`,
  );
  return { tripsPerToken, texts };
}

describe('upstream round trips per token (temperature 0.7, embedded model upstream)', () => {
  it('several samples per round trip need fewer round trips than one, and the text is marked', async () => {
    const single = await measure(1, 8);
    const several = await measure(DEFAULT_DRAFT_CHOICES, 8);
    expect(several.tripsPerToken).toBeLessThan(single.tripsPerToken * 0.8);
    const detector = createTextDetector({ keys: [key] });
    for (const text of several.texts) expect(detector.detectText(text).verdict).toBe('watermarked');
    for (const choices of (process.env.TRACEMARK_MEASURE_CHOICES ?? '').split(',').filter(Boolean)) {
      await measure(Number(choices), 16);
    }
  }, 600_000);

  it('a Gumbel key: the keyed choice is computed from the top-k, the samples continue it; the text is marked', async () => {
    const gumbelKey = createWatermarkKey({
      secret: new Uint8Array(32).fill(6),
      scheme: { name: 'gumbel', contextWidth: 4 },
    });
    const single = await measure(1, 8, createWatermarker(gumbelKey), 'gumbel');
    const several = await measure(DEFAULT_DRAFT_CHOICES, 8, createWatermarker(gumbelKey), 'gumbel');
    expect(several.tripsPerToken).toBeLessThan(single.tripsPerToken * 0.8);
    const detector = createTextDetector({ keys: [gumbelKey] });
    for (const text of several.texts) expect(detector.detectText(text).verdict).toBe('watermarked');
  }, 600_000);
});
