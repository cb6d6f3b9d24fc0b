/**
 * Each endpoint reads only the fields its own schema checks. A field that another endpoint takes (max_tokens,
 * n and stop on /v1/responses; max_output_tokens on chat and legacy completions) is unknown there and
 * ignored: it can neither lift the quota (a string once made the reservation NaN, which every later check
 * passed), nor crash the request, nor generate outputs the client never receives. Token ids past 32 bits are
 * a 400, and a bad prompt id names `prompt`. Through the real HTTP server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryQuotaStore } from './quota.ts';
import { type Json, startTestGateway, type TestGateway } from './test-support/harness.ts';

const MODEL = 'tracemark-ngram';
let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway({ config: { dailyTokenQuota: 100 } });
});
afterAll(async () => {
  await gateway?.close();
});

/** A fresh key of its own (its own quota), with the generate scope. */
async function quotaKey(): Promise<string> {
  const created = await gateway.call('POST', '/v1/admin/keys', { scopes: ['generate'] });
  expect(created.status, JSON.stringify(created.json)).toBe(201);
  return created.json.key as string;
}

const chat = { model: MODEL, messages: [{ role: 'user', content: 'Tell me about the weather' }] };

describe('fields of another endpoint are ignored', () => {
  it('a foreign limit field of any value leaves the quota whole on chat, completions and responses', async () => {
    const bodies: [string, Record<string, unknown>][] = [
      ['/v1/chat/completions', { ...chat, max_tokens: 40, max_output_tokens: 'x' }],
      ['/v1/completions', { model: MODEL, prompt: 'Tell me', max_tokens: 40, max_output_tokens: 'x' }],
      ['/v1/responses', { model: MODEL, input: 'Tell me', max_output_tokens: 40, max_tokens: 'abc' }],
      ['/v1/responses', { model: MODEL, input: 'Tell me', max_output_tokens: 40, n: 'abc' }],
    ];
    for (const [path, body] of bodies) {
      const key = await quotaKey();
      const served = await gateway.call('POST', path, body, key);
      expect(served.status, `${path}: ${JSON.stringify(served.json)}`).toBe(200);
      // at least one token used of 100: a request that may use 100 more is refused, as without the foreign field
      const refused = await gateway.call('POST', path, { ...body, ...limit(path, 100) }, key);
      expect(refused.status, `${path} after ${JSON.stringify(body)}`).toBe(429);
      expect(refused.json.error.code).toBe('TM_ERR_QUOTA_EXCEEDED');
    }
  });

  it('/v1/responses takes its limit from max_output_tokens alone, and names it', async () => {
    const ignored = await gateway.call('POST', '/v1/responses', {
      model: MODEL,
      input: 'Tell me',
      max_output_tokens: 5,
      max_tokens: 0,
    });
    expect(ignored.status).toBe(200);
    expect(ignored.json.usage.output_tokens).toBeGreaterThan(0);
    expect(ignored.json.usage.output_tokens).toBeLessThanOrEqual(5);
    const tooMany = await gateway.call('POST', '/v1/responses', {
      model: MODEL,
      input: 'Tell me',
      max_output_tokens: 999_999,
    });
    expect(tooMany.status).toBe(400);
    expect(tooMany.json.error).toMatchObject({ code: 'TM_ERR_MAX_TOKENS', param: 'max_output_tokens' });
    expect(tooMany.json.error.message).toMatch(/^max_output_tokens is 999999/);
  });

  it('/v1/responses ignores stop and n: no 500, one output, one issuance record', async () => {
    for (const extra of [{ stop: 12345 }, { stop: { a: 1 } }, { n: [3] }, { n: 2 }, { n: 0 }]) {
      const response = await gateway.call('POST', '/v1/responses', {
        model: MODEL,
        input: 'Tell me',
        max_output_tokens: 4,
        ...extra,
      });
      expect(response.status, `${JSON.stringify(extra)}: ${JSON.stringify(response.json)}`).toBe(200);
      expect(response.json.output).toHaveLength(1);
      expect(response.json.tracemark.issuance_ids).toHaveLength(1);
    }
    // streamed: one message, one completion event
    const streamed = await fetch(`${gateway.url}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gateway.devKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: MODEL,
        input: 'Tell me',
        max_output_tokens: 4,
        n: 2,
        stop: 7,
        stream: true,
      }),
    });
    expect(streamed.status).toBe(200);
    const text = await streamed.text();
    expect(text.match(/^event: response\.created$/gm)).toHaveLength(1);
    expect(text.match(/^event: response\.(completed|incomplete)$/gm)).toHaveLength(1);
  });
});

describe('token ids', () => {
  it('an id of 2^32 or more is a 400 on verify and detect, never read as its low 32 bits', async () => {
    for (const path of ['/v1/verify', '/v1/detect']) {
      for (const id of [4_294_967_296, 4_294_967_297 + 100]) {
        const response = await gateway.call('POST', path, { tokens: [id, 5, 6] });
        expect(response.status, `${path} ${id}: ${JSON.stringify(response.json)}`).toBe(400);
        expect(response.json.error.param).toBe('tokens');
      }
    }
  });

  it('a bad prompt id names prompt, on detect and verify', async () => {
    const cases: [string, Json][] = [
      ['/v1/detect', { tokens: [1, 2, 3], prompt: [99_999_999_999] }],
      ['/v1/verify', { text: 'hello world', prompt: [99_999_999_999] }],
      ['/v1/detect', { text: 'hello world', prompt: [100_300] }],
    ];
    for (const [path, body] of cases) {
      const response = await gateway.call('POST', path, body);
      expect(response.status, `${path}: ${JSON.stringify(response.json)}`).toBe(400);
      expect(response.json.error).toMatchObject({ code: 'TM_ERR_INVALID_TOKENS', param: 'prompt' });
    }
  });
});

function limit(path: string, tokens: number): Record<string, number> {
  return path === '/v1/responses' ? { max_output_tokens: tokens } : { max_tokens: tokens };
}

describe('the quota stores', () => {
  it('refuse an amount that is not a whole number of tokens, and keep counting', async () => {
    const store = createMemoryQuotaStore(async () => 0);
    for (const amount of [Number.NaN, -1, 1.5, Number.POSITIVE_INFINITY]) {
      await expect(store.reserve('k', amount, 100)).rejects.toThrow(RangeError);
    }
    const granted = await store.reserve('k', 60, 100);
    expect(granted).toMatchObject({ granted: true, used: 60 });
    await expect(store.adjust('k', granted.day, Number.NaN)).rejects.toThrow(RangeError);
    expect((await store.reserve('k', 60, 100)).granted).toBe(false);
  });
});

describe('bodies, labels and paths', () => {
  const post = (path: string, body: Uint8Array | string) =>
    fetch(`${gateway.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gateway.devKey}`, 'content-type': 'application/json' },
      body,
    });

  it('a body that is not UTF-8 is a 400 that says so, on every route', async () => {
    const prefix = new TextEncoder().encode('{"text":"The committee said on Tuesday that the plan ');
    const suffix = new TextEncoder().encode(' would go ahead."}');
    const body = new Uint8Array([...prefix, 0xff, 0xfe, ...suffix]);
    for (const path of ['/v1/verify', '/v1/detect']) {
      const response = await post(path, body);
      const json = (await response.json()) as Json;
      expect(response.status, path).toBe(400);
      expect(json.error.code).toBe('TM_ERR_INVALID_JSON');
      expect(json.error.message).toMatch(/not valid UTF-8/);
    }
    // the same text as UTF-8 is served
    expect((await post('/v1/detect', '{"text":"The committee said on Tuesday"}')).status).toBe(200);
  });

  it('verify refuses a text with a lone surrogate: it has no UTF-8 bytes to sign a report about', async () => {
    const response = await post('/v1/verify', '{"text":"The plan \\ud800 would go ahead."}');
    const json = (await response.json()) as Json;
    expect(response.status).toBe(400);
    expect(json.error.param).toBe('text');
    expect(json.error.message).toMatch(/lone surrogate at index 9/);
  });

  it('an account or key name with a lone surrogate or a control character is a 400 naming it', async () => {
    const cases: [Json, string, RegExp][] = [
      [{ scopes: ['generate'], account: '\ud800x' }, 'account', /lone surrogate at index 0/],
      [{ scopes: ['generate'], account: 'x\udbff' }, 'account', /lone surrogate at index 1/],
      [{ scopes: ['generate'], name: 'a\u0000b' }, 'name', /U\+0000/],
      [{ scopes: ['generate'], name: '\u001b[31mred' }, 'name', /U\+001B/],
    ];
    for (const [body, param, message] of cases) {
      const response = await gateway.call('POST', '/v1/admin/keys', body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.json.error.param).toBe(param);
      expect(response.json.error.message).toMatch(message);
    }
    const fine = await gateway.call('POST', '/v1/admin/keys', { scopes: ['generate'], account: 'équipe 😀' });
    expect(fine.status).toBe(201);
    expect(fine.json.info.account).toBe('équipe 😀');
  });

  it('router errors and whole-body rules leave in the documented shape, with a message that reads', async () => {
    for (const path of ['/v1/admin/issuance/%FF', `/v1/admin/risk/accounts/${'a'.repeat(5000)}`]) {
      const response = await gateway.call('GET', path);
      expect(response.status, path).toBe(400);
      expect(response.json.error.code, path).toBe('TM_ERR_INVALID_REQUEST');
    }
    for (const body of ['null', '[]', '"text"']) {
      const response = await post('/v1/detect', body);
      const json = (await response.json()) as Json;
      expect(response.status, body).toBe(400);
      expect(json.error.message, body).toBe('the request body must be object');
    }
    const missing = await post('/v1/chat/completions', '{}');
    expect(((await missing.json()) as Json).error.message).toMatch(
      /^the request body must have required property/,
    );
  });

  it('a request the HTTP parser refuses is answered in the documented shape', async () => {
    const { connect } = await import('node:net');
    const { port } = new URL(gateway.url);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write('GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\u0001b\r\n\r\n');
      });
      let text = '';
      socket.on('data', (chunk) => {
        text += chunk.toString();
      });
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    const json = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
    expect(json.error).toMatchObject({ code: 'TM_ERR_INVALID_REQUEST', type: 'invalid_request_error' });
  });
});

describe('log-probabilities', () => {
  it('a response without stream carries at most maxLogprobEntries of them; streamed, the same request is served', async () => {
    const small = await startTestGateway({ config: { maxLogprobEntries: 2_000 } });
    try {
      const key = (await small.call('POST', '/v1/admin/keys', { scopes: ['generate', 'logprobs'] })).json.key;
      const body = { ...chat, n: 2, max_tokens: 100, logprobs: true, top_logprobs: 20 };
      const refused = await small.call('POST', '/v1/chat/completions', body, key);
      expect(refused.status).toBe(400);
      expect(refused.json.error).toMatchObject({ code: 'TM_ERR_MAX_TOKENS', param: 'top_logprobs' });
      expect(refused.json.error.message).toMatch(
        /at most 2000 .* may carry 4200 \(100 tokens × 2 choices × 21\)/,
      );
      const legacy = await small.call(
        'POST',
        '/v1/completions',
        { model: MODEL, prompt: 'Tell me', n: 4, max_tokens: 100, logprobs: 5 },
        key,
      );
      expect(legacy.json.error).toMatchObject({ code: 'TM_ERR_MAX_TOKENS', param: 'logprobs' });
      const fits = await small.call('POST', '/v1/chat/completions', { ...body, n: 1, max_tokens: 90 }, key);
      expect(fits.status).toBe(200);
      const streamed = await fetch(`${small.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ...body, stream: true }),
      });
      expect(streamed.status).toBe(200);
      expect(await streamed.text()).toMatch(/"top_logprobs":\[/);
    } finally {
      await small.close();
    }
  });
});

describe('more of what clients send', () => {
  it('a body past the limit is a 413 that names the limit; a compressed body is a 415 that says so', async () => {
    const big = await fetch(`${gateway.url}/v1/detect`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gateway.devKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'a'.repeat(1_100_000) }),
    });
    const bigJson = (await big.json()) as Json;
    expect(big.status).toBe(413);
    expect(bigJson.error.message).toMatch(/\(1048576 bytes;/);
    const { gzipSync } = await import('node:zlib');
    const zipped = await fetch(`${gateway.url}/v1/detect`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${gateway.devKey}`,
        'content-type': 'application/json',
        'content-encoding': 'gzip',
      },
      body: gzipSync(JSON.stringify({ text: 'The committee said on Tuesday' })),
    });
    const zippedJson = (await zipped.json()) as Json;
    expect(zipped.status).toBe(415);
    expect(zippedJson.error.message).toMatch(/Content-Encoding gzip is not accepted/);
  });

  it('GET /v1/models/{model} answers the model, or a 404 naming it (the SDKs’ models.retrieve)', async () => {
    const found = await gateway.call('GET', `/v1/models/${MODEL}`);
    expect(found.status).toBe(200);
    expect(found.json).toMatchObject({ id: MODEL, object: 'model' });
    const missing = await gateway.call('GET', '/v1/models/gpt-9');
    expect(missing.status).toBe(404);
    expect(missing.json.error).toMatchObject({ code: 'TM_ERR_UNKNOWN_MODEL', param: 'model' });
  });
});

describe('fields of several forms', () => {
  it('a value of none of its forms gets one message that lists them', async () => {
    const cases: [string, Json, string, RegExp][] = [
      [
        '/v1/chat/completions',
        { ...chat, stop: 12 },
        'stop',
        /^stop must be a string or an array of at most 4 strings/,
      ],
      [
        '/v1/chat/completions',
        { ...chat, stop: ['a', 'b', 'c', 'd', 'e'] },
        'stop',
        /^stop must be a string or an array/,
      ],
      [
        '/v1/completions',
        { model: MODEL, prompt: { text: 'x' } },
        'prompt',
        /^prompt must be a string, an array of at most 128 strings/,
      ],
      ['/v1/responses', { model: MODEL, input: 5 }, 'input', /^input must be a string or an array/],
    ];
    for (const [path, body, param, message] of cases) {
      const response = await gateway.call('POST', path, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.json.error.param).toBe(param);
      expect(response.json.error.message).toMatch(message);
      expect(response.json.error.message).not.toMatch(/anyOf|body\//);
    }
  });
});
