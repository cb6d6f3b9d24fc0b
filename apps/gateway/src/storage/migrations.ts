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

/**
 * Monitoring (migration 3): one row per observed prompt, with the prompt's fingerprint (hashed features,
 * MinHash signature, skeleton hash), never its text; and the audit trail of the policy actions on accounts.
 */
const monitoringTables = (serial: string, bigint: string, blob: string) => [
  `CREATE TABLE monitor_events (
  id ${serial},
  at TEXT NOT NULL,
  account TEXT NOT NULL,
  api_key_id TEXT NOT NULL,
  completion_id TEXT,
  endpoint TEXT NOT NULL,
  subnet TEXT,
  user_agent TEXT,
  key_created_at TEXT,
  prompt_tokens ${bigint} NOT NULL,
  completion_tokens ${bigint} NOT NULL,
  features ${blob} NOT NULL,
  signature ${blob} NOT NULL,
  skeleton ${bigint} NOT NULL,
  skeleton_length INTEGER NOT NULL,
  reasoning INTEGER NOT NULL,
  enumeration INTEGER NOT NULL,
  input_action TEXT NOT NULL,
  input_findings TEXT NOT NULL,
  output_action TEXT NOT NULL,
  output_findings TEXT NOT NULL,
  review INTEGER NOT NULL
)`,
  'CREATE INDEX monitor_events_at ON monitor_events (at)',
  'CREATE INDEX monitor_events_account ON monitor_events (account, at)',
  `CREATE TABLE risk_actions (
  id ${serial},
  at TEXT NOT NULL,
  account TEXT NOT NULL,
  action TEXT NOT NULL,
  reason TEXT NOT NULL,
  admin_key_id TEXT NOT NULL
)`,
  'CREATE INDEX risk_actions_account ON risk_actions (account, id)',
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
  {
    version: 3,
    name: 'monitoring: monitor events (prompt fingerprints, never prompts) and risk actions',
    sqlite: monitoringTables('INTEGER PRIMARY KEY AUTOINCREMENT', 'INTEGER', 'BLOB'),
    postgres: monitoringTables('BIGSERIAL PRIMARY KEY', 'BIGINT', 'BYTEA'),
  },
];
