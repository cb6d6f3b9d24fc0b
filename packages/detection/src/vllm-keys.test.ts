import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVllmDetector, createWatermarkKey, serializeKeyFile } from '@tracemark/core';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from './errors.ts';
import { parseAnyKeyFile, readKeyFile, writeKeyFile } from './key-files.ts';
import {
  createVllmWatermarkKey,
  serializeVllmKeyFile,
  VllmKeyError,
  type VllmKeyOptions,
  vllmDetectorParams,
} from './vllm-keys.ts';

interface VectorCase {
  name: string;
  scheme: 'gumbel' | 'dual_key_gumbel' | 'red_green' | 'sbw';
  prf: string;
  engineKey: string;
  contextWidth: number;
  alpha?: number;
  gamma?: number;
  sbwScheme?: 'selfhash' | 'lefthash';
  shipped: 'main' | 'early' | 'branch' | 'composed';
  tokens: number[];
  detections: { detectionKey: string; dedup: boolean; numScored: number; score: number }[];
}

const vectors = JSON.parse(
  readFileSync(new URL('../../core/test/vectors/foreign/vllm.json', import.meta.url), 'utf8'),
) as { cases: VectorCase[] };

/** A key no test output should ever show. */
const SECRET = 1234567890123456789n;
const SECRET_TEXT = SECRET.toString();

function optionsOf(c: VectorCase): VllmKeyOptions {
  return {
    scheme: c.scheme,
    engineKey: BigInt(c.engineKey),
    prf: c.prf as VllmKeyOptions['prf'] & string,
    contextWidth: c.contextWidth,
    ...(c.alpha === undefined ? {} : { alpha: c.alpha }),
    ...(c.gamma === undefined ? {} : { gamma: c.gamma }),
    ...(c.sbwScheme === undefined ? {} : { sbwScheme: c.sbwScheme }),
  };
}

describe('createVllmWatermarkKey: what vLLM accepts', () => {
  it("makes every default vLLM's explicit", () => {
    expect(createVllmWatermarkKey({ scheme: 'gumbel', engineKey: 1n })).toMatchObject({
      kind: 'vllm',
      prf: 'philox',
      contextWidth: 4,
      alpha: null,
      gamma: null,
      delta: null,
      sbwScheme: null,
      tokenizer: 'cl100k_base',
      vocabSize: null,
    });
    expect(createVllmWatermarkKey({ scheme: 'dual_key_gumbel', engineKey: 1n }).alpha).toBe(0.1);
    expect(createVllmWatermarkKey({ scheme: 'red_green', engineKey: 1n })).toMatchObject({
      gamma: 0.25,
      delta: 2,
    });
    expect(createVllmWatermarkKey({ scheme: 'sbw', engineKey: 1n })).toMatchObject({
      prf: 'sbw-philox',
      gamma: 0.5,
      delta: 2,
      sbwScheme: 'selfhash',
      contextWidth: 4,
      sbwLefthashSeeds: null,
    });
    expect(createVllmWatermarkKey({ scheme: 'sbw', engineKey: 1n, sbwScheme: 'lefthash' })).toMatchObject({
      contextWidth: 1,
      sbwLefthashSeeds: 'detector',
    });
  });

  it('the key id is vllm1_ and 24 hex digits, the same with defaults given or not, and one-way', () => {
    const implicit = createVllmWatermarkKey({ scheme: 'gumbel', engineKey: SECRET });
    const explicit = createVllmWatermarkKey({
      scheme: 'gumbel',
      engineKey: SECRET,
      prf: 'philox',
      contextWidth: 4,
    });
    expect(implicit.keyId).toMatch(/^vllm1_[0-9a-f]{24}$/);
    expect(explicit.keyId).toBe(implicit.keyId);
    expect(implicit.keyId).not.toContain(SECRET.toString(16));
  });

  it('the key id changes with everything that changes the marks, not with δ or the tokenizer', () => {
    const base: VllmKeyOptions = { scheme: 'red_green', engineKey: 7n };
    const id = (options: Partial<VllmKeyOptions>) => createVllmWatermarkKey({ ...base, ...options }).keyId;
    const ids = [
      id({}),
      id({ engineKey: 8n }),
      id({ contextWidth: 3 }),
      id({ gamma: 0.5 }),
      createVllmWatermarkKey({ scheme: 'gumbel', engineKey: 7n }).keyId,
      createVllmWatermarkKey({ scheme: 'gumbel', engineKey: 7n, prf: 'hmac-sha256-v1' }).keyId,
      createVllmWatermarkKey({ scheme: 'dual_key_gumbel', engineKey: 7n }).keyId,
      createVllmWatermarkKey({ scheme: 'dual_key_gumbel', engineKey: 7n, alpha: 0.2 }).keyId,
      createVllmWatermarkKey({ scheme: 'sbw', engineKey: 7n }).keyId,
      createVllmWatermarkKey({ scheme: 'sbw', engineKey: 7n, sbwScheme: 'lefthash' }).keyId,
      createVllmWatermarkKey({
        scheme: 'sbw',
        engineKey: 7n,
        sbwScheme: 'lefthash',
        sbwLefthashSeeds: 'generator',
      }).keyId,
    ];
    expect(new Set(ids).size).toBe(ids.length);
    expect(id({ delta: 0 })).toBe(id({}));
    expect(id({ tokenizer: 'meta-llama/Llama-3.1-8B', vocabSize: 128256 })).toBe(id({}));
  });

  const invalid: [string, VllmKeyOptions, string][] = [
    [
      'dual_key_gumbel with hmac',
      { scheme: 'dual_key_gumbel', engineKey: SECRET, prf: 'hmac-sha256-v1' },
      'prf',
    ],
    ['red_green with hmac', { scheme: 'red_green', engineKey: SECRET, prf: 'hmac-sha256-v1' }, 'prf'],
    ['sbw with hmac', { scheme: 'sbw', engineKey: SECRET, prf: 'hmac-sha256-v1' }, 'prf'],
    ['gumbel with sbw-philox', { scheme: 'gumbel', engineKey: SECRET, prf: 'sbw-philox' }, 'prf'],
    ['unknown prf', { scheme: 'gumbel', engineKey: SECRET, prf: 'md5' as 'philox' }, 'prf'],
    ['unknown scheme', { scheme: 'kgw' as 'gumbel', engineKey: SECRET }, 'scheme'],
    ['sbw key 2^63', { scheme: 'sbw', engineKey: SECRET << 63n }, 'engineKey'],
    ['philox key 2^64', { scheme: 'gumbel', engineKey: SECRET << 64n }, 'engineKey'],
    ['dual key 2^64', { scheme: 'dual_key_gumbel', engineKey: SECRET << 64n }, 'engineKey'],
    ['hmac key 2^256', { scheme: 'gumbel', prf: 'hmac-sha256-v1', engineKey: SECRET << 256n }, 'engineKey'],
    ['negative key', { scheme: 'gumbel', engineKey: -1n }, 'engineKey'],
    ['number key', { scheme: 'gumbel', engineKey: 1 as unknown as bigint }, 'engineKey'],
    ['context width 0', { scheme: 'gumbel', engineKey: SECRET, contextWidth: 0 }, 'contextWidth'],
    ['context width 4097', { scheme: 'gumbel', engineKey: SECRET, contextWidth: 4097 }, 'contextWidth'],
    ['context width 1.5', { scheme: 'gumbel', engineKey: SECRET, contextWidth: 1.5 }, 'contextWidth'],
    ['alpha 1.5', { scheme: 'dual_key_gumbel', engineKey: SECRET, alpha: 1.5 }, 'alpha'],
    ['alpha NaN', { scheme: 'dual_key_gumbel', engineKey: SECRET, alpha: Number.NaN }, 'alpha'],
    ['alpha on gumbel', { scheme: 'gumbel', engineKey: SECRET, alpha: 0.1 }, 'alpha'],
    ['red_green gamma 0', { scheme: 'red_green', engineKey: SECRET, gamma: 0 }, 'gamma'],
    ['sbw gamma 1', { scheme: 'sbw', engineKey: SECRET, gamma: 1 }, 'gamma'],
    ['gamma on gumbel', { scheme: 'gumbel', engineKey: SECRET, gamma: 0.25 }, 'gamma'],
    ['delta −1', { scheme: 'sbw', engineKey: SECRET, delta: -1 }, 'delta'],
    ['delta on dual', { scheme: 'dual_key_gumbel', engineKey: SECRET, delta: 2 }, 'delta'],
    ['sbw scheme on gumbel', { scheme: 'gumbel', engineKey: SECRET, sbwScheme: 'selfhash' }, 'sbwScheme'],
    [
      'unknown sbw scheme',
      { scheme: 'sbw', engineKey: SECRET, sbwScheme: 'minhash' as 'selfhash' },
      'sbwScheme',
    ],
    [
      'lefthash seeds on selfhash',
      { scheme: 'sbw', engineKey: SECRET, sbwLefthashSeeds: 'generator' },
      'sbwLefthashSeeds',
    ],
    ['empty tokenizer', { scheme: 'gumbel', engineKey: SECRET, tokenizer: '' }, 'tokenizer'],
    ['tokenizer with a newline', { scheme: 'gumbel', engineKey: SECRET, tokenizer: 'a\nb' }, 'tokenizer'],
    [
      'vocabulary size of a shipped tokenizer',
      { scheme: 'gumbel', engineKey: SECRET, vocabSize: 100 },
      'vocabSize',
    ],
    [
      'vocabulary size 0',
      { scheme: 'gumbel', engineKey: SECRET, tokenizer: 'x/y', vocabSize: 0 },
      'vocabSize',
    ],
  ];
  it.each(invalid)('refuses %s, naming the parameter, never the engine key', (_name, options, parameter) => {
    let thrown: unknown;
    try {
      createVllmWatermarkKey(options);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(VllmKeyError);
    expect((thrown as VllmKeyError).parameter).toBe(parameter);
    expect((thrown as Error).message).not.toContain(SECRET_TEXT);
  });

  it('accepts every configuration vLLM shipped in the vectors, and refuses the composed ones', () => {
    for (const c of vectors.cases) {
      if (c.shipped === 'composed') {
        expect(() => createVllmWatermarkKey(optionsOf(c)), c.name).toThrow(VllmKeyError);
        continue;
      }
      const key = createVllmWatermarkKey(optionsOf(c));
      const detection = c.detections.find((d) => d.detectionKey === c.engineKey && d.dedup)!;
      const result = createVllmDetector(vllmDetectorParams(key)).detect(c.tokens);
      expect(result.numScored, c.name).toBe(detection.numScored);
      expect(result.score, c.name).toBeCloseTo(detection.score, 9);
    }
  });
});

describe('vLLM key files', () => {
  const directory = mkdtempSync(join(tmpdir(), 'tracemark-vllm-keys-'));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));
  const keyOf = (options: Partial<VllmKeyOptions> = {}) =>
    createVllmWatermarkKey({ scheme: 'dual_key_gumbel', engineKey: SECRET, alpha: 0.3, ...options });

  it('round-trips every scheme through the file, the engine key as a decimal string', () => {
    const keys = [
      keyOf(),
      createVllmWatermarkKey({ scheme: 'gumbel', engineKey: (1n << 256n) - 1n, prf: 'hmac-sha256-v1' }),
      createVllmWatermarkKey({ scheme: 'red_green', engineKey: 3n, gamma: 0.3, delta: 0 }),
      createVllmWatermarkKey({
        scheme: 'sbw',
        engineKey: (1n << 63n) - 1n,
        sbwScheme: 'lefthash',
        sbwLefthashSeeds: 'generator',
        tokenizer: 'meta-llama/Llama-3.1-8B',
        vocabSize: 128256,
      }),
    ];
    for (const key of keys) {
      const text = serializeVllmKeyFile(key);
      expect(JSON.parse(text).engineKey).toBe(key.engineKey.toString());
      expect(parseAnyKeyFile(text)).toEqual(key);
    }
  });

  it('writes 0600, refuses to overwrite without the flag, and reads back only when asked for any key', async () => {
    const path = join(directory, 'dual.json');
    const key = keyOf();
    await writeKeyFile(path, key);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    await expect(writeKeyFile(path, keyOf({ alpha: 0.2 }))).rejects.toMatchObject({
      code: 'TM_ERR_KEY_EXISTS',
    });
    expect(await readKeyFile(path, { accept: 'any' })).toEqual(key);
    const refused = await readKeyFile(path).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(InputError);
    expect(refused).toMatchObject({ code: 'TM_ERR_UNSUPPORTED_KEY' });
    expect((refused as Error).message).toMatch(/this command does not support vLLM keys yet/);
    expect((refused as Error).message).toContain(key.keyId);
    await writeKeyFile(path, keyOf({ alpha: 0.2 }), true);
    expect((await readKeyFile(path, { accept: 'any' })).keyId).toBe(keyOf({ alpha: 0.2 }).keyId);
  });

  it('reads tracemark key files as before, with or without the option', async () => {
    const path = join(directory, 'tracemark.json');
    const key = createWatermarkKey({ secret: new Uint8Array(32).fill(9) });
    writeFileSync(path, serializeKeyFile(key), { mode: 0o600 });
    expect((await readKeyFile(path)).keyId).toBe(key.keyId);
    expect((await readKeyFile(path, { accept: 'any' })).keyId).toBe(key.keyId);
  });

  const edited = (change: (file: Record<string, unknown>) => void): string => {
    const file = JSON.parse(serializeVllmKeyFile(keyOf())) as Record<string, unknown>;
    change(file);
    return JSON.stringify(file);
  };
  const corrupt: [string, string, RegExp][] = [
    ['a key id that does not match', edited((f) => (f.keyId = 'vllm1_000000000000000000000000')), /"keyId"/],
    ['another engine key under the same id', edited((f) => (f.engineKey = '43')), /"keyId"/],
    ['another context width under the same id', edited((f) => (f.contextWidth = 3)), /"keyId"/],
    ['an engine key as a JSON number', edited((f) => (f.engineKey = 42)), /"engineKey"/],
    ['an engine key with a sign', edited((f) => (f.engineKey = '-1')), /"engineKey"/],
    ['an engine key out of range', edited((f) => (f.engineKey = (1n << 64n).toString())), /"engineKey"/],
    ["vLLM's field name", edited((f) => (f.context_width = 4)), /unknown field "context_width"/],
    ['a missing field', edited((f) => delete f.alpha), /"alpha" is missing/],
    ['a field that does not apply', edited((f) => (f.gamma = 0.25)), /"gamma" does not apply/],
    ['a composed PRF', edited((f) => (f.prf = 'hmac-sha256-v1')), /"prf"/],
    ['another version', edited((f) => (f.version = 2)), /"version"/],
  ];
  it.each(corrupt)('refuses %s, naming the field, never the engine key', (_name, text, message) => {
    let thrown: unknown;
    try {
      parseAnyKeyFile(text, 'k.json');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InputError);
    expect(thrown).toMatchObject({ code: 'TM_ERR_KEY_FILE' });
    expect((thrown as Error).message).toMatch(/^k\.json: key file: /);
    expect((thrown as Error).message).toMatch(message);
    expect((thrown as Error).message).not.toContain(SECRET_TEXT);
  });

  it('a key object cannot be printed as JSON by accident (the engine key is a bigint)', () => {
    expect(() => JSON.stringify(keyOf())).toThrow(TypeError);
  });
});
