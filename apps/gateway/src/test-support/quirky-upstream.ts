/**
 * A real HTTP proxy in front of an OpenAI-compatible server (model-server.ts) that gives it the habits of
 * other servers: `n` served as independent samples (seed + i, as vLLM seeds a request's children), limits on
 * `top_logprobs` / `logprobs` answered with HTTP 400 (OpenAI: 20 and 5), chat continuation ignored, `top_k`
 * ignored, no legacy completions. A streamed request (`stream: true`) goes through whole to a server that
 * serves `n` itself (model-server's `choices`) and its events come back as they are written; the proxy's going
 * away ends the request behind it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventSplitter } from '../backends/upstream.ts';

export interface QuirkyUpstreamOptions {
  /** The server behind, `http://host:port/v1`. */
  readonly target: string;
  /** false: `n` is ignored (one choice comes back). Default true. */
  readonly choices?: boolean;
  /** The most chat `top_logprobs` accepted; more is a 400. */
  readonly maxTopLogprobs?: number;
  /** The most legacy `logprobs` accepted; more is a 400. */
  readonly maxLegacyLogprobs?: number;
  /** true: `continue_final_message` / `add_generation_prompt` are dropped (the last message is answered). */
  readonly ignoreContinuation?: boolean;
  /** true: `top_k` is dropped (the server behind then samples from far more tokens than it reports). */
  readonly ignoreTopK?: boolean;
  /** false: `/v1/completions` answers 404. */
  readonly legacy?: boolean;
  /** false: `stream: true` answers 400. */
  readonly stream?: boolean;
  /**
   * A stream fails after this many events: the connection is cut, an error event is sent and it ends, or an
   * event is begun that never ends (16 MiB of it, and the connection is held open).
   */
  readonly streamFault?: {
    readonly afterEvents: number;
    readonly kind: 'cut' | 'error-event' | 'endless-event';
  };
  /** Streamed answers report at most this many top logprobs (fewer than whole answers do). */
  readonly streamTopLogprobs?: number;
  /** true: `max_tokens` is sent on multiplied by 4 (a server that sends more than it was asked for). */
  readonly ignoreMaxTokens?: boolean;
}

export interface QuirkyUpstream {
  readonly url: string;
  /** Requests received per path (before `n` is fanned out). */
  readonly counts: { chat: number; completions: number };
  close(): Promise<void>;
}

async function readBody(request: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of request) text += chunk;
  return text;
}

/**
 * Writes the events of `answer` to `response` as they come, and ends it; with `fault`, fails as it says after
 * that many events (`cut` aborts the request behind).
 */
async function relayStream(
  answer: Response,
  response: ServerResponse,
  cut: AbortController,
  fault: QuirkyUpstreamOptions['streamFault'],
): Promise<void> {
  const splitter = new EventSplitter();
  const decoder = new TextDecoder();
  let events = 0;
  try {
    for await (const piece of (answer.body ?? []) as AsyncIterable<Uint8Array>) {
      if (fault === undefined) {
        response.write(piece);
        continue;
      }
      for (const event of splitter.push(decoder.decode(piece, { stream: true }))) {
        response.write(`${event}\n\n`);
        if (++events < fault.afterEvents) continue;
        cut.abort();
        if (fault.kind === 'cut') return void response.destroy();
        if (fault.kind === 'error-event') {
          return void response.end(`data: ${JSON.stringify({ error: { message: 'engine failure' } })}\n\n`);
        }
        response.write('data: ');
        for (let mib = 0; mib < 16 && !response.destroyed; mib++) {
          response.write('x'.repeat(1 << 20));
          await new Promise((resolve) => setImmediate(resolve));
        }
        return;
      }
    }
  } catch {
    // the client went away (the fetch behind was aborted with it)
  }
  response.end();
}

export async function startQuirkyUpstream(options: QuirkyUpstreamOptions): Promise<QuirkyUpstream> {
  const target = options.target.replace(/\/+$/, '');
  const counts = { chat: 0, completions: 0 };
  const server = createServer((request, response) => {
    const send = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    const forward = async () => {
      const url = request.url ?? '';
      if (request.method === 'GET') {
        const answer = await fetch(`${target}${url.replace(/^\/v1/, '')}`);
        return send(answer.status, await answer.json());
      }
      const isChat = url === '/v1/chat/completions';
      if (!isChat && !(url === '/v1/completions' && options.legacy !== false)) {
        return send(404, { error: { message: 'not found' } });
      }
      if (isChat) counts.chat++;
      else counts.completions++;
      const body = JSON.parse(await readBody(request)) as Record<string, unknown>;
      const asked = Number(isChat ? (body.top_logprobs ?? 0) : (body.logprobs ?? 0));
      const limit = isChat ? options.maxTopLogprobs : options.maxLegacyLogprobs;
      if (limit !== undefined && asked > limit) {
        return send(400, {
          error: { message: `${isChat ? 'top_logprobs' : 'logprobs'} must be at most ${limit}` },
        });
      }
      if (options.ignoreContinuation) {
        delete body.continue_final_message;
        delete body.add_generation_prompt;
      }
      if (options.ignoreTopK) delete body.top_k;
      if (options.ignoreMaxTokens) body.max_tokens = 4 * Number(body.max_tokens ?? 16);
      if (body.stream === true) {
        if (options.stream === false) return send(400, { error: { message: 'stream is not supported' } });
        if (options.streamTopLogprobs !== undefined) {
          const field = isChat ? 'top_logprobs' : 'logprobs';
          body[field] = Math.min(Number(body[field] ?? 0), options.streamTopLogprobs);
        }
        const cut = new AbortController();
        response.on('close', () => cut.abort());
        const answer = await fetch(`${target}${url.replace(/^\/v1/, '')}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(options.choices === false ? { ...body, n: 1 } : body),
          signal: cut.signal,
        });
        response.writeHead(answer.status, {
          'content-type': answer.headers.get('content-type') ?? 'application/json',
        });
        await relayStream(answer, response, cut, options.streamFault);
        return;
      }
      const n = options.choices === false ? 1 : Math.max(1, Number(body.n ?? 1));
      const seed = typeof body.seed === 'number' ? body.seed : 0;
      const answers = await Promise.all(
        Array.from({ length: n }, async (_, index) => {
          const answer = await fetch(`${target}${url.replace(/^\/v1/, '')}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ ...body, n: 1, seed: (seed + index) >>> 0 }),
          });
          return { status: answer.status, json: (await answer.json()) as Record<string, unknown> };
        }),
      );
      const failed = answers.find((answer) => answer.status !== 200);
      if (failed !== undefined) return send(failed.status, failed.json);
      const choices = answers.map((answer, index) => ({
        ...((answer.json.choices as Record<string, unknown>[])[0] ?? {}),
        index,
      }));
      return send(200, { ...answers[0]!.json, choices });
    };
    forward().catch((error: unknown) => {
      if (response.headersSent) response.end();
      else send(500, { error: { message: String(error) } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
