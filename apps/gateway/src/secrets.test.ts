/** No secret ever reaches a log line or a response: a whole session's logs are captured and searched. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readEvents, startTestGateway } from './test-support/harness.ts';

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
});
