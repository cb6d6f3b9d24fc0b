/**
 * The campaign monitor: observes every request (account, prompt, token counts, client metadata) at an
 * injected time, keeps bounded per-account state, links accounts that act as one, and reports
 * per-account and per-cluster scores with reasons. The report is a pure function of the sequence of
 * observed events and the options (no clock, no randomness), so a CLI that replays stored history
 * through a fresh monitor computes the same report as the gateway that observed it live.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { fmix32, hashPair } from './hashing.ts';
import { MMD_SCHEME, type MmdCalibration } from './mmd.ts';
import { clientSubnet } from './network.ts';
import { fingerprintPrompt, lshBandKeys, MINHASH_SIZE, type PromptFingerprint } from './prompt-features.ts';
import {
  combineScore,
  compareWithReservoir,
  type DetectorResult,
  type DetectorSettings,
  type FeatureSettings,
  type PromptEntry,
  runDetectors,
  type TrafficBucket,
  type WindowFeatures,
  windowFeatures,
} from './traffic.ts';

export interface MonitorWindow {
  /** Name used in features and reasons, e.g. `1h`. */
  readonly name: string;
  readonly ms: number;
}

/** When accounts are linked into one cluster (see README, "Linking rule"). */
export interface LinkingOptions {
  /** Uses of one skeleton (or one LSH bucket) in an account's window for it to count; default 3. */
  readonly minTemplateUses?: number;
  /** ... and their share of the account's prompts; default 0.75 (research `monitoring`: 0.5 linked classmates). */
  readonly minTemplateShare?: number;
  /** Skeletons shorter than this are too generic to link; default 8. */
  readonly minSkeletonTokens?: number;
  /** API keys created within this many ms of each other count as created together; default 1 h. */
  readonly keyCreationWindowMs?: number;
  /** Time bin for synchronised activity; default 60 s. */
  readonly syncBinMs?: number;
  /** Active bins an account needs before its timing can link it; default 5. */
  readonly minSyncBins?: number;
}

export interface DetectorOptions {
  /** PRADA Shapiro–Wilk threshold δ; default 0.9. */
  readonly pradaThreshold?: number;
  /** Minimum distances before PRADA speaks; default 20. */
  readonly pradaMinSamples?: number;
  /** Estimated Jaccard at which two prompts are near-duplicates; default 0.5. */
  readonly nearDuplicateSimilarity?: number;
  /** SEAT-style share threshold; default 0.5. */
  readonly nearDuplicateShare?: number;
  /** Elicitation share threshold; default 0.5. */
  readonly elicitationShare?: number;
  /** Machine-regular timing threshold on the inter-arrival CV; default 0.2 (research `monitoring`: 0.35 flagged a support bot). */
  readonly maxInterArrivalCv?: number;
  /** Output amplification threshold (completion/prompt tokens); default 4. */
  readonly outputPromptRatio?: number;
  /** Requests in the scoring window before share-based detectors speak; default 10. */
  readonly minRequests?: number;
  /** Per-principal request limit over the scoring window (a cluster shares one). */
  readonly requestLimit?: number;
  /** Per-principal completion-token limit over the scoring window. */
  readonly completionTokenLimit?: number;
}

export interface MonitorOptions {
  /** Sliding windows; default 1 h and 24 h. */
  readonly windows?: readonly MonitorWindow[];
  /** The window the detectors score; default the longest. */
  readonly scoreWindow?: string;
  /** Width of the counter buckets (the time series resolution); default 5 min. */
  readonly bucketMs?: number;
  /** Prompt fingerprints kept per account (the PRADA/SEAT reservoir); default 64. */
  readonly recentPrompts?: number;
  /** Pooled prompt fingerprints scored per cluster; default 256. */
  readonly clusterPrompts?: number;
  /** A calibrated MMD test (calibrateMmd); without it the MMD detector is off. */
  readonly mmd?: MmdCalibration;
  readonly detectors?: DetectorOptions;
  readonly linking?: LinkingOptions;
  /** Score at which a principal is flagged; default 0.5. */
  readonly flagThreshold?: number;
}

/** One request, as the gateway sees it after the response. */
export interface MonitorEvent {
  /** The principal: an API key id or account id. */
  readonly account: string;
  /** Milliseconds (injected time; never the monitor's clock). */
  readonly at: number;
  /** The prompt, or its fingerprint (`fingerprintPrompt`) when the caller keeps fingerprints, not prompts. */
  readonly prompt: string | PromptFingerprint;
  readonly promptTokens: number;
  readonly completionTokens?: number;
  /** Client address (IPv4 or IPv6); only its /24 or /48 is kept. */
  readonly ip?: string;
  readonly userAgent?: string;
  /** When the account's API key was created (ms). */
  readonly keyCreatedAt?: number;
}

/** Why a principal scored as it did; every reason carries the AISVS C11.5 alert context. */
export interface MonitorReason {
  readonly code: string;
  readonly message: string;
  readonly value?: number;
  readonly threshold?: number;
  readonly strength?: number;
  /** The account, or the cluster id. */
  readonly principal: string;
  readonly window: { readonly name: string; readonly from: number; readonly to: number };
  readonly volume: {
    readonly requests: number;
    readonly promptTokens: number;
    readonly completionTokens: number;
  };
  readonly inputDistribution: InputDistribution;
  readonly firstSeen: number;
  readonly lastSeen: number;
  /** For cluster reasons: links between its accounts by kind. */
  readonly links?: Readonly<Record<string, number>>;
  /** For accounts in a flagged cluster. */
  readonly cluster?: string;
}

export interface InputDistribution {
  readonly sampledPrompts: number;
  readonly distinctFeatures: number;
  readonly featureCoverage: number | null;
  readonly featureEntropyBits: number | null;
  readonly promptDiversity: number | null;
  readonly templateReuse: number | null;
  readonly topSkeletonShare: number | null;
  readonly nearDuplicateShare: number | null;
  readonly reasoningShare: number | null;
  readonly enumerationShare: number | null;
  readonly outputPromptRatio: number | null;
  readonly interArrivalCv: number | null;
  readonly pradaW: number | null;
  readonly mmd: number | null;
}

export interface AccountReport {
  readonly account: string;
  readonly score: number;
  readonly flagged: boolean;
  readonly reasons: MonitorReason[];
  /** Cluster id when the account is linked to others; null alone. */
  readonly cluster: string | null;
}

export interface ClusterReport {
  readonly id: string;
  readonly accounts: string[];
  readonly score: number;
  readonly flagged: boolean;
  readonly reasons: MonitorReason[];
}

/** The report: accounts active in the scoring window, and the clusters of two or more of them. */
export interface MonitorReport {
  readonly accounts: AccountReport[];
  readonly clusters: ClusterReport[];
}

export interface SeriesBucket {
  readonly start: number;
  readonly requests: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly reasoning: number;
  readonly enumeration: number;
  readonly nearDuplicates: number;
}

export interface AccountDetail {
  readonly account: string;
  readonly firstSeen: number;
  readonly lastSeen: number;
  readonly totalRequests: number;
  readonly keyCreatedAt: number | null;
  readonly subnet: string | null;
  readonly subnets: readonly string[];
  readonly userAgent: string | null;
  readonly cluster: string | null;
  readonly score: number;
  readonly flagged: boolean;
  readonly detectors: DetectorResult[];
  /** Features per configured window. */
  readonly windows: WindowFeatures[];
  /** The counters per bucket (bucketMs wide) of the longest window, oldest first. */
  readonly series: SeriesBucket[];
}

interface AccountState {
  readonly account: string;
  firstSeen: number;
  lastSeen: number;
  totalRequests: number;
  keyCreatedAt: number | null;
  subnet: string | null;
  subnets: string[];
  userAgent: string | null;
  buckets: TrafficBucket[];
  recent: PromptEntry[];
}

interface ResolvedOptions {
  readonly windows: readonly MonitorWindow[];
  readonly scoreWindow: MonitorWindow;
  readonly bucketMs: number;
  readonly bucketsKept: number;
  readonly recentPrompts: number;
  readonly clusterPrompts: number;
  readonly mmd: MmdCalibration | undefined;
  readonly nearDuplicateSimilarity: number;
  readonly pradaMinSamples: number;
  readonly detectors: DetectorSettings;
  readonly linking: Required<LinkingOptions>;
  readonly flagThreshold: number;
}

const MAX_SUBNETS = 8;
const MAX_USER_AGENT = 256;
const SYNC_BANDS = 4;
const SYNC_ROWS = 3;
export const MONITOR_STATE_VERSION = 1;

function positive(name: string, value: number, integer = false): number {
  if (
    typeof value !== 'number' ||
    !(value > 0) ||
    !Number.isFinite(value) ||
    (integer && !Number.isSafeInteger(value))
  ) {
    throw new RangeError(
      `${name}: expected a positive ${integer ? 'integer' : 'number'}, got ${String(value)}`,
    );
  }
  return value;
}

function unit(name: string, value: number): number {
  if (typeof value !== 'number' || !(value > 0 && value <= 1)) {
    throw new RangeError(`${name}: expected a number in (0, 1], got ${String(value)}`);
  }
  return value;
}

function resolveOptions(options: MonitorOptions): ResolvedOptions {
  const windows = options.windows ?? [
    { name: '1h', ms: 3_600_000 },
    { name: '24h', ms: 86_400_000 },
  ];
  if (!Array.isArray(windows) || windows.length === 0)
    throw new RangeError('options.windows: expected at least one window');
  for (const [i, window] of windows.entries()) positive(`options.windows[${i}].ms`, window.ms, true);
  const longest = windows.reduce((a, b) => (b.ms > a.ms ? b : a));
  const scoreWindow =
    options.scoreWindow === undefined
      ? longest
      : windows.find((window) => window.name === options.scoreWindow);
  if (scoreWindow === undefined)
    throw new RangeError(`options.scoreWindow: no window named ${options.scoreWindow}`);
  const bucketMs = positive('options.bucketMs', options.bucketMs ?? 300_000, true);
  const detectors = options.detectors ?? {};
  const linking = options.linking ?? {};
  if (options.mmd !== undefined && options.mmd.scheme !== MMD_SCHEME) {
    throw new RangeError(`options.mmd: expected scheme ${MMD_SCHEME}, got ${String(options.mmd.scheme)}`);
  }
  const pradaThreshold = unit('options.detectors.pradaThreshold', detectors.pradaThreshold ?? 0.9);
  if (pradaThreshold >= 1)
    throw new RangeError('options.detectors.pradaThreshold: expected a number below 1');
  return {
    windows,
    scoreWindow,
    bucketMs,
    bucketsKept: Math.ceil(longest.ms / bucketMs) + 1,
    recentPrompts: positive('options.recentPrompts', options.recentPrompts ?? 64, true),
    clusterPrompts: positive('options.clusterPrompts', options.clusterPrompts ?? 256, true),
    mmd: options.mmd,
    nearDuplicateSimilarity: unit(
      'options.detectors.nearDuplicateSimilarity',
      detectors.nearDuplicateSimilarity ?? 0.5,
    ),
    pradaMinSamples: positive('options.detectors.pradaMinSamples', detectors.pradaMinSamples ?? 20, true),
    detectors: {
      pradaThreshold,
      nearDuplicateShare: unit('options.detectors.nearDuplicateShare', detectors.nearDuplicateShare ?? 0.5),
      elicitationShare: unit('options.detectors.elicitationShare', detectors.elicitationShare ?? 0.5),
      maxInterArrivalCv: positive('options.detectors.maxInterArrivalCv', detectors.maxInterArrivalCv ?? 0.2),
      outputPromptRatio: positive('options.detectors.outputPromptRatio', detectors.outputPromptRatio ?? 4),
      minRequests: positive('options.detectors.minRequests', detectors.minRequests ?? 10, true),
      requestLimit:
        detectors.requestLimit === undefined
          ? undefined
          : positive('options.detectors.requestLimit', detectors.requestLimit),
      completionTokenLimit:
        detectors.completionTokenLimit === undefined
          ? undefined
          : positive('options.detectors.completionTokenLimit', detectors.completionTokenLimit),
    },
    linking: {
      minTemplateUses: positive('options.linking.minTemplateUses', linking.minTemplateUses ?? 3, true),
      minTemplateShare: unit('options.linking.minTemplateShare', linking.minTemplateShare ?? 0.75),
      minSkeletonTokens: positive('options.linking.minSkeletonTokens', linking.minSkeletonTokens ?? 8, true),
      keyCreationWindowMs: positive(
        'options.linking.keyCreationWindowMs',
        linking.keyCreationWindowMs ?? 3_600_000,
      ),
      syncBinMs: positive('options.linking.syncBinMs', linking.syncBinMs ?? 60_000, true),
      minSyncBins: positive('options.linking.minSyncBins', linking.minSyncBins ?? 5, true),
    },
    flagThreshold: unit('options.flagThreshold', options.flagThreshold ?? 0.5),
  };
}

class UnionFind {
  private readonly parent: number[];
  constructor(size: number) {
    this.parent = Array.from({ length: size }, (_, i) => i);
  }
  find(i: number): number {
    let root = i;
    while (this.parent[root] !== root) root = this.parent[root]!;
    while (this.parent[i] !== root) {
      const next = this.parent[i]!;
      this.parent[i] = root;
      i = next;
    }
    return root;
  }
  /** Returns whether two sets were merged. Smaller root index wins: deterministic. */
  union(a: number, b: number): boolean {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return false;
    if (ra < rb) this.parent[rb] = ra;
    else this.parent[ra] = rb;
    return true;
  }
}

type LinkKind = 'template' | 'nearDuplicate' | 'subnet' | 'userAgent' | 'keyCreation' | 'synchronised';

interface Clustering {
  readonly at: number;
  readonly clusterOf: ReadonlyMap<string, string>;
  readonly clusters: readonly { id: string; accounts: string[]; links: Record<LinkKind, number> }[];
}

/** A stable cluster id: derived from its earliest-seen account (ties: smallest name). */
function clusterId(account: string): string {
  return `cl_${bytesToHex(sha256(utf8ToBytes(account))).slice(0, 12)}`;
}

function syncSignatureKeys(bins: readonly number[]): number[] {
  const keys: number[] = [];
  for (let band = 0; band < SYNC_BANDS; band++) {
    let key = fmix32(0x53594e43 + band);
    for (let row = 0; row < SYNC_ROWS; row++) {
      const seed = fmix32((band * SYNC_ROWS + row + 1) * 0x9e3779b9);
      let min = 0xffffffff;
      for (const bin of bins) {
        const h = fmix32((bin ^ seed) >>> 0);
        if (h < min) min = h;
      }
      key = hashPair(key, min);
    }
    keys.push(key);
  }
  return keys;
}

/** Serialised state (toJSON / fromJSON). */
export interface MonitorState {
  readonly version: typeof MONITOR_STATE_VERSION;
  readonly options: MonitorOptions;
  readonly accounts: readonly SerialisedAccount[];
}

interface SerialisedAccount {
  readonly account: string;
  readonly firstSeen: number;
  readonly lastSeen: number;
  readonly totalRequests: number;
  readonly keyCreatedAt: number | null;
  readonly subnet: string | null;
  readonly subnets: readonly string[];
  readonly userAgent: string | null;
  readonly buckets: readonly (readonly number[])[];
  readonly recent: readonly SerialisedEntry[];
}

interface SerialisedEntry {
  readonly at: number;
  readonly features: readonly number[];
  readonly signature: readonly number[];
  readonly skeleton: number;
  readonly skeletonLength: number;
  readonly reasoning: boolean;
  readonly enumeration: boolean;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly minDistance: number | null;
  readonly nearDuplicate: boolean;
}

/**
 * Watches traffic for model-extraction campaigns. Memory per account is bounded: at most
 * `recentPrompts` fingerprints (≤ 96 + 32 32-bit hashes each) and ⌈longest window / bucketMs⌉ + 1
 * buckets; observe() costs O(recentPrompts × sketch size). Clusters are recomputed by
 * refreshClusters(at) (report(at) does it).
 */
/** The AISVS C11.5 context of a reason (window, volume, input distribution), from a principal's window features. */
export function reasonContext(
  principal: string,
  features: WindowFeatures,
  firstSeen: number,
  lastSeen: number,
): Omit<MonitorReason, 'code' | 'message'> {
  const nullable = (value: number | null): number | null => (value === null ? null : roundTo(value));
  return {
    principal,
    window: { name: features.window, from: features.from, to: features.to },
    volume: {
      requests: features.requests,
      promptTokens: features.promptTokens,
      completionTokens: features.completionTokens,
    },
    inputDistribution: {
      sampledPrompts: features.sampledPrompts,
      distinctFeatures: features.distinctFeatures,
      featureCoverage: nullable(features.featureCoverage),
      featureEntropyBits: nullable(features.featureEntropyBits),
      promptDiversity: nullable(features.promptDiversity),
      templateReuse: nullable(features.templateReuse),
      topSkeletonShare: nullable(features.topSkeletonShare),
      nearDuplicateShare: nullable(features.nearDuplicateShare),
      reasoningShare: nullable(features.reasoningShare),
      enumerationShare: nullable(features.enumerationShare),
      outputPromptRatio: nullable(features.outputPromptRatio),
      interArrivalCv: nullable(features.interArrivalCv),
      pradaW: nullable(features.pradaW),
      mmd: nullable(features.mmd),
    },
    firstSeen,
    lastSeen,
  };
}

function isFingerprint(value: unknown): value is PromptFingerprint {
  if (value === null || typeof value !== 'object') return false;
  const f = value as Partial<PromptFingerprint>;
  return (
    f.features instanceof Uint32Array &&
    f.signature instanceof Uint32Array &&
    typeof f.skeleton === 'number' &&
    typeof f.skeletonLength === 'number' &&
    typeof f.reasoning === 'boolean' &&
    typeof f.enumeration === 'boolean'
  );
}

export class CampaignMonitor {
  readonly options: MonitorOptions;
  private readonly resolved: ResolvedOptions;
  private readonly accounts = new Map<string, AccountState>();
  private clustering: Clustering | null = null;

  constructor(options: MonitorOptions = {}) {
    this.options = options;
    this.resolved = resolveOptions(options);
  }

  /** Accounts currently held. */
  get size(): number {
    return this.accounts.size;
  }

  /** Records one request. */
  observe(event: MonitorEvent): void {
    if (event === null || typeof event !== 'object') throw new TypeError('event: expected an object');
    const { account, at, prompt, promptTokens } = event;
    const completionTokens = event.completionTokens ?? 0;
    if (typeof account !== 'string' || account.length === 0)
      throw new TypeError('event.account: expected a non-empty string');
    if (!Number.isFinite(at)) throw new RangeError(`event.at: expected milliseconds, got ${String(at)}`);
    if (typeof prompt !== 'string' && !isFingerprint(prompt)) {
      throw new TypeError('event.prompt: expected a string or a prompt fingerprint');
    }
    for (const [name, value] of [
      ['promptTokens', promptTokens],
      ['completionTokens', completionTokens],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new RangeError(`event.${name}: expected a non-negative integer, got ${String(value)}`);
      }
    }
    const options = this.resolved;
    let state = this.accounts.get(account);
    if (state === undefined) {
      state = {
        account,
        firstSeen: at,
        lastSeen: at,
        totalRequests: 0,
        keyCreatedAt: null,
        subnet: null,
        subnets: [],
        userAgent: null,
        buckets: [],
        recent: [],
      };
      this.accounts.set(account, state);
    }
    state.firstSeen = Math.min(state.firstSeen, at);
    state.lastSeen = Math.max(state.lastSeen, at);
    state.totalRequests++;
    if (event.keyCreatedAt !== undefined && Number.isFinite(event.keyCreatedAt))
      state.keyCreatedAt = event.keyCreatedAt;
    if (event.userAgent !== undefined) state.userAgent = String(event.userAgent).slice(0, MAX_USER_AGENT);
    if (event.ip !== undefined) {
      const subnet = clientSubnet(event.ip);
      if (subnet !== null) {
        state.subnet = subnet;
        if (!state.subnets.includes(subnet)) {
          state.subnets.push(subnet);
          if (state.subnets.length > MAX_SUBNETS) state.subnets.shift();
        }
      }
    }

    const fingerprint = typeof prompt === 'string' ? fingerprintPrompt(prompt) : prompt;
    const { minDistance, nearDuplicate } = compareWithReservoir(
      fingerprint,
      state.recent,
      options.nearDuplicateSimilarity,
    );
    state.recent.push({ ...fingerprint, at, promptTokens, completionTokens, minDistance, nearDuplicate });
    if (state.recent.length > options.recentPrompts) state.recent.shift();

    const index = Math.floor(at / options.bucketMs);
    let bucket = state.buckets.find((candidate) => candidate.index === index);
    if (bucket === undefined) {
      bucket = {
        index,
        requests: 0,
        promptTokens: 0,
        completionTokens: 0,
        reasoning: 0,
        enumeration: 0,
        nearDuplicates: 0,
      };
      state.buckets.push(bucket);
      state.buckets.sort((a, b) => a.index - b.index);
      const newest = state.buckets[state.buckets.length - 1]!.index;
      while (state.buckets[0]!.index <= newest - options.bucketsKept) state.buckets.shift();
    }
    bucket.requests++;
    bucket.promptTokens += promptTokens;
    bucket.completionTokens += completionTokens;
    if (fingerprint.reasoning) bucket.reasoning++;
    if (fingerprint.enumeration) bucket.enumeration++;
    if (nearDuplicate) bucket.nearDuplicates++;
  }

  /** Drops accounts not seen in the longest window before `at`; returns how many. */
  prune(at: number): number {
    const longest = Math.max(...this.resolved.windows.map((window) => window.ms));
    let removed = 0;
    for (const [account, state] of this.accounts) {
      if (state.lastSeen <= at - longest) {
        this.accounts.delete(account);
        removed++;
      }
    }
    return removed;
  }

  private featureSettings(): FeatureSettings {
    return {
      bucketMs: this.resolved.bucketMs,
      pradaMinSamples: this.resolved.pradaMinSamples,
      mmd: this.resolved.mmd,
    };
  }

  private scoreWindowEntries(state: AccountState, at: number): PromptEntry[] {
    const from = at - this.resolved.scoreWindow.ms;
    return state.recent.filter((entry) => entry.at > from && entry.at <= at);
  }

  private activeAccounts(at: number): AccountState[] {
    const from = at - this.resolved.scoreWindow.ms;
    return [...this.accounts.values()].filter((state) => state.lastSeen > from && state.firstSeen <= at);
  }

  /**
   * Links accounts (see README, "Linking rule"): two accounts are linked when they share content
   * evidence (a template skeleton or an LSH bucket that is at least minTemplateShare of each one's
   * recent prompts, used minTemplateUses times) AND at least one corroborating signal (same /24 or
   * /48, same user agent, keys created within keyCreationWindowMs, or synchronised activity bins).
   */
  refreshClusters(at: number): void {
    if (!Number.isFinite(at)) throw new RangeError(`at: expected milliseconds, got ${String(at)}`);
    const linking = this.resolved.linking;
    const active = this.activeAccounts(at);
    const contentGroups = new Map<string, number[]>();
    const syncKeys: (number[] | null)[] = [];
    active.forEach((state, index) => {
      const entries = this.scoreWindowEntries(state, at);
      const counts = new Map<string, number>();
      for (const entry of entries) {
        if (entry.skeletonLength >= linking.minSkeletonTokens) {
          const key = `t${entry.skeleton}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
        for (const band of new Set(lshBandKeys(entry.signature))) {
          const key = `n${band}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
      }
      for (const [key, count] of counts) {
        if (count >= linking.minTemplateUses && count / entries.length >= linking.minTemplateShare) {
          let group = contentGroups.get(key);
          if (group === undefined) contentGroups.set(key, (group = []));
          group.push(index);
        }
      }
      const bins = [...new Set(entries.map((entry) => Math.floor(entry.at / linking.syncBinMs)))];
      syncKeys.push(bins.length >= linking.minSyncBins ? syncSignatureKeys(bins) : null);
    });

    const unionFind = new UnionFind(active.length);
    const linkCounts = new Map<number, Record<LinkKind, number>>();
    const linkEvidence: { a: number; b: number; content: LinkKind; corroboration: LinkKind }[] = [];
    const link = (a: number, b: number, content: LinkKind, corroboration: LinkKind): void => {
      if (unionFind.union(a, b)) linkEvidence.push({ a, b, content, corroboration });
    };
    const byKey = (
      members: readonly number[],
      keyOf: (state: AccountState, index: number) => string | null,
    ) => {
      const groups = new Map<string, number[]>();
      for (const index of members) {
        const key = keyOf(active[index]!, index);
        if (key === null) continue;
        let group = groups.get(key);
        if (group === undefined) groups.set(key, (group = []));
        group.push(index);
      }
      return groups.values();
    };
    const sortedGroups = [...contentGroups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [key, members] of sortedGroups) {
      if (members.length < 2) continue;
      const content: LinkKind = key.startsWith('t') ? 'template' : 'nearDuplicate';
      for (const group of byKey(members, (state) => state.subnet)) {
        for (let i = 1; i < group.length; i++) link(group[0]!, group[i]!, content, 'subnet');
      }
      for (const group of byKey(members, (state) => state.userAgent)) {
        for (let i = 1; i < group.length; i++) link(group[0]!, group[i]!, content, 'userAgent');
      }
      const keyed = members
        .filter((index) => active[index]!.keyCreatedAt !== null)
        .sort((a, b) => active[a]!.keyCreatedAt! - active[b]!.keyCreatedAt! || a - b);
      for (let i = 1; i < keyed.length; i++) {
        const gap = active[keyed[i]!]!.keyCreatedAt! - active[keyed[i - 1]!]!.keyCreatedAt!;
        if (gap <= linking.keyCreationWindowMs) link(keyed[i - 1]!, keyed[i]!, content, 'keyCreation');
      }
      for (let band = 0; band < SYNC_BANDS; band++) {
        for (const group of byKey(members, (_, index) => {
          const keys = syncKeys[index];
          return keys === null || keys === undefined ? null : String(keys[band]);
        })) {
          for (let i = 1; i < group.length; i++) link(group[0]!, group[i]!, content, 'synchronised');
        }
      }
    }

    const members = new Map<number, number[]>();
    active.forEach((_, index) => {
      const root = unionFind.find(index);
      let list = members.get(root);
      if (list === undefined) members.set(root, (list = []));
      list.push(index);
    });
    for (const evidence of linkEvidence) {
      const root = unionFind.find(evidence.a);
      let counts = linkCounts.get(root);
      if (counts === undefined) {
        counts = { template: 0, nearDuplicate: 0, subnet: 0, userAgent: 0, keyCreation: 0, synchronised: 0 };
        linkCounts.set(root, counts);
      }
      counts[evidence.content]++;
      counts[evidence.corroboration]++;
    }
    const clusterOf = new Map<string, string>();
    const clusters: { id: string; accounts: string[]; links: Record<LinkKind, number> }[] = [];
    for (const [root, indices] of members) {
      if (indices.length < 2) continue;
      const states = indices.map((index) => active[index]!);
      const earliest = states.reduce((a, b) =>
        b.firstSeen < a.firstSeen || (b.firstSeen === a.firstSeen && b.account < a.account) ? b : a,
      );
      const id = clusterId(earliest.account);
      const accounts = states.map((state) => state.account).sort();
      for (const account of accounts) clusterOf.set(account, id);
      clusters.push({ id, accounts, links: linkCounts.get(root)! });
    }
    clusters.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    this.clustering = { at, clusterOf, clusters };
  }

  /**
   * The cluster id of an account as of the last refreshClusters/report, or null when it is not linked
   * to another account. A gateway can key a shared rate limit on `clusterOf(account) ?? account`.
   */
  clusterOf(account: string): string | null {
    return this.clustering?.clusterOf.get(account) ?? null;
  }

  private assess(
    principal: string,
    buckets: readonly TrafficBucket[],
    entries: readonly PromptEntry[],
    firstSeen: number,
    lastSeen: number,
    at: number,
  ): { features: WindowFeatures; detectors: DetectorResult[]; score: number; reasons: MonitorReason[] } {
    const options = this.resolved;
    const window = options.scoreWindow;
    const features = windowFeatures(window.name, window.ms, at, buckets, entries, this.featureSettings());
    const detectors = runDetectors(features, options.detectors, options.mmd);
    const score = combineScore(detectors);
    const context = reasonContext(principal, features, firstSeen, lastSeen);
    const reasons = detectors
      .filter((result) => result.strength >= 0.5)
      .sort((a, b) => b.strength - a.strength || (a.code < b.code ? -1 : 1))
      .map(
        (result): MonitorReason => ({
          code: result.code,
          message: result.message,
          value: roundTo(result.value),
          threshold: result.threshold,
          strength: roundTo(result.strength),
          ...context,
        }),
      );
    return { features, detectors, score, reasons };
  }

  private pooledTraffic(
    states: readonly AccountState[],
    at: number,
  ): { buckets: TrafficBucket[]; entries: PromptEntry[] } {
    const byIndex = new Map<number, TrafficBucket>();
    for (const state of states) {
      for (const bucket of state.buckets) {
        const sum = byIndex.get(bucket.index) ?? {
          index: bucket.index,
          requests: 0,
          promptTokens: 0,
          completionTokens: 0,
          reasoning: 0,
          enumeration: 0,
          nearDuplicates: 0,
        };
        sum.requests += bucket.requests;
        sum.promptTokens += bucket.promptTokens;
        sum.completionTokens += bucket.completionTokens;
        sum.reasoning += bucket.reasoning;
        sum.enumeration += bucket.enumeration;
        byIndex.set(bucket.index, sum);
      }
    }
    const tagged = states.flatMap((state) =>
      this.scoreWindowEntries(state, at).map((entry, order) => ({ entry, account: state.account, order })),
    );
    tagged.sort(
      (a, b) =>
        a.entry.at - b.entry.at ||
        (a.account < b.account ? -1 : a.account > b.account ? 1 : a.order - b.order),
    );
    const pooled = tagged
      .slice(Math.max(0, tagged.length - this.resolved.clusterPrompts))
      .map((item) => item.entry);
    // Distances and near-duplicates against the pooled reservoir: a split campaign's prompts are
    // compared across its accounts, as one account's would be.
    const entries: PromptEntry[] = [];
    pooled.forEach((entry, i) => {
      const reservoir = pooled.slice(Math.max(0, i - this.resolved.recentPrompts), i);
      const { minDistance, nearDuplicate } = compareWithReservoir(
        entry,
        reservoir,
        this.resolved.nearDuplicateSimilarity,
      );
      entries.push({ ...entry, minDistance, nearDuplicate });
      if (nearDuplicate) {
        const sum = byIndex.get(Math.floor(entry.at / this.resolved.bucketMs));
        if (sum !== undefined) sum.nearDuplicates++;
      }
    });
    return { buckets: [...byIndex.values()].sort((a, b) => a.index - b.index), entries };
  }

  /**
   * The report at time `at`: every account active in the scoring window (highest score first) and
   * every cluster of two or more. Recomputes clusters. Deterministic given the observed events.
   */
  report(at: number): MonitorReport {
    this.refreshClusters(at);
    const clustering = this.clustering!;
    const threshold = this.resolved.flagThreshold;
    const clusters: ClusterReport[] = clustering.clusters.map((cluster) => {
      const states = cluster.accounts.map((account) => this.accounts.get(account)!);
      const { buckets, entries } = this.pooledTraffic(states, at);
      const firstSeen = Math.min(...states.map((state) => state.firstSeen));
      const lastSeen = Math.max(...states.map((state) => state.lastSeen));
      const assessed = this.assess(cluster.id, buckets, entries, firstSeen, lastSeen, at);
      const linkSummary = Object.entries(cluster.links)
        .filter(([, count]) => count > 0)
        .map(([kind, count]) => `${kind} ${count}`)
        .join(', ');
      const reasons: MonitorReason[] = [
        ...assessed.reasons,
        {
          code: 'linked-accounts',
          message: `${cluster.accounts.length} accounts act as one (links: ${linkSummary})`,
          ...reasonContext(cluster.id, assessed.features, firstSeen, lastSeen),
          links: { ...cluster.links },
        },
      ];
      return {
        id: cluster.id,
        accounts: cluster.accounts,
        score: roundTo(assessed.score),
        flagged: assessed.score >= threshold,
        reasons,
      };
    });
    const clusterById = new Map(clusters.map((cluster) => [cluster.id, cluster]));
    const accounts: AccountReport[] = this.activeAccounts(at).map((state) => {
      const assessed = this.assess(
        state.account,
        state.buckets,
        this.scoreWindowEntries(state, at),
        state.firstSeen,
        state.lastSeen,
        at,
      );
      const clusterIdOf = clustering.clusterOf.get(state.account) ?? null;
      const cluster = clusterIdOf === null ? undefined : clusterById.get(clusterIdOf);
      const reasons = assessed.reasons;
      if (cluster?.flagged === true) {
        reasons.push({
          code: 'in-flagged-cluster',
          message: `linked to ${cluster.accounts.length - 1} other accounts in flagged cluster ${cluster.id}`,
          cluster: cluster.id,
          ...reasonContext(state.account, assessed.features, state.firstSeen, state.lastSeen),
        });
      }
      return {
        account: state.account,
        score: roundTo(assessed.score),
        flagged: assessed.score >= threshold || cluster?.flagged === true,
        reasons,
        cluster: clusterIdOf,
      };
    });
    accounts.sort(
      (a, b) => b.score - a.score || (a.account < b.account ? -1 : a.account > b.account ? 1 : 0),
    );
    clusters.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { accounts, clusters };
  }

  /** One account's features per window, detector results and time series; null if unknown. */
  accountDetail(account: string, at: number): AccountDetail | null {
    const state = this.accounts.get(account);
    if (state === undefined) return null;
    const options = this.resolved;
    const settings = this.featureSettings();
    const entries = state.recent;
    const windows = options.windows.map((window) =>
      windowFeatures(window.name, window.ms, at, state.buckets, entries, settings),
    );
    const scored = this.assess(
      account,
      state.buckets,
      this.scoreWindowEntries(state, at),
      state.firstSeen,
      state.lastSeen,
      at,
    );
    const longest = Math.max(...options.windows.map((window) => window.ms));
    return {
      account,
      firstSeen: state.firstSeen,
      lastSeen: state.lastSeen,
      totalRequests: state.totalRequests,
      keyCreatedAt: state.keyCreatedAt,
      subnet: state.subnet,
      subnets: [...state.subnets],
      userAgent: state.userAgent,
      cluster: this.clusterOf(account),
      score: roundTo(scored.score),
      flagged: scored.score >= options.flagThreshold,
      detectors: scored.detectors,
      windows,
      series: state.buckets
        .filter(
          (bucket) =>
            (bucket.index + 1) * options.bucketMs > at - longest && bucket.index * options.bucketMs <= at,
        )
        .map((bucket) => ({
          start: bucket.index * options.bucketMs,
          requests: bucket.requests,
          promptTokens: bucket.promptTokens,
          completionTokens: bucket.completionTokens,
          reasoning: bucket.reasoning,
          enumeration: bucket.enumeration,
          nearDuplicates: bucket.nearDuplicates,
        })),
    };
  }

  /** Plain-data state: options and every account's buckets and fingerprints (no prompt text). */
  toJSON(): MonitorState {
    return {
      version: MONITOR_STATE_VERSION,
      options: this.options,
      accounts: [...this.accounts.values()].map((state) => ({
        account: state.account,
        firstSeen: state.firstSeen,
        lastSeen: state.lastSeen,
        totalRequests: state.totalRequests,
        keyCreatedAt: state.keyCreatedAt,
        subnet: state.subnet,
        subnets: [...state.subnets],
        userAgent: state.userAgent,
        buckets: state.buckets.map((bucket) => [
          bucket.index,
          bucket.requests,
          bucket.promptTokens,
          bucket.completionTokens,
          bucket.reasoning,
          bucket.enumeration,
          bucket.nearDuplicates,
        ]),
        recent: state.recent.map((entry) => ({
          at: entry.at,
          features: Array.from(entry.features),
          signature: Array.from(entry.signature),
          skeleton: entry.skeleton,
          skeletonLength: entry.skeletonLength,
          reasoning: entry.reasoning,
          enumeration: entry.enumeration,
          promptTokens: entry.promptTokens,
          completionTokens: entry.completionTokens,
          minDistance: Number.isNaN(entry.minDistance) ? null : entry.minDistance,
          nearDuplicate: entry.nearDuplicate,
        })),
      })),
    };
  }

  /** Restores a monitor from toJSON()'s output (after JSON.stringify/parse). */
  static fromJSON(state: MonitorState): CampaignMonitor {
    if (state === null || typeof state !== 'object' || state.version !== MONITOR_STATE_VERSION) {
      throw new RangeError(`state.version: expected ${MONITOR_STATE_VERSION}`);
    }
    const monitor = new CampaignMonitor(state.options);
    for (const account of state.accounts) {
      const recent: PromptEntry[] = account.recent.map((entry, i) => {
        if (entry.signature.length !== MINHASH_SIZE) {
          throw new RangeError(
            `state.accounts[${account.account}].recent[${i}].signature: expected ${MINHASH_SIZE} hashes`,
          );
        }
        return {
          at: entry.at,
          features: Uint32Array.from(entry.features),
          signature: Uint32Array.from(entry.signature),
          skeleton: entry.skeleton,
          skeletonLength: entry.skeletonLength,
          reasoning: entry.reasoning,
          enumeration: entry.enumeration,
          promptTokens: entry.promptTokens,
          completionTokens: entry.completionTokens,
          minDistance: entry.minDistance ?? Number.NaN,
          nearDuplicate: entry.nearDuplicate,
        };
      });
      monitor.accounts.set(account.account, {
        account: account.account,
        firstSeen: account.firstSeen,
        lastSeen: account.lastSeen,
        totalRequests: account.totalRequests,
        keyCreatedAt: account.keyCreatedAt,
        subnet: account.subnet,
        subnets: [...account.subnets],
        userAgent: account.userAgent,
        buckets: account.buckets.map(
          ([index, requests, promptTokens, completionTokens, reasoning, enumeration, nearDuplicates]) => ({
            index: index!,
            requests: requests!,
            promptTokens: promptTokens!,
            completionTokens: completionTokens!,
            reasoning: reasoning!,
            enumeration: enumeration!,
            nearDuplicates: nearDuplicates!,
          }),
        ),
        recent,
      });
    }
    return monitor;
  }
}

function roundTo(value: number, digits = 4): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** A monitor with the given options (the same as `new CampaignMonitor(options)`). */
export function createCampaignMonitor(options: MonitorOptions = {}): CampaignMonitor {
  return new CampaignMonitor(options);
}
