/**
 * Token driving against an OpenAI-compatible server that is not ours: inference-server (npm, iimez; its
 * node-llama-cpp engine runs llama.cpp from node-llama-cpp's prebuilt binary) serving a tiny llama model
 * built here (test-support/gguf.ts) whose vocabulary is cl100k's own pieces. That server returns
 * `logprobs: null` on both shapes and refuses token-id prompts, so the gateway has no exact path: it must
 * refuse at start-up with the reason, and engine-native mode must refuse it too (its text carries no mark).
 * docs/decisions/2026-12-04-independent-upstream.md records what else was searched and why it cannot run.
 */

import { writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createWatermarkKey } from '@tracemark/core';
import { writeKeyFile } from '@tracemark/detection';
import { getTokenizer } from '@tracemark/tokenizers';
import { createExpressServer, InferenceServer } from 'inference-server';
import { getLlama, type Llama, LlamaLogLevel, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareGateway } from './bootstrap.ts';
import { ConfigError, resolveConfig } from './config.ts';
import { GatewayError } from './errors.ts';
import { startEventStreamTerminator } from './test-support/event-stream-terminator.ts';
import { type TinyLlama, tinyLlamaGguf } from './test-support/gguf.ts';
import { type Json, removeTemporaryDirectories, temporaryDirectory } from './test-support/harness.ts';
import { startTestUpstreamBackend } from './test-support/upstream-backend.ts';

afterAll(removeTemporaryDirectories);

const tokenizer = getTokenizer('cl100k_base');

/** llama.cpp's CPU build; the test is skipped (loudly) only where that prebuilt binary cannot load. */
async function loadLlama(): Promise<Llama | Error> {
  try {
    // build: 'never': a missing binary must not turn into a compile (or a download) at test time.
    return await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  } catch (error) {
    return error as Error;
  }
}
const llama = await loadLlama();
if (llama instanceof Error) {
  const why = `node-llama-cpp's prebuilt llama.cpp binary does not load on ${process.platform}-${process.arch}: ${llama.message}`;
  if (process.env.CI === 'true') throw new Error(`${why} (CI=true: not skipping)`);
  console.warn(`\n*** SKIPPING independent-upstream.test.ts: ${why} ***\n`);
}

describe.skipIf(llama instanceof Error)('inference-server (node-llama-cpp) as the upstream', () => {
  const directory = temporaryDirectory('tracemark-independent-upstream-');
  const modelPath = join(directory, 'tiny-llama.gguf');
  // 8192 ranks keep the file small (4.6 MB) and quick to build; the end-of-text weight makes answers end
  // after about 20 tokens, since this server keeps generating past max_tokens until the end of text.
  let model: TinyLlama;
  let inference: InferenceServer;
  let http: Server;
  let url: string;

  beforeAll(async () => {
    model = tinyLlamaGguf({ tokenizer, vocabularyLimit: 8192, weightScale: 0.2, endOfTextWeight: 0.5 });
    writeFileSync(modelPath, model.file);
    inference = new InferenceServer({
      log: 'error',
      cachePath: join(directory, 'cache'),
      models: {
        'tiny-llama': {
          task: 'text-completion',
          engine: 'node-llama-cpp',
          location: modelPath,
          contextSize: 1024,
          // One thread: llama.cpp's worker threads spin, and on a busy 2-core machine that costs seconds a token.
          device: { gpu: false, cpuThreads: 1 },
          minInstances: 1,
        },
      },
    });
    await inference.start();
    http = createExpressServer(inference);
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/openai/v1`;
  }, 60_000);
  afterAll(async () => {
    await new Promise((resolve) => http?.close(resolve));
    await inference?.stop();
  });

  const post = async (path: string, body: Record<string, unknown>) => {
    const response = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-llama', ...body }),
    });
    return { status: response.status, body: (await response.json()) as Json };
  };

  it('serves the model, whose tokens are all cl100k pieces, but returns no logprobs on either shape', async () => {
    // The vocabulary is not what stands in the way: llama.cpp reads every token of the model as the very
    // piece of the gateway's tokenizer it was made from, and tokenizes text into those pieces.
    const { gatewayIds } = model.vocabulary;
    const expected = tokenizer.decodeTokens(gatewayIds);
    const loaded = await (llama as Llama).loadModel({ modelPath });
    try {
      let whole = 0;
      for (let id = 0; id < gatewayIds.length; id++) {
        const piece = expected[id]!;
        if (piece.includes('\uFFFD')) continue;
        whole++;
        // llama.cpp's detokenizer drops the space before punctuation (clean_spaces; its piece keeps it).
        const shown = loaded.detokenize([id as Token]);
        expect(shown === piece || (/^ [?!.,']/.test(piece) && shown === piece.slice(1))).toBe(true);
      }
      expect(whole).toBeGreaterThan(7800);
      const text = 'The weather in the small harbour town was calm and grey.';
      const ids = loaded.tokenize(text);
      expect(ids.length).toBeGreaterThan(5);
      expect(loaded.detokenize(ids)).toBe(text);
      expect(tokenizer.decode(ids.map((id) => gatewayIds[id]!))).toBe(text);
    } finally {
      await loaded.dispose();
    }

    const legacy = await post('/completions', {
      prompt: 'The weather',
      max_tokens: 4,
      logprobs: 5,
      temperature: 1,
    });
    expect(legacy.status).toBe(200);
    expect(typeof legacy.body.choices[0].text).toBe('string');
    expect(legacy.body.choices[0].logprobs).toBeNull();

    const chat = await post('/chat/completions', {
      messages: [{ role: 'user', content: 'Hello' }],
      max_tokens: 4,
      temperature: 1,
      logprobs: true,
      top_logprobs: 5,
    });
    expect(chat.status).toBe(200);
    expect(chat.body.choices).toHaveLength(1);
    expect(chat.body.choices[0].logprobs).toBeNull();

    // The context as token ids (how the gateway keeps the upstream on exactly its tokens) is refused.
    const ids = await post('/completions', {
      prompt: Array.from(tokenizer.encode('The weather')),
      max_tokens: 2,
    });
    expect(ids.status).toBe(500);
  }, 30_000);

  it('the gateway refuses it at start-up, naming what is missing on each shape', async () => {
    const started = performance.now();
    const error = await startTestUpstreamBackend(url, { timeoutMs: 20_000 }).then(
      () => null,
      (e: unknown) => e,
    );
    const seconds = (performance.now() - started) / 1000;
    expect(error).toBeInstanceOf(GatewayError);
    const { code, message } = error as GatewayError;
    expect(code).toBe('TM_ERR_UPSTREAM_NO_LOGPROBS');
    expect(message).toContain('(model "tiny-llama") offers no exact way to drive generation');
    // Legacy completions: every top-k tried is refused, since the prompt is token ids.
    for (const k of [20, 10, 5, 3, 2]) {
      expect(message).toContain(`top_logprobs ${k}: the upstream model server answered HTTP 500`);
    }
    // Chat: answered, but without logprobs.
    expect(message).toMatch(/chat: top_logprobs 20: no top logprobs in the answer/);
    expect(message).toMatch(/refusing to serve it$/);
    console.info(`independent upstream: start-up probes refused it in ${seconds.toFixed(2)} s`);
  }, 60_000);

  it('`tracemark serve --upstream` would not start: the gateway preparation fails with that reason', async () => {
    const config = resolveConfig({ dataDir: temporaryDirectory(), upstreamUrl: url }, {});
    await expect(prepareGateway(config)).rejects.toThrow(/offers no exact way to drive generation/);
  }, 60_000);

  describe('engine-native mode (the engine would have to mark its own text)', () => {
    const key = createWatermarkKey({ secret: new Uint8Array(32).fill(5) });
    const keyFile = join(directory, 'engine-key.json');
    beforeAll(() => writeKeyFile(keyFile, key));

    const engineNative = (upstreamUrl: string) =>
      prepareGateway(
        resolveConfig(
          {
            dataDir: temporaryDirectory(),
            upstreamUrl,
            upstreamWatermarkFile: keyFile,
            upstreamMarkCheckTokens: 512,
          },
          {},
        ),
      ).then(
        () => null,
        (e: unknown) => e,
      );

    it('as served, its stream is refused: the last event, `data: [DONE]`, lacks its blank line', async () => {
      const error = await engineNative(url);
      expect(error).toBeInstanceOf(GatewayError);
      expect((error as GatewayError).code).toBe('TM_ERR_UPSTREAM_INVALID');
      expect((error as GatewayError).message).toMatch(
        /unusable stream \(the stream ended without \[DONE\]\)/,
      );
    }, 60_000);

    it('with that blank line added, the start-up self-check refuses it: its completions carry no mark', async () => {
      const proxy = await startEventStreamTerminator(url);
      try {
        const started = performance.now();
        const error = await engineNative(proxy.url);
        const seconds = (performance.now() - started) / 1000;
        expect(error).toBeInstanceOf(ConfigError);
        const message = (error as Error).message;
        expect(message).toMatch(/does not mark its completions with the key of --upstream-watermark/);
        expect(message).toContain(key.keyId);
        expect(message).not.toContain(Buffer.from(key.secret).toString('hex'));
        console.info(
          `independent upstream: engine-native self-check refused it in ${seconds.toFixed(2)} s: ${message}`,
        );
      } finally {
        await proxy.close();
      }
    }, 60_000);
  });
});
