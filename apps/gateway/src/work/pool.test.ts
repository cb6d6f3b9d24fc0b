/**
 * The work pool on its own: the same numbers inline, on a thread and from the detection library; the
 * per-request budget (422, the thread replaced); the bounded queue (503 with Retry-After); no secret in
 * what crosses to the threads' tasks.
 */
import { createWatermarkKey, deriveSubkey } from '@tracemark/core';
import { createTextDetector } from '@tracemark/detection';
import { generateSigningKey } from '@tracemark/provenance';
import { afterAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../errors.ts';
import { createWorkPool, INLINE_WORK_LIMIT, type WorkPool } from './pool.ts';

const root = createWatermarkKey();
const keys = {
  watermarkKey: deriveSubkey(root, 'epoch/2026'),
  rootWatermarkKey: root,
  logSigningKey: generateSigningKey('tracemark.test/pool'),
};
const PROSE =
  'The committee met on Tuesday to discuss the budget for the coming year, and after a long debate it agreed to postpone the vote. ';

const pools: WorkPool[] = [];
const pool = (options: Partial<Parameters<typeof createWorkPool>[0]> = {}) => {
  const created = createWorkPool({ keys, threads: 1, budgetMs: 30_000, queueLimit: 8, ...options });
  pools.push(created);
  return created;
};
afterAll(async () => {
  await Promise.all(pools.map((created) => created.close()));
});

async function refusal(promise: Promise<unknown>): Promise<GatewayError> {
  const error = await promise.then(
    () => null,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(GatewayError);
  return error as GatewayError;
}

describe('work pool', () => {
  it('computes on a thread exactly what runs inline and what the detection library returns', async () => {
    const threaded = pool({ inlineLimit: -1 });
    const text = PROSE.repeat(10);
    expect(text.length).toBeGreaterThan(INLINE_WORK_LIMIT);
    const library = createTextDetector({ keys: [keys.watermarkKey], window: true });
    const expected = library.detectText(text, { source: 'request', prompt: 'The committee' });
    const task = { kind: 'detect', text, prompt: 'The committee', window: true } as const;
    expect(await threaded.run(task)).toEqual(expected);
    expect(await threaded.context.run(task)).toEqual({ ok: true, value: expected });
    expect(Array.from(await threaded.run({ kind: 'encode', text, param: 'prompt' }))).toEqual(
      Array.from(library.tokenizer.encodeFast(text)),
    );
    // Verification's analysis under the root key and a sub-key, rebuilt in the thread from its material.
    const analysis = await threaded.run({
      kind: 'verify',
      input: { text },
      keys: [{ kind: 'root' }, { kind: 'subkey', label: '2026' }],
    });
    expect(analysis.document.keysTested).toBe(2);
    expect(analysis.document.keys.map((key) => key.keyId)).toEqual([root.keyId, keys.watermarkKey.keyId]);
    expect(analysis.tokens.numTokens).toBe(library.tokenizer.encodeFast(text).length);
  });

  it('answers a client failure on a thread as the 400 it would be inline', async () => {
    const threaded = pool({ inlineLimit: -1 });
    const unused = await refusal(
      threaded.run({ kind: 'verify', input: { tokens: [100256] }, keys: [{ kind: 'current' }] }),
    );
    expect([unused.statusCode, unused.code, unused.param]).toEqual([400, 'TM_ERR_INVALID_TOKENS', 'tokens']);
    expect(unused.message).toContain('100256');
    const outOfRange = await refusal(
      threaded.run({ kind: 'detect', tokens: [1, 99_999_999], window: false }),
    );
    expect([outOfRange.statusCode, outOfRange.code]).toEqual([400, 'TM_ERR_INVALID_TOKENS']);
  });

  it('stops a task past its budget with 422 TM_ERR_WORK_BUDGET naming the limit, and replaces the thread', async () => {
    const limited = pool({ budgetMs: 20 });
    // Tokenizing a megabyte takes far longer than 20 ms with any tokenizer.
    const text = PROSE.repeat(8000);
    const started = Date.now();
    const error = await refusal(limited.run({ kind: 'detect', text, window: false }));
    expect([error.statusCode, error.code, error.param]).toEqual([422, 'TM_ERR_WORK_BUDGET', 'text']);
    expect(error.message).toContain('20 ms');
    expect(error.message).toContain('TRACEMARK_WORK_BUDGET_MS');
    expect(Date.now() - started).toBeLessThan(10_000);
    // The next task gets a fresh thread (its start does not count against the budget).
    const small = await limited.run({ kind: 'encode', text: PROSE.repeat(9), param: 'prompt' });
    expect(small.length).toBeGreaterThan(200);
    expect(limited.stats()).toEqual({ threads: 1, running: 0, queued: 0 });
  });

  it('refuses beyond its queue with 503 TM_ERR_OVERLOADED and Retry-After, and serves again after', async () => {
    const busy = pool({ queueLimit: 1, budgetMs: 30_000 });
    const text = PROSE.repeat(4000);
    const first = busy.run({ kind: 'detect', text, window: true });
    const second = busy.run({ kind: 'detect', text, window: false });
    expect(busy.stats()).toEqual({ threads: 1, running: 1, queued: 1 });
    const third = await refusal(busy.run({ kind: 'detect', text, window: false }));
    expect([third.statusCode, third.code]).toEqual([503, 'TM_ERR_OVERLOADED']);
    expect(third.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    // Small inputs run inline: never queued, never refused.
    expect((await busy.run({ kind: 'detect', text: PROSE, window: false })).numTokens).toBeGreaterThan(10);
    expect((await first).numTokens).toBeGreaterThan(50_000);
    expect((await second).numTokens).toBeGreaterThan(50_000);
    expect(busy.stats()).toEqual({ threads: 1, running: 0, queued: 0 });
  });

  it('a request that waits longer than the budget for a thread is refused with 503', async () => {
    const slow = pool({ queueLimit: 4, budgetMs: 300 });
    const text = PROSE.repeat(8000);
    const first = slow.run({ kind: 'detect', text, window: false });
    const waited = await refusal(slow.run({ kind: 'detect', text, window: false }));
    expect([waited.statusCode, waited.code]).toEqual([503, 'TM_ERR_OVERLOADED']);
    // The first started only when its thread was up, so its budget had not run out when the second gave up.
    await first.catch((error: unknown) => expect((error as GatewayError).code).toBe('TM_ERR_WORK_BUDGET'));
  });

  it('ends waiting and running tasks with 503 TM_ERR_SHUTTING_DOWN when it closes', async () => {
    const closing = createWorkPool({ keys, threads: 1, budgetMs: 30_000, queueLimit: 4 });
    const text = PROSE.repeat(8000);
    const running = refusal(closing.run({ kind: 'detect', text, window: false }));
    const waiting = refusal(closing.run({ kind: 'detect', text, window: false }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    await closing.close();
    expect((await waiting).code).toBe('TM_ERR_SHUTTING_DOWN');
    expect((await running).code).toBe('TM_ERR_SHUTTING_DOWN');
    expect((await refusal(closing.run({ kind: 'detect', text, window: false }))).code).toBe(
      'TM_ERR_SHUTTING_DOWN',
    );
  });
});
