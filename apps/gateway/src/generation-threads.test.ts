/**
 * The embedded model on generation threads (backends/threaded-embedded.ts): a choice's tokens, strengths and
 * logprobs are those of the embedded backend on the event loop's thread for the same seed, key and settings,
 * one choice at a time or many at once over several threads; cancelling a choice (abort, a consumer that
 * stops) stops it and leaves the thread serving; and through HTTP, the gateway keeps answering /healthz
 * while its generation thread is busy with many long completions.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createRandom,
  createWatermarker,
  createWatermarkKey,
  type SchemeParams,
  type Watermarker,
  type WatermarkKey,
} from '@tracemark/core';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createEmbeddedBackend } from './backends/embedded.ts';
import { createThreadedEmbeddedBackend, KEYS_PER_THREAD } from './backends/threaded-embedded.ts';
import type { Backend, ChoiceRequest, GeneratedStep } from './backends/types.ts';
import { startTestGateway, type TestGateway } from './test-support/harness.ts';
import { keyFromMaterial, keyMaterialOf } from './work/tasks.ts';

const TOKENIZER = 'cl100k_base';
const MODEL = 'tracemark-ngram';
const tokenizer = getTokenizer(TOKENIZER);
const special = tokenizer.specialTokenIds;

function marker(fill: number, scheme?: SchemeParams): Watermarker {
  return createWatermarker(
    createWatermarkKey({
      secret: new Uint8Array(32).fill(fill),
      ...(scheme === undefined ? {} : { scheme }),
    }),
    { specialTokenIds: special },
  );
}

interface Settings {
  readonly prompt: string;
  readonly seed: number;
  readonly watermarker: Watermarker;
  readonly maxTokens?: number;
  readonly temperature?: number;
  readonly topP?: number;
  readonly topLogprobs?: number | null;
  readonly signal?: AbortSignal;
}

function request(settings: Settings): ChoiceRequest {
  return {
    model: MODEL,
    promptTokens: tokenizer.encode(settings.prompt),
    messages: null,
    maxTokens: settings.maxTokens ?? 24,
    temperature: settings.temperature ?? 0.8,
    topP: settings.topP ?? 0.95,
    random: createRandom(settings.seed),
    seed: settings.seed,
    watermarker: settings.watermarker,
    signal: settings.signal ?? new AbortController().signal,
    topLogprobs: settings.topLogprobs ?? null,
  };
}

async function steps(backend: Backend, settings: Settings): Promise<GeneratedStep[]> {
  const out: GeneratedStep[] = [];
  for await (const step of backend.generate(request(settings))) out.push(step);
  return out;
}

let inline: Backend;
let threaded: Backend;

beforeAll(async () => {
  inline = await createEmbeddedBackend({ tokenizerId: TOKENIZER, modelId: MODEL });
  threaded = await createThreadedEmbeddedBackend({ tokenizerId: TOKENIZER, modelId: MODEL, threads: 2 });
}, 60_000);
afterAll(async () => {
  await threaded?.close();
});

describe('generation threads give the event loop thread’s choices', () => {
  const keys: readonly (readonly [string, Watermarker])[] = [
    ['LeftHash h = 1', marker(3)],
    ['SelfHash h = 4', marker(4, { name: 'selfhash', contextWidth: 4 })],
    ['Gumbel', marker(5, { name: 'gumbel', contextWidth: 2 })],
    // a key weight other than the default: the thread must get it with the key
    ['dual Gumbel, α = 0.4', marker(6, { name: 'dual_gumbel', contextWidth: 2, alpha: 0.4 })],
  ];
  for (const [name, watermarker] of keys) {
    it(`${name}: tokens, strengths and logprobs, seed for seed`, async () => {
      for (const [index, prompt] of ['The committee said that', 'Once upon a time', ''].entries()) {
        for (const topLogprobs of [null, 3]) {
          const settings: Settings = { prompt, seed: 40 + index, watermarker, topLogprobs };
          const expected = await steps(inline, settings);
          expect(expected.length).toBeGreaterThan(0);
          expect(await steps(threaded, settings)).toEqual(expected);
        }
      }
    });
  }

  it('at temperature 0, top-p 0.5 and with a few tokens', async () => {
    const watermarker = marker(6);
    for (const [temperature, topP, maxTokens] of [
      [0, 1, 16],
      [1.3, 0.5, 16],
      [0.7, 1, 1],
    ] as const) {
      const settings: Settings = {
        prompt: 'It was late',
        seed: 9,
        watermarker,
        temperature,
        topP,
        maxTokens,
      };
      expect(await steps(threaded, settings)).toEqual(await steps(inline, settings));
    }
  });

  it('many choices at once, over both threads and several keys', async () => {
    const settings: Settings[] = Array.from({ length: 24 }, (_, index) => ({
      prompt: `Item ${index}: the report says`,
      seed: 1000 + index,
      watermarker: marker(10 + (index % 3)),
      maxTokens: 40,
    }));
    const expected: GeneratedStep[][] = [];
    for (const one of settings) expected.push(await steps(inline, one));
    const got = await Promise.all(settings.map((one) => steps(threaded, one)));
    expect(got).toEqual(expected);
  });
});

describe('keys', () => {
  it('a key travels with its scheme whole (dual Gumbel’s weight included)', () => {
    const key = createWatermarkKey({
      secret: new Uint8Array(32).fill(12),
      scheme: { name: 'dual_gumbel', contextWidth: 3, alpha: 0.35 },
    });
    const material = keyMaterialOf(key);
    expect((keyFromMaterial(material) as WatermarkKey).scheme).toEqual(key.scheme);
  });

  it(`past ${KEYS_PER_THREAD} keys a thread forgets the oldest, and gets it again when it is used again`, async () => {
    const keys = Array.from({ length: KEYS_PER_THREAD + 6 }, (_, index) => marker(100 + index));
    for (const watermarker of [...keys, keys[0]!, keys[3]!]) {
      const settings: Settings = { prompt: 'Key', seed: 8, watermarker, maxTokens: 3 };
      expect(await steps(threaded, settings)).toEqual(await steps(inline, settings));
    }
  });
});

describe('cancelling a choice', () => {
  it('an aborted signal ends the choice, and the threads go on serving', async () => {
    const controller = new AbortController();
    const watermarker = marker(7);
    const got: GeneratedStep[] = [];
    for await (const step of threaded.generate(
      request({ prompt: 'A long story', seed: 3, watermarker, maxTokens: 4000, signal: controller.signal }),
    )) {
      got.push(step);
      if (got.length === 5) controller.abort();
    }
    expect(got.length).toBe(5);
    const settings: Settings = { prompt: 'Next', seed: 4, watermarker };
    expect(await steps(threaded, settings)).toEqual(await steps(inline, settings));
  });

  it('a consumer that stops early (a stop sequence) ends the choice', async () => {
    const watermarker = marker(8);
    const settings: Settings = { prompt: 'The weather', seed: 5, watermarker, maxTokens: 4000 };
    const expected = (await steps(inline, { ...settings, maxTokens: 10 })).slice(0, 3);
    const got: GeneratedStep[] = [];
    for await (const step of threaded.generate(request(settings))) {
      got.push(step);
      if (got.length === 3) break;
    }
    expect(got).toEqual(expected);
    expect(await steps(threaded, { ...settings, maxTokens: 10 })).toEqual(
      await steps(inline, { ...settings, maxTokens: 10 }),
    );
  });

  it('a signal aborted before the choice starts yields nothing', async () => {
    const controller = new AbortController();
    controller.abort();
    expect(
      await steps(threaded, { prompt: 'x', seed: 1, watermarker: marker(9), signal: controller.signal }),
    ).toEqual([]);
  });
});

describe('construction', () => {
  it('refuses a thread count below 1 and a tokenizer the model lacks, by name', async () => {
    await expect(
      createThreadedEmbeddedBackend({ tokenizerId: TOKENIZER, modelId: MODEL, threads: 0 }),
    ).rejects.toThrow(/threads: expected a positive integer, got 0/);
    await expect(
      createThreadedEmbeddedBackend({ tokenizerId: 'no-such-tokenizer', modelId: MODEL, threads: 1 }),
    ).rejects.toThrow(/tokenizer "no-such-tokenizer"/);
  });

  it('a choice started just before close, and one after it, end with 503 TM_ERR_SHUTTING_DOWN', async () => {
    const backend = await createThreadedEmbeddedBackend({
      tokenizerId: TOKENIZER,
      modelId: MODEL,
      threads: 1,
    });
    const early = backend.generate(
      request({ prompt: 'x', seed: 1, watermarker: marker(2), maxTokens: 4000 }),
    );
    const first = expect(early.next()).rejects.toMatchObject({
      statusCode: 503,
      code: 'TM_ERR_SHUTTING_DOWN',
    });
    await backend.close();
    await first;
    await expect(steps(backend, { prompt: 'x', seed: 1, watermarker: marker(2) })).rejects.toMatchObject({
      statusCode: 503,
      code: 'TM_ERR_SHUTTING_DOWN',
    });
  }, 60_000);
});

describe('a thread that stops', () => {
  // test-support/faulty-generation-thread.mjs: the real thread, which exits 50 ms into a choice of this many
  // tokens, and fails to start while the file `failStart` exists.
  const CRASH_TOKENS = 4077;
  const failStart = join(mkdtempSync(join(tmpdir(), 'tracemark-generation-')), 'fail-start');
  const threadEntry = {
    url: new URL('./test-support/faulty-generation-thread.mjs', import.meta.url),
    execArgv: ['--conditions=source'],
  };
  const errors: string[] = [];
  let faulty: Backend;
  beforeAll(async () => {
    process.env.TRACEMARK_TEST_FAIL_START = failStart;
    faulty = await createThreadedEmbeddedBackend({
      tokenizerId: TOKENIZER,
      modelId: MODEL,
      threads: 2,
      threadEntry,
      onThreadError: (error) => errors.push(error.message),
    });
  }, 60_000);
  afterAll(async () => {
    delete process.env.TRACEMARK_TEST_FAIL_START;
    rmSync(failStart, { force: true });
    await faulty?.close();
  });

  const crash = (seed: number) =>
    steps(faulty, { prompt: 'Crash', seed, watermarker: marker(20), maxTokens: CRASH_TOKENS });
  const expectServed = async (count: number) => {
    for (let i = 0; i < count; i++) {
      const settings: Settings = { prompt: 'After', seed: 30 + i, watermarker: marker(21), maxTokens: 12 };
      expect(await steps(faulty, settings)).toEqual(await steps(inline, settings));
    }
  };

  it('fails its running choice with 500 TM_ERR_INTERNAL; a choice on the other thread goes on; another thread takes its place', async () => {
    const beside: Settings = { prompt: 'Beside', seed: 2, watermarker: marker(20), maxTokens: 300 };
    // Started together: the second goes to the other thread.
    const [crashed, served] = await Promise.allSettled([crash(1), steps(faulty, beside)]);
    expect(crashed).toMatchObject({
      status: 'rejected',
      reason: { statusCode: 500, code: 'TM_ERR_INTERNAL' },
    });
    expect(served).toEqual({ status: 'fulfilled', value: await steps(inline, beside) });
    expect(errors).toContain('a generation thread stopped; starting another');
    await expectServed(6);
  }, 60_000);

  it('while a replacement cannot start, choices go to the thread that runs', async () => {
    writeFileSync(failStart, '');
    errors.length = 0;
    await expect(crash(3)).rejects.toMatchObject({ statusCode: 500, code: 'TM_ERR_INTERNAL' });
    await expectServed(6);
    await vi.waitFor(() => expect(errors).toContain('this generation thread was told to fail at start'), {
      timeout: 30_000,
    });
    rmSync(failStart);
  }, 60_000);

  it('with none running, a choice is refused with 500 until a new start succeeds, tried at most once a second', async () => {
    // the thread that ran: stopped, and its replacement cannot start either
    writeFileSync(failStart, '');
    errors.length = 0;
    await expect(crash(4)).rejects.toMatchObject({ statusCode: 500 });
    await vi.waitFor(
      () => expect(errors.filter((message) => message.includes('fail at start')).length).toBe(1),
      {
        timeout: 30_000,
      },
    );
    const refused = await steps(faulty, {
      prompt: 'x',
      seed: 1,
      watermarker: marker(21),
      maxTokens: 2,
    }).catch((error: unknown) => error);
    expect(refused).toMatchObject({
      statusCode: 500,
      code: 'TM_ERR_INTERNAL',
      message: 'the generation thread could not start',
    });
    rmSync(failStart);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await expectServed(2);
  }, 60_000);
});

describe('the process', () => {
  it('stays alive while a choice runs on an idle-looking thread, and exits once closed', () => {
    // Nothing else keeps this script's event loop alive: only the running choice's thread may.
    const script = `
      import { createWatermarker, createWatermarkKey, createRandom } from '@tracemark/core';
      import { createThreadedEmbeddedBackend } from './src/backends/threaded-embedded.ts';
      const backend = await createThreadedEmbeddedBackend({ tokenizerId: 'cl100k_base', modelId: 'm', threads: 1 });
      const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(1) }));
      let count = 0;
      for await (const step of backend.generate({ model: 'm', promptTokens: new Uint32Array([791]), messages: null,
        maxTokens: 50, temperature: 0.8, topP: 1, random: createRandom(1), seed: 1, watermarker,
        signal: new AbortController().signal, topLogprobs: null })) count++;
      await backend.close();
      console.log('tokens', count);
    `;
    const result = spawnSync(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: fileURLToPath(new URL('..', import.meta.url)), encoding: 'utf8', timeout: 60_000 },
    );
    expect(result.stderr).toBe('');
    expect(result.stdout.trim()).toBe('tokens 50');
    expect(result.status).toBe(0);
  }, 60_000);
});

describe('through HTTP, with the default one generation thread', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startTestGateway({ config: { generationThreads: 1 } });
  }, 60_000);
  afterAll(async () => {
    await gateway?.close();
  });

  it('answers completions on its thread, streamed or not, with one seed’s text', async () => {
    expect(gateway.services.backend.describe()).toMatchObject({ backend: 'embedded', generationThreads: 1 });
    const body = { model: MODEL, prompt: 'The river', max_tokens: 20, seed: 17 };
    const plain = await gateway.call('POST', '/v1/completions', body);
    expect(plain.status).toBe(200);
    const text = (plain.json as { choices: { text: string }[] }).choices[0]!.text;
    expect(text.length).toBeGreaterThan(0);
    const streamed = await fetch(`${gateway.url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gateway.devKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, stream: true }),
    });
    let joined = '';
    for (const line of (await streamed.text()).split('\n')) {
      if (!line.startsWith('data: {')) continue;
      joined += (JSON.parse(line.slice(6)) as { choices: { text: string }[] }).choices[0]?.text ?? '';
    }
    expect(joined).toBe(text);
  });

  it('answers /healthz within 100 ms while the thread generates 30 long completions', async () => {
    const long = Array.from({ length: 30 }, (_, index) =>
      gateway.call('POST', '/v1/completions', { model: MODEL, prompt: `Story ${index}`, max_tokens: 400 }),
    );
    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) {
      const begin = performance.now();
      expect((await gateway.call('GET', '/healthz')).status).toBe(200);
      latencies.push(performance.now() - begin);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const answers = await Promise.all(long);
    expect(answers.map((answer) => answer.status)).toEqual(new Array(30).fill(200));
    latencies.sort((a, b) => a - b);
    expect(latencies[Math.floor(latencies.length / 2)]).toBeLessThan(
      Number(process.env.TRACEMARK_TEST_HEALTH_LIMIT_MS ?? 100),
    );
  }, 60_000);
});
