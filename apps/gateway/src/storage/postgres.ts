/**
 * PostgreSQL storage (pg): parameterized queries only; appends serialize on an advisory lock and commit
 * synchronously, so an issuance record is durable once appended. Appends are group-committed: those that
 * arrive while one is in flight share the next transaction and its COMMIT. Refuses a server running with
 * fsync = off.
 */
import {
  compactRange,
  lshBuckets,
  type NodeRef,
  planAppend,
  signatureFromBytes,
  signatureToBytes,
} from '@tracemark/provenance';
import pg from 'pg';
import type { ApiKeyRecord } from '../api-keys.ts';
import { leafHashOf } from '../provenance/leaf.ts';
import { createGroupCommit, DEFAULT_MAX_BATCH_RECORDS } from './group-commit.ts';
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
  MONITOR_EVENT_COLUMNS,
  monitorEventFromRow,
  monitorEventValues,
  type Row,
  riskActionFromRow,
} from './rows.ts';
import type {
  GatewayStorage,
  IssuanceInput,
  IssuanceRecord,
  ListIssuanceOptions,
  ListMonitorEventsOptions,
  StorageOpenOptions,
  WatermarkEpoch,
} from './types.ts';

/** Arbitrary constants naming the gateway's advisory locks. */
const MIGRATION_LOCK = 7_261_001;
const ISSUANCE_LOCK = 7_261_002;

/**
 * Taken first by every append: the issuance lock and, for that transaction only, a synchronous commit where
 * the session's default is `synchronous_commit = off` (COMMIT would return before the WAL is flushed). The
 * other levels all flush locally before COMMIT returns, and are kept so a stricter one is never weakened.
 */
const LOCK_ISSUANCE_DURABLY =
  "SELECT pg_advisory_xact_lock($1), CASE current_setting('synchronous_commit') WHEN 'off' THEN set_config('synchronous_commit', 'on', true) END";

const placeholders = (count: number, offset = 0) =>
  Array.from({ length: count }, (_, i) => `$${i + 1 + offset}`).join(', ');

/** Rows per INSERT of issuance records: 19 parameters each, well under the protocol's 65,535. */
const ISSUANCE_ROWS_PER_INSERT = 1000;
/** Rows per INSERT of monitor events: 21 parameters each. */
const MONITOR_EVENTS_PER_INSERT = 1000;

export interface PostgresStorageOptions extends StorageOpenOptions {
  readonly connectionString: string;
  readonly maxConnections?: number;
  /** Per-statement timeout, so a stuck database surfaces as an error rather than a hung request. */
  readonly statementTimeoutMs?: number;
}

type Queryable = Pick<pg.PoolClient, 'query'>;

async function readNodes(client: Queryable, refs: readonly NodeRef[]): Promise<Uint8Array[]> {
  if (refs.length === 0) return [];
  const { rows } = await client.query(
    'SELECT n.level, n.idx, n.hash FROM log_nodes n JOIN unnest($1::int[], $2::bigint[]) AS q(level, idx) ON n.level = q.level AND n.idx = q.idx',
    [refs.map((ref) => ref.level), refs.map((ref) => ref.index)],
  );
  const found = new Map((rows as Row[]).map((row) => [`${row.level}/${row.idx}`, bytesOf(row.hash)]));
  return refs.map((ref) => {
    const hash = found.get(`${ref.level}/${ref.index}`);
    if (hash === undefined) throw new Error(`the Merkle log has no node (${ref.level}, ${ref.index})`);
    return hash;
  });
}

/** Leaves and completed subtrees for records [seq, …), inside the caller's locked transaction. */
async function appendLeaves(
  client: Queryable,
  seq: number,
  records: readonly Omit<IssuanceInput, 'minhash'>[],
): Promise<void> {
  const size = Number(
    (await client.query('SELECT COALESCE(MAX(idx), -1) + 1 AS n FROM log_nodes WHERE level = 0')).rows[0].n,
  );
  if (size !== seq) throw new Error(`the Merkle log has ${size} leaves but the next record is ${seq}`);
  const refs = compactRange(seq);
  const hashes = await readNodes(client, refs);
  const plan = planAppend(
    seq,
    refs.map((ref, i) => ({ ...ref, hash: hashes[i]! })),
    records.map(leafHashOf),
  );
  const nodes = [
    ...plan.batch.leafHashes.map((hash, i) => ({ level: 0, index: seq + i, hash })),
    ...plan.batch.nodes,
  ];
  await client.query(
    'INSERT INTO log_nodes (level, idx, hash) SELECT * FROM unnest($1::int[], $2::bigint[], $3::bytea[])',
    [nodes.map((n) => n.level), nodes.map((n) => n.index), nodes.map((n) => Buffer.from(n.hash))],
  );
}

export async function openPostgresStorage(options: PostgresStorageOptions): Promise<GatewayStorage> {
  const readonly = options.readonly === true;
  const pool = new pg.Pool({
    // Read only: every session's transactions are READ ONLY, so the server itself refuses writes.
    connectionString: readonly ? readOnlyUrl(options.connectionString) : options.connectionString,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: 5000,
    statement_timeout: options.statementTimeoutMs ?? 10_000,
  });
  // An idle client that loses its connection emits here; the next query reconnects.
  pool.on('error', () => undefined);
  try {
    if (readonly) await checkMigrated(pool);
    else {
      await checkDurableServer(pool);
      await migrate(pool);
    }
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
  const query = async (text: string, values: unknown[] = []): Promise<Row[]> =>
    (await pool.query(text, values)).rows as Row[];
  /** Runs `body` in a transaction that holds the issuance lock, so appends serialize. */
  const locked = async <T>(body: (client: pg.PoolClient) => Promise<T>): Promise<T> => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(LOCK_ISSUANCE_DURABLY, [ISSUANCE_LOCK]);
      const result = await body(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  };
  // Records written before the Merkle log existed (migration 2) become its first leaves.
  try {
    if (!readonly)
      await locked(async (client) => {
        const size = Number(
          (await client.query('SELECT COALESCE(MAX(idx), -1) + 1 AS n FROM log_nodes WHERE level = 0'))
            .rows[0].n,
        );
        const missing = (
          await client.query('SELECT * FROM issuance_log WHERE seq >= $1 ORDER BY seq', [size])
        ).rows as Row[];
        if (missing.length > 0) await appendLeaves(client, size, missing.map(issuanceFromRow));
      });
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
  let closed = false;
  /** One transaction for a group of records: multi-row INSERTs, so its round trips do not grow with it. */
  const commit = (records: readonly IssuanceInput[]): Promise<IssuanceRecord[]> => {
    if (closed) return Promise.reject(new Error('storage is closed'));
    return locked(async (client) => {
      const next = await client.query('SELECT COALESCE(MAX(seq), -1) + 1 AS next FROM issuance_log');
      const first = Number((next.rows[0] as Row).next);
      const stored = records.map(
        ({ minhash, ...record }, i): IssuanceRecord => ({ ...record, seq: first + i }),
      );
      for (let from = 0; from < stored.length; from += ISSUANCE_ROWS_PER_INSERT) {
        const rows = stored.slice(from, from + ISSUANCE_ROWS_PER_INSERT);
        await client.query(
          `INSERT INTO issuance_log (${ISSUANCE_COLUMNS.join(', ')}) VALUES ${rows
            .map((_, i) => `(${placeholders(ISSUANCE_COLUMNS.length, i * ISSUANCE_COLUMNS.length)})`)
            .join(', ')}`,
          rows.flatMap((record) => issuanceValues(record.seq, record)),
        );
      }
      const minhashSeqs: number[] = [];
      const signatures: Buffer[] = [];
      const bands: number[] = [];
      const buckets: number[] = [];
      const bucketSeqs: number[] = [];
      records.forEach(({ minhash }, i) => {
        if (minhash === null) return;
        minhashSeqs.push(first + i);
        signatures.push(Buffer.from(signatureToBytes(minhash)));
        lshBuckets(minhash).forEach((bucket, band) => {
          bands.push(band);
          buckets.push(bucket);
          bucketSeqs.push(first + i);
        });
      });
      if (minhashSeqs.length > 0) {
        await client.query(
          'INSERT INTO issuance_minhash (seq, signature) SELECT * FROM unnest($1::bigint[], $2::bytea[])',
          [minhashSeqs, signatures],
        );
        await client.query(
          'INSERT INTO issuance_lsh (band, bucket, seq) SELECT * FROM unnest($1::int[], $2::bigint[], $3::bigint[]) ON CONFLICT DO NOTHING',
          [bands, buckets, bucketSeqs],
        );
      }
      await appendLeaves(client, first, stored);
      return stored;
    });
  };
  const group = createGroupCommit(commit, options.maxBatchRecords ?? DEFAULT_MAX_BATCH_RECORDS);

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
    appendIssuance: (records) => group.append(records),
    async getIssuanceBySeq(seq) {
      const rows = await query('SELECT * FROM issuance_log WHERE seq = $1', [seq]);
      return rows.length === 0 ? null : issuanceFromRow(rows[0]!);
    },
    async findIssuanceByOutputHash(outputSha256, normalizedSha256) {
      const rows = await query(
        'SELECT * FROM issuance_log WHERE output_sha256 = $1 OR normalized_sha256 = $2 ORDER BY seq LIMIT 1',
        [outputSha256, normalizedSha256],
      );
      return rows.length === 0 ? null : issuanceFromRow(rows[0]!);
    },
    async findNearDuplicateCandidates(buckets, limit) {
      if (buckets.length === 0) return [];
      const rows = await query(
        `SELECT c.seq, c.shared, m.signature FROM (
           SELECT l.seq, COUNT(*) AS shared FROM issuance_lsh l
           JOIN unnest($1::int[], $2::bigint[]) AS q(band, bucket) ON l.band = q.band AND l.bucket = q.bucket
           GROUP BY l.seq ORDER BY shared DESC, l.seq LIMIT $3
         ) c JOIN issuance_minhash m ON m.seq = c.seq ORDER BY c.shared DESC, c.seq`,
        [Array.from(buckets, (_, band) => band), Array.from(buckets), limit],
      );
      return rows.map((row) => ({
        seq: Number(row.seq),
        sharedBands: Number(row.shared),
        signature: signatureFromBytes(bytesOf(row.signature)),
      }));
    },
    async logSize() {
      const rows = await query('SELECT COALESCE(MAX(idx), -1) + 1 AS n FROM log_nodes WHERE level = 0');
      return Number(rows[0]!.n);
    },
    async logNodeHashes(refs) {
      return readNodes(pool, refs);
    },
    async saveCheckpoint(checkpoint) {
      await query(
        'INSERT INTO log_checkpoints (tree_size, root_hash, note, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tree_size) DO NOTHING',
        [checkpoint.treeSize, checkpoint.rootHash, checkpoint.note, checkpoint.createdAt],
      );
      const rows = await query('SELECT * FROM log_checkpoints WHERE tree_size = $1', [checkpoint.treeSize]);
      return checkpointFromRow(rows[0]!);
    },
    async getCheckpoint(treeSize) {
      const rows = await query('SELECT * FROM log_checkpoints WHERE tree_size = $1', [treeSize]);
      return rows.length === 0 ? null : checkpointFromRow(rows[0]!);
    },
    async latestCheckpoint() {
      const rows = await query('SELECT * FROM log_checkpoints ORDER BY tree_size DESC LIMIT 1');
      return rows.length === 0 ? null : checkpointFromRow(rows[0]!);
    },
    async logKeys() {
      const rows = await query('SELECT verifier_key FROM log_keys ORDER BY created_at, verifier_key');
      return rows.map((row) => String(row.verifier_key));
    },
    async addLogKey(verifierKey, at) {
      await query(
        'INSERT INTO log_keys (verifier_key, created_at) VALUES ($1, $2) ON CONFLICT (verifier_key) DO NOTHING',
        [verifierKey, at],
      );
    },
    async registerWatermarkEpoch(watermarkKeyId, keyEpoch, at) {
      await query(
        'INSERT INTO watermark_epochs (watermark_key_id, key_epoch, first_seen_at) VALUES ($1, $2, $3) ON CONFLICT (watermark_key_id) DO NOTHING',
        [watermarkKeyId, keyEpoch, at],
      );
    },
    async listWatermarkEpochs() {
      const rows = await query('SELECT * FROM watermark_epochs ORDER BY first_seen_at, watermark_key_id');
      return rows.map(
        (row): WatermarkEpoch => ({
          watermarkKeyId: String(row.watermark_key_id),
          keyEpoch: row.key_epoch === null ? null : String(row.key_epoch),
          firstSeenAt: String(row.first_seen_at),
        }),
      );
    },
    async listIssuance(options: ListIssuanceOptions) {
      const values: unknown[] = [options.afterSeq ?? -1];
      let where = 'seq > $1';
      if (options.apiKeyId !== undefined) {
        values.push(options.apiKeyId);
        where += ` AND api_key_id = $${values.length}`;
      }
      if (options.account !== undefined) {
        values.push(options.account);
        where += ` AND account = $${values.length}`;
      }
      values.push(options.limit);
      const rows = await query(
        `SELECT * FROM issuance_log WHERE ${where} ORDER BY seq LIMIT $${values.length}`,
        values,
      );
      return rows.map(issuanceFromRow);
    },
    async listIssuanceAccounts() {
      const rows = await query(
        'SELECT account, COUNT(*) AS n, COALESCE(SUM(num_tokens), 0) AS tokens FROM issuance_log GROUP BY account ORDER BY account',
      );
      return rows.map((row) => ({
        account: String(row.account),
        numOutputs: Number(row.n),
        numTokens: Number(row.tokens),
      }));
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
    async appendMonitorEvents(events) {
      if (closed) throw new Error('storage is closed');
      for (let from = 0; from < events.length; from += MONITOR_EVENTS_PER_INSERT) {
        const rows = events.slice(from, from + MONITOR_EVENTS_PER_INSERT);
        const width = MONITOR_EVENT_COLUMNS.length;
        await query(
          `INSERT INTO monitor_events (${MONITOR_EVENT_COLUMNS.join(', ')}) VALUES ${rows
            .map((_, i) => `(${placeholders(width, i * width)})`)
            .join(', ')}`,
          rows.flatMap(monitorEventValues),
        );
      }
    },
    async listMonitorEvents(options: ListMonitorEventsOptions) {
      const conditions = ['id > $1'];
      const values: unknown[] = [options.afterId ?? 0];
      if (options.since !== undefined) {
        values.push(options.since);
        conditions.push(`at >= $${values.length}`);
      }
      if (options.account !== undefined) {
        values.push(options.account);
        conditions.push(`account = $${values.length}`);
      }
      values.push(options.limit);
      const rows = await query(
        `SELECT * FROM monitor_events WHERE ${conditions.join(' AND ')} ORDER BY id LIMIT $${values.length}`,
        values,
      );
      return rows.map(monitorEventFromRow);
    },
    async appendRiskAction(action) {
      const rows = await query(
        'INSERT INTO risk_actions (at, account, action, reason, admin_key_id) VALUES ($1, $2, $3, $4, $5) RETURNING *',
        [action.at, action.account, action.action, action.reason, action.adminKeyId],
      );
      return riskActionFromRow(rows[0]!);
    },
    async listRiskActions(options = {}) {
      const rows =
        options.account === undefined
          ? await query('SELECT * FROM risk_actions ORDER BY id')
          : await query('SELECT * FROM risk_actions WHERE account = $1 ORDER BY id', [options.account]);
      return rows.map(riskActionFromRow);
    },
    async migrations() {
      return (await query('SELECT version FROM schema_migrations ORDER BY version')).map((row) =>
        Number(row.version),
      );
    },
    async close() {
      if (closed) return;
      // Appends already queued still commit; later ones fail.
      await group.idle();
      closed = true;
      await pool.end();
    },
  };
}

/** The URL with `-c default_transaction_read_only=on` added to its startup options. */
function readOnlyUrl(connectionString: string): string {
  const url = new URL(connectionString);
  const existing = url.searchParams.get('options');
  url.searchParams.set(
    'options',
    `${existing === null ? '' : `${existing} `}-c default_transaction_read_only=on`,
  );
  return url.toString();
}

/**
 * Refuses a server that would lose committed records on a crash. `fsync = off` is server-wide, so unlike
 * `synchronous_commit` no session can undo it.
 */
export async function checkDurableServer(client: Queryable): Promise<void> {
  const { rows } = await client.query("SELECT current_setting('fsync') AS fsync");
  if ((rows[0] as Row | undefined)?.fsync !== 'on') {
    throw new Error(
      'PostgreSQL runs with fsync = off, so a crash can lose committed issuance records; the gateway will not write its log there (set fsync = on)',
    );
  }
}

/** A read-only opening needs every migration applied (it cannot apply them). */
async function checkMigrated(pool: pg.Pool): Promise<void> {
  const exists = await pool.query("SELECT to_regclass('schema_migrations') AS t");
  const applied = new Set(
    (exists.rows[0] as Row).t === null
      ? []
      : (await pool.query('SELECT version FROM schema_migrations')).rows.map((row: Row) =>
          Number(row.version),
        ),
  );
  const missing = MIGRATIONS.filter((migration) => !applied.has(migration.version));
  if (missing.length > 0) {
    throw new Error(
      `not a migrated gateway database (missing migrations ${missing.map((m) => m.version).join(', ')}); it is opened read-only`,
    );
  }
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
