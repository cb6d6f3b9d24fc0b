/**
 * The pooled test of per-account sub-keys (`pooledKeyIds`): exact counts, one more member of the Holm
 * family, and the power it recovers when a suspect learned from many accounts a little each.
 */
import {
  createRandom,
  createWatermarker,
  createWatermarkKey,
  deriveAccountKey,
  holmAdjustLog10,
  log10BinomialSf,
  type WatermarkKey,
} from '@tracemark/core';
import { describe, expect, it } from 'vitest';
import { type ScanDocument, scanCorpus } from './scan.ts';

const VOCAB = 50_000;
const service = createWatermarkKey({ secret: new Uint8Array(32).fill(41) });
const accounts = Array.from({ length: 10 }, (_, i) => `acct-${i}`);
const subKeys = accounts.map((account) => deriveAccountKey(service, account));

/**
 * Random tokens; in document d, with probability `bias` a position takes a token green under the key of
 * account d mod 10 after its predecessor (a suspect that learned each account's outputs a little).
 */
function corpus(documents: number, length: number, bias: number, seed: number): ScanDocument[] {
  const random = createRandom(seed);
  const testers = subKeys.map((key) => createWatermarker(key));
  return Array.from({ length: documents }, (_, d) => {
    const tokens = new Uint32Array(length);
    for (let i = 0; i < length; i++) {
      let token = Math.floor(random.nextFloat() * VOCAB);
      if (i > 0 && random.nextFloat() < bias) {
        const green = testers[d % testers.length]!.candidateTester(tokens.subarray(0, i));
        while (green(token) !== 1) token = Math.floor(random.nextFloat() * VOCAB);
      }
      tokens[i] = token;
    }
    return { source: `doc-${d}`, tokens };
  });
}

const scan = (documents: ScanDocument[], keys: WatermarkKey[], pooled?: string[]) =>
  scanCorpus({
    documents,
    keys,
    specialTokenIds: [],
    fakeKeys: 40,
    ...(pooled === undefined ? {} : { pooledKeyIds: pooled }),
  });

describe('pooled sub-key scan', () => {
  it('sums the members’ exact counts, tests them with Bin(T, γ), and adds one test to the Holm family', async () => {
    const documents = corpus(40, 100, 0, 1);
    const keys = [service, ...subKeys];
    const report = await scan(
      documents,
      keys,
      subKeys.map((key) => key.keyId),
    );
    const pool = report.pool!;
    const members = report.keys.slice(1);
    expect(pool.keyIds).toEqual(subKeys.map((key) => key.keyId));
    expect(pool.numScored).toBe(members.reduce((sum, k) => sum + k.numScored, 0));
    expect(pool.numGreen).toBe(members.reduce((sum, k) => sum + k.numGreen, 0));
    expect(pool.log10P).toBe(log10BinomialSf(pool.numGreen, pool.numScored, pool.gamma));
    const adjusted = holmAdjustLog10([...report.keys.map((k) => k.log10P), pool.log10P]);
    expect(report.keys.map((k) => k.log10PAdjusted)).toEqual(adjusted.slice(0, keys.length));
    expect(pool.log10PAdjusted).toBe(adjusted[keys.length]);
    expect(pool.calibration.fakeKeys).toBe(40);
    // Unbiased text: no evidence, from any key or from the pool.
    expect(report.verdict).not.toBe('radioactive');
    expect(pool.verdict).not.toBe('radioactive');
    // Without the option the report has no pool and the keys' adjustment is over the keys alone.
    const plain = await scan(documents, keys);
    expect(plain.pool).toBeNull();
    expect(plain.keys.map((k) => k.log10PAdjusted)).toEqual(holmAdjustLog10(plain.keys.map((k) => k.log10P)));
  });

  it('finds a suspect that learned from ten accounts a little each, where no single key does', async () => {
    // Bias 0.1 per position, each account's key in a tenth of the documents: about 1,900 excess greens
    // pooled over 10 × 20,000 scored pairs (z ≈ 7), 190 for each key over its 20,000 (z ≈ 2.2).
    const documents = corpus(100, 200, 0.1, 2);
    const report = await scan(
      documents,
      [service, ...subKeys],
      subKeys.map((key) => key.keyId),
    );
    for (const key of report.keys) expect(key.verdict).not.toBe('radioactive');
    expect(report.pool!.verdict).toBe('radioactive');
    expect(report.pool!.calibration.rank).toBe(1);
    expect(report.verdict).toBe('radioactive');
    expect(report.matchedKeyId).toBeNull();
    expect(report.reason).toMatch(
      /^10 pooled keys: p = 10\^-\d+\.\d\d \(Holm-adjusted\) ≤ α = 0.000001, and the pool beats all 40 fake keys$/,
    );
  });

  it('refuses pools it cannot test', async () => {
    const documents = corpus(2, 20, 0, 3);
    const other = createWatermarkKey({ secret: new Uint8Array(32).fill(42), scheme: { gamma: 0.5 } });
    await expect(scan(documents, [service, subKeys[0]!], [subKeys[0]!.keyId])).rejects.toThrow(
      /two or more distinct/,
    );
    await expect(scan(documents, [service, subKeys[0]!], [subKeys[0]!.keyId, 'nope'])).rejects.toThrow(
      /one of the keys scanned/,
    );
    await expect(scan(documents, [service, other], [service.keyId, other.keyId])).rejects.toThrow(
      /share one γ/,
    );
  });
});
