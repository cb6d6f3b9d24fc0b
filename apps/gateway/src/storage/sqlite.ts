/**
 * SQLite storage (better-sqlite3, WAL, synchronous=FULL: an issuance record is durable once appended).
 * Appends are group-committed on a writer thread with a connection of its own (sqlite-writer.ts), so the
 * event loop keeps running while a commit waits for its fsync and the records that arrive meanwhile share the
 * next commit's fsync. Everything else runs on the calling thread's connection.
 */
import { chmodSync, existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { type NodeRef, signatureFromBytes } from '@tracemark/provenance';
import Database from 'better-sqlite3';
import type { ApiKeyRecord } from '../api-keys.ts';
import { compileWorkersInline } from '../worker-compile.ts';
import { createGroupCommit, DEFAULT_MAX_BATCH_RECORDS } from './group-commit.ts';
import { MIGRATIONS } from './migrations.ts';
import {
  API_KEY_COLUMNS,
  apiKeyFromRow,
  apiKeyValues,
  bytesOf,
  checkpointFromRow,
  issuanceFromRow,
  MONITOR_EVENT_COLUMNS,
  monitorEventFromRow,
  monitorEventValues,
  type Row,
  riskActionFromRow,
} from './rows.ts';
import { prepareSqliteAppend } from './sqlite-append.ts';
import type { SqliteWriterReply, SqliteWriterRequest, SqliteWriterStart } from './sqlite-writer.ts';
import type {
  GatewayStorage,
  IssuanceInput,
  IssuanceRecord,
  ListIssuanceOptions,
  ListMonitorEventsOptions,
  NearDuplicateCandidate,
  StorageOpenOptions,
  WatermarkEpoch,
} from './types.ts';

const placeholders = (count: number) => Array.from({ length: count }, () => '?').join(', ');

/**
 * Set on every connection that writes, the writer thread's included: WAL, and a commit returns only once the
 * WAL is fsynced (test/durability.test.ts turns the second off in a copy of the build and must see it fail).
 */
const WRITING_CONNECTION_PRAGMAS = [
  'journal_mode = WAL',
  'synchronous = FULL',
  'busy_timeout = 5000',
  'foreign_keys = ON',
];

interface SqliteWriter {
  /** Appends on the writer thread; resolves with the first record's seq once the commit returned. */
  append(records: readonly IssuanceInput[]): Promise<number>;
  close(): Promise<void>;
}

/** From TypeScript sources the thread needs tsx (sqlite-writer-source.mjs); built, it is plain sqlite-writer.js. */
function writerEntry(): { url: URL; execArgv?: string[] } {
  return import.meta.url.endsWith('.ts')
    ? { url: new URL('./sqlite-writer-source.mjs', import.meta.url), execArgv: ['--conditions=source'] }
    : { url: new URL('./sqlite-writer.js', import.meta.url) };
}

/**
 * The writer thread, started now (so the first append does not wait for it) and again after it died. It holds
 * the process open only while an append is in flight.
 */
function startSqliteWriter(path: string): SqliteWriter {
  const pending = new Map<number, { resolve: (seq: number) => void; reject: (error: Error) => void }>();
  let nextId = 0;
  let worker: Worker | null = null;
  const failAll = (error: Error) => {
    for (const waiter of pending.values()) waiter.reject(error);
    pending.clear();
  };
  const spawn = (): Worker => {
    const entry = writerEntry();
    const start: SqliteWriterStart = { path, pragmas: WRITING_CONNECTION_PRAGMAS };
    compileWorkersInline();
    const thread = new Worker(entry.url, {
      workerData: start,
      ...(entry.execArgv === undefined ? {} : { execArgv: entry.execArgv }),
    });
    thread.unref();
    thread.on('message', (reply: SqliteWriterReply) => {
      const waiter = pending.get(reply.id);
      if (waiter === undefined) return;
      pending.delete(reply.id);
      if (pending.size === 0) thread.unref();
      if ('error' in reply) {
        waiter.reject(
          Object.assign(
            new Error(reply.error.message),
            reply.error.code === null ? {} : { code: reply.error.code },
          ),
        );
      } else waiter.resolve(reply.firstSeq);
    });
    thread.on('error', (error) => {
      if (worker === thread) worker = null;
      failAll(error);
    });
    thread.on('exit', (code) => {
      if (worker === thread) worker = null;
      failAll(new Error(`the SQLite writer thread exited (code ${code})`));
    });
    return thread;
  };
  worker = spawn();
  return {
    append(records) {
      worker ??= spawn();
      const thread = worker;
      const id = nextId++;
      return new Promise<number>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        thread.ref();
        const request: SqliteWriterRequest = { type: 'append', id, records };
        thread.postMessage(request);
      });
    },
    async close() {
      const thread = worker;
      worker = null;
      if (thread === null) return;
      const exited = new Promise<void>((resolve) => thread.once('exit', () => resolve()));
      thread.ref();
      const request: SqliteWriterRequest = { type: 'close' };
      thread.postMessage(request);
      await exited;
    },
  };
}

export function openSqliteStorage(path: string, options: StorageOpenOptions = {}): GatewayStorage {
  const readonly = options.readonly === true;
  const fresh = path !== ':memory:' && !existsSync(path);
  const db = new Database(path, readonly ? { readonly: true, fileMustExist: true } : {});
  if (fresh && !readonly) chmodSync(path, 0o600);
  if (readonly) {
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
  } else for (const pragma of WRITING_CONNECTION_PRAGMAS) db.pragma(pragma);
  if (readonly) checkMigrated(db, path);
  else migrate(db);

  const insertKey = db.prepare(
    `INSERT INTO api_keys (${API_KEY_COLUMNS.join(', ')}) VALUES (${placeholders(API_KEY_COLUMNS.length)})`,
  );
  const selectKey = db.prepare('SELECT * FROM api_keys WHERE id = ?');
  const selectKeys = db.prepare('SELECT * FROM api_keys ORDER BY created_at, id');
  const countKeys = db.prepare('SELECT COUNT(*) AS n FROM api_keys');
  const revokeKey = db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
  const selectIssuance = db.prepare('SELECT * FROM issuance_log WHERE id = ?');
  const listAll = db.prepare('SELECT * FROM issuance_log WHERE seq > ? ORDER BY seq LIMIT ?');
  const listByKey = db.prepare(
    'SELECT * FROM issuance_log WHERE seq > ? AND api_key_id = ? ORDER BY seq LIMIT ?',
  );
  const listByAccount = db.prepare(
    'SELECT * FROM issuance_log WHERE seq > ? AND account = ? ORDER BY seq LIMIT ?',
  );
  const listByKeyAndAccount = db.prepare(
    'SELECT * FROM issuance_log WHERE seq > ? AND api_key_id = ? AND account = ? ORDER BY seq LIMIT ?',
  );
  const selectAccounts = db.prepare(
    'SELECT account, COUNT(*) AS n, COALESCE(SUM(num_tokens), 0) AS tokens FROM issuance_log GROUP BY account ORDER BY account',
  );
  const countIssuance = db.prepare('SELECT COUNT(*) AS n FROM issuance_log');
  const sumTokens = db.prepare(
    'SELECT COALESCE(SUM(num_tokens), 0) AS n FROM issuance_log WHERE api_key_id = ? AND created_at >= ?',
  );
  const prune = db.prepare(
    'UPDATE issuance_log SET output_tokens = NULL WHERE created_at < ? AND output_tokens IS NOT NULL',
  );
  const selectIssuanceBySeq = db.prepare('SELECT * FROM issuance_log WHERE seq = ?');
  const selectByHash = db.prepare(
    'SELECT * FROM issuance_log WHERE output_sha256 = ? OR normalized_sha256 = ? ORDER BY seq LIMIT 1',
  );
  const logSize = db.prepare('SELECT COALESCE(MAX(idx), -1) + 1 AS n FROM log_nodes WHERE level = 0');
  const selectNode = db.prepare('SELECT hash FROM log_nodes WHERE level = ? AND idx = ?');
  const selectBucket = db.prepare('SELECT seq FROM issuance_lsh WHERE band = ? AND bucket = ?');
  const selectMinhash = db.prepare('SELECT signature FROM issuance_minhash WHERE seq = ?');
  const insertCheckpoint = db.prepare(
    'INSERT OR IGNORE INTO log_checkpoints (tree_size, root_hash, note, created_at) VALUES (?, ?, ?, ?)',
  );
  const selectCheckpoint = db.prepare('SELECT * FROM log_checkpoints WHERE tree_size = ?');
  const selectLatestCheckpoint = db.prepare('SELECT * FROM log_checkpoints ORDER BY tree_size DESC LIMIT 1');
  const selectLogKeys = db.prepare('SELECT verifier_key FROM log_keys ORDER BY created_at, verifier_key');
  const insertLogKey = db.prepare('INSERT OR IGNORE INTO log_keys (verifier_key, created_at) VALUES (?, ?)');
  const insertEpoch = db.prepare(
    'INSERT OR IGNORE INTO watermark_epochs (watermark_key_id, key_epoch, first_seen_at) VALUES (?, ?, ?)',
  );
  const selectEpochs = db.prepare('SELECT * FROM watermark_epochs ORDER BY first_seen_at, watermark_key_id');
  // Monitor events (batches, about one a second) go through a connection of their own with synchronous =
  // NORMAL: in WAL mode its commits do not wait for an fsync on the event loop; a crash may lose the last
  // batch, which only the risk picture needs (the issuance records keep their own durable commits).
  const monitorDb =
    readonly || path === ':memory:'
      ? db
      : (() => {
          const connection = new Database(path);
          for (const pragma of ['journal_mode = WAL', 'synchronous = NORMAL', 'busy_timeout = 5000'])
            connection.pragma(pragma);
          return connection;
        })();
  const insertMonitorEvent = readonly
    ? null
    : monitorDb.prepare(
        `INSERT INTO monitor_events (${MONITOR_EVENT_COLUMNS.join(', ')}) VALUES (${placeholders(MONITOR_EVENT_COLUMNS.length)})`,
      );
  const insertMonitorEvents =
    insertMonitorEvent === null
      ? null
      : monitorDb.transaction((values: unknown[][]) => {
          for (const row of values) insertMonitorEvent.run(...row);
        });
  const monitorEventQueries = new Map<string, Database.Statement>();
  const insertRiskAction = readonly
    ? null
    : db.prepare(
        'INSERT INTO risk_actions (at, account, action, reason, admin_key_id) VALUES (?, ?, ?, ?, ?) RETURNING *',
      );
  const selectRiskActions = db.prepare('SELECT * FROM risk_actions ORDER BY id');
  const selectAccountRiskActions = db.prepare('SELECT * FROM risk_actions WHERE account = ? ORDER BY id');

  const readNode = (ref: NodeRef): Uint8Array => {
    const row = selectNode.get(ref.level, ref.index) as Row | undefined;
    if (row === undefined) throw new Error(`the Merkle log has no node (${ref.level}, ${ref.index})`);
    return bytesOf(row.hash);
  };
  let closed = false;
  const appender = readonly ? null : prepareSqliteAppend(db);
  appender?.backfillLeaves();
  // An in-memory database exists on this connection only: it appends here, without a writer thread.
  const writer = readonly || path === ':memory:' ? null : startSqliteWriter(path);
  const commit = async (records: readonly IssuanceInput[]): Promise<IssuanceRecord[]> => {
    if (closed) throw new Error('storage is closed');
    if (appender === null) throw new Error('storage is opened read-only');
    const first = writer === null ? appender.append(records) : await writer.append(records);
    return records.map(({ minhash, ...record }, i) => ({ ...record, seq: first + i }));
  };
  const group = createGroupCommit(commit, options.maxBatchRecords ?? DEFAULT_MAX_BATCH_RECORDS);

  return {
    kind: 'sqlite',
    async ping() {
      if (closed) throw new Error('storage is closed');
      db.prepare('SELECT 1').get();
    },
    async insertApiKey(record: ApiKeyRecord) {
      insertKey.run(...apiKeyValues(record));
    },
    async getApiKey(id) {
      const row = selectKey.get(id) as Row | undefined;
      return row === undefined ? null : apiKeyFromRow(row);
    },
    async listApiKeys() {
      return (selectKeys.all() as Row[]).map(apiKeyFromRow);
    },
    async countApiKeys() {
      return Number((countKeys.get() as Row).n);
    },
    async revokeApiKey(id, at) {
      return revokeKey.run(at, id).changes > 0;
    },
    appendIssuance: (records) => group.append(records),
    async getIssuanceBySeq(seq) {
      const row = selectIssuanceBySeq.get(seq) as Row | undefined;
      return row === undefined ? null : issuanceFromRow(row);
    },
    async findIssuanceByOutputHash(outputSha256, normalizedSha256) {
      const row = selectByHash.get(outputSha256, normalizedSha256) as Row | undefined;
      return row === undefined ? null : issuanceFromRow(row);
    },
    async findNearDuplicateCandidates(buckets, limit) {
      const shared = new Map<number, number>();
      buckets.forEach((bucket, band) => {
        for (const row of selectBucket.all(band, bucket) as Row[]) {
          const seq = Number(row.seq);
          shared.set(seq, (shared.get(seq) ?? 0) + 1);
        }
      });
      return [...shared]
        .sort((a, b) => b[1] - a[1] || a[0] - b[0])
        .slice(0, limit)
        .map(([seq, sharedBands]): NearDuplicateCandidate => {
          const row = selectMinhash.get(seq) as Row;
          return { seq, sharedBands, signature: signatureFromBytes(bytesOf(row.signature)) };
        });
    },
    async logSize() {
      return Number((logSize.get() as Row).n);
    },
    async logNodeHashes(refs) {
      return db.transaction(() => refs.map(readNode))();
    },
    async saveCheckpoint(checkpoint) {
      insertCheckpoint.run(checkpoint.treeSize, checkpoint.rootHash, checkpoint.note, checkpoint.createdAt);
      return checkpointFromRow(selectCheckpoint.get(checkpoint.treeSize) as Row);
    },
    async getCheckpoint(treeSize) {
      const row = selectCheckpoint.get(treeSize) as Row | undefined;
      return row === undefined ? null : checkpointFromRow(row);
    },
    async latestCheckpoint() {
      const row = selectLatestCheckpoint.get() as Row | undefined;
      return row === undefined ? null : checkpointFromRow(row);
    },
    async logKeys() {
      return (selectLogKeys.all() as Row[]).map((row) => String(row.verifier_key));
    },
    async addLogKey(verifierKey, at) {
      insertLogKey.run(verifierKey, at);
    },
    async registerWatermarkEpoch(watermarkKeyId, keyEpoch, at) {
      insertEpoch.run(watermarkKeyId, keyEpoch, at);
    },
    async listWatermarkEpochs() {
      return (selectEpochs.all() as Row[]).map(
        (row): WatermarkEpoch => ({
          watermarkKeyId: String(row.watermark_key_id),
          keyEpoch: row.key_epoch === null ? null : String(row.key_epoch),
          firstSeenAt: String(row.first_seen_at),
        }),
      );
    },
    async listIssuance(options: ListIssuanceOptions) {
      const after = options.afterSeq ?? -1;
      const { apiKeyId, account, limit } = options;
      const rows =
        apiKeyId === undefined
          ? account === undefined
            ? listAll.all(after, limit)
            : listByAccount.all(after, account, limit)
          : account === undefined
            ? listByKey.all(after, apiKeyId, limit)
            : listByKeyAndAccount.all(after, apiKeyId, account, limit);
      return (rows as Row[]).map(issuanceFromRow);
    },
    async listIssuanceAccounts() {
      return (selectAccounts.all() as Row[]).map((row) => ({
        account: String(row.account),
        numOutputs: Number(row.n),
        numTokens: Number(row.tokens),
      }));
    },
    async getIssuance(id) {
      const row = selectIssuance.get(id) as Row | undefined;
      return row === undefined ? null : issuanceFromRow(row);
    },
    async countIssuance() {
      return Number((countIssuance.get() as Row).n);
    },
    async sumTokensSince(apiKeyId, since) {
      return Number((sumTokens.get(apiKeyId, since) as Row).n);
    },
    async pruneIssuedTokens(before) {
      return prune.run(before).changes;
    },
    async appendMonitorEvents(events) {
      if (closed) throw new Error('storage is closed');
      if (insertMonitorEvents === null) throw new Error('storage is opened read-only');
      if (events.length > 0) insertMonitorEvents(events.map(monitorEventValues));
    },
    async listMonitorEvents(options: ListMonitorEventsOptions) {
      const conditions = ['id > ?'];
      const values: unknown[] = [options.afterId ?? 0];
      if (options.since !== undefined) {
        conditions.push('at >= ?');
        values.push(options.since);
      }
      if (options.account !== undefined) {
        conditions.push('account = ?');
        values.push(options.account);
      }
      const text = `SELECT * FROM monitor_events WHERE ${conditions.join(' AND ')} ORDER BY id LIMIT ?`;
      let statement = monitorEventQueries.get(text);
      if (statement === undefined) monitorEventQueries.set(text, (statement = db.prepare(text)));
      return (statement.all(...values, options.limit) as Row[]).map(monitorEventFromRow);
    },
    async appendRiskAction(action) {
      if (insertRiskAction === null) throw new Error('storage is opened read-only');
      return riskActionFromRow(
        insertRiskAction.get(
          action.at,
          action.account,
          action.action,
          action.reason,
          action.adminKeyId,
        ) as Row,
      );
    },
    async listRiskActions(options = {}) {
      const rows =
        options.account === undefined
          ? selectRiskActions.all()
          : selectAccountRiskActions.all(options.account);
      return (rows as Row[]).map(riskActionFromRow);
    },
    async migrations() {
      return (db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as Row[]).map(
        (row) => Number(row.version),
      );
    },
    async close() {
      if (closed) return;
      // Appends already queued still commit; later ones fail.
      await group.idle();
      closed = true;
      await writer?.close();
      if (monitorDb !== db) monitorDb.close();
      db.close();
    },
  };
}

/** A read-only opening needs every migration applied (it cannot apply them). */
function checkMigrated(db: Database.Database, path: string): void {
  const hasTable = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    .get();
  const applied = new Set(
    hasTable === undefined
      ? []
      : (db.prepare('SELECT version FROM schema_migrations').all() as Row[]).map((row) =>
          Number(row.version),
        ),
  );
  const missing = MIGRATIONS.filter((migration) => !applied.has(migration.version));
  if (missing.length > 0) {
    db.close();
    throw new Error(
      `${path}: not a migrated gateway database (missing migrations ${missing.map((m) => m.version).join(', ')}); it is opened read-only`,
    );
  }
}

function migrate(db: Database.Database): void {
  db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
  );
  const applied = new Set(
    (db.prepare('SELECT version FROM schema_migrations').all() as Row[]).map((row) => Number(row.version)),
  );
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  for (const migration of MIGRATIONS) {
    if (applied.has(migration.version)) continue;
    db.transaction(() => {
      for (const statement of migration.sqlite) db.exec(statement);
      record.run(migration.version, migration.name, new Date().toISOString());
    }).immediate();
  }
}
