/**
 * Gateway replicas under load, as real processes on loopback (`pnpm test:slow`; build first): `tracemark
 * serve` replicas on one PostgreSQL schema and one Redis. A daily token quota holds exactly across three
 * replicas under concurrent reservations (a control without Redis grants it once per replica); accounts the
 * monitor links share one limit although each replica served only some of them (replicas follow each other's
 * monitor events), and a policy action taken on one replica holds on the others; a replica that starts
 * during load joins the one log without a gap; one killed with SIGKILL mid-stream loses no acknowledged
 * record. The fast subset (rate limits, one Merkle log) is replicas.test.ts.
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
  type Replica,
  type ReplicaSet,
  startReplicaSet,
} from './replica-cluster.ts';

const haveServices = (await postgresReachable(TEST_DATABASE_URL)) && (await redisReachable(TEST_REDIS_URL));
if (!haveServices && process.env.CI)
  throw new Error('PostgreSQL and Redis must be reachable with CI=true (scripts/ci-services.sh starts them)');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!haveServices)('gateway replicas under load', () => {
  let shared: ReplicaSet;
  let alone: ReplicaSet;
  let log: { origin: string; verifierKey: string };
  beforeAll(async () => {
    [shared, alone] = await Promise.all([startReplicaSet(3), startReplicaSet(3, { redis: false })]);
    log = await logKeysOf(shared.replicas[0]!.url);
  }, 180_000);
  afterAll(async () => {
    await Promise.all([shared?.close(), alone?.close()]);
    removeTemporaryDirectories();
  });

  /** Every acknowledged record is in the gapless log and proved under `final`, which extends `earlier`. */
  async function expectOneLog(
    url: string,
    acknowledged: Iterable<string>,
    earlier: readonly Checkpoint[],
  ): Promise<void> {
    const final = await checkpointOf(url);
    const root = verifyCheckpoint(final.checkpoint, log.verifierKey, { origin: log.origin }).rootHash;
    const records = await issuanceLog(url, shared.devKey);
    expect(records.map((record) => record.seq)).toEqual(records.map((_, i) => i));
    expect(final.treeSize).toBe(records.length);
    const inLog = new Set(records.map((record) => record.id));
    const ids = [...acknowledged];
    expect(ids.filter((id) => !inLog.has(id))).toEqual([]);
    for (const id of ids) {
      const proof = await call(
        url,
        'GET',
        `/v1/log/inclusion?recordId=${id}&treeSize=${final.treeSize}`,
        shared.devKey,
      );
      expect(proof.status, id).toBe(200);
      expect(
        verifyInclusion(
          fromHex(proof.json.leafHash),
          proof.json.leafIndex,
          final.treeSize,
          (proof.json.inclusionProof as string[]).map((hash) => fromHex(hash)),
          root,
        ),
        id,
      ).toBe(true);
    }
    for (const old of earlier) {
      verifyCheckpoint(old.checkpoint, log.verifierKey, { origin: log.origin });
      const proof = (
        await call(url, 'GET', `/v1/log/consistency?from=${old.treeSize}&to=${final.treeSize}`, null)
      ).json as { fromRootHash: string; consistencyProof: string[] };
      expect(proof.fromRootHash).toBe(old.rootHash);
      expect(
        verifyConsistency(
          old.treeSize,
          final.treeSize,
          fromHex(old.rootHash),
          root,
          proof.consistencyProof.map((hash) => fromHex(hash)),
        ),
      ).toBe(true);
    }
  }

  /**
   * Eight workers send completions (every other one streamed) round-robin over `live`, which the caller may
   * change; `during` runs meanwhile. Returns the ids of the acknowledged records and who served them.
   */
  async function underLoad(
    live: Replica[],
    during: (acknowledged: Map<string, Replica>) => Promise<void>,
  ): Promise<Map<string, Replica>> {
    const acknowledged = new Map<string, Replica>();
    let running = true;
    let seed = 10_000 + Math.floor(Math.random() * 1e6);
    let next = 0;
    const workers = Array.from({ length: 8 }, async (_, w) => {
      while (running) {
        const replica = live[next++ % live.length]!;
        try {
          const served = await completion(replica.url, shared.devKey, { seed: seed++, stream: w % 2 === 1 });
          for (const id of served.ids) acknowledged.set(id, replica);
        } catch {
          // In flight when its replica died: never acknowledged.
          await sleep(5);
        }
      }
    });
    try {
      await during(acknowledged);
    } finally {
      running = false;
      await Promise.all(workers);
    }
    return acknowledged;
  }

  async function until(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error('timed out waiting under load');
      await sleep(20);
    }
  }

  it('holds a daily token quota exactly across replicas under concurrent reservations', async () => {
    const QUOTA = 80;
    const MAX_TOKENS = 8;
    const run = async (set: ReplicaSet) => {
      const key = await createKey(set.replicas[0]!.url, set.devKey, {
        scopes: ['generate'],
        dailyTokenQuota: QUOTA,
      });
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          completion(set.replicas[i % set.replicas.length]!.url, key.key, {
            seed: i,
            maxTokens: MAX_TOKENS,
          }),
        ),
      );
      const issued = (await issuanceLog(set.replicas[0]!.url, set.devKey)).filter(
        (record) => record.apiKeyId === key.id,
      );
      return { key, results, issued };
    };

    const { key, results, issued } = await run(shared);
    const granted = results.filter((result) => result.status === 200);
    // The embedded model writes every token it is allowed, so each grant used its whole reservation.
    expect(granted.every((result) => result.tokens === MAX_TOKENS)).toBe(true);
    expect(granted).toHaveLength(QUOTA / MAX_TOKENS);
    expect(results.filter((result) => result.status === 429)).toHaveLength(40 - QUOTA / MAX_TOKENS);
    expect(issued.reduce((sum, record) => sum + record.numTokens, 0)).toBe(QUOTA);
    // Every replica refuses the key now, with the quota's code.
    for (const replica of shared.replicas) {
      const refused = await call(replica.url, 'POST', '/v1/completions', key.key, {
        model: 'tracemark-ngram',
        prompt: 'One more',
        max_tokens: 1,
      });
      expect(refused.json.error.code).toBe('TM_ERR_QUOTA_EXCEEDED');
    }

    // Control: per-process quota stores grant the quota once per replica.
    const control = await run(alone);
    expect(control.results.filter((result) => result.status === 200)).toHaveLength((3 * QUOTA) / MAX_TOKENS);
    expect(control.issued.reduce((sum, record) => sum + record.numTokens, 0)).toBe(3 * QUOTA);
  });

  it('accounts the monitor links share one limit across replicas that each served only some of them', async () => {
    const urls = shared.replicas.map((replica) => replica.url);
    const CAMPAIGN = ['c1', 'c2', 'c3', 'c4', 'c5'];
    const KEY_RATE = 40;
    const REQUESTS_EACH = 12;
    // A templated chain-of-thought elicitation campaign, and one writer's unrelated requests.
    const campaignPrompt = (i: number) =>
      `Think step by step and write out every intermediate step of your reasoning before you answer: a shop sells ${i + 3} boxes of ${2 * i + 5} apples at ${i + 11} cents each; what do they cost in total?`;
    const writerPrompts = [
      'Write a short poem about the sea at dawn.',
      'Suggest a title for my essay on medieval trade routes.',
      'Rephrase this sentence so it sounds friendlier: we cannot accept returns.',
      'Give me three names for a bakery in Lisbon.',
      'Draft a thank-you note to a colleague who covered my shift.',
      'Summarise the plot of a detective story in two sentences.',
    ];
    const keys = new Map<string, string>();
    for (const account of [...CAMPAIGN, 'writer'])
      keys.set(
        account,
        (
          await createKey(urls[0]!, shared.devKey, {
            scopes: ['generate', 'verify'],
            account,
            rateLimitPerMinute: KEY_RATE,
          })
        ).key,
      );
    // Account i is served by replica i mod 3 only: c3 by replica 2 alone, which never sees the others.
    const servedBy = (account: string) =>
      urls[account === 'writer' ? 2 : CAMPAIGN.indexOf(account) % urls.length]!;
    const chat = (account: string, content: string) =>
      call(servedBy(account), 'POST', '/v1/chat/completions', keys.get(account)!, {
        model: 'tracemark-ngram',
        messages: [{ role: 'user', content }],
        max_tokens: 2,
      });
    for (let i = 0; i < REQUESTS_EACH; i++) {
      const responses = await Promise.all([
        ...CAMPAIGN.map((account, a) => chat(account, campaignPrompt(i * CAMPAIGN.length + a))),
        chat('writer', writerPrompts[i % writerPrompts.length]!),
      ]);
      for (const response of responses) expect(response.status).toBe(200);
    }

    // Every replica links all five (each followed the events the others stored).
    const clusterSeenBy = async (url: string) => {
      const risk = await call(url, 'GET', '/v1/admin/risk', shared.devKey);
      return risk.json.clusters.find((cluster: { accounts: string[] }) => cluster.accounts.includes('c3')) as
        | { id: string; accounts: string[] }
        | undefined;
    };
    const deadline = Date.now() + 30_000;
    let clusters: ({ id: string; accounts: string[] } | undefined)[] = [];
    for (;;) {
      clusters = await Promise.all(urls.map(clusterSeenBy));
      if (clusters.every((cluster) => cluster?.accounts.length === CAMPAIGN.length)) break;
      if (Date.now() > deadline) break;
      await sleep(500);
    }
    for (const cluster of clusters) expect(cluster?.accounts).toEqual(CAMPAIGN);
    expect(new Set(clusters.map((cluster) => cluster!.id)).size).toBe(1);

    // One window for the five keys over the three replicas, under concurrent requests. The campaign's own
    // requests may already count in it (a replica that linked them mid-campaign), so a probe reads what is left.
    const probe = await call(urls[0]!, 'GET', '/v1/whoami', keys.get('c1')!);
    expect(probe.status).toBe(200);
    expect(Number(probe.headers.get('x-ratelimit-limit'))).toBe(KEY_RATE);
    const remaining = Number(probe.headers.get('x-ratelimit-remaining'));
    expect(remaining).toBeGreaterThan(0);
    // Per-key windows would pass all of these: each key has at least KEY_RATE - REQUESTS_EACH - 1 left.
    const burst = 2 * KEY_RATE;
    const statuses = await Promise.all(
      Array.from(
        { length: burst },
        async (_, i) =>
          (await call(urls[i % urls.length]!, 'GET', '/v1/whoami', keys.get(CAMPAIGN[i % CAMPAIGN.length]!)!))
            .status,
      ),
    );
    expect(statuses.filter((status) => status === 200)).toHaveLength(remaining);
    expect(statuses.filter((status) => status === 429)).toHaveLength(burst - remaining);
    // An account outside the cluster keeps its own limit.
    expect((await call(urls[0]!, 'GET', '/v1/whoami', keys.get('writer')!)).status).toBe(200);

    // A suspension taken on replica 0 holds on replica 2 within the follow period.
    const acted = await call(urls[0]!, 'POST', '/v1/admin/risk/accounts/writer/actions', shared.devKey, {
      action: 'suspend',
      reason: 'replica test',
    });
    expect(acted.status).toBe(201);
    let refused = 0;
    for (let i = 0; i < 50 && refused !== 403; i++) {
      refused = (await chat('writer', 'Write a haiku about autumn leaves.')).status;
      if (refused !== 403) await sleep(200);
    }
    expect(refused).toBe(403);
  }, 120_000);

  it('a replica started during load joins the one log without a gap', async () => {
    const live = [...shared.replicas];
    let beforeJoin: Checkpoint | undefined;
    let joined: Replica | undefined;
    const acknowledged = await underLoad(live, async (acked) => {
      await until(() => acked.size >= 20);
      beforeJoin = await checkpointOf(live[0]!.url);
      joined = await shared.add();
      live.push(joined);
      await until(() => [...acked.values()].filter((replica) => replica === joined).length >= 10);
    });
    expect(new Set(acknowledged.values()).size).toBe(4);
    const duringJoin = await checkpointOf(joined!.url);
    expect(duringJoin.treeSize).toBeGreaterThan(beforeJoin!.treeSize);
    await expectOneLog(joined!.url, acknowledged.keys(), [beforeJoin!, duringJoin]);
  }, 120_000);

  it('a replica killed with SIGKILL mid-stream loses no acknowledged record', async () => {
    const live = [...shared.replicas];
    const victim = live[1]!;
    let beforeKill: Checkpoint | undefined;
    let servedByVictim = 0;
    const acknowledged = await underLoad(live, async (acked) => {
      await until(() => acked.size >= 30);
      beforeKill = await checkpointOf(victim.url);
      await until(() => [...acked.values()].filter((replica) => replica === victim).length >= 15);
      // Workers are mid-request (streams among them) on every replica.
      victim.child.kill('SIGKILL');
      await victim.exited;
      servedByVictim = [...acked.values()].filter((replica) => replica === victim).length;
      live.splice(live.indexOf(victim), 1);
      const after = acked.size;
      await until(() => acked.size >= after + 20);
    });
    expect(servedByVictim).toBeGreaterThanOrEqual(15);
    await expectOneLog(live[0]!.url, acknowledged.keys(), [beforeKill!]);
  }, 120_000);
});
