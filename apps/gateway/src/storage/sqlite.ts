/** SQLite storage (better-sqlite3, WAL, synchronous=FULL: an issuance record is durable once appended). */
import { chmodSync, existsSync } from 'node:fs';
import {
  compactRange,
  lshBuckets,
  type NodeRef,
  planAppend,
  signatureFromBytes,
  signatureToBytes,
} from '@tracemark/provenance';
import Database from 'better-sqlite3';
import type { ApiKeyRecord } from '../api-keys.ts';
import { leafHashOf } from '../provenance/leaf.ts';
import { MIGRATIONS } from './migrations.ts';
import {
  API_KEY_COLUMNS,
  apiKeyFromRow,
  apiKeyValues,
  bytesOf,
  checkpointFromRow,
  ISSUANCE_COLUMNS,
  issuanceFromRow,
  issuanceValues,
  type Row,
} from './rows.ts';
import type {
  GatewayStorage,
  IssuanceInput,
  IssuanceRecord,
  ListIssuanceOptions,
  NearDuplicateCandidate,
  StorageOpenOptions,
  WatermarkEpoch,
} from './types.ts';

const placeholders = (count: number) => Array.from({ length: count }, () => '?').join(', ');

export function openSqliteStorage(path: string, options: StorageOpenOptions = {}): GatewayStorage {
  const readonly = options.readonly === true;
  const fresh = path !== ':memory:' && !existsSync(path);
  const db = new Database(path, readonly ? { readonly: true, fileMustExist: true } : {});
  if (fresh && !readonly) chmodSync(path, 0o600);
  if (!readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
  }
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  if (readonly) checkMigrated(db, path);
  else migrate(db);

  const insertKey = db.prepare(
    `INSERT INTO api_keys (${API_KEY_COLUMNS.join(', ')}) VALUES (${placeholders(API_KEY_COLUMNS.length)})`,
  );
  const selectKey = db.prepare('SELECT * FROM api_keys WHERE id = ?');
  const selectKeys = db.prepare('SELECT * FROM api_keys ORDER BY created_at, id');
  const countKeys = db.prepare('SELECT COUNT(*) AS n FROM api_keys');
  const revokeKey = db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
  const nextSeq = db.prepare('SELECT COALESCE(MAX(seq), -1) + 1 AS next FROM issuance_log');
  const insertIssuance = db.prepare(
    `INSERT INTO issuance_log (${ISSUANCE_COLUMNS.join(', ')}) VALUES (${placeholders(ISSUANCE_COLUMNS.length)})`,
  );
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
  const insertNode = db.prepare('INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)');
  const insertMinhash = db.prepare('INSERT INTO issuance_minhash (seq, signature) VALUES (?, ?)');
  const insertLsh = db.prepare('INSERT OR IGNORE INTO issuance_lsh (band, bucket, seq) VALUES (?, ?, ?)');
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

  const readNode = (ref: NodeRef): Uint8Array => {
    const row = selectNode.get(ref.level, ref.index) as Row | undefined;
    if (row === undefined) throw new Error(`the Merkle log has no node (${ref.level}, ${ref.index})`);
    return bytesOf(row.hash);
  };
  /** Leaves and completed subtrees for records [seq, …), inside the caller's transaction. */
  const appendLeaves = (seq: number, records: readonly Omit<IssuanceInput, 'minhash'>[]): void => {
    const size = Number((logSize.get() as Row).n);
    if (size !== seq) throw new Error(`the Merkle log has ${size} leaves but the next record is ${seq}`);
    const range = compactRange(seq).map((ref) => ({ ...ref, hash: readNode(ref) }));
    const plan = planAppend(seq, range, records.map(leafHashOf));
    plan.batch.leafHashes.forEach((hash, i) => {
      insertNode.run(0, seq + i, Buffer.from(hash));
    });
    for (const node of plan.batch.nodes) insertNode.run(node.level, node.index, Buffer.from(node.hash));
  };
  const append = db.transaction((records: readonly IssuanceInput[]): IssuanceRecord[] => {
    const first = Number((nextSeq.get() as Row).next);
    let seq = first;
    const stored = records.map(({ minhash, ...record }) => {
      insertIssuance.run(...issuanceValues(seq, record));
      if (minhash !== null) {
        insertMinhash.run(seq, Buffer.from(signatureToBytes(minhash)));
        lshBuckets(minhash).forEach((bucket, band) => {
          insertLsh.run(band, bucket, seq);
        });
      }
      return { ...record, seq: seq++ };
    });
    appendLeaves(first, stored);
    return stored;
  });
  // Records written before the Merkle log existed (migration 2) become its first leaves.
  if (!readonly) {
    db.transaction(() => {
      const size = Number((logSize.get() as Row).n);
      const missing = db.prepare('SELECT * FROM issuance_log WHERE seq >= ? ORDER BY seq').all(size) as Row[];
      if (missing.length > 0) appendLeaves(size, missing.map(issuanceFromRow));
    }).immediate();
  }
  let closed = false;

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
    async appendIssuance(records) {
      return append.immediate(records);
    },
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
    async migrations() {
      return (db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as Row[]).map(
        (row) => Number(row.version),
      );
    },
    async close() {
      if (closed) return;
      closed = true;
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
