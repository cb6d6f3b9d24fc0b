/**
 * Watermark a whole generation loop: the embedded n-gram model as the logits source, `generateTokens`
 * with a fresh key, the tokens decoded to text, then the text detected as a verifier would see it.
 * Run: pnpm --filter @tracemark/examples run generation-loop
 */
import { createWatermarker, createWatermarkKey, generateTokens, type Watermarker } from '@tracemark/core';
import { createTextDetector } from '@tracemark/detection';
import { loadDefaultModel, logitsSource } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';

const tokenizer = getTokenizer('cl100k_base');
// Trained on first use (about 5 s), then loaded from $TRACEMARK_CACHE_DIR or ~/.cache/tracemark.
const model = await loadDefaultModel({ tokenizerId: tokenizer.id });
const key = createWatermarkKey({ tokenizer: tokenizer.id });
const watermarker = createWatermarker(key, { specialTokenIds: tokenizer.specialTokenIds });
const promptText = 'The committee said on Tuesday that';

async function complete(marker: Watermarker | null): Promise<string> {
  const ids: number[] = [];
  for await (const { token } of generateTokens({
    source: logitsSource(model), // any { nextLogits(context) } works: a remote model, a stub
    prompt: tokenizer.encode(promptText),
    maxTokens: 200,
    watermarker: marker, // null: the same sampler without the watermark
    temperature: 0.8,
    topP: 0.95,
    seed: 1, // the sampler's seed, not the watermark's
    stopTokens: tokenizer.specialTokenIds,
  })) {
    ids.push(token); // a server would stream each token here
  }
  return tokenizer.decode(ids);
}

// The verifier's side: text in, verdict out (the text is re-tokenized, as it would be in the wild).
const detector = createTextDetector({ keys: [key] });
function report(label: string, text: string): void {
  const result = detector.detectText(text, { prompt: promptText, source: label });
  console.log(
    `${label}: ${result.verdict}, ${result.numScored} of ${result.numTokens} tokens scored, ` +
      `z = ${result.z.toFixed(1)}, log10 p = ${result.log10P.toFixed(1)}`,
  );
  console.log(`  ${JSON.stringify(`${text.slice(0, 100)}…`)}`);
}

report('with watermark', await complete(watermarker));
report('control (none)', await complete(null)); // same model and seed, no watermark
