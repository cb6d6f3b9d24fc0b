/**
 * A real OpenAI-compatible HTTP server for tests and benchmarks: it serves the embedded n-gram model (without
 * a watermark) with top-k logprobs in both the chat and the legacy completions shapes, as vLLM does, including
 * `top_k`, token-id prompts and `continue_final_message`. Options make it drop logprobs or answer slowly.
 * With `choices`, `n` gives that many samples (seeded seed + i, as vLLM seeds a request's children) and
 * `stream: true` sends them as an engine does: one decode step at a time, a chunk per choice and step, every
 * choice advancing together, and decoding stops when the client goes away.
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
  /** true: `n` is served (independent samples) and `stream` is honoured; false (default): one choice, no stream. */
  readonly choices?: boolean;
  /** With `choices`: the time one decode step takes (all choices advance in one step); unstreamed, the
   * answer comes after `max_tokens` steps. */
  readonly stepMs?: number;
}

export interface ModelServer {
  readonly url: string;
  /** Requests per path, and every token decoded (per choice, streamed or not, sent or not). */
  readonly counts: { models: number; chat: number; completions: number; decoded: number };
  setDelay(ms: number): void;
  close(): Promise<void>;
}

interface Drawn {
  readonly token: number;
  readonly logprob: number;
  readonly tops: { id: number; logprob: number }[];
}

/** One sample's decoder: each call draws the next token after the prompt and the tokens drawn so far. */
function decoder(
  model: NgramModel,
  prompt: readonly number[],
  temperature: number,
  topK: number,
  random: RandomSource,
): () => Drawn {
  const context = [...prompt];
  return () => {
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
    context.push(token);
    return {
      token,
      logprob: candidates.logits[chosen]!,
      tops: Array.from(candidates.ids, (id, j) => ({ id, logprob: candidates.logits[j]! })),
    };
  };
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
  const counts = { models: 0, chat: 0, completions: 0, decoded: 0 };
  const stepMs = options.stepMs ?? 0;
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
    const count = options.choices === true ? Math.max(1, Math.floor(Number(body.n ?? 1))) : 1;
    const seed = typeof body.seed === 'number' ? body.seed : null;
    const decoders = Array.from({ length: count }, (_, i) =>
      decoder(model, prompt, temperature, topK, createRandom(seed === null ? undefined : (seed + i) >>> 0)),
    );
    const created = Math.floor(Date.now() / 1000);
    const wantLogprobs = withLogprobs && (isChat ? body.logprobs === true : body.logprobs != null);
    // The logprobs of a run of drawn tokens, in the request's shape; `offset`: the text before the run.
    const logprobsOf = (drawn: readonly Drawn[], offset: number) => {
      if (!wantLogprobs) return null;
      const pieces = tokenizer.decodeTokens(drawn.map((d) => d.token));
      const topPieces = drawn.map((d) =>
        tokenizer.decodeTokens(d.tops.slice(0, topLogprobs).map((t) => t.id)),
      );
      if (isChat) {
        return {
          content: pieces.map((piece, i) => ({
            token: piece,
            logprob: drawn[i]!.logprob,
            bytes: bytes(piece),
            top_logprobs: topPieces[i]!.map((topPiece, j) => ({
              token: topPiece,
              logprob: drawn[i]!.tops[j]!.logprob,
              bytes: bytes(topPiece),
            })),
          })),
        };
      }
      let at = offset;
      return {
        tokens: pieces,
        token_logprobs: drawn.map((d) => d.logprob),
        top_logprobs: topPieces.map((list, i) =>
          Object.fromEntries(list.map((piece, j) => [piece, drawn[i]!.tops[j]!.logprob])),
        ),
        text_offset: pieces.map((piece) => {
          const here = at;
          at += piece.length;
          return here;
        }),
      };
    };
    const usage = (completion: number) => ({
      prompt_tokens: prompt.length,
      completion_tokens: completion,
      total_tokens: prompt.length + completion,
    });
    if (body.stream === true && options.choices === true) {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      const id = isChat ? 'chatcmpl-upstream' : 'cmpl-upstream';
      const object = isChat ? 'chat.completion.chunk' : 'text_completion';
      const offsets = new Array<number>(count).fill(0);
      const write = (choice: Record<string, unknown>) =>
        response.write(
          `data: ${JSON.stringify({ id, object, created, model: modelId, choices: [choice] })}\n\n`,
        );
      for (let step = 0; step < maxTokens && !response.destroyed; step++) {
        if (stepMs > 0) await new Promise((resolve) => setTimeout(resolve, stepMs));
        else await new Promise((resolve) => setImmediate(resolve));
        if (response.destroyed) break;
        for (let index = 0; index < count; index++) {
          const drawn = decoders[index]!();
          counts.decoded++;
          const text = tokenizer.decode([drawn.token]);
          const finish = step === maxTokens - 1 ? 'length' : null;
          const logprobs = logprobsOf([drawn], offsets[index]!);
          offsets[index]! += text.length;
          write(
            isChat
              ? { index, delta: { content: text }, logprobs, finish_reason: finish }
              : { index, text, logprobs, finish_reason: finish },
          );
        }
      }
      if (!response.destroyed) response.end('data: [DONE]\n\n');
      return;
    }
    // decoded together, as an engine decodes a request's n samples: one step's time per token
    if (stepMs > 0 && options.choices === true) {
      await new Promise((resolve) => setTimeout(resolve, stepMs * maxTokens));
    }
    const runs = decoders.map((next) =>
      Array.from({ length: maxTokens }, () => {
        counts.decoded++;
        return next();
      }),
    );
    if (isChat) {
      return send(200, {
        id: 'chatcmpl-upstream',
        object: 'chat.completion',
        created,
        model: modelId,
        choices: runs.map((drawn, index) => ({
          index,
          message: { role: 'assistant', content: tokenizer.decode(drawn.map((d) => d.token)) },
          logprobs: logprobsOf(drawn, 0),
          finish_reason: 'length',
        })),
        usage: usage(count * maxTokens),
      });
    }
    return send(200, {
      id: 'cmpl-upstream',
      object: 'text_completion',
      created,
      model: modelId,
      choices: runs.map((drawn, index) => ({
        index,
        text: tokenizer.decode(drawn.map((d) => d.token)),
        logprobs: logprobsOf(drawn, 0),
        finish_reason: 'length',
      })),
      usage: usage(count * maxTokens),
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
