/** The official `openai` npm client, unchanged, against the gateway. */
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

describe('the official openai client', () => {
  it('lists models', async () => {
    const models = await client.models.list();
    expect(models.data.map((model) => model.id)).toEqual(['tracemark-ngram']);
  });

  it('creates chat completions, plain and streamed (with usage)', async () => {
    const completion = await client.chat.completions.create({
      model: 'tracemark-ngram',
      messages: [{ role: 'user', content: 'Tell me about the sea.' }],
      max_tokens: 20,
      seed: 1,
    });
    expect(completion.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(completion.usage?.completion_tokens).toBe(20);
    const stream = await client.chat.completions.create({
      model: 'tracemark-ngram',
      messages: [{ role: 'user', content: 'Tell me about the sea.' }],
      max_tokens: 20,
      seed: 1,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish ??= chunk.choices[0]?.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(completion.choices[0]!.message.content);
    expect(finish).toBe('length');
    expect(usage?.completion_tokens).toBe(20);
  });

  it('creates legacy completions, plain and streamed', async () => {
    const completion = await client.completions.create({
      model: 'tracemark-ngram',
      prompt: 'The sea',
      max_tokens: 8,
    });
    expect(completion.choices[0]!.text.length).toBeGreaterThan(0);
    const stream = await client.completions.create({
      model: 'tracemark-ngram',
      prompt: 'The sea',
      max_tokens: 8,
      stream: true,
    });
    let chunks = 0;
    for await (const chunk of stream) if (chunk.choices.length > 0) chunks++;
    expect(chunks).toBeGreaterThan(1);
  });

  it('surfaces gateway errors as typed API errors with the stable code', async () => {
    const error = await client.chat.completions
      .create({
        model: 'tracemark-ngram',
        messages: [{ role: 'user', content: 'x' }],
        logit_bias: { '11': 50 },
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe('TM_ERR_WATERMARK_OPT_OUT');
    const unauthorized = await new OpenAI({
      baseURL: `${gateway.url}/v1`,
      apiKey: 'tm_live_bad',
      maxRetries: 0,
    }).models
      .list()
      .catch((e: unknown) => e);
    expect(unauthorized).toBeInstanceOf(OpenAI.AuthenticationError);
  });
});
