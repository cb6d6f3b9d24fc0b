/**
 * A radioactivity scan: was a suspect corpus built from our watermarked outputs? Two small corpora,
 * given as parsed JSONL lines ({ prompt?, text }): one that copied some of our outputs into human
 * text, and one of human text only. Each is scanned under our key and calibrated with 100 fake keys.
 * Run: pnpm --filter @tracemark/examples run radioactivity-scan
 */
import { createWatermarker, createWatermarkKey, generateAll } from '@tracemark/core';
import { measureGreenFraction, type ScanDocument, scanCorpus } from '@tracemark/extraction';
import { loadDefaultModel, loadHumanCorpus, logitsSource } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';

const tokenizer = getTokenizer('cl100k_base');
const key = createWatermarkKey({ tokenizer: tokenizer.id });
const watermarker = createWatermarker(key, { specialTokenIds: tokenizer.specialTokenIds });
const model = await loadDefaultModel({ tokenizerId: tokenizer.id });

// What we issued: 12 watermarked completions of 120 tokens.
const issued: { prompt: string; tokens: Uint32Array }[] = [];
for (let i = 0; i < 12; i++) {
  const prompt = `Question ${i + 1}: what happened at the meeting?`;
  const tokens = await generateAll({
    source: logitsSource(model),
    prompt: tokenizer.encode(prompt),
    maxTokens: 120,
    watermarker,
    temperature: 0.8,
    seed: i,
  });
  issued.push({ prompt, tokens });
}

// The suspect corpora, as parsed JSONL lines.
type Line = { prompt?: string; text: string };
const human: Line[] = (await loadHumanCorpus({ split: 'test', source: 'brown' }))
  .slice(0, 6)
  .map((document) => ({ text: document.text }));
const copied: Line[] = [
  ...issued.map(({ prompt, tokens }) => ({ prompt, text: tokenizer.decode(tokens) })),
  ...human,
];

// Known green fraction of our issued outputs: turns the effect into a dose estimate.
const measured = await measureGreenFraction(
  issued.map((output) => output.tokens),
  key,
  tokenizer.specialTokenIds,
);
const issuedGreenFractions = new Map([[key.keyId, measured.greenFraction]]);

for (const [name, lines] of [
  ['copied', copied],
  ['human', human],
] as const) {
  const documents: ScanDocument[] = lines.map((line, index) => ({
    tokens: tokenizer.encode(line.text),
    prompt: line.prompt === undefined ? undefined : tokenizer.encode(line.prompt), // never scored
    source: `${name}.jsonl:${index + 1}`,
  }));
  const report = await scanCorpus({
    documents,
    keys: [key],
    specialTokenIds: tokenizer.specialTokenIds,
    issuedGreenFractions,
  });
  const scan = report.keys[0]!;
  const dose = scan.dose === null ? 'unknown' : `${(100 * scan.dose.estimate).toFixed(0)}%`;
  console.log(`${name}: ${report.verdict}: ${report.reason}`);
  console.log(
    `  ${scan.numScored} scored, log10 p = ${scan.log10P.toFixed(1)}, fake-key rank ` +
      `${scan.calibration.rank} of ${scan.calibration.fakeKeys + 1}, dose ${dose}, ` +
      `strongest document ${scan.topDocuments[0]?.source ?? 'none'}`,
  );
}
