import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  createScheme,
  createSipHasher,
  createWatermarker,
  createWatermarkKey,
  derivePrfKeys,
  deriveSubkeySecret,
  holmAdjustLog10,
  keyIdOf,
  log10BinomialSf,
  Scorer,
  siphashHex,
  TOKEN_STATUS_NAMES,
  windowScan,
  zScore,
} from '../src/index.ts';

const load = (name: string) =>
  JSON.parse(readFileSync(new URL(`./vectors/${name}`, import.meta.url), 'utf8'));
const hex = (text: string) => Uint8Array.from(Buffer.from(text, 'hex'));
const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const seedHex = (out: Uint32Array) =>
  out[0]!.toString(16).padStart(8, '0') + out[1]!.toString(16).padStart(8, '0');

describe('SipHash-2-4 vectors', () => {
  const cases = load('siphash.json').cases;
  it.each(cases.map((c: { message: string }, i: number) => [i, c.message.length / 2, c]))(
    'case %i (%i bytes)',
    (_i, _len, c) => {
      expect(siphashHex(hex(c.key), hex(c.message))).toBe(c.output);
    },
  );
});

describe('key vectors', () => {
  for (const c of load('keys.json').cases) {
    it(`key ${c.keyId}`, () => {
      const secret = hex(c.secret);
      expect(keyIdOf(secret)).toBe(c.keyId);
      const prf = derivePrfKeys(secret);
      expect(toHex(prf.context)).toBe(c.kContext);
      expect(toHex(prf.green)).toBe(c.kGreen);
      expect(toHex(prf.rank)).toBe(c.kRank);
      for (const sub of c.subkeys) {
        const derived = deriveSubkeySecret(secret, sub.label);
        expect(toHex(derived)).toBe(sub.secret);
        expect(keyIdOf(derived)).toBe(sub.keyId);
      }
    });
  }
});

describe('green membership vectors', () => {
  const cases = load('green.json').cases;
  it(`reproduces all ${cases.length} cases`, () => {
    for (const c of cases) {
      const key = createWatermarkKey({ secret: hex(c.secret), scheme: { gamma: c.gamma } });
      expect(key.scheme.threshold).toBe(c.tau);
      const watermarker = createWatermarker(key);
      const seed = hex(c.seed);
      const view = new DataView(seed.buffer);
      const green = watermarker.isGreen(view.getUint32(0), view.getUint32(4), c.token);
      expect(green, JSON.stringify(c)).toBe(c.green);
      // u itself: the high 32 bits of SipHash(K_green, LE64(seed) || LE32(token)).
      const hasher = createSipHasher(derivePrfKeys(hex(c.secret)).green);
      expect(hasher.twoBlocks(view.getUint32(0), view.getUint32(4), 0, c.token, 12) >>> 0).toBe(c.u);
    }
  });
});

describe('seed vectors', () => {
  for (const [i, c] of load('seeds.json').cases.entries()) {
    it(`${c.scheme}(${c.contextWidth}) case ${i}, ${c.tokens.length} tokens`, () => {
      const key = createWatermarkKey({
        secret: hex(c.secret),
        scheme: { name: c.scheme, contextWidth: c.contextWidth },
      });
      const watermarker = createWatermarker(key);
      const out = new Uint32Array(2);
      const tokens = Uint32Array.from(c.tokens);
      c.seeds.forEach((expected: string | null, position: number) => {
        const ok = watermarker.seedAt(tokens, position, out);
        expect(ok ? seedHex(out) : null).toBe(expected);
      });
    });
  }
});

describe.each([
  ['WebAssembly batch path', true],
  ['scalar path', false],
])('detection vectors (spec §5.1, §6), %s', (_path, accelerate) => {
  for (const c of load('detect.json').cases) {
    it(c.name, () => {
      const key = createWatermarkKey({ secret: hex(c.secret), scheme: c.scheme });
      const watermarker = createWatermarker(key, { specialTokenIds: c.special, accelerate });
      if (accelerate && c.tokens.length > 0)
        expect(watermarker.batch(Uint32Array.from(c.tokens), 0, 1)).not.toBeNull();
      expect(watermarker.scheme.gammaEffective).toBe(c.gammaEff);
      const scorer = new Scorer(watermarker);
      if (c.prompt !== null) scorer.addPrompt(c.prompt);
      const result = scorer.push(c.tokens);
      expect(result.numTokens).toBe(c.numTokens);
      expect(result.numScored).toBe(c.numScored);
      expect(result.numGreen).toBe(c.numGreen);
      expect(Array.from(result.status, (s) => TOKEN_STATUS_NAMES[s])).toEqual(c.status);
      const log10P = log10BinomialSf(result.numGreen, result.numScored, watermarker.scheme.gammaEffective);
      if (c.log10P === 0) expect(log10P).toBe(0);
      else expect(Math.abs(log10P - c.log10P) / Math.abs(c.log10P)).toBeLessThan(1e-9);
      expect(zScore(result.numGreen, result.numScored, c.gammaEff)).toBeCloseTo(c.z, 9);
    });
  }
});

describe('windowed search vectors (spec §5.3)', () => {
  for (const c of load('windows.json').cases) {
    it(c.name, () => {
      const bits = Uint8Array.from(c.bits.split(''), Number);
      const gamma = createScheme({ gamma: c.gamma }).gammaEffective;
      const scan = windowScan(bits, gamma, c.minWindow);
      expect(scan.windowsSearched).toBe(c.windowsSearched);
      expect(scan.start).toBe(c.best.start);
      expect(scan.length).toBe(c.best.length);
      expect(scan.numGreen).toBe(c.best.numGreen);
      expect(scan.log10P).toBeCloseTo(c.best.log10P, 9);
      expect(scan.log10PCorrected).toBeCloseTo(c.log10PCorrected, 9);
    });
  }
});

describe('Holm vectors (spec §5.4)', () => {
  for (const [i, c] of load('holm.json').cases.entries()) {
    it(`case ${i}`, () => {
      const adjusted = holmAdjustLog10(c.log10P);
      adjusted.forEach((value, j) => {
        expect(value).toBeCloseTo(c.log10PAdjusted[j], 10);
      });
    });
  }
});
