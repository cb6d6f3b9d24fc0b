/**
 * POST /v1/verify latency, measured: `pnpm --filter @tracemark/gateway verify-bench`.
 *
 * A gateway (embedded backend; SQLite, or PostgreSQL when DATABASE_URL is set) whose issuance log holds
 * VERIFY_RECORDS synthetic records, indexed like issued outputs from 120-token passages of human text
 * (Brown corpus and nlp-corpus, so they share common phrases as real outputs do), plus a real completion;
 * then sequential verifications over HTTP on 127.0.0.1 of an issued 200-token completion
 * (exact match), of the same edited by 20% random token substitutions (near-duplicate), and of human text
 * (no match), after 3 warm-up calls each. Settings: VERIFY_RECORDS (10000), VERIFY_ROUNDS (40).
 */
import { createHash } from 'node:crypto';
import { cpus } from 'node:os';
import { createRandom } from '@tracemark/core';
import { loadHumanCorpus } from '@tracemark/lm';
import { minhashSignature } from '@tracemark/provenance';
import { getTokenizer } from '@tracemark/tokenizers';
import { startTestGateway } from '../src/test-support/harness.ts';
import { syntheticIssuance } from '../src/test-support/synthetic-issuance.ts';

const records = Number(process.env.VERIFY_RECORDS ?? 10_000);
const rounds = Number(process.env.VERIFY_ROUNDS ?? 40);
const databaseUrl = process.env.DATABASE_URL ?? null;

const gateway = await startTestGateway({
  config: { ...(databaseUrl === null ? {} : { databaseUrl }), rateLimitPerMinute: 1_000_000 },
  logLevel: 'warn',
});
const tokenizer = getTokenizer('cl100k_base');
const random = createRandom(1);
const _hex = (text: string) => createHash('sha256').update(text).digest('hex');
const passages: Uint32Array[] = [];
for (const document of await loadHumanCorpus()) {
  const ids = tokenizer.encodeFast(document.text);
  for (let start = 0; start + 120 <= ids.length && passages.length < records; start += 120) {
    passages.push(ids.slice(start, start + 120));
  }
  if (passages.length >= records) break;
}
const started = performance.now();
for (let done = 0; done < records; done += 100) {
  await gateway.services.storage.appendIssuance(
    Array.from({ length: Math.min(100, records - done) }, (_, i) => {
      const tokens = passages[(done + i) % passages.length]!;
      return syntheticIssuance(done + i, gateway.services.watermarkKey.keyId, {
        numTokens: tokens.length,
        outputTokens: null,
        minhash: minhashSignature(tokens),
      });
    }),
  );
}
const fillSeconds = (performance.now() - started) / 1000;
const completion = await gateway.call('POST', '/v1/completions', {
  model: 'tracemark-ngram',
  prompt: 'The harbour authority said on Monday that',
  max_tokens: 200,
  seed: 3,
});
const text: string = completion.json.choices[0].text;
const edited = tokenizer.decode(
  Array.from(tokenizer.encodeFast(text), (token) =>
    random.nextFloat() < 0.2 ? Math.floor(random.nextFloat() * tokenizer.ordinaryTokenCount) : token,
  ),
);
const human =
  'The committee met on a grey Tuesday morning to review the harbour budget. Members disagreed about the cost of dredging, and the chair asked for a second estimate before any vote. Several residents spoke about noise from the night shift at the container terminal, and one fisherman described how the new breakwater had changed the currents near the old pier, where the boats used to tie up before the storm of the previous winter damaged the wall.';

const measure = async (label: string, body: string) => {
  const times: number[] = [];
  let match = '';
  for (let i = 0; i < 3; i++) await gateway.call('POST', '/v1/verify', { text: body }); // warm-up
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    const response = await gateway.call('POST', '/v1/verify', { text: body });
    times.push(performance.now() - t);
    if (response.status !== 200) throw new Error(`verify: ${response.status} ${response.text}`);
    match = response.json.issuance?.match ?? 'none';
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  console.log(
    `${label.padEnd(34)} match ${match.padEnd(14)} median ${at(0.5).toFixed(1)} ms, p95 ${at(0.95).toFixed(1)} ms`,
  );
};

console.log(`machine: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores; Node ${process.version}`);
console.log(
  `storage ${gateway.services.storage.kind}; ${records} synthetic records appended in ${fillSeconds.toFixed(1)} s (${Math.round(records / fillSeconds)}/s, in batches of 100); log size ${await gateway.services.storage.logSize()}`,
);
await measure('issued 200-token completion', text);
await measure('the same, 20% of tokens replaced', edited);
await measure('human text, 85 tokens', human);
await gateway.close();
