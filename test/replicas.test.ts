/**
 * Gateway replicas, as real processes on loopback: three `tracemark serve` on one PostgreSQL schema and one
 * Redis, behind a round-robin client. A key's rate limit holds exactly across them under concurrent requests
 * (and a control without Redis, where each process limits alone, lets three times as many through); their
 * issuance appends form one Merkle log, whose checkpoints, signed by different replicas, are consistent.
 * The rest (quotas, cluster limits, kill -9, a replica joining under load) is in replicas.slow.test.ts.
 * Build first: `pnpm build`.
 */
import { fromHex, verifyCheckpoint, verifyConsistency, verifyInclusion } from '@tracemark/provenance';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../apps/gateway/src/test-support/harness.ts';
import { postgresReachable, redisReachable } from '../apps/gateway/src/test-support/services.ts';
import { removeTemporaryDirectories } from './helpers.ts';
import {
  type Checkpoint,
  call,
  checkpointOf,
  completion,
  createKey,
  issuanceLog,
  logKeysOf,
  type ReplicaSet,
  startReplicaSet,
} from './replica-cluster.ts';

const haveServices = (await postgresReachable(TEST_DATABASE_URL)) && (await redisReachable(TEST_REDIS_URL));
if (!haveServices && process.env.CI)
  throw new Error('PostgreSQL and Redis must be reachable with CI=true (scripts/ci-services.sh starts them)');

const RATE = 30;

/** `total` concurrent GET /v1/whoami with `key`, dealt round-robin over the replicas; the statuses. */
async function burst(set: ReplicaSet, key: string, total: number): Promise<number[]> {
  return Promise.all(
    Array.from(
      { length: total },
      async (_, i) =>
        (await call(set.replicas[i % set.replicas.length]!.url, 'GET', '/v1/whoami', key)).status,
    ),
  );
}

describe.skipIf(!haveServices)('three replicas on one PostgreSQL and one Redis', () => {
  let shared: ReplicaSet;
  let alone: ReplicaSet;
  beforeAll(async () => {
    [shared, alone] = await Promise.all([startReplicaSet(3), startReplicaSet(3, { redis: false })]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([shared?.close(), alone?.close()]);
    removeTemporaryDirectories();
  });

  it('holds a key’s rate limit exactly across replicas; per-process limiters let three times as many through', async () => {
    const key = await createKey(shared.replicas[0]!.url, shared.devKey, {
      scopes: ['verify'],
      rateLimitPerMinute: RATE,
    });
    const statuses = await burst(shared, key.key, 3 * RATE);
    expect(statuses.filter((status) => status === 200)).toHaveLength(RATE);
    expect(statuses.filter((status) => status === 429)).toHaveLength(2 * RATE);
    // Every replica refuses the key now, whichever served its requests.
    for (const replica of shared.replicas) {
      const refused = await call(replica.url, 'GET', '/v1/whoami', key.key);
      expect(refused.status).toBe(429);
      expect(refused.json.error.code).toBe('TM_ERR_RATE_LIMITED');
    }

    // Control: the same replicas without REDIS_URL each keep their own window.
    const control = await createKey(alone.replicas[0]!.url, alone.devKey, {
      scopes: ['verify'],
      rateLimitPerMinute: RATE,
    });
    const leaked = await burst(alone, control.key, 3 * RATE);
    expect(leaked.filter((status) => status === 200)).toHaveLength(3 * RATE);
  });

  it('appends from every replica form one Merkle log; checkpoints signed by different replicas are consistent', async () => {
    const urls = shared.replicas.map((replica) => replica.url);
    const { origin, verifierKey } = await logKeysOf(urls[0]!);
    for (const url of urls.slice(1)) expect(await logKeysOf(url)).toEqual({ origin, verifierKey });
    const acknowledged = new Map<string, number>();
    let seed = 0;
    /** Twelve concurrent completions, round-robin, plain and streamed; then replica `signer`'s checkpoint. */
    const round = async (signer: number): Promise<Checkpoint> => {
      await Promise.all(
        Array.from({ length: 12 }, async (_, i) => {
          const served = await completion(urls[i % urls.length]!, shared.devKey, {
            seed: seed++,
            stream: i % 4 === 3,
            maxTokens: 8,
          });
          expect(served.status).toBe(200);
          for (const id of served.ids) acknowledged.set(id, i % urls.length);
        }),
      );
      return checkpointOf(urls[signer]!);
    };
    const checkpoints = [await round(0), await round(1), await round(2)];
    expect(new Set(acknowledged.values())).toEqual(new Set([0, 1, 2]));

    const roots = checkpoints.map(
      (checkpoint) => verifyCheckpoint(checkpoint.checkpoint, verifierKey, { origin }).rootHash,
    );
    expect(checkpoints.map((checkpoint) => checkpoint.treeSize)).toEqual(
      [...checkpoints.map((checkpoint) => checkpoint.treeSize)].sort((a, b) => a - b),
    );
    expect(new Set(checkpoints.map((checkpoint) => checkpoint.treeSize)).size).toBe(3);
    // Each pair, proved by a replica that signed neither checkpoint where there is one.
    for (const [from, to, prover] of [
      [0, 1, 2],
      [1, 2, 0],
      [0, 2, 1],
    ] as const) {
      const old = checkpoints[from]!;
      const current = checkpoints[to]!;
      const proof = (
        await call(
          urls[prover]!,
          'GET',
          `/v1/log/consistency?from=${old.treeSize}&to=${current.treeSize}`,
          null,
        )
      ).json as { fromRootHash: string; consistencyProof: string[] };
      expect(proof.fromRootHash).toBe(old.rootHash);
      expect(
        verifyConsistency(
          old.treeSize,
          current.treeSize,
          roots[from]!,
          roots[to]!,
          proof.consistencyProof.map((hash) => fromHex(hash)),
        ),
      ).toBe(true);
    }

    // One gapless sequence holds every acknowledged record, each proved under the last checkpoint.
    const log = await issuanceLog(urls[1]!, shared.devKey);
    const last = checkpoints[2]!;
    expect(log.map((record) => record.seq)).toEqual(log.map((_, i) => i));
    expect(last.treeSize).toBe(log.length);
    const inLog = new Set(log.map((record) => record.id));
    expect([...acknowledged.keys()].filter((id) => !inLog.has(id))).toEqual([]);
    for (const [id, servedBy] of acknowledged) {
      const proof = await call(
        urls[(servedBy + 1) % urls.length]!,
        'GET',
        `/v1/log/inclusion?recordId=${id}&treeSize=${last.treeSize}`,
        shared.devKey,
      );
      expect(proof.status).toBe(200);
      expect(
        verifyInclusion(
          fromHex(proof.json.leafHash),
          proof.json.leafIndex,
          last.treeSize,
          (proof.json.inclusionProof as string[]).map((hash) => fromHex(hash)),
          roots[2]!,
        ),
      ).toBe(true);
    }
  });
});
