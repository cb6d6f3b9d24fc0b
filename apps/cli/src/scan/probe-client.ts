import { readUpTo } from '@tracemark/core';
import { printable } from '../io.ts';

/**
 * The HTTP side of `tracemark probe`: one completion from an OpenAI-compatible endpoint, with
 * retries (exponential backoff with jitter on 408/409/425/429/5xx, network errors and timeouts,
 * honouring Retry-After and retry-after-ms) and a request-rate limit shared by all requests.
 */

export type ProbeApi = 'chat' | 'completions';

export interface ProbeClientOptions {
  /** Base URL, e.g. http://host:8000 (a trailing /v1 is accepted). */
  readonly endpoint: string;
  readonly api: ProbeApi;
  readonly model: string;
  readonly maxTokens: number;
  readonly temperature: number;
  readonly apiKey?: string;
  /** Attempts after the first (default 6). */
  readonly retries: number;
  /** Per-request timeout in milliseconds. */
  readonly timeoutMs: number;
  /** Requests per second at most (shared by all concurrent requests); 0 for no limit. */
  readonly rate: number;
  /** First backoff delay in milliseconds (doubled per attempt, with jitter), and the largest. */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Longest Retry-After honoured, in milliseconds (a larger one is capped). */
  readonly maxRetryAfterMs?: number;
  /** Largest reply read, in bytes (default {@link MAX_REPLY_BYTES}); a larger one fails that prompt. */
  readonly maxReplyBytes?: number;
}

/**
 * The largest reply `probe` reads by default: a completion of thousands of tokens is tens of kilobytes, and the
 * endpoint is the suspect's, so a reply without end must not fill this process's memory.
 */
export const MAX_REPLY_BYTES: number = 8 * 1024 * 1024;

export interface Completion {
  readonly output: string;
  readonly finishReason: string | null;
  readonly model: string | null;
  /** Retries it took. */
  readonly retries: number;
}

/** A failure that retrying will not fix (a 4xx other than 408/409/425/429, or an unusable reply). */
export class ProbeRequestError extends Error {
  override readonly name = 'ProbeRequestError';
  constructor(
    message: string,
    readonly status: number | null,
    /** True when every request would fail the same way (401, 403): the run stops. */
    readonly fatal: boolean,
  ) {
    super(message);
  }
}

const RETRYABLE = new Set([408, 409, 425, 429]);

/**
 * Text from the endpoint as an error shows it: on one line (runs of white space as one space), at most 200
 * characters, controls and bidirectional overrides escaped ({@link printable}).
 */
export function replyExcerpt(text: string): string {
  return printable(text.replace(/\s+/g, ' ').slice(0, 200));
}

/** The reply's body as text, read up to `limit` bytes; a longer one is cancelled and refused. */
async function readReply(response: Response, url: string, limit: number): Promise<string> {
  const bytes = await readUpTo(response.body, limit);
  if (bytes === null) {
    throw new ProbeRequestError(
      `${url}: HTTP ${response.status} with a reply over ${limit} bytes (not read further)`,
      response.status,
      false,
    );
  }
  return new TextDecoder().decode(bytes);
}

/** The request URL for a base endpoint. */
export function completionsUrl(endpoint: string, api: ProbeApi): string {
  let base = endpoint.trim().replace(/\/+$/, '');
  if (base.endsWith('/v1')) base = base.slice(0, -3);
  return `${base}/v1/${api === 'chat' ? 'chat/completions' : 'completions'}`;
}

/** Retry-After (seconds or an HTTP date) or retry-after-ms, in milliseconds; null when absent. */
export function retryAfterMs(headers: Headers, now: number = Date.now()): number | null {
  const ms = headers.get('retry-after-ms');
  if (ms !== null && Number.isFinite(Number(ms)) && Number(ms) >= 0) return Number(ms);
  const value = headers.get('retry-after');
  if (value === null) return null;
  if (/^\s*\d+(\.\d+)?\s*$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface ProbeClient {
  complete(prompt: string): Promise<Completion>;
  /** Retries so far, all requests together. */
  readonly retries: number;
}

export function createProbeClient(options: ProbeClientOptions): ProbeClient {
  const url = completionsUrl(options.endpoint, options.api);
  const backoff = options.backoffMs ?? 500;
  const maxBackoff = options.maxBackoffMs ?? 30_000;
  const maxRetryAfter = options.maxRetryAfterMs ?? 120_000;
  const maxReplyBytes = options.maxReplyBytes ?? MAX_REPLY_BYTES;
  const interval = options.rate > 0 ? 1000 / options.rate : 0;
  let nextSlot = 0;
  let totalRetries = 0;

  /** Waits for this request's slot under the rate limit. */
  const acquire = async (): Promise<void> => {
    const now = Date.now();
    const at = Math.max(now, nextSlot);
    nextSlot = at + interval;
    if (at > now) await sleep(at - now);
  };

  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (options.apiKey !== undefined) headers.authorization = `Bearer ${options.apiKey}`;

  const body = (prompt: string): string =>
    JSON.stringify({
      model: options.model,
      ...(options.api === 'chat' ? { messages: [{ role: 'user', content: prompt }] } : { prompt }),
      max_tokens: options.maxTokens,
      temperature: options.temperature,
      n: 1,
      stream: false,
    });

  const parse = (data: unknown): Omit<Completion, 'retries'> | null => {
    const choice = (data as { choices?: unknown[] } | null)?.choices?.[0] as
      | { message?: { content?: unknown }; text?: unknown; finish_reason?: unknown }
      | undefined;
    const output = options.api === 'chat' ? choice?.message?.content : choice?.text;
    if (typeof output !== 'string') return null;
    const model = (data as { model?: unknown }).model;
    return {
      output,
      finishReason: typeof choice?.finish_reason === 'string' ? choice.finish_reason : null,
      model: typeof model === 'string' ? model : null,
    };
  };

  const complete = async (prompt: string): Promise<Completion> => {
    let lastProblem = '';
    for (let attempt = 0; ; attempt++) {
      await acquire();
      let wait: number | null = null;
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers,
          body: body(prompt),
          signal: AbortSignal.timeout(options.timeoutMs),
          // A completions endpoint answers where it was asked: a redirect is refused, not followed (a POST
          // would be sent again elsewhere, or turned into a GET).
          redirect: 'manual',
        });
        if (response.status >= 300 && response.status < 400) {
          await response.body?.cancel().catch(() => undefined);
          const location = response.headers.get('location');
          throw new ProbeRequestError(
            `${url}: HTTP ${response.status}, a redirect${location === null ? '' : ` to ${replyExcerpt(location)}`} (give the endpoint's own address as --endpoint)`,
            response.status,
            true,
          );
        }
        const text = await readReply(response, url, maxReplyBytes);
        if (response.ok) {
          let data: unknown = null;
          try {
            data = JSON.parse(text);
          } catch {
            // Handled below as an unusable reply.
          }
          const parsed = parse(data);
          if (parsed !== null) return { ...parsed, retries: attempt };
          lastProblem = `HTTP ${response.status} without a completion in the reply`;
        } else {
          const status = response.status;
          const detail = replyExcerpt(text);
          if (status === 401 || status === 403) {
            throw new ProbeRequestError(
              `${url}: HTTP ${status} (check --api-key-env): ${detail}`,
              status,
              true,
            );
          }
          if (!RETRYABLE.has(status) && status < 500) {
            throw new ProbeRequestError(`${url}: HTTP ${status}: ${detail}`, status, false);
          }
          lastProblem = `HTTP ${status}`;
          const after = retryAfterMs(response.headers);
          if (after !== null) {
            wait = Math.min(after, maxRetryAfter);
            // The server asked everyone to wait: hold back every request, not only this one.
            if (status === 429 || status === 503) nextSlot = Math.max(nextSlot, Date.now() + wait);
          }
        }
      } catch (error) {
        if (error instanceof ProbeRequestError) throw error;
        const name = (error as Error).name;
        lastProblem =
          name === 'TimeoutError'
            ? `timed out after ${options.timeoutMs} ms`
            : `network error (${(error as Error).message})`;
      }
      if (attempt >= options.retries) {
        throw new ProbeRequestError(
          `${url}: gave up after ${attempt + 1} attempts (${lastProblem})`,
          null,
          false,
        );
      }
      totalRetries++;
      // Full jitter between half and all of the exponential delay, unless the server said how long.
      const delay = wait ?? Math.min(maxBackoff, backoff * 2 ** attempt) * (0.5 + Math.random() / 2);
      await sleep(delay);
    }
  };

  return {
    complete,
    get retries() {
      return totalRetries;
    },
  };
}
