/**
 * A real OpenAI-compatible HTTP server for tests and benchmarks: it serves the embedded n-gram model (without
 * a watermark) with top-k logprobs in both the chat and the legacy completions shapes, as vLLM does, including
 * `top_k`, token-id prompts and `continue_final_message`. Options make it drop logprobs or answer slowly.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRandom, type RandomSource } from '@tracemark/core';
import type { NgramModel } from '@tracemark/lm';
import type { Tokenizer } from '@tracemark/tokenizers';
import { formatChatPrompt } from '../prompt.ts';

export interface ModelServerOptions {
  readonly model: NgramModel;
  readonly tokenizer: Tokenizer;
  readonly modelId?: string;
  /** false: answer without logprobs (a backend that cannot be watermarked). */
  readonly logprobs?: boolean;
  readonly delayMs?: number;
}

export interface ModelServer {
  readonly url: string;
  readonly counts: { models: number; chat: number; completions: number };
  setDelay(ms: number): void;
  close(): Promise<void>;
}

interface Sampled {
  readonly tokens: number[];
  readonly logprobs: number[];
  readonly tops: { id: number; logprob: number }[][];
}

function sample(
  model: NgramModel,
  prompt: number[],
  maxTokens: number,
  temperature: number,
  topK: number,
  random: RandomSource,
): Sampled {
  const context = [...prompt];
  const out: Sampled = { tokens: [], logprobs: [], tops: [] };
  for (let i = 0; i < maxTokens; i++) {
    const candidates = model.candidates(context, Math.max(1, topK));
    const count = candidates.ids.length;
    let chosen = 0;
    if (temperature > 0) {
      const max = candidates.logits[0]!;
      const weights = Array.from(candidates.logits, (logit) => Math.exp((logit - max) / temperature));
      let target = random.nextFloat() * weights.reduce((a, b) => a + b, 0);
      for (chosen = 0; chosen < count - 1; chosen++) {
        target -= weights[chosen]!;
        if (target < 0) break;
      }
    }
    const token = candidates.ids[chosen]!;
    out.tokens.push(token);
    out.logprobs.push(candidates.logits[chosen]!);
    out.tops.push(Array.from(candidates.ids, (id, j) => ({ id, logprob: candidates.logits[j]! })));
    context.push(token);
  }
  return out;
}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of request) text += chunk;
  return JSON.parse(text) as Record<string, unknown>;
}

export async function startModelServer(options: ModelServerOptions): Promise<ModelServer> {
  const { model, tokenizer } = options;
  const modelId = options.modelId ?? 'ngram-upstream';
  const withLogprobs = options.logprobs !== false;
  let delayMs = options.delayMs ?? 0;
  const counts = { models: 0, chat: 0, completions: 0 };
  const bytes = (text: string) => Array.from(Buffer.from(text, 'utf8'));

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const send = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    if (response.destroyed) return;
    if (request.method === 'GET' && request.url === '/v1/models') {
      counts.models++;
      return send(200, {
        object: 'list',
        data: [{ id: modelId, object: 'model', created: 0, owned_by: 'test' }],
      });
    }
    const isChat = request.url === '/v1/chat/completions';
    if (request.method !== 'POST' || (!isChat && request.url !== '/v1/completions')) {
      return send(404, { error: { message: 'not found' } });
    }
    const body = await readJson(request);
    if (body.model !== modelId) return send(404, { error: { message: 'unknown model' } });
    const maxTokens = Number(body.max_tokens ?? 16);
    const temperature = Number(body.temperature ?? 1);
    const topLogprobs = Number(isChat ? (body.top_logprobs ?? 0) : (body.logprobs ?? 0));
    const topK = Number(body.top_k ?? 0) > 0 ? Number(body.top_k) : 200;
    const random = createRandom(typeof body.seed === 'number' ? body.seed : undefined);
    let prompt: number[];
    if (isChat) {
      counts.chat++;
      const messages = body.messages as { role: string; content: string }[];
      const last = messages.at(-1);
      const text =
        body.continue_final_message === true && last?.role === 'assistant'
          ? formatChatPrompt(messages.slice(0, -1)) + last.content
          : formatChatPrompt(messages);
      prompt = Array.from(tokenizer.encode(text));
    } else {
      counts.completions++;
      prompt =
        typeof body.prompt === 'string'
          ? Array.from(tokenizer.encode(body.prompt))
          : (body.prompt as number[]);
    }
    const sampled = sample(model, prompt, maxTokens, temperature, topK, random);
    const pieces = tokenizer.decodeTokens(sampled.tokens);
    const text = tokenizer.decode(sampled.tokens);
    const topPieces = sampled.tops.map((tops) =>
      tokenizer.decodeTokens(tops.slice(0, topLogprobs).map((t) => t.id)),
    );
    const created = Math.floor(Date.now() / 1000);
    if (isChat) {
      const logprobs =
        withLogprobs && body.logprobs === true
          ? {
              content: pieces.map((piece, i) => ({
                token: piece,
                logprob: sampled.logprobs[i],
                bytes: bytes(piece),
                top_logprobs: topPieces[i]!.map((topPiece, j) => ({
                  token: topPiece,
                  logprob: sampled.tops[i]![j]!.logprob,
                  bytes: bytes(topPiece),
                })),
              })),
            }
          : null;
      return send(200, {
        id: 'chatcmpl-upstream',
        object: 'chat.completion',
        created,
        model: modelId,
        choices: [
          { index: 0, message: { role: 'assistant', content: text }, logprobs, finish_reason: 'length' },
        ],
        usage: {
          prompt_tokens: prompt.length,
          completion_tokens: sampled.tokens.length,
          total_tokens: prompt.length + sampled.tokens.length,
        },
      });
    }
    let offset = 0;
    const logprobs =
      withLogprobs && body.logprobs != null
        ? {
            tokens: pieces,
            token_logprobs: sampled.logprobs,
            top_logprobs: topPieces.map((list, i) =>
              Object.fromEntries(list.map((piece, j) => [piece, sampled.tops[i]![j]!.logprob])),
            ),
            text_offset: pieces.map((piece) => {
              const at = offset;
              offset += piece.length;
              return at;
            }),
          }
        : null;
    return send(200, {
      id: 'cmpl-upstream',
      object: 'text_completion',
      created,
      model: modelId,
      choices: [{ index: 0, text, logprobs, finish_reason: 'length' }],
      usage: {
        prompt_tokens: prompt.length,
        completion_tokens: sampled.tokens.length,
        total_tokens: prompt.length + sampled.tokens.length,
      },
    });
  };

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { message: String(error) } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    counts,
    setDelay: (ms) => {
      delayMs = ms;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
