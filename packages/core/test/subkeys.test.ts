/**
 * Per-account and per-cohort keys (docs/spec/subkeys.md). The vectors were computed independently
 * with Python's standard library (hmac, hashlib; the script is in the spec's appendix A), not with
 * this package.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ACCOUNT_KEY_LABEL_PREFIX,
  accountCohort,
  accountKeyLabel,
  createWatermarker,
  createWatermarkKey,
  deriveAccountKey,
  deriveSubkey,
  detect,
  generateAll,
  keyIdOf,
  MAX_ACCOUNT_ID_BYTES,
} from '../src/index.ts';

const RANGE = Uint8Array.from({ length: 32 }, (_, i) => i);
const SERVICE = new Uint8Array(createHash('sha256').update('tracemark/test/service').digest());
const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

// prettier-ignore
const VECTORS: readonly {
  secret: Uint8Array;
  accountId: string;
  subkey: string;
  keyId: string;
  cohort16: readonly [number, string];
  cohort1000: readonly [number, string];
}[] = [
  {
    secret: RANGE,
    accountId: 'acct_0001',
    subkey: 'a7342ee379b18a3a5d2a3c16631ba3466b6369179400b667784e50b400dd902f',
    keyId: 'tmk1_74f9edf87e34bceed09550ba',
    cohort16: [3, 'tmk1_ecf024df19089d98bc4ec990'],
    cohort1000: [635, 'tmk1_e6423d06f241cc95e3ae3a93'],
  },
  {
    secret: RANGE,
    accountId: 'acme/team-7',
    subkey: '6980bf51f906f469f33b91beebea721ccb0e09bf6bee32eeb2bd13a3b2bc4451',
    keyId: 'tmk1_e11ee2c3d0933a7442533222',
    cohort16: [11, 'tmk1_f5936908e3ea55cd2b914e15'],
    cohort1000: [643, 'tmk1_98872c77c482fb8aca84cd34'],
  },
  {
    secret: RANGE,
    accountId: 'Zoë 東京 😀',
    subkey: '2fca9631238c66d702fbde3c5d285586eec7c1a08663ef0398486440fe250fff',
    keyId: 'tmk1_4128078ad8a2ee61b785500d',
    cohort16: [7, 'tmk1_2ca57c91e8d0641618e706e3'],
    cohort1000: [407, 'tmk1_aa51a56f572231dd3c2750a0'],
  },
  {
    secret: RANGE,
    accountId: 'x',
    subkey: '519830b04f35e39293eaf9d6af1ca0c86532945fd836dd373abef9d3ddb5ead7',
    keyId: 'tmk1_1a61c4f0cf8cf003872fe633',
    cohort16: [7, 'tmk1_2ca57c91e8d0641618e706e3'],
    cohort1000: [239, 'tmk1_7421bffa7922daf06750608c'],
  },
  {
    secret: SERVICE,
    accountId: 'acct_0001',
    subkey: 'caa8dc6d6437c2cd6e1a47ae3fe876c2d7e857bdc4c61f5822a3409a0db2d777',
    keyId: 'tmk1_b5e80a007a84c6a5345a146a',
    cohort16: [11, 'tmk1_00919bb059f1ebd61165497c'],
    cohort1000: [931, 'tmk1_1c4f7833cfa1d1b3031cc40a'],
  },
  {
    secret: SERVICE,
    accountId: 'acme/team-7',
    subkey: '8321507cc6d020c7b02f5a26a57a94e0d711ffad60c20979612664aa2207cf5a',
    keyId: 'tmk1_f4fe8cac115c98a2a09c2324',
    cohort16: [0, 'tmk1_29af4403a253f36077ef840a'],
    cohort1000: [584, 'tmk1_89e8cdc5f769bb6dcf9bf849'],
  },
  {
    secret: SERVICE,
    accountId: 'Zoë 東京 😀',
    subkey: '81c4b25c952bfaffda4d374e66e1beecf03d228ae10582f6f1ce1770886d6191',
    keyId: 'tmk1_c95e99eb213b615404ab9ba2',
    cohort16: [7, 'tmk1_765d14eea211d5654771c499'],
    cohort1000: [679, 'tmk1_3afcae993432f9108d50f780'],
  },
  {
    secret: SERVICE,
    accountId: 'x',
    subkey: '8403bb3b7ec6f0e0777fc59fedafe643077402d7d3864a5483ef7bad489829ae',
    keyId: 'tmk1_6d9fe534090c86905e192868',
    cohort16: [0, 'tmk1_29af4403a253f36077ef840a'],
    cohort1000: [688, 'tmk1_24ef3616b8ca80b1e53388ca'],
  },
];

describe('deriveAccountKey: vectors (Python hmac/hashlib HKDF)', () => {
  it.each(VECTORS.map((v, i) => [i, v.accountId, v]))('case %i (%s)', (_i, _id, v) => {
    const service = createWatermarkKey({ secret: v.secret, scheme: { name: 'selfhash', contextWidth: 4 } });
    const key = deriveAccountKey(service, v.accountId);
    expect(toHex(key.secret)).toBe(v.subkey);
    expect(key.keyId).toBe(v.keyId);
    expect(key.keyId).toBe(keyIdOf(key.secret));
    expect(accountKeyLabel(service, v.accountId)).toBe(ACCOUNT_KEY_LABEL_PREFIX + v.accountId);
    expect(accountCohort(service, v.accountId, 16)).toBe(v.cohort16[0]);
    expect(deriveAccountKey(service, v.accountId, { cohorts: 16 }).keyId).toBe(v.cohort16[1]);
    expect(accountKeyLabel(service, v.accountId, { cohorts: 1000 })).toBe(`cohort/1000/${v.cohort1000[0]}`);
    expect(deriveAccountKey(service, v.accountId, { cohorts: 1000 }).keyId).toBe(v.cohort1000[1]);
    // One cohort: every account shares it.
    expect(deriveAccountKey(service, v.accountId, { cohorts: 1 }).keyId).toBe(
      v.secret === RANGE ? 'tmk1_733ce89f685f0bc331e41de1' : 'tmk1_c7cff67af9bb82dd66245bcf',
    );
  });
});

describe('deriveAccountKey: properties', () => {
  const service = createWatermarkKey({
    secret: SERVICE,
    scheme: { name: 'lefthash', contextWidth: 2, gamma: 0.5, delta: 3 },
    tokenizer: 'o200k_base',
  });

  it('keeps the scheme, its parameters and the tokenizer; is deterministic; equals the §2.2 sub-key', () => {
    const key = deriveAccountKey(service, 'acct_42');
    expect(key.scheme).toEqual(service.scheme);
    expect(key.tokenizer).toBe('o200k_base');
    expect(key.keyId).not.toBe(service.keyId);
    expect(deriveAccountKey(service, 'acct_42').keyId).toBe(key.keyId);
    expect(deriveSubkey(service, 'account/acct_42').keyId).toBe(key.keyId);
    expect(Object.isFrozen(key)).toBe(true);
  });

  it('keeps a Gumbel scheme', () => {
    const gumbel = createWatermarkKey({ secret: SERVICE, scheme: { name: 'gumbel', contextWidth: 4 } });
    const key = deriveAccountKey(gumbel, 'acct_1');
    expect(key.scheme).toEqual(gumbel.scheme);
    expect(key.keyId).not.toBe(gumbel.keyId);
  });

  it('gives 1,000 accounts 1,000 distinct keys, and spreads them over cohorts', () => {
    const ids = new Set<string>();
    const perCohort = new Array(8).fill(0);
    for (let i = 0; i < 1000; i++) {
      ids.add(deriveAccountKey(service, `acct_${i}`).keyId);
      perCohort[accountCohort(service, `acct_${i}`, 8)]++;
    }
    expect(ids.size).toBe(1000);
    // Multinomial(1000, 1/8): each count within 125 ± 5σ (σ ≈ 10.5).
    for (const count of perCohort) expect(Math.abs(count - 125)).toBeLessThan(53);
  });

  it('depends on the service secret (another service, other keys and cohorts)', () => {
    const other = createWatermarkKey({ secret: RANGE, scheme: service.scheme });
    expect(deriveAccountKey(other, 'acct_42').keyId).not.toBe(deriveAccountKey(service, 'acct_42').keyId);
    let same = 0;
    for (let i = 0; i < 200; i++) {
      if (accountCohort(other, `a${i}`, 1000) === accountCohort(service, `a${i}`, 1000)) same++;
    }
    expect(same).toBeLessThan(5);
  });

  it('names the account: text generated under one account key is attributed to it among 50', async () => {
    const keys = Array.from({ length: 50 }, (_, i) => deriveAccountKey(service, `acct_${i}`));
    const watermarkers = keys.map((key) => createWatermarker(key));
    // A flat source over 64 tokens: plenty of entropy for the mark.
    const logits = new Float32Array(64);
    const source = { nextLogits: () => ({ ids: Uint32Array.from({ length: 64 }, (_, i) => i), logits }) };
    const tokens = await generateAll({
      source,
      prompt: [1, 2, 3],
      maxTokens: 200,
      watermarker: watermarkers[17]!,
      temperature: 1,
      seed: 5,
    });
    const detection = detect(tokens, [createWatermarker(service), ...watermarkers]);
    expect(detection.verdict).toBe('watermarked');
    expect(detection.matchedKeyId).toBe(keys[17]!.keyId);
    expect(detection.keysTested).toBe(51);
  });

  it('refuses bad input with errors that name the parameter and never the secret', () => {
    const bad = (run: () => unknown, pattern: RegExp) => {
      let message = '';
      try {
        run();
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(pattern);
      expect(message).not.toContain(toHex(SERVICE));
    };
    bad(() => deriveAccountKey(service, ''), /^accountId: /);
    bad(() => deriveAccountKey(service, 42 as unknown as string), /^accountId: /);
    bad(() => deriveAccountKey(service, 'a\ud800b'), /^accountId: .*surrogate/);
    bad(() => deriveAccountKey(service, 'é'.repeat(MAX_ACCOUNT_ID_BYTES / 2 + 1)), /^accountId: .*bytes/);
    expect(deriveAccountKey(service, 'é'.repeat(MAX_ACCOUNT_ID_BYTES / 2)).keyId).toMatch(/^tmk1_/);
    bad(() => deriveAccountKey(service, 'a', { cohorts: 0 }), /^cohorts: /);
    bad(() => deriveAccountKey(service, 'a', { cohorts: 2.5 }), /^cohorts: /);
    bad(() => accountCohort(service, 'a', 2 ** 32), /^cohorts: /);
    bad(() => deriveAccountKey(null as unknown as typeof service, 'a'), /^serviceKey: /);
  });
});
