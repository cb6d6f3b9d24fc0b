/**
 * The risk report: the campaign monitor's report, with the findings of the input screening and the output
 * audit counted in each account's (and cluster's) score, and each account's policy status. Pure: the
 * gateway computes it live, `tracemark monitor` from stored events, and both give the same report.
 */
import {
  type AccountReport,
  type CampaignMonitor,
  type ClusterReport,
  type MonitorReason,
  reasonContext,
  type WindowFeatures,
} from '@tracemark/monitoring';
import type { PolicyAction, RecordedFinding, RiskActionKind } from '../storage/types.ts';

/** An account's standing after the policy actions taken on it. */
export type AccountStatus = 'active' | 'throttled' | 'review' | 'suspended';

export const STATUS_OF_ACTION: Readonly<Record<RiskActionKind, AccountStatus>> = {
  throttle: 'throttled',
  review: 'review',
  suspend: 'suspended',
  clear: 'active',
};

export interface RiskAccount extends AccountReport {
  readonly status: AccountStatus;
}

export interface RiskReport {
  /** The time the report is for (ms). */
  readonly at: number;
  readonly accounts: RiskAccount[];
  readonly clusters: ClusterReport[];
}

export type FindingKind = 'input' | 'output';

interface LedgerEntry {
  readonly at: number;
  readonly kind: FindingKind;
  readonly rule: string;
  readonly severity: RecordedFinding['severity'];
  readonly action: PolicyAction;
}

/** Weighted findings in the scoring window at which they alone flag an account (strength 0.5). */
export const FINDINGS_THRESHOLD = 3;
const SEVERITY_WEIGHT: Readonly<Record<RecordedFinding['severity'], number>> = {
  high: 1,
  medium: 0.5,
  low: 0.25,
};
/** Entries kept per account (the oldest go first). */
const MAX_ENTRIES_PER_ACCOUNT = 512;

export interface FindingCount {
  readonly rule: string;
  readonly kind: FindingKind;
  readonly count: number;
  /** How many of them were redacted or refused. */
  readonly redacted: number;
  readonly refused: number;
}

export interface FindingsSummary {
  readonly counts: FindingCount[];
  /** Σ severity weight (high 1, medium ½, low ¼). */
  readonly weight: number;
}

/** Per-account findings of the input screening and the output audit, within the longest window. */
export class FindingsLedger {
  private readonly entries = new Map<string, LedgerEntry[]>();

  record(
    account: string,
    at: number,
    kind: FindingKind,
    findings: readonly RecordedFinding[],
    action: PolicyAction,
  ): void {
    if (findings.length === 0) return;
    let list = this.entries.get(account);
    if (list === undefined) this.entries.set(account, (list = []));
    for (const finding of findings)
      list.push({ at, kind, rule: finding.rule, severity: finding.severity, action });
    if (list.length > MAX_ENTRIES_PER_ACCOUNT) list.splice(0, list.length - MAX_ENTRIES_PER_ACCOUNT);
  }

  has(account: string): boolean {
    return this.entries.has(account);
  }

  /** Drops entries at or before `before`. */
  prune(before: number): void {
    for (const [account, list] of this.entries) {
      const kept = list.filter((entry) => entry.at > before);
      if (kept.length === 0) this.entries.delete(account);
      else this.entries.set(account, kept);
    }
  }

  summary(accounts: readonly string[], from: number, to: number): FindingsSummary {
    const counts = new Map<
      string,
      { rule: string; kind: FindingKind; count: number; redacted: number; refused: number }
    >();
    let weight = 0;
    for (const account of accounts) {
      for (const entry of this.entries.get(account) ?? []) {
        if (entry.at <= from || entry.at > to) continue;
        const key = `${entry.kind}\0${entry.rule}`;
        let count = counts.get(key);
        if (count === undefined) {
          counts.set(
            key,
            (count = { rule: entry.rule, kind: entry.kind, count: 0, redacted: 0, refused: 0 }),
          );
        }
        count.count++;
        if (entry.action === 'redact') count.redacted++;
        if (entry.action === 'refuse') count.refused++;
        weight += SEVERITY_WEIGHT[entry.severity];
      }
    }
    const sorted = [...counts.values()].sort(
      (a, b) => b.count - a.count || (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : a.rule < b.rule ? -1 : 1),
    );
    return { counts: sorted, weight };
  }
}

/** r / (1 + r), as the monitor's detectors: 0.5 at the threshold. */
function strengthOf(weight: number): number {
  const ratio = weight / FINDINGS_THRESHOLD;
  return ratio / (1 + ratio);
}

const round = (value: number) => Math.round(value * 10_000) / 10_000;

/** The window the monitor scores: the named one, else the longest. */
export function scoreWindowOf(monitor: CampaignMonitor, windows: readonly WindowFeatures[]): WindowFeatures {
  const name = monitor.options.scoreWindow;
  const named = name === undefined ? undefined : windows.find((window) => window.window === name);
  return named ?? windows.reduce((a, b) => (b.to - b.from > a.to - a.from ? b : a));
}

function findingsReasons(
  summary: FindingsSummary,
  context: Omit<MonitorReason, 'code' | 'message'>,
): MonitorReason[] {
  const reasons: MonitorReason[] = [];
  for (const kind of ['input', 'output'] as const) {
    const counts = summary.counts.filter((count) => count.kind === kind);
    if (counts.length === 0) continue;
    const total = counts.reduce((sum, count) => sum + count.count, 0);
    const refused = counts.reduce((sum, count) => sum + count.refused, 0);
    const redacted = counts.reduce((sum, count) => sum + count.redacted, 0);
    const rules = counts.map((count) => `${count.rule} ${count.count}`).join(', ');
    reasons.push({
      code: kind === 'input' ? 'input-screening' : 'output-audit',
      message: `${total} ${kind === 'input' ? 'prompt-injection' : 'secret or personal-data'} finding${total === 1 ? '' : 's'} (${rules}; ${refused} refused, ${redacted} redacted)`,
      value: total,
      threshold: FINDINGS_THRESHOLD,
      strength: round(strengthOf(summary.weight)),
      ...context,
    });
  }
  return reasons;
}

const byStrength = (a: MonitorReason, b: MonitorReason) =>
  (b.strength ?? 0) - (a.strength ?? 0) || (a.code < b.code ? -1 : a.code > b.code ? 1 : 0);

/**
 * The monitor's report at `at`, with findings counted: an account's (or cluster's) score is the larger of
 * the monitor's and the findings' strength (weighted findings / FINDINGS_THRESHOLD, r / (1 + r)).
 */
export function composeRiskReport(
  monitor: CampaignMonitor,
  ledger: FindingsLedger,
  at: number,
  statusOf: (account: string) => AccountStatus = () => 'active',
): RiskReport {
  const report = monitor.report(at);
  const threshold = monitor.options.flagThreshold ?? 0.5;
  const clusters = report.clusters.map((cluster): ClusterReport => {
    const linked = cluster.reasons.find((reason) => reason.code === 'linked-accounts')!;
    const window = linked.window;
    const summary = ledger.summary(cluster.accounts, window.from, window.to);
    if (summary.counts.length === 0) return cluster;
    const {
      code: _code,
      message: _message,
      links: _links,
      value: _value,
      threshold: _threshold,
      strength: _strength,
      ...context
    } = linked;
    const score = Math.max(cluster.score, round(strengthOf(summary.weight)));
    return {
      ...cluster,
      score,
      flagged: cluster.flagged || score >= threshold,
      reasons: [...cluster.reasons, ...findingsReasons(summary, context)].sort(byStrength),
    };
  });
  const clusterById = new Map(clusters.map((cluster) => [cluster.id, cluster]));
  const accounts = report.accounts.map((account): RiskAccount => {
    let { score, flagged } = account;
    let reasons = account.reasons;
    const cluster = account.cluster === null ? undefined : clusterById.get(account.cluster);
    // A cluster flagged by its members' findings flags each member, as the monitor does for its own reasons.
    const newlyInFlaggedCluster =
      cluster?.flagged === true && !reasons.some((reason) => reason.code === 'in-flagged-cluster');
    if (newlyInFlaggedCluster) flagged = true;
    const detail =
      ledger.has(account.account) || newlyInFlaggedCluster
        ? monitor.accountDetail(account.account, at)
        : null;
    if (detail !== null) {
      const features = scoreWindowOf(monitor, detail.windows);
      const summary = ledger.summary([account.account], features.from, features.to);
      if (summary.counts.length > 0) {
        const context = reasonContext(account.account, features, detail.firstSeen, detail.lastSeen);
        score = Math.max(score, round(strengthOf(summary.weight)));
        flagged = flagged || score >= threshold;
        reasons = [...reasons, ...findingsReasons(summary, context)].sort(byStrength);
      }
      if (newlyInFlaggedCluster && cluster !== undefined) {
        const context = reasonContext(account.account, features, detail.firstSeen, detail.lastSeen);
        reasons = [
          ...reasons,
          {
            code: 'in-flagged-cluster',
            message: `linked to ${cluster.accounts.length - 1} other accounts in flagged cluster ${cluster.id}`,
            cluster: cluster.id,
            ...context,
          },
        ];
      }
    }
    return { ...account, score, flagged, reasons, status: statusOf(account.account) };
  });
  accounts.sort((a, b) => b.score - a.score || (a.account < b.account ? -1 : a.account > b.account ? 1 : 0));
  clusters.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { at, accounts, clusters };
}
