/**
 * Experiment `monitoring` (issue 14): how well the campaign monitor (@tracemark/monitoring) tells
 * extraction campaigns from benign tenants, with fixed seeds.
 *
 * 1. Benign days: per day-seed, a support bot (templated questions about one product), a writing
 *    assistant (varied prompts), a batch summariser (steady, high volume) and a classroom of 30 small
 *    accounts share one monitor for a simulated day (injected time); an account-day is falsely
 *    flagged when any hourly report of that day flags it.
 * 2. Attacks, one monitor per (attack, seed): a single account sweeping topics; the same campaign
 *    split round-robin over 5, 50 and 500 accounts (each under the gateway's default daily quota); a
 *    slow campaign over simulated days; reasoning elicitation (varied wording, human timing); attack
 *    queries mixed into writing-assistant traffic at 10/30/50%. Reports at a grid of attack-query
 *    counts give the detection rate and the queries to detect; the report at the campaign's end says
 *    whether a split campaign is linked into one cluster.
 * 3. Through the real gateway: a scenario set of both kinds, compressed into real time (the gateway's
 *    monitoring service takes the wall clock), sent as real completions with one API key per simulated
 *    account; GET /v1/admin/risk must equal a package-level CampaignMonitor fed the same events.
 *
 * Each monitor configuration is evaluated on the same events: the gateway's default (what buildApp
 * uses without `monitorOptions`: no MMD test, no volume limits) and the MMD test calibrated on benign
 * windows of seeds disjoint from the evaluation seeds. Rates carry exact (Clopper–Pearson) 95%
 * intervals. Every seed derives from a text label (labels.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createRandom, type RandomSource } from '@tracemark/core';
import { buildApp, prepareGateway, resolveConfig } from '@tracemark/gateway';
import {
  CampaignMonitor,
  calibrateMmd,
  fingerprintPrompt,
  type MmdCalibration,
  type MonitorEvent,
  type MonitorOptions,
  type MonitorReport,
  mergeTraffic,
  promptWindows,
  simulateTraffic,
} from '@tracemark/monitoring';
import { loadAverage } from '../environment.ts';
import { seedFor } from '../labels.ts';
import { type ExperimentContext, fixed, integer, reportHeader, rounded, writeResult } from '../report.ts';
import { clopperPearson, median } from '../statistics.ts';

const H = 3_600_000;
const DAY = 24 * H;

/** The goals of issue 14. */
export const GOALS = {
  /** Benign accounts flagged per simulated day, at most. */
  benignFlagRate: 0.003,
  /** Detection of each pure campaign, at least. */
  pureDetection: 0.95,
  /** Mean detection over the attacker fractions of the mixed traffic, at least. */
  mixedMeanDetection: 0.9,
} as const;

export interface MonitoringConfig {
  /** Benign day-seeds (each: one support bot, writing assistant, batch summariser, classroom). */
  readonly benignDays: number;
  /** Label index of the first benign day (days 0–3 were used to choose the default thresholds). */
  readonly benignFirstDay: number;
  readonly classroomSize: number;
  /** Seeds per attack (split campaigns over more accounts than `largeSplit` use `largeSplitSeeds`). */
  readonly attackSeeds: number;
  readonly largeSplit: number;
  readonly largeSplitSeeds: number;
  /** Requests of a campaign in one simulated day (single account and every split). */
  readonly campaignRequests: number;
  readonly splits: readonly number[];
  readonly slowDays: number;
  readonly slowRequestsPerDay: number;
  readonly reasoningRequests: number;
  readonly mixedRequests: number;
  readonly mixedFractions: readonly number[];
  /** MMD calibration: benign seeds (each gives three windows) and the target false-flag rate. */
  readonly calibrationSeeds: number;
  readonly mmdTarget: number;
  /** The same on windows of 64 prompts (the most the monitor keeps per account). */
  readonly calibrationSeeds64: number;
  readonly mmdTarget64: number;
  readonly gateway: GatewayScenarioConfig;
}

export interface GatewayScenarioConfig {
  /** Simulated hours of traffic, sent in `realSeconds` of wall time. */
  readonly simulatedHours: number;
  readonly realSeconds: number;
  readonly classroomSize: number;
  readonly campaignRequests: number;
  readonly splits: readonly number[];
  readonly mixedRequests: number;
  readonly mixedFraction: number;
  /** max_tokens is the simulated completion length, capped here to keep the run short. */
  readonly maxTokensCap: number;
  readonly concurrency: number;
}

export const FULL_CONFIG: MonitoringConfig = {
  benignDays: 60,
  benignFirstDay: 100,
  classroomSize: 30,
  attackSeeds: 40,
  largeSplit: 500,
  largeSplitSeeds: 20,
  campaignRequests: 2_000,
  splits: [5, 50, 500],
  slowDays: 7,
  slowRequestsPerDay: 100,
  reasoningRequests: 400,
  mixedRequests: 600,
  mixedFractions: [0.1, 0.3, 0.5],
  calibrationSeeds: 200,
  mmdTarget: 0.005,
  calibrationSeeds64: 400,
  mmdTarget64: 0.0025,
  gateway: {
    simulatedHours: 6,
    realSeconds: 90,
    classroomSize: 10,
    campaignRequests: 300,
    splits: [5, 50],
    mixedRequests: 150,
    mixedFraction: 0.5,
    maxTokensCap: 24,
    concurrency: 6,
  },
};

export const QUICK_CONFIG: MonitoringConfig = {
  benignDays: 1,
  benignFirstDay: 0,
  classroomSize: 10,
  attackSeeds: 1,
  largeSplit: 20,
  largeSplitSeeds: 1,
  campaignRequests: 120,
  splits: [5, 20],
  slowDays: 2,
  slowRequestsPerDay: 30,
  reasoningRequests: 80,
  mixedRequests: 100,
  mixedFractions: [0.1, 0.5],
  calibrationSeeds: 30,
  mmdTarget: 0.05,
  calibrationSeeds64: 30,
  mmdTarget64: 0.05,
  gateway: {
    simulatedHours: 2,
    realSeconds: 5,
    classroomSize: 3,
    campaignRequests: 30,
    splits: [4],
    mixedRequests: 0,
    mixedFraction: 0.5,
    maxTokensCap: 8,
    concurrency: 4,
  },
};

// ---------------------------------------------------------------------------------------------
// Traffic beyond simulateTraffic's profiles: reasoning elicitation and attack queries mixed into
// benign-looking traffic. Vocabularies are made up for the purpose, as in simulate.ts.

const REASONING_FRAMES: readonly ((question: string) => string)[] = [
  (q) => `Think step by step and show your reasoning. ${q}`,
  (q) => `${q} Walk me through your thought process before you give the final answer.`,
  (q) => `Let's think carefully about this one. ${q} Explain each step of your reasoning.`,
  (q) => `Solve this and show your work: ${q}`,
  (q) => `Reason through this carefully and only then answer. ${q}`,
  (q) => `${q} Use chain-of-thought and write out every intermediate step.`,
  (q) => `I need the full derivation, step-by-step, for the following. ${q}`,
  (q) => `${q} Please think it through out loud, checking each assumption as you go.`,
];

const SUBJECTS = (
  'a train a bakery a glacier a bridge a vaccine trial a chess opening a river delta a startup a satellite ' +
  'a compiler a forest fire a bank run a migrating flock a power grid a coral reef a spreadsheet a marathon ' +
  'a telescope a harbour a vineyard a data centre a courtroom a subway line a seed bank a wind farm'
).split(/ (?=a )/);
const QUANTITIES = 'cost weight duration energy use error rate probability speed capacity yield risk'.split(
  ' ',
);
const CONDITIONS = (
  'demand doubles|the budget is cut in half|it rains for a week|two parts fail at once|' +
  'the input is sorted|prices rise by ten percent|the team loses a member|the temperature drops sharply'
).split('|');

function pick<T>(random: RandomSource, items: readonly T[]): T {
  return items[Math.floor(random.nextFloat() * items.length)]!;
}

function exponential(random: RandomSource, meanMs: number): number {
  return -Math.log(1 - random.nextFloat()) * meanMs;
}

function reasoningQuestion(random: RandomSource): string {
  const subject = pick(random, SUBJECTS);
  const quantity = pick(random, QUANTITIES);
  const condition = pick(random, CONDITIONS);
  const n = 2 + Math.floor(random.nextFloat() * 97);
  switch (Math.floor(random.nextFloat() * 4)) {
    case 0:
      return `How would the ${quantity} of ${subject} change if ${condition}?`;
    case 1:
      return `If ${subject} handles ${n} units a day and ${condition}, what happens to its ${quantity}?`;
    case 2:
      return `Why might ${subject} fail when ${condition}, and how would you estimate the ${quantity}?`;
    default:
      return `Compare two plans for ${subject} with ${n} workers: which has the lower ${quantity} if ${condition}?`;
  }
}

/** One account eliciting chain-of-thought: varied wording, human (Poisson) timing, long answers. */
export function reasoningTraffic(
  seed: number,
  account: string,
  requests: number,
  durationMs: number,
): MonitorEvent[] {
  const random = createRandom(seed);
  const ip = `192.0.2.${1 + Math.floor(random.nextFloat() * 250)}`;
  const events: MonitorEvent[] = [];
  let at = exponential(random, durationMs / requests);
  for (let i = 0; i < requests; i++) {
    const prompt = pick(random, REASONING_FRAMES)(reasoningQuestion(random));
    events.push({
      account,
      at: Math.floor(at),
      prompt,
      promptTokens: 12 + Math.floor(prompt.length / 5),
      completionTokens: 800 + Math.floor(random.nextFloat() * 900),
      ip,
      userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/125.0 Safari/537.36',
      keyCreatedAt: -20 * DAY,
    });
    at += exponential(random, durationMs / requests);
  }
  return events;
}

/**
 * One account whose requests follow a writing assistant's (Poisson) schedule and browser metadata; a
 * share `fraction` of them are the queries of a topic-sweeping campaign. Returns the events and which
 * of them are attack queries.
 */
export function mixedTraffic(
  seed: number,
  account: string,
  fraction: number,
  requests: number,
  durationMs: number,
): { events: MonitorEvent[]; attack: boolean[] } {
  const random = createRandom(seed);
  // A writing assistant sends about 10 requests an hour: enough filler for every request, with margin.
  const filler = simulateTraffic('writing-assistant', {
    seed: seed + 1,
    durationMs: Math.ceil(requests * 0.15) * H,
  });
  const campaign = simulateTraffic('extraction-campaign', { seed: seed + 2, requests, durationMs });
  const ip = `192.0.2.${1 + Math.floor(random.nextFloat() * 250)}`;
  const events: MonitorEvent[] = [];
  const attack: boolean[] = [];
  let benign = 0;
  let queries = 0;
  let at = exponential(random, durationMs / requests);
  for (let i = 0; i < requests; i++) {
    const isAttack = random.nextFloat() < fraction;
    const source = isAttack ? campaign[queries++]! : filler[benign++ % filler.length]!;
    events.push({
      account,
      at: Math.floor(at),
      prompt: source.prompt,
      promptTokens: source.promptTokens,
      completionTokens: source.completionTokens ?? 0,
      ip,
      userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15',
      keyCreatedAt: -60 * DAY,
    });
    attack.push(isAttack);
    at += exponential(random, durationMs / requests);
  }
  return { events, attack };
}

// ---------------------------------------------------------------------------------------------
// Scenarios

export type TenantKind = 'support-bot' | 'writing-assistant' | 'batch-summariser' | 'classroom';
export const TENANTS: readonly TenantKind[] = [
  'support-bot',
  'writing-assistant',
  'batch-summariser',
  'classroom',
];

/** One day of the four benign tenants (their accounts are named `<tenant>…`). */
export function benignDay(day: number, classroomSize: number, start = 0): MonitorEvent[] {
  const seed = (tenant: TenantKind) => seedFor(`monitoring/benign/${day}/${tenant}`);
  return mergeTraffic(
    ...TENANTS.map((tenant) =>
      simulateTraffic(tenant, {
        seed: seed(tenant),
        prefix: tenant,
        start,
        durationMs: DAY,
        ...(tenant === 'classroom' ? { accounts: classroomSize } : {}),
      }),
    ),
  );
}

export function tenantOf(account: string): TenantKind {
  const tenant = TENANTS.find((name) => account.startsWith(name));
  if (tenant === undefined) throw new Error(`not a benign account: ${account}`);
  return tenant;
}

export interface AttackScenario {
  readonly attack: string;
  readonly events: MonitorEvent[];
  /** Per event: whether it is an attack query. */
  readonly attackQuery: boolean[];
  readonly accounts: readonly string[];
  /** Split campaigns: linking is measured. */
  readonly split: number | null;
}

/** The attacks of issue 14, by name; `seedIndex` selects the seeded instance. */
export function attackNames(config: MonitoringConfig): string[] {
  return [
    'sweep',
    ...config.splits.map((n) => `split-${n}`),
    'slow',
    'reasoning',
    ...config.mixedFractions.map((f) => `mixed-${Math.round(f * 100)}`),
  ];
}

export function attackScenario(attack: string, seedIndex: number, config: MonitoringConfig): AttackScenario {
  const seed = seedFor(`monitoring/attack/${attack}/${seedIndex}`);
  const all = (events: MonitorEvent[], split: number | null = null): AttackScenario => ({
    attack,
    events,
    attackQuery: events.map(() => true),
    accounts: [...new Set(events.map((event) => event.account))].sort(),
    split,
  });
  if (attack === 'sweep') {
    return all(
      simulateTraffic('extraction-campaign', {
        seed,
        prefix: 'attacker',
        requests: config.campaignRequests,
        durationMs: DAY,
      }),
    );
  }
  if (attack.startsWith('split-')) {
    const accounts = Number(attack.slice('split-'.length));
    return all(
      simulateTraffic('extraction-campaign', {
        seed,
        prefix: 'attacker',
        accounts,
        requests: config.campaignRequests,
        durationMs: DAY,
      }),
      accounts,
    );
  }
  if (attack === 'slow') {
    return all(
      simulateTraffic('extraction-campaign', {
        seed,
        prefix: 'attacker',
        requests: config.slowDays * config.slowRequestsPerDay,
        durationMs: config.slowDays * DAY,
      }),
    );
  }
  if (attack === 'reasoning') return all(reasoningTraffic(seed, 'attacker', config.reasoningRequests, DAY));
  if (attack.startsWith('mixed-')) {
    const fraction = Number(attack.slice('mixed-'.length)) / 100;
    const { events, attack: attackQuery } = mixedTraffic(
      seed,
      'attacker',
      fraction,
      config.mixedRequests,
      DAY,
    );
    return { attack, events, attackQuery, accounts: ['attacker'], split: null };
  }
  throw new RangeError(`attack: unknown attack ${attack}`);
}

/** Attack-query counts at which the monitor is asked for a report (about 25% apart). */
export const CHECKPOINT_QUERIES: readonly number[] = [
  5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 125, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1250, 1500,
  1750, 2000, 2500, 3000,
];

// ---------------------------------------------------------------------------------------------
// Evaluation of one scenario under each monitor configuration (runs in worker threads too)

export interface NamedOptions {
  readonly name: string;
  readonly options: MonitorOptions;
}

export interface BenignDayResult {
  readonly day: number;
  /** Per configuration: account → reason codes of its first flag (absent: never flagged). */
  readonly flagged: Record<string, Record<string, string[]>>;
  readonly accounts: Record<TenantKind, number>;
  /** Per configuration: clusters of benign accounts at the end of the day. */
  readonly clusters: Record<string, number>;
  readonly events: number;
}

export function evaluateBenignDay(
  day: number,
  classroomSize: number,
  configs: readonly NamedOptions[],
): BenignDayResult {
  const events = benignDay(day, classroomSize);
  const accounts = { 'support-bot': 0, 'writing-assistant': 0, 'batch-summariser': 0, classroom: 0 };
  for (const account of new Set(events.map((event) => event.account))) accounts[tenantOf(account)]++;
  const flagged: Record<string, Record<string, string[]>> = {};
  const clusters: Record<string, number> = {};
  for (const { name, options } of configs) {
    const monitor = new CampaignMonitor(options);
    const seen: Record<string, string[]> = {};
    const check = (at: number) => {
      for (const account of monitor.report(at).accounts) {
        if (account.flagged && seen[account.account] === undefined)
          seen[account.account] = account.reasons.map((reason) => reason.code);
      }
    };
    let next = H;
    for (const event of events) {
      while (event.at > next) {
        check(next);
        next += H;
      }
      monitor.observe(event);
    }
    for (; next <= DAY; next += H) check(next);
    flagged[name] = seen;
    clusters[name] = monitor.report(DAY).clusters.length;
  }
  return { day, flagged, accounts, clusters, events: events.length };
}

export interface AttackResult {
  readonly attack: string;
  readonly seed: number;
  readonly accounts: number;
  readonly attackQueries: number;
  readonly requests: number;
  readonly byConfig: Record<
    string,
    {
      /** Attack queries observed at the first report that flagged an attack account (null: never). */
      readonly queriesToDetect: number | null;
      /** All requests of the attack accounts (filler included) at that report. */
      readonly requestsToDetect: number | null;
      readonly reasons: string[];
      /** At the campaign's end: share of its accounts flagged. */
      readonly flaggedShareAtEnd: number;
      /** Split campaigns at the end: one cluster holding exactly the campaign's accounts. */
      readonly oneCluster: boolean | null;
      /** Largest share of the campaign's accounts in one cluster (a lone account counts as 1). */
      readonly largestClusterShare: number | null;
      readonly clusterFlagged: boolean | null;
    }
  >;
}

function firstFlag(report: MonitorReport, accounts: ReadonlySet<string>): string[] | null {
  const hit = report.accounts.find((account) => account.flagged && accounts.has(account.account));
  return hit === undefined ? null : hit.reasons.map((reason) => reason.code);
}

export function evaluateAttack(
  attack: string,
  seedIndex: number,
  config: MonitoringConfig,
  configs: readonly NamedOptions[],
): AttackResult {
  const scenario = attackScenario(attack, seedIndex, config);
  const accountSet = new Set(scenario.accounts);
  const totalQueries = scenario.attackQuery.filter(Boolean).length;
  const byConfig: AttackResult['byConfig'] = {};
  for (const { name, options } of configs) {
    const monitor = new CampaignMonitor(options);
    let queries = 0;
    let grid = 0;
    let detected: { queries: number; requests: number; reasons: string[] } | null = null;
    scenario.events.forEach((event, i) => {
      monitor.observe(event);
      if (scenario.attackQuery[i]) queries++;
      if (detected !== null || grid >= CHECKPOINT_QUERIES.length) return;
      if (queries === CHECKPOINT_QUERIES[grid] && scenario.attackQuery[i]) {
        grid++;
        const reasons = firstFlag(monitor.report(event.at), accountSet);
        if (reasons !== null) detected = { queries, requests: i + 1, reasons };
      }
    });
    const end = scenario.events[scenario.events.length - 1]!.at;
    const report = monitor.report(end);
    if (detected === null) {
      const reasons = firstFlag(report, accountSet);
      if (reasons !== null) detected = { queries, requests: scenario.events.length, reasons };
    }
    const attackAccounts = report.accounts.filter((account) => accountSet.has(account.account));
    let oneCluster: boolean | null = null;
    let largestClusterShare: number | null = null;
    let clusterFlagged: boolean | null = null;
    if (scenario.split !== null) {
      const sizes = new Map<string, number>();
      for (const account of attackAccounts) {
        if (account.cluster !== null) sizes.set(account.cluster, (sizes.get(account.cluster) ?? 0) + 1);
      }
      const largest = Math.max(1, ...sizes.values());
      largestClusterShare = largest / scenario.accounts.length;
      const cluster = report.clusters.find((candidate) => candidate.accounts.some((a) => accountSet.has(a)));
      oneCluster =
        sizes.size === 1 &&
        cluster !== undefined &&
        cluster.accounts.length === scenario.accounts.length &&
        cluster.accounts.every((account) => accountSet.has(account));
      clusterFlagged = cluster?.flagged ?? false;
    }
    const found = detected as { queries: number; requests: number; reasons: string[] } | null;
    byConfig[name] = {
      queriesToDetect: found?.queries ?? null,
      requestsToDetect: found?.requests ?? null,
      reasons: found?.reasons ?? [],
      flaggedShareAtEnd:
        attackAccounts.filter((account) => account.flagged).length / scenario.accounts.length,
      oneCluster,
      largestClusterShare,
      clusterFlagged,
    };
  }
  return {
    attack,
    seed: seedIndex,
    accounts: scenario.accounts.length,
    attackQueries: totalQueries,
    requests: scenario.events.length,
    byConfig,
  };
}

// ---------------------------------------------------------------------------------------------
// Jobs on worker threads (this module is also the worker's entry)

type Job =
  | { readonly kind: 'benign'; readonly day: number }
  | { readonly kind: 'attack'; readonly attack: string; readonly seed: number };
type JobResult = BenignDayResult | AttackResult;

interface WorkerInput {
  readonly monitoringWorker: true;
  readonly entry: string;
  readonly config: MonitoringConfig;
  readonly configs: readonly NamedOptions[];
}

function runJob(job: Job, config: MonitoringConfig, configs: readonly NamedOptions[]): JobResult {
  return job.kind === 'benign'
    ? evaluateBenignDay(job.day, config.classroomSize, configs)
    : evaluateAttack(job.attack, job.seed, config, configs);
}

if (!isMainThread && (workerData as WorkerInput | undefined)?.monitoringWorker === true) {
  const input = workerData as WorkerInput;
  parentPort!.on('message', (message: { index: number; job: Job }) => {
    parentPort!.postMessage({
      index: message.index,
      result: runJob(message.job, input.config, input.configs),
    });
  });
}

async function runJobs(
  jobs: readonly Job[],
  workers: number,
  config: MonitoringConfig,
  configs: readonly NamedOptions[],
  onProgress: (done: number) => void,
): Promise<JobResult[]> {
  const results: JobResult[] = new Array(jobs.length);
  if (workers <= 1 || jobs.length < 2) {
    jobs.forEach((job, i) => {
      results[i] = runJob(job, config, configs);
      onProgress(i + 1);
    });
    return results;
  }
  let next = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: Math.min(workers, jobs.length) }, () => {
      const input: WorkerInput = { monitoringWorker: true, entry: import.meta.url, config, configs };
      const worker = new Worker(new URL('../worker-bootstrap.mjs', import.meta.url), { workerData: input });
      return new Promise<void>((resolve, reject) => {
        const feed = () => {
          if (next >= jobs.length) {
            void worker.terminate().then(() => resolve());
            return;
          }
          const index = next++;
          worker.postMessage({ index, job: jobs[index] });
        };
        worker.on('message', (message: { index: number; result: JobResult }) => {
          results[message.index] = message.result;
          onProgress(++done);
          feed();
        });
        worker.on('error', reject);
        worker.on('exit', (code) => {
          if (code !== 0 && next < jobs.length)
            reject(new Error(`monitoring worker exited with code ${code}`));
        });
        feed();
      });
    }),
  );
  return results;
}

// ---------------------------------------------------------------------------------------------
// MMD calibration on benign seeds disjoint from the evaluation seeds

export function calibrationWindows(seeds: number, size = 32): string[][] {
  const windows: string[][] = [];
  for (let i = 0; i < seeds; i++) {
    const seed = (tenant: string) => seedFor(`monitoring/calibration/${i}/${tenant}`);
    // One window of `size` consecutive prompts per tenant and seed, from a random hour of its day.
    const offset = (tenant: string) => (seed(tenant) % 12) * H;
    const first = (events: MonitorEvent[], tenant: string) =>
      promptWindows(
        events.filter((event) => event.at >= offset(tenant)),
        size,
      )[0];
    for (const [tenant, hours] of [
      ['support-bot', 2],
      ['writing-assistant', 12],
      ['batch-summariser', 8],
    ] as const) {
      const events = simulateTraffic(tenant, {
        seed: seed(tenant),
        durationMs: 12 * H + ((hours * size) / 32) * H,
      });
      const window = first(events, tenant);
      if (window !== undefined) windows.push(window);
    }
  }
  return windows;
}

// ---------------------------------------------------------------------------------------------
// Through the real gateway

/** A simulated event's prompt text (simulated traffic always has one; a fingerprint alone cannot be sent). */
function promptText(event: MonitorEvent): string {
  if (typeof event.prompt !== 'string') throw new TypeError('a simulated event without prompt text');
  return event.prompt;
}

export interface GatewayGroup {
  readonly group: string;
  readonly kind: 'benign' | 'attack';
  readonly accounts: readonly string[];
  /** Split campaigns: all accounts should form one cluster. */
  readonly split: boolean;
}

interface PlannedRequest {
  readonly event: MonitorEvent;
  readonly group: string;
}

export function gatewayScenario(config: GatewayScenarioConfig): {
  requests: PlannedRequest[];
  groups: GatewayGroup[];
} {
  const duration = config.simulatedHours * H;
  const streams: { group: string; kind: 'benign' | 'attack'; split: boolean; events: MonitorEvent[] }[] = [];
  const seed = (label: string) => seedFor(`monitoring/gateway/${label}`);
  for (const tenant of TENANTS) {
    streams.push({
      group: tenant,
      kind: 'benign',
      split: false,
      events: simulateTraffic(tenant, {
        seed: seed(tenant),
        prefix: `gw-${tenant}`,
        durationMs: duration,
        ...(tenant === 'classroom' ? { accounts: config.classroomSize } : {}),
      }).filter((event) => event.at < duration),
    });
  }
  const campaign = (prefix: string, accounts: number) =>
    simulateTraffic('extraction-campaign', {
      seed: seed(prefix),
      prefix,
      accounts,
      requests: config.campaignRequests,
      durationMs: duration,
    });
  streams.push({ group: 'sweep', kind: 'attack', split: false, events: campaign('gw-sweep', 1) });
  for (const n of config.splits) {
    streams.push({ group: `split-${n}`, kind: 'attack', split: true, events: campaign(`gw-split${n}`, n) });
  }
  if (config.mixedRequests > 0) {
    const name = `mixed-${Math.round(config.mixedFraction * 100)}`;
    const mixed = mixedTraffic(
      seed(name),
      `gw-${name}`,
      config.mixedFraction,
      config.mixedRequests,
      duration,
    );
    streams.push({ group: name, kind: 'attack', split: false, events: mixed.events });
  }
  const groups = streams.map((stream) => ({
    group: stream.group,
    kind: stream.kind,
    split: stream.split,
    accounts: [...new Set(stream.events.map((event) => event.account))].sort(),
  }));
  const groupOf = new Map(
    groups.flatMap((group) => group.accounts.map((account) => [account, group.group] as const)),
  );
  const requests = mergeTraffic(...streams.map((stream) => stream.events)).map((event) => ({
    event,
    group: groupOf.get(event.account)!,
  }));
  return { requests, groups };
}

interface SentRequest {
  readonly planned: PlannedRequest;
  readonly status: number;
  readonly completionId: string | null;
  readonly promptTokens: number;
  readonly completionTokens: number;
}

export interface GatewayComparison {
  readonly requests: number;
  readonly completed: number;
  readonly refused: Record<string, number>;
  readonly storedEvents: number;
  readonly realSeconds: number;
  /** Stored fingerprints equal to fingerprintPrompt of the prompt sent. */
  readonly fingerprintsEqual: boolean;
  readonly accountsCompared: number;
  /** Accounts whose flag, score or cluster differ between GET /v1/admin/risk and the package monitor. */
  readonly accountMismatches: string[];
  readonly clustersCompared: number;
  readonly clusterMismatches: string[];
  /** Accounts whose gateway reasons include the input screening or output audit (not in the package monitor). */
  readonly findingsAccounts: string[];
  readonly groups: {
    readonly group: string;
    readonly kind: 'benign' | 'attack';
    readonly accounts: number;
    /** Through the gateway (compressed real time, gateway token counts, capped completions). */
    readonly gatewayFlagged: number;
    readonly gatewayOneCluster: boolean | null;
    /** Other groups with accounts in the same gateway cluster. */
    readonly gatewayClusterPeers: string[];
    /** The same simulated events at simulated times and token counts, package-level. */
    readonly simulatedFlagged: number;
    readonly simulatedOneCluster: boolean | null;
  }[];
}

async function runGatewayScenario(
  config: GatewayScenarioConfig,
  log: (message: string) => void,
): Promise<GatewayComparison> {
  const { requests, groups } = gatewayScenario(config);
  const dataDir = mkdtempSync(join(tmpdir(), 'tracemark-monitoring-'));
  // trustProxy: the client address comes from X-Forwarded-For, as behind a load balancer, so each
  // simulated account keeps its own network (loopback would put every account in 127.0.0.0/24).
  const prepared = await prepareGateway(
    resolveConfig({ port: 0, host: '127.0.0.1', dataDir, trustProxy: true }, { ...process.env }),
  );
  try {
    const app = await buildApp(prepared.services, { logger: false });
    try {
      await app.listen({ port: 0, host: '127.0.0.1' });
      const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
      const adminKey = prepared.firstStart.devApiKey!;
      const call = async (method: string, path: string, key: string, body?: unknown, headers = {}) => {
        const response = await fetch(`${url}${path}`, {
          method,
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        return { status: response.status, json: (await response.json()) as Record<string, unknown> };
      };
      // One API key per simulated account, created through the admin API.
      const keys = new Map<string, { key: string; createdAt: number }>();
      for (const account of groups.flatMap((group) => group.accounts)) {
        const created = await call('POST', '/v1/admin/keys', adminKey, {
          scopes: ['generate'],
          account,
          name: account,
          rateLimitPerMinute: 100_000,
          dailyTokenQuota: 1_000_000_000,
        });
        if (created.status !== 201) throw new Error(`creating the key of ${account}: ${created.status}`);
        const info = created.json.info as { createdAt: string };
        keys.set(account, { key: created.json.key as string, createdAt: Date.parse(info.createdAt) });
      }
      log(`monitoring: gateway: ${keys.size} API keys, sending ${integer(requests.length)} completions`);
      const speedup = (config.simulatedHours * H) / (config.realSeconds * 1000);
      const started = performance.now();
      const sent: SentRequest[] = new Array(requests.length);
      let next = 0;
      const worker = async () => {
        for (;;) {
          const i = next++;
          if (i >= requests.length) return;
          const planned = requests[i]!;
          const due = planned.event.at / speedup - (performance.now() - started);
          if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
          const response = await call(
            'POST',
            '/v1/completions',
            keys.get(planned.event.account)!.key,
            {
              model: 'tracemark-ngram',
              prompt: planned.event.prompt,
              max_tokens: Math.max(1, Math.min(config.maxTokensCap, planned.event.completionTokens ?? 1)),
              temperature: 1,
              seed: i,
            },
            { 'x-forwarded-for': planned.event.ip!, 'user-agent': planned.event.userAgent! },
          );
          const usage = response.json.usage as
            | { prompt_tokens: number; completion_tokens: number }
            | undefined;
          sent[i] = {
            planned,
            status: response.status,
            completionId: response.status === 200 ? (response.json.id as string) : null,
            promptTokens: usage?.prompt_tokens ?? 0,
            completionTokens: usage?.completion_tokens ?? 0,
          };
        }
      };
      await Promise.all(Array.from({ length: config.concurrency }, worker));
      const realSeconds = (performance.now() - started) / 1000;
      const risk = (await call('GET', '/v1/admin/risk', adminKey)).json as unknown as MonitorReport & {
        at: number;
      };

      // The events the gateway observed, rebuilt client-side: what was sent (prompt, address, user
      // agent), the usage it answered, the key's creation time, and the time it stored per completion.
      const stored = await prepared.services.storage.listMonitorEvents({ limit: 1_000_000 });
      const byCompletion = new Map(
        sent.filter((s) => s.completionId !== null).map((s) => [s.completionId!, s]),
      );
      const events: MonitorEvent[] = [];
      let fingerprintsEqual = stored.length === byCompletion.size;
      for (const event of stored) {
        const request = event.completionId === null ? undefined : byCompletion.get(event.completionId);
        if (request === undefined) {
          fingerprintsEqual = false;
          continue;
        }
        const print = fingerprintPrompt(promptText(request.planned.event));
        const storedPrint = event.fingerprint as unknown as {
          skeleton: number;
          features: Record<string, number>;
        };
        if (
          storedPrint.skeleton !== print.skeleton ||
          Object.values(storedPrint.features).join() !== Array.from(print.features).join()
        ) {
          fingerprintsEqual = false;
        }
        events.push({
          account: request.planned.event.account,
          at: Date.parse(event.at),
          prompt: request.planned.event.prompt,
          promptTokens: request.promptTokens,
          completionTokens: request.completionTokens,
          ip: request.planned.event.ip!,
          userAgent: request.planned.event.userAgent!,
          keyCreatedAt: keys.get(request.planned.event.account)!.createdAt,
        });
      }
      const monitor = new CampaignMonitor({});
      for (const event of events) monitor.observe(event);
      const local = monitor.report(risk.at);

      const localAccounts = new Map(local.accounts.map((account) => [account.account, account]));
      const findingsAccounts: string[] = [];
      const accountMismatches: string[] = [];
      for (const account of risk.accounts) {
        const mine = localAccounts.get(account.account);
        const findings = account.reasons.some(
          (r) => r.code === 'input-screening' || r.code === 'output-audit',
        );
        if (findings) findingsAccounts.push(account.account);
        if (
          mine === undefined ||
          (!findings && (mine.flagged !== account.flagged || mine.score !== account.score)) ||
          mine.cluster !== account.cluster
        ) {
          accountMismatches.push(account.account);
        }
      }
      if (local.accounts.length !== risk.accounts.length) accountMismatches.push('(account count)');
      const localClusters = new Map(local.clusters.map((cluster) => [cluster.id, cluster]));
      const clusterMismatches: string[] = [];
      for (const cluster of risk.clusters) {
        const mine = localClusters.get(cluster.id);
        const findings = cluster.reasons.some(
          (r) => r.code === 'input-screening' || r.code === 'output-audit',
        );
        if (
          mine === undefined ||
          mine.accounts.join() !== cluster.accounts.join() ||
          (!findings && (mine.flagged !== cluster.flagged || mine.score !== cluster.score))
        ) {
          clusterMismatches.push(cluster.id);
        }
      }
      if (local.clusters.length !== risk.clusters.length) clusterMismatches.push('(cluster count)');

      // The same scenario at simulated times and token counts, package-level.
      const simulated = new CampaignMonitor({});
      for (const { event } of requests) simulated.observe(event);
      const simulatedReport = simulated.report(config.simulatedHours * H);
      // A group is linked when all its accounts are in one cluster (other campaigns of the same template
      // and client may join it: they are the same actor's).
      const oneCluster = (report: MonitorReport, accounts: readonly string[]) => {
        const cluster = report.clusters.find((candidate) => candidate.accounts.includes(accounts[0]!));
        return cluster !== undefined && accounts.every((account) => cluster.accounts.includes(account));
      };
      const clusterPeers = (report: MonitorReport, accounts: readonly string[]) => {
        const cluster = report.clusters.find((candidate) => candidate.accounts.includes(accounts[0]!));
        if (cluster === undefined) return [];
        return groups
          .filter((group) => !group.accounts.includes(accounts[0]!))
          .filter((group) => group.accounts.some((account) => cluster.accounts.includes(account)))
          .map((group) => group.group);
      };
      const flaggedIn = (report: MonitorReport, accounts: readonly string[]) =>
        report.accounts.filter((account) => account.flagged && accounts.includes(account.account)).length;
      const refused: Record<string, number> = {};
      for (const request of sent) {
        if (request.status !== 200)
          refused[String(request.status)] = (refused[String(request.status)] ?? 0) + 1;
      }
      return {
        requests: requests.length,
        completed: byCompletion.size,
        refused,
        storedEvents: stored.length,
        realSeconds,
        fingerprintsEqual,
        accountsCompared: risk.accounts.length,
        accountMismatches,
        clustersCompared: risk.clusters.length,
        clusterMismatches,
        findingsAccounts,
        groups: groups.map((group) => ({
          group: group.group,
          kind: group.kind,
          accounts: group.accounts.length,
          gatewayFlagged: flaggedIn(risk, group.accounts),
          gatewayOneCluster: group.split ? oneCluster(risk, group.accounts) : null,
          gatewayClusterPeers: clusterPeers(risk, group.accounts),
          simulatedFlagged: flaggedIn(simulatedReport, group.accounts),
          simulatedOneCluster: group.split ? oneCluster(simulatedReport, group.accounts) : null,
        })),
      };
    } finally {
      await app.close();
    }
  } finally {
    await prepared.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Summary

export interface Rate {
  readonly k: number;
  readonly n: number;
  readonly rate: number;
  readonly lower: number;
  readonly upper: number;
}

export function rate(k: number, n: number): Rate {
  const [lower, upper] = n === 0 ? [0, 1] : clopperPearson(k, n);
  return { k, n, rate: n === 0 ? Number.NaN : k / n, lower, upper };
}

export interface AttackSummary {
  readonly attack: string;
  readonly seeds: number;
  readonly accounts: number;
  readonly attackQueries: number;
  readonly byConfig: Record<
    string,
    {
      readonly detection: Rate;
      readonly queriesToDetect: { median: number; q25: number; q75: number; max: number } | null;
      readonly requestsToDetectMedian: number | null;
      readonly reasons: Record<string, number>;
      readonly linked: Rate | null;
      readonly meanLargestClusterShare: number | null;
      readonly clusterFlagged: Rate | null;
    }
  >;
}

export interface CalibrationSummary {
  readonly windows: number;
  readonly windowSize: number;
  readonly threshold: number;
  readonly targetFalseFlagRate: number;
  readonly achievedFalseFlagRate: number;
  readonly calibrationWindows: number;
  readonly heldOutWindows: number;
}

function calibrationSummary(windows: number, mmd: MmdCalibration): CalibrationSummary {
  return {
    windows,
    windowSize: mmd.windowSize,
    threshold: mmd.threshold,
    targetFalseFlagRate: mmd.targetFalseFlagRate,
    achievedFalseFlagRate: mmd.achievedFalseFlagRate,
    calibrationWindows: mmd.calibrationWindows,
    heldOutWindows: mmd.heldOutWindows,
  };
}

export interface MonitoringSummary {
  readonly experiment: 'monitoring';
  readonly quick: boolean;
  readonly config: MonitoringConfig;
  readonly configurations: { readonly name: string; readonly description: string }[];
  readonly calibration: CalibrationSummary & { readonly seedsDisjoint: boolean };
  readonly calibration64: CalibrationSummary;
  readonly benign: {
    readonly days: number;
    readonly events: number;
    readonly byConfig: Record<
      string,
      {
        readonly all: Rate;
        readonly tenants: Record<TenantKind, Rate>;
        readonly reasons: Record<string, number>;
        readonly benignClusters: number;
      }
    >;
  };
  readonly attacks: AttackSummary[];
  readonly goals: Record<
    string,
    {
      readonly benignFlagRate: { value: number; upper: number; met: boolean };
      readonly pureDetection: { worst: string; value: number; met: boolean };
      readonly mixedMeanDetection: { value: number; met: boolean };
      readonly splitsOneCluster: { value: number; met: boolean };
    }
  >;
  readonly gateway: GatewayComparison;
  readonly seconds: number;
  readonly loadAtStart: number;
  readonly loadAtEnd: number;
}

function quantile(sorted: readonly number[], q: number): number {
  const position = (sorted.length - 1) * q;
  const low = Math.floor(position);
  const high = Math.ceil(position);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (position - low);
}

export const DEFAULT_CONFIGURATION = 'gateway-default';
export const MMD_CONFIGURATION = 'calibrated-mmd';
export const MMD64_CONFIGURATION = 'calibrated-mmd-64';
export const EARLIER_CONFIGURATION = 'earlier-defaults';
/**
 * The package's first thresholds, which this experiment replaced (the defaults are now inter-arrival CV
 * 0.2 and template share 0.75, chosen on probe runs of benign days 0–3; the full run evaluates days from
 * 100): the support bot's inter-arrival CV (≈ 0.5) dips to 0.32–0.34 in windows of 30–60 requests, while
 * a scheduled campaign's is ≈ 0.1; classroom students who reuse one phrasing half of the time were
 * linked, and their pooled traffic flagged, while a campaign uses its template always.
 */
export const EARLIER_OPTIONS: MonitorOptions = {
  detectors: { maxInterArrivalCv: 0.35 },
  linking: { minTemplateShare: 0.5 },
};

export async function runMonitoring(context: ExperimentContext): Promise<MonitoringSummary> {
  const started = performance.now();
  const loadAtStart = loadAverage();
  const config = context.quick ? QUICK_CONFIG : FULL_CONFIG;

  // MMD calibration on benign seeds disjoint from the evaluation seeds (different labels; checked).
  const windows = calibrationWindows(config.calibrationSeeds);
  const mmd: MmdCalibration = calibrateMmd(windows, config.mmdTarget, {
    seed: seedFor('monitoring/calibration/shuffle') % 2 ** 32,
  });
  const windows64 = calibrationWindows(config.calibrationSeeds64, 64);
  const mmd64: MmdCalibration = calibrateMmd(windows64, config.mmdTarget64, {
    windowSize: 64,
    seed: seedFor('monitoring/calibration/shuffle') % 2 ** 32,
  });
  const calibrationSeeds = new Set<number>();
  for (let i = 0; i < Math.max(config.calibrationSeeds, config.calibrationSeeds64); i++) {
    for (const tenant of ['support-bot', 'writing-assistant', 'batch-summariser'])
      calibrationSeeds.add(seedFor(`monitoring/calibration/${i}/${tenant}`));
  }
  let seedsDisjoint = true;
  for (let day = config.benignFirstDay; day < config.benignFirstDay + config.benignDays; day++) {
    for (const tenant of TENANTS)
      if (calibrationSeeds.has(seedFor(`monitoring/benign/${day}/${tenant}`))) seedsDisjoint = false;
  }
  context.log(
    `monitoring: MMD calibrated on ${windows.length} benign windows: threshold ${fixed(mmd.threshold, 4)}, held-out false-flag rate ${fixed(mmd.achievedFalseFlagRate, 4)}`,
  );
  const configs: NamedOptions[] = [
    { name: DEFAULT_CONFIGURATION, options: {} },
    { name: MMD_CONFIGURATION, options: { mmd } },
    { name: MMD64_CONFIGURATION, options: { mmd: mmd64 } },
    { name: EARLIER_CONFIGURATION, options: EARLIER_OPTIONS },
  ];

  const attacks = attackNames(config);
  const jobs: Job[] = [
    ...Array.from(
      { length: config.benignDays },
      (_, i): Job => ({ kind: 'benign', day: config.benignFirstDay + i }),
    ),
    ...attacks.flatMap((attack) => {
      const large = attack.startsWith('split-') && Number(attack.slice(6)) >= config.largeSplit;
      const seeds = large ? config.largeSplitSeeds : config.attackSeeds;
      return Array.from({ length: seeds }, (_, seed): Job => ({ kind: 'attack', attack, seed }));
    }),
  ];
  context.log(
    `monitoring: ${jobs.length} scenarios (${config.benignDays} benign days) on ${context.workers} threads`,
  );
  const results = await runJobs(jobs, context.workers, config, configs, (done) => {
    if (done % 50 === 0) context.log(`monitoring: ${done}/${jobs.length} scenarios`);
  });
  const benignResults = results.filter((result): result is BenignDayResult => 'flagged' in result);
  const attackResults = results.filter((result): result is AttackResult => 'attack' in result);

  const benign: MonitoringSummary['benign'] = {
    days: benignResults.length,
    events: benignResults.reduce((sum, day) => sum + day.events, 0),
    byConfig: Object.fromEntries(
      configs.map(({ name }) => {
        const counts = Object.fromEntries(TENANTS.map((tenant) => [tenant, { k: 0, n: 0 }])) as Record<
          TenantKind,
          { k: number; n: number }
        >;
        const reasons: Record<string, number> = {};
        let benignClusters = 0;
        for (const day of benignResults) {
          for (const tenant of TENANTS) counts[tenant].n += day.accounts[tenant];
          for (const [account, codes] of Object.entries(day.flagged[name]!)) {
            counts[tenantOf(account)].k++;
            for (const code of codes) reasons[code] = (reasons[code] ?? 0) + 1;
          }
          benignClusters += day.clusters[name]!;
        }
        const k = TENANTS.reduce((sum, tenant) => sum + counts[tenant].k, 0);
        const n = TENANTS.reduce((sum, tenant) => sum + counts[tenant].n, 0);
        return [
          name,
          {
            all: rate(k, n),
            tenants: Object.fromEntries(
              TENANTS.map((tenant) => [tenant, rate(counts[tenant].k, counts[tenant].n)]),
            ) as Record<TenantKind, Rate>,
            reasons,
            benignClusters,
          },
        ];
      }),
    ),
  };

  const attackSummaries: AttackSummary[] = attacks.map((attack) => {
    const runs = attackResults.filter((result) => result.attack === attack);
    return {
      attack,
      seeds: runs.length,
      accounts: runs[0]!.accounts,
      attackQueries: median(runs.map((run) => run.attackQueries)),
      byConfig: Object.fromEntries(
        configs.map(({ name }) => {
          const outcomes = runs.map((run) => run.byConfig[name]!);
          const detected = outcomes.filter((outcome) => outcome.queriesToDetect !== null);
          const queries = detected.map((outcome) => outcome.queriesToDetect!).sort((a, b) => a - b);
          const reasons: Record<string, number> = {};
          for (const outcome of detected)
            for (const code of outcome.reasons) reasons[code] = (reasons[code] ?? 0) + 1;
          const split = outcomes[0]!.oneCluster !== null;
          return [
            name,
            {
              detection: rate(detected.length, outcomes.length),
              queriesToDetect:
                queries.length === 0
                  ? null
                  : {
                      median: quantile(queries, 0.5),
                      q25: quantile(queries, 0.25),
                      q75: quantile(queries, 0.75),
                      max: queries[queries.length - 1]!,
                    },
              requestsToDetectMedian:
                detected.length === 0 ? null : median(detected.map((outcome) => outcome.requestsToDetect!)),
              reasons,
              linked: split ? rate(outcomes.filter((o) => o.oneCluster).length, outcomes.length) : null,
              meanLargestClusterShare: split
                ? outcomes.reduce((sum, o) => sum + o.largestClusterShare!, 0) / outcomes.length
                : null,
              clusterFlagged: split
                ? rate(outcomes.filter((o) => o.clusterFlagged).length, outcomes.length)
                : null,
            },
          ];
        }),
      ),
    };
  });

  const goals: MonitoringSummary['goals'] = Object.fromEntries(
    configs.map(({ name }) => {
      const all = benign.byConfig[name]!.all;
      const pure = attackSummaries.filter((a) => !a.attack.startsWith('mixed-'));
      const worst = pure.reduce((a, b) =>
        b.byConfig[name]!.detection.rate < a.byConfig[name]!.detection.rate ? b : a,
      );
      const mixed = attackSummaries.filter((a) => a.attack.startsWith('mixed-'));
      const mixedMean = mixed.reduce((sum, a) => sum + a.byConfig[name]!.detection.rate, 0) / mixed.length;
      const splits = attackSummaries.filter((a) => a.attack.startsWith('split-'));
      const linkedWorst = Math.min(...splits.map((a) => a.byConfig[name]!.linked!.rate));
      return [
        name,
        {
          benignFlagRate: { value: all.rate, upper: all.upper, met: all.rate <= GOALS.benignFlagRate },
          pureDetection: {
            worst: worst.attack,
            value: worst.byConfig[name]!.detection.rate,
            met: worst.byConfig[name]!.detection.rate >= GOALS.pureDetection,
          },
          mixedMeanDetection: { value: mixedMean, met: mixedMean >= GOALS.mixedMeanDetection },
          splitsOneCluster: { value: linkedWorst, met: linkedWorst === 1 },
        },
      ];
    }),
  );

  context.log('monitoring: gateway scenario');
  const gateway = await runGatewayScenario(config.gateway, context.log);

  const summary: MonitoringSummary = {
    experiment: 'monitoring',
    quick: context.quick,
    config,
    configurations: [
      {
        name: DEFAULT_CONFIGURATION,
        description:
          'new CampaignMonitor({}): what the gateway builds when GatewayServices.monitorOptions is absent (no MMD test, no volume limits; supporting detectors flag three together)',
      },
      {
        name: MMD_CONFIGURATION,
        description: `{ mmd }: the package defaults plus the MMD test calibrated on ${windows.length} benign windows (target false-flag rate ${config.mmdTarget} per window); not the gateway's default`,
      },
      {
        name: MMD64_CONFIGURATION,
        description: `{ mmd }: the same on windows of 64 prompts (the most the monitor keeps per account), calibrated on ${windows64.length} benign windows (target ${config.mmdTarget64} per window): what \`tracemark monitor --calibrate-mmd FILE --window 64 --target ${config.mmdTarget64}\` and \`serve --monitor-mmd FILE\` set up from a provider's own traffic`,
      },
      {
        name: EARLIER_CONFIGURATION,
        description:
          '{ detectors: { maxInterArrivalCv: 0.35 }, linking: { minTemplateShare: 0.5 } }: the thresholds the package had before this experiment (the defaults now are 0.2 and 0.75, chosen on probe days 0–3, which the full run excludes); no MMD test',
      },
    ],
    calibration: { ...calibrationSummary(windows.length, mmd), seedsDisjoint },
    calibration64: calibrationSummary(windows64.length, mmd64),
    benign,
    attacks: attackSummaries,
    goals,
    gateway,
    seconds: (performance.now() - started) / 1000,
    loadAtStart,
    loadAtEnd: loadAverage(),
  };
  await writeResult(context.outDir, 'monitoring.json', `${JSON.stringify(rounded(summary), null, 2)}\n`);
  await writeResult(context.outDir, 'monitoring.md', renderMonitoring(summary, context));
  return summary;
}

// ---------------------------------------------------------------------------------------------
// Report

const percent = (value: number, digits = 1) =>
  Number.isFinite(value) ? `${(value * 100).toFixed(digits)}%` : '—';
const interval = (r: Rate) =>
  `${r.k}/${r.n} = ${percent(r.rate, 2)} [${percent(r.lower, 2)}, ${percent(r.upper, 2)}]`;
const reasonList = (reasons: Record<string, number>) =>
  Object.entries(reasons)
    .sort((a, b) => b[1] - a[1])
    .map(([code, count]) => `${code} ${count}`)
    .join(', ') || '—';
const yes = (met: boolean) => (met ? '**met**' : '**not met**');

/** monitoring.md from the summary (so also from monitoring.json after a run). */
export function renderMonitoring(summary: MonitoringSummary, context: ExperimentContext): string {
  const { config } = summary;
  const names = summary.configurations.map((c) => c.name);
  const markdown = reportHeader(
    { ...context, name: 'monitoring' as never },
    'Monitoring: extraction campaigns against benign tenants',
    'every scenario seed is seedFor(`monitoring/benign/<day>/<tenant>`), seedFor(`monitoring/attack/<attack>/<i>`) or seedFor(`monitoring/gateway/<group>`); MMD calibration seedFor(`monitoring/calibration/<i>/<tenant>`) (disjoint from the evaluation seeds: ' +
      `${summary.calibration.seedsDisjoint ? 'checked' : 'NOT disjoint'})`,
    performance.now(),
    summary.loadAtStart,
    { seconds: summary.seconds, loadAtEnd: summary.loadAtEnd },
  );
  const gw = summary.gateway;
  markdown.paragraph(
    `Issue 14. Package-level scenarios inject time (every \`observe\` and \`report\` takes the event's own \`at\`); a scenario set also runs through a real gateway on loopback (below). Benign: ${integer(summary.benign.days)} simulated days, each with one support bot, one writing assistant, one batch summariser and a classroom of ${config.classroomSize} accounts in one monitor (${integer(summary.benign.events)} requests in all); an account-day is flagged when any of the 24 hourly reports of its day flags it. Attacks: ${config.attackSeeds} seeds each (split over ${config.largeSplit}+ accounts: ${config.largeSplitSeeds}), one monitor per seed, without benign background (the benign days measure false flags; the gateway scenario mixes both). A campaign sends ${integer(config.campaignRequests)} topic-sweeping requests in a day (simulateTraffic 'extraction-campaign': one template, machine timing, 700–1,200 completion tokens per request), from one account or round-robin over 5, 50 or 500 (with 1,000 completion tokens a request the single account passes the gateway's default daily quota of 1M tokens; each split account stays under it). Slow: ${config.slowRequestsPerDay} requests a day for ${config.slowDays} days from one account. Reasoning: ${config.reasoningRequests} chain-of-thought requests in a day, varied wording, Poisson timing, 800–1,700 completion tokens. Mixed: ${config.mixedRequests} requests in a day with a writing assistant's timing, user agent and prompts, a share f of them campaign queries. The monitor is asked for a report when the attack's query count reaches ${CHECKPOINT_QUERIES.slice(0, 8).join(', ')}, … (about 25% apart) and at its end: queries-to-detect is the attack-query count at the first report that flags any attack account (an upper bound within that grid).`,
  );
  markdown.paragraph('Configurations, evaluated on the same events:');
  markdown.bullets(summary.configurations.map((c) => `\`${c.name}\`: ${c.description}`));
  for (const c of [summary.calibration, summary.calibration64]) {
    markdown.paragraph(
      `MMD calibration: ${c.windows} benign windows of ${c.windowSize} prompts (support bot, writing assistant, batch summariser; the classroom's accounts never reach ${c.windowSize} prompts), threshold ${fixed(c.threshold, 4)} at target ${c.targetFalseFlagRate} from ${c.calibrationWindows} calibration windows; held-out false-flag rate ${fixed(c.achievedFalseFlagRate, 4)} on ${c.heldOutWindows} windows.`,
    );
  }

  markdown.heading(2, 'Goals');
  markdown.table(
    ['goal', ...names],
    [
      [
        `≤ ${percent(GOALS.benignFlagRate, 1)} of benign accounts flagged per day`,
        ...names.map((n) => {
          const g = summary.goals[n]!.benignFlagRate;
          return `${percent(g.value, 2)} (95% upper ${percent(g.upper, 2)}): ${yes(g.met)}`;
        }),
      ],
      [
        `≥ ${percent(GOALS.pureDetection, 0)} detection of each pure campaign`,
        ...names.map((n) => {
          const g = summary.goals[n]!.pureDetection;
          return `worst ${g.worst} ${percent(g.value)}: ${yes(g.met)}`;
        }),
      ],
      [
        `≥ ${percent(GOALS.mixedMeanDetection, 0)} mean detection over attacker fractions`,
        ...names.map((n) => {
          const g = summary.goals[n]!.mixedMeanDetection;
          return `${percent(g.value)}: ${yes(g.met)}`;
        }),
      ],
      [
        'every split campaign one cluster',
        ...names.map((n) => {
          const g = summary.goals[n]!.splitsOneCluster;
          return `worst ${percent(g.value)} of seeds: ${yes(g.met)}`;
        }),
      ],
    ],
  );

  markdown.heading(2, 'Benign tenants: false flags per account-day');
  markdown.table(
    ['tenant', 'account-days', ...names.map((n) => `flagged, \`${n}\` (95% CI)`)],
    [
      ...TENANTS.map((tenant) => [
        tenant,
        integer(summary.benign.byConfig[names[0]!]!.tenants[tenant].n),
        ...names.map((n) => interval(summary.benign.byConfig[n]!.tenants[tenant])),
      ]),
      [
        '**all**',
        integer(summary.benign.byConfig[names[0]!]!.all.n),
        ...names.map((n) => interval(summary.benign.byConfig[n]!.all)),
      ],
    ],
  );
  markdown.bullets(
    names.map(
      (n) =>
        `\`${n}\`: reasons of the flags: ${reasonList(summary.benign.byConfig[n]!.reasons)}; clusters of linked benign accounts at the end of the days: ${summary.benign.byConfig[n]!.benignClusters}`,
    ),
  );

  markdown.heading(2, 'Attacks: detection and queries to detect');
  markdown.table(
    [
      'attack',
      'seeds',
      'accounts',
      'attack queries',
      ...names.flatMap((n) => [`detected, \`${n}\` (95% CI)`, `queries to detect, median [IQR] (max)`]),
    ],
    summary.attacks.map((a) => [
      a.attack,
      a.seeds,
      a.accounts,
      integer(a.attackQueries),
      ...names.flatMap((n) => {
        const c = a.byConfig[n]!;
        const q = c.queriesToDetect;
        return [
          interval(c.detection),
          q === null
            ? '—'
            : `${integer(q.median)} [${integer(q.q25)}, ${integer(q.q75)}] (${integer(q.max)})`,
        ];
      }),
    ]),
  );
  markdown.bullets(
    summary.attacks.flatMap((a) =>
      names.map((n) => `${a.attack}, \`${n}\`: reasons at detection: ${reasonList(a.byConfig[n]!.reasons)}`),
    ),
  );

  markdown.heading(2, 'Split campaigns: linked into one cluster');
  markdown.paragraph(
    'At the campaign’s end (report at its last request): one cluster holding exactly the campaign’s accounts. Linking does not use the MMD test; the default configuration links on a template only when it is at least 75% of each account’s prompts.',
  );
  markdown.table(
    [
      'campaign',
      'seeds',
      ...names.flatMap((n) => [
        `one cluster, \`${n}\` (95% CI)`,
        'mean share in the largest cluster',
        'cluster flagged',
      ]),
    ],
    summary.attacks
      .filter((a) => a.attack.startsWith('split-'))
      .map((a) => [
        a.attack,
        a.seeds,
        ...names.flatMap((n) => {
          const c = a.byConfig[n]!;
          return [interval(c.linked!), percent(c.meanLargestClusterShare!), percent(c.clusterFlagged!.rate)];
        }),
      ]),
  );

  markdown.heading(2, 'Through the real gateway');
  markdown.paragraph(
    `A gateway (prepareGateway + buildApp, embedded model, default monitor options, \`trustProxy\` on so that X-Forwarded-For carries each simulated account's address) on 127.0.0.1; one API key per simulated account created with POST /v1/admin/keys; ${integer(gw.requests)} real completions (POST /v1/completions with the simulated prompt, user agent and address; max_tokens the simulated completion length capped at ${config.gateway.maxTokensCap}); then GET /v1/admin/risk. The gateway's monitoring service reads the wall clock (its \`now\` option is not reachable through buildApp), so ${config.gateway.simulatedHours} simulated hours were sent in about ${config.gateway.realSeconds} s (${fixed(gw.realSeconds, 1)} s measured): the day-scale rates above are package-level, and this scenario checks that the gateway computes exactly what the package computes.`,
  );
  markdown.bullets([
    `Completed ${integer(gw.completed)} of ${integer(gw.requests)} requests (refused: ${
      Object.entries(gw.refused)
        .map(([status, count]) => `${status} × ${count}`)
        .join(', ') || 'none'
    }); ${integer(gw.storedEvents)} monitor events stored; stored fingerprints equal fingerprintPrompt of the prompts sent: ${gw.fingerprintsEqual ? 'yes' : 'NO'}.`,
    `GET /v1/admin/risk against a package-level CampaignMonitor({}) fed the same events (prompt, address and user agent as sent, token counts from the responses' usage, key creation time from the admin API, the time the gateway stored) and reported at the gateway report's \`at\`: ${gw.accountsCompared} accounts, ${gw.accountMismatches.length} differ in flag, score or cluster${gw.accountMismatches.length > 0 ? ` (${gw.accountMismatches.join(', ')})` : ''}; ${gw.clustersCompared} clusters, ${gw.clusterMismatches.length} differ${gw.clusterMismatches.length > 0 ? ` (${gw.clusterMismatches.join(', ')})` : ''}.`,
    `Accounts whose gateway score includes input-screening or output-audit findings (the gateway adds them; the package monitor does not see them, so only their cluster is compared): ${gw.findingsAccounts.length === 0 ? 'none' : gw.findingsAccounts.join(', ')}.`,
  ]);
  markdown.table(
    [
      'group',
      'kind',
      'accounts',
      'flagged via gateway',
      'one cluster via gateway',
      'linked via gateway with',
      'flagged, simulated times and tokens',
      'one cluster, simulated',
    ],
    gw.groups.map((g) => [
      g.group,
      g.kind,
      g.accounts,
      g.gatewayFlagged,
      g.gatewayOneCluster === null ? '—' : g.gatewayOneCluster ? 'yes' : 'no',
      g.gatewayClusterPeers.join(', ') || '—',
      g.simulatedFlagged,
      g.simulatedOneCluster === null ? '—' : g.simulatedOneCluster ? 'yes' : 'no',
    ]),
  );
  markdown.paragraph(
    'The two right-hand columns evaluate the same simulated requests at their simulated times and token counts; they differ from the gateway’s columns where compressed time (latency jitter in the inter-arrival times, fewer synchronised-activity bins, keys all created within seconds), the gateway’s own token counts and the capped completions change a detector or a link.',
  );

  const mixed = summary.attacks.filter((a) => a.attack.startsWith('mixed-'));
  const mixed64 = mixed
    .map(
      (a) =>
        `${a.attack.slice('mixed-'.length)}%: ${percent(a.byConfig[MMD64_CONFIGURATION]!.detection.rate, 0)}`,
    )
    .join(', ');
  markdown.heading(2, 'Known bypasses');
  markdown.bullets([
    `Dilution: attack queries mixed into benign-looking traffic under human timing keep every share-based detector under its threshold until the attack share is large (see mixed-10/30 above); the default configuration has no primary detector, and three supporting ones must agree. The MMD test calibrated on windows of 64 prompts detected the mixed attackers at ${mixed64}; smaller shares were not tried.`,
    'Human timing and varied wording together: Poisson timing removes machine-timing, one of the three supporting detectors the default configuration needs; the reasoning attacker above was still caught because its eight fixed frames make near-duplicates, but one that paraphrases every request (no near-duplicates) and asks for short answers (no output amplification) keeps at most one supporting detector.',
    'Varied wording: templates paraphrased per query defeat the skeleton and LSH content links, so a split campaign is not linked and each small account is scored alone (below minRequests each).',
    'Benign-mode imitation: traffic whose window (32 or 64 prompts) stays close to a benign reference window passes the MMD test; the window sees only the last 64 prompt fingerprints per account.',
    'Compressed real time in the gateway scenario: the gateway’s monitor reads the wall clock, so day-scale behaviour through the gateway was not exercised end to end.',
  ]);
  return markdown.toString();
}
