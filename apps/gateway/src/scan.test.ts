/** POST /v1/scan and GET /v1/whoami through real HTTP: results, parity with the library, limits, scopes. */
import { type FakeKeyCounts, fakeKeyPValues, runFakeKeyJob, scanCorpus } from '@tracemark/extraction';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCAN_MAX_DOCUMENTS } from './routes/scan.ts';
import { startTestGateway, type TestGateway } from './test-support/harness.ts';

let gateway: TestGateway;
let generateOnlyKey = '';
let verifyOnlyKey = '';
const issued: string[] = [];

const HUMAN = [
  'The committee met on Tuesday to discuss the budget for the coming year, and after a long debate it agreed to postpone the vote until the members had seen the auditors’ report.',
  'Rain fell over the valley for most of the afternoon. By evening the river had risen almost to the bridge, and the farmers moved their cattle to the higher fields.',
  'She had never liked the old house, with its narrow stairs and the smell of damp in the cellar, but it was the only place where she could work without being disturbed.',
  'In the early years of the century, the town grew quickly around the railway station, and the new shops along the main street drew customers from the villages nearby.',
];

beforeAll(async () => {
  gateway = await startTestGateway();
  generateOnlyKey = (await gateway.call('POST', '/v1/admin/keys', { scopes: ['generate'] })).json.key;
  verifyOnlyKey = (
    await gateway.call('POST', '/v1/admin/keys', { scopes: ['verify'], name: 'analyst', account: 'acme' })
  ).json.key;
  for (let i = 0; i < 10; i++) {
    const response = await gateway.call('POST', '/v1/completions', {
      model: 'tracemark-ngram',
      prompt: `Write about topic ${i}.`,
      max_tokens: 80,
      seed: 40 + i,
    });
    issued.push(response.json.choices[0].text);
  }
});
afterAll(async () => {
  await gateway?.close();
});

describe('POST /v1/scan', () => {
  it('finds a corpus of issued outputs radioactive, with every fake key’s p-value, as the library computes', async () => {
    const documents = issued.map((text, i) => ({
      text,
      prompt: `Write about topic ${i}.`,
      source: `doc-${i}`,
    }));
    const response = await gateway.call('POST', '/v1/scan', { documents }, verifyOnlyKey);
    expect(response.status).toBe(200);
    const body = response.json;
    expect(body.object).toBe('tracemark.scan');
    expect(body.verdict).toBe('radioactive');
    expect(body.numDocuments).toBe(10);
    expect(body.fakeKeys).toEqual({ count: 100, seed: 'tracemark/v1/calibration' });
    const [key] = body.keys;
    expect(key.keyId).toBe(gateway.services.watermarkKey.keyId);
    expect(key.calibration.rank).toBe(1);
    expect(key.fakeKeyLog10P).toHaveLength(100);
    expect(key.fakeKeyRandomizedP).toHaveLength(100);
    expect(key.fakeKeyRandomizedP.every((p: number) => p > 0 && p <= 1)).toBe(true);
    expect(key.topDocuments[0].source).toMatch(/^doc-\d$/);

    // The same numbers as scanCorpus itself.
    const tokenizer = gateway.app.gateway.detector({ window: false }).tokenizer;
    const results: FakeKeyCounts[] = [];
    const report = await scanCorpus({
      documents: documents.map((document) => ({
        tokens: tokenizer.encodeFast(document.text),
        prompt: tokenizer.encodeFast(document.prompt),
        source: document.source,
      })),
      keys: [gateway.services.watermarkKey],
      specialTokenIds: tokenizer.specialTokenIds,
      runFakeKeyJobs: async (jobs) => {
        const counts = jobs.map(runFakeKeyJob);
        results.push(...counts);
        return counts;
      },
    });
    expect(key.numScored).toBe(report.keys[0]!.numScored);
    expect(key.numGreen).toBe(report.keys[0]!.numGreen);
    expect(key.log10P).toBe(report.keys[0]!.log10P);
    expect(key.calibration.ksPValue).toBe(report.keys[0]!.calibration.ksPValue);
    const expected = fakeKeyPValues(
      results,
      gateway.services.watermarkKey.scheme.gammaEffective,
      'tracemark/v1/calibration',
    );
    expect(key.fakeKeyLog10P).toEqual(expected.log10P);
  });

  it('does not call human text radioactive; takes fewer fake keys and another seed', async () => {
    const response = await gateway.call('POST', '/v1/scan', {
      documents: HUMAN.map((text) => ({ text })),
      fakeKeys: 20,
      fakeKeySeed: 'case-2026-11',
    });
    expect(response.status).toBe(200);
    expect(response.json.verdict).not.toBe('radioactive');
    expect(response.json.fakeKeys).toEqual({ count: 20, seed: 'case-2026-11' });
    expect(response.json.keys[0].fakeKeyLog10P).toHaveLength(20);
    expect(response.json.keys[0].topDocuments[0].source).toMatch(/^document \d$/);
  });

  it('refuses corpora beyond its limits, and bad requests, with 4xx and the reason', async () => {
    const tooMany = await gateway.call('POST', '/v1/scan', {
      documents: Array.from({ length: SCAN_MAX_DOCUMENTS + 1 }, () => ({ text: 'a' })),
    });
    expect(tooMany.status).toBe(400);
    expect(tooMany.json.error.message).toContain(`${SCAN_MAX_DOCUMENTS}`);

    const big = 'word '.repeat(110_000);
    const tooLarge = await gateway.call('POST', '/v1/scan', {
      documents: Array.from({ length: 4 }, () => ({ text: big })),
    });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.json.error.code).toBe('TM_ERR_BODY_TOO_LARGE');
    expect(tooLarge.json.error.message).toContain('tracemark scan');

    for (const body of [
      {},
      { documents: [] },
      { documents: [{ prompt: 'x' }] },
      { documents: [{ text: 'x' }], fakeKeys: 5 },
    ]) {
      const response = await gateway.call('POST', '/v1/scan', body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.json.error.code).toBe('TM_ERR_INVALID_REQUEST');
    }
  });

  it('needs the verify scope', async () => {
    const refused = await gateway.call('POST', '/v1/scan', { documents: [{ text: 'x' }] }, generateOnlyKey);
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe('TM_ERR_SCOPE');
    const anonymous = await gateway.call('POST', '/v1/scan', { documents: [{ text: 'x' }] }, null);
    expect(anonymous.status).toBe(401);
  });
});

describe('GET /v1/whoami', () => {
  it('describes the presented key, never its secret or hash', async () => {
    const response = await gateway.call('GET', '/v1/whoami', undefined, verifyOnlyKey);
    expect(response.status).toBe(200);
    expect(response.json).toEqual({
      object: 'tracemark.api_key',
      id: expect.stringMatching(/^ak_[0-9a-f]{16}$/),
      name: 'analyst',
      account: 'acme',
      scopes: ['verify'],
      expiresAt: null,
      watermarkKeyId: gateway.services.watermarkKey.keyId,
    });
    expect(response.text).not.toContain(verifyOnlyKey.slice(-20));
  });

  it('refuses an invalid key (401) and a key without the verify scope (403)', async () => {
    const invalid = await gateway.call('GET', '/v1/whoami', undefined, 'tm_live_0123456789abcdef_nope');
    expect(invalid.status).toBe(401);
    expect(invalid.json.error.code).toBe('TM_ERR_INVALID_API_KEY');
    const scope = await gateway.call('GET', '/v1/whoami', undefined, generateOnlyKey);
    expect(scope.status).toBe(403);
    expect(scope.json.error.code).toBe('TM_ERR_SCOPE');
  });
});
