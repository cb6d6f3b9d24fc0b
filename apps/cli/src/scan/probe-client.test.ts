import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { createProbeClient, ProbeRequestError, replyExcerpt } from './probe-client.ts';

const servers: Server[] = [];
/** A real HTTP server on loopback that answers every request with `handler`. */
async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const client = (endpoint: string, extra: { maxReplyBytes?: number } = {}) =>
  createProbeClient({
    endpoint,
    api: 'chat',
    model: 'suspect',
    maxTokens: 10,
    temperature: 1,
    retries: 2,
    timeoutMs: 20_000,
    rate: 0,
    backoffMs: 1,
    ...extra,
  });

describe('probe client against a hostile endpoint', () => {
  it('stops reading a reply past its byte limit, without retrying, and keeps its memory', async () => {
    let requests = 0;
    let written = 0;
    const endpoint = await serve((_request, response) => {
      requests++;
      response.writeHead(200, { 'content-type': 'application/json' });
      response.write('{"choices":[{"message":{"content":"');
      // a reply without end: 64 KiB pieces for as long as the client reads
      const piece = 'x'.repeat(64 * 1024);
      const more = () => {
        while (!response.destroyed && written < 1 << 30) {
          written += piece.length;
          if (!response.write(piece)) return void response.once('drain', more);
        }
      };
      response.on('close', () => undefined);
      more();
    });
    const error = await client(endpoint, { maxReplyBytes: 1 << 20 })
      .complete('hello')
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ProbeRequestError);
    expect((error as Error).message).toMatch(/reply over 1048576 bytes/);
    expect(requests).toBe(1);
    // the server stopped being read well before it could send its gigabyte
    expect(written).toBeLessThan(64 << 20);
  });

  it('shows no escape sequence or bidirectional override an endpoint puts in its error', async () => {
    const endpoint = await serve((_request, response) => {
      response.writeHead(400).end('bad \u001b[2J\u001b]0;owned\u0007 request \u202eevil\u2066 here');
    });
    const error = (await client(endpoint)
      .complete('hello')
      .catch((caught: unknown) => caught)) as ProbeRequestError;
    expect(error.status).toBe(400);
    expect(error.message).toBe(
      `${endpoint}/v1/chat/completions: HTTP 400: bad \\x1b[2J\\x1b]0;owned\\x07 request \\u202eevil\\u2066 here`,
    );
  });

  it('refuses a redirect instead of following it, and stops the run', async () => {
    let followed = 0;
    const target = await serve((_request, response) => {
      followed++;
      response.writeHead(200).end('{}');
    });
    const endpoint = await serve((_request, response) => {
      // U+009B is a terminal's one-character CSI (latin-1, so a header may hold it)
      response.writeHead(307, { location: `${target}/v1/chat/completions\u009b31m` }).end();
    });
    const error = (await client(endpoint)
      .complete('hello')
      .catch((caught: unknown) => caught)) as ProbeRequestError;
    expect(error).toBeInstanceOf(ProbeRequestError);
    expect(error.fatal).toBe(true);
    expect(error.message).toMatch(
      /HTTP 307, a redirect to http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions\\x9b31m \(give/,
    );
    expect(followed).toBe(0);
  });

  it('reads an ordinary reply as before', async () => {
    const endpoint = await serve((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          model: 'm',
          choices: [{ message: { content: 'caf\u00e9 \u{1f9ec}' }, finish_reason: 'stop' }],
        }),
      );
    });
    expect(await client(endpoint).complete('hello')).toEqual({
      output: 'caf\u00e9 \u{1f9ec}',
      finishReason: 'stop',
      model: 'm',
      retries: 0,
    });
  });
});

describe('replyExcerpt', () => {
  it('keeps ordinary text, folds white space and cuts at 200 characters', () => {
    expect(replyExcerpt('model  "x"\n\tnot found — caf\u00e9')).toBe('model "x" not found — caf\u00e9');
    expect(replyExcerpt('y'.repeat(500))).toHaveLength(200);
  });
});
