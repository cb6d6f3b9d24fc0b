/** The quota stage: reserve the most a completion may use, settle to what it used. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.ts';
import { secondsUntilReset } from '../quota.ts';
import type { PreparedCompletion } from './types.ts';

/** Settles a reservation to the tokens used; safe to call more than once (the first call counts). */
export type QuotaSettlement = (used: number) => Promise<void>;

export async function reserveQuota(
  fastify: FastifyInstance,
  request: FastifyRequest,
  prepared: PreparedCompletion,
): Promise<QuotaSettlement> {
  const key = request.apiKey!;
  const limit = key.dailyTokenQuota ?? fastify.gateway.config.dailyTokenQuota;
  const amount = prepared.maxTokens * prepared.prompts.length * prepared.n;
  // The request stage checked each factor; a value that got past it is this gateway's defect, not the store's.
  if (!Number.isSafeInteger(amount) || amount < 1) throw new Error(`quota: cannot reserve ${amount} tokens`);
  // Accounts the monitor links into a cluster draw on one quota (the cluster's counter starts when it forms).
  const quotaKey = fastify.gateway.monitoring.quotaKey(key);
  let reservation: Awaited<ReturnType<typeof fastify.quota.reserve>>;
  try {
    reservation = await fastify.quota.reserve(quotaKey, amount, limit);
  } catch (error) {
    throw new GatewayError(503, 'TM_ERR_STORAGE_UNAVAILABLE', 'the quota store is unavailable', {
      retryAfterSeconds: 5,
      cause: error,
    });
  }
  if (!reservation.granted) {
    fastify.metrics.rejected.inc({ reason: 'quota' });
    const remaining = Math.max(0, limit - reservation.used);
    throw new GatewayError(
      429,
      'TM_ERR_QUOTA_EXCEEDED',
      `daily token quota of ${limit} reached: this request may use up to ${amount} tokens and ${remaining} remain today (quotas reset at 00:00 UTC)`,
      { retryAfterSeconds: secondsUntilReset() },
    );
  }
  let settled = false;
  return async (used: number) => {
    if (settled) return;
    settled = true;
    await fastify.quota.adjust(quotaKey, reservation.day, used - amount).catch((error: unknown) => {
      request.log.warn({ err: error }, 'could not settle the token quota');
    });
  };
}
