/**
 * A CampaignMonitor rebuilt from stored monitor events, which hold prompt fingerprints and never prompts.
 *
 * Interim adapter: CampaignMonitor.observe() takes the prompt text and fingerprints it itself, so a history
 * kept without prompts cannot be fed back through it. Until @tracemark/monitoring accepts a precomputed
 * fingerprint, this builds the monitor's serialised state (MonitorState, the input of fromJSON) with the
 * same per-account bookkeeping as observe(); replay.test.ts checks that both give the same state and report
 * for the same traffic, so a change in the package shows up there.
 */
import {
  CampaignMonitor,
  cosineSimilarity,
  estimatedJaccard,
  MONITOR_STATE_VERSION,
  type MonitorOptions,
  type MonitorState,
  type PromptFingerprint,
  sharesLshBand,
} from '@tracemark/monitoring';

/** What the monitor needs of one stored event (StoredMonitorEvent has all of it). */
export interface FingerprintedEvent {
  readonly account: string;
  /** Milliseconds. */
  readonly at: number;
  readonly fingerprint: PromptFingerprint;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** The client's network prefix as the monitor keeps it (`a.b.c.0/24`, `x:y:z::/48`). */
  readonly subnet: string | null;
  readonly userAgent: string | null;
  /** Milliseconds. */
  readonly keyCreatedAt: number | null;
}

// The package's defaults and bounds (monitor.ts), which its serialised state depends on.
const DEFAULT_WINDOWS_MS = [3_600_000, 86_400_000];
const DEFAULT_BUCKET_MS = 300_000;
const DEFAULT_RECENT_PROMPTS = 64;
const DEFAULT_NEAR_DUPLICATE_SIMILARITY = 0.5;
const MAX_SUBNETS = 8;
const MAX_USER_AGENT = 256;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type SerialisedAccount = Mutable<Omit<MonitorState['accounts'][number], 'subnets' | 'buckets' | 'recent'>> & {
  subnets: string[];
  buckets: number[][];
  recent: Mutable<MonitorState['accounts'][number]['recent'][number]>[];
};

/** Nearest earlier prompt (1 − cosine of the hashed features) and near-duplicate test, as observe() does. */
function compareWithRecent(
  fingerprint: PromptFingerprint,
  recent: readonly PromptFingerprint[],
  similarity: number,
): { minDistance: number | null; nearDuplicate: boolean } {
  let minDistance = Number.NaN;
  let nearDuplicate = false;
  for (const earlier of recent) {
    const distance = 1 - cosineSimilarity(fingerprint.features, earlier.features);
    if (!(distance >= minDistance)) minDistance = distance;
    if (
      !nearDuplicate &&
      sharesLshBand(fingerprint.signature, earlier.signature) &&
      estimatedJaccard(fingerprint.signature, earlier.signature) >= similarity
    ) {
      nearDuplicate = true;
    }
  }
  return { minDistance: Number.isNaN(minDistance) ? null : minDistance, nearDuplicate };
}

/**
 * The monitor that observing these events in order would give (events need not be sorted by time, but
 * replaying in the order they were observed gives the live monitor's state exactly). With `base`, the
 * events are observed after what `base` holds (another replica's events, read from the shared database);
 * `base` itself is left as it is.
 */
export function monitorFromEvents(
  options: MonitorOptions,
  events: Iterable<FingerprintedEvent>,
  base?: CampaignMonitor,
): CampaignMonitor {
  // Validates the options as the package does.
  new CampaignMonitor(options);
  const windows = options.windows?.map((window) => window.ms) ?? DEFAULT_WINDOWS_MS;
  const bucketMs = options.bucketMs ?? DEFAULT_BUCKET_MS;
  const bucketsKept = Math.ceil(Math.max(...windows) / bucketMs) + 1;
  const recentPrompts = options.recentPrompts ?? DEFAULT_RECENT_PROMPTS;
  const similarity = options.detectors?.nearDuplicateSimilarity ?? DEFAULT_NEAR_DUPLICATE_SIMILARITY;
  const accounts = new Map<string, SerialisedAccount>();
  // The fingerprints of each account's recent entries, as typed arrays, for the comparisons.
  const recentPrints = new Map<string, PromptFingerprint[]>();
  for (const held of base?.toJSON().accounts ?? []) {
    const state: SerialisedAccount = {
      ...held,
      subnets: [...held.subnets],
      buckets: held.buckets.map((bucket) => [...bucket]),
      recent: held.recent.map((entry) => ({ ...entry })),
    };
    accounts.set(state.account, state);
    recentPrints.set(
      state.account,
      state.recent.map((entry) => ({
        features: Uint32Array.from(entry.features),
        signature: Uint32Array.from(entry.signature),
        skeleton: entry.skeleton,
        skeletonLength: entry.skeletonLength,
        reasoning: entry.reasoning,
        enumeration: entry.enumeration,
      })),
    );
  }
  for (const event of events) {
    let state = accounts.get(event.account);
    if (state === undefined) {
      state = {
        account: event.account,
        firstSeen: event.at,
        lastSeen: event.at,
        totalRequests: 0,
        keyCreatedAt: null,
        subnet: null,
        subnets: [],
        userAgent: null,
        buckets: [],
        recent: [],
      };
      accounts.set(event.account, state);
      recentPrints.set(event.account, []);
    }
    state.firstSeen = Math.min(state.firstSeen, event.at);
    state.lastSeen = Math.max(state.lastSeen, event.at);
    state.totalRequests++;
    if (event.keyCreatedAt !== null && Number.isFinite(event.keyCreatedAt))
      state.keyCreatedAt = event.keyCreatedAt;
    if (event.userAgent !== null) state.userAgent = event.userAgent.slice(0, MAX_USER_AGENT);
    if (event.subnet !== null) {
      state.subnet = event.subnet;
      if (!state.subnets.includes(event.subnet)) {
        state.subnets.push(event.subnet);
        if (state.subnets.length > MAX_SUBNETS) state.subnets.shift();
      }
    }
    const { fingerprint } = event;
    const prints = recentPrints.get(event.account)!;
    const { minDistance, nearDuplicate } = compareWithRecent(fingerprint, prints, similarity);
    prints.push(fingerprint);
    if (prints.length > recentPrompts) prints.shift();
    state.recent.push({
      at: event.at,
      features: Array.from(fingerprint.features),
      signature: Array.from(fingerprint.signature),
      skeleton: fingerprint.skeleton,
      skeletonLength: fingerprint.skeletonLength,
      reasoning: fingerprint.reasoning,
      enumeration: fingerprint.enumeration,
      promptTokens: event.promptTokens,
      completionTokens: event.completionTokens,
      minDistance,
      nearDuplicate,
    });
    if (state.recent.length > recentPrompts) state.recent.shift();

    const index = Math.floor(event.at / bucketMs);
    let bucket = state.buckets.find((candidate) => candidate[0] === index);
    if (bucket === undefined) {
      bucket = [index, 0, 0, 0, 0, 0, 0];
      state.buckets.push(bucket);
      state.buckets.sort((a, b) => a[0]! - b[0]!);
      const newest = state.buckets[state.buckets.length - 1]![0]!;
      while (state.buckets[0]![0]! <= newest - bucketsKept) state.buckets.shift();
    }
    bucket[1]! += 1;
    bucket[2]! += event.promptTokens;
    bucket[3]! += event.completionTokens;
    if (fingerprint.reasoning) bucket[4]! += 1;
    if (fingerprint.enumeration) bucket[5]! += 1;
    if (nearDuplicate) bucket[6]! += 1;
  }
  return CampaignMonitor.fromJSON({
    version: MONITOR_STATE_VERSION,
    options,
    accounts: [...accounts.values()],
  });
}
