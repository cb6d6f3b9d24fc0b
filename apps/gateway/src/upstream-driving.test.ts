/**
 * Token driving against servers with other servers' habits (test-support/quirky-upstream.ts in front of the
 * embedded model's server) and against a toy model whose exact watermarked distribution can be written down.
 */
import {
  createRandom,
  createWatermarker,
  createWatermarkKey,
  type RandomSource,
  sampleToken,
  type Watermarker,
} from '@tracemark/core';
import { createTextDetector } from '@tracemark/detection';
import { loadDefaultModel, type NgramModel } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, ChatMessage } from './backends/types.ts';
import { createUpstreamBackend, parseUpstreamChoices, sampleBody } from './backends/upstream.ts';
import { GatewayError } from './errors.ts';
import { draftDistributions } from './generation/distribution.ts';
import { formatChatPrompt } from './prompt.ts';
import { type ModelServer, startModelServer } from './test-support/model-server.ts';
import { type QuirkyUpstreamOptions, startQuirkyUpstream } from './test-support/quirky-upstream.ts';
import { startToyUpstream, type ToyUpstream } from './test-support/toy-upstream.ts';
import { startTestUpstreamBackend } from './test-support/upstream-backend.ts';

const tokenizer = getTokenizer('cl100k_base');
const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(9) }));
let model: NgramModel;
let server: ModelServer;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  model = await loadDefaultModel({ tokenizerId: 'cl100k_base' });
  server = await startModelServer({ model, tokenizer });
});
afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await server?.close();
});

async function quirky(options: Omit<QuirkyUpstreamOptions, 'target'>): Promise<string> {
  const proxy = await startQuirkyUpstream({ target: server.url, ...options });
  closers.push(proxy.close);
  return proxy.url;
}

function backendFor(
  url: string,
  extra: { draftTokens?: number; draftChoices?: number; api?: 'auto' | 'chat' | 'completions' } = {},
) {
  return startTestUpstreamBackend(url, extra);
}

async function generateTokens(
  backend: Backend,
  options: {
    prompt?: string;
    messages?: ChatMessage[];
    maxTokens: number;
    temperature: number;
    random: RandomSource;
    marker?: Watermarker;
  },
): Promise<number[]> {
  const promptTokens = tokenizer.encode(
    options.messages === undefined ? (options.prompt ?? '') : formatChatPrompt(options.messages),
  );
  const out: number[] = [];
  for await (const step of backend.generate({
    model: 'ngram-upstream',
    promptTokens,
    messages: options.messages ?? null,
    maxTokens: options.maxTokens,
    temperature: options.temperature,
    topP: 1,
    random: options.random,
    seed: 0,
    watermarker: options.marker ?? watermarker,
    signal: new AbortController().signal,
    topLogprobs: null,
  })) {
    out.push(step.token);
  }
  return out;
}

/** The share of tokens that are among the model's top 20 after the exact context before them. */
function consistentShare(promptTokens: ArrayLike<number>, tokens: readonly number[]): number {
  const context = Array.from(promptTokens);
  let consistent = 0;
  for (const token of tokens) {
    if (model.candidates(context, 20).ids.includes(token)) consistent++;
    context.push(token);
  }
  return consistent / tokens.length;
}

describe('start-up probes', () => {
  it('uses the largest top_logprobs / logprobs the upstream accepts (5 here); every token is in the top 5 of its exact context', async () => {
    const url = await quirky({ maxTopLogprobs: 5, maxLegacyLogprobs: 5 });
    const backend = await backendFor(url);
    expect(backend.describe()).toMatchObject({ topLogprobs: 5, api: 'completions,chat' });
    const tokens = await generateTokens(backend, {
      prompt: 'The committee said on Tuesday that',
      maxTokens: 120,
      temperature: 0.8,
      random: createRandom(1),
    });
    expect(tokens).toHaveLength(120);
    // Every token is one of the upstream's top 5 after its exact context (top_k = 5 is sent along).
    const context = Array.from(tokenizer.encode('The committee said on Tuesday that'));
    for (const token of tokens) {
      expect(model.candidates(context, 5).ids).toContain(token);
      context.push(token);
    }
  });

  it('an upstream that ignores chat continuation: chat goes through token ids, and the text stays coherent', async () => {
    const url = await quirky({ ignoreContinuation: true });
    const backend = await backendFor(url);
    expect(backend.describe().api).toBe('completions');
    const messages = [{ role: 'user', content: 'Tell me about the harbour on Friday.' }];
    const promptTokens = tokenizer.encode(formatChatPrompt(messages));
    const tokens = await generateTokens(backend, {
      messages,
      maxTokens: 60,
      temperature: 0.8,
      random: createRandom(2),
    });
    expect(tokens).toHaveLength(60);
    expect(consistentShare(promptTokens, tokens)).toBe(1);

    // What the chat path used to do with such an upstream: the context it sees is not the text so far.
    const garbled: number[] = [];
    for (let i = 0; i < 30; i++) {
      const body = sampleBody('chat', {
        model: 'ngram-upstream',
        promptTokens: [],
        messages,
        continuation: tokenizer.decode(garbled),
        prefixText: '',
        maxTokens: 1,
        temperature: 0.8,
        topLogprobs: 20,
        seed: i,
      });
      const answer = await fetch(`${url}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then((response) => response.json());
      const [piece] = parseUpstreamChoices('chat', answer, new Map(), 20)[0]!.pieces;
      garbled.push(...tokenizer.encode(piece!));
    }
    expect(consistentShare(promptTokens, garbled)).toBeLessThan(0.8);
  });

  it('forced onto chat, such an upstream is refused at start-up with the reason', async () => {
    const url = await quirky({ ignoreContinuation: true });
    const error = await backendFor(url, { api: 'chat' }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(GatewayError);
    expect((error as GatewayError).message).toMatch(/does not continue a partial assistant message/);
    expect((error as GatewayError).message).toMatch(/refusing to serve it/);
  });

  it('no exact path at all (no legacy completions, chat continuation ignored): refused at start-up', async () => {
    const url = await quirky({ ignoreContinuation: true, legacy: false });
    const error = await backendFor(url).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(GatewayError);
    expect((error as GatewayError).code).toBe('TM_ERR_UPSTREAM_NO_LOGPROBS');
    expect((error as GatewayError).message).toMatch(/completions: .*HTTP 404/);
    expect((error as GatewayError).message).toMatch(/continue_final_message is ignored/);
  });

  it('an upstream that ignores top_k: its draws are not drafts (one round trip per token), still exact', async () => {
    const url = await quirky({ ignoreTopK: true });
    const backend = await backendFor(url, { api: 'completions' });
    expect(String(backend.describe().paths)).toContain('no drafts');
    const before = backend.stats.roundTrips;
    const tokens = await generateTokens(backend, {
      prompt: 'It was',
      maxTokens: 40,
      temperature: 0.8,
      random: createRandom(3),
    });
    expect(backend.stats.roundTrips - before).toBe(tokens.length);
    expect(consistentShare(tokenizer.encode('It was'), tokens)).toBe(1);
  });

  it('`n` ignored by the upstream: one sample per round trip', async () => {
    const url = await quirky({ choices: false });
    const backend = await backendFor(url, { api: 'completions' });
    expect(String(backend.describe().paths)).toContain('n=1');
  });
});

describe('the walk over several samples is exact (toy model, chi-square)', () => {
  let toy: ToyUpstream;
  beforeAll(async () => {
    toy = await startToyUpstream(tokenizer);
    closers.push(toy.close);
  });

  it.each([
    [0.7, 6],
    [1.2, 3],
    // one sample: the first token's block is FIRST_LONE_BLOCK long
    [0.7, 1],
  ])(
    'two tokens at T = %s with %s samples per round trip follow the watermarked joint distribution',
    async (temperature, choices) => {
      const backend = await createUpstreamBackend({
        url: toy.url,
        apiKey: null,
        model: null,
        api: 'completions',
        topLogprobs: 20,
        draftTokens: 2,
        draftChoices: choices,
        timeoutMs: 10_000,
        tokenizer,
      });
      expect(backend.describe()).toMatchObject({ topLogprobs: 6, draftChoices: choices });
      const ids = Array.from(toy.model.ids);
      const prompt = ids[0]!;
      // The exact target: q at the first position, then q after each first token.
      const target = (context: number[]) =>
        draftDistributions(toy.model.next(context.at(-1)!), context, { watermarker, temperature, topP: 1 });
      const first = target([prompt]);
      const expected = new Map<string, number>();
      for (let a = 0; a < ids.length; a++) {
        const second = target([prompt, ids[a]!]);
        for (let b = 0; b < ids.length; b++) expected.set(`${ids[a]}:${ids[b]}`, first.q[a]! * second.q[b]!);
      }
      const runs = 2000;
      const counts = new Map<string, number>();
      const random = createRandom(77);
      const tripsBefore = backend.stats.roundTrips;
      for (let run = 0; run < runs; run++) {
        const out: number[] = [];
        for await (const step of backend.generate({
          model: 'toy',
          promptTokens: Uint32Array.of(prompt),
          messages: null,
          maxTokens: 2,
          temperature,
          topP: 1,
          random,
          watermarker,
          signal: new AbortController().signal,
          topLogprobs: null,
        })) {
          out.push(step.token);
        }
        const key = out.join(':');
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      let chiSquare = 0;
      let cells = 0;
      for (const [key, probability] of expected) {
        const observed = counts.get(key) ?? 0;
        const wanted = probability * runs;
        if (wanted < 1e-9) {
          expect(observed).toBe(0);
          continue;
        }
        chiSquare += (observed - wanted) ** 2 / wanted;
        cells++;
      }
      // 99.9th percentile of chi-square with 35 degrees of freedom is 66.6.
      expect(cells).toBe(36);
      expect(chiSquare).toBeLessThan(66.6);
      // The samples were used as drafts: most runs took a single round trip for both tokens.
      expect((backend.stats.roundTrips - tripsBefore) / runs).toBeLessThan(1.5);
      // (one sample: a run's chain holds one draft, kept or not)
      expect(backend.stats.draftsAccepted).toBeGreaterThan(choices > 1 ? runs : runs / 3);
    },
    120_000,
  );
});

describe('a Gumbel key (distortion-free): token driving computes the keyed choice from the reported top-k', () => {
  const gumbelKey = createWatermarkKey({
    secret: new Uint8Array(32).fill(12),
    scheme: { name: 'gumbel', contextWidth: 4 },
  });
  const gumbelMarker = createWatermarker(gumbelKey);

  it('every token is the keyed choice among its context’s top 20, the samples serve as continuations, and the text is marked', async () => {
    // The proxy serves `n` (the model server itself draws one sample per request).
    const backend = await backendFor(await quirky({}), { api: 'completions', draftChoices: 16 });
    const prompt = 'The harbour master said on Tuesday that';
    const promptTokens = tokenizer.encode(prompt);
    const before = backend.stats.roundTrips;
    const tokens = await generateTokens(backend, {
      prompt,
      maxTokens: 120,
      temperature: 0.7,
      random: createRandom(5),
      marker: gumbelMarker,
    });
    const trips = backend.stats.roundTrips - before;
    expect(tokens.length).toBeGreaterThan(60);
    // The choice replayed from the model itself: the same token wherever the reported logprobs (rounded
    // to JSON numbers) leave the argmax where it is, which is everywhere but near-ties.
    const context = Array.from(promptTokens);
    let same = 0;
    for (const token of tokens) {
      const replay = sampleToken(model.candidates(context, 20), context, createRandom(1), {
        temperature: 0.7,
        watermarker: gumbelMarker,
      });
      if (replay.token === token) same++;
      context.push(token);
    }
    expect(same / tokens.length).toBeGreaterThanOrEqual(0.98);
    // Several tokens per round trip: the upstream's samples made the keyed choice often enough.
    expect(trips / tokens.length).toBeLessThan(0.5);
    const detector = createTextDetector({ keys: [gumbelKey] });
    expect(detector.detectText(tokenizer.decode(tokens)).verdict).toBe('watermarked');
  }, 120_000);
});
