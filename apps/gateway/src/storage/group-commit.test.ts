/**
 * The group-commit scheduler on its own, with a commit whose completion the test controls: a lone append
 * commits at once; appends that arrive during a commit share the next one, in call order, bounded; each
 * caller settles with its own commit only; a failed commit fails exactly its callers.
 */
import { describe, expect, it } from 'vitest';
import { createGroupCommit } from './group-commit.ts';

/** A commit that records each call and settles only when the test says so. */
function controlledCommit() {
  const calls: { records: readonly string[]; settle: (error?: Error) => void }[] = [];
  const commit = (records: readonly string[]) =>
    new Promise<string[]>((resolve, reject) => {
      calls.push({
        records,
        settle: (error) =>
          error === undefined ? resolve(records.map((r) => `${r}@${calls.length}`)) : reject(error),
      });
    });
  return { calls, commit };
}

/** Settled state of a promise, read after pending callbacks have run. */
async function state<T>(promise: Promise<T>): Promise<'pending' | 'resolved' | 'rejected'> {
  let result: 'pending' | 'resolved' | 'rejected' = 'pending';
  promise.then(
    () => (result = 'resolved'),
    () => (result = 'rejected'),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return result;
}

describe('group commit', () => {
  it('commits a lone append at once, synchronously, with nothing else', () => {
    const { calls, commit } = controlledCommit();
    const group = createGroupCommit(commit);
    void group.append(['a']);
    expect(calls.map((call) => call.records)).toEqual([['a']]);
  });

  it('batches the appends that arrive during a commit into the next one, in call order', async () => {
    const { calls, commit } = controlledCommit();
    const group = createGroupCommit(commit);
    const first = group.append(['a']);
    const queued = [group.append(['b', 'c']), group.append(['d']), group.append(['e', 'f', 'g'])];
    expect(calls).toHaveLength(1);
    calls[0]!.settle();
    expect(await first).toEqual(['a@1']);
    expect(calls.map((call) => call.records)).toEqual([['a'], ['b', 'c', 'd', 'e', 'f', 'g']]);
    // Their commit has not returned: none of them is released.
    for (const promise of queued) expect(await state(promise)).toBe('pending');
    calls[1]!.settle();
    expect(await Promise.all(queued)).toEqual([['b@2', 'c@2'], ['d@2'], ['e@2', 'f@2', 'g@2']]);
    await group.idle();
  });

  it('bounds a batch by maxBatchRecords without splitting an append', async () => {
    const { calls, commit } = controlledCommit();
    const group = createGroupCommit(commit, 3);
    const all = [
      group.append(['a']),
      group.append(['b', 'c']),
      group.append(['d']),
      group.append(['e', 'f', 'g', 'h', 'i']),
      group.append(['j']),
    ];
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      calls[i]!.settle();
    }
    await Promise.all(all);
    expect(calls.map((call) => call.records)).toEqual([
      ['a'],
      ['b', 'c', 'd'],
      ['e', 'f', 'g', 'h', 'i'],
      ['j'],
    ]);
  });

  it('fails every caller of a failed commit with its error, and only those', async () => {
    const { calls, commit } = controlledCommit();
    const group = createGroupCommit(commit);
    const first = group.append(['a']);
    const failing = [group.append(['b']), group.append(['c', 'd'])];
    calls[0]!.settle();
    await first;
    const later = group.append(['e']);
    const error = new Error('disk full');
    calls[1]!.settle(error);
    for (const promise of failing) await expect(promise).rejects.toBe(error);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls.map((call) => call.records)).toEqual([['a'], ['b', 'c', 'd'], ['e']]);
    calls[2]!.settle();
    expect(await later).toEqual(['e@3']);
  });

  it('rejects when a commit throws synchronously, and keeps going', async () => {
    let fail = true;
    const group = createGroupCommit((records: readonly string[]): Promise<string[]> => {
      if (fail) {
        fail = false;
        throw new Error('no connection');
      }
      return Promise.resolve([...records]);
    });
    await expect(group.append(['a'])).rejects.toThrow('no connection');
    expect(await group.append(['b'])).toEqual(['b']);
  });

  it('idle() waits for queued and in-flight commits; an empty append commits nothing', async () => {
    const { calls, commit } = controlledCommit();
    const group = createGroupCommit(commit);
    expect(await group.append([])).toEqual([]);
    expect(calls).toHaveLength(0);
    void group.append(['a']);
    void group.append(['b']);
    const idle = group.idle();
    calls[0]!.settle();
    expect(await state(idle)).toBe('pending');
    calls[1]!.settle();
    await idle;
  });

  it('commits an append made as soon as the previous one resolved', async () => {
    const commits: (readonly string[])[] = [];
    const group = createGroupCommit(async (records: readonly string[]) => {
      commits.push(records);
      return [...records];
    });
    for (const name of ['a', 'b', 'c']) expect(await group.append([name])).toEqual([name]);
    await group.append(['d']).then(() => group.append(['e']));
    expect(commits).toEqual([['a'], ['b'], ['c'], ['d'], ['e']]);
  });

  it('refuses a bound below one', () => {
    expect(() => createGroupCommit(async (r: readonly string[]) => [...r], 0)).toThrow(RangeError);
  });
});
