/**
 * How long one non-streamed response full of log-probabilities pauses the gateway's event loop:
 * `pnpm --filter @tracemark/gateway logprob-pause` (needs the built CLI: `pnpm build`).
 *
 * `tracemark serve` (the built CLI, its defaults, a fresh data directory; TRACEMARK_MAX_LOGPROB_ENTRIES
 * raised so that every size is served) answers one chat completion at a time with `logprobs` and
 * `top_logprobs: 20`, while another client polls `/healthz` every 20 ms; the slowest `/healthz` answer during
 * the request is the pause. Sizes (n × max_tokens): 1 × 256, 8 × 256 (within the default limit of 65,536
 * entries), 8 × 1024 and 8 × 4096.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';

const SIZES: readonly (readonly [number, number])[] = [
  [1, 256],
  [8, 256],
  [8, 1024],
  [8, 4096],
];
const cli = new URL('../../cli/dist/bin.js', import.meta.url).pathname;
const dataDir = mkdtempSync(join(os.tmpdir(), 'tracemark-logprob-pause-'));

/** Starts `tracemark serve` on a free port and resolves its URL once it says (on stderr) that it listens. */
function serve(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    [cli, 'serve', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'],
    {
      env: { ...process.env, TRACEMARK_MAX_LOGPROB_ENTRIES: '100000000' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  return new Promise((resolve, reject) => {
    let output = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const url = /listening on (http:\/\/\S+)/.exec(output)?.[1];
      if (url !== undefined) resolve({ child, url });
    });
    child.on('exit', (code) => reject(new Error(`tracemark serve exited (${code}) before it listened`)));
  });
}

const { child, url } = await serve();
try {
  const devKey = readFileSync(join(dataDir, 'dev-api-key'), 'utf8').trim();
  const created = await fetch(`${url}/v1/admin/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${devKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ scopes: ['generate', 'logprobs'] }),
  });
  const apiKey = ((await created.json()) as { key: string }).key;
  console.log('| n × max_tokens | log-probabilities | response | request | slowest /healthz meanwhile |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const [n, maxTokens] of SIZES) {
    let slowest = 0;
    let done = false;
    const probe = (async () => {
      while (!done) {
        const begin = performance.now();
        await (await fetch(`${url}/healthz`)).arrayBuffer();
        slowest = Math.max(slowest, performance.now() - begin);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const begin = performance.now();
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'tracemark-ngram',
        messages: [{ role: 'user', content: 'Tell me a story' }],
        n,
        max_tokens: maxTokens,
        logprobs: true,
        top_logprobs: 20,
      }),
    });
    const body = await response.text();
    const elapsed = performance.now() - begin;
    done = true;
    await probe;
    if (response.status !== 200) throw new Error(`${n} × ${maxTokens}: HTTP ${response.status} ${body}`);
    const tokens = (JSON.parse(body) as { usage: { completion_tokens: number } }).usage.completion_tokens;
    console.log(
      `| ${n} × ${maxTokens} | ${(tokens * 21).toLocaleString('en')} | ${(body.length / 1e6).toFixed(1)} MB | ${elapsed.toFixed(0)} ms | ${slowest.toFixed(0)} ms |`,
    );
  }
} finally {
  child.kill('SIGINT');
  await new Promise((resolve) => child.once('exit', resolve));
  rmSync(dataDir, { recursive: true, force: true });
}
