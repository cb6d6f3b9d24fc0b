/** The PostgreSQL storage's refusal of a server that acknowledges commits it may lose. */
import { describe, expect, it } from 'vitest';
import { checkDurableServer } from './postgres.ts';

/** A stand-in for a connection: answers the settings query only. */
const server = (fsync: string) =>
  ({
    query: async (text: string) => {
      expect(text).toContain("current_setting('fsync')");
      return { rows: [{ fsync }] };
    },
  }) as unknown as Parameters<typeof checkDurableServer>[0];

describe('checkDurableServer', () => {
  it('accepts a server that syncs its WAL', async () => {
    await expect(checkDurableServer(server('on'))).resolves.toBeUndefined();
  });

  it('refuses one running with fsync = off, naming the setting', async () => {
    await expect(checkDurableServer(server('off'))).rejects.toThrow(/fsync = off.*set fsync = on/);
  });
});
