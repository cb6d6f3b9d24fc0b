/**
 * Detect the watermark in text files with key files, as `tracemark detect` does.
 * Run: pnpm --filter @tracemark/examples run detect-text [--key KEY.json [--key …] FILE …]
 * Without arguments it first writes a demo key file, a watermarked text, a human text and a broken key
 * file to a temporary directory, and detects those.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createWatermarker, createWatermarkKey, generateAll } from '@tracemark/core';
import { createTextDetector, InputError, readKeyFile, writeKeyFile } from '@tracemark/detection';
import { loadDefaultModel, loadHumanCorpus, logitsSource } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';

/** Detects each file under every key (Holm-corrected across keys); false when an input was bad. */
async function detectFiles(keyPaths: readonly string[], textPaths: readonly string[]): Promise<boolean> {
  try {
    const keys = await Promise.all(keyPaths.map((path) => readKeyFile(path)));
    // window: also search for a watermarked passage inside a longer text (spec §5.3).
    const detector = createTextDetector({ keys, window: true });
    for (const path of textPaths) {
      const result = detector.detectText(await readFile(path, 'utf8'), { source: path });
      const { verdict, numScored, greenFraction, score, log10PAdjusted, keyId } = result;
      // A Gumbel key has no green tokens (greenFraction null): its evidence is the score.
      const evidence =
        greenFraction === null ? `score ${score?.toFixed(1)}` : `green ${greenFraction.toFixed(2)}`;
      console.log(
        `${result.source}: ${verdict} (${numScored} scored, ${evidence}, ` +
          `log10 p = ${log10PAdjusted.toFixed(1)}, key ${keyId})`,
      );
    }
    return true;
  } catch (error) {
    // Bad key files, unreadable paths and mismatched tokenizers are InputErrors with a stable code.
    if (!(error instanceof InputError)) throw error;
    console.log(`error ${error.code}: ${error.message}`);
    return false;
  }
}

/** Demo inputs: a fresh key file, a watermarked completion, human text and a corrupt key file. */
async function writeDemoInputs(directory: string): Promise<void> {
  const tokenizer = getTokenizer('cl100k_base');
  const key = createWatermarkKey({ tokenizer: tokenizer.id });
  await writeKeyFile(join(directory, 'key.json'), key); // mode 0600; never overwrites an existing file
  const marked = await generateAll({
    source: logitsSource(await loadDefaultModel({ tokenizerId: tokenizer.id })),
    prompt: tokenizer.encode('The committee said on Tuesday that'),
    maxTokens: 200,
    watermarker: createWatermarker(key, { specialTokenIds: tokenizer.specialTokenIds }),
    temperature: 0.8,
  });
  await writeFile(join(directory, 'watermarked.txt'), tokenizer.decode(marked));
  const [human] = await loadHumanCorpus({ split: 'test', source: 'brown' });
  await writeFile(join(directory, 'human.txt'), human!.text.slice(0, 2000));
  await writeFile(join(directory, 'broken-key.json'), '{"format":"tracemark-key","version":1}');
}

const { values, positionals } = parseArgs({
  options: { key: { type: 'string', multiple: true } },
  allowPositionals: true,
});
if (values.key !== undefined) {
  if (!(await detectFiles(values.key, positionals))) process.exitCode = 3;
} else {
  const directory = await mkdtemp(join(tmpdir(), 'tracemark-example-'));
  try {
    await writeDemoInputs(directory);
    const texts = [join(directory, 'watermarked.txt'), join(directory, 'human.txt')];
    await detectFiles([join(directory, 'key.json')], texts);
    await detectFiles([join(directory, 'broken-key.json')], texts);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}
