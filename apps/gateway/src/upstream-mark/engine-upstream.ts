/**
 * An upstream engine that marks its own output (engine-native mode): vLLM or SGLang with their native
 * watermarking, transformers with a watermark processor, or any server running tracemark's Python
 * processor. The gateway does not sample: it forwards a request built from an allow-list of fields
 * (`engineRequestBody`; nothing a client sent beyond them reaches the engine), always with `stream: true`,
 * and hands on each chunk's text as it arrives. The mark is the engine's; the start-up and live checks
 * (self-check.ts, live-check.ts) confirm that its completions carry the configured key's mark.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Tokenizer } from '@tracemark/tokenizers';
import type { Backend, ChatMessage, ModelInfo } from '../backends/types.ts';
import { UpstreamClient } from '../backends/upstream.ts';
import type { UpstreamApi } from '../config.ts';
import { GatewayError } from '../errors.ts';
import { formatChatPrompt } from '../prompt.ts';

export type EngineShape = 'chat' | 'completions';

export interface EngineUpstreamOptions {
  readonly url: string;
  readonly apiKey: string | null;
  /** Model to serve; null: the first one the upstream lists. */
  readonly model: string | null;
  /** `auto`: chat requests go to /chat/completions and legacy ones to /completions. */
  readonly api: UpstreamApi;
  /** The longest wait for the answer's headers and then for each chunk; longer is a 504. */
  readonly timeoutMs: number;
  /** The serving key's tokenizer: completions are tokenized with it for the issuance record. */
  readonly tokenizer: Tokenizer;
  /** Public facts about the mark for /healthz (key id and scheme, never the secret). */
  readonly mark: { readonly keyId: string; readonly scheme: string };
}

/** One completion to ask the engine for: the fields the gateway forwards, and nothing else. */
export interface EngineRequest {
  /** Chat messages, or null for a legacy prompt. */
  readonly messages: readonly ChatMessage[] | null;
  /** The legacy prompt's text (the chat prompt's rendering when messages are given). */
  readonly prompt: string;
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP: number;
  readonly seed: number | null;
  readonly stops: readonly string[];
}

export interface EngineCompletion {
  readonly text: string;
  /** The engine's finish reason (`stop`, `length`, …); null when it sent none. */
  readonly finishReason: string | null;
  /** Chunks that carried text. */
  readonly chunks: number;
}

export interface EngineUpstream extends Backend {
  readonly origin: string;
  readonly model: string;
  /** Which endpoint a request of this kind goes to. */
  shapeFor(messages: readonly ChatMessage[] | null): EngineShape;
  /**
   * Streams one completion from the engine; `onText` gets each chunk's text as it arrives (the next chunk
   * is read once it resolves, so a slow client slows the engine's stream, not the gateway's memory).
   * Aborting `signal` rejects with its reason.
   */
  complete(
    request: EngineRequest,
    signal: AbortSignal | undefined,
    onText?: (text: string) => Promise<void>,
  ): Promise<EngineCompletion>;
}

/**
 * The upstream request body: built from the allow-list below only, so no field a client sent can switch
 * the engine's mark off or substitute a key (request.ts refuses such fields before this point as well).
 */
export function engineRequestBody(
  model: string,
  shape: EngineShape,
  request: EngineRequest,
): Record<string, unknown> {
  const common: Record<string, unknown> = {
    model,
    max_tokens: request.maxTokens,
    temperature: request.temperature,
    top_p: request.topP,
    n: 1,
    stream: true,
    ...(request.seed === null ? {} : { seed: request.seed }),
    ...(request.stops.length === 0 ? {} : { stop: [...request.stops] }),
  };
  if (shape === 'completions') return { ...common, prompt: request.prompt };
  const messages =
    request.messages === null
      ? [{ role: 'user', content: request.prompt }]
      : request.messages.map((message) => ({ role: message.role, content: message.content }));
  return { ...common, messages };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function invalid(reason: string): GatewayError {
  return new GatewayError(
    502,
    'TM_ERR_UPSTREAM_INVALID',
    `the upstream model server sent an unusable stream (${reason})`,
  );
}

/** The text and finish reason of one streamed chunk (chat `delta.content` or legacy `text`). */
export function chunkText(
  shape: EngineShape,
  chunk: unknown,
): { text: string; finishReason: string | null } | null {
  if (!isRecord(chunk)) throw invalid('a chunk is not a JSON object');
  if (isRecord(chunk.error)) {
    throw new GatewayError(
      502,
      'TM_ERR_UPSTREAM_INVALID',
      'the upstream model server ended the stream with an error',
      {
        cause: JSON.stringify(chunk.error).slice(0, 500),
      },
    );
  }
  if (!Array.isArray(chunk.choices)) throw invalid('a chunk has no choices');
  const choice = chunk.choices[0];
  // A usage-only chunk (stream_options.include_usage) has no choices.
  if (choice === undefined) return null;
  if (!isRecord(choice)) throw invalid('a choice is not an object');
  const finishReason = typeof choice.finish_reason === 'string' ? choice.finish_reason : null;
  let text: unknown;
  if (shape === 'chat') text = isRecord(choice.delta) ? choice.delta.content : undefined;
  else text = choice.text;
  if (text !== undefined && text !== null && typeof text !== 'string')
    throw invalid('a text is not a string');
  return { text: typeof text === 'string' ? text : '', finishReason };
}

/** Splits a server-sent-event body into the `data:` payload of each event, as they complete. */
export class SseParser {
  private buffer = '';

  /** Adds decoded text; returns the payloads of the events it completed. */
  push(text: string): string[] {
    this.buffer += text;
    const payloads: string[] = [];
    for (;;) {
      const match = /\r?\n\r?\n/.exec(this.buffer);
      if (match === null) break;
      const event = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const data = event
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5));
      if (data.length > 0) payloads.push(data.join('\n'));
    }
    return payloads;
  }
}

/** Keep-alive connections to the engine, as many as there are concurrent completions. */
const AGENTS = {
  'http:': new HttpAgent({ keepAlive: true, scheduling: 'lifo' }),
  'https:': new HttpsAgent({ keepAlive: true, scheduling: 'lifo' }),
} as const;

/**
 * POSTs `body` and resolves with the response once its headers arrive. node:http rather than fetch: a
 * chunk read from a Node stream costs a fraction of a chunk read through WHATWG streams, and every
 * chunk of every completion passes here.
 */
function post(
  url: string,
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  const target = new URL(url);
  const transport = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const outgoing = transport(
      target,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        agent: target.protocol === 'https:' ? AGENTS['https:'] : AGENTS['http:'],
        signal,
      },
      resolve,
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

/** At most `limit` characters of a response body. */
async function readText(response: IncomingMessage, limit: number): Promise<string> {
  response.setEncoding('utf8');
  let text = '';
  for await (const piece of response as AsyncIterable<string>) {
    text += piece;
    if (text.length >= limit) break;
  }
  return text;
}

export async function createEngineUpstream(options: EngineUpstreamOptions): Promise<EngineUpstream> {
  const client = new UpstreamClient(options.url, options.apiKey, options.timeoutMs);
  const base = options.url.replace(/\/+$/, '');
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
  const info: ModelInfo = { id: model, ownedBy: 'upstream', created: Math.floor(Date.now() / 1000) };
  const stats = { roundTrips: 0, draftsAccepted: 0, draftsRejected: 0 };

  const shapeFor = (messages: readonly ChatMessage[] | null): EngineShape =>
    options.api === 'auto' ? (messages === null ? 'completions' : 'chat') : options.api;

  const complete = async (
    request: EngineRequest,
    signal: AbortSignal | undefined,
    onText?: (text: string) => Promise<void>,
  ): Promise<EngineCompletion> => {
    const shape = shapeFor(request.messages);
    // A chat request sent to /completions is rendered as the gateway renders chat prompts.
    const forwarded: EngineRequest =
      shape === 'completions' && request.messages !== null
        ? { ...request, prompt: formatChatPrompt(request.messages) }
        : request;
    const idle = new AbortController();
    const combined = signal === undefined ? idle.signal : AbortSignal.any([signal, idle.signal]);
    // One timer per completion, pushed back on every chunk (`refresh` reuses it).
    let timer = setTimeout(() => idle.abort(), options.timeoutMs);
    let done = false;
    const translate = (error: unknown): unknown => {
      if (signal?.aborted) return signal.reason ?? error;
      if (idle.signal.aborted) {
        return new GatewayError(
          504,
          'TM_ERR_UPSTREAM_TIMEOUT',
          `the upstream model server sent nothing for ${options.timeoutMs} ms`,
        );
      }
      if (error instanceof GatewayError) return error;
      return new GatewayError(
        502,
        'TM_ERR_UPSTREAM_UNAVAILABLE',
        'the upstream model server could not be reached',
        {
          cause: error,
        },
      );
    };
    const headers: Record<string, string> = {
      accept: 'text/event-stream',
      'content-type': 'application/json',
    };
    if (options.apiKey !== null) headers.authorization = `Bearer ${options.apiKey}`;
    let response: IncomingMessage | null = null;
    let text = '';
    let finishReason: string | null = null;
    let chunks = 0;
    try {
      stats.roundTrips++;
      response = await post(
        `${base}${shape === 'chat' ? '/chat/completions' : '/completions'}`,
        headers,
        JSON.stringify(engineRequestBody(model, shape, forwarded)),
        combined,
      );
      if (response.statusCode === undefined || response.statusCode < 200 || response.statusCode >= 300) {
        const detail = (await readText(response, 500).catch(() => '')).slice(0, 500);
        throw new GatewayError(
          502,
          'TM_ERR_UPSTREAM_INVALID',
          `the upstream model server answered HTTP ${response.statusCode}`,
          { cause: detail },
        );
      }
      response.setEncoding('utf8');
      const parser = new SseParser();
      // The stream is read to its end (a server closes it right after [DONE]), so that its connection
      // goes back to the keep-alive pool instead of being destroyed.
      for await (const piece of response as AsyncIterable<string>) {
        if (done) continue;
        timer.refresh();
        for (const payload of parser.push(piece)) {
          if (payload.trim() === '[DONE]') {
            done = true;
            // What may follow [DONE] is the end of the body; a server that holds on gets a second.
            clearTimeout(timer);
            timer = setTimeout(() => idle.abort(), 1000);
            break;
          }
          let parsed: unknown;
          try {
            parsed = JSON.parse(payload);
          } catch {
            throw invalid('a chunk is not JSON');
          }
          const chunk = chunkText(shape, parsed);
          if (chunk === null) continue;
          if (chunk.finishReason !== null) finishReason = chunk.finishReason;
          if (chunk.text === '') continue;
          chunks++;
          text += chunk.text;
          await onText?.(chunk.text);
        }
      }
      if (!done && finishReason === null) throw invalid('the stream ended without [DONE]');
      return { text, finishReason, chunks };
    } catch (error) {
      response?.destroy();
      // A server that holds the connection open after [DONE] costs that connection, not the completion.
      if (done && !signal?.aborted) return { text, finishReason, chunks };
      throw translate(error);
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    kind: 'upstream',
    tokenizer: options.tokenizer,
    stats,
    origin: client.origin,
    model,
    models: () => [info],
    shapeFor,
    complete,
    // The engine samples: completions stream through completion/engine-native.ts, never through here.
    // biome-ignore lint/correctness/useYield: an engine-native upstream proposes no candidates.
    generate: async function* () {
      throw new Error('an engine-native upstream samples itself; use the engine-native session');
    },
    describe: () => ({
      backend: 'engine-native',
      upstream: client.origin,
      model,
      api: options.api,
      tokenizer: options.tokenizer.id,
      markKeyId: options.mark.keyId,
      markScheme: options.mark.scheme,
    }),
    close: async () => undefined,
  };
}
