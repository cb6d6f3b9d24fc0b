/**
 * Group commit of issuance records: appends that arrive while a commit is in flight wait, and the next commit
 * takes all of them (up to a bound) in one transaction: one fsync (SQLite) or one COMMIT (PostgreSQL) for the
 * lot. A lone append starts its commit at once, with no added wait. Each caller's promise settles with the
 * commit that holds its records: resolved once that commit has returned (durable), rejected with its error if
 * it failed, so a response is released only after its own record is durable. A caller's records stay
 * together and callers keep their order: append order is seq order is leaf order.
 */

/** Records in one commit, unless a single append brings more (its records are never split). */
export const DEFAULT_MAX_BATCH_RECORDS = 64;

export interface GroupCommit<Input, Output> {
  /** Queues `records` for the next commit (or commits them now when none is in flight); one output each. */
  append(records: readonly Input[]): Promise<Output[]>;
  /** Resolves once nothing is queued or in flight. */
  idle(): Promise<void>;
}

interface Waiter<Input, Output> {
  readonly records: readonly Input[];
  readonly resolve: (outputs: Output[]) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * `commit` writes its records in one all-or-nothing transaction and returns one output per record, in order;
 * it is never called again before its promise settles.
 */
export function createGroupCommit<Input, Output>(
  commit: (records: readonly Input[]) => Promise<Output[]>,
  maxBatchRecords: number = DEFAULT_MAX_BATCH_RECORDS,
): GroupCommit<Input, Output> {
  if (!Number.isInteger(maxBatchRecords) || maxBatchRecords < 1)
    throw new RangeError(`maxBatchRecords must be a positive integer, got ${maxBatchRecords}`);
  const queue: Waiter<Input, Output>[] = [];
  /** True from the start of a drain until it finds the queue empty, in the same synchronous step. */
  let active = false;
  let draining: Promise<void> = Promise.resolve();

  /** The oldest waiters whose records fit in one batch (at least one). */
  const takeBatch = (): Waiter<Input, Output>[] => {
    const batch = [queue.shift()!];
    let size = batch[0]!.records.length;
    while (queue.length > 0 && size + queue[0]!.records.length <= maxBatchRecords) {
      size += queue[0]!.records.length;
      batch.push(queue.shift()!);
    }
    return batch;
  };

  const drain = async (): Promise<void> => {
    try {
      while (queue.length > 0) {
        const batch = takeBatch();
        const records = batch.flatMap((waiter) => waiter.records);
        let outputs: Output[];
        try {
          outputs = await commit(records);
          if (outputs.length !== records.length)
            throw new Error(`a commit of ${records.length} records returned ${outputs.length}`);
        } catch (error) {
          // One transaction: nothing of the batch was written, and every caller in it fails.
          for (const waiter of batch) waiter.reject(error);
          continue;
        }
        let offset = 0;
        for (const waiter of batch) {
          waiter.resolve(outputs.slice(offset, offset + waiter.records.length));
          offset += waiter.records.length;
        }
      }
    } finally {
      // In the same synchronous step as the empty-queue check: an append resolved above that appends again
      // (its continuation runs after this) finds no drain active and starts one.
      active = false;
    }
  };

  return {
    append(records) {
      if (records.length === 0) return Promise.resolve([]);
      return new Promise<Output[]>((resolve, reject) => {
        queue.push({ records, resolve, reject });
        // Nothing in flight: commit now (drain calls commit synchronously, before its first await).
        if (!active) {
          active = true;
          draining = drain();
        }
      });
    },
    async idle() {
      while (active) await draining;
    },
  };
}
