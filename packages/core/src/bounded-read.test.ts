import { describe, expect, it } from 'vitest';
import { readUpTo } from './index.ts';

/** A stream of the given chunks, counting how many were pulled. */
function chunked(chunks: readonly number[][]) {
  let pulled = 0;
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks[pulled++];
      if (next === undefined) controller.close();
      else controller.enqueue(Uint8Array.from(next));
    },
    cancel() {
      cancelled = true;
    },
  });
  return { stream, pulled: () => pulled, cancelled: () => cancelled };
}

describe('readUpTo', () => {
  it('gives every byte of a body within the limit, the limit itself included', async () => {
    const body = chunked([[1, 2], [3], [4, 5, 6]]);
    expect(await readUpTo(body.stream, 6)).toEqual(Uint8Array.from([1, 2, 3, 4, 5, 6]));
    expect(await readUpTo(null, 0)).toEqual(new Uint8Array(0));
  });

  it('stops at the first chunk past the limit and cancels the body', async () => {
    const body = chunked([[1, 2], [3, 4], [5], [6], [7]]);
    expect(await readUpTo(body.stream, 3)).toBeNull();
    expect(body.pulled()).toBeLessThanOrEqual(3);
    expect(body.cancelled()).toBe(true);
  });
});
