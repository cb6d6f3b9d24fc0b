import { join } from 'node:path';
import { createNgramCounts, createRandom, createWatermarker, sampleToken } from '@tracemark/core';
import { readKeyFile } from '@tracemark/detection';
import { loadDefaultModel, loadHumanCorpus } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  removeTemporaryDirectories,
  startTestGateway,
  type TestGateway,
  temporaryDirectory,
  writeFixedKeyFile,
} from './test-support/harness.ts';

let gateway: TestGateway;
let dataDir: string;

beforeAll(async () => {
  dataDir = temporaryDirectory();
  // A fixed key, which the gateway finds in its data directory: with a fresh one each run, both the
  // genuine text's test (α = 0.01) and the forgery's flag rested on the key's draw.
  writeFixedKeyFile(join(dataDir, 'watermark-key.json'), 37);
  gateway = await startTestGateway({ config: { dataDir } });
});
afterAll(async () => {
  await gateway?.close();
  removeTemporaryDirectories();
});

const verify = async (text: string) => (await gateway.call('POST', '/v1/verify', { text })).json;

describe('the spoofing-artefact test in POST /v1/verify', () => {
  it('an exact issued output needs no test; a genuine edited copy is tested and passes', async () => {
    const completion = await gateway.call('POST', '/v1/completions', {
      model: 'tracemark-ngram',
      prompt: 'The committee said on Tuesday that',
      max_tokens: 300,
      seed: 21,
    });
    const text: string = completion.json.choices[0].text;
    const exact = await verify(text);
    expect(exact.verdict).toBe('watermarked');
    expect(exact.issuance.match).toBe('exact');
    expect(exact.spoofing).toBeNull();
    // One sentence added at the start: a near-duplicate (or no match), still watermarked.
    const edited = await verify(`In short, here is what happened. ${text}`);
    expect(edited.verdict).toBe('watermarked');
    expect(edited.issuance?.match ?? null).not.toBe('exact');
    expect(edited.spoofing).toMatchObject({ test: 'tracemark-spoof-fisher-v1', flagged: false, alpha: 0.01 });
    expect(edited.spoofing.numScored).toBeGreaterThan(100);
  }, 120_000);

  it('text whose green tokens sit on common word pairs (a spoofer who learned those) is flagged, the verdict kept', async () => {
    const key = await readKeyFile(join(dataDir, 'watermark-key.json'));
    const watermarker = createWatermarker(key);
    const tokenizer = getTokenizer('cl100k_base');
    const model = await loadDefaultModel({ tokenizerId: 'cl100k_base' });
    const bigrams = createNgramCounts(
      (await loadHumanCorpus({ split: 'train', source: 'brown' })).map((d) => tokenizer.encodeFast(d.text)),
      2,
    );
    // The spoofer pushes green tokens only where the pair with the previous token is common (seen ≥ 20
    // times in Brown), and samples the model as it is elsewhere.
    const random = createRandom(8);
    const tokens: number[] = Array.from(tokenizer.encodeFast('The report said that the'));
    const start = tokens.length;
    while (tokens.length < start + 400) {
      const candidates = model.candidates(tokens, 64);
      const green = watermarker.candidateTester(tokens);
      const logits = Float32Array.from(candidates.logits);
      const context = Uint32Array.from(tokens);
      for (let i = 0; i < logits.length; i++) {
        const pair = Uint32Array.of(context[context.length - 1]!, candidates.ids[i]!);
        if (bigrams.count(pair, 1) >= 20 && green(candidates.ids[i]!) === 1) logits[i]! += 6;
      }
      tokens.push(sampleToken({ ids: candidates.ids, logits }, tokens, random, { temperature: 0.8 }).token);
    }
    const result = await verify(tokenizer.decode(tokens.slice(start)));
    expect(result.verdict).toBe('watermarked');
    expect(result.issuance).toBeNull();
    expect(result.spoofing.flagged).toBe(true);
    expect(result.spoofing.commonMarkedShare).toBeGreaterThan(result.spoofing.rareMarkedShare);
    const limitations = JSON.parse(Buffer.from(result.report.payload, 'base64').toString('utf8')).predicate
      .limitations as string[];
    expect(limitations.join(' ')).toContain('the mark may have been forged');
  }, 120_000);
});
