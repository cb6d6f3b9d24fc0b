/**
 * The risk picture from stored history: monitor events (fingerprints) replayed into a campaign monitor,
 * their findings into a ledger, the policy actions into account statuses. The gateway loads it at start-up;
 * `tracemark monitor --issued` computes the same report from it.
 */
import {
  type CampaignMonitor,
  calibrateMmd,
  type MmdCalibration,
  type MonitorOptions,
} from '@tracemark/monitoring';
import type { GatewayStorage, StoredMonitorEvent } from '../storage/types.ts';
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

/** A stored event as the monitor replays it (times in milliseconds). */
export function fingerprintedEvent(event: StoredMonitorEvent): FingerprintedEvent {
  return {
    account: event.account,
    at: Date.parse(event.at),
    fingerprint: event.fingerprint,
    promptTokens: event.promptTokens,
    completionTokens: event.completionTokens,
    subnet: event.subnet,
    userAgent: event.userAgent,
    keyCreatedAt: event.keyCreatedAt === null ? null : Date.parse(event.keyCreatedAt),
  };
}

/** Calls `visit` with every monitor event stored since `since` (ISO), in the order they were observed. */
async function forEachMonitorEvent(
  storage: GatewayStorage,
  since: string,
  visit: (event: StoredMonitorEvent) => void,
): Promise<void> {
  let afterId = 0;
  for (;;) {
    const page = await storage.listMonitorEvents({ since, afterId, limit: PAGE });
    for (const event of page) visit(event);
    if (page.length < PAGE) return;
    afterId = page[page.length - 1]!.id;
  }
}

/** Replays the events stored since `since` (ISO), in the order they were observed. */
export async function loadMonitorHistory(
  storage: GatewayStorage,
  options: {
    readonly since: string;
    readonly monitorOptions?: MonitorOptions;
    /** Milliseconds: events observed before it are settled (every one of lower id is committed). */
    readonly settledBefore?: number;
    /** Also called with each stored event, in the same pass. */
    readonly onEvent?: (event: StoredMonitorEvent) => void;
  },
): Promise<MonitorHistory> {
  const monitorOptions = options.monitorOptions ?? {};
  const statuses = new Map<string, AccountStatus>();
  for (const action of await storage.listRiskActions())
    statuses.set(action.account, STATUS_OF_ACTION[action.action]);
  const ledger = new FindingsLedger();
  const events: FingerprintedEvent[] = [];
  let settledId = 0;
  const ids: number[] = [];
  await forEachMonitorEvent(storage, options.since, (event) => {
    options.onEvent?.(event);
    const at = Date.parse(event.at);
    if (options.settledBefore !== undefined) {
      ids.push(event.id);
      if (at < options.settledBefore) settledId = Math.max(settledId, event.id);
    }
    events.push(fingerprintedEvent(event));
    ledger.record(event.account, at, 'input', event.inputFindings, event.inputAction);
    ledger.record(event.account, at, 'output', event.outputFindings, event.outputAction);
  });
  return {
    monitor: monitorFromEvents(monitorOptions, events),
    ledger,
    statuses,
    events: events.length,
    settledId,
    unsettledIds: ids.filter((id) => id > settledId),
  };
}

/** The risk report of a replayed history at `at`, with the stored policy actions' statuses. */
function reportAt(history: MonitorHistory, at: number): RiskReport {
  return composeRiskReport(
    history.monitor,
    history.ledger,
    at,
    (account) => history.statuses.get(account) ?? 'active',
  );
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
  return { ...reportAt(history, at), events: history.events };
}

/** Windows one account contributes to a calibration at most. */
export const MAX_WINDOWS_PER_ACCOUNT = 20;

export interface StoredMmdCalibrationOptions {
  /** ISO time of the first event used. */
  readonly since: string;
  /** Milliseconds: the report that decides which accounts are left out is for this time; default now. */
  readonly at?: number;
  /** Target false-flag rate per window (the conformal level). */
  readonly targetFalseFlagRate: number;
  /** Prompts per window (default 32). */
  readonly windowSize?: number;
  readonly monitorOptions?: MonitorOptions;
}

export interface StoredMmdCalibration {
  readonly calibration: MmdCalibration;
  /** Accounts whose windows were used, and those left out (flagged, or under a policy action). */
  readonly accountsUsed: number;
  readonly accountsLeftOut: number;
  readonly windows: number;
}

/**
 * The MMD test calibrated on the provider's own stored traffic: each account's prompts (their stored
 * features, in order) cut into consecutive windows of `windowSize`, from every account the risk report at
 * `at` neither flags nor holds under a policy action; the split into reference, calibration and held-out
 * windows is calibrateMmd's; an account gives at most {@link MAX_WINDOWS_PER_ACCOUNT} windows. The traffic is taken as benign: an undetected campaign in it teaches the test
 * that campaign (the report stated, accounts left out, is the check on that).
 */
export async function mmdCalibrationFromStorage(
  storage: GatewayStorage,
  options: StoredMmdCalibrationOptions,
): Promise<StoredMmdCalibration> {
  const windowSize = options.windowSize ?? 32;
  // At most MAX_WINDOWS_PER_ACCOUNT windows an account (its first ones in the range): a busy batch job does
  // not make the reference its own, and memory stays bounded by the number of accounts. The events are
  // read once: for the risk report that decides who is left out, and for their features.
  const perAccount = MAX_WINDOWS_PER_ACCOUNT * windowSize;
  const prompts = new Map<string, Uint32Array[]>();
  const history = await loadMonitorHistory(storage, {
    since: options.since,
    ...(options.monitorOptions === undefined ? {} : { monitorOptions: options.monitorOptions }),
    onEvent: (event) => {
      let list = prompts.get(event.account);
      if (list === undefined) prompts.set(event.account, (list = []));
      if (list.length < perAccount) list.push(event.fingerprint.features);
    },
  });
  const report = reportAt(history, options.at ?? Date.now());
  const leftOut = new Set(
    report.accounts.filter((a) => a.flagged || a.status !== 'active').map((a) => a.account),
  );
  for (const account of leftOut) prompts.delete(account);
  const windows: Uint32Array[][] = [];
  let accountsUsed = 0;
  for (const list of prompts.values()) {
    if (list.length < windowSize) continue;
    accountsUsed++;
    for (let start = 0; start + windowSize <= list.length; start += windowSize)
      windows.push(list.slice(start, start + windowSize));
  }
  const calibration = calibrateMmd(windows, options.targetFalseFlagRate, { windowSize });
  return { calibration, accountsUsed, accountsLeftOut: leftOut.size, windows: windows.length };
}
