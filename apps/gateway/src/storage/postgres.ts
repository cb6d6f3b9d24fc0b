/** PostgreSQL storage (pg): parameterized queries only; appends serialize on an advisory lock. */
import pg from 'pg';
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
import type { GatewayStorage, IssuanceRecord, ListIssuanceOptions } from './types.ts';

/** Arbitrary constants naming the gateway's advisory locks. */
const MIGRATION_LOCK = 7_261_001;
const ISSUANCE_LOCK = 7_261_002;

const placeholders = (count: number, offset = 0) =>
  Array.from({ length: count }, (_, i) => `$${i + 1 + offset}`).join(', ');

export interface PostgresStorageOptions {
  readonly connectionString: string;
  readonly maxConnections?: number;
  /** Per-statement timeout, so a stuck database surfaces as an error rather than a hung request. */
  readonly statementTimeoutMs?: number;
}

export async function openPostgresStorage(options: PostgresStorageOptions): Promise<GatewayStorage> {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: 5000,
    statement_timeout: options.statementTimeoutMs ?? 10_000,
  });
  // An idle client that loses its connection emits here; the next query reconnects.
  pool.on('error', () => undefined);
  try {
    await migrate(pool);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
  const query = async (text: string, values: unknown[] = []): Promise<Row[]> =>
    (await pool.query(text, values)).rows as Row[];
  let closed = false;

  return {
    kind: 'postgres',
    async ping() {
      await query('SELECT 1');
    },
    async insertApiKey(record: ApiKeyRecord) {
      await query(
        `INSERT INTO api_keys (${API_KEY_COLUMNS.join(', ')}) VALUES (${placeholders(API_KEY_COLUMNS.length)})`,
        apiKeyValues(record),
      );
    },
    async getApiKey(id) {
      const rows = await query('SELECT * FROM api_keys WHERE id = $1', [id]);
      return rows.length === 0 ? null : apiKeyFromRow(rows[0]!);
    },
    async listApiKeys() {
      return (await query('SELECT * FROM api_keys ORDER BY created_at, id')).map(apiKeyFromRow);
    },
    async countApiKeys() {
      return Number((await query('SELECT COUNT(*) AS n FROM api_keys'))[0]!.n);
    },
    async revokeApiKey(id, at) {
      const result = await pool.query(
        'UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL',
        [at, id],
      );
      return (result.rowCount ?? 0) > 0;
    },
    async appendIssuance(records) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query('SELECT pg_advisory_xact_lock($1)', [ISSUANCE_LOCK]);
        const next = await client.query('SELECT COALESCE(MAX(seq), -1) + 1 AS next FROM issuance_log');
        let seq = Number((next.rows[0] as Row).next);
        const stored: IssuanceRecord[] = [];
        for (const record of records) {
          await client.query(
            `INSERT INTO issuance_log (${ISSUANCE_COLUMNS.join(', ')}) VALUES (${placeholders(ISSUANCE_COLUMNS.length)})`,
            issuanceValues(seq, record),
          );
          stored.push({ ...record, seq: seq++ });
        }
        await client.query('COMMIT');
        return stored;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    async listIssuance(options: ListIssuanceOptions) {
      const after = options.afterSeq ?? -1;
      const rows =
        options.apiKeyId === undefined
          ? await query('SELECT * FROM issuance_log WHERE seq > $1 ORDER BY seq LIMIT $2', [
              after,
              options.limit,
            ])
          : await query(
              'SELECT * FROM issuance_log WHERE seq > $1 AND api_key_id = $2 ORDER BY seq LIMIT $3',
              [after, options.apiKeyId, options.limit],
            );
      return rows.map(issuanceFromRow);
    },
    async getIssuance(id) {
      const rows = await query('SELECT * FROM issuance_log WHERE id = $1', [id]);
      return rows.length === 0 ? null : issuanceFromRow(rows[0]!);
    },
    async countIssuance() {
      return Number((await query('SELECT COUNT(*) AS n FROM issuance_log'))[0]!.n);
    },
    async sumTokensSince(apiKeyId, since) {
      const rows = await query(
        'SELECT COALESCE(SUM(num_tokens), 0) AS n FROM issuance_log WHERE api_key_id = $1 AND created_at >= $2',
        [apiKeyId, since],
      );
      return Number(rows[0]!.n);
    },
    async pruneIssuedTokens(before) {
      const result = await pool.query(
        'UPDATE issuance_log SET output_tokens = NULL WHERE created_at < $1 AND output_tokens IS NOT NULL',
        [before],
      );
      return result.rowCount ?? 0;
    },
    async migrations() {
      return (await query('SELECT version FROM schema_migrations ORDER BY version')).map((row) =>
        Number(row.version),
      );
    },
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}

async function migrate(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
      );
      const applied = new Set(
        (await client.query('SELECT version FROM schema_migrations')).rows.map((row: Row) =>
          Number(row.version),
        ),
      );
      for (const migration of MIGRATIONS) {
        if (applied.has(migration.version)) continue;
        await client.query('BEGIN');
        try {
          for (const statement of migration.postgres) await client.query(statement);
          await client.query(
            'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)',
            [migration.version, migration.name, new Date().toISOString()],
          );
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
}
