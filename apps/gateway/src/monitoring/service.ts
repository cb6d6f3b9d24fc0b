/**
 * The gateway's monitoring service: screens prompts and audits outputs under the configured policies (on the
 * request path, where a finding can redact or refuse), observes every completion in the campaign monitor off
 * the request path (a queue drained on setImmediate), stores monitor events (fingerprints, never prompts) in
 * batches, replays them at start-up so a restart keeps the risk picture, and enforces the policy actions
 * (throttle, review, suspend) and the rate limit and quota that linked accounts share.
 *
 * Replicas on one PostgreSQL database follow each other: every SYNC_MS each reads the monitor events the
 * others stored and observes them too (so every replica links the same accounts into the same clusters, and
 * the limits a cluster shares, kept in Redis, hold across replicas), and takes up the policy actions taken
 * on any replica. See docs/decisions/2026-12-04-replicas.md.
 */
import { performance } from 'node:perf_hooks';
import {
  type AccountDetail,
  applyPolicy,
  auditOutput,
  CampaignMonitor,
  clientSubnet,
  fingerprintPrompt,
  type MonitorOptions,
  type Policy,
} from '@tracemark/monitoring';
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import type { ApiKeyRecord } from '../api-keys.ts';
import type { ChoiceResult, PreparedCompletion, PreparedPrompt } from '../completion/types.ts';
import type { ContentPolicy, GatewayConfig } from '../config.ts';
import type { MonitoringMetrics } from '../plugins/metrics.ts';
import { formatChatPrompt } from '../prompt.ts';
import type {
  Endpoint,
  GatewayStorage,
  MonitorEventInput,
  PolicyAction,
  RecordedFinding,
  RiskActionKind,
  RiskActionRecord,
} from '../storage/types.ts';
import { monitoringError } from './errors.ts';
import { createMonitorEventTail, type MonitorEventTail, SETTLE_MS } from './event-tail.ts';
import { fingerprintedEvent, loadMonitorHistory, longestWindowMs as longestWindowOf } from './history.ts';
import { monitorFromEvents } from './replay.ts';
import {
  type AccountStatus,
  composeRiskReport,
  type FindingCount,
  FindingsLedger,
  type RiskReport,
  STATUS_OF_ACTION,
  scoreWindowOf,
} from './risk.ts';
import { screenPromptText } from './screen.ts';

/** Events written per storage call, and the flush period. */
const FLUSH_EVENTS = 500;
const FLUSH_MS = 1000;
/** How often clusters (the shared limits' keys), the gauges and the pruning are refreshed. */
const REFRESH_MS = 15_000;
/** How often a replica reads the other replicas' events and actions from the shared database. */
const SYNC_MS = 2000;
const MAX_USER_AGENT = 256;

export interface RiskAccountDetail {
  readonly detail: AccountDetail;
  readonly status: AccountStatus;
  /** Findings of the input screening and output audit in the scoring window, by rule. */
  readonly findings: FindingCount[];
  readonly actions: RiskActionRecord[];
}

export interface MonitoringServiceOptions {
  readonly config: GatewayConfig;
  readonly storage: GatewayStorage;
  readonly log: FastifyBaseLogger;
  /** Read when used: the metrics plugin is registered after the service. */
  readonly metrics: () => MonitoringMetrics;
  readonly monitorOptions?: MonitorOptions;
  /** Milliseconds; default Date.now. */
  readonly now?: () => number;
  /**
   * Follow the events and actions other gateway processes store in the same database; default: on
   * PostgreSQL (the database replicas share), off on SQLite (one process's own file).
   */
  readonly followReplicas?: boolean;
}

export interface MonitoringService {
  /** TRACEMARK_MONITOR: off, every method lets requests through and records nothing. */
  readonly enabled: boolean;
  readonly monitor: CampaignMonitor;
  /** Replays the stored scoring window and the actions' trail; starts the timers. */
  start(): Promise<void>;
  statusOf(account: string): AccountStatus;
  /** Refuses a suspended account's completions (403 TM_ERR_ACCOUNT_SUSPENDED). */
  checkAccount(key: ApiKeyRecord): void;
  /** The rate limiter's key: the cluster's, when the key's account is linked to others. */
  rateLimitKey(key: ApiKeyRecord): string;
  /** The limit of a key: lower for a throttled account. */
  rateLimitMax(key: ApiKeyRecord, base: number): number;
  /** The daily quota's key: the cluster's, when the key's account is linked to others, else the API key id. */
  quotaKey(key: ApiKeyRecord): string;
  /**
   * Screens the prompts (each message of a chat). Returns null when nothing changes, else the prompts with
   * redacted texts (re-encode the changed ones); throws 400 TM_ERR_INPUT_POLICY under `refuse`.
   */
  screenPrompts(
    request: FastifyRequest,
    endpoint: Endpoint,
    prompts: readonly PreparedPrompt[],
  ): Promise<{ readonly prompts: PreparedPrompt[]; readonly changed: readonly boolean[] } | null>;
  /**
   * Audits non-streamed outputs before they are recorded: `redact` replaces the spans (tokens re-encoded,
   * logprobs dropped), `refuse` withholds the completion (422 TM_ERR_OUTPUT_POLICY).
   */
  auditOutputs(
    request: FastifyRequest,
    prepared: PreparedCompletion,
    results: readonly ChoiceResult[],
    encode: (text: string) => ArrayLike<number>,
  ): ChoiceResult[];
  /** Queues the completion for the monitor; streams are audited here, flag only (their text was sent). */
  observeCompletion(
    request: FastifyRequest,
    prepared: PreparedCompletion,
    results: readonly ChoiceResult[],
    completionId: string,
  ): void;
  report(at?: number): RiskReport;
  accountDetail(account: string, at?: number): Promise<RiskAccountDetail | null>;
  act(account: string, action: RiskActionKind, reason: string, adminKeyId: string): Promise<RiskActionRecord>;
  /** Writes the queued events. */
  flush(): Promise<void>;
  /** Observes the events other replicas stored and takes up their actions (done every SYNC_MS). */
  sync(): Promise<void>;
  close(): Promise<void>;
}

interface RequestChecks {
  inputAction: PolicyAction;
  inputFindings: RecordedFinding[];
  outputAction: PolicyAction;
  outputFindings: RecordedFinding[];
}

interface PendingObservation {
  readonly at: number;
  readonly key: ApiKeyRecord;
  readonly completionId: string | null;
  readonly endpoint: Endpoint;
  readonly ip: string;
  readonly userAgent: string | null;
  readonly prompts: readonly {
    readonly text: string;
    readonly promptTokens: number;
    readonly completionTokens: number;
  }[];
  readonly checks: RequestChecks;
  /** Stream outputs, audited when drained (flag only). */
  readonly streamedTexts: readonly string[] | null;
  readonly review: boolean;
}

const recorded = (
  findings: readonly { rule: string; category: string; severity: RecordedFinding['severity'] }[],
) =>
  findings.map(
    (finding): RecordedFinding => ({
      rule: finding.rule,
      category: finding.category,
      severity: finding.severity,
    }),
  );

const ruleList = (findings: readonly RecordedFinding[]) =>
  [...new Set(findings.map((finding) => finding.rule))].join(', ');

const STRONGER: Readonly<Record<PolicyAction | 'allow', number>> = {
  none: 0,
  allow: 0,
  flag: 1,
  redact: 2,
  refuse: 3,
};

export function createMonitoringService(options: MonitoringServiceOptions): MonitoringService {
  const { config, storage, log } = options;
  const now = options.now ?? Date.now;
  const monitorOptions = options.monitorOptions ?? {};
  const enabled = config.monitor;
  let monitor = new CampaignMonitor(monitorOptions);
  const longestWindowMs = longestWindowOf(monitorOptions);
  let ledger = new FindingsLedger();
  const statuses = new Map<string, AccountStatus>();
  const checksOf = new WeakMap<FastifyRequest, RequestChecks>();
  const queue: PendingObservation[] = [];
  let draining = false;
  let unsaved: MonitorEventInput[] = [];
  let flushing: Promise<void> = Promise.resolve();
  const timers: NodeJS.Timeout[] = [];
  let closed = false;
  const followReplicas = enabled && (options.followReplicas ?? storage.kind === 'postgres');
  let tail: MonitorEventTail | null = null;
  /** This process's own events not yet read back, by signature (a replica observes each event once). */
  const ownUnread = new Map<string, number>();
  /** The id of the stored action behind each account's status, so an older one never overrides it. */
  const statusActionIds = new Map<string, number>();
  let syncing: Promise<void> | null = null;

  const checks = (request: FastifyRequest): RequestChecks => {
    let found = checksOf.get(request);
    if (found === undefined) {
      found = { inputAction: 'none', inputFindings: [], outputAction: 'none', outputFindings: [] };
      checksOf.set(request, found);
    }
    return found;
  };
  const statusOf = (account: string): AccountStatus => statuses.get(account) ?? 'active';
  const clusterOf = (account: string): string | null =>
    enabled && config.clusterLimits ? monitor.clusterOf(account) : null;

  const drain = () => {
    draining = false;
    const metrics = options.metrics();
    const drainStarted = performance.now();
    for (const pending of queue.splice(0)) {
      const { checks: found } = pending;
      if (pending.streamedTexts !== null) {
        const findings = pending.streamedTexts.flatMap((text) => recorded(auditOutput(text)));
        if (findings.length > 0) {
          found.outputAction = 'flag';
          found.outputFindings = findings;
          for (const finding of findings) metrics.outputFindings.inc({ rule: finding.rule, policy: 'flag' });
        }
      }
      const account = pending.key.account;
      ledger.record(account, pending.at, 'input', found.inputFindings, found.inputAction);
      ledger.record(account, pending.at, 'output', found.outputFindings, found.outputAction);
      const keyCreatedAt = Date.parse(pending.key.createdAt);
      for (const [index, prompt] of pending.prompts.entries()) {
        // A request's findings are stored with its first prompt's event, so a replay counts them once.
        const first = index === 0;
        const started = performance.now();
        const fingerprint = fingerprintPrompt(prompt.text);
        monitor.observe({
          account,
          at: pending.at,
          prompt: fingerprint,
          promptTokens: prompt.promptTokens,
          completionTokens: prompt.completionTokens,
          ip: pending.ip,
          ...(pending.userAgent === null ? {} : { userAgent: pending.userAgent }),
          ...(Number.isFinite(keyCreatedAt) ? { keyCreatedAt } : {}),
        });
        metrics.observeDuration.observe((performance.now() - started) / 1000);
        const event: MonitorEventInput = {
          at: new Date(pending.at).toISOString(),
          account,
          apiKeyId: pending.key.id,
          completionId: pending.completionId,
          endpoint: pending.endpoint,
          subnet: clientSubnet(pending.ip),
          userAgent: pending.userAgent,
          keyCreatedAt: Number.isFinite(keyCreatedAt) ? new Date(keyCreatedAt).toISOString() : null,
          promptTokens: prompt.promptTokens,
          completionTokens: prompt.completionTokens,
          fingerprint,
          inputAction: first ? found.inputAction : 'none',
          inputFindings: first ? found.inputFindings : [],
          outputAction: first ? found.outputAction : 'none',
          outputFindings: first ? found.outputFindings : [],
          review: pending.review,
        };
        unsaved.push(event);
        if (followReplicas) countSignature(eventSignature(event), 1);
      }
    }
    metrics.workDuration.observe({ stage: 'observe' }, (performance.now() - drainStarted) / 1000);
    if (unsaved.length >= FLUSH_EVENTS) void flush();
  };

  const screen: MonitoringService['screenPrompts'] = async (request, endpoint, prompts) => {
    const policy: ContentPolicy = config.inputPolicy;
    const found = checks(request);
    const metrics = options.metrics();
    let anyChange = false;
    const changed: boolean[] = [];
    const screened: PreparedPrompt[] = [];
    for (const prompt of prompts) {
      const units =
        prompt.messages === null ? [prompt.text] : prompt.messages.map((message) => message.content);
      let promptChanged = false;
      const redacted: string[] = [];
      for (const [index, text] of units.entries()) {
        const findings = await screenPromptText(text);
        if (findings.length === 0) {
          redacted.push(text);
          continue;
        }
        found.inputFindings.push(...recorded(findings));
        const decision = applyPolicy(text, findings, policy as Policy);
        for (const finding of findings) metrics.inputFindings.inc({ rule: finding.rule, policy });
        if (decision.action !== 'allow' && STRONGER[decision.action] > STRONGER[found.inputAction])
          found.inputAction = decision.action;
        if (decision.action === 'refuse') {
          observeRefused(request, endpoint, prompts);
          const param =
            prompt.messages === null
              ? endpoint === 'responses'
                ? 'input'
                : 'prompt'
              : endpoint === 'responses'
                ? 'input'
                : `messages[${index}]`;
          throw monitoringError(
            400,
            'TM_ERR_INPUT_POLICY',
            `the prompt was refused by this gateway's input policy: it matches the prompt-injection rule${findings.length === 1 ? '' : 's'} ${ruleList(recorded(findings))}`,
            param,
          );
        }
        if (decision.text !== text) promptChanged = true;
        redacted.push(decision.text!);
      }
      changed.push(promptChanged);
      if (!promptChanged) screened.push(prompt);
      else if (prompt.messages === null) screened.push({ ...prompt, text: redacted[0]! });
      else {
        const messages = prompt.messages.map((message, index) => ({
          ...message,
          content: redacted[index]!,
        }));
        screened.push({ ...prompt, messages, text: formatChatPrompt(messages) });
      }
      anyChange ||= promptChanged;
    }
    return anyChange ? { prompts: screened, changed } : null;
  };

  const audit: MonitoringService['auditOutputs'] = (request, prepared, results, encode) => {
    const key = request.apiKey!;
    const policy = outputPolicy(key.account);
    const found = checks(request);
    const metrics = options.metrics();
    return results.map((result): ChoiceResult => {
      const findings = auditOutput(result.text);
      if (findings.length === 0) return result;
      found.outputFindings.push(...recorded(findings));
      const decision = applyPolicy(result.text, findings, policy as Policy);
      for (const finding of findings) metrics.outputFindings.inc({ rule: finding.rule, policy });
      if (decision.action !== 'allow' && STRONGER[decision.action] > STRONGER[found.outputAction])
        found.outputAction = decision.action;
      if (decision.action === 'refuse') {
        enqueue(pendingOf(request, prepared, results, null, found, null));
        throw monitoringError(
          422,
          'TM_ERR_OUTPUT_POLICY',
          `the completion was withheld: its output contains ${ruleList(recorded(findings))} and this gateway's output policy refuses outputs with secrets or personal data`,
        );
      }
      if (decision.action !== 'redact') return result;
      // The redacted text is what is issued and recorded; the original tokens and their logprobs are not.
      return { ...result, text: decision.text!, tokens: Array.from(encode(decision.text!)), steps: [] };
    });
  };

  const enqueue = (pending: PendingObservation) => {
    queue.push(pending);
    if (!draining) {
      draining = true;
      setImmediate(drain);
    }
  };

  const flush = (): Promise<void> => {
    const batch = unsaved;
    unsaved = [];
    flushing = flushing.then(async () => {
      if (batch.length === 0) return;
      try {
        await storage.appendMonitorEvents(batch);
      } catch (error) {
        // Never stored, so never read back.
        if (followReplicas) for (const event of batch) countSignature(eventSignature(event), -1);
        options.metrics().persistFailures.inc(batch.length);
        log.warn({ err: error, events: batch.length }, 'monitor events could not be stored');
      }
    });
    return flushing;
  };

  const countSignature = (signature: string, delta: number) => {
    const count = (ownUnread.get(signature) ?? 0) + delta;
    if (count > 0) ownUnread.set(signature, count);
    else ownUnread.delete(signature);
  };

  const takeUpActions = (actions: readonly RiskActionRecord[]) => {
    for (const action of actions) {
      if (action.id <= (statusActionIds.get(action.account) ?? 0)) continue;
      statusActionIds.set(action.account, action.id);
      statuses.set(action.account, STATUS_OF_ACTION[action.action]);
    }
  };

  const syncOnce = async () => {
    if (tail === null) return;
    const events = await tail.read();
    const foreign = events.filter((event) => {
      const signature = eventSignature(event);
      if (!ownUnread.has(signature)) return true;
      countSignature(signature, -1);
      return false;
    });
    takeUpActions(await storage.listRiskActions());
    if (foreign.length === 0 || closed) return;
    // Synchronous from here: no observation lands in the monitor being replaced.
    monitor = monitorFromEvents(monitorOptions, foreign.map(fingerprintedEvent), monitor);
    for (const event of foreign) {
      const at = Date.parse(event.at);
      ledger.record(event.account, at, 'input', event.inputFindings, event.inputAction);
      ledger.record(event.account, at, 'output', event.outputFindings, event.outputAction);
    }
    refresh();
  };

  const sync = (): Promise<void> => {
    syncing ??= syncOnce().finally(() => {
      syncing = null;
    });
    return syncing;
  };

  const refresh = () => {
    const at = now();
    monitor.prune(at);
    ledger.prune(at - longestWindowMs);
    report(at);
  };

  const report = (at: number = now()): RiskReport => {
    const risk = composeRiskReport(monitor, ledger, at, statusOf);
    const metrics = options.metrics();
    metrics.flaggedAccounts.set(risk.accounts.filter((account) => account.flagged).length);
    metrics.flaggedClusters.set(risk.clusters.filter((cluster) => cluster.flagged).length);
    metrics.accounts.set(monitor.size);
    return risk;
  };

  // An account under review gets its outputs redacted at least (see docs/monitoring.md).
  const outputPolicy = (account: string): ContentPolicy =>
    statusOf(account) === 'review' && config.outputPolicy === 'flag' ? 'redact' : config.outputPolicy;

  const observeRefused = (
    request: FastifyRequest,
    endpoint: Endpoint,
    prompts: readonly PreparedPrompt[],
  ) => {
    enqueue({
      at: now(),
      key: request.apiKey!,
      completionId: null,
      endpoint,
      ip: request.ip,
      userAgent: userAgentOf(request),
      prompts: prompts.map((prompt) => ({
        text: prompt.text,
        promptTokens: prompt.tokens.length,
        completionTokens: 0,
      })),
      checks: checks(request),
      streamedTexts: null,
      review: statusOf(request.apiKey!.account) === 'review',
    });
  };

  return {
    enabled,
    get monitor() {
      return monitor;
    },

    async start() {
      if (!enabled) return;
      const startedAt = now();
      const history = await loadMonitorHistory(storage, {
        since: new Date(startedAt - longestWindowMs).toISOString(),
        monitorOptions,
        settledBefore: startedAt - SETTLE_MS,
      });
      monitor = history.monitor;
      ledger = history.ledger;
      for (const [account, status] of history.statuses) statuses.set(account, status);
      if (followReplicas) {
        tail = createMonitorEventTail(storage, {
          settledId: history.settledId,
          unsettledIds: history.unsettledIds,
          now,
        });
        takeUpActions(await storage.listRiskActions());
        timers.push(
          setInterval(() => {
            sync().catch((error: unknown) =>
              log.warn({ err: error }, 'monitor: the other replicas could not be followed'),
            );
          }, SYNC_MS).unref(),
        );
      }
      if (history.events > 0)
        log.info({ events: history.events }, 'monitor: the scoring window was replayed from storage');
      refresh();
      timers.push(setInterval(() => void flush(), FLUSH_MS).unref());
      timers.push(
        setInterval(() => {
          try {
            refresh();
          } catch (error) {
            log.warn({ err: error }, 'monitor refresh failed');
          }
        }, REFRESH_MS).unref(),
      );
    },

    statusOf,

    checkAccount(key) {
      if (!enabled || statusOf(key.account) !== 'suspended') return;
      throw monitoringError(
        403,
        'TM_ERR_ACCOUNT_SUSPENDED',
        `the account "${key.account}" is suspended pending a security review; contact the operator of this gateway`,
      );
    },

    rateLimitKey(key) {
      const cluster = clusterOf(key.account);
      return cluster === null ? `key:${key.id}` : `cluster:${cluster}`;
    },

    rateLimitMax(key, base) {
      return enabled && statusOf(key.account) === 'throttled'
        ? Math.min(base, config.throttledRateLimitPerMinute)
        : base;
    },

    quotaKey(key) {
      const cluster = clusterOf(key.account);
      return cluster === null ? key.id : `cluster:${cluster}`;
    },

    async screenPrompts(request, endpoint, prompts) {
      if (!enabled) return null;
      const started = performance.now();
      try {
        return await screen(request, endpoint, prompts);
      } finally {
        options.metrics().workDuration.observe({ stage: 'screen' }, (performance.now() - started) / 1000);
      }
    },

    auditOutputs(request, prepared, results, encode) {
      if (!enabled) return [...results];
      const started = performance.now();
      try {
        return audit(request, prepared, results, encode);
      } finally {
        options.metrics().workDuration.observe({ stage: 'audit' }, (performance.now() - started) / 1000);
      }
    },
    observeCompletion(request, prepared, results, completionId) {
      if (!enabled) return;
      const found = checks(request);
      enqueue(
        pendingOf(
          request,
          prepared,
          results,
          completionId,
          found,
          prepared.stream ? results.map((r) => r.text) : null,
        ),
      );
    },

    report,

    async accountDetail(account, at = now()) {
      const detail = monitor.accountDetail(account, at);
      if (detail === null) return null;
      const window = scoreWindowOf(monitor, detail.windows);
      return {
        detail,
        status: statusOf(account),
        findings: ledger.summary([account], window.from, window.to).counts,
        actions: await storage.listRiskActions({ account }),
      };
    },

    async act(account, action, reason, adminKeyId) {
      const stored = await storage.appendRiskAction({
        at: new Date(now()).toISOString(),
        account,
        action,
        reason,
        adminKeyId,
      });
      takeUpActions([stored]);
      options.metrics().actions.inc({ action });
      log.warn(
        { account, action, adminKeyId, actionId: stored.id },
        `risk action: ${action} account ${account}`,
      );
      return stored;
    },

    async flush() {
      if (queue.length > 0) drain();
      await flush();
    },

    sync,

    async close() {
      if (closed) return;
      closed = true;
      for (const timer of timers) clearInterval(timer);
      if (queue.length > 0) drain();
      await flush();
      await syncing?.catch(() => undefined);
    },
  };

  function pendingOf(
    request: FastifyRequest,
    prepared: PreparedCompletion,
    results: readonly ChoiceResult[],
    completionId: string | null,
    found: RequestChecks,
    streamedTexts: readonly string[] | null,
  ): PendingObservation {
    const key = request.apiKey!;
    return {
      at: now(),
      key,
      completionId,
      endpoint: prepared.endpoint,
      ip: request.ip,
      userAgent: userAgentOf(request),
      prompts: prepared.prompts.map((prompt) => ({
        text: prompt.text,
        promptTokens: prompt.tokens.length,
        completionTokens: results.reduce(
          (sum, result) => sum + (result.prompt === prompt ? result.tokens.length : 0),
          0,
        ),
      })),
      checks: found,
      streamedTexts,
      review: statusOf(key.account) === 'review',
    };
  }
}

/** What identifies an event once stored: a replica skips its own when it reads the shared table. */
function eventSignature(event: MonitorEventInput): string {
  return [
    event.at,
    event.apiKeyId,
    event.completionId ?? '',
    event.endpoint,
    event.promptTokens,
    event.completionTokens,
    event.fingerprint.skeleton,
    event.fingerprint.signature.join(','),
  ].join('|');
}

function userAgentOf(request: FastifyRequest): string | null {
  const header = request.headers['user-agent'];
  return typeof header === 'string' && header !== '' ? header.slice(0, MAX_USER_AGENT) : null;
}
