/**
 * An engine-like OpenAI-compatible server for engine-native tests and benchmarks: it samples the embedded
 * n-gram model itself and embeds a mark the way an engine does, in its own sampler, then streams the text
 * (SSE, one chunk per `chunkTokens` tokens; a JSON body when `stream` is not set). Marks:
 * - `tracemark`: tracemark's green-list bias in the sampler (core `sampleToken` with a watermarker), the
 *   contexts reaching into the prompt, as the Python processor does;
 * - `vllm`: vLLM's native sampling (core foreign/vllm-sampling.ts: Gumbel-max and the rest), contexts of
 *   the output tokens only, with vLLM's default single-turn context deduplication;
 * - `none`: plain sampling (an engine started without its watermark).
 * `setMark` switches the mark of a running server (the live check's tests). Every request body received is
 * kept in `requests`, so tests can see exactly what reached the engine.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRandom, createWatermarker, sampleToken, type WatermarkKey } from '@tracemark/core';
import type { NgramModel } from '@tracemark/lm';
import type { Tokenizer } from '@tracemark/tokenizers';
// The engine side of vLLM's schemes is not exported by @tracemark/core (research/ imports it the same way).
import {
  createVllmSampler,
  type VllmSamplingKey,
} from '../../../../packages/core/src/foreign/vllm-sampling.ts';
import { formatChatPrompt } from '../prompt.ts';

export type EngineMark =
  | { readonly kind: 'tracemark'; readonly key: WatermarkKey }
  | { readonly kind: 'vllm'; readonly key: VllmSamplingKey }
  | { readonly kind: 'none' };

export interface EngineServerOptions {
  readonly model: NgramModel;
  readonly tokenizer: Tokenizer;
  readonly mark: EngineMark;
  readonly modelId?: string;
  /** Tokens per streamed chunk (default 1, as engines stream). */
  readonly chunkTokens?: number;
  /** Pause after each chunk, in ms (default 0): an engine's time per token. */
  readonly chunkDelayMs?: number;
}

export interface EngineServer {
  readonly url: string;
  /** The JSON bodies of every completion request received, in order. */
  readonly requests: Record<string, unknown>[];
  setMark(mark: EngineMark): void;
  close(): Promise<void>;
}

const CANDIDATES = 256;

type Sampler = (context: number[], generated: number[], temperature: number, topP: number) => number;

function samplerOf(mark: EngineMark, tokenizer: Tokenizer, model: NgramModel, seed: number): Sampler {
  const random = createRandom(seed);
  if (mark.kind === 'vllm') {
    const sampler = createVllmSampler(mark.key);
    return (context, generated, temperature, topP) => {
      const candidates = model.candidates(context, CANDIDATES);
      const max = candidates.logits[0]!;
      const probabilities = Array.from(candidates.logits, (logit) =>
        Math.exp((logit - max) / Math.max(temperature, 1e-6)),
      );
      return sampler.sample(generated, { probabilities, tokenIds: candidates.ids }, random, {
        topP,
        deduplicateContexts: 'single_turn',
      }).token;
    };
  }
  const watermarker =
    mark.kind === 'tracemark'
      ? createWatermarker(mark.key, { specialTokenIds: tokenizer.specialTokenIds })
      : null;
  return (context, _generated, temperature, topP) =>
    sampleToken(model.candidates(context, CANDIDATES), context, random, {
      temperature,
      topP,
      ...(watermarker === null ? {} : { watermarker }),
    }).token;
}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of request) text += chunk;
  return JSON.parse(text) as Record<string, unknown>;
}

export async function startEngineServer(options: EngineServerOptions): Promise<EngineServer> {
  const { model, tokenizer } = options;
  const modelId = options.modelId ?? 'engine-model';
  const chunkTokens = options.chunkTokens ?? 1;
  const chunkDelayMs = options.chunkDelayMs ?? 0;
  let mark = options.mark;
  let requestCount = 0;
  const requests: Record<string, unknown>[] = [];

  const completion = async (chat: boolean, body: Record<string, unknown>, response: ServerResponse) => {
    requests.push(body);
    const promptText = chat
      ? formatChatPrompt(body.messages as { role: string; content: string }[])
      : String(body.prompt ?? '');
    const prompt = Array.from(tokenizer.encode(promptText));
    const maxTokens = Number(body.max_tokens ?? 16);
    const temperature = Number(body.temperature ?? 1);
    const topP = Number(body.top_p ?? 1);
    const seed = typeof body.seed === 'number' ? body.seed : 1_000 + requestCount++;
    const sample = samplerOf(mark, tokenizer, model, seed);
    const id = `engine-${requestCount}`;
    const created = Math.floor(Date.now() / 1000);
    const object = chat ? 'chat.completion.chunk' : 'text_completion';
    const context = [...prompt];
    const generated: number[] = [];
    // Tokens not yet sent as text: a character whose bytes are not all generated waits for the rest.
    let pending: number[] = [];
    const nextText = (final: boolean): string => {
      const text = tokenizer.decode(pending);
      if (!final && text.endsWith('\uFFFD')) return '';
      pending = [];
      return text;
    };
    const choice = (text: string, finishReason: string | null) =>
      chat
        ? {
            index: 0,
            delta: text === '' && finishReason !== null ? {} : { content: text },
            finish_reason: finishReason,
          }
        : { index: 0, text, finish_reason: finishReason };

    if (body.stream !== true) {
      for (let i = 0; i < maxTokens; i++) {
        const token = sample(context, generated, temperature, topP);
        context.push(token);
        generated.push(token);
      }
      const text = tokenizer.decode(generated);
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({
          id,
          object: chat ? 'chat.completion' : 'text_completion',
          created,
          model: modelId,
          choices: [
            chat
              ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'length' }
              : { index: 0, text, finish_reason: 'length' },
          ],
        }),
      );
      return;
    }
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const write = (choices: unknown[]) =>
      response.write(`data: ${JSON.stringify({ id, object, created, model: modelId, choices })}\n\n`);
    if (chat) write([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]);
    let closed = false;
    response.on('close', () => {
      closed = true;
    });
    for (let i = 0; i < maxTokens && !closed; i++) {
      const token = sample(context, generated, temperature, topP);
      context.push(token);
      generated.push(token);
      pending.push(token);
      if (generated.length % chunkTokens === 0 || i === maxTokens - 1) {
        const delta = nextText(i === maxTokens - 1);
        if (delta !== '') write([choice(delta, null)]);
        if (chunkDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, chunkDelayMs));
        else if (i % 16 === 15) await new Promise((resolve) => setImmediate(resolve));
      }
    }
    if (closed) return;
    write([choice('', 'length')]);
    response.end('data: [DONE]\n\n');
  };

  const server = createServer((request, response) => {
    const path = (request.url ?? '').replace(/\?.*$/, '');
    const fail = (status: number, message: string) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { message, type: 'invalid_request_error' } }));
    };
    if (request.method === 'GET' && path === '/v1/models') {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({ object: 'list', data: [{ id: modelId, object: 'model', owned_by: 'engine' }] }),
      );
      return;
    }
    if (request.method !== 'POST' || (path !== '/v1/chat/completions' && path !== '/v1/completions')) {
      fail(404, 'not found');
      return;
    }
    readJson(request)
      .then((body) => completion(path === '/v1/chat/completions', body, response))
      .catch((error: unknown) => {
        if (!response.headersSent) fail(400, (error as Error).message);
        else response.destroy();
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    setMark: (next) => {
      mark = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
