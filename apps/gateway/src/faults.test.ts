/** Limits and faults through real HTTP: rate limits, quotas, a failing issuance log, disconnects, deadlines. */
import { afterEach, describe, expect, it } from 'vitest';
import type { GatewayStorage } from './storage/types.ts';
import { readEvents, startTestGateway, type TestGateway } from './test-support/harness.ts';

const MODEL = 'tracemark-ngram';
const open: TestGateway[] = [];
afterEach(async () => {
  for (const gateway of open.splice(0)) await gateway.close();
});
async function gatewayWith(options: Parameters<typeof startTestGateway>[0]): Promise<TestGateway> {
  const gateway = await startTestGateway(options);
  open.push(gateway);
  return gateway;
}
const chatBody = (extra: Record<string, unknown> = {}) => ({
  model: MODEL,
  messages: [{ role: 'user', content: 'Tell me a story.' }],
  max_tokens: 5,
  ...extra,
});

function metric(text: string, name: string): number {
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match === null ? 0 : Number(match[1]);
}

describe('rate limits', () => {
  it('per key: the request over the limit is a 429 with Retry-After; other keys are unaffected', async () => {
    const gateway = await gatewayWith({ config: { rateLimitPerMinute: 3 } });
    const statuses: number[] = [];
    let last: Awaited<ReturnType<TestGateway['call']>> | null = null;
    for (let i = 0; i < 4; i++) {
      last = await gateway.call('GET', '/v1/models');
      statuses.push(last.status);
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(last!.json.error).toMatchObject({ code: 'TM_ERR_RATE_LIMITED', type: 'rate_limit_error' });
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
    const other = await gateway
      .call('POST', '/v1/admin/keys', { scopes: ['generate'] }, null)
      .catch(() => null);
    expect(other?.status).toBe(401);
    const { createApiKey } = await import('./key-management.ts');
    const fresh = await createApiKey(gateway.services.storage, gateway.services.serverSecret, {
      scopes: ['generate'],
    });
    expect((await gateway.call('GET', '/v1/models', undefined, fresh.key)).status).toBe(200);
  });

  it('a key can carry its own rate', async () => {
    const gateway = await gatewayWith({ config: { rateLimitPerMinute: 100 } });
    const created = await gateway.call('POST', '/v1/admin/keys', {
      scopes: ['generate'],
      rateLimitPerMinute: 1,
    });
    expect((await gateway.call('GET', '/v1/models', undefined, created.json.key)).status).toBe(200);
    expect((await gateway.call('GET', '/v1/models', undefined, created.json.key)).status).toBe(429);
    expect((await gateway.call('GET', '/v1/models')).status).toBe(200);
  });

  it('failed authentications are limited per address', async () => {
    const gateway = await gatewayWith({ config: { authFailuresPerMinute: 2 } });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++)
      statuses.push((await gateway.call('GET', '/v1/models', undefined, 'tm_live_wrong')).status);
    expect(statuses).toEqual([401, 401, 429]);
  });
});

describe('daily token quota', () => {
  it('reserves max_tokens × choices, refuses what would pass the quota with 429 and Retry-After, settles to use', async () => {
    const gateway = await gatewayWith({ config: { dailyTokenQuota: 50 } });
    expect((await gateway.call('POST', '/v1/chat/completions', chatBody({ max_tokens: 30 }))).status).toBe(
      200,
    );
    const refused = await gateway.call('POST', '/v1/chat/completions', chatBody({ max_tokens: 30 }));
    expect(refused.status).toBe(429);
    expect(refused.json.error).toMatchObject({ code: 'TM_ERR_QUOTA_EXCEEDED', type: 'insufficient_quota' });
    expect(refused.json.error.message).toMatch(/20 remain today/);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(86_400);
    expect(
      (await gateway.call('POST', '/v1/chat/completions', chatBody({ max_tokens: 10, n: 2 }))).status,
    ).toBe(200);
    expect((await gateway.call('POST', '/v1/chat/completions', chatBody({ max_tokens: 1 }))).status).toBe(
      429,
    );
  });

  it('a stop sequence refunds what was reserved but not used', async () => {
    const gateway = await gatewayWith({ config: { dailyTokenQuota: 100 } });
    const first = await gateway.call(
      'POST',
      '/v1/chat/completions',
      chatBody({ max_tokens: 90, stop: [' '] }),
    );
    expect(first.json.usage.completion_tokens).toBeLessThan(90);
    expect((await gateway.call('POST', '/v1/chat/completions', chatBody({ max_tokens: 80 }))).status).toBe(
      200,
    );
  });

  it('survives a restart: usage is seeded from the issuance log', async () => {
    const first = await gatewayWith({ config: { dailyTokenQuota: 40 } });
    expect((await first.call('POST', '/v1/chat/completions', chatBody({ max_tokens: 30 }))).status).toBe(200);
    const dataDir = first.dataDir;
    await first.app.close();
    await first.prepared.close();
    open.splice(open.indexOf(first), 1);
    const second = await gatewayWith({ config: { dailyTokenQuota: 40, dataDir } });
    const devKey = (await import('node:fs')).readFileSync(`${dataDir}/dev-api-key`, 'utf8').trim();
    const again = await second.call('POST', '/v1/chat/completions', chatBody({ max_tokens: 30 }), devKey);
    expect(again.status).toBe(429);
  });
});

describe('the issuance log is written before anything is returned', () => {
  const failing = () => {
    const state = { fail: false };
    const wrap = (storage: GatewayStorage): GatewayStorage => ({
      ...storage,
      kind: storage.kind,
      appendIssuance: async (records) => {
        if (state.fail) throw new Error('disk full (simulated)');
        return storage.appendIssuance(records);
      },
    });
    return { state, wrap };
  };

  it('non-streamed: a completion whose record cannot be written is withheld (500, generic message)', async () => {
    const { state, wrap } = failing();
    const gateway = await gatewayWith({ wrapStorage: wrap });
    expect((await gateway.call('POST', '/v1/chat/completions', chatBody())).status).toBe(200);
    state.fail = true;
    const response = await gateway.call('POST', '/v1/chat/completions', chatBody({ max_tokens: 20 }));
    expect(response.status).toBe(500);
    expect(response.json).toEqual({
      error: {
        message: 'the completion could not be recorded in the issuance log, so it was not returned',
        type: 'server_error',
        param: null,
        code: 'TM_ERR_ISSUANCE_LOG',
      },
    });
    expect(response.text).not.toMatch(/choices|disk full/);
    const metrics = await gateway.call('GET', '/metrics', undefined, null);
    expect(metric(metrics.text, 'tracemark_issuance_failures_total')).toBe(1);
    expect(gateway.logs.text).toMatch(/issuance log write failed/);
  });

  it('streamed: the stream ends with an error event instead of [DONE]', async () => {
    const { state, wrap } = failing();
    const gateway = await gatewayWith({ wrapStorage: wrap });
    state.fail = true;
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gateway.devKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(chatBody({ max_tokens: 10, stream: true })),
    });
    expect(response.status).toBe(200);
    const events = await readEvents(response);
    expect(events).not.toContain('[DONE]');
    expect(JSON.parse(events.at(-1)!)).toEqual({
      error: {
        message: 'the completion could not be recorded in the issuance log, so it was not returned',
        type: 'server_error',
        param: null,
        code: 'TM_ERR_ISSUANCE_LOG',
      },
    });
  });
});

describe('cancellation', () => {
  it('a client that disconnects mid-stream stops generation; what it received is recorded as cancelled', async () => {
    const gateway = await gatewayWith({ config: { maxTokensLimit: 200_000, completionTimeoutMs: 60_000 } });
    const controller = new AbortController();
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gateway.devKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(chatBody({ max_tokens: 200_000, stream: true })),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    let received = '';
    while (received.split('data: ').length < 6)
      received += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    const generated = async () =>
      metric(
        (await gateway.call('GET', '/metrics', undefined, null)).text,
        'tracemark_generated_tokens_total',
      );
    let settled = -1;
    for (let i = 0; i < 50; i++) {
      await new Promise((resolve) => setTimeout(resolve, 40));
      const now = await generated();
      if (now === settled) break;
      settled = now;
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    const after = await generated();
    expect(after).toBe(settled);
    expect(after).toBeLessThan(50_000);
    // The stream ends once what was sent is recorded (a write that waits for the disk): poll for it.
    let streams = -1;
    for (let i = 0; i < 100 && streams !== 0; i++) {
      streams = metric(
        (await gateway.call('GET', '/metrics', undefined, null)).text,
        'tracemark_active_streams',
      );
      if (streams !== 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(streams).toBe(0);
    const log = await gateway.call('GET', '/v1/admin/issuance');
    const record = log.json.data.at(-1);
    expect(record.finishReason).toBe('cancelled');
    expect(record.numTokens).toBe(after);
  });

  it('a completion past its deadline is a 504 and is not returned', async () => {
    const gateway = await gatewayWith({ config: { maxTokensLimit: 1_000_000, completionTimeoutMs: 100 } });
    const response = await gateway.call('POST', '/v1/chat/completions', chatBody({ max_tokens: 1_000_000 }));
    expect(response.status).toBe(504);
    expect(response.json.error.code).toBe('TM_ERR_TIMEOUT');
    expect((await gateway.call('GET', '/v1/admin/issuance')).json.data).toHaveLength(0);
  });

  it('shutting down ends a stream in progress with an error event', async () => {
    const gateway = await startTestGateway({
      config: { maxTokensLimit: 1_000_000, completionTimeoutMs: 60_000 },
    });
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gateway.devKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(chatBody({ max_tokens: 1_000_000, stream: true })),
    });
    const eventsPromise = readEvents(response);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await gateway.close();
    const events = await eventsPromise;
    expect(events).not.toContain('[DONE]');
    expect(JSON.parse(events.at(-1)!).error.code).toBe('TM_ERR_SHUTTING_DOWN');
  });
});
