/** The gateway through real HTTP: shapes, streaming, detection, logprobs, admin, errors. */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { createTextDetector } from '@tracemark/detection';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintApiKey } from './api-keys.ts';
import { ERROR_STATUSES } from './schemas.ts';
import {
  type Json,
  readEvents,
  removeTemporaryDirectories,
  startTestGateway,
  type TestGateway,
  temporaryDirectory,
  writeFixedKeyFile,
} from './test-support/harness.ts';

const MODEL = 'tracemark-ngram';
const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
let gateway: TestGateway;
let logprobsKey = '';
let generateOnlyKey = '';

beforeAll(async () => {
  gateway = await startTestGateway();
  const created = await gateway.call('POST', '/v1/admin/keys', {
    scopes: ['generate', 'logprobs'],
    name: 'logprobs',
  });
  logprobsKey = created.json.key;
  generateOnlyKey = (await gateway.call('POST', '/v1/admin/keys', { scopes: ['generate'] })).json.key;
});
afterAll(async () => {
  await gateway?.close();
  removeTemporaryDirectories();
});

const chat = (body: Record<string, unknown>, key?: string) =>
  gateway.call(
    'POST',
    '/v1/chat/completions',
    { model: MODEL, messages: [{ role: 'user', content: 'Tell me about the weather.' }], ...body },
    key,
  );

async function issuance(id: string) {
  const record = await gateway.call('GET', `/v1/admin/issuance/${id}`);
  expect(record.status).toBe(200);
  return record.json;
}

describe('first start', () => {
  it('creates the watermark key, the server secret and a dev key, all 0600 in a 0700 directory', async () => {
    const { statSync, readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    expect(statSync(gateway.dataDir).mode & 0o777).toBe(0o700);
    for (const file of ['watermark-key.json', 'server-secret', 'dev-api-key', 'gateway.sqlite']) {
      expect(statSync(join(gateway.dataDir, file)).mode & 0o777, file).toBe(0o600);
    }
    expect(gateway.devKey).toMatch(/^tm_dev_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(readFileSync(join(gateway.dataDir, 'dev-api-key'), 'utf8').trim()).toBe(gateway.devKey);
    expect(gateway.prepared.firstStart.watermarkKeyCreated).toBe(true);
  });
});

describe('chat completions', () => {
  it('returns the OpenAI shape, watermarked, recorded in the issuance log before it is returned', async () => {
    const response = await chat({ max_tokens: 200, seed: 11 });
    expect(response.status).toBe(200);
    const body = response.json;
    expect(body).toMatchObject({
      object: 'chat.completion',
      model: MODEL,
      usage: { completion_tokens: 200 },
    });
    expect(body.id).toMatch(/^chatcmpl-/);
    expect(body.choices).toHaveLength(1);
    expect(body.choices[0]).toMatchObject({
      index: 0,
      message: { role: 'assistant' },
      logprobs: null,
      finish_reason: 'length',
    });
    const text: string = body.choices[0].message.content;
    expect(text.length).toBeGreaterThan(100);
    expect(body.tracemark.watermark_key_id).toBe(gateway.services.watermarkKey.keyId);
    const record = await issuance(body.tracemark.issuance_ids[0]);
    expect(record).toMatchObject({
      completionId: body.id,
      choiceIndex: 0,
      apiKeyId: gateway.services.config && expect.stringMatching(/^ak_/),
      account: 'dev',
      endpoint: 'chat.completions',
      model: MODEL,
      backend: 'embedded',
      watermarkKeyId: body.tracemark.watermark_key_id,
      keyEpoch: null,
      outputSha256: sha256(text),
      numTokens: 200,
      numPromptTokens: body.usage.prompt_tokens,
      finishReason: 'length',
    });
    expect(record.promptSha256).toBe(sha256('Tell me about the weather.\n\n'));
    expect(record.outputTokens).toHaveLength(200);
    const detected = await gateway.call('POST', '/v1/detect', { text });
    expect(detected.status).toBe(200);
    expect(detected.json.verdict).toBe('watermarked');
    expect(detected.json.log10P).toBeLessThan(-6);
  });

  it('a seed reproduces the completion; different seeds differ', async () => {
    const a = await chat({ max_tokens: 30, seed: 5 });
    const b = await chat({ max_tokens: 30, seed: 5 });
    const c = await chat({ max_tokens: 30, seed: 6 });
    expect(a.json.choices[0].message.content).toBe(b.json.choices[0].message.content);
    expect(c.json.choices[0].message.content).not.toBe(a.json.choices[0].message.content);
  });

  it('n choices, each recorded', async () => {
    const response = await chat({ max_tokens: 10, n: 3, seed: 1 });
    expect(response.status).toBe(200);
    expect(response.json.choices.map((choice: { index: number }) => choice.index)).toEqual([0, 1, 2]);
    expect(response.json.tracemark.issuance_ids).toHaveLength(3);
    expect(response.json.usage.completion_tokens).toBe(30);
  });

  it('stops before a stop sequence and says so', async () => {
    const response = await chat({ max_tokens: 200, stop: ['.', '\n'], seed: 3 });
    const choice = response.json.choices[0];
    expect(choice.finish_reason).toBe('stop');
    expect(choice.message.content).not.toMatch(/[.\n]/);
    expect(response.json.usage.completion_tokens).toBeLessThan(200);
  });

  it('max_completion_tokens is honoured, temperature 0 is deterministic', async () => {
    const a = await chat({ max_completion_tokens: 7, temperature: 0 });
    const b = await chat({ max_completion_tokens: 7, temperature: 0 });
    expect(a.json.usage.completion_tokens).toBe(7);
    expect(a.json.choices[0].message.content).toBe(b.json.choices[0].message.content);
  });

  it('accepts text content parts and every role', async () => {
    const response = await gateway.call('POST', '/v1/chat/completions', {
      model: MODEL,
      max_tokens: 5,
      messages: [
        { role: 'system', content: 'Be brief.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Hello' },
            { type: 'text', text: ' there' },
          ],
        },
        { role: 'assistant', content: null },
      ],
    });
    expect(response.status).toBe(200);
  });
});

describe('streaming', () => {
  const stream = (path: string, body: Record<string, unknown>, key = gateway.devKey) =>
    fetch(`${gateway.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, ...body }),
    });

  it('chat: role first, content deltas, finish, usage with include_usage, then [DONE]; the record matches', async () => {
    const response = await stream('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'Write about the river.' }],
      max_tokens: 60,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = await readEvents(response);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((event) => JSON.parse(event));
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.every((chunk) => chunk.object === 'chat.completion.chunk')).toBe(true);
    const text = chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? '').join('');
    const finish = chunks.find((chunk) => chunk.choices[0]?.finish_reason);
    expect(finish.choices[0].finish_reason).toBe('length');
    const usage = chunks.at(-1);
    expect(usage.choices).toEqual([]);
    expect(usage.usage.completion_tokens).toBe(60);
    const record = await issuance(usage.tracemark.issuance_ids[0]);
    expect(record.outputSha256).toBe(sha256(text));
    expect(record.numTokens).toBe(60);
  });

  it('legacy completions stream text chunks and end with [DONE]; no usage without include_usage', async () => {
    const response = await stream('/v1/completions', {
      prompt: 'The river',
      max_tokens: 20,
      stream: true,
      stop: '\n\n',
    });
    const events = await readEvents(response);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((event) => JSON.parse(event));
    expect(chunks.every((chunk) => chunk.object === 'text_completion' && chunk.usage === undefined)).toBe(
      true,
    );
    expect(chunks.at(-1).choices[0].finish_reason).toMatch(/^(length|stop)$/);
  });

  it('n streamed choices carry their index', async () => {
    const response = await stream('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 5,
      n: 2,
      stream: true,
    });
    const chunks = (await readEvents(response)).slice(0, -1).map((event) => JSON.parse(event));
    const finished = chunks
      .filter((chunk) => chunk.choices[0]?.finish_reason)
      .map((chunk) => chunk.choices[0].index);
    expect(finished).toEqual([0, 1]);
  });
});

describe('legacy completions', () => {
  it('string, token-id and several prompts × n', async () => {
    const text = await gateway.call('POST', '/v1/completions', {
      model: MODEL,
      prompt: 'Once upon a time',
      max_tokens: 8,
    });
    expect(text.status).toBe(200);
    expect(text.json).toMatchObject({ object: 'text_completion', usage: { completion_tokens: 8 } });
    expect(typeof text.json.choices[0].text).toBe('string');
    const ids = await gateway.call('POST', '/v1/completions', {
      model: MODEL,
      prompt: [791, 12474],
      max_tokens: 4,
    });
    expect(ids.status).toBe(200);
    expect(ids.json.usage.prompt_tokens).toBe(2);
    const many = await gateway.call('POST', '/v1/completions', {
      model: MODEL,
      prompt: ['A', 'B'],
      n: 2,
      max_tokens: 3,
    });
    expect(many.json.choices.map((choice: { index: number }) => choice.index)).toEqual([0, 1, 2, 3]);
    expect(many.json.tracemark.issuance_ids).toHaveLength(4);
  });
});

describe('detection', () => {
  it('returns the same numbers as the detection library (and so as `tracemark detect --json`)', async () => {
    const generated = await chat({ max_tokens: 120, seed: 2 });
    const text = generated.json.choices[0].message.content;
    const detector = createTextDetector({ keys: [gateway.services.watermarkKey] });
    const expected = detector.detectText(text, { source: 'request' });
    const response = await gateway.call('POST', '/v1/detect', { text });
    expect(response.json).toEqual({ ...expected, tokensToSettle: expected.tokensToSettle });
    const tokens = Array.from(detector.tokenizer.encode(text));
    const byTokens = await gateway.call('POST', '/v1/detect', {
      tokens,
      prompt: 'Tell me about the weather.\n\n',
    });
    expect(byTokens.json).toEqual(
      detector.detectTokens(tokens, { source: 'request', prompt: 'Tell me about the weather.\n\n' }),
    );
  });

  it('human text is not watermarked; window and fpr options pass through', async () => {
    const human =
      'It was a bright cold day in April, and the clocks were striking thirteen. Winston Smith, his chin nuzzled into his breast in an effort to escape the vile wind, slipped quickly through the glass doors of Victory Mansions, though not quickly enough to prevent a swirl of gritty dust from entering along with him.';
    // A gateway with a fixed key: under this file's fresh key, the text was called watermarked at fpr 0.001
    // about once in ten thousand runs (the key's false positive, not a defect).
    const keyFile = join(temporaryDirectory(), 'watermark-key.json');
    writeFixedKeyFile(keyFile, 47);
    const fixed = await startTestGateway({ config: { keyFile } });
    try {
      const response = await fixed.call('POST', '/v1/detect', { text: human, fpr: 0.001, window: true });
      expect(response.status).toBe(200);
      expect(response.json.verdict).not.toBe('watermarked');
      expect(response.json.fpr).toBe(0.001);
    } finally {
      await fixed.close();
    }
  });

  it('needs exactly one of text or tokens, valid token ids, and the verify scope', async () => {
    expect((await gateway.call('POST', '/v1/detect', {})).json.error.code).toBe('TM_ERR_INVALID_REQUEST');
    expect((await gateway.call('POST', '/v1/detect', { text: 'a', tokens: [1] })).status).toBe(400);
    const bad = await gateway.call('POST', '/v1/detect', { tokens: [1, 99_999_999] });
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe('TM_ERR_INVALID_TOKENS');
    const forbidden = await gateway.call('POST', '/v1/detect', { text: 'a' }, generateOnlyKey);
    expect(forbidden.status).toBe(403);
    expect(forbidden.json.error.code).toBe('TM_ERR_SCOPE');
  });
});

describe('logprobs', () => {
  it('are refused to keys without the logprobs scope', async () => {
    const response = await chat({ max_tokens: 3, logprobs: true, top_logprobs: 2 });
    expect(response.status).toBe(403);
    expect(response.json.error).toMatchObject({ code: 'TM_ERR_LOGPROBS_FORBIDDEN', param: 'logprobs' });
    const legacy = await gateway.call('POST', '/v1/completions', {
      model: MODEL,
      prompt: 'a',
      logprobs: 2,
      max_tokens: 2,
    });
    expect(legacy.json.error.code).toBe('TM_ERR_LOGPROBS_FORBIDDEN');
    expect((await chat({ max_tokens: 2, logprobs: false })).status).toBe(200);
  });

  it('are returned, in both shapes, to keys with the scope', async () => {
    const response = await chat({ max_tokens: 4, logprobs: true, top_logprobs: 3 }, logprobsKey);
    expect(response.status).toBe(200);
    const content = response.json.choices[0].logprobs.content;
    expect(content).toHaveLength(4);
    expect(content[0].top_logprobs).toHaveLength(3);
    expect(content[0].logprob).toBeLessThanOrEqual(0);
    expect(content.map((entry: { token: string }) => entry.token).join('')).toBe(
      response.json.choices[0].message.content,
    );
    const legacy = await gateway.call(
      'POST',
      '/v1/completions',
      { model: MODEL, prompt: 'The', logprobs: 2, max_tokens: 3 },
      logprobsKey,
    );
    const logprobs = legacy.json.choices[0].logprobs;
    expect(logprobs.tokens).toHaveLength(3);
    expect(logprobs.token_logprobs).toHaveLength(3);
    expect(Object.keys(logprobs.top_logprobs[0]).length).toBeLessThanOrEqual(2);
    expect(logprobs.text_offset[0]).toBe(0);
  });

  it('of a long completion come in a body written in pieces, whole and in the documented shape', async () => {
    const response = await chat({ max_tokens: 200, n: 2, logprobs: true, top_logprobs: 5 }, logprobsKey);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(Object.keys(response.json)).toEqual([
      'id',
      'created',
      'model',
      'system_fingerprint',
      'object',
      'choices',
      'usage',
      'tracemark',
    ]);
    expect(response.json.choices).toHaveLength(2);
    for (const choice of response.json.choices) {
      expect(Object.keys(choice)).toEqual(['index', 'message', 'logprobs', 'finish_reason']);
      const content = choice.logprobs.content;
      expect(content.length).toBeGreaterThan(32);
      expect(content.every((entry: { top_logprobs: unknown[] }) => entry.top_logprobs.length === 5)).toBe(
        true,
      );
      const bytes = content.flatMap((entry: { bytes: number[] }) => entry.bytes);
      expect(Buffer.from(bytes).toString('utf8')).toBe(choice.message.content);
    }
    expect(response.json.usage.completion_tokens).toBe(
      response.json.choices.reduce((sum: number, choice: Json) => sum + choice.logprobs.content.length, 0),
    );
  });
});

describe('refused fields', () => {
  it.each([
    ['logit_bias', { '1234': 100 }],
    ['watermark', false],
    ['logits_processors', ['x']],
    ['allowed_token_ids', [1, 2]],
    ['guided_json', { type: 'object' }],
    ['n_probs', 5],
    ['prompt_logprobs', 1],
  ])('%s → 400 TM_ERR_WATERMARK_OPT_OUT', async (field, value) => {
    const response = await chat({ max_tokens: 2, [field]: value });
    expect(response.status).toBe(400);
    expect(response.json.error).toMatchObject({
      code: 'TM_ERR_WATERMARK_OPT_OUT',
      param: field,
      type: 'invalid_request_error',
    });
  });

  it('empty logit_bias and null fields are harmless', async () => {
    expect((await chat({ max_tokens: 2, logit_bias: {}, frequency_penalty: 0, user: 'u1' })).status).toBe(
      200,
    );
  });

  it.each([
    ['frequency_penalty', 0.5],
    ['tools', [{ type: 'function', function: { name: 'f' } }]],
    ['response_format', { type: 'json_object' }],
  ])('%s → 400 TM_ERR_UNSUPPORTED_PARAMETER', async (field, value) => {
    const response = await chat({ max_tokens: 2, [field]: value });
    expect(response.status).toBe(400);
    expect(response.json.error.code).toBe('TM_ERR_UNSUPPORTED_PARAMETER');
  });
});

describe('bad input is a 4xx with a stable code, never a 5xx', () => {
  const cases: [string, unknown, number, string][] = [
    ['malformed JSON', '{"model": "tracemark-ngram", "messages": [', 400, 'TM_ERR_INVALID_JSON'],
    ['empty body', '', 400, 'TM_ERR_INVALID_JSON'],
    ['a JSON array', '[1,2]', 400, 'TM_ERR_INVALID_REQUEST'],
    ['messages is a string', { model: MODEL, messages: 'hi' }, 400, 'TM_ERR_INVALID_REQUEST'],
    ['no messages', { model: MODEL }, 400, 'TM_ERR_INVALID_REQUEST'],
    [
      'temperature is a string',
      { model: MODEL, messages: [{ role: 'user', content: 'x' }], temperature: 'hot' },
      400,
      'TM_ERR_INVALID_REQUEST',
    ],
    [
      'max_tokens as a string',
      { model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: '100' },
      400,
      'TM_ERR_MAX_TOKENS',
    ],
    [
      'negative max_tokens',
      { model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: -5 },
      400,
      'TM_ERR_MAX_TOKENS',
    ],
    [
      'zero max_tokens',
      { model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 0 },
      400,
      'TM_ERR_MAX_TOKENS',
    ],
    [
      'fractional max_tokens',
      { model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 1.5 },
      400,
      'TM_ERR_MAX_TOKENS',
    ],
    [
      'huge max_tokens',
      { model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 1e12 },
      400,
      'TM_ERR_MAX_TOKENS',
    ],
    [
      'huge n',
      { model: MODEL, messages: [{ role: 'user', content: 'x' }], n: 100000 },
      400,
      'TM_ERR_TOO_MANY_CHOICES',
    ],
    [
      'n = 0',
      { model: MODEL, messages: [{ role: 'user', content: 'x' }], n: 0 },
      400,
      'TM_ERR_TOO_MANY_CHOICES',
    ],
    [
      'top_p = 0',
      { model: MODEL, messages: [{ role: 'user', content: 'x' }], top_p: 0 },
      400,
      'TM_ERR_INVALID_REQUEST',
    ],
    [
      'unknown role',
      { model: MODEL, messages: [{ role: 'wizard', content: 'x' }] },
      400,
      'TM_ERR_INVALID_REQUEST',
    ],
    [
      'an image part',
      {
        model: MODEL,
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }],
      },
      400,
      'TM_ERR_UNSUPPORTED_PARAMETER',
    ],
    [
      'five stop sequences',
      { model: MODEL, messages: [{ role: 'user', content: 'x' }], stop: ['a', 'b', 'c', 'd', 'e'] },
      400,
      'TM_ERR_INVALID_REQUEST',
    ],
    [
      'unknown model',
      { model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] },
      404,
      'TM_ERR_UNKNOWN_MODEL',
    ],
  ];
  it.each(cases)('%s', async (_name, body, status, code) => {
    const response = await gateway.call('POST', '/v1/chat/completions', body);
    expect(response.status, response.text).toBe(status);
    expect(response.json.error).toMatchObject({ code });
    expect(Object.keys(response.json.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  });

  it('legacy: out-of-range token ids, echo, best_of', async () => {
    const ids = await gateway.call('POST', '/v1/completions', { model: MODEL, prompt: [1, 100_264] });
    expect(ids.json.error.code).toBe('TM_ERR_INVALID_TOKENS');
    expect(
      (await gateway.call('POST', '/v1/completions', { model: MODEL, prompt: 'x', echo: true })).json.error
        .code,
    ).toBe('TM_ERR_UNSUPPORTED_PARAMETER');
    expect(
      (await gateway.call('POST', '/v1/completions', { model: MODEL, prompt: 'x', best_of: 3 })).status,
    ).toBe(400);
    expect((await gateway.call('POST', '/v1/completions', { model: MODEL, prompt: [] })).status).toBe(400);
  });

  it('oversized body → 413, wrong content type → 415, unknown route → 404', async () => {
    const big = await gateway.call('POST', '/v1/chat/completions', {
      model: MODEL,
      messages: [{ role: 'user', content: 'x'.repeat(2 * 1024 * 1024) }],
    });
    expect(big.status).toBe(413);
    expect(big.json.error.code).toBe('TM_ERR_BODY_TOO_LARGE');
    const plain = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gateway.devKey}`, 'content-type': 'text/plain' },
      body: 'hello',
    });
    expect(plain.status).toBe(415);
    expect((await plain.json()).error.code).toBe('TM_ERR_UNSUPPORTED_MEDIA_TYPE');
    const missing = await gateway.call('GET', '/v1/nothing');
    expect(missing.status).toBe(404);
    expect(missing.json.error.code).toBe('TM_ERR_NOT_FOUND');
  });

  it('a prompt longer than the limit', async () => {
    const long = await chat({ messages: [{ role: 'user', content: 'word '.repeat(40_000) }], max_tokens: 1 });
    expect(long.status).toBe(400);
    expect(long.json.error.code).toBe('TM_ERR_PROMPT_TOO_LONG');
  });
});

describe('authentication', () => {
  it('missing, malformed, unknown, revoked and expired keys are 401s with their own codes', async () => {
    const models = (key: string | null, headers: Record<string, string> = {}) =>
      fetch(`${gateway.url}/v1/models`, {
        headers: { ...(key === null ? {} : { authorization: key }), ...headers },
      });
    const code = async (response: Response) => [response.status, (await response.json()).error.code];
    expect(await code(await models(null))).toEqual([401, 'TM_ERR_MISSING_API_KEY']);
    expect(await code(await models(`Basic ${gateway.devKey}`))).toEqual([401, 'TM_ERR_MISSING_API_KEY']);
    expect(await code(await models('Bearer nonsense'))).toEqual([401, 'TM_ERR_INVALID_API_KEY']);
    const forged = `${gateway.devKey.slice(0, -4)}AAAA`;
    expect(await code(await models(`Bearer ${forged}`))).toEqual([401, 'TM_ERR_INVALID_API_KEY']);
    expect((await models(null, { 'x-api-key': gateway.devKey })).status).toBe(200);

    const created = await gateway.call('POST', '/v1/admin/keys', { scopes: ['generate'], account: 'acme' });
    expect(created.status).toBe(201);
    expect((await models(`Bearer ${created.json.key}`)).status).toBe(200);
    const revoked = await gateway.call('DELETE', `/v1/admin/keys/${created.json.id}`);
    expect(revoked.json).toMatchObject({ id: created.json.id, state: 'revoked' });
    expect(await code(await models(`Bearer ${created.json.key}`))).toEqual([401, 'TM_ERR_API_KEY_REVOKED']);

    const minted = mintApiKey(gateway.services.serverSecret);
    await gateway.services.storage.insertApiKey({
      id: minted.id,
      hash: minted.hash,
      environment: 'live',
      name: 'expired',
      account: 'acme',
      scopes: ['generate'],
      createdAt: '2020-01-01T00:00:00.000Z',
      expiresAt: '2021-01-01T00:00:00.000Z',
      revokedAt: null,
      rateLimitPerMinute: null,
      dailyTokenQuota: null,
    });
    expect(await code(await models(`Bearer ${minted.key}`))).toEqual([401, 'TM_ERR_API_KEY_EXPIRED']);
  });

  it('scopes: a generate-only key cannot use the admin API', async () => {
    const response = await gateway.call('GET', '/v1/admin/keys', undefined, generateOnlyKey);
    expect(response.status).toBe(403);
    expect(response.json.error.code).toBe('TM_ERR_SCOPE');
  });
});

describe('admin API', () => {
  it('shows a key once; listings never carry keys or hashes', async () => {
    const created = await gateway.call('POST', '/v1/admin/keys', {
      scopes: ['verify'],
      name: 'ci',
      expiresAt: '2099-01-01T00:00:00Z',
      rateLimitPerMinute: 5,
      dailyTokenQuota: 1000,
    });
    expect(created.status).toBe(201);
    expect(created.json.key).toMatch(/^tm_live_/);
    expect(created.json.info).toMatchObject({
      scopes: ['verify'],
      expiresAt: '2099-01-01T00:00:00.000Z',
      rateLimitPerMinute: 5,
      state: 'active',
    });
    const list = await gateway.call('GET', '/v1/admin/keys');
    expect(list.status).toBe(200);
    expect(list.text).not.toContain(created.json.key);
    expect(list.text).not.toMatch(/"hash"/);
    const storedHash = (await gateway.services.storage.getApiKey(created.json.id))!.hash;
    expect(list.text).not.toContain(storedHash);
    expect(list.json.data.find((info: { id: string }) => info.id === created.json.id)).toMatchObject({
      name: 'ci',
      state: 'active',
    });
  });

  it('validates input and reports unknown ids', async () => {
    expect((await gateway.call('POST', '/v1/admin/keys', { scopes: ['root'] })).status).toBe(400);
    expect(
      (
        await gateway.call('POST', '/v1/admin/keys', {
          scopes: ['verify'],
          expiresAt: '2001-01-01T00:00:00Z',
        })
      ).status,
    ).toBe(400);
    const unknown = await gateway.call('DELETE', '/v1/admin/keys/ak_0000000000000000');
    expect(unknown.status).toBe(404);
    expect((await gateway.call('DELETE', '/v1/admin/keys/nonsense')).status).toBe(400);
  });

  it('reads the issuance log in order, with paging', async () => {
    const page = await gateway.call('GET', '/v1/admin/issuance?limit=2');
    expect(page.json.data).toHaveLength(2);
    expect(page.json.data.map((record: { seq: number }) => record.seq)).toEqual([0, 1]);
    const next = await gateway.call('GET', '/v1/admin/issuance?limit=2&after=1');
    expect(next.json.data[0].seq).toBe(2);
    expect(page.json.total).toBeGreaterThanOrEqual(3);
  });

  it('lists records with the fields of one record, the same values, token ids as arrays', async () => {
    const listed = await gateway.call('GET', '/v1/admin/issuance?limit=1000');
    expect(listed.status).toBe(200);
    expect(listed.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(Object.keys(listed.json)).toEqual(['object', 'data', 'total']);
    expect(listed.json.data.length).toBeGreaterThanOrEqual(3);
    for (const record of listed.json.data.slice(0, 3)) {
      const one = await gateway.call('GET', `/v1/admin/issuance/${record.id}`);
      expect(record).toEqual(one.json);
      expect(Object.keys(record)).toEqual(Object.keys(one.json));
      expect(Array.isArray(record.outputTokens) || record.outputTokens === null).toBe(true);
    }
    expect(listed.json.data.some((record: Json) => Array.isArray(record.outputTokens))).toBe(true);
    expect(listed.text).not.toContain('normalizedOutputSha256');
  });
});

describe('operations', () => {
  it('/healthz, /metrics and /openapi.json need no key', async () => {
    const health = await gateway.call('GET', '/healthz', undefined, null);
    expect(health.json).toMatchObject({ status: 'ok', storage: 'sqlite', backend: 'embedded', model: MODEL });
    const metrics = await gateway.call('GET', '/metrics', undefined, null);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(metrics.text).toMatch(
      /tracemark_http_requests_total\{method="POST",route="\/v1\/chat\/completions",status="200"\} \d+/,
    );
    expect(metrics.text).toMatch(/tracemark_issuance_records_total \d+/);
    expect(metrics.text).toMatch(/tracemark_process_resident_memory_bytes \d+/);
  });

  it('every route declares its request and response schemas for every status', async () => {
    const document = (await gateway.call('GET', '/openapi.json', undefined, null)).json;
    expect(document.openapi).toBe('3.1.0');
    const operations = Object.entries(document.paths as Record<string, Record<string, Json>>).flatMap(
      ([path, methods]) =>
        Object.entries(methods).map(([method, operation]) => ({ path, method, operation })),
    );
    expect(operations.map((entry) => `${entry.method} ${entry.path}`).sort()).toEqual(
      [
        'delete /v1/admin/keys/{id}',
        'get /.well-known/tracemark/keys.json',
        'get /healthz',
        'get /metrics',
        'get /openapi.json',
        'get /v1/admin/issuance',
        'get /v1/admin/issuance/{id}',
        'get /v1/admin/keys',
        'get /v1/admin/risk',
        'get /v1/admin/risk/accounts/{account}',
        'post /v1/admin/risk/accounts/{account}/actions',
        'get /v1/log/checkpoint',
        'get /v1/log/consistency',
        'get /v1/log/inclusion',
        'get /v1/models',
        'get /v1/models/{model}',
        'get /v1/whoami',
        'post /v1/admin/keys',
        'post /v1/chat/completions',
        'post /v1/completions',
        'post /v1/detect',
        'post /v1/responses',
        'post /v1/scan',
        'post /v1/verify',
      ].sort(),
    );
    for (const { path, method, operation } of operations) {
      const statuses = Object.keys(operation.responses);
      expect(
        statuses.some((status) => status === '200' || status === '201'),
        `${method} ${path}`,
      ).toBe(true);
      for (const status of ERROR_STATUSES) expect(statuses, `${method} ${path}`).toContain(String(status));
      if (method === 'post') expect(operation.requestBody, `${method} ${path}`).toBeDefined();
    }
  });
});
