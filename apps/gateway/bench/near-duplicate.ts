/**
 * Near-duplicate linking, measured: `pnpm --filter @tracemark/gateway near-duplicate`.
 *
 * Generates watermarked completions with the embedded model (as the gateway does), edits each by
 * substituting a fraction of its tokens with uniformly random ordinary tokens, re-tokenizes the edited
 * text (what POST /v1/verify sees), and reports the Jaccard similarity of 3-token shingles (exact and
 * MinHash-estimated) between each completion and its edit, and between unrelated completions, plus
 * whether the edit is still detected. Settings: ND_TEXTS (40), ND_TOKENS (200), ND_EDIT (0.2).
 */
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandom, createWatermarker, createWatermarkKey, generateTokens } from '@tracemark/core';
import { createTextDetector } from '@tracemark/detection';
import { loadDefaultModel, logitsSource } from '@tracemark/lm';
import {
  estimateJaccard,
  lshBuckets,
  minhashSignature,
  NEAR_DUPLICATE_THRESHOLD,
  shingleJaccard,
} from '@tracemark/provenance';
import { getTokenizer } from '@tracemark/tokenizers';

process.env.TRACEMARK_CACHE_DIR ||= join(tmpdir(), 'tracemark-test-cache');
const texts = Number(process.env.ND_TEXTS ?? 40);
const length = Number(process.env.ND_TOKENS ?? 200);
const editRate = Number(process.env.ND_EDIT ?? 0.2);

const tokenizer = getTokenizer('cl100k_base');
const model = await loadDefaultModel({ tokenizerId: 'cl100k_base' });
const key = createWatermarkKey({ secret: new Uint8Array(32).fill(7) });
const watermarker = createWatermarker(key, { specialTokenIds: tokenizer.specialTokenIds });
const detector = createTextDetector({ keys: [key] });
const random = createRandom(11);
const prompts = ['The committee said', 'In the morning', 'She wrote that', 'The market', 'He told the court'];

const originals: Uint32Array[] = [];
const edited: Uint32Array[] = [];
let detectedOriginal = 0;
let detectedEdited = 0;
const editedLog10P: number[] = [];
for (let i = 0; i < texts; i++) {
  const generated: number[] = [];
  for await (const { token } of generateTokens({
    source: logitsSource(model),
    prompt: tokenizer.encode(prompts[i % prompts.length]!),
    maxTokens: length,
    watermarker,
    temperature: 0.8,
    topP: 0.95,
    seed: 1000 + i,
  })) {
    generated.push(token);
  }
  const text = tokenizer.decode(generated);
  const ids = tokenizer.encodeFast(text);
  const changed = Array.from(ids, (token) =>
    random.nextFloat() < editRate ? Math.floor(random.nextFloat() * tokenizer.ordinaryTokenCount) : token,
  );
  const editedText = tokenizer.decode(changed);
  const editedIds = tokenizer.encodeFast(editedText);
  originals.push(ids);
  edited.push(editedIds);
  if (detector.detectText(text).verdict === 'watermarked') detectedOriginal++;
  const result = detector.detectText(editedText);
  editedLog10P.push(result.log10PAdjusted);
  if (result.verdict === 'watermarked') detectedEdited++;
}

const quantiles = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { min: sorted[0]!, p05: at(0.05), median: at(0.5), p95: at(0.95), max: sorted[sorted.length - 1]! };
};
const format = (q: ReturnType<typeof quantiles>) =>
  `min ${q.min.toFixed(3)}, p05 ${q.p05.toFixed(3)}, median ${q.median.toFixed(3)}, p95 ${q.p95.toFixed(3)}, max ${q.max.toFixed(3)}`;

const signatures = originals.map((ids) => minhashSignature(ids));
const editedSignatures = edited.map((ids) => minhashSignature(ids));
const pairExact: number[] = [];
const pairEstimate: number[] = [];
let linked = 0;
let candidates = 0;
for (let i = 0; i < texts; i++) {
  pairExact.push(shingleJaccard(originals[i]!, edited[i]!));
  const estimate = estimateJaccard(signatures[i]!, editedSignatures[i]!);
  pairEstimate.push(estimate);
  const a = lshBuckets(signatures[i]!);
  const b = lshBuckets(editedSignatures[i]!);
  const candidate = a.some((bucket, band) => b[band] === bucket);
  if (candidate) candidates++;
  if (candidate && estimate >= NEAR_DUPLICATE_THRESHOLD) linked++;
}
const unrelatedExact: number[] = [];
const unrelatedEstimate: number[] = [];
let unrelatedCandidates = 0;
let falseLinks = 0;
for (let i = 0; i < texts; i++) {
  for (let j = 0; j < texts; j++) {
    if (i === j) continue;
    unrelatedExact.push(shingleJaccard(originals[i]!, edited[j]!));
    const estimate = estimateJaccard(signatures[i]!, editedSignatures[j]!);
    unrelatedEstimate.push(estimate);
    const a = lshBuckets(signatures[i]!);
    const b = lshBuckets(editedSignatures[j]!);
    const candidate = a.some((bucket, band) => b[band] === bucket);
    if (candidate) unrelatedCandidates++;
    if (candidate && estimate >= NEAR_DUPLICATE_THRESHOLD) falseLinks++;
  }
}
const pairs = texts * (texts - 1);
console.log(`machine: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores; Node ${process.version}`);
console.log(
  `${texts} completions of ${length} tokens, ${Math.round(editRate * 100)}% random token substitutions`,
);
console.log(`edited vs its original, exact Jaccard:     ${format(quantiles(pairExact))}`);
console.log(`edited vs its original, MinHash estimate:  ${format(quantiles(pairEstimate))}`);
console.log(`edited vs unrelated, exact Jaccard:        ${format(quantiles(unrelatedExact))}`);
console.log(`edited vs unrelated, MinHash estimate:     ${format(quantiles(unrelatedEstimate))}`);
console.log(
  `LSH candidates: ${candidates}/${texts} edited pairs, ${unrelatedCandidates}/${pairs} unrelated pairs`,
);
console.log(
  `linked at threshold ${NEAR_DUPLICATE_THRESHOLD}: ${linked}/${texts} edited, ${falseLinks}/${pairs} unrelated`,
);
console.log(
  `watermark detected: ${detectedOriginal}/${texts} originals, ${detectedEdited}/${texts} edited (edited log10 p: ${format(quantiles(editedLog10P))})`,
);
