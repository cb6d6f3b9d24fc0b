/**
 * Upstream round trips per token at temperature 0.7, with the embedded model behind an OpenAI-compatible
 * server that serves `n` and streams (test-support/quirky-upstream.ts in front of test-support/model-server.ts).
 * One sample per round trip is how token driving worked before; the default asks for several. The numbers are
 * printed for the README: round trips, tokens the upstream decoded and wall time, per emitted token.
 * TRACEMARK_MEASURE_CHOICES=64,256 adds larger settings of D = 16 (slow: the server is Node; `128x32` names D too);
 * TRACEMARK_MEASURE_STEP_MS=10 makes each of the server's decode steps take that long, as an engine's do;
 * TRACEMARK_MEASURE_TOKENS=600 generates that many tokens per prompt instead of 150.
 *
 *   pnpm exec vitest run apps/gateway/src/upstream-round-trips.test.ts
 */
import { createRandom, createWatermarker, createWatermarkKey } from '@tracemark/core';
import { createTextDetector } from '@tracemark/detection';
import { loadDefaultModel } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUpstreamBackend, DEFAULT_DRAFT_CHOICES, DEFAULT_DRAFT_TOKENS } from './backends/upstream.ts';
import { type ModelServer, startModelServer } from './test-support/model-server.ts';
import { type QuirkyUpstream, startQuirkyUpstream } from './test-support/quirky-upstream.ts';

const tokenizer = getTokenizer('cl100k_base');
const key = createWatermarkKey({ secret: new Uint8Array(32).fill(5) });
const watermarker = createWatermarker(key);
const PROMPTS = ['The committee said on Tuesday that', 'It was late in the evening when'];
const TOKENS_PER_PROMPT = Number(process.env.TRACEMARK_MEASURE_TOKENS ?? 150);
let server: ModelServer;
let proxy: QuirkyUpstream;

const STEP_MS = Number(process.env.TRACEMARK_MEASURE_STEP_MS ?? 0);

beforeAll(async () => {
  const model = await loadDefaultModel({ tokenizerId: 'cl100k_base' });
  server = await startModelServer({ model, tokenizer, choices: true, stepMs: STEP_MS });
  proxy = await startQuirkyUpstream({ target: server.url });
});
afterAll(async () => {
  await proxy?.close();
  await server?.close();
});

async function measure(
  draftChoices: number,
  draftTokens: number,
  marker = watermarker,
  label = 'lefthash',
  streaming = true,
) {
  const backend = await createUpstreamBackend({
    streaming,
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
  const decodedBefore = server.counts.decoded;
  const started = performance.now();
  let tokens = 0;
  const texts: string[] = [];
  // time to each prompt's first token (from the generator's start)
  const firsts: number[] = [];
  for (const [index, prompt] of PROMPTS.entries()) {
    const out: number[] = [];
    const begin = performance.now();
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
      if (out.length === 0) firsts.push(performance.now() - begin);
      out.push(step.token);
    }
    tokens += out.length;
    texts.push(tokenizer.decode(out));
  }
  const tripsPerToken = (backend.stats.roundTrips - before) / tokens;
  const decodedPerToken = (server.counts.decoded - decodedBefore) / tokens;
  const msPerToken = (performance.now() - started) / tokens;
  console.info(
    `round trips per token at T = 0.7 (${label}): ${tripsPerToken.toFixed(3)} with n = ${draftChoices} samples of D = ${draftTokens} tokens, ${streaming ? 'streamed' : 'not streamed'} (${tokens} tokens); upstream decoded ${decodedPerToken.toFixed(1)} tokens and took ${msPerToken.toFixed(1)} ms per token, first tokens after ${firsts.map((ms) => ms.toFixed(0)).join(' / ')} ms (decode step ${STEP_MS} ms)`,
  );
  return { tripsPerToken, decodedPerToken, texts };
}

describe('upstream round trips per token (temperature 0.7, embedded model upstream)', () => {
  it('several samples per round trip need fewer round trips than one, and the text is marked', async () => {
    const single = await measure(1, 8);
    const several = await measure(DEFAULT_DRAFT_CHOICES, DEFAULT_DRAFT_TOKENS);
    expect(several.tripsPerToken).toBeLessThan(single.tripsPerToken * 0.8);
    // the same walk unstreamed: the same round trips (how much less a streamed call has the upstream decode
    // depends on the server's step time: upstream-streaming.test.ts)
    const whole = await measure(DEFAULT_DRAFT_CHOICES, DEFAULT_DRAFT_TOKENS, watermarker, 'lefthash', false);
    expect(whole.tripsPerToken).toBe(several.tripsPerToken);
    const detector = createTextDetector({ keys: [key] });
    for (const text of several.texts) expect(detector.detectText(text).verdict).toBe('watermarked');
    for (const setting of (process.env.TRACEMARK_MEASURE_CHOICES ?? '').split(',').filter(Boolean)) {
      const [choices, depth = '16'] = setting.split('x');
      await measure(Number(choices), Number(depth));
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
