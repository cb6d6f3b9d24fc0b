/**
 * Client input is never a 5xx: long runs of NUL in every text field, a token id the tokenizer leaves unused,
 * and whatever the tokenizer or decoder throws on a client's data (a 400 naming the field), while a genuine
 * server fault stays a 500 with a generic message. Through the real HTTP server.
 */
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onClientInput } from './errors.ts';
import errorsPlugin from './plugins/errors.ts';
import { type Json, startTestGateway, type TestGateway } from './test-support/harness.ts';

const MODEL = 'tracemark-ngram';
/** Past the ~130,000 NULs on which the tokenizer's recursion once overflowed the stack (a 500). */
const NULS = '\u0000'.repeat(140_000);

let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway();
});
afterAll(async () => {
  await gateway?.close();
});

function expectClientAnswer(response: { status: number; json: Json }, what: string, params: string[]) {
  expect(response.status, `${what}: ${JSON.stringify(response.json)?.slice(0, 300)}`).toBeLessThan(500);
  if (response.status >= 400) {
    expect(response.json.error.code, what).toMatch(/^TM_ERR_/);
    expect(params, `${what}: param`).toContain(response.json.error.param);
    expect(response.json.error.message.length, what).toBeGreaterThan(10);
  }
}

describe('client input is answered with a 2xx or a 4xx that names the field', () => {
  it('140,000 NULs in each text field of detect, verify, chat, completions and scan', async () => {
    const cases: [string, string, unknown, string[]][] = [
      ['detect text', '/v1/detect', { text: NULS }, ['text']],
      ['detect prompt', '/v1/detect', { text: 'a short text', prompt: NULS }, ['prompt']],
      ['verify text', '/v1/verify', { text: NULS }, ['text']],
      [
        'chat message',
        '/v1/chat/completions',
        { model: MODEL, messages: [{ role: 'user', content: NULS }], max_tokens: 4 },
        ['messages'],
      ],
      ['legacy prompt', '/v1/completions', { model: MODEL, prompt: NULS, max_tokens: 4 }, ['prompt']],
      [
        'legacy prompt list',
        '/v1/completions',
        { model: MODEL, prompt: ['fine', NULS], max_tokens: 4 },
        ['prompt'],
      ],
      ['scan document', '/v1/scan', { documents: [{ text: NULS }], fakeKeys: 20 }, ['documents']],
      [
        'scan prompt',
        '/v1/scan',
        { documents: [{ text: 'a short text', prompt: NULS }], fakeKeys: 20 },
        ['documents'],
      ],
    ];
    for (const [what, path, body, params] of cases) {
      expectClientAnswer(await gateway.call('POST', path, body), what, params);
    }
  });

  it('POST /v1/verify with a token id the tokenizer leaves unused is a 400 TM_ERR_INVALID_TOKENS', async () => {
    const response = await gateway.call('POST', '/v1/verify', { tokens: [791, 100256] });
    expect(response.status).toBe(400);
    expect(response.json.error).toMatchObject({ code: 'TM_ERR_INVALID_TOKENS', param: 'tokens' });
    expect(response.json.error.message).toContain('tokens[1] is 100256');
    // Larger than the vocabulary: refused the same way, as before.
    const beyond = await gateway.call('POST', '/v1/verify', { tokens: [4_000_000] });
    expect([beyond.status, beyond.json.error.code]).toEqual([400, 'TM_ERR_INVALID_TOKENS']);
    // A special token decodes: a verdict, not an error.
    expect((await gateway.call('POST', '/v1/verify', { tokens: [791, 100257] })).status).toBe(200);
    // The same unused id through a work thread (a long sequence) is the same 400.
    const long = Array.from({ length: 3000 }, (_, i) => (i === 2500 ? 100256 : 791 + (i % 50)));
    const threaded = await gateway.call('POST', '/v1/verify', { tokens: long });
    expect([threaded.status, threaded.json.error.code]).toEqual([400, 'TM_ERR_INVALID_TOKENS']);
    expect(threaded.json.error.message).toContain('tokens[2500] is 100256');
  });
});

describe('the error handler', () => {
  it('answers a RangeError or TypeError from tokenizing a client field with 400, a server fault with 500', async () => {
    const app = Fastify({ logger: false });
    app.decorate('metrics', {});
    await app.register(errorsPlugin);
    app.get('/overflow', async () =>
      onClientInput('text', () => {
        throw new RangeError('Maximum call stack size exceeded');
      }),
    );
    app.get('/decode', async () =>
      onClientInput('tokens', () => {
        throw new TypeError('ids[3] is not a token id');
      }),
    );
    app.get('/fault', async () => {
      throw new RangeError('internal detail: index 7 out of range in table t_secret');
    });
    app.get('/marked-other', async () =>
      onClientInput('text', () => {
        throw new Error('not a tokenizer error');
      }),
    );
    await app.ready();
    const overflow = await app.inject('/overflow');
    expect(overflow.statusCode).toBe(400);
    expect(overflow.json().error).toMatchObject({
      code: 'TM_ERR_UNPROCESSABLE_INPUT',
      param: 'text',
      type: 'invalid_request_error',
    });
    expect(overflow.json().error.message).toContain('"text" could not be tokenized');
    const decode = await app.inject('/decode');
    expect([decode.statusCode, decode.json().error.code, decode.json().error.param]).toEqual([
      400,
      'TM_ERR_UNPROCESSABLE_INPUT',
      'tokens',
    ]);
    expect(decode.json().error.message).toContain('ids[3] is not a token id');
    for (const path of ['/fault', '/marked-other']) {
      const fault = await app.inject(path);
      expect(fault.statusCode, path).toBe(500);
      expect(fault.json().error).toEqual({
        message: 'internal error',
        type: 'server_error',
        param: null,
        code: 'TM_ERR_INTERNAL',
      });
    }
    await app.close();
  });
});
