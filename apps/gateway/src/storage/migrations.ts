/**
 * Schema migrations, one list for both databases (the SQL differs only where the dialects do).
 * Timestamps are ISO 8601 UTC strings in both, so they sort the same way and compare as text.
 */

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sqlite: readonly string[];
  readonly postgres: readonly string[];
}

const apiKeysTable = (bigint: string) => `CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL,
  environment TEXT NOT NULL,
  name TEXT NOT NULL,
  account TEXT NOT NULL,
  scopes TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT,
  revoked_at TEXT,
  rate_limit_per_minute INTEGER,
  daily_token_quota ${bigint}
)`;

const issuanceTable = (bigint: string, blob: string) => `CREATE TABLE issuance_log (
  seq ${bigint} PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  completion_id TEXT NOT NULL,
  choice_index INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  api_key_id TEXT NOT NULL,
  account TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  model TEXT NOT NULL,
  backend TEXT NOT NULL,
  watermark_key_id TEXT NOT NULL,
  key_epoch TEXT,
  prompt_sha256 TEXT NOT NULL,
  output_sha256 TEXT NOT NULL,
  num_prompt_tokens INTEGER NOT NULL,
  num_tokens INTEGER NOT NULL,
  output_tokens ${blob},
  finish_reason TEXT NOT NULL
)`;

/** Provenance (migration 2): the Merkle log, checkpoints, the log's keys, epochs and the near-duplicate index. */
const provenanceTables = (bigint: string, blob: string, withoutRowid: string) => [
  'ALTER TABLE issuance_log ADD COLUMN normalized_sha256 TEXT',
  'CREATE INDEX issuance_log_output ON issuance_log (output_sha256)',
  'CREATE INDEX issuance_log_normalized ON issuance_log (normalized_sha256)',
  // Complete subtrees of the RFC 6962 tree over the issuance records: level 0 holds the leaves (idx = seq).
  `CREATE TABLE log_nodes (
  level INTEGER NOT NULL,
  idx ${bigint} NOT NULL,
  hash ${blob} NOT NULL,
  PRIMARY KEY (level, idx)
)${withoutRowid}`,
  `CREATE TABLE log_checkpoints (
  tree_size ${bigint} PRIMARY KEY,
  root_hash TEXT NOT NULL,
  note TEXT NOT NULL,
  created_at TEXT NOT NULL
)`,
  'CREATE TABLE log_keys (verifier_key TEXT PRIMARY KEY, created_at TEXT NOT NULL)',
  'CREATE TABLE watermark_epochs (watermark_key_id TEXT PRIMARY KEY, key_epoch TEXT, first_seen_at TEXT NOT NULL)',
  `CREATE TABLE issuance_minhash (seq ${bigint} PRIMARY KEY, signature ${blob} NOT NULL)`,
  `CREATE TABLE issuance_lsh (
  band INTEGER NOT NULL,
  bucket ${bigint} NOT NULL,
  seq ${bigint} NOT NULL,
  PRIMARY KEY (band, bucket, seq)
)${withoutRowid}`,
];

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'api keys and issuance log',
    sqlite: [
      apiKeysTable('INTEGER'),
      issuanceTable('INTEGER', 'BLOB'),
      'CREATE INDEX issuance_log_key_time ON issuance_log (api_key_id, created_at)',
      'CREATE INDEX issuance_log_time ON issuance_log (created_at)',
    ],
    postgres: [
      apiKeysTable('BIGINT'),
      issuanceTable('BIGINT', 'BYTEA'),
      'CREATE INDEX issuance_log_key_time ON issuance_log (api_key_id, created_at)',
      'CREATE INDEX issuance_log_time ON issuance_log (created_at)',
    ],
  },
  {
    version: 2,
    name: 'provenance: Merkle log, checkpoints, log keys, epochs, near-duplicate index',
    sqlite: provenanceTables('INTEGER', 'BLOB', ' WITHOUT ROWID'),
    postgres: provenanceTables('BIGINT', 'BYTEA', ''),
  },
];
