/** No secret ever reaches a log line or a response: a whole session's logs are captured and searched. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { loggerOptions } from './app.ts';
import { redactUrl } from './log-redaction.ts';
import { LogCapture, readEvents, startTestGateway } from './test-support/harness.ts';

describe('secrets', () => {
  it('the watermark key, API keys and the server secret appear in no log line and no response', async () => {
    const gateway = await startTestGateway({ logLevel: 'trace' });
    const responses: string[] = [];
    const call = async (...args: Parameters<typeof gateway.call>) => {
      const response = await gateway.call(...args);
      responses.push(response.text, JSON.stringify(Object.fromEntries(response.headers)));
      return response;
    };
    try {
      const created = await call('POST', '/v1/admin/keys', { scopes: ['generate', 'verify', 'logprobs'] });
      const userKey: string = created.json.key;
      await call('GET', '/v1/models', undefined, userKey);
      await call(
        'POST',
        '/v1/chat/completions',
        {
          model: 'tracemark-ngram',
          messages: [{ role: 'user', content: 'hi' }],
          max_tokens: 8,
          logprobs: true,
        },
        userKey,
      );
      await call('POST', '/v1/completions', { model: 'tracemark-ngram', prompt: 'x', max_tokens: 3 });
      const stream = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'tracemark-ngram',
          messages: [{ role: 'user', content: 'hi' }],
          max_tokens: 5,
          stream: true,
        }),
      });
      responses.push(...(await readEvents(stream)));
      await call('POST', '/v1/detect', { text: 'some text to check' }, userKey);
      // Long texts go to the work threads, which hold the watermark and signing keys.
      await call('POST', '/v1/detect', { text: 'some longer text to check. '.repeat(200) }, userKey);
      await call('POST', '/v1/verify', { text: 'some longer text to verify. '.repeat(200) }, userKey);
      await call('POST', '/v1/scan', { documents: [{ text: 'a document to scan' }], fakeKeys: 20 }, userKey);
      const nearMiss = `${userKey.slice(0, -3)}abc`;
      await call('GET', '/v1/models', undefined, nearMiss);
      await call('GET', '/v1/models', undefined, `${gateway.devKey}x`);
      await call('POST', '/v1/chat/completions', '{"broken', userKey);
      await call('GET', '/v1/admin/keys');
      await call('GET', '/v1/admin/issuance');
      await call('DELETE', `/v1/admin/keys/${created.json.id}`);
      await call('GET', '/v1/models', undefined, userKey);
      await call('GET', '/metrics', undefined, null);
      await call('GET', '/healthz', undefined, null);
      await call('GET', '/openapi.json', undefined, null);

      const watermarkSecret = Buffer.from(gateway.services.watermarkKey.secret).toString('hex');
      const serverSecret = readFileSync(join(gateway.dataDir, 'server-secret'), 'utf8').trim();
      const storedHashes = (await gateway.services.storage.listApiKeys()).map((key) => key.hash);
      const secrets: [string, string][] = [
        ['watermark key secret', watermarkSecret],
        ['server secret', serverSecret],
        ['dev API key', gateway.devKey],
        ['user API key', userKey],
        ['near-miss key', nearMiss],
        ['secret part of the user key', userKey.slice(25)],
        ...storedHashes.map((hash): [string, string] => ['stored key hash', hash]),
      ];
      expect(gateway.logs.lines.length).toBeGreaterThan(20);
      const logs = gateway.logs.text;
      const bodies = responses.join('\n');
      for (const [name, secret] of secrets) {
        expect(logs.includes(secret), `${name} in the logs`).toBe(false);
        if (name !== 'user API key' && name !== 'secret part of the user key') {
          expect(bodies.includes(secret), `${name} in a response`).toBe(false);
        }
      }
      // The user key appears in exactly one response: the one that created it.
      expect(responses.filter((text) => text.includes(userKey))).toHaveLength(1);
      expect(logs).not.toMatch(/authorization/i);
    } finally {
      await gateway.close();
    }
  });

  it('keys sent in the query string, the path, any credential header or a body field reach no log line', async () => {
    const gateway = await startTestGateway({ logLevel: 'trace' });
    try {
      const created = await gateway.call('POST', '/v1/admin/keys', { scopes: ['generate', 'verify'] });
      const userKey: string = created.json.key;
      const other = () => `s3cr3t${randomBytes(12).toString('hex')}`;
      const cookie = other();
      const proxy = other();
      const bodySecret = other();
      const headerKey = other();
      const send = (path: string, init: RequestInit = {}) =>
        fetch(`${gateway.url}${path}`, init).then(async (response) => {
          await response.arrayBuffer();
          return response.status;
        });
      // The reported case: refused (401), and the info-level request line used to carry the whole URL.
      expect(await send(`/v1/models?api_key=${userKey}`)).toBe(401);
      expect(await send(`/v1/models?key=${userKey}&token=${headerKey}&limit=3`)).toBe(401);
      expect(await send(`/v1/models?${userKey}`)).toBe(401);
      expect(await send(`/v1/log/consistency?from=0&api_key=${userKey}`)).toBe(200);
      expect(await send(`/${userKey}`)).toBe(404);
      expect(await send(`/v1/models/${userKey}?x=${headerKey}`)).toBe(401);
      expect(await send(`/v1/nothing/${userKey}?x=${headerKey}`)).toBe(404);
      for (const [header, value] of [
        ['authorization', `Bearer ${userKey}`],
        ['x-api-key', userKey],
        ['api-key', headerKey],
        ['cookie', `session=${cookie}`],
        ['proxy-authorization', `Basic ${proxy}`],
      ] as const) {
        expect(await send('/v1/models', { headers: { [header]: value } }), header).toBeLessThan(500);
      }
      const json = { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' };
      expect(
        await send('/v1/chat/completions', {
          method: 'POST',
          headers: json,
          body: JSON.stringify({
            model: 'tracemark-ngram',
            messages: [{ role: 'user', content: 'hi' }],
            max_tokens: 3,
            api_key: bodySecret,
            secret: bodySecret,
            token: bodySecret,
          }),
        }),
      ).toBe(200);
      expect(
        await send('/v1/detect', {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ text: 5, apiKey: bodySecret }),
        }),
      ).toBe(400);
      expect(
        await send(`/v1/detect?api_key=${userKey}`, {
          method: 'POST',
          headers: json,
          body: `{"key":"${bodySecret}`,
        }),
      ).toBe(400);

      const logs = gateway.logs.text;
      expect(gateway.logs.lines.length).toBeGreaterThan(20);
      for (const [name, secret] of [
        ['user API key', userKey],
        ['its secret part', userKey.slice(25)],
        ['dev API key', gateway.devKey],
        ['api-key header', headerKey],
        ['cookie', cookie],
        ['proxy authorization', proxy],
        ['body field', bodySecret],
      ]) {
        expect(logs.includes(secret!), `${name} in the logs`).toBe(false);
      }
      // The request lines are still there, with the path and the parameter names.
      expect(logs).toContain('"url":"/v1/models?api_key=[redacted]"');
      expect(logs).toContain('"url":"/v1/log/consistency?from=[redacted]&api_key=[redacted]"');
    } finally {
      await gateway.close();
    }
  });

  it('redacts secret-named fields at any depth, credential headers and key-shaped strings in whatever is logged', async () => {
    const logs = new LogCapture();
    const app = Fastify({ logger: loggerOptions('trace', logs) });
    const secrets = Array.from({ length: 10 }, () => `s3cr3t${randomBytes(12).toString('hex')}`);
    const key = `tm_live_0123456789abcdef_${randomBytes(32).toString('base64url').slice(0, 43)}`;
    app.log.info(
      {
        apiKey: secrets[0],
        upstream: { api_key: secrets[1], nested: { client_secret: secrets[2], accessToken: secrets[3] } },
        list: [{ password: secrets[4] }, `Bearer ${key}`],
        headers: { authorization: secrets[5], 'x-api-key': secrets[6], cookie: secrets[7] },
        req: { headers: { 'proxy-authorization': secrets[8] } },
        keyId: 'ak_visible',
        numTokens: 12,
      },
      `called /v1/models?api_key=${secrets[9]} with ${key}`,
    );
    app.log.error(
      { err: new Error(`failed on /v1/models?token=${secrets[9]} for ${key}`) },
      'request failed',
    );
    await app.close();
    const text = logs.text;
    for (const [index, secret] of secrets.entries())
      expect(text.includes(secret), `secret ${index}`).toBe(false);
    expect(text.includes(key)).toBe(false);
    expect(text).toContain('"keyId":"ak_visible"');
    expect(text).toContain('"numTokens":12');
    expect(redactUrl('/v1/log/consistency?from=3&to=9')).toBe(
      '/v1/log/consistency?from=[redacted]&to=[redacted]',
    );
    expect(redactUrl(`/v1/x?${key}&a=1`)).toBe('/v1/x?[redacted]&a=[redacted]');
    expect(redactUrl(`/${key}/y`)).toBe('/[redacted]/y');
  });
});
