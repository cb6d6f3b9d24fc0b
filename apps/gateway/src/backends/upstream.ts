/**
 * The upstream backend: any OpenAI-compatible server that returns top-k logprobs (vLLM, llama.cpp server,
 * Ollama). The gateway drives generation itself: each round trip asks the upstream for n independent samples
 * of up to D tokens with the top-k log-probabilities at each position, applies the watermark to those
 * candidates, and walks the tree the samples form: at each position the samples that share the text so far
 * are independent drafts, one selected and accepted or resampled exactly (generation/distribution.ts),
 * and the walk goes on along the samples that drew the accepted token. With D = 1 (drafting off) every token
 * costs one round trip and the upstream's own draw is not used at all.
 *
 * Start-up probes decide what is exact, and the backend refuses to start when nothing is: the largest
 * `top_logprobs` / `logprobs` each shape accepts (p is the softmax over exactly those, so `top_k` is sent
 * equal to it); whether `top_k` is honoured (otherwise drafts are not used: the upstream's draws would come
 * from a distribution the gateway cannot see); whether `n` gives independent samples; and whether chat
 * continuation (`continue_final_message` / `add_generation_prompt`, vLLM's names) really continues the
 * assistant message rather than starting a new answer. Legacy completions take the context as token ids, so
 * the upstream sees exactly the tokens the watermark was computed on; chat requests use the chat shape (the
 * upstream's own template) only where continuation was seen to work. The upstream's token strings are mapped
 * to the gateway tokenizer's ids; the two must share a tokenizer for the mark to be exact.
 */
import { readUpTo, type SparseLogits, sampleToken, stepStrength } from '@tracemark/core';
import type { Tokenizer } from '@tracemark/tokenizers';
import type { UpstreamApi } from '../config.ts';
import { GatewayError } from '../errors.ts';
import {
  acceptAmongDrafts,
  type DraftDistributions,
  draftDistributions,
  reportedLogprobs,
  sampleTarget,
  verifyChain,
} from '../generation/distribution.ts';
import {
  type Backend,
  type ChatMessage,
  type ChoiceRequest,
  type GeneratedStep,
  type ModelInfo,
  NO_GREEN_STRENGTH,
} from './types.ts';

/** Tokens per sample asked per round trip (D). */
export const DEFAULT_DRAFT_TOKENS = 8;

/** Independent samples asked per round trip (`n`) when the upstream draws them independently. */
export const DEFAULT_DRAFT_CHOICES = 16;

export interface UpstreamOptions {
  readonly url: string;
  readonly apiKey: string | null;
  readonly model: string | null;
  readonly api: UpstreamApi;
  /** The most top logprobs to ask for; the start-up probe lowers it to what the upstream accepts. */
  readonly topLogprobs: number;
  readonly draftTokens: number;
  /** Samples per round trip (the `n` parameter; default {@link DEFAULT_DRAFT_CHOICES}); 1: one sample. */
  readonly draftChoices?: number;
  /**
   * Stream the samples (default true, where the start-up probe sees the upstream stream): the walk reads each
   * depth as it is decoded and ends the round trip when it is done, so the upstream stops decoding there.
   */
  readonly streaming?: boolean;
  readonly timeoutMs: number;
  readonly tokenizer: Tokenizer;
}

type Shape = 'chat' | 'completions';

export interface UpstreamPosition {
  /** The upstream's own sampled token, mapped to an id; null when it does not map. */
  readonly draft: number | null;
  /** Whether the sampled token is one of the reported top-k (false: it sampled outside what it reports). */
  readonly drawnInTop: boolean;
  /** The logprob the upstream reports for its sampled token. */
  readonly drawnLogprob: number;
  /** The reported top-k entries whose token has an id here. */
  readonly candidates: SparseLogits;
  /** The logprobs of the reported top-k entries whose token has no id here. */
  readonly unmappedLogprobs: readonly number[];
}

export interface UpstreamSample {
  readonly positions: readonly UpstreamPosition[];
  readonly finishReason: string | null;
  /** The sampled tokens' text, as the upstream wrote them. */
  readonly pieces: readonly string[];
}

/** Token text → id for every ordinary token whose text is whole UTF-8 (built once per tokenizer). */
const tokenTables = new Map<string, Map<string, number>>();

function tokenTable(tokenizer: Tokenizer): Map<string, number> {
  let table = tokenTables.get(tokenizer.id);
  if (table === undefined) {
    table = new Map();
    const ids = Array.from({ length: tokenizer.ordinaryTokenCount }, (_, i) => i);
    const pieces = tokenizer.decodeTokens(ids);
    for (let id = 0; id < pieces.length; id++) {
      const piece = pieces[id]!;
      if (!piece.includes('\uFFFD') && !table.has(piece)) table.set(piece, id);
    }
    tokenTables.set(tokenizer.id, table);
  }
  return table;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function mapToken(table: Map<string, number>, token: unknown, bytes: unknown): number | null {
  if (Array.isArray(bytes) && bytes.every((b) => Number.isInteger(b) && b >= 0 && b < 256)) {
    try {
      const id = table.get(utf8.decode(Uint8Array.from(bytes as number[])));
      if (id !== undefined) return id;
    } catch {
      return null;
    }
  }
  return typeof token === 'string' ? (table.get(token) ?? null) : null;
}

/** How an entry is recognised when it has no id: its bytes, else its text. */
function entryKey(token: unknown, bytes: unknown): string {
  return Array.isArray(bytes) ? `b:${bytes.join(',')}` : `t:${String(token)}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

interface Entry {
  readonly id: number | null;
  readonly key: string;
  readonly logprob: number;
}

/** The `top` most likely reported entries (a server may add its sampled token to the list) as a position. */
function toPosition(drawn: Entry, reported: readonly Entry[], top: number): UpstreamPosition {
  const seen = new Set<string>();
  const entries = reported
    .filter((entry) => Number.isFinite(entry.logprob))
    .sort((a, b) => b.logprob - a.logprob)
    .filter((entry) => {
      const key = entry.id === null ? entry.key : `#${entry.id}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .slice(0, top);
  const mapped = entries.filter((entry) => entry.id !== null);
  const drawnInTop = entries.some((entry) =>
    drawn.id === null ? entry.id === null && entry.key === drawn.key : entry.id === drawn.id,
  );
  return {
    draft: drawn.id,
    drawnInTop,
    drawnLogprob: drawn.logprob,
    candidates: {
      ids: Uint32Array.from(mapped, (entry) => entry.id!),
      logits: Float32Array.from(mapped, (entry) => entry.logprob),
    },
    unmappedLogprobs: entries.filter((entry) => entry.id === null).map((entry) => entry.logprob),
  };
}

function parseChoice(
  shape: Shape,
  choice: Record<string, unknown>,
  table: Map<string, number>,
  top: number,
): UpstreamSample {
  const finishReason = typeof choice.finish_reason === 'string' ? choice.finish_reason : null;
  const logprobs = choice.logprobs;
  const positions: UpstreamPosition[] = [];
  const pieces: string[] = [];
  if (shape === 'chat') {
    const content = isRecord(logprobs) ? logprobs.content : undefined;
    if (!Array.isArray(content)) return { positions, finishReason, pieces };
    for (const entry of content) {
      if (!isRecord(entry)) throw invalid('malformed logprobs');
      const tops = Array.isArray(entry.top_logprobs) ? entry.top_logprobs.filter(isRecord) : [];
      const drawn: Entry = {
        id: mapToken(table, entry.token, entry.bytes),
        key: entryKey(entry.token, entry.bytes),
        logprob: Number(entry.logprob),
      };
      const reported = tops.map(
        (t): Entry => ({
          id: mapToken(table, t.token, t.bytes),
          key: entryKey(t.token, t.bytes),
          logprob: Number(t.logprob),
        }),
      );
      positions.push(toPosition(drawn, reported, top));
      pieces.push(String(entry.token));
    }
  } else {
    if (!isRecord(logprobs) || !Array.isArray(logprobs.tokens)) return { positions, finishReason, pieces };
    const tokens = logprobs.tokens;
    const tokenLogprobs = Array.isArray(logprobs.token_logprobs) ? logprobs.token_logprobs : [];
    const topLogprobs = Array.isArray(logprobs.top_logprobs) ? logprobs.top_logprobs : [];
    for (let i = 0; i < tokens.length; i++) {
      const tops = isRecord(topLogprobs[i]) ? Object.entries(topLogprobs[i] as Record<string, unknown>) : [];
      const drawn: Entry = {
        id: mapToken(table, tokens[i], undefined),
        key: entryKey(tokens[i], undefined),
        logprob: Number(tokenLogprobs[i]),
      };
      const reported = tops.map(
        ([token, logprob]): Entry => ({
          id: mapToken(table, token, undefined),
          key: entryKey(token, undefined),
          logprob: Number(logprob),
        }),
      );
      positions.push(toPosition(drawn, reported, top));
      pieces.push(String(tokens[i]));
    }
  }
  return { positions, finishReason, pieces };
}

/** Parses every choice of a chat or legacy completion (in `index` order) into positions. */
export function parseUpstreamChoices(
  shape: Shape,
  body: unknown,
  table: Map<string, number>,
  top: number = Number.POSITIVE_INFINITY,
): UpstreamSample[] {
  const choices = isRecord(body) && Array.isArray(body.choices) ? body.choices : [];
  if (choices.length === 0 || !choices.every(isRecord)) throw invalid('no choices');
  const ordered = (choices as Record<string, unknown>[])
    .map((choice, at) => ({ choice, index: typeof choice.index === 'number' ? choice.index : at }))
    .sort((a, b) => a.index - b.index);
  return ordered.map(({ choice }) => parseChoice(shape, choice, table, top));
}

/** Parses `choices[0].logprobs` of a chat or legacy completion into positions. */
export function parseUpstreamSample(
  shape: Shape,
  body: unknown,
  table: Map<string, number>,
  top: number = Number.POSITIVE_INFINITY,
): UpstreamSample {
  return parseUpstreamChoices(shape, body, table, top)[0]!;
}

function invalid(reason: string): GatewayError {
  return new GatewayError(
    502,
    'TM_ERR_UPSTREAM_INVALID',
    `the upstream model server sent an unusable response (${reason})`,
  );
}

/** A sample as it arrives: its positions grow until it ends. */
interface ArrivingSample {
  positions: UpstreamPosition[];
  pieces: string[];
  finishReason: string | null;
  /** Any chunk of this choice has arrived. */
  seen: boolean;
}

/**
 * The n samples of one streamed round trip, filled in as the upstream's chunks arrive (an engine decodes all
 * n together, a step at a time). The walk waits for the depth it reads ({@link reach}) and cancels the rest
 * once it is done with the call, so the upstream stops decoding what would not be read.
 */
export class SampleStream {
  readonly samples: ArrivingSample[];
  /** The stream has ended ([DONE], its body's end, a failure or a cancel). */
  ended = false;
  /** The upstream answered with events (false: one JSON body, read whole). */
  incremental = false;
  cancelled = false;
  private failure: Error | null = null;
  private waiters: { ready: () => boolean; resolve: () => void; reject: (error: Error) => void }[] = [];
  private readonly abort: () => void;

  /** Positions kept per sample: what was asked (an upstream that sends more is not read further). */
  private readonly limit: number;

  constructor(choices: number, limit: number, abort: () => void) {
    this.limit = limit;
    this.samples = Array.from({ length: choices }, () => ({
      positions: [],
      pieces: [],
      finishReason: null,
      seen: false,
    }));
    this.abort = abort;
  }

  /** Appends a chunk's positions to sample `index` (an index past n is ignored). */
  add(index: number, chunk: UpstreamSample): void {
    const sample = this.samples[index];
    if (sample === undefined) return;
    sample.seen = true;
    // a sample that has ended takes no more positions: what the walk read of it stays what it holds
    if (sample.finishReason !== null) return;
    const room = this.limit - sample.positions.length;
    sample.positions.push(...chunk.positions.slice(0, Math.max(0, room)));
    sample.pieces.push(...chunk.pieces.slice(0, Math.max(0, room)));
    if (chunk.finishReason !== null) sample.finishReason = chunk.finishReason;
    // every position asked for is here: the sample is done, whatever the upstream says next
    else if (sample.positions.length >= this.limit) sample.finishReason = 'length';
  }

  /**
   * Resolves once each sample in `indices` has more than `depth` positions or has ended (its own end, or the
   * stream's clean end); rejects when the stream failed before one of them did.
   */
  reach(indices: readonly number[], depth: number): Promise<void> {
    const has = (i: number) =>
      this.samples[i]!.finishReason !== null || this.samples[i]!.positions.length > depth;
    // what has arrived stays readable after a failure; only what has not is refused
    const ready = () => indices.every((i) => has(i) || (this.ended && this.failure === null));
    if (indices.every(has)) return Promise.resolve();
    if (this.failure !== null) return Promise.reject(this.failure);
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ ready, resolve, reject }));
  }

  changed(): void {
    this.waiters = this.waiters.filter((waiter) => {
      if (waiter.ready()) waiter.resolve();
      else if (this.failure !== null) waiter.reject(this.failure);
      else return true;
      return false;
    });
  }

  end(failure: Error | null): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = failure;
    this.changed();
  }

  /** Resolves when the stream has ended (rejects if it failed). */
  finished(): Promise<void> {
    if (this.ended) return this.failure === null ? Promise.resolve() : Promise.reject(this.failure);
    return new Promise((resolve, reject) =>
      this.waiters.push({ ready: () => this.ended && this.failure === null, resolve, reject }),
    );
  }

  /** Takes a whole (unstreamed) answer's choices, in `index` order, and ends. */
  takeWhole(body: unknown, parse: (choice: Record<string, unknown>) => UpstreamSample): this {
    const listed = isRecord(body) && Array.isArray(body.choices) ? body.choices.filter(isRecord) : [];
    if (listed.length === 0) throw invalid('no choices');
    for (const [at, choice] of listed.entries()) {
      this.add(typeof choice.index === 'number' ? choice.index : at, parse(choice));
    }
    this.end(null);
    return this;
  }

  /** Ends the request: the upstream stops decoding; what arrived stays readable. */
  cancel(): void {
    this.cancelled = true;
    this.end(null);
    // also after [DONE]: a body not read to its end is not left holding the connection
    this.abort();
  }
}

/** The longest stream event read (an upstream that never ends one is refused, not buffered without end). */
const MAX_STREAM_EVENT_CHARS = 8 << 20;

/**
 * The largest whole (unstreamed) answer read: 128 samples × 16 positions × 21 log-probabilities are about
 * 5 MB of JSON, so an answer past this is an upstream gone wrong, refused before it fills the memory.
 */
export const MAX_ANSWER_BYTES: number = 64 << 20;

/** A body as text, read up to `limit` bytes; a longer one is cancelled and refused (a 502). */
async function readLimited(response: Response, limit: number): Promise<string> {
  const bytes = await readUpTo(response.body, limit);
  if (bytes === null) throw invalid(`an answer over ${limit} bytes`);
  return new TextDecoder().decode(bytes);
}

/**
 * Splits a `text/event-stream` into events as its text arrives (the WHATWG rules): lines end at CRLF, LF or
 * CR (a CR that ends one piece waits for the next, which may begin with its LF), and an empty line ends an
 * event. An unfinished event is kept as pieces and only the new text is searched, so a long event costs its
 * length once, not once per piece.
 */
export class EventSplitter {
  private parts: string[] = [];
  private chars = 0;
  private heldCarriageReturn = false;
  private endsWithLineEnd = false;

  /** Characters of the event not yet ended. */
  get pending(): number {
    return this.chars;
  }

  /** The events that `value` ends, with their lines joined by LF. */
  push(value: string): string[] {
    let text = this.heldCarriageReturn ? `\r${value}` : value;
    this.heldCarriageReturn = text.endsWith('\r');
    if (this.heldCarriageReturn) text = text.slice(0, -1);
    text = text.replace(/\r\n?/g, '\n');
    if (text === '') return [];
    if (!(this.endsWithLineEnd && text.startsWith('\n')) && !text.includes('\n\n')) {
      this.parts.push(text);
      this.chars += text.length;
      this.endsWithLineEnd = text.endsWith('\n');
      return [];
    }
    const events = (this.parts.join('') + text).split('\n\n');
    const rest = events.pop()!;
    this.parts = [rest];
    this.chars = rest.length;
    this.endsWithLineEnd = rest.endsWith('\n');
    return events.filter((event) => event !== '');
  }
}

interface Sent {
  readonly response: Response;
  readonly signal: AbortSignal | undefined;
  readonly timeout: AbortSignal;
}

export class UpstreamClient {
  readonly origin: string;
  private readonly base: string;
  private readonly apiKey: string | null;
  private readonly timeoutMs: number;
  private readonly maxAnswerBytes: number;

  constructor(
    url: string,
    apiKey: string | null,
    timeoutMs: number,
    maxAnswerBytes: number = MAX_ANSWER_BYTES,
  ) {
    this.base = url.replace(/\/+$/, '');
    const parsed = new URL(this.base);
    this.origin = `${parsed.protocol}//${parsed.host}`;
    this.apiKey = apiKey;
    this.timeoutMs = timeoutMs;
    this.maxAnswerBytes = maxAnswerBytes;
  }

  /** One HTTP round trip. Aborting `signal` rejects with its reason; the deadline is a 504, a refusal a 502. */
  async request(path: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    const sent = await this.send(path, body, 'application/json', signal);
    return this.readJson(sent);
  }

  /** Sends a request; `extra` aborts it too (a stream's own cancel). */
  private async send(
    path: string,
    body: unknown,
    accept: string,
    signal: AbortSignal | undefined,
    extra?: AbortSignal,
  ): Promise<Sent> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signals = [signal, timeout, extra].filter((s): s is AbortSignal => s !== undefined);
    const headers: Record<string, string> = { accept };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.apiKey !== null) headers.authorization = `Bearer ${this.apiKey}`;
    try {
      const response = await fetch(`${this.base}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: signals.length === 1 ? timeout : AbortSignal.any(signals),
      });
      return { response, signal, timeout };
    } catch (error) {
      throw this.translate(error, signal, timeout);
    }
  }

  /** A whole answer's JSON; HTTP errors are a 502 that keeps the start of the body as its cause. */
  private async readJson({ response, signal, timeout }: Sent): Promise<unknown> {
    let text: string;
    try {
      text = await readLimited(response, this.maxAnswerBytes);
    } catch (error) {
      if (error instanceof GatewayError) throw error;
      throw this.translate(error, signal, timeout);
    }
    if (!response.ok) {
      throw new GatewayError(
        502,
        'TM_ERR_UPSTREAM_INVALID',
        `the upstream model server answered HTTP ${response.status}`,
        {
          cause: text.slice(0, 500),
        },
      );
    }
    try {
      return JSON.parse(text);
    } catch {
      throw invalid('not JSON');
    }
  }

  /**
   * A streamed round trip (`stream: true`): the samples fill in as the upstream's events arrive, and
   * {@link SampleStream.cancel} ends the request (the upstream stops decoding). An upstream that answers with
   * one JSON body instead is read whole. Failures as {@link request}.
   */
  async stream(
    path: string,
    body: Record<string, unknown>,
    parse: (choice: Record<string, unknown>) => UpstreamSample,
    choices: number,
    signal?: AbortSignal,
  ): Promise<SampleStream> {
    const cut = new AbortController();
    const sent = await this.send(
      path,
      { ...body, stream: true },
      'text/event-stream, application/json',
      signal,
      cut.signal,
    );
    const { response, timeout } = sent;
    const samples = new SampleStream(choices, Number(body.max_tokens), () => cut.abort());
    if (!response.ok || !(response.headers.get('content-type') ?? '').includes('text/event-stream')) {
      return samples.takeWhole(await this.readJson(sent), parse);
    }
    samples.incremental = true;
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    void (async () => {
      const splitter = new EventSplitter();
      // stops reading: the request is cancelled, and the stream ends with `failure`
      const stop = (failure: Error): void => {
        samples.end(failure);
        cut.abort();
      };
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          const events = splitter.push(value);
          if (splitter.pending > MAX_STREAM_EVENT_CHARS) return stop(invalid('a stream event is too long'));
          for (const event of events) {
            const lines = event.split('\n');
            // other servers' error forms: an `event: error`, llama.cpp's `error:` field
            if (lines.some((line) => /^event: ?error$/.test(line) || line.startsWith('error:')))
              return stop(invalid('the stream carried an error'));
            const data = lines
              .filter((line) => line.startsWith('data:'))
              .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
              .join('\n');
            if (data === '[DONE]') {
              samples.end(null);
              cut.abort();
              return;
            }
            if (data === '') continue;
            let chunk: unknown;
            try {
              chunk = JSON.parse(data);
            } catch {
              return stop(invalid('a stream event is not JSON'));
            }
            if (
              !isRecord(chunk) ||
              (chunk.error !== undefined && chunk.error !== null) ||
              chunk.object === 'error'
            )
              return stop(invalid('the stream carried an error'));
            const listed = Array.isArray(chunk.choices) ? chunk.choices.filter(isRecord) : [];
            for (const choice of listed) {
              if (typeof choice.index !== 'number') return stop(invalid('a streamed choice has no index'));
              samples.add(choice.index, parse(choice));
            }
          }
          samples.changed();
        }
        // the body ended without [DONE] while a sample had not ended: cut short, not a whole answer
        if (samples.samples.some((sample) => sample.seen && sample.finishReason === null))
          return stop(invalid('the stream ended before its samples did'));
        samples.end(null);
      } catch (error) {
        if (samples.cancelled) samples.end(null);
        else stop(error instanceof GatewayError ? error : (this.translate(error, signal, timeout) as Error));
      }
    })();
    return samples;
  }

  private translate(error: unknown, signal: AbortSignal | undefined, timeout: AbortSignal): unknown {
    if (signal?.aborted) return signal.reason ?? error;
    if (timeout.aborted) {
      return new GatewayError(
        504,
        'TM_ERR_UPSTREAM_TIMEOUT',
        `the upstream model server did not answer within ${this.timeoutMs} ms`,
      );
    }
    return new GatewayError(
      502,
      'TM_ERR_UPSTREAM_UNAVAILABLE',
      'the upstream model server could not be reached',
      {
        cause: error,
      },
    );
  }

  async listModels(): Promise<string[]> {
    const body = await this.request('/models', undefined);
    if (!isRecord(body) || !Array.isArray(body.data)) throw invalid('GET /models has no data');
    return body.data.filter(isRecord).map((model) => String(model.id));
  }
}

export interface SampleParameters {
  readonly model: string;
  readonly promptTokens: ArrayLike<number>;
  readonly messages: readonly ChatMessage[] | null;
  /** Text generated so far (chat continuation). */
  readonly continuation: string;
  readonly prefixText: string;
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topLogprobs: number;
  /** `top_k` to send when the temperature is above 0 (default: `topLogprobs`, so p is their softmax). */
  readonly topK?: number;
  /** Independent samples (`n`); default 1. */
  readonly choices?: number;
  readonly seed: number;
}

export function sampleBody(shape: Shape, parameters: SampleParameters): Record<string, unknown> {
  const common = {
    model: parameters.model,
    max_tokens: parameters.maxTokens,
    temperature: parameters.temperature,
    top_p: 1,
    ...(parameters.temperature > 0 ? { top_k: parameters.topK ?? parameters.topLogprobs } : {}),
    n: parameters.choices ?? 1,
    stream: false,
    seed: parameters.seed,
  };
  if (shape === 'completions') {
    return { ...common, prompt: Array.from(parameters.promptTokens), logprobs: parameters.topLogprobs };
  }
  const messages: ChatMessage[] =
    parameters.messages === null
      ? [{ role: 'assistant', content: parameters.prefixText + parameters.continuation }]
      : [
          ...parameters.messages,
          ...(parameters.continuation === ''
            ? []
            : [{ role: 'assistant', content: parameters.continuation }]),
        ];
  const continuing = messages.at(-1)?.role === 'assistant';
  return {
    ...common,
    messages,
    logprobs: true,
    top_logprobs: parameters.topLogprobs,
    ...(continuing ? { continue_final_message: true, add_generation_prompt: false } : {}),
  };
}

/** What the start-up probes found about one shape. */
export interface ShapeProbe {
  /** Top logprobs used: the most the upstream accepted and returned (p is their softmax). */
  readonly topLogprobs: number;
  /** `top_k` is honoured, so the upstream's draws come from p and can serve as drafts. */
  readonly topKHonoured: boolean;
  /** `n` > 1 gives that many samples that are not all the same. */
  readonly independentChoices: boolean;
  /** Chat only: a partial assistant message is continued, not answered anew. */
  readonly continuation: boolean;
  /** `stream: true` sends the samples' tokens as they are decoded, so a round trip can end at the walk's end. */
  readonly streams: boolean;
}

const PROBE_QUESTION = 'Write one long sentence about the weather in a small harbour town.';
const PROBE_TOP_LOGPROBS = [20, 10, 5, 3, 2];

function path(shape: Shape): string {
  return shape === 'chat' ? '/chat/completions' : '/completions';
}

/** An HTTP refusal (4xx/5xx answer) or an unusable body: a probe's "no", not a reason to stop probing. */
function isRefusal(error: unknown): error is GatewayError {
  return error instanceof GatewayError && error.code === 'TM_ERR_UPSTREAM_INVALID';
}

async function probeShape(
  client: UpstreamClient,
  shape: Shape,
  model: string,
  tokenizer: Tokenizer,
  table: Map<string, number>,
  maxTopLogprobs: number,
  streaming: boolean,
  problems: string[],
): Promise<ShapeProbe | null> {
  const promptTokens = tokenizer.encode(`${PROBE_QUESTION}\n\n`);
  const messages = [{ role: 'user', content: PROBE_QUESTION }];
  const probeBody = (parameters: Partial<SampleParameters>) =>
    sampleBody(shape, {
      model,
      promptTokens,
      messages: shape === 'chat' ? messages : null,
      continuation: '',
      prefixText: '',
      maxTokens: 8,
      temperature: 1,
      topLogprobs: 1,
      seed: 1,
      ...parameters,
    });
  const ask = (parameters: Partial<SampleParameters>) => client.request(path(shape), probeBody(parameters));
  // The largest top-k the upstream accepts; some refuse more than 5 (legacy completions) or 20.
  let topLogprobs = 0;
  const refusals: string[] = [];
  const tries = [...new Set([maxTopLogprobs, ...PROBE_TOP_LOGPROBS])].filter((k) => k <= maxTopLogprobs);
  for (const want of tries) {
    let samples: UpstreamSample[];
    try {
      samples = parseUpstreamChoices(shape, await ask({ topLogprobs: want, maxTokens: 2 }), table, want);
    } catch (error) {
      if (!isRefusal(error)) throw error;
      refusals.push(`top_logprobs ${want}: ${error.message}`);
      continue;
    }
    const reported = Math.max(
      0,
      ...samples[0]!.positions.map((p) => p.candidates.ids.length + p.unmappedLogprobs.length),
    );
    const mappedEnough = samples[0]!.positions.some((p) => p.candidates.ids.length >= 2);
    if (reported >= 2 && mappedEnough) topLogprobs = Math.min(want, reported);
    else refusals.push(`top_logprobs ${want}: no top logprobs in the answer`);
    break;
  }
  if (topLogprobs === 0) {
    problems.push(`${shape}: ${refusals.join('; ')}`);
    return null;
  }
  // top_k = 1 at temperature 1: an upstream that honours it always draws the most likely token.
  let topKHonoured = true;
  try {
    const [sample] = parseUpstreamChoices(
      shape,
      await ask({ topLogprobs, topK: 1, maxTokens: 8, seed: 2 }),
      table,
      topLogprobs,
    );
    for (const position of sample!.positions) {
      const best = Math.max(...position.candidates.logits, ...position.unmappedLogprobs);
      if (!position.drawnInTop || position.drawnLogprob < best - 1e-4) topKHonoured = false;
    }
  } catch (error) {
    if (!isRefusal(error)) throw error;
    topKHonoured = false;
  }
  let independentChoices = false;
  try {
    const samples = parseUpstreamChoices(
      shape,
      await ask({ topLogprobs, choices: 4, maxTokens: 6, seed: 3 }),
      table,
      topLogprobs,
    );
    const texts = new Set(samples.map((sample) => sample.pieces.join('')));
    independentChoices = samples.length === 4 && texts.size > 1;
  } catch (error) {
    if (!isRefusal(error)) throw error;
  }
  const continuation = shape === 'chat' && (await continues(client, model, table, topLogprobs));
  let streams = false;
  if (streaming) {
    try {
      const choices = independentChoices ? 2 : 1;
      const stream = await client.stream(
        path(shape),
        probeBody({ maxTokens: 3, topLogprobs, choices, seed: 5 }),
        (choice) => parseChoice(shape, choice, table, topLogprobs),
        choices,
      );
      await stream.finished();
      // as many top logprobs as whole answers report: p is their softmax either way
      const reported = stream.samples.flatMap((sample) =>
        sample.positions.map((p) => p.candidates.ids.length + p.unmappedLogprobs.length),
      );
      streams =
        stream.incremental &&
        stream.samples.every(
          (sample) =>
            sample.positions.length === 3 && sample.positions.every((p) => p.candidates.ids.length > 0),
        ) &&
        Math.max(...reported) === topLogprobs;
    } catch {
      // any failure of a streamed answer: the round trips are not streamed
    }
  }
  return { topLogprobs, topKHonoured, independentChoices, continuation, streams };
}

/**
 * Whether chat continuation works: a greedy answer is cut in half and sent back as a partial assistant
 * message; an upstream that continues it writes the other half, one that ignores the request answers anew.
 */
async function continues(
  client: UpstreamClient,
  model: string,
  table: Map<string, number>,
  topLogprobs: number,
): Promise<boolean> {
  const messages = [{ role: 'user', content: PROBE_QUESTION }];
  const greedy = (continuation: string, maxTokens: number) =>
    client
      .request(
        '/chat/completions',
        sampleBody('chat', {
          model,
          promptTokens: [],
          messages,
          continuation,
          prefixText: '',
          maxTokens,
          temperature: 0,
          topLogprobs,
          seed: 4,
        }),
      )
      .then((body) => parseUpstreamChoices('chat', body, table, topLogprobs)[0]!.pieces);
  try {
    const fresh = await greedy('', 12);
    if (fresh.length < 4) return false;
    const half = Math.floor(fresh.length / 2);
    const expected = fresh.slice(half).join('');
    const continued = (await greedy(fresh.slice(0, half).join(''), fresh.length - half)).join('');
    return continued.length > 0 && (expected.startsWith(continued) || continued.startsWith(expected));
  } catch (error) {
    if (!isRefusal(error)) throw error;
    return false;
  }
}

/**
 * The most positions of a lone sample verified as one block. The block's length is fixed before its tokens
 * are read (it depends on the call and the depth only), as block verification requires; a streamed round trip
 * waits for those positions and no more, and a block's kept length is rarely above a few tokens at
 * temperature 0.7.
 */
export const LONE_BLOCK = 8;

/**
 * The block of a completion's first token when its sample is alone from the start (one sample per round
 * trip): streamed, the first token then waits for two decode steps instead of {@link LONE_BLOCK}, at the
 * cost of a shorter block once per completion.
 */
export const FIRST_LONE_BLOCK = 2;

/**
 * The last position of a lone sample's chain from `depth`: its last position up to `depth + block − 1`, or the
 * position of its first token without an id here (the distribution there is known; the token itself cannot be
 * kept).
 */
function chainEnd(
  positions: readonly { readonly draft: number | null }[],
  depth: number,
  block: number,
): number {
  const last = Math.min(positions.length - 1, depth + block - 1);
  for (let k = depth; k < last; k++) if (positions[k]!.draft === null) return k;
  return last;
}

export async function createUpstreamBackend(options: UpstreamOptions): Promise<Backend> {
  const client = new UpstreamClient(options.url, options.apiKey, options.timeoutMs);
  const table = tokenTable(options.tokenizer);
  const tokenizer = options.tokenizer;
  const available = await client.listModels();
  const model = options.model ?? available[0];
  if (model === undefined) {
    throw new GatewayError(
      502,
      'TM_ERR_UPSTREAM_INVALID',
      `the upstream at ${client.origin} lists no models`,
    );
  }
  if (options.model !== null && !available.includes(options.model)) {
    throw new GatewayError(
      502,
      'TM_ERR_UPSTREAM_INVALID',
      `the upstream at ${client.origin} does not serve model "${options.model}"`,
    );
  }
  const shapes: Shape[] = options.api === 'auto' ? ['completions', 'chat'] : [options.api];
  const probes = new Map<Shape, ShapeProbe>();
  const problems: string[] = [];
  for (const shape of shapes) {
    const probe = await probeShape(
      client,
      shape,
      model,
      tokenizer,
      table,
      options.topLogprobs,
      options.streaming !== false,
      problems,
    );
    if (probe === null) continue;
    // Chat without continuation can give one token and no more: not a way to generate.
    if (shape === 'chat' && !probe.continuation) {
      problems.push(
        'chat: the upstream does not continue a partial assistant message (continue_final_message is ignored), so token-by-token chat would garble the text',
      );
      continue;
    }
    probes.set(shape, probe);
  }
  if (probes.size === 0) {
    throw new GatewayError(
      502,
      'TM_ERR_UPSTREAM_NO_LOGPROBS',
      `the upstream at ${client.origin} (model "${model}") offers no exact way to drive generation (${problems.join('; ')}), so its output cannot be watermarked; refusing to serve it`,
    );
  }
  const info: ModelInfo = { id: model, ownedBy: 'upstream', created: Math.floor(Date.now() / 1000) };
  const stats = { roundTrips: 0, draftsAccepted: 0, draftsRejected: 0, positionsReceived: 0 };
  const requestedChoices = Math.max(1, Math.floor(options.draftChoices ?? DEFAULT_DRAFT_CHOICES));
  // Cleared for good if the upstream is ever seen drawing outside the top-k it reports.
  const draftsExact = new Map<Shape, boolean>(
    [...probes].map(([shape, probe]) => [shape, probe.topKHonoured]),
  );

  async function* generate(request: ChoiceRequest): AsyncGenerator<GeneratedStep, void, undefined> {
    // A Gumbel key's choice is a function of the position's distribution and the key (no draw to couple
    // with a draft): the gateway computes it from the reported top-k, and the upstream's samples serve
    // only as the continuations of that choice, when one of them made it.
    const gumbel = request.watermarker.family === 'gumbel';
    // Chat goes through the upstream's own template where continuation works; legacy completions take the
    // exact token ids (for a chat request: the prompt as the gateway formatted it).
    const shape: Shape =
      request.messages !== null
        ? probes.has('chat')
          ? 'chat'
          : 'completions'
        : probes.has('completions')
          ? 'completions'
          : 'chat';
    const probe = probes.get(shape)!;
    const top = probe.topLogprobs;
    const prefixText =
      request.messages === null && shape === 'chat' ? tokenizer.decode(request.promptTokens) : '';
    const messages = request.messages !== null && shape === 'completions' ? null : request.messages;
    const generated: number[] = [];
    const context: number[] = Array.from(request.promptTokens);
    // The step for `token` drawn after the context so far, from these candidates.
    const stepOf = (candidates: SparseLogits, token: number): GeneratedStep => {
      const strength = gumbel ? NO_GREEN_STRENGTH : stepStrength(candidates, context, request);
      if (request.topLogprobs === null) return { token, strength, logprob: null, top: null };
      const reported = reportedLogprobs(candidates, context, request.watermarker, token, request.topLogprobs);
      return { token, strength, logprob: reported.logprob, top: reported.top };
    };
    while (generated.length < request.maxTokens) {
      if (request.signal.aborted) return;
      const drafting = options.draftTokens > 0 && draftsExact.get(shape) === true;
      const want = drafting ? Math.min(options.draftTokens, request.maxTokens - generated.length) : 1;
      const choices = drafting && request.temperature > 0 && probe.independentChoices ? requestedChoices : 1;
      const parameters: SampleParameters = {
        model,
        promptTokens: context,
        messages,
        continuation: shape === 'chat' ? tokenizer.decode(generated) : '',
        prefixText,
        maxTokens: want,
        temperature: request.temperature,
        topLogprobs: top,
        choices,
        seed: request.random.nextUint32(),
      };
      // Streamed where the upstream streams and a call asks for more than one token: the walk reads each depth
      // as it is decoded and the call is cancelled once the walk leaves it. A whole answer is read into the
      // same form (every sample ended), up to the tokens asked either way.
      const parse = (choice: Record<string, unknown>) => parseChoice(shape, choice, table, top);
      const stream =
        probe.streams && want > 1
          ? await client.stream(path(shape), sampleBody(shape, parameters), parse, choices, request.signal)
          : new SampleStream(choices, want, () => undefined).takeWhole(
              await client.request(path(shape), sampleBody(shape, parameters), request.signal),
              parse,
            );
      const samples = stream.samples;
      stats.roundTrips++;
      try {
        await stream.reach([...samples.keys()], 0);
        // The samples still on the walk: those whose tokens so far are the ones emitted (in `index` order);
        // choices the answer did not hold (fewer than n) are not samples.
        let live = [...samples.keys()].filter((index) => samples[index]!.seen);
        if (live.length === 0) throw invalid('no choices');
        if (samples[live[0]!]!.positions.length === 0) {
          if (samples[live[0]!]!.finishReason === 'stop') return;
          throw new GatewayError(
            502,
            'TM_ERR_UPSTREAM_NO_LOGPROBS',
            'the upstream model server stopped returning logprobs',
          );
        }
        for (let depth = 0; ; depth++) {
          await stream.reach(live, depth);
          const lead = samples[live[0]!]!;
          // The first sample on the walk ended here: the model's end of text is kept as drawn (it is outside
          // the watermark: it has no id in the gateway's tokenizer).
          if (lead.positions.length <= depth) {
            if (drafting && lead.finishReason === 'stop' && depth < want) return;
            break;
          }
          const position = lead.positions[depth]!;
          if (position.candidates.ids.length === 0) throw invalid('a position has no mappable candidates');
          const distributions = gumbel
            ? null
            : draftDistributions(position.candidates, context, request, position.unmappedLogprobs);
          let token: number;
          let accepted = false;
          if (gumbel) {
            token = sampleToken(position.candidates, context, request.random, {
              temperature: request.temperature,
              topP: request.topP,
              watermarker: request.watermarker,
            }).token;
            if (drafting) {
              const onward = live.filter(
                (index) =>
                  samples[index]!.positions.length > depth &&
                  samples[index]!.positions[depth]!.draft === token,
              );
              accepted = onward.length > 0;
              if (accepted) live = onward;
              if (accepted) stats.draftsAccepted++;
              else stats.draftsRejected++;
            }
          } else if (!drafting) {
            token = sampleTarget(distributions!, request.random);
          } else {
            const group = live.filter((index) => samples[index]!.positions.length > depth);
            // a lone sample's block is read before it is verified
            const block = generated.length === 0 ? FIRST_LONE_BLOCK : LONE_BLOCK;
            if (group.length === 1) await stream.reach(group, depth + block - 1);
            const drafts = group.map((index) => samples[index]!.positions[depth]!);
            // One sample left on the walk (it is the lead): the rest of it, up to a token without an id here,
            // is verified as a block, and the call ends.
            const lone = group.length === 1 ? lead.positions : null;
            const end = lone === null ? depth : chainEnd(lone, depth, block);
            if ((lone === null ? drafts : lone.slice(depth, end + 1)).some((draft) => !draft.drawnInTop)) {
              // Drawn outside the reported top-k: p is not what the upstream samples from, so its draws are
              // no drafts. q alone is still exact; drafting stops for good on this shape.
              draftsExact.set(shape, false);
              token = sampleTarget(distributions!, request.random);
            } else if (lone !== null && end > depth) {
              const own = [...context, lone[depth]!.draft!];
              const steps: DraftDistributions[] = [distributions!];
              for (let k = depth + 1; k <= end; k++) {
                steps.push(draftDistributions(lone[k]!.candidates, own, request, lone[k]!.unmappedLogprobs));
                if (k < end) own.push(lone[k]!.draft!);
              }
              const chainDrafts = lone.slice(depth, end).map((draft) => draft.draft);
              const chain = verifyChain(steps, chainDrafts, request.random);
              stats.draftsAccepted += chain.kept;
              if (chain.kept < chainDrafts.length) stats.draftsRejected++;
              for (const [j, chosen] of chain.tokens.entries()) {
                const step = stepOf(lone[depth + j]!.candidates, chosen);
                generated.push(chosen);
                context.push(chosen);
                yield step;
                if (request.signal.aborted) return;
              }
              break;
            } else {
              const outcome = acceptAmongDrafts(
                distributions!,
                drafts.map((draft) => draft.draft),
                request.random,
              );
              token = outcome.token;
              accepted = outcome.draftIndex >= 0;
              if (accepted) live = group.filter((index) => samples[index]!.positions[depth]!.draft === token);
            }
            if (accepted) stats.draftsAccepted++;
            else stats.draftsRejected++;
          }
          const step = stepOf(position.candidates, token);
          generated.push(token);
          context.push(token);
          yield step;
          if (request.signal.aborted) return;
          if (!accepted || generated.length >= request.maxTokens) break;
        }
      } finally {
        stats.positionsReceived += samples.reduce((sum, sample) => sum + sample.positions.length, 0);
        stream.cancel();
      }
    }
  }

  const describeShapes = () =>
    [...probes]
      .map(
        ([shape, probe]) =>
          `${shape}(top ${probe.topLogprobs}${draftsExact.get(shape) ? '' : ', no drafts'}${probe.independentChoices ? '' : ', n=1'}${probe.streams ? ', streamed' : ''})`,
      )
      .join(',');

  return {
    kind: 'upstream',
    tokenizer,
    stats,
    models: () => [info],
    generate,
    describe: () => ({
      backend: 'upstream',
      upstream: client.origin,
      model,
      api: [...probes.keys()].join(','),
      paths: describeShapes(),
      draftTokens: options.draftTokens,
      draftChoices: requestedChoices,
      topLogprobs: Math.max(...[...probes.values()].map((probe) => probe.topLogprobs)),
      tokenizer: tokenizer.id,
    }),
    close: async () => undefined,
  };
}
