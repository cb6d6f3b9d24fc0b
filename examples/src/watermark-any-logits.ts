/**
 * Watermark any model's logits: sample each token with the watermark from the logits a model gives,
 * then detect the output with the same key; a control run samples the same model without the mark.
 * Run: pnpm --filter @tracemark/examples run watermark-any-logits
 */
import {
  createRandom,
  createWatermarker,
  createWatermarkKey,
  detect,
  type LogitsSource,
  sampleToken,
  type Watermarker,
} from '@tracemark/core';

// A stand-in for any model: a hashed bigram table over a 50,257-token vocabulary whose last id is an
// end-of-text token. A real pipeline returns its model's logits here (a Float32Array over the whole
// vocabulary, or sparse { ids, logits } candidates).
const VOCAB_SIZE = 50_257;
const END_OF_TEXT = 50_256;
const model: LogitsSource = {
  nextLogits(context) {
    const previous = context[context.length - 1] ?? 0;
    const logits = new Float32Array(VOCAB_SIZE);
    for (let token = 0; token < VOCAB_SIZE; token++) {
      const h = Math.imul(Math.imul(previous + 1, 0x9e3779b1) ^ Math.imul(token, 0x85ebca6b), 0xc2b2ae35);
      logits[token] = 8 * (((h ^ (h >>> 15)) >>> 0) / 2 ** 32); // a logit in [0, 8)
    }
    logits[END_OF_TEXT] = Number.NEGATIVE_INFINITY;
    return logits;
  },
};

// A fresh 256-bit secret with the default scheme (LeftHash h = 1, γ = 0.25, δ = 2). Keep the key:
// detection needs it. The tokenizer is a label that detection checks; name your model's.
const key = createWatermarkKey({ tokenizer: 'gpt2' });
const watermarker = createWatermarker(key, { specialTokenIds: [END_OF_TEXT] });
const prompt = [464, 3139, 373, 257]; // the prompt's token ids

/** The generation loop: logits from the model, one watermarked sampling step, repeat. */
async function generate(marker: Watermarker | null, length: number): Promise<number[]> {
  const random = createRandom(7); // the sampler's seed: reproduces a sample, never the key
  const tokens: number[] = [];
  for (let i = 0; i < length; i++) {
    const context = Uint32Array.from([...prompt, ...tokens]);
    const logits = await model.nextLogits(context);
    const { token } = sampleToken(logits, context, random, { watermarker: marker, temperature: 0.8 });
    tokens.push(token);
  }
  return tokens;
}

const marked = detect(await generate(watermarker, 200), watermarker, { prompt });
const control = detect(await generate(null, 200), watermarker, { prompt }); // same seed, no watermark

console.log(`key ${key.keyId}`);
for (const [label, detection] of [
  ['with watermark', marked],
  ['control (none)', control],
] as const) {
  const { numScored, numTokens, greenFraction, z, log10P } = detection.results[0]!;
  console.log(
    `${label}: ${detection.verdict}, ${numScored} of ${numTokens} tokens scored, green fraction ` +
      `${greenFraction.toFixed(2)}, z = ${z.toFixed(1)}, log10 p = ${log10P.toFixed(1)}`,
  );
}
