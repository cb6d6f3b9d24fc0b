/**
 * Reading the monitor events that other gateway replicas store in the shared database, each exactly once.
 *
 * Ids grow in insertion order, but concurrent inserts can commit out of order, so a reader that kept only
 * the highest id it read could skip an event committed late. An event observed SETTLE_MS before a read
 * began was inserted before any insert still running could have started (events are written within the
 * flush period of being observed, and no statement runs past the storage's statement timeout), so every
 * event of a lower id is committed and was visible to that read: the floor moves up to it, and the ids read
 * above the floor are remembered so that re-reading them costs nothing but the transfer.
 */
import type { GatewayStorage, StoredMonitorEvent } from '../storage/types.ts';

/** Well above the flush period (1 s) plus the PostgreSQL statement timeout (10 s). */
export const SETTLE_MS = 30_000;
const PAGE = 5000;

export interface MonitorEventTail {
  /** Events not returned before, in id order. */
  read(): Promise<StoredMonitorEvent[]>;
}

export interface MonitorEventTailOptions {
  /** Every event up to this id was already read (the start-up replay). */
  readonly settledId: number;
  /** Ids above `settledId` already read. */
  readonly unsettledIds: readonly number[];
  /** Milliseconds; default Date.now. */
  readonly now?: () => number;
}

export function createMonitorEventTail(
  storage: Pick<GatewayStorage, 'listMonitorEvents'>,
  options: MonitorEventTailOptions,
): MonitorEventTail {
  const now = options.now ?? Date.now;
  let floor = options.settledId;
  const seen = new Set(options.unsettledIds.filter((id) => id > floor));
  return {
    async read() {
      const settledBefore = now() - SETTLE_MS;
      const fresh: StoredMonitorEvent[] = [];
      let settled = floor;
      let afterId = floor;
      for (;;) {
        const page = await storage.listMonitorEvents({ afterId, limit: PAGE });
        for (const event of page) {
          if (Date.parse(event.at) < settledBefore) settled = Math.max(settled, event.id);
          if (seen.has(event.id)) continue;
          seen.add(event.id);
          fresh.push(event);
        }
        if (page.length < PAGE) break;
        afterId = page[page.length - 1]!.id;
      }
      floor = settled;
      for (const id of seen) if (id <= floor) seen.delete(id);
      return fresh;
    },
  };
}
