/**
 * Streamed round trips against a scripted event-stream server: the parsing of other servers' events and
 * error forms, the samples' life (what has arrived stays readable, a sample that ended takes no more), and
 * that every way a stream ends releases its connection and its waiters.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventSplitter, SampleStream, UpstreamClient, type UpstreamSample } from './backends/upstream.ts';

type Script = (request: IncomingMessage, response: ServerResponse) => Promise<void>;
let script: Script;
let url: string;
/** Per request: whether, and when, the server saw its connection close. */
let connections: { closedAt: number | null }[] = [];
const server = createServer(async (request, response) => {
  for await (const _ of request) {
    // the body is not needed
  }
  const connection = { closedAt: null as number | null };
  response.on('close', () => {
    connection.closedAt = Date.now();
  });
  connections.push(connection);
  await script(request, response);
});
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const POSITION = {
  draft: 1,
  drawnInTop: true,
  drawnLogprob: 0,
  candidates: { ids: new Uint32Array([1]), logits: new Float32Array([0]) },
  unmappedLogprobs: [],
};
/** A choice `{index, toks: [...], finish_reason}` gives one position per entry of `toks`. */
const parse = (choice: Record<string, unknown>): UpstreamSample => {
  const toks = Array.isArray(choice.toks) ? (choice.toks as string[]) : [];
  return {
    positions: toks.map(() => POSITION),
    pieces: toks,
    finishReason: typeof choice.finish_reason === 'string' ? choice.finish_reason : null,
  };
};
const event = (choices: unknown[]) => `data: ${JSON.stringify({ choices })}\n\n`;
const eventStream = (response: ServerResponse) =>
  response.writeHead(200, { 'content-type': 'text/event-stream' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function open(choices: number, maxTokens: number, timeoutMs = 2000) {
  const client = new UpstreamClient(url, 'sk-never-shown', timeoutMs);
  return client.stream('/completions', { max_tokens: maxTokens }, parse, choices);
}

const outcome = (promise: Promise<unknown>) =>
  promise.then(
    () => 'resolved',
    (error: Error) => `rejected: ${error.message}`,
  );

describe('event-stream parsing', () => {
  it('CRLF, comments, event lines, data over two lines, a usage chunk, sent a byte at a time (UTF-8 split)', async () => {
    script = async (_request, response) => {
      eventStream(response);
      const text =
        ': keep-alive\r\n\r\n' +
        'event: message\r\ndata: {"choices":[{"index":0,\r\ndata: "toks":["é"]}]}\r\n\r\n' +
        `data: ${JSON.stringify({ choices: [{ index: 1, toks: ['日本'] }] })}\r\n\r\n` +
        `data:${JSON.stringify({ choices: [{ index: 0, toks: ['x'], finish_reason: null }] })}\n\n` +
        `data: ${JSON.stringify({
          choices: [
            { index: 0, finish_reason: 'length' },
            { index: 1, toks: ['y'], finish_reason: 'stop' },
          ],
        })}\n\n` +
        `data: ${JSON.stringify({ choices: [], usage: { total_tokens: 3 } })}\n\n` +
        'data: [DONE]\r\n\r\n';
      for (const byte of Buffer.from(text)) response.write(Buffer.from([byte]));
      response.end();
    };
    const stream = await open(2, 8);
    await stream.finished();
    expect(stream.samples.map((sample) => sample.pieces)).toEqual([
      ['é', 'x'],
      ['日本', 'y'],
    ]);
    expect(stream.samples.map((sample) => sample.finishReason)).toEqual(['length', 'stop']);
  });

  it('lone CR line ends, as the format allows, and a CR and its LF in two pieces', () => {
    const splitter = new EventSplitter();
    expect(splitter.push('data: a\rdata: b\r')).toEqual([]);
    expect(splitter.push('\rdata: c\r')).toEqual(['data: a\ndata: b']);
    expect(splitter.push('\n\r\n')).toEqual(['data: c']);
    expect(splitter.push('data: d\n')).toEqual([]);
    expect(splitter.push('\ndata: e')).toEqual(['data: d']);
    expect(splitter.pending).toBe('data: e'.length);
  });

  it('a long event in pieces: its length is counted as it grows, and it ends at its empty line', () => {
    const splitter = new EventSplitter();
    const piece = 'x'.repeat(1 << 16);
    splitter.push('data: ');
    for (let i = 0; i < 128; i++) splitter.push(piece);
    expect(splitter.pending).toBe(6 + 128 * (1 << 16));
    const [whole] = splitter.push('\n\n');
    expect(whole).toHaveLength(6 + 128 * (1 << 16));
    expect(splitter.pending).toBe(0);
  });

  it("other servers' error forms, and a body that ends before its samples did, fail the stream", async () => {
    const forms = [
      'error: {"code":500,"message":"engine failure","type":"server_error"}\n\n',
      'event: error\ndata: {"message":"engine failure"}\n\n',
      'data: {"error":"Input validation error","error_type":"validation"}\n\n',
      'data: {"object":"error","message":"engine failure"}\n\n',
      '',
    ];
    for (const form of forms) {
      script = async (_request, response) => {
        eventStream(response);
        response.write(event([{ index: 0, toks: ['a'] }]));
        response.end(form);
      };
      const stream = await open(1, 8);
      expect(await outcome(stream.finished())).toMatch(
        form === '' ? /ended before its samples did/ : /carried an error/,
      );
    }
  });
});

describe('the samples of a stream', () => {
  it('what has arrived stays readable after the stream fails; only what has not is refused', async () => {
    script = async (_request, response) => {
      eventStream(response);
      response.write(event([{ index: 0, toks: ['a', 'b', 'c'] }]));
      await sleep(50);
      response.end('data: {"error":{"message":"late failure"}}\n\n');
    };
    const stream = await open(1, 8);
    await stream.reach([0], 0);
    await sleep(150);
    expect(await outcome(stream.reach([0], 2))).toBe('resolved');
    expect(await outcome(stream.reach([0], 3))).toMatch(/carried an error/);
    expect(await outcome(stream.finished())).toMatch(/carried an error/);
  });

  it('a sample that has ended takes no more positions', async () => {
    script = async (_request, response) => {
      eventStream(response);
      response.write(event([{ index: 0, toks: ['a'], finish_reason: 'stop' }]));
      await sleep(50);
      response.write(event([{ index: 0, toks: ['b', 'c'] }]));
      response.end('data: [DONE]\n\n');
    };
    const stream = await open(1, 8);
    await stream.reach([0], 5);
    await stream.finished();
    expect(stream.samples[0]!.positions).toHaveLength(1);
  });

  it('finished() rejects when the failure lands just before it is asked', async () => {
    const stream = new SampleStream(1, 3, () => undefined);
    queueMicrotask(() => stream.end(new Error('boom')));
    expect(await outcome(stream.finished())).toBe('rejected: boom');
  });

  it('cancel() after [DONE] releases the connection of a server that keeps it open', async () => {
    script = async (_request, response) => {
      eventStream(response);
      response.write(event([{ index: 0, toks: ['a'], finish_reason: 'stop' }]));
      response.write('data: [DONE]\n\n');
      const ping = setInterval(() => !response.destroyed && response.write(': ping\n\n'), 100);
      response.on('close', () => clearInterval(ping));
    };
    connections = [];
    const stream = await open(1, 8, 5000);
    await stream.finished();
    stream.cancel();
    await sleep(300);
    expect(connections[0]!.closedAt).not.toBeNull();
  });

  it('no rejection goes unhandled, and no error names the upstream key', async () => {
    script = async (_request, response) => {
      eventStream(response);
      response.write(event([{ index: 0, toks: ['a'] }]));
      await sleep(20);
      response.destroy();
    };
    const stream = await open(1, 8);
    const failure = await stream.finished().then(
      () => null,
      (error: unknown) => error,
    );
    expect(JSON.stringify(failure)).not.toContain('sk-never-shown');
    expect(String((failure as Error).stack)).not.toContain('sk-never-shown');
    await sleep(100);
    expect(unhandled).toEqual([]);
  });
});

describe('whole answers', () => {
  it('one past the answer limit is a 502 read no further; one within it is read', async () => {
    let written = 0;
    script = async (_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      const piece = Buffer.alloc(64 * 1024, 0x20);
      // an answer without end (white space a JSON parser would have to read to its end)
      const more = () => {
        while (!response.destroyed && written < 1 << 30) {
          written += piece.length;
          if (!response.write(piece)) return void response.once('drain', more);
        }
      };
      more();
    };
    const client = new UpstreamClient(url, null, 20_000, 1 << 20);
    const error = await client.request('/completions', { max_tokens: 1 }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ statusCode: 502, code: 'TM_ERR_UPSTREAM_INVALID' });
    expect((error as Error).message).toContain('an answer over 1048576 bytes');
    expect(written).toBeLessThan(64 << 20);
    script = async (_request, response) => {
      response
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ data: [{ id: 'm' }] }));
    };
    expect(await client.listModels()).toEqual(['m']);
  });
});
