/**
 * Group commit of issuance records, by the system calls: a process appends N records at once, each in its own
 * `appendIssuance` call, under strace. SQLite: fewer WAL fsyncs than records; PostgreSQL: fewer COMMITs. And
 * each call is acknowledged (the process writes `ACK i` once its promise resolved) only after the fsync, or the
 * COMMIT reply, of the commit that holds its record: the first call commits alone at once, the other N − 1
 * arrive while it is in flight and share the second. With maxBatchRecords = 1 the same burst costs N commits
 * (the control: the counts below can fail). Needs strace (required when CI is set).
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from '../apps/gateway/src/test-support/harness.ts';
import { freshPostgresSchema, postgresReachable } from '../apps/gateway/src/test-support/services.ts';
import { removeTemporaryDirectories, repositoryRoot, temporaryDirectory } from './helpers.ts';
import { parseStrace, type Syscall, type SyscallTrace, tcpConnection } from './syscall-trace.ts';
import { straceProblem } from './traced-gateway.ts';

afterAll(removeTemporaryDirectories);

const straceMissing = await straceProblem();
if (straceMissing !== null && process.env.CI) {
  throw new Error(`${straceMissing}; CI=true requires strace (scripts/ci-services.sh installs it)`);
}
const havePostgres = await postgresReachable(TEST_DATABASE_URL);
if (!havePostgres && process.env.CI) {
  throw new Error('PostgreSQL (TRACEMARK_TEST_DATABASE_URL) is not reachable; CI=true requires it');
}

const RECORDS = 24;
const gatewayRoot = join(repositoryRoot, 'apps/gateway');

/** Opens the log, warms it with one append, then BURST-START, N concurrent one-record appends, BURST-END. */
const BURST = `
import { writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
const [storageModule, location, count, maxBatchRecords] = process.argv.slice(2);
const { openPostgresStorage, openSqliteStorage } = await import(storageModule);
const options = maxBatchRecords === 'default' ? {} : { maxBatchRecords: Number(maxBatchRecords) };
const storage = location.startsWith('postgres')
  ? await openPostgresStorage({ connectionString: location, ...options })
  : openSqliteStorage(location, options);
const record = (n) => ({ id: 'iss_' + randomBytes(8).toString('hex'), completionId: 'cmpl-' + n, choiceIndex: 0,
  createdAt: new Date().toISOString(), apiKeyId: 'ak_1', account: 'acme', endpoint: 'completions', model: 'm',
  backend: 'embedded', watermarkKeyId: 'tmk1_0', keyEpoch: null, promptSha256: 'a'.repeat(64),
  outputSha256: randomBytes(32).toString('hex'), normalizedOutputSha256: null, minhash: null,
  numPromptTokens: 1, numTokens: 1, outputTokens: Uint32Array.of(n), finishReason: 'stop' });
await storage.appendIssuance([record(-1)]);
writeSync(1, 'BURST-START\\n');
await Promise.all(Array.from({ length: Number(count) }, async (_, i) => {
  await storage.appendIssuance([record(i)]);
  writeSync(1, 'ACK ' + i + '\\n');
}));
writeSync(1, 'BURST-END\\n');
await storage.close();
`;

const TRACED_CALLS = 'read,recvfrom,write,writev,sendto,sendmsg,pwrite64,pwritev,fsync,fdatasync';
const SYNCS = new Set(['fsync', 'fdatasync']);
const SOCKET_WRITES = new Set(['write', 'writev', 'sendto', 'sendmsg']);
const SOCKET_READS = new Set(['read', 'recvfrom']);
/** The simple-query message `COMMIT` and its CommandComplete reply, as strace escapes them. */
const COMMIT_QUERY = 'Q\\0\\0\\0\\vCOMMIT\\0';
const COMMIT_COMPLETE = 'C\\0\\0\\0\\vCOMMIT\\0';

interface Burst {
  readonly trace: SyscallTrace;
  readonly start: Syscall;
  readonly end: Syscall;
  /** The process's write of `ACK i`, by i. */
  readonly acks: readonly Syscall[];
}

async function traceBurst(location: string, maxBatchRecords: number | 'default'): Promise<Burst> {
  const directory = temporaryDirectory('tracemark-group-commit-');
  try {
    const script = join(directory, 'burst.mjs');
    const tracePath = join(directory, 'burst.strace');
    writeFileSync(script, BURST);
    const storageModule = pathToFileURL(join(gatewayRoot, 'src/storage/index.ts')).href;
    const args = ['--conditions=source', '--import', 'tsx', script, storageModule, location, String(RECORDS)];
    const traced = spawn(
      'strace',
      [
        '-f',
        '-ttt',
        '-yy',
        '-s',
        '256',
        '-e',
        `trace=${TRACED_CALLS}`,
        '--seccomp-bpf',
        '-o',
        tracePath,
        process.execPath,
        ...args,
        String(maxBatchRecords),
      ],
      { cwd: gatewayRoot, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    traced.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => traced.once('exit', resolve));
    if (code !== 0) throw new Error(`the traced burst exited (${code}): ${stderr}`);
    const trace = parseStrace(readFileSync(tracePath, 'utf8'));
    const marker = (text: string) => {
      const call = trace.find((entry) => entry.name === 'write' && entry.args.includes(`"${text}\\n"`));
      if (call === undefined) throw new Error(`${text} is not in the trace`);
      return call;
    };
    const start = marker('BURST-START');
    const end = marker('BURST-END');
    const acks = Array.from({ length: RECORDS }, (_, i) => marker(`ACK ${i}`));
    return { trace, start, end, acks };
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

const between = (call: Syscall, burst: Burst) => call.enter > burst.start.exit && call.exit < burst.end.enter;

/**
 * The commit points of the burst in order (SQLite: WAL fsyncs; PostgreSQL: reads of COMMIT's reply), and a
 * check that the call that is `i`th to be appended was acknowledged after the commit point of its batch.
 */
function expectAcknowledgedAfterItsCommit(
  burst: Burst,
  commits: readonly Syscall[],
  batchOf: (i: number) => number,
) {
  burst.acks.forEach((ack, i) => {
    const commit = commits[batchOf(i)];
    expect(commit, `the commit of record ${i}`).toBeDefined();
    expect(ack.enter, `ACK ${i} after its commit`).toBeGreaterThan(commit!.exit);
  });
}

function sqliteCommits(burst: Burst, wal: string): Syscall[] {
  return burst.trace.filter(
    (call) => SYNCS.has(call.name) && call.target === wal && call.result === '0' && between(call, burst),
  );
}

function postgresCommits(burst: Burst, port: number): Syscall[] {
  const onDatabase = (call: Syscall) => {
    const connection = tcpConnection(call.target);
    return connection !== null && Number(connection.slice(connection.lastIndexOf(':') + 1)) === port;
  };
  const sent = burst.trace.filter(
    (call) =>
      SOCKET_WRITES.has(call.name) &&
      onDatabase(call) &&
      call.args.includes(COMMIT_QUERY) &&
      between(call, burst),
  );
  return sent.map((commit) => {
    const reply = burst.trace.find(
      (call) =>
        SOCKET_READS.has(call.name) &&
        call.target === commit.target &&
        call.args.includes(COMMIT_COMPLETE) &&
        call.enter > commit.exit,
    );
    if (reply === undefined) throw new Error('a COMMIT without its reply in the trace');
    return reply;
  });
}

/** Group commit: the first record alone, the other N − 1 in the next commit. Bound 1: one commit each. */
const grouped = (i: number) => (i === 0 ? 0 : 1);
const alone = (i: number) => i;

describe('group commit of concurrent appends, by the system calls', () => {
  if (straceMissing !== null) {
    it.skip(`strace cannot run here (${straceMissing}) and CI is not set`, () => undefined);
    return;
  }

  it(`SQLite: ${RECORDS} concurrent appends, 2 WAL fsyncs, each acknowledged after its own`, async () => {
    const directory = temporaryDirectory('tracemark-group-commit-db-');
    try {
      const path = join(directory, 'gateway.sqlite');
      const burst = await traceBurst(path, 'default');
      const commits = sqliteCommits(burst, `${path}-wal`);
      expect(commits.length).toBeGreaterThanOrEqual(1);
      expect(commits.length).toBeLessThan(RECORDS);
      expect(commits).toHaveLength(2);
      expectAcknowledgedAfterItsCommit(burst, commits, grouped);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  }, 60_000);

  it('SQLite control: with maxBatchRecords 1, one WAL fsync per record', async () => {
    const directory = temporaryDirectory('tracemark-group-commit-db-');
    try {
      const path = join(directory, 'gateway.sqlite');
      const burst = await traceBurst(path, 1);
      const commits = sqliteCommits(burst, `${path}-wal`);
      expect(commits.length).toBeGreaterThanOrEqual(RECORDS);
      expectAcknowledgedAfterItsCommit(burst, commits, alone);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  }, 60_000);

  if (!havePostgres) {
    it.skip('PostgreSQL (server unreachable and CI not set)', () => undefined);
    return;
  }
  const port = Number(new URL(TEST_DATABASE_URL).port || 5432);

  it(`PostgreSQL: ${RECORDS} concurrent appends, 2 COMMITs, each acknowledged after its own's reply`, async () => {
    const schema = await freshPostgresSchema(TEST_DATABASE_URL);
    try {
      const burst = await traceBurst(schema.url, 'default');
      const commits = postgresCommits(burst, port);
      expect(commits.length).toBeLessThan(RECORDS);
      expect(commits).toHaveLength(2);
      expectAcknowledgedAfterItsCommit(burst, commits, grouped);
    } finally {
      await schema.drop();
    }
  }, 60_000);

  it('PostgreSQL control: with maxBatchRecords 1, one COMMIT per record', async () => {
    const schema = await freshPostgresSchema(TEST_DATABASE_URL);
    try {
      const burst = await traceBurst(schema.url, 1);
      const commits = postgresCommits(burst, port);
      expect(commits).toHaveLength(RECORDS);
      expectAcknowledgedAfterItsCommit(burst, commits, alone);
    } finally {
      await schema.drop();
    }
  }, 60_000);
});
