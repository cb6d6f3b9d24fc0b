/**
 * A legacy-completions server over a toy model small enough to write down: six tokens, whose next-token
 * logits depend on the previous token only. It samples `n` independent choices with `top_k` honoured and
 * reports every token's logprob, so a test can compute the exact distribution the gateway must produce.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRandom, type SparseLogits } from '@tracemark/core';
import type { Tokenizer } from '@tracemark/tokenizers';

export const TOY_WORDS: readonly string[] = [' red', ' green', ' blue', ' cat', ' dog', ' sun'];

export interface ToyModel {
  readonly ids: Uint32Array;
  /** The log-probabilities of the six tokens after `previous` (sorted by id order of `ids`). */
  next(previous: number): SparseLogits;
}

export function toyModel(tokenizer: Tokenizer): ToyModel {
  const ids = Uint32Array.from(TOY_WORDS, (word) => {
    const encoded = tokenizer.encode(word);
    if (encoded.length !== 1) throw new Error(`"${word}" is not one token`);
    return encoded[0]!;
  });
  const next = (previous: number): SparseLogits => {
    const raw = Array.from(ids, (id, i) => Math.sin(previous * 0.37 + i * 1.9 + id * 0.001) * 1.5);
    const max = Math.max(...raw);
    const logZ = max + Math.log(raw.reduce((sum, v) => sum + Math.exp(v - max), 0));
    return { ids, logits: Float32Array.from(raw, (v) => v - logZ) };
  };
  return { ids, next };
}

export interface ToyUpstream {
  readonly url: string;
  readonly model: ToyModel;
  close(): Promise<void>;
}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of request) text += chunk;
  return JSON.parse(text) as Record<string, unknown>;
}

export async function startToyUpstream(tokenizer: Tokenizer): Promise<ToyUpstream> {
  const model = toyModel(tokenizer);
  const pieceOf = new Map(Array.from(model.ids, (id, i) => [id, TOY_WORDS[i]!]));
  const server = createServer((request, response) => {
    const send = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    const handle = async () => {
      if (request.method === 'GET' && request.url === '/v1/models') {
        return send(200, { object: 'list', data: [{ id: 'toy', object: 'model' }] });
      }
      if (request.method !== 'POST' || request.url !== '/v1/completions') {
        return send(404, { error: { message: 'not found' } });
      }
      const body = await readJson(request);
      const prompt = body.prompt as number[];
      const maxTokens = Number(body.max_tokens ?? 16);
      const temperature = Number(body.temperature ?? 1);
      const topK = Math.min(TOY_WORDS.length, Number(body.top_k ?? 0) > 0 ? Number(body.top_k) : 6);
      const reported = Math.min(TOY_WORDS.length, Number(body.logprobs ?? 0));
      const random = createRandom(typeof body.seed === 'number' ? body.seed : undefined);
      const choices = Array.from({ length: Math.max(1, Number(body.n ?? 1)) }, (_, index) => {
        let previous = prompt.at(-1) ?? 0;
        const tokens: string[] = [];
        const tokenLogprobs: number[] = [];
        const tops: Record<string, number>[] = [];
        for (let step = 0; step < maxTokens; step++) {
          const { ids, logits } = model.next(previous);
          const order = Array.from(ids.keys()).sort((a, b) => logits[b]! - logits[a]!);
          const kept = order.slice(0, topK);
          let chosen = kept[0]!;
          if (temperature > 0) {
            const weights = kept.map((i) => Math.exp((logits[i]! - logits[kept[0]!]!) / temperature));
            let target = random.nextFloat() * weights.reduce((a, b) => a + b, 0);
            for (let j = 0; j < kept.length; j++) {
              target -= weights[j]!;
              chosen = kept[j]!;
              if (target < 0) break;
            }
          }
          tokens.push(pieceOf.get(ids[chosen]!)!);
          tokenLogprobs.push(logits[chosen]!);
          tops.push(
            Object.fromEntries(order.slice(0, reported).map((i) => [pieceOf.get(ids[i]!)!, logits[i]!])),
          );
          previous = ids[chosen]!;
        }
        return {
          index,
          text: tokens.join(''),
          logprobs: { tokens, token_logprobs: tokenLogprobs, top_logprobs: tops },
          finish_reason: 'length',
        };
      });
      return send(200, { object: 'text_completion', model: 'toy', choices });
    };
    handle().catch((error: unknown) => send(500, { error: { message: String(error) } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    model,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
