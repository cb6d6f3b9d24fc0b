/**
 * Provenance end to end over HTTP, on SQLite and on PostgreSQL: POST /v1/verify (exact and near-duplicate
 * issuance matches, detection equal to /v1/detect, a signed report that verifies offline with the published
 * key), the log endpoints, disclosure rules, key epochs, and refusals.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRandom, deriveSubkey } from '@tracemark/core';
import { createTextDetector, readKeyFile } from '@tracemark/detection';
import {
  type DsseEnvelope,
  type EvidenceStatement,
  fromBase64,
  verifyCheckpoint,
  verifyConsistency,
  verifyEvidence,
  verifyInclusion,
} from '@tracemark/provenance';
import { getTokenizer, normalizeText } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareGateway } from './bootstrap.ts';
import { resolveConfig } from './config.ts';
import {
  type Json,
  removeTemporaryDirectories,
  startTestGateway,
  TEST_DATABASE_URL,
  type TestGateway,
  temporaryDirectory,
  writeFixedKeyFile,
} from './test-support/harness.ts';
import { freshPostgresSchema, postgresReachable } from './test-support/services.ts';

afterAll(removeTemporaryDirectories);

const havePostgres = await postgresReachable(TEST_DATABASE_URL);
if (!havePostgres && process.env.CI) {
  throw new Error('PostgreSQL (TRACEMARK_TEST_DATABASE_URL) is not reachable; CI=true requires it');
}

const tokenizer = getTokenizer('cl100k_base');
const HUMAN_TEXT =
  'The committee met on a grey Tuesday morning to review the harbour budget. Members disagreed about the cost of dredging, and the chair asked for a second estimate before any vote. Several residents spoke about noise from the night shift at the container terminal, and one fisherman described how the new breakwater had changed the currents near the old pier.';

/** Replaces each token, with probability `rate`, by a uniformly random ordinary token; returns the text. */
export function editTokens(text: string, rate: number, seed: number): string {
  const random = createRandom(seed);
  const ids = Array.from(tokenizer.encodeFast(text), (token) =>
    random.nextFloat() < rate ? Math.floor(random.nextFloat() * tokenizer.ordinaryTokenCount) : token,
  );
  return tokenizer.decode(ids);
}

function statementOf(envelope: DsseEnvelope): EvidenceStatement {
  return JSON.parse(new TextDecoder().decode(fromBase64(envelope.payload))) as EvidenceStatement;
}

async function complete(
  gateway: TestGateway,
  prompt: string,
  maxTokens: number,
  seed: number,
): Promise<Json> {
  const response = await gateway.call('POST', '/v1/completions', {
    model: 'tracemark-ngram',
    prompt,
    max_tokens: maxTokens,
    seed,
  });
  expect(response.status).toBe(200);
  return response.json;
}

function provenanceSuite(
  name: string,
  databaseUrl: () => Promise<{ url: string | null; drop: () => Promise<void> }>,
) {
  describe(name, () => {
    let gateway: TestGateway;
    let drop: () => Promise<void>;
    let keys: Json;
    let issued: { text: string; id: string };
    beforeAll(async () => {
      const database = await databaseUrl();
      drop = database.drop;
      // A fixed key: with a fresh one each run, the human text was called watermarked about once in
      // fifteen thousand runs, and the 20%-edited copy went undetected about once in a thousand.
      const keyFile = join(temporaryDirectory(), 'watermark-key.json');
      writeFixedKeyFile(keyFile, 29);
      gateway = await startTestGateway({
        config: database.url === null ? { keyFile } : { keyFile, databaseUrl: database.url },
      });
      keys = (await gateway.call('GET', '/.well-known/tracemark/keys.json', undefined, null)).json;
      const body = await complete(gateway, 'The harbour authority said on Monday that', 200, 41);
      issued = { text: body.choices[0].text, id: body.tracemark.issuance_ids[0] };
      // Some other output, so the log holds more than the one record.
      await complete(gateway, 'In the morning the market', 60, 42);
    });
    afterAll(async () => {
      await gateway?.close();
      await drop?.();
    });

    const verifyOffline = (envelope: DsseEnvelope, text?: string) =>
      verifyEvidence({
        envelope,
        ...(text === undefined ? {} : { text }),
        publicKeys: keys.keys[0].verifierKey,
        checkpointVerifierKey: keys.keys[0].verifierKey,
        checkpointOrigin: keys.logOrigin,
        normalize: normalizeText,
      });

    it('publishes its keys: the log signer (checkpoints and reports) and the watermark key ids', () => {
      expect(keys.keys).toHaveLength(1);
      expect(keys.keys[0].verifierKey.startsWith(`${keys.keys[0].keyId}+`)).toBe(true);
      expect(keys.keys[0].uses).toEqual(['checkpoints', 'evidence-reports']);
      expect(keys.logOrigin).toBe(keys.keys[0].keyId.split('+')[0]);
      expect(keys.watermarkKeyIds).toEqual([gateway.services.watermarkKey.keyId]);
      expect(keys.predicateType).toBe('https://tracemark.dev/evidence/v1');
    });

    it('verifies an issued completion: exact match, the numbers of /v1/detect, a report that verifies offline', async () => {
      const response = await gateway.call('POST', '/v1/verify', { text: issued.text });
      expect(response.status).toBe(200);
      const result = response.json;
      expect(result.verdict).toBe('watermarked');
      expect(result.issuance).toMatchObject({
        match: 'exact',
        recordId: issued.id,
        similarity: 1,
        disclosed: true,
      });
      expect(result.summary).toMatch(/^This exact text was issued by this service/);
      const detect = (await gateway.call('POST', '/v1/detect', { text: issued.text })).json;
      for (const field of [
        'keyId',
        'numTokens',
        'numScored',
        'numGreen',
        'z',
        'log10P',
        'log10PAdjusted',
        'keysTested',
        'fpr',
      ]) {
        expect(result.detection[field], field).toBe(detect[field]);
      }
      expect(result.keyId).toBe(keys.keys[0].keyId);
      const verification = verifyOffline(result.report, issued.text);
      expect(verification.checks.filter((check) => !check.ok)).toEqual([]);
      expect(verification.checks.filter((check) => check.skipped).map((check) => check.name)).toEqual([]);
      const predicate = verification.statement!.predicate;
      expect(predicate.detection).toMatchObject({
        numScored: detect.numScored,
        numGreen: detect.numGreen,
        log10PCorrected: detect.log10PAdjusted,
        correction: 'none',
        numTests: 1,
        verdict: 'detected',
      });
      expect(predicate.text.content).toBe(issued.text);
      expect(predicate.tokens!.statuses).toHaveLength(detect.numTokens);
      expect([...predicate.tokens!.statuses].filter((s) => s === 'G')).toHaveLength(detect.numGreen);
      expect(predicate.tokens!.ends.at(-1)).toBe([...normalizeText(issued.text)].length);
      expect(predicate.segments[0]).toMatchObject({ kind: 'window' });
      expect(predicate.segments.filter((s) => s.kind === 'fixed').at(-1)!.endToken).toBe(detect.numTokens);
      expect(predicate.calibration.reference).toContain('research/results/fpr.md');
      expect(predicate.issuance!.record!.id).toBe(issued.id);
      const payload = new TextDecoder().decode(fromBase64(result.report.payload));
      expect(payload).not.toContain(Buffer.from(gateway.services.watermarkKey.secret).toString('hex'));
      expect(payload).not.toContain('PRIVATE+KEY');
    });

    it('links a completion edited by 20% random token substitutions as a near-duplicate, and detects it', async () => {
      const edited = editTokens(issued.text, 0.2, 7);
      expect(edited).not.toBe(issued.text);
      const result = (await gateway.call('POST', '/v1/verify', { text: edited })).json;
      expect(result.issuance).toMatchObject({ match: 'near-duplicate', recordId: issued.id });
      expect(result.issuance.similarity).toBeGreaterThanOrEqual(0.2);
      expect(result.verdict).toBe('watermarked');
      const verification = verifyOffline(result.report, edited);
      expect(verification.ok).toBe(true);
      expect(verification.checks.find((check) => check.name === 'issuance-text')).toMatchObject({
        skipped: true,
        reason: expect.stringMatching(/near-duplicate/),
      });
      expect(verification.statement!.predicate.issuance!.similarityMeasure).toMatch(
        /Jaccard similarity of 2-token shingles/,
      );
    });

    it('matches text with an invisible character added through the normalized hash', async () => {
      const altered = `\u200b${issued.text}`;
      const result = (await gateway.call('POST', '/v1/verify', { text: altered })).json;
      expect(result.issuance).toMatchObject({ match: 'exact', recordId: issued.id });
      expect(verifyOffline(result.report, altered).ok).toBe(true);
    });

    it('verifies token ids: the report carries their decoding and the ids', async () => {
      const ids = Array.from(tokenizer.encodeFast(issued.text));
      const result = (await gateway.call('POST', '/v1/verify', { tokens: ids })).json;
      expect(result.verdict).toBe('watermarked');
      const statement = statementOf(result.report);
      expect(statement.predicate.text).toMatchObject({
        input: 'tokens',
        tokenIds: ids,
        content: issued.text,
      });
      expect(verifyOffline(result.report).ok).toBe(true);
    });

    it('says plainly when nothing matches and no watermark is present', async () => {
      const result = (await gateway.call('POST', '/v1/verify', { text: HUMAN_TEXT })).json;
      expect(result.issuance).toBeNull();
      expect(result.verdict).not.toBe('watermarked');
      expect(result.summary).toMatch(/^No issued output of this service matches this text\./);
      const verification = verifyOffline(result.report, HUMAN_TEXT);
      expect(verification.ok).toBe(true);
      expect(verification.statement!.predicate.limitations.join(' ')).toMatch(
        /does not prove that a person wrote/,
      );
    });

    it('discloses the issuance record only to its own account or an admin', async () => {
      const created = await gateway.call('POST', '/v1/admin/keys', {
        scopes: ['verify'],
        account: 'someone-else',
      });
      expect(created.status).toBe(201);
      const result = (await gateway.call('POST', '/v1/verify', { text: issued.text }, created.json.key)).json;
      expect(result.issuance).toMatchObject({ match: 'exact', disclosed: false });
      const statement = statementOf(result.report);
      expect(statement.predicate.issuance!.record).toBeUndefined();
      const verification = verifyOffline(result.report, issued.text);
      expect(verification.ok).toBe(true);
      expect(verification.checks.find((check) => check.name === 'issuance-record')?.skipped).toBe(true);
    });

    it('serves the signed checkpoint, inclusion proofs by record id and index, and consistency proofs', async () => {
      const first = (await gateway.call('GET', '/v1/log/checkpoint', undefined, null)).json;
      const verified = verifyCheckpoint(first.checkpoint, keys.keys[0].verifierKey, {
        origin: keys.logOrigin,
      });
      expect(verified.size).toBe(first.treeSize);
      expect(Buffer.from(verified.rootHash).toString('hex')).toBe(first.rootHash);
      const byId = (await gateway.call('GET', `/v1/log/inclusion?recordId=${issued.id}`)).json;
      const byIndex = (
        await gateway.call('GET', `/v1/log/inclusion?leafIndex=${byId.leafIndex}&treeSize=${first.treeSize}`)
      ).json;
      expect(byIndex).toEqual(byId);
      expect(
        verifyInclusion(
          Buffer.from(byId.leafHash, 'hex'),
          byId.leafIndex,
          byId.treeSize,
          byId.inclusionProof.map((h: string) => Buffer.from(h, 'hex')),
          verified.rootHash,
        ),
      ).toBe(true);
      await complete(gateway, 'Later that week', 20, 43);
      const later = (await gateway.call('GET', `/v1/log/consistency?from=${first.treeSize}`, undefined, null))
        .json;
      expect(later.treeSize).toBe(first.treeSize + 1);
      expect(later.fromRootHash).toBe(first.rootHash);
      const laterRoot = verifyCheckpoint(later.checkpoint, keys.keys[0].verifierKey).rootHash;
      expect(
        verifyConsistency(
          first.treeSize,
          later.treeSize,
          verified.rootHash,
          laterRoot,
          later.consistencyProof.map((h: string) => Buffer.from(h, 'hex')),
        ),
      ).toBe(true);
    });

    it('refuses bad requests with stable codes', async () => {
      const cases: [string, string, unknown, number, string, (string | null)?][] = [
        ['POST', '/v1/verify', { text: 'a', tokens: [1] }, 400, 'TM_ERR_INVALID_REQUEST'],
        ['POST', '/v1/verify', {}, 400, 'TM_ERR_INVALID_REQUEST'],
        ['POST', '/v1/verify', { tokens: [4_000_000] }, 400, 'TM_ERR_INVALID_TOKENS'],
        ['POST', '/v1/verify', { text: 5 }, 400, 'TM_ERR_INVALID_REQUEST'],
        ['POST', '/v1/verify', { text: 'a' }, 401, 'TM_ERR_MISSING_API_KEY', null],
        ['GET', '/v1/log/inclusion?recordId=iss_missing', undefined, 404, 'TM_ERR_NOT_FOUND'],
        ['GET', '/v1/log/inclusion?leafIndex=1&recordId=x', undefined, 400, 'TM_ERR_INVALID_REQUEST'],
        ['GET', '/v1/log/inclusion?leafIndex=0&treeSize=999999', undefined, 400, 'TM_ERR_INVALID_REQUEST'],
        ['GET', '/v1/log/inclusion?leafIndex=-1', undefined, 400, 'TM_ERR_INVALID_REQUEST'],
        ['GET', '/v1/log/consistency?from=3&to=1', undefined, 400, 'TM_ERR_INVALID_REQUEST'],
        ['GET', '/v1/log/consistency', undefined, 400, 'TM_ERR_INVALID_REQUEST'],
        ['GET', '/v1/log/consistency?from=0&to=999999', undefined, 400, 'TM_ERR_INVALID_REQUEST'],
      ];
      for (const [method, path, body, status, code, key] of cases) {
        const response = await gateway.call(method, path, body, key === undefined ? gateway.devKey : key);
        expect(
          [response.status, response.json?.error?.code],
          `${method} ${path} ${JSON.stringify(body)}`,
        ).toEqual([status, code]);
      }
      const generateOnly = await gateway.call('POST', '/v1/admin/keys', { scopes: ['generate'] });
      const refused = await gateway.call('POST', '/v1/verify', { text: 'a' }, generateOnly.json.key);
      expect([refused.status, refused.json.error.code]).toEqual([403, 'TM_ERR_SCOPE']);
    });
  });
}

provenanceSuite('provenance on SQLite', async () => ({ url: null, drop: async () => undefined }));
if (havePostgres) {
  provenanceSuite('provenance on PostgreSQL', async () => freshPostgresSchema(TEST_DATABASE_URL));
} else {
  describe.skip('provenance on PostgreSQL (server unreachable and CI not set)', () => {
    it('runs the same suite against PostgreSQL', () => undefined);
  });
}

describe('key epochs and the log signing key', () => {
  const open: TestGateway[] = [];
  afterAll(async () => {
    for (const gateway of open) await gateway.close();
  });

  it('tests every epoch the gateway has marked output with, Holm-corrected, as detection does with the same keys', async () => {
    const dataDir = temporaryDirectory();
    const first = await startTestGateway({ config: { dataDir, keyEpoch: '2026-10' } });
    open.push(first);
    const text = (await complete(first, 'The council said on Friday that', 150, 9)).choices[0].text;
    await first.close();
    open.pop();
    const second = await startTestGateway({ config: { dataDir, keyEpoch: '2026-11' } });
    open.push(second);
    const result = (await second.call('POST', '/v1/verify', { text }, first.devKey)).json;
    const root = await readKeyFile(join(dataDir, 'watermark-key.json'));
    const epochKeys = ['2026-10', '2026-11'].map((label) => deriveSubkey(root, `epoch/${label}`));
    const expected = createTextDetector({ keys: epochKeys }).detectText(text);
    expect(result.detection).toMatchObject({
      keyId: epochKeys[0]!.keyId,
      numScored: expected.numScored,
      numGreen: expected.numGreen,
      log10P: expected.log10P,
      log10PAdjusted: expected.log10PAdjusted,
      keysTested: 2,
    });
    expect(result.verdict).toBe('watermarked');
    expect(result.issuance.match).toBe('exact');
    const predicate = statementOf(result.report).predicate;
    expect(predicate.algorithm.keyIds).toEqual(epochKeys.map((key) => key.keyId));
    expect(predicate.detection).toMatchObject({ correction: 'holm', numTests: 2 });
    expect(predicate.issuance!.record!.keyEpoch).toBe('2026-10');
  });

  it('refuses to start on a database whose log another key signs', async () => {
    const dataDir = temporaryDirectory();
    const gateway = await startTestGateway({ config: { dataDir } });
    await gateway.close();
    const otherDir = temporaryDirectory();
    copyFileSync(join(dataDir, 'gateway.sqlite'), join(otherDir, 'gateway.sqlite'));
    await expect(prepareGateway(resolveConfig({ dataDir: otherDir }, {}))).rejects.toThrow(
      /the issuance log in this database is signed by .* must share the data directory's log-signing-key file/,
    );
    await expect(
      prepareGateway(resolveConfig({ dataDir, logOrigin: 'example.com/other-log' }, {})),
    ).rejects.toThrow(/the origin is fixed when the key is created/);
  });
});

describe('a gateway started again with another key file', () => {
  it('warns at start, and its report says the matched record’s key was not tested', async () => {
    const dataDir = temporaryDirectory();
    const keyFile = (fill: number) => {
      const path = join(temporaryDirectory(), 'watermark-key.json');
      writeFixedKeyFile(path, fill);
      return path;
    };
    const first = await startTestGateway({ config: { dataDir, keyFile: keyFile(61) } });
    const firstKeyId = (await first.call('POST', '/v1/detect', { text: 'hello' })).json.keyId as string;
    const issued = (await complete(first, 'The harbour authority said on Monday that', 120, 7)).choices[0]
      .text;
    expect(first.logs.text).not.toMatch(/does not hold/);
    const devKey = first.devKey; // made on the first start only: the second start finds keys
    await first.close();

    const second = await startTestGateway({ config: { dataDir, keyFile: keyFile(62) } });
    try {
      expect(second.logs.text).toMatch(
        new RegExp(`outputs marked under a key this gateway does not hold \\(${firstKeyId}\\)`),
      );
      const result = (await second.call('POST', '/v1/verify', { text: issued }, devKey)).json;
      expect(result.issuance.match).toBe('exact');
      const limitations = statementOf(result.report).predicate.limitations.join(' ');
      expect(limitations).toMatch(
        new RegExp(
          `The matched issuance record was marked under key ${firstKeyId}, which this gateway does not hold now`,
        ),
      );
    } finally {
      await second.close();
    }
  });
});
