/**
 * Daily completion-token quotas per API key, per UTC day: in memory by default (seeded from the issuance log,
 * so a restart does not reset a day's usage), in Redis when REDIS_URL is set (shared by every instance).
 * A request reserves its worst case (max_tokens × choices) before generating and settles to what it used.
 */
import type { Redis } from 'ioredis';

export interface QuotaReservation {
  readonly granted: boolean;
  /** Tokens used today, including this reservation when granted. */
  readonly used: number;
  readonly day: string;
}

export interface QuotaStore {
  reserve(apiKeyId: string, amount: number, limit: number, now?: Date): Promise<QuotaReservation>;
  /** Adds `delta` (negative to refund) to the day the reservation was made on. */
  adjust(apiKeyId: string, day: string, delta: number): Promise<void>;
  used(apiKeyId: string, now?: Date): Promise<number>;
}

/**
 * Refuses an amount that is not a whole number of tokens: a NaN stored in a counter would make every later
 * comparison with the limit pass, and the quota would hold no more.
 */
function checkTokens(what: string, value: number, signed: boolean): void {
  if (!Number.isSafeInteger(value) || (!signed && value < 0)) {
    throw new RangeError(
      `quota: ${what} must be a ${signed ? '' : 'non-negative '}whole number of tokens, not ${value}`,
    );
  }
}

export function utcDay(now: Date): string {
  return now.toISOString().slice(0, 10);
}

/** Seconds until the next UTC midnight, when quotas reset. */
export function secondsUntilReset(now: Date = new Date()): number {
  const next = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
  return Math.max(1, Math.ceil((next - now.getTime()) / 1000));
}

/** Tokens issued to a key since the start of `day`, from the issuance log. */
export type UsageSeed = (apiKeyId: string, dayStartIso: string) => Promise<number>;

export function createMemoryQuotaStore(seed: UsageSeed): QuotaStore {
  const usage = new Map<string, number>();
  const load = async (apiKeyId: string, day: string): Promise<string> => {
    const key = `${apiKeyId}\0${day}`;
    if (!usage.has(key)) {
      const seeded = await seed(apiKeyId, `${day}T00:00:00.000Z`);
      if (!usage.has(key)) usage.set(key, seeded);
      for (const other of usage.keys()) if (!other.endsWith(day)) usage.delete(other);
    }
    return key;
  };
  return {
    async reserve(apiKeyId, amount, limit, now = new Date()) {
      checkTokens('amount', amount, false);
      const day = utcDay(now);
      const key = await load(apiKeyId, day);
      const current = usage.get(key)!;
      if (current + amount > limit) return { granted: false, used: current, day };
      usage.set(key, current + amount);
      return { granted: true, used: current + amount, day };
    },
    async adjust(apiKeyId, day, delta) {
      checkTokens('delta', delta, true);
      const key = `${apiKeyId}\0${day}`;
      const current = usage.get(key);
      if (current !== undefined) usage.set(key, Math.max(0, current + delta));
    },
    async used(apiKeyId, now = new Date()) {
      return usage.get(await load(apiKeyId, utcDay(now))) ?? 0;
    },
  };
}

const RESERVE_SCRIPT = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if current + amount > tonumber(ARGV[2]) then return {0, current} end
local updated = redis.call('INCRBY', KEYS[1], amount)
redis.call('EXPIRE', KEYS[1], 172800)
return {1, updated}
`;

export function createRedisQuotaStore(
  redis: Redis,
  seed: UsageSeed,
  prefix = 'tracemark:quota:',
): QuotaStore {
  const keyOf = (apiKeyId: string, day: string) => `${prefix}${apiKeyId}:${day}`;
  const ensureSeeded = async (apiKeyId: string, day: string): Promise<string> => {
    const key = keyOf(apiKeyId, day);
    if ((await redis.exists(key)) === 0) {
      const seeded = await seed(apiKeyId, `${day}T00:00:00.000Z`);
      await redis.set(key, String(seeded), 'EX', 172800, 'NX');
    }
    return key;
  };
  return {
    async reserve(apiKeyId, amount, limit, now = new Date()) {
      checkTokens('amount', amount, false);
      const day = utcDay(now);
      const key = await ensureSeeded(apiKeyId, day);
      const [granted, used] = (await redis.eval(RESERVE_SCRIPT, 1, key, String(amount), String(limit))) as [
        number,
        number,
      ];
      return { granted: granted === 1, used: Number(used), day };
    },
    async adjust(apiKeyId, day, delta) {
      checkTokens('delta', delta, true);
      if (delta !== 0) await redis.incrby(keyOf(apiKeyId, day), delta);
    },
    async used(apiKeyId, now = new Date()) {
      const key = await ensureSeeded(apiKeyId, utcDay(now));
      return Number((await redis.get(key)) ?? 0);
    },
  };
}
