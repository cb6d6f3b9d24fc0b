/**
 * POST /v1/responses (the OpenAI Responses API, which current SDKs default to) through the official
 * `openai` client, unchanged: text input and output, plain and streamed, watermarked and recorded
 * like the other endpoints.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './test-support/harness.ts';

let gateway: TestGateway;
let client: OpenAI;
beforeAll(async () => {
  gateway = await startTestGateway();
  client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: gateway.devKey, maxRetries: 0 });
});
afterAll(async () => {
  await gateway?.close();
});

describe('the Responses API', () => {
  it('answers a text input; the output is issued, recorded and carries the mark', async () => {
    const response = await client.responses.create({
      model: 'tracemark-ngram',
      instructions: 'Answer briefly.',
      input: 'Tell me about the history of the railway in the valley.',
      max_output_tokens: 120,
    });
    expect(response.object).toBe('response');
    expect(['completed', 'incomplete']).toContain(response.status);
    expect(response.output_text.length).toBeGreaterThan(0);
    expect(response.usage?.output_tokens).toBeGreaterThan(0);
    const tracemark = (response as unknown as { tracemark: { issuance_ids: string[] } }).tracemark;
    expect(tracemark.issuance_ids).toHaveLength(1);
    const log = await gateway.call('GET', '/v1/admin/issuance');
    expect(log.json.data.at(-1)).toMatchObject({
      endpoint: 'responses',
      numTokens: response.usage?.output_tokens,
    });
    const detected = await gateway.call('POST', '/v1/detect', { text: response.output_text });
    expect(detected.json.verdict).toBe('watermarked');
  });

  it('streams typed events whose deltas add up to the completed response', async () => {
    const stream = await client.responses.create({
      model: 'tracemark-ngram',
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'Describe the harbour town.' }] }],
      max_output_tokens: 40,
      stream: true,
    });
    const types: string[] = [];
    let text = '';
    let completed: OpenAI.Responses.Response | null = null;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
      if (event.type === 'response.completed' || event.type === 'response.incomplete')
        completed = event.response;
    }
    expect(types[0]).toBe('response.created');
    expect(types).toContain('response.output_text.done');
    expect(completed).not.toBeNull();
    expect(completed!.output_text ?? text).toBe(text);
    expect(text.length).toBeGreaterThan(0);
  });

  it('refuses what it cannot honour, naming the field', async () => {
    const stateful = await gateway.call('POST', '/v1/responses', {
      model: 'tracemark-ngram',
      input: 'Hello',
      previous_response_id: 'resp_123',
    });
    expect(stateful.status).toBe(400);
    expect(stateful.json.error.param).toBe('previous_response_id');
    const image = await gateway.call('POST', '/v1/responses', {
      model: 'tracemark-ngram',
      input: [{ role: 'user', content: [{ type: 'input_image', text: 'x' }] }],
    });
    expect(image.status).toBe(400);
    expect(image.json.error.message).toMatch(/only text parts/);
    const optOut = await gateway.call('POST', '/v1/responses', {
      model: 'tracemark-ngram',
      input: 'Hello',
      logit_bias: { '1': 5 },
    });
    expect(optOut.status).toBe(400);
    expect(optOut.json.error.code).toBe('TM_ERR_WATERMARK_OPT_OUT');
  });
});
