import { getTokenizer } from '@tracemark/tokenizers';
import { describe, expect, it } from 'vitest';
import type { GeneratedStep } from '../backends/types.ts';
import { createShaper } from './shaping.ts';

const tokenizer = getTokenizer('cl100k_base');
const shaper = createShaper({
  tokenizer,
  watermarkKeyId: 'tmk1_000000000000000000000000',
  keyEpoch: null,
  watermarker: null,
});
const TEXT = 'DNA \u{1f9ec} and caf\u00e9 \u4e2d\u6587';
const ids = Array.from(tokenizer.encode(TEXT));
const steps: GeneratedStep[] = ids.map((token, i) => ({
  token,
  strength: { expectedGreen: 0, spikeEntropySum: 0 },
  logprob: -i / 10,
  top: [
    { token, logprob: -i / 10 },
    { token: ids[(i + 1) % ids.length]!, logprob: -5 },
  ],
}));

describe('logprobs', () => {
  it("give each token's own bytes, which join back into split characters (chat)", () => {
    const { content } = shaper.chatLogprobs(steps) as {
      content: { token: string; bytes: number[]; top_logprobs: { token: string; bytes: number[] }[] }[];
    };
    expect(ids.length).toBeGreaterThan(TEXT.length / 3);
    // the emoji is split over tokens: their texts show U+FFFD, their bytes are the character's
    expect(content.some((entry) => entry.token.includes('\ufffd'))).toBe(true);
    expect(Buffer.from(content.flatMap((entry) => entry.bytes)).toString('utf8')).toBe(TEXT);
    expect(Buffer.from(content.flatMap((entry) => entry.top_logprobs[0]!.bytes)).toString('utf8')).toBe(TEXT);
    expect(content[1]!.top_logprobs[1]!.token).toBe(content[2]!.token);
  });

  it('give the texts and offsets of the legacy shape', () => {
    const legacy = shaper.legacyLogprobs(steps, 3) as { tokens: string[]; text_offset: number[] };
    expect(legacy.tokens).toEqual(tokenizer.decodeTokens(ids));
    expect(legacy.text_offset[0]).toBe(3);
    expect(legacy.text_offset[1]).toBe(3 + legacy.tokens[0]!.length);
  });
});
