/**
 * Streamed token driving: the samples of a round trip arrive as the upstream decodes them (an engine-like
 * server that serves `n` and streams every choice a step at a time, behind test-support/quirky-upstream.ts),
 * the walk reads each depth as it comes, and the round trip is cancelled once the walk leaves it. The walk
 * reads the same samples either way, so streamed and unstreamed driving give the same tokens seed for seed;
 * what changes is how much the upstream decodes.
 */
import { createRandom, createWatermarker, createWatermarkKey, type Watermarker } from '@tracemark/core';
import { loadDefaultModel, type NgramModel } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, ChatMessage } from './backends/types.ts';
import { FIRST_LONE_BLOCK, LONE_BLOCK } from './backends/upstream.ts';
import { resolveConfig } from './config.ts';
import { GatewayError } from './errors.ts';
import { formatChatPrompt } from './prompt.ts';
import {
  readEvents,
  removeTemporaryDirectories,
  startTestGateway,
  type TestGateway,
} from './test-support/harness.ts';
import { type ModelServer, startModelServer } from './test-support/model-server.ts';
import { type QuirkyUpstreamOptions, startQuirkyUpstream } from './test-support/quirky-upstream.ts';
import { startTestUpstreamBackend } from './test-support/upstream-backend.ts';

const tokenizer = getTokenizer('cl100k_base');
const lefthash = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(11) }));
const gumbel = createWatermarker(
  createWatermarkKey({ secret: new Uint8Array(32).fill(12), scheme: { name: 'gumbel', contextWidth: 4 } }),
);
let model: NgramModel;
let server: ModelServer;
const closers: (() => Promise<void>)[] = [];
afterAll(removeTemporaryDirectories);

beforeAll(async () => {
  model = await loadDefaultModel({ tokenizerId: 'cl100k_base' });
  server = await startModelServer({ model, tokenizer, choices: true });
});
afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await server?.close();
});

async function proxied(options: Omit<QuirkyUpstreamOptions, 'target'> = {}, target = server.url) {
  const proxy = await startQuirkyUpstream({ target, ...options });
  closers.push(proxy.close);
  return proxy.url;
}

function backendFor(
  url: string,
  extra: { streaming?: boolean; draftTokens?: number; draftChoices?: number; api?: 'chat' | 'completions' },
) {
  return startTestUpstreamBackend(url, { api: 'completions', draftChoices: 16, ...extra });
}

const MESSAGES: ChatMessage[] = [{ role: 'user', content: 'Tell me about the harbour.' }];

async function drive(
  backend: Backend,
  options: { chat?: boolean; seed: number; maxTokens?: number; marker?: Watermarker; signal?: AbortSignal },
): Promise<number[]> {
  const messages = options.chat === true ? MESSAGES : null;
  const promptTokens = tokenizer.encode(
    messages === null ? 'The committee said on Tuesday that' : formatChatPrompt(messages),
  );
  const out: number[] = [];
  for await (const step of backend.generate({
    model: 'ngram-upstream',
    promptTokens,
    messages,
    maxTokens: options.maxTokens ?? 60,
    temperature: 0.7,
    topP: 1,
    random: createRandom(options.seed),
    seed: options.seed,
    watermarker: options.marker ?? lefthash,
    signal: options.signal ?? new AbortController().signal,
    topLogprobs: null,
  })) {
    out.push(step.token);
  }
  return out;
}

describe('streamed round trips', () => {
  it('the probe finds streaming; streamed and unstreamed driving give the same tokens, seed for seed (legacy and chat, KGW and Gumbel)', async () => {
    const url = await proxied();
    for (const api of ['completions', 'chat'] as const) {
      const streamed = await backendFor(url, { api });
      const whole = await backendFor(url, { api, streaming: false });
      expect(String(streamed.describe().paths)).toContain('streamed');
      expect(String(whole.describe().paths)).not.toContain('streamed');
      for (const marker of [lefthash, gumbel]) {
        for (const seed of [1, 2, 3]) {
          const a = await drive(streamed, { chat: api === 'chat', seed, marker });
          const b = await drive(whole, { chat: api === 'chat', seed, marker });
          expect(a.length).toBe(60);
          expect(a).toEqual(b);
        }
      }
      expect(streamed.stats.roundTrips).toBe(whole.stats.roundTrips);
    }
  }, 120_000);

  it('a round trip ends where the walk leaves it: the upstream decodes a fraction of n × D', async () => {
    // 4 ms a decode step, as an engine takes tens: the cancel reaches the server long before its last step
    const slow = await startModelServer({ model, tokenizer, choices: true, stepMs: 4 });
    closers.push(slow.close);
    const backend = await backendFor(await proxied({}, slow.url), { draftTokens: 32, draftChoices: 16 });
    const trips = backend.stats.roundTrips;
    const tokens = await drive(backend, { seed: 7, maxTokens: 80 });
    const calls = backend.stats.roundTrips - trips;
    expect(tokens.length).toBe(80);
    // every call asks for 16 samples of 32 tokens; the walk reads a few depths of each, and at most
    // LONE_BLOCK (8) more of the last sample left
    const asked = calls * 16 * 32;
    console.info(`streamed: the upstream decoded ${slow.counts.decoded} of the ${asked} tokens asked`);
    expect(slow.counts.decoded).toBeLessThan(asked * 0.7);
    expect(backend.stats.positionsReceived!).toBeLessThanOrEqual(slow.counts.decoded);
  }, 120_000);

  it('an upstream that refuses stream: true, or streams fewer top logprobs than it answers, is driven without it', async () => {
    for (const quirks of [{ stream: false }, { streamTopLogprobs: 5 }]) {
      const backend = await backendFor(await proxied(quirks), {});
      expect(String(backend.describe().paths)).toMatch(/^completions\(top 20(?!.*streamed)/);
      expect(await drive(backend, { seed: 4, maxTokens: 20 })).toHaveLength(20);
    }
  });

  it('a stream cut mid-call, one that carries an error event, or one whose event never ends is a 502', async () => {
    for (const kind of ['cut', 'error-event', 'endless-event'] as const) {
      // the start-up probe's stream (2 × 3 events) goes through; the first generation call fails at its 9th
      const probeUrl = await proxied({ streamFault: { afterEvents: 8, kind } });
      const backend = await backendFor(probeUrl, {});
      expect(String(backend.describe().paths)).toContain('streamed');
      const failure = await drive(backend, { seed: 5, maxTokens: 40 }).then(
        () => null,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(GatewayError);
      expect((failure as GatewayError).statusCode).toBe(502);
      expect((failure as GatewayError).code).toBe(
        kind === 'cut' ? 'TM_ERR_UPSTREAM_UNAVAILABLE' : 'TM_ERR_UPSTREAM_INVALID',
      );
      if (kind === 'endless-event') expect((failure as GatewayError).message).toContain('too long');
    }
  });

  it('an upstream that sends more tokens than asked is read up to what was asked, streamed or not', async () => {
    const url = await proxied({ ignoreMaxTokens: true });
    const streamed = await backendFor(url, { draftTokens: 8 });
    const whole = await backendFor(url, { draftTokens: 8, streaming: false });
    expect(String(streamed.describe().paths)).toContain('streamed');
    for (const seed of [8, 9]) {
      const a = await drive(streamed, { seed, maxTokens: 50 });
      expect(a).toHaveLength(50);
      expect(await drive(whole, { seed, maxTokens: 50 })).toEqual(a);
    }
    // the samples were read up to D = 8 positions each, never the 32 sent
    expect(streamed.stats.positionsReceived!).toBeLessThanOrEqual(streamed.stats.roundTrips * 16 * 8);
  }, 60_000);

  it('one sample per call: the first token waits for FIRST_LONE_BLOCK decode steps, not LONE_BLOCK', async () => {
    const slow = await startModelServer({ model, tokenizer, choices: true, stepMs: 40 });
    closers.push(slow.close);
    // `n` ignored: one sample per round trip, alone from the start
    const backend = await backendFor(await proxied({ choices: false }, slow.url), { draftTokens: 8 });
    expect(String(backend.describe().paths)).toContain('n=1');
    const before = slow.counts.decoded;
    for await (const _ of backend.generate({
      model: 'ngram-upstream',
      promptTokens: tokenizer.encode('The committee said on Tuesday that'),
      messages: null,
      maxTokens: 40,
      temperature: 0.7,
      topP: 1,
      random: createRandom(3),
      seed: 3,
      watermarker: lefthash,
      signal: new AbortController().signal,
      topLogprobs: null,
    })) {
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
    // the block's steps, and the one in flight when the cancel arrives
    expect(slow.counts.decoded - before).toBeLessThanOrEqual(FIRST_LONE_BLOCK + 1);
    expect(FIRST_LONE_BLOCK + 1).toBeLessThan(LONE_BLOCK);
  });

  it('a client that goes away mid-call ends the upstream request too', async () => {
    const slow = await startModelServer({ model, tokenizer, choices: true, stepMs: 20 });
    closers.push(slow.close);
    const backend = await backendFor(await proxied({}, slow.url), { draftTokens: 16, draftChoices: 4 });
    const controller = new AbortController();
    const done = drive(backend, { seed: 6, maxTokens: 200, signal: controller.signal }).catch(() => null);
    await new Promise((resolve) => setTimeout(resolve, 150));
    controller.abort();
    await done;
    // the step in flight when the cancel reaches the server may finish; none after it (10 more would)
    await new Promise((resolve) => setTimeout(resolve, 50));
    const decoded = slow.counts.decoded;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(slow.counts.decoded).toBe(decoded);
  });

  it('TRACEMARK_UPSTREAM_STREAMING turns it off; anything but a boolean is refused by name', () => {
    expect(resolveConfig({}, {}).upstreamStreaming).toBe(true);
    expect(resolveConfig({}, { TRACEMARK_UPSTREAM_STREAMING: 'false' }).upstreamStreaming).toBe(false);
    expect(() => resolveConfig({}, { TRACEMARK_UPSTREAM_STREAMING: 'sometimes' })).toThrow(
      /TRACEMARK_UPSTREAM_STREAMING/,
    );
  });

  it('through the gateway over HTTP: a streamed chat completion, marked, with the round trips and sample tokens in /metrics', async () => {
    const gateway: TestGateway = await startTestGateway({
      config: { upstreamUrl: await proxied(), upstreamApi: 'completions' },
    });
    closers.push(() => gateway.close());
    const health = await gateway.call('GET', '/healthz', undefined, null);
    expect(health.json).toMatchObject({ backend: 'upstream' });
    const streamed = await gateway.call('POST', '/v1/chat/completions', {
      model: 'ngram-upstream',
      messages: [{ role: 'user', content: 'Write about the harbour.' }],
      max_tokens: 200,
      seed: 3,
      stream: true,
    });
    const events = await readEvents(new Response(streamed.text));
    expect(events.at(-1)).toBe('[DONE]');
    const text = events
      .slice(0, -1)
      .map((event) => JSON.parse(event).choices[0]?.delta?.content ?? '')
      .join('');
    const detected = await gateway.call('POST', '/v1/detect', { text });
    expect(detected.json.verdict).toBe('watermarked');
    const metrics = await gateway.call('GET', '/metrics', undefined, null);
    const counter = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics.text)?.[1]);
    const trips = counter('tracemark_upstream_round_trips_total');
    expect(trips).toBeGreaterThan(0);
    expect(trips).toBeLessThan(200);
    // 16 samples of up to 8 tokens a round trip, and the walk cancels each call where it leaves it
    expect(counter('tracemark_upstream_sample_tokens_total')).toBeGreaterThan(trips);
    expect(counter('tracemark_upstream_sample_tokens_total')).toBeLessThanOrEqual(trips * 16 * 8);
  }, 60_000);
});
