/**
 * What the coordinator and the workers of a distributed scan share: the BullMQ queue, the Redis
 * keys of a run, and the run's configuration (public: scheme parameters and key ids, never a key's
 * secret; workers read the keys from their own key files).
 */
import type { SchemeName } from '@tracemark/core';
import type { Shard } from './plan.ts';

/** One queue serves every run; a job names its run. */
export const QUEUE_NAME: string = 'tracemark-scan';
/** Results outlive a run by this long, so that a run can be resumed (seconds). */
export const RESULT_TTL_SECONDS: number = 7 * 24 * 3600;
/** Stands for the file in a shard's line numbers and error messages until the coordinator knows its lines. */
export const SHARD_SOURCE: string = '\uE000shard\uE000';
export const SHARD_WHERE: RegExp = /\uE000shard\uE000:(\d+)/g;

export const RUN_ID_PATTERN: RegExp = /^[A-Za-z0-9_-]{1,64}$/;

export interface RunConfig {
  readonly version: 1;
  readonly tokenizer: string;
  /** Seeding layouts, each served by one tape and its partitions. */
  readonly layouts: readonly { readonly scheme: SchemeName; readonly contextWidth: number }[];
  /** The true keys in the scan's order, with their layout's index. */
  readonly keys: readonly { readonly keyId: string; readonly layout: number }[];
  readonly fakeKeys: number;
  readonly fakeKeySeed: string;
  readonly numPartitions: number;
  readonly field: string | null;
  /** null: the default rule; false: no prompt. */
  readonly promptField: string | false | null;
  readonly supervised: boolean;
  readonly shards: readonly Shard[];
  /** Size and modification time of every file read, so that a resumed run reads the same inputs. */
  readonly files: readonly { readonly path: string; readonly size: number; readonly mtimeMs: number }[];
}

export interface MapJobData {
  readonly runId: string;
  readonly shard: number;
}

export interface ReduceJobData {
  readonly runId: string;
  readonly layout: number;
  readonly partition: number;
  /** The corpus document number of each shard's first document. */
  readonly documentOffsets: readonly number[];
}

/** A shard's summary (the header of its meta blob; the blob's `sourceLines` array numbers its documents' lines). */
export interface ShardMeta {
  /** Documents read, errors included (as `tracemark scan` counts them). */
  readonly documents: number;
  /** Documents scanned. */
  readonly scanned: number;
  readonly bytes: number;
  /** JSONL lines in the range (0 for a text file). */
  readonly lines: number;
  /** Errors in order; `line` is within the range (null for a whole file), messages hold SHARD_WHERE. */
  readonly errors: readonly {
    readonly line: number | null;
    readonly code: string;
    readonly message: string;
  }[];
  /** Per layout, the reading pass's additive counts. */
  readonly counts: readonly {
    readonly numDocuments: number;
    readonly numTokens: number;
    readonly numPromptTokens: number;
    readonly numEligible: number;
    readonly numFilteredOut: number;
  }[];
  readonly worker: string;
  /** The worker's CPU time for the job (user + system). */
  readonly cpuSeconds: number;
  /** Bytes of the shard's fragments (what the reduce jobs read). */
  readonly fragmentBytes: number;
}

/** The header of a partition's score blob; arrays `bits<k>`, `document<k>`, `position<k>` per key k of the layout. */
export interface PartitionMeta {
  readonly numDistinct: number;
  readonly numExcludedByPrompt: number;
  readonly keys: readonly {
    readonly numScored: number;
    readonly numGreen: number;
    readonly fakeScored: readonly number[];
    readonly fakeGreen: readonly number[];
  }[];
  readonly worker: string;
  readonly cpuSeconds: number;
}

export interface RunKeys {
  readonly config: string;
  readonly issued: string;
  map(shard: number): string;
  reduce(layout: number, partition: number): string;
}

export const runKeys = (runId: string): RunKeys => ({
  config: `tracemark:scan:${runId}:config`,
  issued: `tracemark:scan:${runId}:issued`,
  /** A hash: field `meta` and one field `<layout>:<partition>` per fragment. */
  map: (shard: number) => `tracemark:scan:${runId}:map:${shard}`,
  reduce: (layout: number, partition: number) => `tracemark:scan:${runId}:reduce:${layout}:${partition}`,
});

export const mapJobId = (runId: string, shard: number): string => `${runId}.map.${shard}`;
export const reduceJobId = (runId: string, layout: number, partition: number): string =>
  `${runId}.reduce.${layout}.${partition}`;

/** Token id arrays as one blob: lengths, then the ids. */
export function packOutputs(outputs: readonly Uint32Array[]): { lengths: Uint32Array; tokens: Uint32Array } {
  const lengths = Uint32Array.from(outputs, (output) => output.length);
  const tokens = new Uint32Array(lengths.reduce((sum, length) => sum + length, 0));
  let at = 0;
  for (const output of outputs) {
    tokens.set(output, at);
    at += output.length;
  }
  return { lengths, tokens };
}

export function unpackOutputs(lengths: Uint32Array, tokens: Uint32Array): Uint32Array[] {
  const outputs: Uint32Array[] = [];
  let at = 0;
  for (const length of lengths) {
    outputs.push(tokens.subarray(at, at + length));
    at += length;
  }
  return outputs;
}

/** A Redis URL as it may be shown: without user name or password. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return 'redis (unparsable URL)';
  }
}
