/**
 * Engine-native mode against engine-like servers that are not the gateway (test-support/engine-server.ts):
 * they sample the embedded n-gram model and embed a mark in their own sampler, tracemark's or vLLM's, and
 * stream it. The gateway forwards an allow-listed request, passes the chunks through, records, detects,
 * verifies and scans under the engine's key, refuses to start when the mark is missing, and raises the
 * live alert when the mark goes away.
 */
import { join } from 'node:path';
import { createWatermarkKey, type WatermarkKey } from '@tracemark/core';
import { createVllmWatermarkKey, writeKeyFile } from '@tracemark/detection';
import { loadDefaultModel, type NgramModel } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareGateway } from './bootstrap.ts';
import { WATERMARK_WEAKENING_FIELDS } from './completion/request.ts';
import { ConfigError, resolveConfig } from './config.ts';
import { type EngineServer, startEngineServer } from './test-support/engine-server.ts';
import {
  type Json,
  readEvents,
  removeTemporaryDirectories,
  startTestGateway,
  type TestGateway,
  temporaryDirectory,
} from './test-support/harness.ts';

afterAll(removeTemporaryDirectories);

const tokenizer = getTokenizer('cl100k_base');
const keyDirectory = temporaryDirectory('tracemark-engine-keys-');
const tracemarkKey: WatermarkKey = createWatermarkKey({ secret: new Uint8Array(32).fill(7) });
const tracemarkKeyFile = join(keyDirectory, 'tracemark-key.json');
const vllmEngineKey = 0x1234_5678_9abcn;
const vllmKey = createVllmWatermarkKey({ scheme: 'gumbel', engineKey: vllmEngineKey });
const vllmKeyFile = join(keyDirectory, 'vllm-key.json');

let model: NgramModel;
const engines: EngineServer[] = [];
const gateways: TestGateway[] = [];

async function engine(mark: Parameters<typeof startEngineServer>[0]['mark']): Promise<EngineServer> {
  const server = await startEngineServer({ model, tokenizer, mark });
  engines.push(server);
  return server;
}

async function gatewayFor(server: EngineServer, keyFile: string, config: Record<string, unknown> = {}) {
  const gateway = await startTestGateway({
    config: {
      upstreamUrl: server.url,
      upstreamWatermarkFile: keyFile,
      upstreamMarkCheckTokens: 2048,
      workerThreads: 1,
      ...config,
    },
  });
  gateways.push(gateway);
  return gateway;
}

beforeAll(async () => {
  model = await loadDefaultModel({ tokenizerId: 'cl100k_base' });
  await writeKeyFile(tracemarkKeyFile, tracemarkKey);
  await writeKeyFile(vllmKeyFile, vllmKey);
});
afterAll(async () => {
  for (const gateway of gateways) await gateway.close();
  for (const server of engines) await server.close();
});

/** The `data:` payloads of a stream that carry text (chat `delta.content` or legacy `text`). */
function textChunks(events: string[]): string[] {
  return events
    .filter((event) => event !== '[DONE]')
    .map((event) => JSON.parse(event) as Json)
    .filter((chunk) => chunk.choices?.length > 0)
    .map((chunk) => chunk.choices[0].delta?.content ?? chunk.choices[0].text ?? '')
    .filter((text: string) => text !== '');
}

describe('an engine that marks with a tracemark key', () => {
  let server: EngineServer;
  let gateway: TestGateway;
  beforeAll(async () => {
    server = await engine({ kind: 'tracemark', key: tracemarkKey });
    gateway = await gatewayFor(server, tracemarkKeyFile);
  });

  it('starts only after finding the mark in sampled completions', () => {
    const check = gateway.services.engineNative!.startupCheck;
    expect(check.verdict).toBe('watermarked');
    expect(check.keyId).toBe(tracemarkKey.keyId);
    expect(check.log10P).toBeLessThanOrEqual(-6);
    expect(gateway.services.watermarkKey.keyId).toBe(tracemarkKey.keyId);
  });

  it('streams the engine’s chunks through one for one, records them and detects the mark', async () => {
    const body = {
      model: 'engine-model',
      messages: [{ role: 'user', content: 'Tell me about the harbour at dawn.' }],
      max_tokens: 120,
      temperature: 0.9,
      top_p: 0.95,
      seed: 42,
      stream: true,
    };
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gateway.devKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(200);
    const events = await readEvents(response);
    expect(events.at(-1)).toBe('[DONE]');
    const forwarded = server.requests.at(-1)!;
    // The engine saw exactly the allow-listed fields.
    expect(Object.keys(forwarded).sort()).toEqual(
      ['max_tokens', 'messages', 'model', 'n', 'seed', 'stream', 'temperature', 'top_p'].sort(),
    );
    expect(forwarded).toMatchObject({ stream: true, n: 1, seed: 42, max_tokens: 120 });
    // The same request straight to the engine: same text, same chunks.
    const direct = await fetch(`${server.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(forwarded),
    });
    const directChunks = textChunks(await readEvents(direct));
    const gatewayChunks = textChunks(events);
    expect(gatewayChunks).toEqual(directChunks);
    const text = gatewayChunks.join('');
    const detected = await gateway.call('POST', '/v1/detect', { text });
    expect(detected.status, detected.text).toBe(200);
    expect(detected.json).toMatchObject({ verdict: 'watermarked', keyId: tracemarkKey.keyId });
    const verified = await gateway.call('POST', '/v1/verify', { text });
    expect(verified.status, verified.text).toBe(200);
    expect(verified.json.verdict).toBe('watermarked');
    expect(verified.json.issuance).toMatchObject({ match: 'exact' });
    expect(verified.json.detection.windowSearched).toBe(true);
    const record = await gateway.call('GET', `/v1/admin/issuance/${verified.json.issuance.recordId}`);
    expect(record.json).toMatchObject({
      backend: 'engine-native',
      model: 'engine-model',
      watermarkKeyId: tracemarkKey.keyId,
      numTokens: tokenizer.encode(text).length,
    });
  });

  it('serves legacy completions, not streamed, with the serving key in the response', async () => {
    const response = await gateway.call('POST', '/v1/completions', {
      model: 'engine-model',
      prompt: 'The committee said on Tuesday that',
      max_tokens: 40,
      n: 2,
    });
    expect(response.status, response.text).toBe(200);
    expect(response.json.choices).toHaveLength(2);
    expect(response.json.tracemark).toMatchObject({ watermark_key_id: tracemarkKey.keyId, key_epoch: null });
    expect(response.json.tracemark.issuance_ids).toHaveLength(2);
    expect(response.json.tracemark.watermark_strength).toBeUndefined();
    expect(response.json.usage.completion_tokens).toBe(
      response.json.choices.reduce(
        (sum: number, choice: { text: string }) => sum + tokenizer.encode(choice.text).length,
        0,
      ),
    );
    expect(server.requests.at(-1)).toMatchObject({
      prompt: 'The committee said on Tuesday that',
      stream: true,
    });
  });

  const refusedValues: Record<string, unknown> = {
    watermark: { enabled: false },
    top_k: 1,
    min_p: 0.5,
    use_beam_search: true,
    logit_bias: { '1234': 100 },
  };
  it.each(WATERMARK_WEAKENING_FIELDS.map((field) => [field]))(
    '"%s" is refused before anything reaches the engine',
    async (field) => {
      const before = server.requests.length;
      const response = await gateway.call('POST', '/v1/chat/completions', {
        model: 'engine-model',
        messages: [{ role: 'user', content: 'Hi' }],
        max_tokens: 4,
        [field]: refusedValues[field] ?? { x: 1 },
      });
      expect(response.status).toBe(400);
      expect(response.json.error).toMatchObject({ code: 'TM_ERR_WATERMARK_OPT_OUT', param: field });
      expect(server.requests.length).toBe(before);
    },
  );

  it('refuses SGLang’s per-request key, and forwards no field outside the allow-list', async () => {
    const keyed = await gateway.call('POST', '/v1/chat/completions', {
      model: 'engine-model',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 4,
      watermark: { key: '0xabc' },
    });
    expect(keyed.status).toBe(400);
    const response = await gateway.call('POST', '/v1/chat/completions', {
      model: 'engine-model',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 4,
      watermark: true,
      top_k: -1,
      an_engine_field_from_next_year: { enabled: false },
      user: 'u1',
    });
    expect(response.status, response.text).toBe(200);
    expect(Object.keys(server.requests.at(-1)!)).not.toContain('an_engine_field_from_next_year');
    expect(Object.keys(server.requests.at(-1)!)).not.toContain('watermark');
  });

  it('returns no logprobs (the engine’s are from before its mark)', async () => {
    const response = await gateway.call('POST', '/v1/chat/completions', {
      model: 'engine-model',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 4,
      logprobs: true,
    });
    expect(response.status).toBe(400);
    expect(response.json.error).toMatchObject({ code: 'TM_ERR_UNSUPPORTED_PARAMETER', param: 'logprobs' });
  });
});

describe('configuration', () => {
  it.each([
    [
      { upstreamWatermarkFile: 'k.json' },
      /--upstream-watermark \(TRACEMARK_UPSTREAM_WATERMARK\) needs --upstream/,
    ],
    [
      { upstreamWatermarkFile: 'k.json', upstreamUrl: 'http://127.0.0.1:1/v1', keyFile: 'x.json' },
      /--key \(TRACEMARK_KEY_FILE\) and --upstream-watermark .* cannot be combined/,
    ],
    [
      { upstreamWatermarkFile: 'k.json', upstreamUrl: 'http://127.0.0.1:1/v1', keyEpoch: '2026' },
      /does not apply with --upstream-watermark/,
    ],
    [{ upstreamMarkSampleRate: 1.5 }, /^TRACEMARK_UPSTREAM_MARK_SAMPLE_RATE must be a number from 0 to 1/],
  ])('%j is refused', (flags, message) => {
    expect(() => resolveConfig({ dataDir: keyDirectory, ...flags }, {})).toThrow(message);
  });

  it('reads the settings from the environment', () => {
    const config = resolveConfig(
      { dataDir: keyDirectory },
      {
        TRACEMARK_UPSTREAM_URL: 'http://127.0.0.1:1/v1',
        TRACEMARK_UPSTREAM_WATERMARK: vllmKeyFile,
        TRACEMARK_UPSTREAM_MARK_SAMPLE_RATE: '0.25',
        TRACEMARK_UPSTREAM_MARK_WINDOW_TOKENS: '4096',
      },
    );
    expect(config).toMatchObject({
      upstreamWatermarkFile: vllmKeyFile,
      upstreamMarkSampleRate: 0.25,
      upstreamMarkWindowTokens: 4096,
    });
  });

  it('a key file that cannot be read is a configuration error naming the file', async () => {
    const config = resolveConfig(
      {
        dataDir: temporaryDirectory(),
        upstreamUrl: 'http://127.0.0.1:1/v1',
        upstreamWatermarkFile: join(keyDirectory, 'missing.json'),
      },
      {},
    );
    await expect(prepareGateway(config)).rejects.toThrow(
      /--upstream-watermark: .*missing\.json: cannot read key file/,
    );
  });
});

describe('an engine without its mark', () => {
  it('is refused at start-up with a configuration error that names the key, never its secret', async () => {
    const server = await engine({ kind: 'none' });
    const config = resolveConfig(
      {
        dataDir: temporaryDirectory(),
        upstreamUrl: server.url,
        upstreamWatermarkFile: tracemarkKeyFile,
        upstreamMarkCheckTokens: 1024,
      },
      {},
    );
    const error = await prepareGateway(config).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/does not mark its completions with the key of --upstream-watermark/);
    expect(message).toContain(tracemarkKey.keyId);
    expect(message).not.toContain(Buffer.from(tracemarkKey.secret).toString('hex'));
  });

  it('an engine marking with another key is refused too', async () => {
    const other = createWatermarkKey({ secret: new Uint8Array(32).fill(9) });
    const server = await engine({ kind: 'tracemark', key: other });
    const config = resolveConfig(
      {
        dataDir: temporaryDirectory(),
        upstreamUrl: server.url,
        upstreamWatermarkFile: tracemarkKeyFile,
        upstreamMarkCheckTokens: 1024,
      },
      {},
    );
    await expect(prepareGateway(config)).rejects.toBeInstanceOf(ConfigError);
  });

  it('the live check raises the alert when the mark goes away, and clears it when it returns', async () => {
    const server = await engine({ kind: 'tracemark', key: tracemarkKey });
    const gateway = await gatewayFor(server, tracemarkKeyFile, {
      upstreamMarkSampleRate: 1,
      upstreamMarkWindowTokens: 1024,
    });
    const check = gateway.app.gateway.upstreamMarkCheck!;
    const complete = async () => {
      const response = await gateway.call('POST', '/v1/completions', {
        model: 'engine-model',
        prompt: 'Once upon a time',
        max_tokens: 300,
      });
      expect(response.status, response.text).toBe(200);
    };
    const metric = async (name: string) => {
      const text = (await gateway.call('GET', '/metrics', undefined, null)).text;
      return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    };
    for (let i = 0; i < 4; i++) await complete();
    await check.idle();
    expect(check.state()).toMatchObject({ verdict: 'watermarked', missing: false });
    expect(await metric('tracemark_upstream_mark_missing')).toBe(0);

    server.setMark({ kind: 'none' });
    for (let i = 0; i < 4; i++) await complete();
    await check.idle();
    const state = check.state();
    expect(state.missing).toBe(true);
    expect(state.numScored).toBeGreaterThanOrEqual(state.minScored);
    expect(await metric('tracemark_upstream_mark_missing')).toBe(1);
    expect(await metric('tracemark_upstream_mark_log10_p')).toBeGreaterThan(-6);
    expect(gateway.logs.text).toMatch(/upstream mark missing/);

    server.setMark({ kind: 'tracemark', key: tracemarkKey });
    for (let i = 0; i < 4; i++) await complete();
    await check.idle();
    expect(check.state().missing).toBe(false);
    expect(await metric('tracemark_upstream_mark_missing')).toBe(0);
    expect(gateway.logs.text).toMatch(/upstream mark back/);
  });
});

describe('an engine that marks with its own scheme (vLLM gumbel)', () => {
  let server: EngineServer;
  let gateway: TestGateway;
  beforeAll(async () => {
    server = await engine({ kind: 'vllm', key: { scheme: 'gumbel', engineKey: vllmEngineKey } });
    gateway = await gatewayFor(server, vllmKeyFile);
  });

  it('detects, verifies and scans under the engine’s key', async () => {
    expect(gateway.services.engineNative!.startupCheck.verdict).toBe('watermarked');
    const response = await gateway.call('POST', '/v1/chat/completions', {
      model: 'engine-model',
      messages: [{ role: 'user', content: 'Write about the weather.' }],
      max_tokens: 200,
    });
    expect(response.status, response.text).toBe(200);
    expect(response.json.tracemark.watermark_key_id).toBe(vllmKey.keyId);
    const text = response.json.choices[0].message.content;

    const detected = await gateway.call('POST', '/v1/detect', { text });
    expect(detected.status, detected.text).toBe(200);
    expect(detected.json).toMatchObject({
      verdict: 'watermarked',
      keyId: vllmKey.keyId,
      scheme: 'vllm:gumbel',
      numGreen: null,
    });
    expect(detected.json.score).toBeGreaterThan(0);
    // Windowed search under an engine's key: the same windows over its scored units, Bonferroni-corrected.
    const windowed = await gateway.call('POST', '/v1/detect', { text, window: true });
    expect(windowed.status, windowed.text).toBe(200);
    expect(windowed.json.verdict).toBe('watermarked');
    expect(windowed.json.window.windowsSearched).toBeGreaterThanOrEqual(1);
    expect(windowed.json.log10PAdjusted).toBe(windowed.json.window.log10PCorrected);

    const verified = await gateway.call('POST', '/v1/verify', { text });
    expect(verified.status, verified.text).toBe(200);
    expect(verified.json).toMatchObject({ verdict: 'watermarked', issuance: { match: 'exact' } });
    expect(verified.json.detection).toMatchObject({
      scheme: 'vllm:gumbel',
      windowSearched: false,
      numGreen: null,
    });
    expect(verified.json.summary).toMatch(/Windowed search is not supported for engines' keys/);
    const statement = JSON.parse(Buffer.from(verified.json.report.payload, 'base64').toString('utf8'));
    expect(statement.predicate.algorithm.name).toBe('vllm:gumbel');
    expect(statement.predicate.algorithm.keyIds).toEqual([vllmKey.keyId]);
    expect(JSON.stringify(statement)).not.toContain(vllmEngineKey.toString());

    const scanned = await gateway.call('POST', '/v1/scan', {
      documents: [
        { text },
        { text: 'A plain sentence written by a person, with nothing to find in it at all.' },
      ],
    });
    expect(scanned.status, scanned.text).toBe(200);
    expect(scanned.json.keys[0]).toMatchObject({
      keyId: vllmKey.keyId,
      family: 'vllm',
      verdict: 'radioactive',
    });
  });

  it('refuses temperature 0, which vLLM samples without its watermark', async () => {
    const before = server.requests.length;
    const response = await gateway.call('POST', '/v1/chat/completions', {
      model: 'engine-model',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 4,
      temperature: 0,
    });
    expect(response.status).toBe(400);
    expect(response.json.error).toMatchObject({ code: 'TM_ERR_WATERMARK_OPT_OUT', param: 'temperature' });
    expect(server.requests.length).toBe(before);
  });
});
