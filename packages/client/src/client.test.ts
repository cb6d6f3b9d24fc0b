/**
 * The client against a real gateway on 127.0.0.1 (embedded model, temporary data directory) over real HTTP,
 * and against small real HTTP servers on loopback for what a healthy gateway never does (hang, answer HTML,
 * echo the key back).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromHex, verifyConsistency, verifyInclusion } from '@tracemark/provenance';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// Started the way the gateway's own tests start it (test/ does the same).
import {
  removeTemporaryDirectories,
  startTestGateway,
  type TestGateway,
  temporaryDirectory,
  writeFixedKeyFile,
} from '../../../apps/gateway/src/test-support/harness.ts';
import {
  evidenceReportFile,
  parseEvidenceReport,
  renderEvidenceHtml,
  serializeEvidenceReport,
  trustedKeysOf,
  verifyEvidenceReport,
} from './evidence.ts';
import { createClient, isEngineKeyScan, TracemarkApiError, type TracemarkClient } from './index.ts';

let gateway: TestGateway;
let client: TracemarkClient;
let markedText: string;
let issuanceId: string;

beforeAll(async () => {
  // A fixed key: with a fresh one each run, the human text below was called watermarked at fpr 1e-3 about
  // once in two thousand runs (a key's false positive, not a defect).
  const keyFile = join(temporaryDirectory('tracemark-client-'), 'watermark-key.json');
  writeFixedKeyFile(keyFile, 17);
  gateway = await startTestGateway({ logLevel: 'warn', config: { keyFile } });
  client = createClient({ baseUrl: gateway.url, apiKey: gateway.devKey });
  const completion = await gateway.call('POST', '/v1/chat/completions', {
    model: 'tracemark-ngram',
    messages: [{ role: 'user', content: 'Tell me about the sea.' }],
    max_tokens: 160,
    seed: 3,
  });
  expect(completion.status).toBe(200);
  markedText = completion.json.choices[0].message.content;
  issuanceId = completion.json.tracemark.issuance_ids[0];
});
afterAll(async () => {
  await gateway?.close();
  removeTemporaryDirectories();
});

/** The rejection of `promise`, which must be a TracemarkApiError. */
async function rejection(promise: Promise<unknown>): Promise<TracemarkApiError> {
  const error = await promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(TracemarkApiError);
  return error as TracemarkApiError;
}

/** Every way an error can be printed or logged; none may contain the key. */
function printed(error: TracemarkApiError): string {
  const cause = error.cause instanceof Error ? `${error.cause.message} ${error.cause.stack}` : '';
  return [String(error), error.stack, JSON.stringify(error), JSON.stringify({ ...error }), cause].join('\n');
}

describe('verification against a real gateway', () => {
  it('verifies an issued output: watermarked, exact issuance, a report that checks out pinned and renders', async () => {
    const result = await client.verify(markedText);
    expect(result.object).toBe('tracemark.verification');
    expect(result.verdict).toBe('watermarked');
    expect(result.issuance).toMatchObject({ match: 'exact', recordId: issuanceId, disclosed: true });
    expect(result.detection.keyId).toBe(gateway.services.watermarkKey.keyId);
    expect(result.detection.numGreen).toBeGreaterThan(result.detection.numScored / 2);

    // Saved, read back, and checked against the keys the service publishes.
    const saved = serializeEvidenceReport(evidenceReportFile(result));
    const report = parseEvidenceReport(saved);
    const keys = await client.serviceKeys();
    expect(keys.keys[0]!.verifierKey).toBe(result.verifierKey);
    const pinned = verifyEvidenceReport(report, { text: markedText, trustedKeys: trustedKeysOf(keys) });
    expect(pinned.status, pinned.reason ?? '').toBe('verified');
    expect(pinned.checks.filter((check) => !check.ok)).toEqual([]);
    expect(pinned.predicate?.issuance?.recordId).toBe(issuanceId);
    // Without the published keys the report is intact but its signer is not established.
    expect(verifyEvidenceReport(report).status).toBe('not-pinned');
    // The text changed by one character no longer matches.
    const other = verifyEvidenceReport(report, { text: `${markedText}!`, trustedKeys: trustedKeysOf(keys) });
    expect(other.status).toBe('failed');
    expect(other.reason).toMatch(/^text matches the report: /);

    const html = renderEvidenceHtml(report, pinned);
    expect(html).toContain('Issued by this service, and watermarked');
    expect(html).toContain('Did this service produce this text,');
    expect(html).not.toMatch(/<script|<link|<img|src=|url\(/i);
  });

  it('takes { text }, { tokens } and a prompt; human text is not watermarked', async () => {
    const human =
      'The committee met on Tuesday to discuss the budget for the coming year. After a long debate about the roads, the library and the harbour, the members agreed to postpone the vote until the spring, when the accounts of the previous year would be audited.';
    const answer = await client.verify({ text: human, fpr: 1e-3 });
    expect(answer.verdict).not.toBe('watermarked');
    expect(answer.issuance).toBeNull();
    expect(answer.detection.fpr).toBe(1e-3);
    const tokens = await client.verify({ tokens: [1, 2, 3, 4, 5, 6, 7, 8], prompt: 'Hello' });
    expect(tokens.detection.numTokens).toBe(8);
  });

  it('detect gives the numbers of `tracemark detect --json`, with the windowed search when asked', async () => {
    const detected = await client.detect({ text: markedText, window: true });
    expect(detected.verdict).toBe('watermarked');
    expect(detected.keyId).toBe(gateway.services.watermarkKey.keyId);
    expect(detected.keys.length).toBeGreaterThanOrEqual(1);
    expect(detected.window).not.toBeNull();
    expect(detected.window!.windowsSearched).toBeGreaterThan(0);
    const plain = await client.detect(markedText);
    expect(plain.window).toBeNull();
    expect(plain.log10P).toBe(detected.log10P);
  });

  it('scans a small corpus, with the fake-key calibration', async () => {
    const scan = await client.scan({
      documents: [{ text: markedText, prompt: 'Tell me about the sea.', source: 'sample-1' }],
      fakeKeys: 20,
    });
    expect(scan.object).toBe('tracemark.scan');
    expect(scan.numDocuments).toBe(1);
    const key = scan.keys[0]!;
    expect(isEngineKeyScan(key)).toBe(false);
    if (isEngineKeyScan(key)) return;
    expect(key.calibration.fakeKeys).toBe(20);
    expect(key.fakeKeyRandomizedP).toHaveLength(20);
    expect(key.numGreen).toBeGreaterThan(0);
  });
});

describe('identity, proofs and health', () => {
  it('whoami, the published keys, the checkpoint, and inclusion and consistency proofs that check out', async () => {
    const me = await client.whoami();
    expect(me).toMatchObject({ object: 'tracemark.api_key', watermarkKeyId: expect.any(String) });
    expect(me.scopes).toContain('admin');
    expect(JSON.stringify(me)).not.toContain(gateway.devKey);

    const checkpoint = await createClient({ baseUrl: gateway.url }).checkpoint();
    expect(checkpoint.treeSize).toBeGreaterThanOrEqual(1);
    const byRecord = await client.inclusionProof({ recordId: issuanceId });
    const byLeaf = await client.inclusionProof({ leafIndex: byRecord.leafIndex });
    expect(byLeaf).toEqual(byRecord);
    expect(
      verifyInclusion(
        fromHex(byRecord.leafHash),
        byRecord.leafIndex,
        byRecord.treeSize,
        byRecord.inclusionProof.map((hash) => fromHex(hash)),
        fromHex(byRecord.rootHash),
      ),
    ).toBe(true);
    const consistency = await client.consistencyProof({ from: 1 });
    expect(
      verifyConsistency(
        1,
        consistency.treeSize,
        fromHex(consistency.fromRootHash),
        fromHex(consistency.rootHash),
        consistency.consistencyProof.map((hash) => fromHex(hash)),
      ),
    ).toBe(true);
    expect(await client.health()).toMatchObject({ status: 'ok' });
  });
});

describe('admin', () => {
  it('creates a key (usable at once), lists keys without secrets, revokes it, reads the issuance log', async () => {
    const created = await client.admin.createKey({ scopes: ['verify'], name: 'integrator' });
    expect(created.key).toMatch(/^tm_/);
    const integrator = createClient({ baseUrl: gateway.url, apiKey: created.key });
    expect((await integrator.whoami()).name).toBe('integrator');
    const keys = await client.admin.listKeys();
    expect(keys.find((key) => key.id === created.id)).toMatchObject({ state: 'active', scopes: ['verify'] });
    expect(JSON.stringify(keys)).not.toContain(created.key);

    const revoked = await client.admin.revokeKey(created.id);
    expect(revoked.state).toBe('revoked');
    const refused = await rejection(integrator.verify(markedText));
    expect(refused).toMatchObject({
      status: 401,
      code: 'TM_ERR_API_KEY_REVOKED',
      endpoint: 'POST /v1/verify',
    });
    expect(printed(refused)).not.toContain(created.key);

    const page = await client.admin.listIssuance({ limit: 5 });
    expect(page.object).toBe('list');
    expect(page.data.length).toBeGreaterThanOrEqual(1);
    expect((await client.admin.issuanceRecord(issuanceId)).id).toBe(issuanceId);
  });
});

describe('errors from the gateway', () => {
  it('carry the status, the stable code, the message and the parameter; never the key', async () => {
    const key = 'tm_live_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const invalid = await rejection(createClient({ baseUrl: gateway.url, apiKey: key }).verify('x'));
    expect(invalid).toMatchObject({ status: 401, code: 'TM_ERR_INVALID_API_KEY', unanswered: false });
    expect(invalid.message.length).toBeGreaterThan(0);
    expect(printed(invalid)).not.toContain(key);

    const missing = await rejection(createClient({ baseUrl: gateway.url }).whoami());
    expect(missing).toMatchObject({ status: 401, code: 'TM_ERR_MISSING_API_KEY' });

    const generateOnly = await client.admin.createKey({ scopes: ['generate'] });
    const scope = await rejection(
      createClient({ baseUrl: gateway.url, apiKey: generateOnly.key }).verify('x'),
    );
    expect(scope).toMatchObject({ status: 403, code: 'TM_ERR_SCOPE' });
    expect(printed(scope)).not.toContain(generateOnly.key);

    const notFound = await rejection(client.admin.issuanceRecord('iss_nope'));
    expect(notFound).toMatchObject({ status: 404, code: 'TM_ERR_NOT_FOUND', param: 'id' });

    const both = await rejection(client.verify({ text: 'a', tokens: [1] } as never));
    expect(both).toMatchObject({ status: 400, code: 'TM_ERR_INVALID_REQUEST' });

    const tooLarge = await rejection(client.verify('a'.repeat(1024 * 1024 + 10)));
    expect(tooLarge).toMatchObject({ status: 413, code: 'TM_ERR_BODY_TOO_LARGE' });
  });

  it('a rate-limited key gets 429 with the seconds to wait', async () => {
    const limited = await client.admin.createKey({ scopes: ['verify'], rateLimitPerMinute: 1 });
    const limitedClient = createClient({ baseUrl: gateway.url, apiKey: limited.key });
    await limitedClient.whoami();
    const error = await rejection(limitedClient.whoami());
    expect(error).toMatchObject({ status: 429, code: 'TM_ERR_RATE_LIMITED' });
    expect(error.retryAfterSeconds).toBeGreaterThan(0);
    expect(printed(error)).not.toContain(limited.key);
  });
});

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

/** A loopback HTTP server that answers as `handler` says (or never, when it returns null). */
async function loopback(
  handler: (seen: Seen) => { status: number; headers?: Record<string, string>; body: string } | null,
): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server: Server = createServer((request, response) => {
    const entry = { method: request.method!, url: request.url!, headers: request.headers };
    seen.push(entry);
    request.resume();
    const answer = handler(entry);
    if (answer === null) return;
    response.writeHead(answer.status, answer.headers ?? {});
    response.end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/base`;
  return {
    url,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('the request and failures before an answer', () => {
  const key = 'tm_live_fedcba9876543210_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';

  it('sends the key in the Authorization header only, under the base path; removes it from echoed messages', async () => {
    const server = await loopback(() => ({
      status: 400,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ error: { message: `bad key ${key} given`, code: 'TM_ERR_X', param: 'text' } }),
    }));
    try {
      const error = await rejection(createClient({ baseUrl: server.url, apiKey: ` ${key}\n` }).verify('hi'));
      expect(error).toMatchObject({ status: 400, code: 'TM_ERR_X', param: 'text' });
      expect(error.message).toBe('bad key [API key] given');
      expect(printed(error)).not.toContain(key);
      const [request] = server.seen;
      expect(request).toMatchObject({ method: 'POST', url: '/base/v1/verify' });
      expect(request!.headers.authorization).toBe(`Bearer ${key}`);
      expect(request!.headers['content-type']).toBe('application/json');
      expect(request!.headers.cookie).toBeUndefined();
      expect(
        Object.entries(request!.headers).filter(
          ([name, value]) => name !== 'authorization' && String(value).includes(key),
        ),
      ).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('times out, aborts, and refuses what is not the API’s JSON', async () => {
    const server = await loopback((seen) =>
      seen.url.endsWith('/hang') || seen.url.endsWith('/v1/whoami')
        ? null
        : seen.url.endsWith('/healthz')
          ? { status: 502, headers: { 'content-type': 'text/html' }, body: '<h1>Bad gateway</h1>' }
          : { status: 200, headers: { 'content-type': 'text/html' }, body: '<html>portal</html>' },
    );
    try {
      const hanging = createClient({ baseUrl: server.url, apiKey: key, timeoutMs: 60_000 });
      const started = Date.now();
      const timedOut = await rejection(hanging.whoami({ timeoutMs: 200 }));
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(timedOut).toMatchObject({ status: 0, code: 'TM_ERR_CLIENT_TIMEOUT', unanswered: true });
      expect(timedOut.message).toMatch(/no complete answer .* within 0.2 s/);

      const controller = new AbortController();
      const pending = hanging.whoami({ signal: controller.signal });
      setTimeout(() => controller.abort(), 50);
      expect(await rejection(pending)).toMatchObject({ status: 0, code: 'TM_ERR_ABORTED' });
      expect(await rejection(hanging.whoami({ signal: AbortSignal.abort() }))).toMatchObject({
        code: 'TM_ERR_ABORTED',
      });

      const html = await rejection(hanging.verify('x'));
      expect(html).toMatchObject({ status: 200, code: 'TM_ERR_BAD_RESPONSE' });
      const badGateway = await rejection(hanging.health());
      expect(badGateway).toMatchObject({ status: 502, code: 'TM_ERR_HTTP' });
      expect(badGateway.message).toMatch(/answered 502/);
    } finally {
      await server.close();
    }
  });

  it('says when the gateway cannot be reached', async () => {
    const server = await loopback(() => null);
    const url = server.url;
    await server.close();
    const error = await rejection(createClient({ baseUrl: url, apiKey: key }).verify('x'));
    expect(error).toMatchObject({ status: 0, code: 'TM_ERR_NETWORK' });
    expect(error.message).toMatch(/^cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)$/);
  });

  it('refuses a bad base URL, a malformed key (without echoing it) and an Authorization header', () => {
    expect(() => createClient({ baseUrl: 'not a url' })).toThrow(TypeError);
    expect(() => createClient({ baseUrl: 'ftp://example.com' })).toThrow(/http: or https:/);
    expect(() => createClient({ baseUrl: 'http://user:pw@example.com' })).toThrow(/credentials/);
    expect(() => createClient({ baseUrl: 'http://example.com', apiKey: 'tm_live secret' })).toThrow(
      /^apiKey: expected a non-empty key without spaces/,
    );
    try {
      createClient({ baseUrl: 'http://example.com', apiKey: 'tm_live secret' });
    } catch (error) {
      expect(String(error)).not.toContain('secret');
    }
    expect(() =>
      createClient({ baseUrl: 'http://example.com', headers: { Authorization: 'Bearer x' } }),
    ).toThrow(/apiKey/);
    expect(() => createClient({ baseUrl: 'http://example.com', timeoutMs: 0 })).toThrow(RangeError);
    expect(createClient({ baseUrl: 'http://example.com/tracemark?x=1#y' }).baseUrl).toBe(
      'http://example.com/tracemark/',
    );
  });
});

describe('browser safety', () => {
  it('the package sources import no Node module and use no Node global', () => {
    const directory = new URL('.', import.meta.url).pathname;
    const sources = readdirSync(directory).filter(
      (name) => name.endsWith('.ts') && !name.endsWith('.test.ts'),
    );
    expect(sources.length).toBeGreaterThanOrEqual(8);
    for (const name of sources) {
      const text = readFileSync(join(directory, name), 'utf8');
      const imports = [...text.matchAll(/^(?:import|export)[^;]*?from '([^']+)'/gms)].map(
        (match) => match[1],
      );
      for (const specifier of imports) {
        expect(specifier, `${name} imports ${specifier}`).toMatch(
          /^(\.\/[a-z-]+\.ts|@tracemark\/core|@tracemark\/provenance|@tracemark\/tokenizers\/normalize)$/,
        );
      }
      const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
      expect(code, name).not.toMatch(/\b(Buffer|process|require)\s*[.(]/);
    }
  });

  it('of the tokenizers package it reaches only the normalization, which imports nothing', () => {
    // the package's root would bundle the vocabularies; its ./normalize subpath is one plain module
    const normalize = fileURLToPath(import.meta.resolve('@tracemark/tokenizers/normalize'));
    expect(normalize).toMatch(/tokenizers[/\\](src[/\\]normalize\.ts|dist[/\\]normalize\.js)$/);
    expect(readFileSync(normalize, 'utf8')).not.toMatch(/^\s*(import|export)\b[^;]*\bfrom\b/m);
  });
});
