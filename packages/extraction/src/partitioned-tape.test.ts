import { createWatermarkKey, type SchemeName, type WatermarkKey } from '@tracemark/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IssuedWindowSet } from './issued.ts';
import {
  layoutCounts,
  mergePartition,
  type PartitionKeyScore,
  partitionedScanReport,
  ShardTape,
  scorePartition,
} from './partitioned-tape.ts';
import { type ScanReport, scanCorpus } from './scan.ts';

const SPECIAL = 7;

interface Doc {
  tokens: number[];
  prompt?: number[];
}

/** The partitioned pipeline: shards of consecutive documents, per-partition merge and score, one report. */
function partitionedScan(
  docs: readonly Doc[],
  keys: readonly WatermarkKey[],
  shardSizes: readonly number[],
  numPartitions: number,
  options: { fakeKeys: number; issued: IssuedWindowSet | null },
): ScanReport {
  const layouts = [...new Set(keys.map((key) => `${key.scheme.name}/${key.scheme.contextWidth}`))];
  const shards: Doc[][] = [];
  let at = 0;
  for (const size of shardSizes) {
    shards.push(docs.slice(at, at + size));
    at += size;
  }
  shards.push(docs.slice(at));
  const documentOffsets: number[] = [];
  let offset = 0;
  for (const shard of shards) {
    documentOffsets.push(offset);
    offset += shard.length;
  }
  const scores = new Map<WatermarkKey, PartitionKeyScore[]>(keys.map((key) => [key, []]));
  const counts = new Map<string, ReturnType<typeof layoutCounts>>();
  for (const id of layouts) {
    const [scheme, width] = id.split('/') as [SchemeName, string];
    const layout = { scheme, contextWidth: Number(width) };
    const shardTapes = shards.map((shard) => {
      const tape = new ShardTape(layout, new Set([SPECIAL]), options.issued, numPartitions);
      for (const doc of shard) tape.add(doc.tokens, doc.prompt);
      return tape;
    });
    const fragments = shardTapes.map((tape) => tape.fragments());
    const layoutKeys = keys.filter((key) => `${key.scheme.name}/${key.scheme.contextWidth}` === id);
    const partitions = [];
    for (let p = 0; p < numPartitions; p++) {
      const partition = mergePartition(
        layout,
        fragments.map((shard) => shard[p]!),
        documentOffsets,
      );
      partitions.push(partition);
      scorePartition(partition, layoutKeys, { fakeKeys: options.fakeKeys, seed: 'test-seed' }).forEach(
        (score, k) => {
          scores.get(layoutKeys[k]!)!.push(score);
        },
      );
    }
    counts.set(
      id,
      layoutCounts(
        shardTapes.map((tape) => tape.counts()),
        partitions,
      ),
    );
  }
  return partitionedScanReport({
    keys,
    scores: keys.map((key) => scores.get(key)!),
    counts: keys.map((key) => counts.get(`${key.scheme.name}/${key.scheme.contextWidth}`)!),
    sources: docs.map((_, d) => `doc${d}`),
    fakeKeys: options.fakeKeys,
    fakeKeySeed: 'test-seed',
    issued:
      options.issued === null
        ? null
        : { numOutputs: options.issued.numOutputs, numTokens: options.issued.numTokens },
  });
}

const tokenArb = fc.integer({ min: 0, max: 12 });
const docArb = fc.record(
  { tokens: fc.array(tokenArb, { maxLength: 60 }), prompt: fc.array(tokenArb, { maxLength: 12 }) },
  { requiredKeys: ['tokens'] },
);
const schemeArb = fc.record({
  name: fc.constantFrom<SchemeName>('lefthash', 'selfhash'),
  contextWidth: fc.integer({ min: 1, max: 4 }),
  gamma: fc.constantFrom(0.25, 0.5),
});

describe('a scan cut into shards and token partitions gives the one-pass report', () => {
  it('every scheme, prompts, the supervised filter and fake keys: the same report, field for field', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(schemeArb, { minLength: 1, maxLength: 3 }),
        fc.array(docArb, { minLength: 1, maxLength: 14 }),
        fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 4 }),
        fc.integer({ min: 1, max: 9 }),
        fc.option(fc.array(fc.array(tokenArb, { maxLength: 30 }), { minLength: 1, maxLength: 4 })),
        fc.constantFrom(0, 24),
        async (schemes, docs, shardSizes, numPartitions, issuedOutputs, fakeKeys) => {
          const keys = schemes.map((scheme, i) =>
            createWatermarkKey({ secret: new Uint8Array(32).fill(i + 1), scheme }),
          );
          const issued =
            issuedOutputs === null
              ? null
              : await IssuedWindowSet.fromOutputs(issuedOutputs, {
                  schemes: keys.map((key) => key.scheme),
                  specialTokenIds: [SPECIAL],
                });
          const single = await scanCorpus({
            documents: docs.map((doc, d) => ({ ...doc, source: `doc${d}` })),
            keys,
            specialTokenIds: [SPECIAL],
            fakeKeys,
            fakeKeySeed: 'test-seed',
            ...(issued === null ? {} : { issuedWindows: issued }),
          });
          const partitioned = partitionedScan(docs, keys, shardSizes, numPartitions, { fakeKeys, issued });
          expect(JSON.stringify(partitioned)).toBe(JSON.stringify(single));
        },
      ),
      { numRuns: 150, seed: 17 },
    );
  });
});
