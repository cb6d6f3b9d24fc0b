/** A data directory as a gateway's first start leaves it, without loading a model for it. */
import { ensureDataDir, loadOrCreateServerSecret, openStorage } from '@tracemark/gateway';

/** Makes `dataDir` what `tracemark serve --data-dir DIR` makes of it: the server secret and the SQLite file. */
export async function gatewayDataDir(dataDir: string): Promise<string> {
  await ensureDataDir(dataDir);
  await loadOrCreateServerSecret(dataDir);
  await (await openStorage({ databaseUrl: null, dataDir })).close();
  return dataDir;
}
