/**
 * The monitor-event tail on a real PostgreSQL (a fresh schema; skipped visibly when unreachable outside CI):
 * an event whose insert commits after a higher id's is still read, once; settled ids are forgotten.
 */
import { fingerprintPrompt } from '@tracemark/monitoring';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgresStorage } from '../storage/postgres.ts';
import { MONITOR_EVENT_COLUMNS, monitorEventValues } from '../storage/rows.ts';
import type { GatewayStorage, MonitorEventInput } from '../storage/types.ts';
import { TEST_DATABASE_URL } from '../test-support/harness.ts';
import { freshPostgresSchema, postgresReachable } from '../test-support/services.ts';
import { createMonitorEventTail, SETTLE_MS } from './event-tail.ts';

const pgAvailable = await postgresReachable(TEST_DATABASE_URL);
if (!pgAvailable && process.env.CI)
  throw new Error('PostgreSQL is not reachable at TRACEMARK_TEST_DATABASE_URL (CI=true requires it)');

const T0 = Date.UTC(2026, 11, 4, 12);

function event(i: number, atMs: number): MonitorEventInput {
  return {
    at: new Date(atMs).toISOString(),
    account: `acct-${i % 2}`,
    apiKeyId: `ak_${String(i).padStart(16, '0')}`,
    completionId: `cmpl-${i}`,
    endpoint: 'completions',
    subnet: '127.0.0.0/24',
    userAgent: null,
    keyCreatedAt: null,
    promptTokens: 5,
    completionTokens: 7,
    fingerprint: fingerprintPrompt(`prompt number ${i}`),
    inputAction: 'none',
    inputFindings: [],
    outputAction: 'none',
    outputFindings: [],
    review: false,
  };
}

describe.skipIf(!pgAvailable)('monitor event tail (PostgreSQL)', () => {
  let storage: GatewayStorage;
  let url: string;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    const schema = await freshPostgresSchema(TEST_DATABASE_URL);
    url = schema.url;
    drop = schema.drop;
    storage = await openPostgresStorage({ connectionString: url });
  });
  afterAll(async () => {
    await storage?.close();
    await drop?.();
  });

  it('reads an event committed out of id order, exactly once, and forgets settled ids', async () => {
    let clock = T0;
    const tail = createMonitorEventTail(storage, { settledId: 0, unsettledIds: [], now: () => clock });
    await storage.appendMonitorEvents([event(1, T0)]);
    expect((await tail.read()).map((read) => read.completionId)).toEqual(['cmpl-1']);

    // A slow replica's insert takes id 2 but commits after another replica's id 3.
    const slow = new pg.Client({ connectionString: url });
    await slow.connect();
    try {
      await slow.query('BEGIN');
      await slow.query(
        `INSERT INTO monitor_events (${MONITOR_EVENT_COLUMNS.join(', ')}) VALUES (${MONITOR_EVENT_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})`,
        monitorEventValues(event(2, T0 + 1000)),
      );
      await storage.appendMonitorEvents([event(3, T0 + 2000)]);
      clock = T0 + 3000;
      expect((await tail.read()).map((read) => read.completionId)).toEqual(['cmpl-3']);
      await slow.query('COMMIT');
    } finally {
      await slow.end();
    }
    const late = await tail.read();
    expect(late.map((read) => read.completionId)).toEqual(['cmpl-2']);
    expect(late[0]!.id).toBeLessThan((await storage.listMonitorEvents({ limit: 10 }))[2]!.id);
    expect(await tail.read()).toEqual([]);

    // Once settled, nothing is returned again, and new events still are.
    clock = T0 + 3000 + SETTLE_MS;
    expect(await tail.read()).toEqual([]);
    await storage.appendMonitorEvents([event(4, clock)]);
    expect((await tail.read()).map((read) => read.completionId)).toEqual(['cmpl-4']);
    expect(await tail.read()).toEqual([]);
  });

  it('starts after the replay: settled ids below the floor and the replayed ids above it are not read', async () => {
    const all = await storage.listMonitorEvents({ limit: 10 });
    const tail = createMonitorEventTail(storage, {
      settledId: all[1]!.id,
      unsettledIds: all.slice(2).map((read) => read.id),
      now: () => T0,
    });
    expect(await tail.read()).toEqual([]);
    await storage.appendMonitorEvents([event(5, T0)]);
    expect((await tail.read()).map((read) => read.completionId)).toEqual(['cmpl-5']);
  });
});
