/**
 * Engine-native mode against a real Python process: python/tests/engine_server.py samples a tiny torch
 * model over cl100k_base ids and marks it with tracemark's Python `TracemarkLogitsProcessor`, as an engine
 * running the processor does, and streams it over HTTP (stdlib http.server, SSE). The gateway must find
 * the mark at start-up, pass the stream through token for token, detect it, refuse to start once the
 * engine's mark is switched off, and raise the live alert. Skipped, with the reason shown, where
 * /usr/bin/python3 (or $TRACEMARK_PYTHON) lacks torch or numpy.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createWatermarkKey } from '@tracemark/core';
import { writeKeyFile } from '@tracemark/detection';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareGateway } from './bootstrap.ts';
import { ConfigError, resolveConfig } from './config.ts';
import {
  type Json,
  readEvents,
  removeTemporaryDirectories,
  startTestGateway,
  type TestGateway,
  temporaryDirectory,
} from './test-support/harness.ts';

afterAll(removeTemporaryDirectories);

const PYTHON = process.env.TRACEMARK_PYTHON ?? '/usr/bin/python3';
const SERVER = fileURLToPath(new URL('../../../python/tests/engine_server.py', import.meta.url));

function missing(): string | null {
  const probe = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8', timeout: 60_000 });
  if (probe.error !== undefined) return `${PYTHON} cannot run (${probe.error.message})`;
  if (probe.status !== 0)
    return `${PYTHON} lacks torch or numpy (Debian: apt-get install python3-torch python3-numpy)`;
  return null;
}

const reason = missing();
if (reason !== null) console.warn(`engine-native Python tests skipped: ${reason}`);

describe.skipIf(reason !== null)(
  `a Python engine running tracemark's processor${reason === null ? '' : ` (skipped: ${reason})`}`,
  () => {
    const tokenizer = getTokenizer('cl100k_base');
    const directory = temporaryDirectory('tracemark-python-engine-');
    const keyFile = join(directory, 'key.json');
    const vocabFile = join(directory, 'vocab.json');
    const key = createWatermarkKey({ secret: new Uint8Array(32).fill(5) });
    let engine: ChildProcess;
    let url: string;
    const gateways: TestGateway[] = [];

    beforeAll(async () => {
      await writeKeyFile(keyFile, key);
      // The words the engine may sample: " word" tokens, whose text re-tokenizes to the same ids.
      const ids = Array.from({ length: tokenizer.ordinaryTokenCount }, (_, id) => id);
      const pieces = tokenizer.decodeTokens(ids);
      const words = ids.filter((id) => /^ [a-z]{3,12}$/.test(pieces[id]!));
      writeFileSync(vocabFile, JSON.stringify({ ids: words, pieces: words.map((id) => pieces[id]) }));
      engine = spawn(PYTHON, [SERVER, '--key', keyFile, '--vocab', vocabFile, '--port', '0'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const port = await new Promise<number>((resolve, reject) => {
        const lines = createInterface({ input: engine.stdout! });
        lines.on('line', (line) => {
          const match = /^LISTENING (\d+)$/.exec(line);
          if (match !== null) resolve(Number(match[1]));
        });
        engine.once('exit', (code) => reject(new Error(`engine_server.py exited with ${code}`)));
      });
      url = `http://127.0.0.1:${port}/v1`;
    });
    afterAll(async () => {
      for (const gateway of gateways) await gateway.close();
      engine?.kill();
    });

    const setWatermark = async (on: boolean) => {
      const response = await fetch(url.replace(/\/v1$/, '/control'), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ watermark: on }),
      });
      expect(await response.json()).toEqual({ watermark: on });
    };

    it('starts on the marked engine, streams it token for token and detects the mark', async () => {
      const gateway = await startTestGateway({
        config: {
          upstreamUrl: url,
          upstreamWatermarkFile: keyFile,
          upstreamMarkCheckTokens: 1024,
          upstreamMarkSampleRate: 1,
          upstreamMarkWindowTokens: 1000,
          workerThreads: 1,
        },
      });
      gateways.push(gateway);
      expect(gateway.services.engineNative!.startupCheck).toMatchObject({
        verdict: 'watermarked',
        keyId: key.keyId,
      });

      const response = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gateway.devKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'tiny-torch-engine',
          messages: [{ role: 'user', content: 'tell me about the river and the old mill' }],
          max_tokens: 160,
          temperature: 1,
          top_p: 1,
          stream: true,
          stream_options: { include_usage: true },
        }),
      });
      const events = (await readEvents(response))
        .filter((event) => event !== '[DONE]')
        .map((e) => JSON.parse(e) as Json);
      const pieces = events
        .filter((chunk) => chunk.choices.length > 0)
        .map((chunk) => chunk.choices[0].delta.content ?? '')
        .filter((text: string) => text !== '');
      // One downstream chunk per upstream chunk (the engine streams one word token per chunk).
      expect(pieces).toHaveLength(160);
      expect(events.at(-1).usage.completion_tokens).toBe(160);
      const detected = await gateway.call('POST', '/v1/detect', { text: pieces.join('') });
      expect(detected.json).toMatchObject({ verdict: 'watermarked', keyId: key.keyId });

      // The engine's mark goes: a new gateway refuses to start, the running one raises the alert.
      await setWatermark(false);
      try {
        const config = resolveConfig(
          {
            dataDir: temporaryDirectory(),
            upstreamUrl: url,
            upstreamWatermarkFile: keyFile,
            upstreamMarkCheckTokens: 512,
          },
          {},
        );
        const error = await prepareGateway(config).then(
          () => null,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as Error).message).toMatch(/does not mark its completions/);

        const check = gateway.app.gateway.upstreamMarkCheck!;
        for (let i = 0; i < 4; i++) {
          const plain = await gateway.call('POST', '/v1/completions', {
            model: 'tiny-torch-engine',
            prompt: 'the harbour',
            max_tokens: 240,
          });
          expect(plain.status, plain.text).toBe(200);
        }
        await check.idle();
        expect(check.state()).toMatchObject({ missing: true });
        expect(gateway.logs.text).toMatch(/upstream mark missing/);
      } finally {
        await setWatermark(true);
      }
    }, 240_000);
  },
);
