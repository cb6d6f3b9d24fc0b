import { describe, expect, it } from 'vitest';
import { hashPair, hashString } from './hashing.ts';
import { clientSubnet } from './network.ts';
import {
  cosineSimilarity,
  estimatedJaccard,
  fingerprintPrompt,
  hashedFeatures,
  MAX_FEATURES_PER_PROMPT,
  minHashSignature,
  promptSkeleton,
  wordHashes,
} from './prompt-features.ts';

describe('prompt features', () => {
  it('hashes lower-cased words and their bigrams', () => {
    expect(wordHashes('The CAT, the cat!', 1)).toEqual(
      ['the', 'cat', 'the', 'cat'].map((w) => hashString(w, 1)),
    );
    const [the, cat] = [hashString('the', 1), hashString('cat', 1)];
    // Words the, cat; bigrams the→cat, cat→the: four distinct features.
    expect(Array.from(hashedFeatures('The cat the cat'))).toEqual(
      [the, cat, hashPair(the, cat), hashPair(cat, the)].sort((a, b) => a - b),
    );
  });

  it('cosine of binary feature sets is |A ∩ B| / sqrt(|A| |B|)', () => {
    const a = Uint32Array.from([1, 2, 3, 4]);
    const b = Uint32Array.from([3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(cosineSimilarity(a, b)).toBeCloseTo(2 / Math.sqrt(4 * 9), 15);
    expect(cosineSimilarity(a, new Uint32Array())).toBe(0);
  });

  it('keeps at most MAX_FEATURES_PER_PROMPT features, the smallest hashes', () => {
    const long = Array.from({ length: 400 }, (_, i) => `w${i}`).join(' ');
    const kept = hashedFeatures(long);
    expect(kept.length).toBe(MAX_FEATURES_PER_PROMPT);
    const longer = hashedFeatures(`${long} and more`);
    expect(intersection(kept, longer)).toBeGreaterThan(MAX_FEATURES_PER_PROMPT - 5);
  });

  it('MinHash estimates Jaccard: identical 1, disjoint about 0', () => {
    const a = minHashSignature('alpha beta gamma delta epsilon zeta eta theta');
    expect(estimatedJaccard(a, minHashSignature('Alpha beta gamma delta epsilon zeta eta theta'))).toBe(1);
    expect(estimatedJaccard(a, minHashSignature('one two three four five six seven eight'))).toBeLessThan(
      0.1,
    );
  });

  it('skeletons replace numbers, quotes, names, URLs, e-mails and content words', () => {
    // 'Draft' is capitalised mid-sentence (after the quote): a name; 'reply' and 'a' are template words.
    expect(
      promptSkeleton(
        'Customer Alice (order #4411) writes: "my parcel is late" Draft a reply to bob@example.com',
      ),
    ).toEqual([
      '<w>',
      '<name>',
      '(',
      '<w>',
      '#',
      '<num>',
      ')',
      '<w>',
      ':',
      '<str>',
      '<name>',
      'a',
      'reply',
      'to',
      '<email>',
    ]);
    const a = fingerprintPrompt('Explain step by step how photosynthesis works and list all the stages.');
    const b = fingerprintPrompt('Explain step by step how plate tectonics works and list all the effects.');
    expect(a.skeleton).toBe(b.skeleton);
    expect(a.reasoning && a.enumeration).toBe(true);
    expect(fingerprintPrompt('Write a haiku about autumn.').reasoning).toBe(false);
  });

  it('client subnets: /24 for IPv4, /48 for IPv6, mapped IPv4 as IPv4', () => {
    expect(clientSubnet('203.0.113.77')).toBe('203.0.113.0/24');
    expect(clientSubnet('2001:db8:abcd:12::1')).toBe('2001:db8:abcd::/48');
    expect(clientSubnet('::ffff:198.51.100.9')).toBe('198.51.100.0/24');
    expect(clientSubnet('::1')).toBe('0:0:0::/48');
    expect(clientSubnet('300.1.1.1')).toBeNull();
    expect(clientSubnet('not an address')).toBeNull();
  });
});

function intersection(a: Uint32Array, b: Uint32Array): number {
  const set = new Set(b);
  return a.filter((x) => set.has(x)).length;
}
