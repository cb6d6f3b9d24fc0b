/**
 * Provenance end to end with real processes: `tracemark serve`, then `tracemark verify`, `tracemark detect
 * --json`, `tracemark evidence verify` and `tracemark evidence render` as spawned commands. Tampering with the
 * report, the text, a proof or a checkpoint makes verification fail with the reason; an edited completion is
 * still linked and detected. Build first: `pnpm exec tsc -b`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRandom } from '@tracemark/core';
import {
  canonicalJsonBytes,
  type DsseEnvelope,
  type EvidenceStatement,
  fromBase64,
  parseSignerKey,
  signEnvelope,
} from '@tracemark/provenance';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  parseReport,
  type ReportFile,
  readPublicKeys,
  verifyReport,
} from '../apps/cli/src/evidence-report.ts';
import { cacheDir, cliPath, removeTemporaryDirectories, temporaryDirectory, tracemark } from './helpers.ts';

afterAll(removeTemporaryDirectories);

interface Served {
  readonly url: string;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

/** `tracemark serve --port 0` as a real process; resolves once it listens. */
function serve(dataDir: string): Promise<Served> {
  const child = spawn(
    process.execPath,
    [cliPath, 'serve', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'],
    {
      env: { ...process.env, TRACEMARK_CACHE_DIR: cacheDir },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), 60_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(stderr);
      if (match !== null) {
        clearTimeout(timer);
        resolve({
          url: match[1]!,
          child,
          stop: async () => {
            child.kill('SIGTERM');
            await exited;
          },
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited (${code}): ${stderr}`)));
  });
}

const tokenizer = getTokenizer('cl100k_base');

function editTokens(text: string, rate: number, seed: number): string {
  const random = createRandom(seed);
  return tokenizer.decode(
    Array.from(tokenizer.encodeFast(text), (token) =>
      random.nextFloat() < rate ? Math.floor(random.nextFloat() * tokenizer.ordinaryTokenCount) : token,
    ),
  );
}

const statementOf = (envelope: DsseEnvelope) =>
  JSON.parse(new TextDecoder().decode(fromBase64(envelope.payload))) as EvidenceStatement;

let served: Served;
let dir: string;
let dataDir: string;
let devKey: string;
let textFile: string;
let text: string;
let reportFile: string;
let keysFile: string;

interface CompletionBody {
  readonly choices: { readonly text: string }[];
}

async function post(path: string, body: unknown): Promise<CompletionBody> {
  const response = await fetch(`${served.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${devKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as CompletionBody;
}

beforeAll(async () => {
  dir = temporaryDirectory();
  dataDir = join(dir, 'data');
  served = await serve(dataDir);
  devKey = readFileSync(join(dataDir, 'dev-api-key'), 'utf8').trim();
  process.env.TRACEMARK_API_KEY = devKey;
  // A few other outputs first, so the inclusion proof has several hashes.
  for (let i = 0; i < 5; i++)
    await post('/v1/completions', { model: 'tracemark-ngram', prompt: `Note ${i}:`, max_tokens: 8 });
  const completion = await post('/v1/completions', {
    model: 'tracemark-ngram',
    prompt: 'The harbour authority said on Monday that',
    max_tokens: 200,
    seed: 17,
  });
  text = completion.choices[0].text;
  textFile = join(dir, 'text.txt');
  writeFileSync(textFile, text);
  reportFile = join(dir, 'report.json');
  keysFile = join(dir, 'keys.json');
  writeFileSync(keysFile, await (await fetch(`${served.url}/.well-known/tracemark/keys.json`)).text());
}, 120_000);

afterAll(async () => {
  await served?.stop();
});

describe('tracemark verify and tracemark evidence, as real processes', () => {
  it('verify prints the verdict and saves a report whose numbers are those of `tracemark detect --json`', async () => {
    const verified = await tracemark(['verify', textFile, '--server', served.url, '--out', reportFile]);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(/watermark DETECTED; ISSUED by this service \(exact match, record iss_/);
    const detected = await tracemark([
      'detect',
      '--json',
      '--key',
      join(dataDir, 'watermark-key.json'),
      textFile,
    ]);
    expect(detected.code, detected.stderr).toBe(0);
    const cli = JSON.parse(detected.stdout).results[0];
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as ReportFile;
    const { detection, issuance } = statementOf(report.envelope).predicate;
    expect(detection).toMatchObject({
      keyId: cli.keyId,
      numScored: cli.numScored,
      numGreen: cli.numGreen,
      z: cli.z,
      log10P: cli.log10P,
      log10PCorrected: cli.log10PAdjusted,
      numTests: cli.keysTested,
      alpha: cli.fpr,
      verdict: 'detected',
    });
    expect(issuance!.inclusionProof.length).toBeGreaterThanOrEqual(2);
  });

  it('evidence verify: exit 0 with the pinned key, 4 without it, 1 with the reason when the text differs', async () => {
    const pinned = await tracemark([
      'evidence',
      'verify',
      reportFile,
      '--text',
      textFile,
      '--public-key',
      keysFile,
    ]);
    expect(pinned.code, pinned.stdout).toBe(0);
    expect(pinned.stdout).toMatch(/VERIFIED — every check holds/);
    const unpinned = await tracemark(['evidence', 'verify', reportFile]);
    expect(unpinned.code).toBe(4);
    expect(unpinned.stdout).toMatch(/NOT PINNED/);
    const otherText = join(dir, 'other.txt');
    writeFileSync(otherText, `${text} `);
    const wrong = await tracemark([
      'evidence',
      'verify',
      reportFile,
      '--text',
      otherText,
      '--public-key',
      keysFile,
      '--json',
    ]);
    expect(wrong.code).toBe(1);
    const json = JSON.parse(wrong.stdout);
    expect(json.reason).toMatch(
      /^text matches the report: the text's SHA-256 is [0-9a-f]{64}, the report is about/,
    );
    const missing = await tracemark(['evidence', 'verify', join(dir, 'nope.json')]);
    expect(missing.code).toBe(3);
  });

  it('tampering with the report file, the text, a proof or a checkpoint fails verification with the reason', async () => {
    const original = readFileSync(reportFile, 'utf8');
    const keys = await readPublicKeys(keysFile);
    const textBytes = new Uint8Array(readFileSync(textFile));
    // What `tracemark evidence verify` does, in process: read the file, then check it.
    const check = (reportText: string, bytes: Uint8Array = textBytes) => {
      let report: ReportFile;
      try {
        report = parseReport(reportText);
      } catch (error) {
        return (error as Error).message;
      }
      const result = verifyReport(report, { text: bytes, publicKeys: keys });
      return result.exitCode === 0 ? null : result.reason;
    };
    expect(check(original)).toBeNull();

    // The report file: every byte outside the base64 payload, and every 64th byte of it (each payload
    // byte is covered by the same signature; packages/provenance tests every byte of an envelope).
    const payloadStart = original.indexOf('"payload": "') + 12;
    const payloadEnd = original.indexOf('"', payloadStart);
    let positions = 0;
    for (let i = 0; i < original.length; i++) {
      if (i >= payloadStart && i < payloadEnd && (i - payloadStart) % 64 !== 0) continue;
      const changed =
        original.slice(0, i) + String.fromCharCode(original.charCodeAt(i) ^ 1) + original.slice(i + 1);
      expect(check(changed), `report byte ${i}`).toBeTruthy();
      positions++;
    }
    expect(positions).toBeGreaterThan(400);
    // Through the CLI: a changed signature says why.
    const report = JSON.parse(original) as ReportFile;
    const sig = report.envelope.signatures[0]!.sig;
    const forged = join(dir, 'forged.json');
    writeFileSync(
      forged,
      JSON.stringify({
        ...report,
        envelope: {
          ...report.envelope,
          signatures: [
            { ...report.envelope.signatures[0]!, sig: `${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}` },
          ],
        },
      }),
    );
    const cli = await tracemark(['evidence', 'verify', forged, '--public-key', keysFile]);
    expect(cli.code).toBe(1);
    expect(cli.stdout).toMatch(/FAILED — signature of the report: TM_ERR_BAD_SIGNATURE/);

    // The text: bytes spread over all of it.
    for (let i = 0; i < textBytes.length; i += 7) {
      const changed = textBytes.slice();
      changed[i]! ^= 1;
      expect(check(original, changed), `text byte ${i}`).toMatch(/^text matches the report: /);
    }

    // A proof or a checkpoint changed and the report signed again with the service's own key (what a
    // dishonest or broken service could do): the proof and checkpoint checks catch it on their own.
    const signer = parseSignerKey(readFileSync(join(dataDir, 'log-signing-key'), 'utf8').trim());
    const statement = statementOf(report.envelope);
    const resigned = (issuance: object) =>
      JSON.stringify({
        ...report,
        envelope: signEnvelope({ ...statement, predicate: { ...statement.predicate, issuance } }, signer),
      });
    const match = statement.predicate.issuance!;
    expect(check(resigned(match))).toBeNull();
    for (const [e, element] of match.inclusionProof.entries()) {
      for (let d = 0; d < element.length; d++) {
        const digit = element[d] === '0' ? '1' : '0';
        const proof = match.inclusionProof.map((h, j) =>
          j === e ? h.slice(0, d) + digit + h.slice(d + 1) : h,
        );
        expect(check(resigned({ ...match, inclusionProof: proof })), `proof ${e}:${d}`).toMatch(
          /^inclusion proof leads to the checkpoint: the inclusion proof for leaf \d+ does not lead to the checkpoint root/,
        );
      }
    }
    for (let i = 0; i < match.checkpoint.length; i++) {
      const checkpoint =
        match.checkpoint.slice(0, i) +
        String.fromCharCode(match.checkpoint.charCodeAt(i) ^ 1) +
        match.checkpoint.slice(i + 1);
      expect(check(resigned({ ...match, checkpoint })), `checkpoint char ${i}`).toMatch(
        /^(issuance log checkpoint signature|numbers consistent|report format|inclusion proof leads to the checkpoint): /,
      );
    }
    expect(canonicalJsonBytes(statement).length).toBeGreaterThan(0);
  });

  it('an output edited by 20% random token substitutions is still linked and detected; render writes a self-contained page', async () => {
    const edited = editTokens(text, 0.2, 5);
    const editedFile = join(dir, 'edited.txt');
    writeFileSync(editedFile, edited);
    const editedReport = join(dir, 'edited-report.json');
    const verified = await tracemark(['verify', editedFile, '--server', served.url, '--out', editedReport]);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(
      /watermark DETECTED; ISSUED by this service, then edited \(near-duplicate of record iss_/,
    );
    const predicate = statementOf(
      (JSON.parse(readFileSync(editedReport, 'utf8')) as ReportFile).envelope,
    ).predicate;
    expect(predicate.issuance).toMatchObject({ match: 'near-duplicate' });
    expect(predicate.issuance!.similarity).toBeGreaterThanOrEqual(0.2);
    const checked = await tracemark([
      'evidence',
      'verify',
      editedReport,
      '--text',
      editedFile,
      '--public-key',
      keysFile,
    ]);
    expect(checked.code, checked.stdout).toBe(0);

    const page = join(dir, 'report.html');
    const rendered = await tracemark([
      'evidence',
      'render',
      editedReport,
      '--html',
      page,
      '--public-key',
      keysFile,
    ]);
    expect(rendered.code, rendered.stderr).toBe(0);
    const html = readFileSync(page, 'utf8');
    expect(html).toMatch(/An edited copy of an issued output, and watermarked/);
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/<script|<link|<img|@import|url\(|src=/i);
    expect(html.match(/https?:\/\/[^\s"<]+/g) ?? []).toEqual(['http://www.w3.org/2000/svg']);
    expect(html.match(/<span class="g" title=/g)).toHaveLength(predicate.detection.numGreen);
    expect(html.match(/<span class="r" title=/g)).toHaveLength(
      predicate.detection.numScored - predicate.detection.numGreen,
    );
    for (const limitation of predicate.limitations.slice(0, 3))
      expect(html).toContain(limitation.replace(/'/g, '&#39;'));
  });

  it('verify refuses clearly without an API key or a server', async () => {
    const saved = process.env.TRACEMARK_API_KEY;
    delete process.env.TRACEMARK_API_KEY;
    try {
      const noKey = await tracemark(['verify', textFile, '--server', served.url]);
      expect(noKey.code).toBe(2);
      expect(noKey.stderr).toMatch(/set TRACEMARK_API_KEY/);
    } finally {
      process.env.TRACEMARK_API_KEY = saved;
    }
    process.env.TRACEMARK_API_KEY = 'tm_live_0000000000000000_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx';
    try {
      const refused = await tracemark(['verify', textFile, '--server', served.url]);
      expect(refused.code).toBe(3);
      expect(refused.stderr).toMatch(/the gateway refused \(401 TM_ERR_INVALID_API_KEY\)/);
    } finally {
      process.env.TRACEMARK_API_KEY = saved;
    }
    const noServer = await tracemark(['verify', textFile, '--server', 'http://127.0.0.1:9']);
    expect(noServer.code).toBe(3);
    expect(noServer.stderr).toMatch(/cannot reach http:\/\/127\.0\.0\.1:9/);
  });
});
