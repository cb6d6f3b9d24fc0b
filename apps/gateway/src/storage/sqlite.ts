/** SQLite storage (better-sqlite3, WAL, synchronous=FULL: an issuance record is durable once appended). */
import { chmodSync, existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { ApiKeyRecord } from '../api-keys.ts';
import { MIGRATIONS } from './migrations.ts';
import {
  API_KEY_COLUMNS,
  apiKeyFromRow,
  apiKeyValues,
  ISSUANCE_COLUMNS,
  issuanceFromRow,
  issuanceValues,
  type Row,
} from './rows.ts';
import type { GatewayStorage, IssuanceInput, IssuanceRecord, ListIssuanceOptions } from './types.ts';

const placeholders = (count: number) => Array.from({ length: count }, () => '?').join(', ');

export function openSqliteStorage(path: string): GatewayStorage {
  const fresh = path !== ':memory:' && !existsSync(path);
  const db = new Database(path);
  if (fresh) chmodSync(path, 0o600);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  migrate(db);

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
  const countIssuance = db.prepare('SELECT COUNT(*) AS n FROM issuance_log');
  const sumTokens = db.prepare(
    'SELECT COALESCE(SUM(num_tokens), 0) AS n FROM issuance_log WHERE api_key_id = ? AND created_at >= ?',
  );
  const prune = db.prepare(
    'UPDATE issuance_log SET output_tokens = NULL WHERE created_at < ? AND output_tokens IS NOT NULL',
  );
  const append = db.transaction((records: readonly IssuanceInput[]): IssuanceRecord[] => {
    let seq = Number((nextSeq.get() as Row).next);
    return records.map((record) => {
      insertIssuance.run(...issuanceValues(seq, record));
      return { ...record, seq: seq++ };
    });
  });
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
    async listIssuance(options: ListIssuanceOptions) {
      const after = options.afterSeq ?? -1;
      const rows =
        options.apiKeyId === undefined
          ? listAll.all(after, options.limit)
          : listByKey.all(after, options.apiKeyId, options.limit);
      return (rows as Row[]).map(issuanceFromRow);
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
