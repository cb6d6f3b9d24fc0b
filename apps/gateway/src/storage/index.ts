import { join } from 'node:path';
import { openPostgresStorage } from './postgres.ts';
import { openSqliteStorage } from './sqlite.ts';
import type { GatewayStorage } from './types.ts';

export { openPostgresStorage, type PostgresStorageOptions } from './postgres.ts';
export { openSqliteStorage } from './sqlite.ts';
export * from './types.ts';

export const SQLITE_FILE_NAME = 'gateway.sqlite';

/** PostgreSQL when a database URL is given, else the SQLite file under the data directory. Migrates. */
export async function openStorage(options: {
  readonly databaseUrl: string | null;
  readonly dataDir: string;
}): Promise<GatewayStorage> {
  if (options.databaseUrl !== null) return openPostgresStorage({ connectionString: options.databaseUrl });
  return openSqliteStorage(join(options.dataDir, SQLITE_FILE_NAME));
}
