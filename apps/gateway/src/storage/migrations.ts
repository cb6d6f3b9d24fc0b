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
];
