/**
 * The risk API as the security page uses it: GET /v1/admin/risk, an account's detail, and the policy
 * actions, against this page's own origin with an admin key held in memory (sent only in the Authorization
 * header). Errors are the client's TracemarkApiError, so explainError words them.
 */
import { CLIENT_ERROR_CODES } from '@tracemark/client';
import { ApiError } from './api.ts';

export type AccountStatus = 'active' | 'throttled' | 'review' | 'suspended';
export type RiskAction = 'throttle' | 'review' | 'suspend' | 'clear';

export interface RiskReason {
  readonly code: string;
  readonly message: string;
  readonly value?: number;
  readonly threshold?: number;
  readonly strength?: number;
  readonly principal: string;
  readonly window: { readonly name: string; readonly from: number; readonly to: number };
  readonly volume: {
    readonly requests: number;
    readonly promptTokens: number;
    readonly completionTokens: number;
  };
  readonly inputDistribution: Readonly<Record<string, number | null>>;
  readonly firstSeen: number;
  readonly lastSeen: number;
  readonly links?: Readonly<Record<string, number>>;
  readonly cluster?: string;
}

export interface RiskAccount {
  readonly account: string;
  readonly score: number;
  readonly flagged: boolean;
  readonly reasons: readonly RiskReason[];
  readonly cluster: string | null;
  readonly status: AccountStatus;
}

export interface RiskCluster {
  readonly id: string;
  readonly accounts: readonly string[];
  readonly score: number;
  readonly flagged: boolean;
  readonly reasons: readonly RiskReason[];
}

export interface RiskReport {
  readonly at: number;
  readonly accounts: readonly RiskAccount[];
  readonly clusters: readonly RiskCluster[];
}

export interface SeriesBucket {
  readonly start: number;
  readonly requests: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly reasoning: number;
  readonly enumeration: number;
  readonly nearDuplicates: number;
}

export interface RiskActionRecord {
  readonly id: number;
  readonly at: string;
  readonly account: string;
  readonly action: RiskAction;
  readonly reason: string;
  readonly adminKeyId: string;
}

export interface AccountRisk extends RiskAccount {
  readonly firstSeen: number;
  readonly lastSeen: number;
  readonly totalRequests: number;
  readonly keyCreatedAt: number | null;
  readonly subnet: string | null;
  readonly subnets: readonly string[];
  readonly userAgent: string | null;
  readonly series: readonly SeriesBucket[];
  readonly findings: readonly {
    readonly kind: 'input' | 'output';
    readonly rule: string;
    readonly count: number;
    readonly redacted: number;
    readonly refused: number;
  }[];
  readonly actions: readonly RiskActionRecord[];
}

export interface RiskApi {
  report(): Promise<RiskReport>;
  account(account: string): Promise<AccountRisk>;
  act(
    account: string,
    action: RiskAction,
    reason: string,
  ): Promise<{ action: RiskActionRecord; status: AccountStatus }>;
}

const TIMEOUT_MS = 30_000;

/** The risk API with `key`; every call goes to this page's origin. */
export function connectRisk(key: string, origin: string = window.location.origin): RiskApi {
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const endpoint = `${method} ${path.replace(/\/accounts\/[^/]+/, '/accounts/:account')}`;
    let response: Response;
    try {
      response = await fetch(`${origin}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (error) {
      const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
      throw new ApiError(
        timedOut ? 'the gateway did not answer in time' : 'the gateway could not be reached',
        {
          status: 0,
          code: timedOut ? CLIENT_ERROR_CODES.timeout : CLIENT_ERROR_CODES.network,
          endpoint,
        },
      );
    }
    const parsed = (await response.json().catch(() => null)) as
      | (T & { error?: { message?: string; code?: string; param?: string | null } })
      | null;
    if (!response.ok) {
      const retry = Number(response.headers.get('retry-after'));
      throw new ApiError(parsed?.error?.message ?? `HTTP ${response.status}`, {
        status: response.status,
        code: parsed?.error?.code ?? CLIENT_ERROR_CODES.badResponse,
        param: parsed?.error?.param ?? null,
        endpoint,
        ...(Number.isFinite(retry) && retry > 0 ? { retryAfterSeconds: retry } : {}),
      });
    }
    if (parsed === null) {
      throw new ApiError('the answer was not JSON', {
        status: response.status,
        code: CLIENT_ERROR_CODES.badResponse,
        endpoint,
      });
    }
    return parsed;
  };
  const accountPath = (account: string) => `/v1/admin/risk/accounts/${encodeURIComponent(account)}`;
  return {
    report: () => call('GET', '/v1/admin/risk'),
    account: (account) => call('GET', accountPath(account)),
    act: (account, action, reason) => call('POST', `${accountPath(account)}/actions`, { action, reason }),
  };
}

/** The supervised radioactivity scan of one account's issued outputs (tracemark scan --issued … --account). */
export function scanCommand(account: string, origin: string): string {
  const quoted = /^[\w.@:/-]+$/.test(account) ? account : `'${account.replaceAll("'", "'\\''")}'`;
  return `TRACEMARK_API_KEY=… tracemark scan --key KEY_FILE --issued ${origin} --api-key-env TRACEMARK_API_KEY --account ${quoted} SUSPECT.jsonl`;
}
