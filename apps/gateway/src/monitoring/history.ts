/**
 * The risk picture from stored history: monitor events (fingerprints) replayed into a campaign monitor,
 * their findings into a ledger, the policy actions into account statuses. The gateway loads it at start-up;
 * `tracemark monitor --issued` computes the same report from it.
 */
import type { CampaignMonitor, MonitorOptions } from '@tracemark/monitoring';
import type { GatewayStorage } from '../storage/types.ts';
import { type FingerprintedEvent, monitorFromEvents } from './replay.ts';
import {
  type AccountStatus,
  composeRiskReport,
  FindingsLedger,
  type RiskReport,
  STATUS_OF_ACTION,
} from './risk.ts';

/** Events read per page. */
const PAGE = 5000;
const DAY_MS = 86_400_000;

export interface MonitorHistory {
  readonly monitor: CampaignMonitor;
  readonly ledger: FindingsLedger;
  readonly statuses: Map<string, AccountStatus>;
  /** Events replayed. */
  readonly events: number;
  /**
   * For a replica that follows the others' events (`settledBefore` given): the highest id of an event
   * observed before `settledBefore`, and the ids above it that were replayed (see createMonitorEventTail).
   */
  readonly settledId: number;
  readonly unsettledIds: number[];
}

/** The longest of the monitor's windows (the package's default is 24 h). */
export function longestWindowMs(options: MonitorOptions): number {
  return Math.max(...(options.windows?.map((window) => window.ms) ?? [DAY_MS]));
}

/** Replays the events stored since `since` (ISO), in the order they were observed. */
export async function loadMonitorHistory(
  storage: GatewayStorage,
  options: {
    readonly since: string;
    readonly monitorOptions?: MonitorOptions;
    /** Milliseconds: events observed before it are settled (every one of lower id is committed). */
    readonly settledBefore?: number;
  },
): Promise<MonitorHistory> {
  const monitorOptions = options.monitorOptions ?? {};
  const statuses = new Map<string, AccountStatus>();
  for (const action of await storage.listRiskActions())
    statuses.set(action.account, STATUS_OF_ACTION[action.action]);
  const ledger = new FindingsLedger();
  const events: FingerprintedEvent[] = [];
  let afterId = 0;
  let settledId = 0;
  const ids: number[] = [];
  for (;;) {
    const page = await storage.listMonitorEvents({ since: options.since, afterId, limit: PAGE });
    for (const event of page) {
      const at = Date.parse(event.at);
      if (options.settledBefore !== undefined) {
        ids.push(event.id);
        if (at < options.settledBefore) settledId = Math.max(settledId, event.id);
      }
      events.push({
        account: event.account,
        at,
        fingerprint: event.fingerprint,
        promptTokens: event.promptTokens,
        completionTokens: event.completionTokens,
        subnet: event.subnet,
        userAgent: event.userAgent,
        keyCreatedAt: event.keyCreatedAt === null ? null : Date.parse(event.keyCreatedAt),
      });
      ledger.record(event.account, at, 'input', event.inputFindings, event.inputAction);
      ledger.record(event.account, at, 'output', event.outputFindings, event.outputAction);
    }
    if (page.length < PAGE) break;
    afterId = page[page.length - 1]!.id;
  }
  return {
    monitor: monitorFromEvents(monitorOptions, events),
    ledger,
    statuses,
    events: events.length,
    settledId,
    unsettledIds: ids.filter((id) => id > settledId),
  };
}

export interface StoredRiskReportOptions {
  /** ISO time of the first event replayed; default the longest window before `at`. */
  readonly since?: string;
  /** Milliseconds; default now. */
  readonly at?: number;
  readonly monitorOptions?: MonitorOptions;
}

/** The report GET /v1/admin/risk gives, computed from the stored events and actions. */
export async function riskReportFromStorage(
  storage: GatewayStorage,
  options: StoredRiskReportOptions = {},
): Promise<RiskReport & { readonly events: number }> {
  const at = options.at ?? Date.now();
  const monitorOptions = options.monitorOptions ?? {};
  const since = options.since ?? new Date(at - longestWindowMs(monitorOptions)).toISOString();
  const history = await loadMonitorHistory(storage, { since, monitorOptions });
  const report = composeRiskReport(
    history.monitor,
    history.ledger,
    at,
    (account) => history.statuses.get(account) ?? 'active',
  );
  return { ...report, events: history.events };
}
