/** A copy of an issued output that only adds whitespace at its end is matched as the issued text. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTemporaryDirectories, startTestGateway, type TestGateway } from './test-support/harness.ts';

let gateway: TestGateway;
/** The limitations the signed report states. */
const limitationsOf = (result: { report: { payload: string } }): string =>
  JSON.parse(Buffer.from(result.report.payload, 'base64').toString('utf8')).predicate.limitations.join(' ');
let text: string;

beforeAll(async () => {
  gateway = await startTestGateway();
  const response = await gateway.call('POST', '/v1/completions', {
    model: 'tracemark-ngram',
    prompt: 'The committee said on Tuesday that',
    max_tokens: 60,
    seed: 11,
  });
  text = response.json.choices[0].text.trimEnd();
  expect(text.length).toBeGreaterThan(20);
});
afterAll(async () => {
  await gateway?.close();
  removeTemporaryDirectories();
});

describe('POST /v1/verify and whitespace at the end of a copy', () => {
  it.each([
    ['a line break', '\n'],
    ['a Windows line break and spaces', ' \r\n  '],
  ])('%s added: an exact match, with the difference stated', async (_, suffix) => {
    const issued = (await gateway.call('POST', '/v1/verify', { text })).json;
    const copy = (await gateway.call('POST', '/v1/verify', { text: text + suffix })).json;
    expect(copy.issuance.match).toBe('exact');
    expect(copy.issuance.recordId).toBe(issued.issuance.recordId);
    expect(limitationsOf(copy)).toContain('whitespace added at its end');
    expect(limitationsOf(issued)).not.toContain('whitespace added at its end');
  });

  it('words added at the end are not an exact match', async () => {
    const copy = (await gateway.call('POST', '/v1/verify', { text: `${text} And then some more.` })).json;
    expect(copy.issuance?.match ?? null).not.toBe('exact');
  });
});
