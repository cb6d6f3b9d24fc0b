/**
 * Gateway replicas as real processes: `tracemark serve` several times on one PostgreSQL schema (and one Redis
 * when asked), all on one data directory for the shared secrets (server secret, watermark key, log-signing
 * key); the database is only PostgreSQL's. Used by test/replicas.test.ts and test/replicas.slow.test.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../apps/gateway/src/test-support/harness.ts';
import { freshPostgresSchema } from '../apps/gateway/src/test-support/services.ts';
import { cacheDir, cliPath, temporaryDirectory } from './helpers.ts';

export interface Replica {
  readonly url: string;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts one `tracemark serve` on an ephemeral port; resolves once it listens. */
export function startReplica(dataDir: string, env: Record<string, string>): Promise<Replica> {
  const child = spawn(
    process.execPath,
    [cliPath, 'serve', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'],
    {
      env: { ...process.env, TRACEMARK_CACHE_DIR: cacheDir, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`serve did not start: ${stderr}`));
    }, 60_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(stderr);
      if (match !== null) {
        clearTimeout(timer);
        resolve({
          url: match[1]!,
          child,
          exited,
          stop: async (signal = 'SIGTERM') => {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            await exited;
          },
        });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code}): ${stderr}`));
    });
  });
}

export interface ReplicaSet {
  readonly dataDir: string;
  readonly env: Record<string, string>;
  readonly replicas: Replica[];
  /** The development key the first replica created (scopes generate, verify, admin). */
  readonly devKey: string;
  /** Starts one more replica on the same database and data directory (`env` added to the set's). */
  add(env?: Record<string, string>): Promise<Replica>;
  /** Stops every replica still running and drops the schema. */
  close(): Promise<void>;
}

/**
 * `count` replicas on a fresh PostgreSQL schema, with Redis unless `redis` is false. The first starts alone
 * (it migrates the schema and creates the keys), the others together.
 */
export async function startReplicaSet(
  count: number,
  options: { readonly redis?: boolean; readonly env?: Record<string, string> } = {},
): Promise<ReplicaSet> {
  const schema = await freshPostgresSchema(TEST_DATABASE_URL);
  const dataDir = join(temporaryDirectory('tracemark-replicas-'), 'data');
  const env: Record<string, string> = {
    DATABASE_URL: schema.url,
    ...(options.redis === false ? {} : { REDIS_URL: TEST_REDIS_URL }),
    TRACEMARK_RATE_LIMIT_PER_MINUTE: '1000000',
    ...options.env,
  };
  const replicas: Replica[] = [];
  const add = async (extra: Record<string, string> = {}) => {
    const replica = await startReplica(dataDir, { ...env, ...extra });
    replicas.push(replica);
    return replica;
  };
  try {
    await add();
    await Promise.all(Array.from({ length: count - 1 }, () => add()));
  } catch (error) {
    await Promise.all(replicas.map((replica) => replica.stop('SIGKILL')));
    await schema.drop();
    throw error;
  }
  return {
    dataDir,
    env,
    replicas,
    devKey: readFileSync(join(dataDir, 'dev-api-key'), 'utf8').trim(),
    add,
    close: async () => {
      await Promise.all(replicas.map((replica) => replica.stop()));
      await schema.drop();
    },
  };
}

export interface Call {
  readonly status: number;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  readonly json: any;
  readonly headers: Headers;
}

export async function call(
  url: string,
  method: string,
  path: string,
  key: string | null,
  body?: unknown,
): Promise<Call> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {
      ...(key === null ? {} : { authorization: `Bearer ${key}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, json: text === '' ? null : JSON.parse(text), headers: response.headers };
}

/** Creates an API key through the admin API. */
export async function createKey(
  url: string,
  adminKey: string,
  body: Record<string, unknown>,
): Promise<{ id: string; key: string }> {
  const created = await call(url, 'POST', '/v1/admin/keys', adminKey, body);
  if (created.status !== 201) throw new Error(`key not created: ${JSON.stringify(created.json)}`);
  return { id: created.json.id, key: created.json.key };
}

/**
 * One completion; resolves to its issuance ids only if the whole response arrived (an acknowledged
 * completion), else to an empty list; throws when the connection failed.
 */
export async function completion(
  url: string,
  key: string,
  options: { readonly stream?: boolean; readonly seed: number; readonly maxTokens?: number },
): Promise<{ status: number; ids: string[]; tokens: number }> {
  const response = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'tracemark-ngram',
      prompt: `Report ${options.seed}:`,
      max_tokens: options.maxTokens ?? 16,
      seed: options.seed,
      ...(options.stream === true ? { stream: true, stream_options: { include_usage: true } } : {}),
    }),
  });
  if (response.status !== 200) {
    await response.text();
    return { status: response.status, ids: [], tokens: 0 };
  }
  if (options.stream !== true) {
    const body = (await response.json()) as {
      tracemark: { issuance_ids: string[] };
      usage: { completion_tokens: number };
    };
    return { status: 200, ids: body.tracemark.issuance_ids, tokens: body.usage.completion_tokens };
  }
  const events = (await response.text()).split('\n\n').map((event) => event.replace(/^data: /, ''));
  if (!events.includes('[DONE]')) return { status: 200, ids: [], tokens: 0 };
  const last = events
    .filter((event) => event.startsWith('{'))
    .map((event) => JSON.parse(event))
    .at(-1);
  return {
    status: 200,
    ids: last?.tracemark?.issuance_ids ?? [],
    tokens: last?.usage?.completion_tokens ?? 0,
  };
}

export interface Checkpoint {
  readonly treeSize: number;
  readonly rootHash: string;
  readonly checkpoint: string;
}

export async function checkpointOf(url: string): Promise<Checkpoint> {
  return (await (await fetch(`${url}/v1/log/checkpoint`)).json()) as Checkpoint;
}

/** The log's origin and verifier key, as a replica publishes them. */
export async function logKeysOf(url: string): Promise<{ origin: string; verifierKey: string }> {
  const keys = (await (await fetch(`${url}/.well-known/tracemark/keys.json`)).json()) as {
    logOrigin: string;
    keys: { verifierKey: string }[];
  };
  return { origin: keys.logOrigin, verifierKey: keys.keys[0]!.verifierKey };
}

export interface LoggedRecord {
  readonly id: string;
  readonly seq: number;
  readonly apiKeyId: string;
  readonly numTokens: number;
}

/** The whole issuance log, in seq order, read through one replica's admin API. */
export async function issuanceLog(url: string, adminKey: string): Promise<LoggedRecord[]> {
  const records: LoggedRecord[] = [];
  for (;;) {
    const page = await call(
      url,
      'GET',
      `/v1/admin/issuance?limit=1000&after=${records.at(-1)?.seq ?? -1}`,
      adminKey,
    );
    if (page.status !== 200) throw new Error(`issuance: ${JSON.stringify(page.json)}`);
    for (const record of page.json.data as LoggedRecord[])
      records.push({
        id: record.id,
        seq: record.seq,
        apiKeyId: record.apiKeyId,
        numTokens: record.numTokens,
      });
    if (page.json.data.length < 1000) return records;
  }
}
