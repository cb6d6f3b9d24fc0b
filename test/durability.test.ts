/**
 * Durability, tested by the order of system calls: `tracemark serve` runs under strace and, for every
 * completion, the issuance record must be durable before the gateway writes the first byte of a non-streamed
 * response, or the part of a stream that acknowledges the record (its issuance ids, `data: [DONE]`; a stream
 * is recorded when it ends, after its tokens were sent). SQLite: the database's files written, then
 * fsync/fdatasync of each, then the socket write. PostgreSQL: COMMIT sent and its reply read before the
 * socket write and, with the server's processes traced too, the server's WAL fdatasync before that reply.
 * The same check runs against a copy of the build sabotaged to lose commits (`synchronous = OFF`,
 * `synchronous_commit = off`) and must fail there. Needs strace (required when CI is set) and a build:
 * `pnpm exec tsc -b`.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from '../apps/gateway/src/test-support/harness.ts';
import { freshPostgresSchema, postgresReachable } from '../apps/gateway/src/test-support/services.ts';
import { removeTemporaryDirectories, temporaryDirectory } from './helpers.ts';
import {
  type CompletionFinding,
  checkDurability,
  type DurableStore,
  parseStrace,
  type SyscallTrace,
  type TracedCompletion,
} from './syscall-trace.ts';
import {
  postCompletion,
  postgresProcesses,
  queryPostgres,
  type SabotagedBuild,
  sabotagedGatewayBuild,
  startTracedGateway,
  straceProblem,
  tracePostgres,
} from './traced-gateway.ts';

afterAll(removeTemporaryDirectories);

const straceMissing = await straceProblem();
if (straceMissing !== null && process.env.CI) {
  throw new Error(`${straceMissing}; CI=true requires strace (scripts/ci-services.sh installs it)`);
}
const havePostgres = await postgresReachable(TEST_DATABASE_URL);
if (!havePostgres && process.env.CI) {
  throw new Error('PostgreSQL (TRACEMARK_TEST_DATABASE_URL) is not reachable; CI=true requires it');
}
/** Why the server's processes cannot be traced from here, or null when they can. */
const serverUntraceable = havePostgres
  ? await postgresProcesses(TEST_DATABASE_URL).then((pids) => (typeof pids === 'string' ? pids : null))
  : 'no server';

const DATABASE_FILE = 'gateway.sqlite';
/** Non-streamed completions, then streamed ones, one at a time, each on a connection of its own. */
const PLAIN_COMPLETIONS = 8;
const STREAMED_COMPLETIONS = 4;

interface TracedRun {
  readonly dataDir: string;
  readonly gateway: SyscallTrace;
  readonly server: SyscallTrace | null;
  readonly completions: readonly TracedCompletion[];
}

/** Starts the gateway under strace, makes the completions, stops it, and parses the trace(s). */
async function traceCompletions(options: {
  readonly env?: Readonly<Record<string, string>>;
  readonly build?: SabotagedBuild;
  /** Also trace the PostgreSQL server (its processes now, and the backends it forks for the gateway). */
  readonly traceServer?: boolean;
}): Promise<TracedRun> {
  const directory = temporaryDirectory('tracemark-durability-');
  const dataDir = join(directory, 'data');
  const serverTrace = options.traceServer === true ? await startServerTrace(directory) : null;
  try {
    const gateway = await startTracedGateway({
      dataDir,
      tracePath: join(directory, 'gateway.strace'),
      ...(options.env === undefined ? {} : { env: options.env }),
      ...(options.build === undefined ? {} : { preload: options.build.preload }),
    });
    const completions: TracedCompletion[] = [];
    try {
      const key = readFileSync(join(dataDir, 'dev-api-key'), 'utf8').trim();
      for (let i = 0; i < PLAIN_COMPLETIONS + STREAMED_COMPLETIONS; i++) {
        const stream = i >= PLAIN_COMPLETIONS;
        const chat = i % 2 === 0;
        const probe = randomBytes(8).toString('hex');
        const body = {
          model: 'tracemark-ngram',
          ...(chat
            ? { messages: [{ role: 'user', content: `Durability ${i}` }] }
            : { prompt: `Durability ${i}:` }),
          max_tokens: 6,
          seed: i,
          // One stream ends with the usage event that carries the ids, the others with a comment line.
          ...(stream
            ? { stream: true, ...(i % 4 === 1 ? { stream_options: { include_usage: true } } : {}) }
            : {}),
        };
        const response = await postCompletion(
          gateway.url,
          chat ? '/v1/chat/completions' : '/v1/completions',
          key,
          body,
          probe,
        );
        expect(response.status, response.body).toBe(200);
        const records = /"issuance_ids":\["(iss_[0-9a-f]+)"\]/.exec(response.body);
        expect(records, response.body).not.toBeNull();
        if (stream) expect(response.body.endsWith('data: [DONE]\n\n')).toBe(true);
        completions.push({
          label: `${stream ? 'streamed' : 'plain'} ${chat ? 'chat' : 'legacy'} completion #${i}`,
          probe,
          stream,
          records: [records![1]!],
        });
      }
    } finally {
      await gateway.stop();
    }
    await serverTrace?.stop();
    return {
      dataDir,
      gateway: parseStrace(readFileSync(join(directory, 'gateway.strace'), 'utf8')),
      server:
        serverTrace === null ? null : parseStrace(readFileSync(join(directory, 'postgres.strace'), 'utf8')),
      completions,
    };
  } finally {
    await serverTrace?.stop();
    rmSync(directory, { recursive: true, force: true });
  }
}

async function startServerTrace(directory: string) {
  const pids = await postgresProcesses(TEST_DATABASE_URL);
  if (typeof pids === 'string') throw new Error(pids);
  return tracePostgres(pids, join(directory, 'postgres.strace'));
}

function sqliteStore(dataDir: string): DurableStore {
  const database = join(dataDir, DATABASE_FILE);
  return { kind: 'sqlite', files: [database, `${database}-wal`] };
}

const failures = (findings: readonly CompletionFinding[]) => findings.filter((finding) => !finding.ok);

/** Copies of the build with the durability settings turned off (one per suite, removed afterwards). */
const SABOTAGES = [
  { file: 'storage/sqlite.js', from: "'synchronous = FULL'", to: "'synchronous = OFF'" },
  {
    file: 'storage/postgres.js',
    from: "set_config('synchronous_commit', 'on', true)",
    to: "set_config('synchronous_commit', 'off', true)",
  },
];

describe('durability of the issuance log, by the order of system calls', () => {
  if (straceMissing !== null) {
    it.skip(`strace cannot run here (${straceMissing}) and CI is not set`, () => undefined);
    return;
  }
  let sabotaged: SabotagedBuild;
  beforeAll(() => {
    sabotaged = sabotagedGatewayBuild('lossy', SABOTAGES);
  });
  afterAll(() => sabotaged?.remove());

  it('SQLite: each record is written and fsynced before the response that acknowledges it', async () => {
    const run = await traceCompletions({});
    const findings = checkDurability(run.gateway, run.completions, sqliteStore(run.dataDir));
    expect(findings).toHaveLength(PLAIN_COMPLETIONS + STREAMED_COMPLETIONS);
    expect(failures(findings)).toEqual([]);
  });

  it('SQLite: the check fails on a build with synchronous = OFF', async () => {
    const run = await traceCompletions({ build: sabotaged });
    const findings = checkDurability(run.gateway, run.completions, sqliteStore(run.dataDir));
    // Every completion is reported, and for the missing sync (the records were written, never synced).
    expect(failures(findings)).toHaveLength(findings.length);
    for (const finding of findings) expect(finding.detail).toMatch(/no fsync\/fdatasync of it in between/);
  });

  if (!havePostgres) {
    it.skip('PostgreSQL (server unreachable and CI not set)', () => undefined);
    return;
  }

  describe('PostgreSQL', () => {
    const port = Number(new URL(TEST_DATABASE_URL).port || 5432);
    const traceServer = serverUntraceable === null;

    it('the server flushes commits: fsync = on (the gateway refuses to start otherwise)', async () => {
      const [settings] = await queryPostgres(
        TEST_DATABASE_URL,
        "SELECT current_setting('fsync') AS fsync, current_setting('wal_sync_method') AS method",
      );
      expect(settings!.fsync).toBe('on');
      if (traceServer) expect(settings!.method).toBe('fdatasync');
    });

    /** The gateway's sessions default to synchronous_commit = off: the storage must commit appends durably. */
    const lossySession = async () => {
      const schema = await freshPostgresSchema(TEST_DATABASE_URL);
      const url = new URL(schema.url);
      url.searchParams.set('options', `${url.searchParams.get('options') ?? ''} -c synchronous_commit=off`);
      return { env: { DATABASE_URL: url.toString() }, drop: schema.drop };
    };
    const store = (server: SyscallTrace | null): DurableStore => ({ kind: 'postgres', port, server });

    it(`each record's COMMIT is acknowledged${traceServer ? ', after the server flushed its WAL,' : ''} before the response that acknowledges it`, async () => {
      const { env, drop } = await lossySession();
      try {
        const run = await traceCompletions({ env, traceServer });
        const findings = checkDurability(run.gateway, run.completions, store(run.server));
        expect(findings).toHaveLength(PLAIN_COMPLETIONS + STREAMED_COMPLETIONS);
        expect(failures(findings)).toEqual([]);
      } finally {
        await drop();
      }
    });

    if (!traceServer) {
      it.skip(`the check fails on a build with synchronous_commit = off (needs the server traced: ${serverUntraceable})`, () =>
        undefined);
      return;
    }

    it('the check fails on a build with synchronous_commit = off', async () => {
      const { env, drop } = await lossySession();
      try {
        const run = await traceCompletions({ env, build: sabotaged, traceServer });
        const findings = checkDurability(run.gateway, run.completions, store(run.server));
        // The COMMITs are still acknowledged; what is missing is the server's WAL flush before its reply.
        // (A flush by another process can land inside a window by chance, so not every one need fail.)
        const failed = failures(findings);
        expect(failed.length).toBeGreaterThan(0);
        for (const finding of failed) expect(finding.detail).toMatch(/without flushing its WAL/);
      } finally {
        await drop();
      }
    });
  });
});
