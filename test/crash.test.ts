/**
 * Crash safety, with real processes: `tracemark serve` is killed with SIGKILL while concurrent clients are
 * getting completions (plain and streamed). After a restart on the same data, every acknowledged completion
 * (one whose response the client received in full) is in the issuance log, provably under the new signed
 * checkpoint, and consistency proofs from checkpoints signed before the crash verify against it. On SQLite,
 * and on PostgreSQL when TRACEMARK_TEST_DATABASE_URL is reachable. Build first: `pnpm exec tsc -b`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromHex, verifyCheckpoint, verifyConsistency, verifyInclusion } from '@tracemark/provenance';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from '../apps/gateway/src/test-support/harness.ts';
import { freshPostgresSchema, postgresReachable } from '../apps/gateway/src/test-support/services.ts';
import { cacheDir, cliPath, removeTemporaryDirectories, temporaryDirectory } from './helpers.ts';

afterAll(removeTemporaryDirectories);

const havePostgres = await postgresReachable(TEST_DATABASE_URL);
if (!havePostgres && process.env.CI) {
  throw new Error('PostgreSQL (TRACEMARK_TEST_DATABASE_URL) is not reachable; CI=true requires it');
}

interface Served {
  readonly url: string;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
}

function serve(dataDir: string, env: Record<string, string>): Promise<Served> {
  const child = spawn(
    process.execPath,
    [cliPath, 'serve', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'],
    {
      env: {
        ...process.env,
        TRACEMARK_CACHE_DIR: cacheDir,
        TRACEMARK_RATE_LIMIT_PER_MINUTE: '1000000',
        ...env,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), 60_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(stderr);
      if (match !== null) {
        clearTimeout(timer);
        resolve({ url: match[1]!, child, exited });
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited (${code}): ${stderr}`)));
  });
}

interface Checkpoint {
  readonly treeSize: number;
  readonly rootHash: string;
  readonly checkpoint: string;
}

/** One completion; resolves to its issuance ids only if the whole response arrived. */
async function completion(url: string, key: string, stream: boolean, seed: number): Promise<string[]> {
  const response = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'tracemark-ngram',
      prompt: `Report ${seed}:`,
      max_tokens: 16,
      seed,
      ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
    }),
  });
  if (response.status !== 200) return [];
  if (!stream)
    return ((await response.json()) as { tracemark: { issuance_ids: string[] } }).tracemark.issuance_ids;
  const events = (await response.text()).split('\n\n').map((event) => event.replace(/^data: /, ''));
  if (!events.includes('[DONE]')) return [];
  const last = events
    .filter((event) => event.startsWith('{'))
    .map((event) => JSON.parse(event))
    .at(-1);
  return last?.tracemark?.issuance_ids ?? [];
}

function crashSuite(
  name: string,
  database: () => Promise<{ env: Record<string, string>; drop: () => Promise<void> }>,
) {
  it(`${name}: no acknowledged completion is lost to kill -9, and the log stays consistent`, async () => {
    const { env, drop } = await database();
    const dataDir = join(temporaryDirectory(), 'data');
    let served = await serve(dataDir, env);
    try {
      const key = readFileSync(join(dataDir, 'dev-api-key'), 'utf8').trim();
      const keys = (await (await fetch(`${served.url}/.well-known/tracemark/keys.json`)).json()) as {
        logOrigin: string;
        keys: { verifierKey: string }[];
      };
      const verifierKey = keys.keys[0]!.verifierKey;
      const checkpoint = async (url: string): Promise<Checkpoint> =>
        (await (await fetch(`${url}/v1/log/checkpoint`)).json()) as Checkpoint;
      for (let i = 0; i < 3; i++) await completion(served.url, key, false, i);
      const beforeLoad = await checkpoint(served.url);

      const acknowledged = new Set<string>();
      let running = true;
      let seed = 100;
      const workers = Array.from({ length: 8 }, async (_, w) => {
        while (running) {
          try {
            for (const id of await completion(served.url, key, w % 2 === 1, seed++)) acknowledged.add(id);
          } catch {
            // In flight when the gateway died: not acknowledged.
          }
        }
      });
      const deadline = Date.now() + 8000;
      while (acknowledged.size < 30 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const duringLoad = await checkpoint(served.url);
      while (acknowledged.size < 60 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      served.child.kill('SIGKILL');
      await served.exited;
      running = false;
      await Promise.all(workers);
      const acknowledgedAtCrash = [...acknowledged];
      expect(acknowledgedAtCrash.length).toBeGreaterThanOrEqual(30);

      served = await serve(dataDir, env);
      const after = await checkpoint(served.url);
      const afterRoot = verifyCheckpoint(after.checkpoint, verifierKey, { origin: keys.logOrigin }).rootHash;
      expect(after.treeSize).toBeGreaterThanOrEqual(duringLoad.treeSize);

      // Every acknowledged completion is in the log, under the checkpoint signed after the restart.
      const missing: string[] = [];
      for (const id of acknowledgedAtCrash) {
        const response = await fetch(
          `${served.url}/v1/log/inclusion?recordId=${id}&treeSize=${after.treeSize}`,
          {
            headers: { authorization: `Bearer ${key}` },
          },
        );
        if (response.status !== 200) {
          missing.push(id);
          continue;
        }
        const proof = (await response.json()) as {
          leafIndex: number;
          leafHash: string;
          inclusionProof: string[];
        };
        expect(
          verifyInclusion(
            fromHex(proof.leafHash),
            proof.leafIndex,
            after.treeSize,
            proof.inclusionProof.map((hash) => fromHex(hash)),
            afterRoot,
          ),
          id,
        ).toBe(true);
      }
      expect(missing).toEqual([]);

      // The log is gapless (one leaf per record) and extends both checkpoints signed before the crash.
      const total = (
        (await (
          await fetch(`${served.url}/v1/admin/issuance?limit=1`, {
            headers: { authorization: `Bearer ${key}` },
          })
        ).json()) as {
          total: number;
        }
      ).total;
      expect(after.treeSize).toBe(total);
      for (const old of [beforeLoad, duringLoad]) {
        verifyCheckpoint(old.checkpoint, verifierKey, { origin: keys.logOrigin });
        const consistency = (await (
          await fetch(`${served.url}/v1/log/consistency?from=${old.treeSize}&to=${after.treeSize}`)
        ).json()) as { fromRootHash: string; consistencyProof: string[] };
        expect(consistency.fromRootHash).toBe(old.rootHash);
        expect(
          verifyConsistency(
            old.treeSize,
            after.treeSize,
            fromHex(old.rootHash),
            afterRoot,
            consistency.consistencyProof.map((hash) => fromHex(hash)),
          ),
        ).toBe(true);
      }
    } finally {
      served.child.kill('SIGTERM');
      await served.exited;
      await drop();
    }
  });
}

describe('crash safety of the issuance log', () => {
  crashSuite('SQLite', async () => ({ env: {}, drop: async () => undefined }));
  if (havePostgres) {
    crashSuite('PostgreSQL', async () => {
      const schema = await freshPostgresSchema(TEST_DATABASE_URL);
      return { env: { DATABASE_URL: schema.url }, drop: schema.drop };
    });
  } else {
    it.skip('PostgreSQL (server unreachable and CI not set)', () => undefined);
  }
});
