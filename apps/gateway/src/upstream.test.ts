/**
 * The upstream backend against a real HTTP server (test-support/model-server.ts) that serves the embedded
 * model with top-k logprobs in the chat and the legacy completions shapes.
 */
import { createTextDetector } from '@tracemark/detection';
import { loadDefaultModel, type NgramModel } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareGateway } from './bootstrap.ts';
import { resolveConfig } from './config.ts';
import { GatewayError } from './errors.ts';
import {
  readEvents,
  removeTemporaryDirectories,
  startTestGateway,
  type TestGateway,
  temporaryDirectory,
} from './test-support/harness.ts';
import { type ModelServer, startModelServer } from './test-support/model-server.ts';

afterAll(removeTemporaryDirectories);

const tokenizer = getTokenizer('cl100k_base');
let model: NgramModel;
let server: ModelServer;
const gateways: TestGateway[] = [];

beforeAll(async () => {
  model = await loadDefaultModel({ tokenizerId: 'cl100k_base' });
  server = await startModelServer({ model, tokenizer });
});
afterAll(async () => {
  for (const gateway of gateways) await gateway.close();
  await server?.close();
});

async function upstreamGateway(config: Record<string, unknown> = {}): Promise<TestGateway> {
  const gateway = await startTestGateway({ config: { upstreamUrl: server.url, ...config } });
  gateways.push(gateway);
  return gateway;
}

describe.each(['chat', 'completions'] as const)('upstream speaking the %s shape', (api) => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await upstreamGateway({ upstreamApi: api });
  });

  it('lists the upstream model and serves both endpoints, watermarked and recorded', async () => {
    const models = await gateway.call('GET', '/v1/models');
    expect(models.json.data.map((m: { id: string }) => m.id)).toEqual(['ngram-upstream']);
    const health = await gateway.call('GET', '/healthz', undefined, null);
    expect(health.json).toMatchObject({ backend: 'upstream', model: 'ngram-upstream' });
    const chat = await gateway.call('POST', '/v1/chat/completions', {
      model: 'ngram-upstream',
      messages: [{ role: 'user', content: 'Write about the harbour.' }],
      max_tokens: 200,
      seed: 4,
    });
    expect(chat.status, chat.text).toBe(200);
    expect(chat.json.usage.completion_tokens).toBe(200);
    const text = chat.json.choices[0].message.content;
    const detected = await gateway.call('POST', '/v1/detect', { text });
    expect(detected.json.verdict).toBe('watermarked');
    const record = await gateway.call('GET', `/v1/admin/issuance/${chat.json.tracemark.issuance_ids[0]}`);
    expect(record.json).toMatchObject({ backend: 'upstream', model: 'ngram-upstream', numTokens: 200 });
    const legacy = await gateway.call('POST', '/v1/completions', {
      model: 'ngram-upstream',
      prompt: 'The harbour',
      max_tokens: 12,
    });
    expect(legacy.status).toBe(200);
    expect(legacy.json.usage.completion_tokens).toBe(12);
  });

  it('streams', async () => {
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gateway.devKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'ngram-upstream',
        messages: [{ role: 'user', content: 'Hello' }],
        max_tokens: 20,
        stream: true,
      }),
    });
    const events = await readEvents(response);
    expect(events.at(-1)).toBe('[DONE]');
  });
});

describe('drafting: the upstream’s own sample as a draft', () => {
  it('saves round trips; both paths give detectable text (numbers printed for the README)', async () => {
    const tokens = 400;
    const measure = async (draftTokens: number) => {
      const gateway = await upstreamGateway({ upstreamDraftTokens: draftTokens, upstreamApi: 'completions' });
      const before = gateway.services.backend.stats.roundTrips;
      const response = await gateway.call('POST', '/v1/completions', {
        model: 'ngram-upstream',
        prompt: 'The committee said on Tuesday that',
        max_tokens: tokens,
        seed: 9,
      });
      expect(response.status).toBe(200);
      const trips = gateway.services.backend.stats.roundTrips - before;
      const detected = await gateway.call('POST', '/v1/detect', { text: response.json.choices[0].text });
      return {
        tripsPerToken: trips / tokens,
        verdict: detected.json.verdict,
        stats: { ...gateway.services.backend.stats },
      };
    };
    const without = await measure(0);
    const withDrafts = await measure(8);
    console.info(
      `upstream round trips per token: ${without.tripsPerToken.toFixed(3)} without drafting, ${withDrafts.tripsPerToken.toFixed(3)} with 8-token drafts (accepted ${withDrafts.stats.draftsAccepted}, rejected ${withDrafts.stats.draftsRejected})`,
    );
    expect(without.tripsPerToken).toBe(1);
    expect(withDrafts.tripsPerToken).toBeLessThan(0.8);
    expect(without.verdict).toBe('watermarked');
    expect(withDrafts.verdict).toBe('watermarked');
  });

  it('the drafted output carries the same watermark strength as local sampling (green fraction)', async () => {
    const gateway = await upstreamGateway({ upstreamDraftTokens: 8, upstreamApi: 'completions' });
    const response = await gateway.call('POST', '/v1/completions', {
      model: 'ngram-upstream',
      prompt: 'It was',
      max_tokens: 300,
      seed: 2,
    });
    const detector = createTextDetector({ keys: [gateway.services.watermarkKey] });
    const result = detector.detectText(response.json.choices[0].text);
    expect(result.greenFraction).toBeGreaterThan(0.4);
  });
});

describe('refusals and faults', () => {
  it('an upstream without logprobs is refused at startup with a clear error', async () => {
    const plain = await startModelServer({ model, tokenizer, logprobs: false });
    try {
      const config = resolveConfig({ dataDir: temporaryDirectory(), upstreamUrl: plain.url }, {});
      const error = await prepareGateway(config).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(GatewayError);
      expect((error as GatewayError).code).toBe('TM_ERR_UPSTREAM_NO_LOGPROBS');
      expect((error as GatewayError).message).toMatch(/cannot be watermarked; refusing to serve it/);
    } finally {
      await plain.close();
    }
  });

  it('an upstream that goes down is a 502; one that is too slow is a 504 (also for streams)', async () => {
    const flaky = await startModelServer({ model, tokenizer });
    const gateway = await startTestGateway({ config: { upstreamUrl: flaky.url, upstreamTimeoutMs: 300 } });
    gateways.push(gateway);
    const body = { model: 'ngram-upstream', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5 };
    flaky.setDelay(1000);
    const slow = await gateway.call('POST', '/v1/chat/completions', body);
    expect(slow.status).toBe(504);
    expect(slow.json.error.code).toBe('TM_ERR_UPSTREAM_TIMEOUT');
    await flaky.close();
    const down = await gateway.call('POST', '/v1/chat/completions', body);
    expect(down.status).toBe(502);
    expect(down.json.error).toMatchObject({ code: 'TM_ERR_UPSTREAM_UNAVAILABLE', type: 'server_error' });
    const stream = await gateway.call('POST', '/v1/chat/completions', { ...body, stream: true });
    expect(stream.status).toBe(502);
  });
});
