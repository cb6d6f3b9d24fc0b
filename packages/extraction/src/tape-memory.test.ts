import { describe, expect, it } from 'vitest';
import { EvidenceTape, type TapeMemory, TapeMemoryToucher } from './evidence-tape.ts';

const SPECIAL = 100_000;

/** Documents with repeats (a small vocabulary), prompts and a special token. */
function corpus(): { tokens: Uint32Array; prompt?: Uint32Array }[] {
  let seed = 11;
  const next = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const documents: { tokens: Uint32Array; prompt?: Uint32Array }[] = [];
  for (let d = 0; d < 60; d++) {
    const tokens = Uint32Array.from({ length: 200 + next(400) }, () => next(d % 3 === 0 ? 40 : 3000));
    if (d === 7) tokens[50] = SPECIAL;
    const prompt = d % 5 === 0 ? Uint32Array.from({ length: 30 }, () => next(40)) : undefined;
    documents.push(prompt === undefined ? { tokens } : { tokens, prompt });
  }
  return documents;
}

function tape(contextWidth: number, scheme: 'lefthash' | 'selfhash', expected: number, shared: boolean) {
  return new EvidenceTape({ scheme, contextWidth }, new Set([SPECIAL]), null, expected, shared);
}

/** The finished tape as plain arrays, for comparison. */
function finished(t: EvidenceTape) {
  const { tape: evaluation, origins, counts } = t.finish();
  const plain = (array: Uint32Array | null | undefined) => (array == null ? null : Array.from(array));
  return {
    windows: plain(evaluation.windows),
    candidateWindow: plain(evaluation.candidateWindow),
    candidateToken: plain(evaluation.candidateToken),
    promptWindow: plain(evaluation.promptWindow),
    promptToken: plain(evaluation.promptToken),
    offsets: plain(evaluation.grouped?.offsets),
    grouped: plain(evaluation.grouped?.tokens),
    order: plain(evaluation.grouped?.order),
    document: plain(origins.document),
    position: plain(origins.position),
    counts,
  };
}

describe('EvidenceTape.handOff: the memory finish writes, for another thread to touch', () => {
  it('a deferred tape in shared memory hands off its arrays, in groups, in the order finish writes them', () => {
    const lefthash = tape(4, 'lefthash', 100_000, true).handOff();
    expect(lefthash.length).toBeGreaterThanOrEqual(7);
    expect(lefthash.every((entry) => entry.array.buffer instanceof SharedArrayBuffer)).toBe(true);
    const groups = lefthash.map((entry) => entry.group);
    expect(groups).toEqual([...groups].sort((a, b) => a - b));
    expect(groups[0]).toBe(0);
    // The windows' table takes h words a position.
    expect(lefthash.some((entry) => entry.wordsPerPosition === 4)).toBe(true);
    expect(tape(3, 'selfhash', 100_000, true).handOff().length).toBeGreaterThanOrEqual(6);
    // Nothing to hand off: windows numbered as they come (h = 1), or arrays of this thread only.
    expect(tape(1, 'lefthash', 100_000, true).handOff()).toEqual([]);
    expect(tape(4, 'lefthash', 100_000, false).handOff()).toEqual([]);
    // Too late once a document is in.
    const started = tape(4, 'lefthash', 100_000, true);
    started.add(Uint32Array.of(1, 2, 3, 4, 5, 6));
    expect(started.handOff()).toEqual([]);
  });

  it('touched while documents come and after: the same tape as one that touches its own memory', () => {
    for (const [scheme, contextWidth] of [
      ['lefthash', 2],
      ['lefthash', 4],
      ['selfhash', 3],
    ] as const) {
      const documents = corpus();
      const alone = tape(contextWidth, scheme, 60_000, true);
      const handed = tape(contextWidth, scheme, 60_000, true);
      const toucher = new TapeMemoryToucher();
      toucher.add(handed.handOff());
      let positions = 0;
      for (const document of documents) {
        alone.add(document.tokens, document.prompt);
        handed.add(document.tokens, document.prompt);
        positions += document.tokens.length + (document.prompt?.length ?? 0);
        // A few pages at a time, as a thread between batches would.
        toucher.step(3, positions);
      }
      while (!toucher.step(5, positions));
      expect(finished(handed), `${scheme}(${contextWidth})`).toEqual(finished(alone));
    }
  });
});

describe('TapeMemoryToucher', () => {
  it('touches each page once per position reached, group by group, and changes no value', () => {
    const words = 8 * 1024;
    const first = new Uint32Array(new SharedArrayBuffer(4 * words)).map((_, i) => i * 7);
    const second = new Uint32Array(new SharedArrayBuffer(4 * 2 * words)).map((_, i) => i ^ 0xabcdef);
    const before = [first.slice(), second.slice()];
    const memory: TapeMemory[] = [
      { array: first, wordsPerPosition: 1, group: 0 },
      { array: second, wordsPerPosition: 2, group: 1 },
    ];
    const toucher = new TapeMemoryToucher();
    toucher.add(memory);
    // A page's worth of positions (1,024) at a time, at least one page each: with a budget of one page a
    // call, 3 calls for group 0 up to 3,000 positions, then 3 for group 1; the last says it is done.
    let calls = 0;
    while (!toucher.step(1, 3000)) calls++;
    expect(calls).toBe(5);
    // Nothing more to do until more positions come; then on from where each group stopped (6 + 6 calls).
    expect(toucher.step(1, 3000)).toBe(true);
    calls = 0;
    while (!toucher.step(1, words)) calls++;
    expect(calls).toBe(11);
    expect(toucher.step(1_000_000, words)).toBe(true);
    expect([first, second]).toEqual(before);
  });
});
