/**
 * `tracemark probe` as a real process against real HTTP servers started here: an OpenAI-compatible
 * endpoint backed by the embedded model (watermarked or not), with failures, 429s, a killed and
 * resumed run; then `tracemark scan` on what the probe wrote.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  createWatermarker,
  createWatermarkKey,
  generateTokens,
  serializeKeyFile,
  type Watermarker,
} from '@tracemark/core';
import { loadDefaultModel, logitsSource, type NgramModel } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cacheDir,
  cliPath,
  removeTemporaryDirectories,
  repositoryRoot,
  temporaryDirectory,
  tracemark,
} from './helpers.ts';

afterAll(removeTemporaryDirectories);

const directory = temporaryDirectory('tracemark-probe-');
const tokenizer = getTokenizer('cl100k_base');
const key = createWatermarkKey({ secret: createHash('sha256').update('probe-e2e/key').digest() });
const keyPath = join(directory, 'key.json');
let model: NgramModel;

interface Behaviour {
  /** What to do with request number n (1-based): answer, fail with a status, or drop the connection. */
  fault?: (n: number) => { status: number; headers?: Record<string, string> } | 'drop' | null;
  delayMs?: number;
  watermarker?: Watermarker | null;
  apiKey?: string;
}

interface TestServer {
  readonly url: string;
  readonly requests: { n: number; at: number; path: string; body: Record<string, unknown> }[];
  close(): Promise<void>;
}

/** An OpenAI-compatible endpoint (chat and legacy completions) backed by the embedded model. */
async function startServer(behaviour: Behaviour): Promise<TestServer> {
  const requests: TestServer['requests'] = [];
  let count = 0;
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const n = ++count;
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    requests.push({ n, at: Date.now(), path: request.url ?? '', body });
    if (behaviour.apiKey !== undefined && request.headers.authorization !== `Bearer ${behaviour.apiKey}`) {
      response.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"message":"bad key"}}');
      return;
    }
    const fault = behaviour.fault?.(n) ?? null;
    if (fault === 'drop') {
      request.socket.destroy();
      return;
    }
    if (fault !== null) {
      response
        .writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers })
        .end('{"error":{}}');
      return;
    }
    const chat = request.url === '/v1/chat/completions';
    const prompt = chat ? String((body.messages as { content: string }[])[0]!.content) : String(body.prompt);
    const ids: number[] = [];
    for await (const { token } of generateTokens({
      source: logitsSource(model),
      prompt: tokenizer.encode(prompt),
      maxTokens: Number(body.max_tokens),
      watermarker: behaviour.watermarker ?? null,
      temperature: Number(body.temperature),
      topP: 0.95,
      seed: n,
    })) {
      ids.push(token);
    }
    if (behaviour.delayMs !== undefined)
      await new Promise((resolve) => setTimeout(resolve, behaviour.delayMs));
    const text = tokenizer.decode(ids);
    const choice = chat
      ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'length' }
      : { index: 0, text, finish_reason: 'length' };
    response.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        id: `cmpl-${n}`,
        object: chat ? 'chat.completion' : 'text_completion',
        model: body.model,
        choices: [choice],
      }),
    );
  };
  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: Error) => response.writeHead(500).end(error.message));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const servers: TestServer[] = [];
const serve = async (behaviour: Behaviour): Promise<TestServer> => {
  const server = await startServer(behaviour);
  servers.push(server);
  return server;
};

const SUBJECTS = [
  'the harbour',
  'a new railway',
  'the election',
  'the old mill',
  'winter storms',
  'the museum',
];
function writePrompts(name: string, count: number): string {
  const path = join(directory, name);
  const lines = Array.from({ length: count }, (_, i) =>
    JSON.stringify({ prompt: `Write about ${SUBJECTS[i % SUBJECTS.length]} (${i}).` }),
  );
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

const records = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map(
      (line) => JSON.parse(line) as { index: number; promptSha256: string; prompt: string; output: string },
    );

beforeAll(async () => {
  model = await loadDefaultModel({ cacheDir });
  writeFileSync(keyPath, serializeKeyFile(key), { mode: 0o600 });
}, 120_000);

afterAll(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

const probeArgs = (server: TestServer, prompts: string, out: string, extra: string[] = []): string[] => [
  'probe',
  '--endpoint',
  server.url,
  '--model',
  'suspect-1',
  '--prompts',
  prompts,
  '--out',
  out,
  '--max-tokens',
  '50',
  '--rate',
  '0',
  ...extra,
];

describe('tracemark probe against a real HTTP server', () => {
  it('retries 429, 5xx and dropped connections; the output scans as radioactive', async () => {
    const server = await serve({
      watermarker: createWatermarker(key, { specialTokenIds: tokenizer.specialTokenIds }),
      fault: (n) =>
        n === 2 || n === 6
          ? { status: 429, headers: { 'retry-after': '0' } }
          : n === 3
            ? { status: 503 }
            : n === 9
              ? 'drop'
              : n === 11
                ? { status: 500 }
                : null,
    });
    const prompts = writePrompts('prompts.jsonl', 30);
    const out = join(directory, 'radioactive.jsonl');
    const result = await tracemark(probeArgs(server, prompts, out, ['--concurrency', '3', '--json']));
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary).toMatchObject({ prompts: 30, alreadyDone: 0, probed: 30, failed: 0, retries: 5 });
    const written = records(out);
    expect(written.map((r) => r.index).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 30 }, (_, i) => i),
    );
    for (const record of written) {
      expect(record.promptSha256).toBe(createHash('sha256').update(record.prompt).digest('hex'));
      expect(record.output.length).toBeGreaterThan(0);
    }
    expect(server.requests[0]!.path).toBe('/v1/chat/completions');
    expect(server.requests[0]!.body).toMatchObject({ model: 'suspect-1', max_tokens: 50, temperature: 1 });
    const scan = await tracemark([
      'scan',
      '--key',
      keyPath,
      out,
      '--prompt-field',
      'prompt',
      '--field',
      'output',
      '--json',
    ]);
    expect(scan.code, scan.stderr).toBe(0);
    const report = JSON.parse(scan.stdout);
    expect(report.verdict).toBe('radioactive');
    expect(report.numDocuments).toBe(30);
    expect(report.numPromptTokens).toBeGreaterThan(0);
  });

  it('honours Retry-After, and a clean endpoint does not scan as radioactive (legacy completions API)', async () => {
    const server = await serve({
      fault: (n) => (n === 1 ? { status: 429, headers: { 'retry-after': '1' } } : null),
    });
    const prompts = writePrompts('clean-prompts.jsonl', 24);
    const out = join(directory, 'clean.jsonl');
    const result = await tracemark(
      probeArgs(server, prompts, out, ['--api', 'completions', '--concurrency', '1']),
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/probed 24 prompts \(0 already in .*\), 0 failed, 1 retries/);
    expect(server.requests[0]!.path).toBe('/v1/completions');
    expect(server.requests[1]!.at - server.requests[0]!.at).toBeGreaterThanOrEqual(950);
    const scan = await tracemark([
      'scan',
      '--key',
      keyPath,
      out,
      '--prompt-field',
      'prompt',
      '--field',
      'output',
      '--json',
    ]);
    expect(scan.code, scan.stderr).toBe(0);
    expect(JSON.parse(scan.stdout).verdict).not.toBe('radioactive');
  });

  it('a killed run resumes: every prompt once, a half-written last line dropped, done prompts not asked again', async () => {
    const server = await serve({ delayMs: 120 });
    const prompts = writePrompts('resume-prompts.jsonl', 16);
    const out = join(directory, 'resumed.jsonl');
    const child = spawn(
      process.execPath,
      [cliPath, ...probeArgs(server, prompts, out, ['--concurrency', '2'])],
      {
        cwd: repositoryRoot,
        stdio: 'ignore',
      },
    );
    const exited = new Promise((resolve) => child.on('exit', resolve));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (!existsSync(out) || records(out).length < 5)) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    child.kill('SIGKILL');
    await exited;
    const before = records(out);
    expect(before.length).toBeGreaterThanOrEqual(5);
    expect(before.length).toBeLessThan(16);
    // As if the kill had cut a record in the middle of its line.
    appendFileSync(out, '{"index":15,"promptSha256":"ab');
    const requestsBefore = server.requests.length;
    const resumed = await tracemark(probeArgs(server, prompts, out, ['--concurrency', '2', '--json']));
    expect(resumed.code, resumed.stderr).toBe(0);
    const summary = JSON.parse(resumed.stdout);
    expect(summary.alreadyDone).toBe(before.length);
    expect(summary.probed).toBe(16 - before.length);
    expect(server.requests.length - requestsBefore).toBe(16 - before.length);
    const after = records(out);
    expect(after.map((r) => r.index).sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(after.slice(0, before.length)).toEqual(before);
    const again = await tracemark(probeArgs(server, prompts, out, ['--json']));
    expect(JSON.parse(again.stdout)).toMatchObject({ alreadyDone: 16, probed: 0 });
  });

  it('sends the API key from --api-key-env; a rejected key stops the run; failures leave prompts to retry', async () => {
    let refused = false;
    const server = await serve({
      apiKey: 'sk-test-123',
      // The first authorized request refused as a bad request (not retryable): that prompt fails.
      fault: () => {
        if (refused) return null;
        refused = true;
        return { status: 400 };
      },
    });
    const prompts = writePrompts('auth-prompts.jsonl', 4);
    const out = join(directory, 'auth.jsonl');
    const unset = await tracemark(
      probeArgs(server, prompts, out, ['--api-key-env', 'TRACEMARK_TEST_UNSET_VARIABLE']),
    );
    expect(unset.code).toBe(2);
    const rejected = await tracemark(probeArgs(server, prompts, out, ['--json']));
    expect(rejected.code).toBe(3);
    expect(JSON.parse(rejected.stdout).error.code).toBe('TM_ERR_PROBE_AUTH');
    process.env.TRACEMARK_TEST_PROBE_KEY = 'sk-test-123';
    try {
      const accepted = await tracemark(
        probeArgs(server, prompts, out, [
          '--api-key-env',
          'TRACEMARK_TEST_PROBE_KEY',
          '--concurrency',
          '1',
          '--json',
        ]),
      );
      expect(accepted.code).toBe(3);
      expect(JSON.parse(accepted.stdout)).toMatchObject({ probed: 3, failed: 1 });
      expect(accepted.stdout).not.toContain('sk-test-123');
      const retried = await tracemark(
        probeArgs(server, prompts, out, ['--api-key-env', 'TRACEMARK_TEST_PROBE_KEY', '--json']),
      );
      expect(retried.code).toBe(0);
      expect(JSON.parse(retried.stdout)).toMatchObject({ alreadyDone: 3, probed: 1, failed: 0 });
    } finally {
      delete process.env.TRACEMARK_TEST_PROBE_KEY;
    }
  });
});
