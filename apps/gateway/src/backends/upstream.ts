/**
 * The upstream backend: any OpenAI-compatible server that returns top-k logprobs (vLLM, llama.cpp server,
 * Ollama). The gateway drives generation itself: each round trip asks the upstream for up to D tokens of its
 * own sample with the top-k log-probabilities at each position, applies the watermark to those candidates,
 * and keeps the upstream's tokens as drafts for as long as speculative acceptance accepts them (see
 * generation/distribution.ts). With D = 1 (drafting off) every token costs one round trip.
 *
 * Request extensions sent to the upstream: `top_k` (so p is exactly the top-k softmax at temperature T), and
 * for chat continuation `continue_final_message` / `add_generation_prompt` (vLLM's names). The upstream's
 * token strings are mapped to the gateway tokenizer's ids; the two must share a tokenizer for the mark to be
 * exact (the probe checks that the strings map).
 */
import { type SparseLogits, stepStrength } from '@tracemark/core';
import type { Tokenizer } from '@tracemark/tokenizers';
import type { UpstreamApi } from '../config.ts';
import { GatewayError } from '../errors.ts';
import {
  acceptDraft,
  draftDistributions,
  reportedLogprobs,
  sampleTarget,
} from '../generation/distribution.ts';
import type { Backend, ChatMessage, ChoiceRequest, GeneratedStep, ModelInfo } from './types.ts';

export interface UpstreamOptions {
  readonly url: string;
  readonly apiKey: string | null;
  readonly model: string | null;
  readonly api: UpstreamApi;
  readonly topLogprobs: number;
  readonly draftTokens: number;
  readonly timeoutMs: number;
  readonly tokenizer: Tokenizer;
}

type Shape = 'chat' | 'completions';

export interface UpstreamPosition {
  /** The upstream's own sampled token, mapped to an id; null when it does not map. */
  readonly draft: number | null;
  readonly candidates: SparseLogits;
}

export interface UpstreamSample {
  readonly positions: readonly UpstreamPosition[];
  readonly finishReason: string | null;
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

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function toCandidates(entries: Iterable<[number | null, number]>): SparseLogits {
  const seen = new Map<number, number>();
  for (const [id, logprob] of entries) {
    if (id === null || typeof logprob !== 'number' || !Number.isFinite(logprob) || seen.has(id)) continue;
    seen.set(id, logprob);
  }
  return { ids: Uint32Array.from(seen.keys()), logits: Float32Array.from(seen.values()) };
}

/** Parses `choices[0].logprobs` of a chat or legacy completion into positions. */
export function parseUpstreamSample(shape: Shape, body: unknown, table: Map<string, number>): UpstreamSample {
  const choice = isRecord(body) && Array.isArray(body.choices) ? body.choices[0] : undefined;
  if (!isRecord(choice)) throw invalid('no choices');
  const finishReason = typeof choice.finish_reason === 'string' ? choice.finish_reason : null;
  const logprobs = choice.logprobs;
  const positions: UpstreamPosition[] = [];
  if (shape === 'chat') {
    const content = isRecord(logprobs) ? logprobs.content : undefined;
    if (!Array.isArray(content)) return { positions, finishReason };
    for (const entry of content) {
      if (!isRecord(entry)) throw invalid('malformed logprobs');
      const draft = mapToken(table, entry.token, entry.bytes);
      const tops = Array.isArray(entry.top_logprobs) ? entry.top_logprobs.filter(isRecord) : [];
      const candidates = toCandidates([
        ...tops.map((top): [number | null, number] => [
          mapToken(table, top.token, top.bytes),
          top.logprob as number,
        ]),
        [draft, entry.logprob as number],
      ]);
      positions.push({ draft, candidates });
    }
  } else {
    if (!isRecord(logprobs) || !Array.isArray(logprobs.tokens)) return { positions, finishReason };
    const tokens = logprobs.tokens;
    const tokenLogprobs = Array.isArray(logprobs.token_logprobs) ? logprobs.token_logprobs : [];
    const topLogprobs = Array.isArray(logprobs.top_logprobs) ? logprobs.top_logprobs : [];
    for (let i = 0; i < tokens.length; i++) {
      const draft = mapToken(table, tokens[i], undefined);
      const tops = isRecord(topLogprobs[i]) ? Object.entries(topLogprobs[i] as Record<string, unknown>) : [];
      const candidates = toCandidates([
        ...tops.map(([token, logprob]): [number | null, number] => [
          mapToken(table, token, undefined),
          logprob as number,
        ]),
        [draft, tokenLogprobs[i] as number],
      ]);
      positions.push({ draft, candidates });
    }
  }
  return { positions, finishReason };
}

function invalid(reason: string): GatewayError {
  return new GatewayError(
    502,
    'TM_ERR_UPSTREAM_INVALID',
    `the upstream model server sent an unusable response (${reason})`,
  );
}

export class UpstreamClient {
  readonly origin: string;
  private readonly base: string;
  private readonly apiKey: string | null;
  private readonly timeoutMs: number;

  constructor(url: string, apiKey: string | null, timeoutMs: number) {
    this.base = url.replace(/\/+$/, '');
    const parsed = new URL(this.base);
    this.origin = `${parsed.protocol}//${parsed.host}`;
    this.apiKey = apiKey;
    this.timeoutMs = timeoutMs;
  }

  /** One HTTP round trip. Aborting `signal` rejects with its reason; the deadline is a 504, a refusal a 502. */
  async request(path: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.apiKey !== null) headers.authorization = `Bearer ${this.apiKey}`;
    let response: Response;
    try {
      response = await fetch(`${this.base}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: combined,
      });
    } catch (error) {
      throw this.translate(error, signal, timeout);
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
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
  readonly seed: number;
}

export function sampleBody(shape: Shape, parameters: SampleParameters): Record<string, unknown> {
  const common = {
    model: parameters.model,
    max_tokens: parameters.maxTokens,
    temperature: parameters.temperature,
    top_p: 1,
    ...(parameters.temperature > 0 ? { top_k: parameters.topLogprobs } : {}),
    n: 1,
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
  const probeTokens = tokenizer.encode('The weather today is');
  const shapes: Shape[] = options.api === 'auto' ? ['chat', 'completions'] : [options.api];
  const supported = new Set<Shape>();
  const problems: string[] = [];
  for (const shape of shapes) {
    try {
      const body = await client.request(
        shape === 'chat' ? '/chat/completions' : '/completions',
        sampleBody(shape, {
          model,
          promptTokens: probeTokens,
          messages: shape === 'chat' ? [{ role: 'user', content: 'The weather today is' }] : null,
          continuation: '',
          prefixText: '',
          maxTokens: 1,
          temperature: 1,
          topLogprobs: options.topLogprobs,
          seed: 1,
        }),
      );
      const sample = parseUpstreamSample(shape, body, table);
      const first = sample.positions[0];
      if (first !== undefined && first.candidates.ids.length >= 2) supported.add(shape);
      else problems.push(`${shape}: no top logprobs`);
    } catch (error) {
      if (error instanceof GatewayError && error.code !== 'TM_ERR_UPSTREAM_INVALID') throw error;
      problems.push(`${shape}: ${(error as Error).message}`);
    }
  }
  if (supported.size === 0) {
    throw new GatewayError(
      502,
      'TM_ERR_UPSTREAM_NO_LOGPROBS',
      `the upstream at ${client.origin} (model "${model}") returns no usable top-k logprobs (${problems.join('; ')}), so its output cannot be watermarked; refusing to serve it`,
    );
  }
  const info: ModelInfo = { id: model, ownedBy: 'upstream', created: Math.floor(Date.now() / 1000) };
  const stats = { roundTrips: 0, draftsAccepted: 0, draftsRejected: 0 };
  const drafting = options.draftTokens > 0;

  async function* generate(request: ChoiceRequest): AsyncGenerator<GeneratedStep, void, undefined> {
    if (request.watermarker.family === 'gumbel') {
      // Never serve unmarked text: token driving applies green-list keys only (the serve command refuses
      // a Gumbel key with --upstream before it listens; this guards every other way in).
      throw new GatewayError(
        500,
        'TM_ERR_INTERNAL',
        `token driving does not support the ${request.watermarker.scheme.name} scheme (key ${request.watermarker.keyId})`,
      );
    }
    const shape: Shape =
      request.messages !== null
        ? supported.has('chat')
          ? 'chat'
          : 'completions'
        : supported.has('completions')
          ? 'completions'
          : 'chat';
    const prefixText =
      request.messages === null && shape === 'chat' ? tokenizer.decode(request.promptTokens) : '';
    const messages = request.messages !== null && shape === 'completions' ? null : request.messages;
    const generated: number[] = [];
    while (generated.length < request.maxTokens) {
      if (request.signal.aborted) return;
      const want = drafting ? Math.min(options.draftTokens, request.maxTokens - generated.length) : 1;
      const context = [...request.promptTokens, ...generated];
      const body = await client.request(
        shape === 'chat' ? '/chat/completions' : '/completions',
        sampleBody(shape, {
          model,
          promptTokens: context,
          messages,
          continuation: shape === 'chat' ? tokenizer.decode(generated) : '',
          prefixText,
          maxTokens: want,
          temperature: request.temperature,
          topLogprobs: options.topLogprobs,
          seed: request.random.nextUint32(),
        }),
        request.signal,
      );
      stats.roundTrips++;
      const sample = parseUpstreamSample(shape, body, table);
      if (sample.positions.length === 0) {
        if (sample.finishReason === 'stop') return;
        throw new GatewayError(
          502,
          'TM_ERR_UPSTREAM_NO_LOGPROBS',
          'the upstream model server stopped returning logprobs',
        );
      }
      let allAccepted = true;
      for (const position of sample.positions) {
        if (position.candidates.ids.length === 0) throw invalid('a position has no mappable candidates');
        const distributions = draftDistributions(position.candidates, context, request);
        let token: number;
        let accepted = false;
        if (drafting) {
          const outcome = acceptDraft(distributions, position.draft, request.random);
          token = outcome.token;
          accepted = outcome.accepted;
          if (accepted) stats.draftsAccepted++;
          else stats.draftsRejected++;
        } else {
          token = sampleTarget(distributions, request.random);
        }
        const strength = stepStrength(position.candidates, context, request);
        let step: GeneratedStep = { token, strength, logprob: null, top: null };
        if (request.topLogprobs !== null) {
          const reported = reportedLogprobs(
            position.candidates,
            context,
            request.watermarker,
            token,
            request.topLogprobs,
          );
          step = { token, strength, logprob: reported.logprob, top: reported.top };
        }
        generated.push(token);
        context.push(token);
        yield step;
        if (request.signal.aborted) return;
        if (!accepted || generated.length >= request.maxTokens) {
          allAccepted = accepted;
          break;
        }
      }
      if (drafting && allAccepted && sample.finishReason === 'stop' && sample.positions.length < want) return;
    }
  }

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
      api: [...supported].join(','),
      draftTokens: options.draftTokens,
      topLogprobs: options.topLogprobs,
      tokenizer: tokenizer.id,
    }),
    close: async () => undefined,
  };
}
