import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { asciiPieceScanner, CL100K_PATTERN, cl100kAsciiPieceEnd, NOT_ASCII } from './ascii-pieces.js';
import { CLASS_MEMBERS, forEveryString, loadCorpus, loadRankFile } from './reference-encoders.test-helper.js';

/** The piece the expression matches at `start` (flags `yu`, as the encoder asks it). */
function regexPieceEnd(sticky: RegExp, text: string, start: number): number {
  sticky.lastIndex = start;
  return sticky.test(text) ? sticky.lastIndex : start;
}

/**
 * Walks `text` piece by piece as the encoder does (the scanner where it answers, the expression
 * where it does not) and checks every answer the scanner gives against the expression's.
 */
function checkAgainstRegex(text: string, sticky: RegExp): { scanned: number; asked: number } {
  let scanned = 0;
  let asked = 0;
  for (let position = 0; position < text.length; ) {
    const expected = regexPieceEnd(sticky, text, position);
    const found = cl100kAsciiPieceEnd(text, position);
    if (found === NOT_ASCII) asked++;
    else {
      scanned++;
      if (found !== expected) {
        throw new Error(
          `at ${position} of ${JSON.stringify(text.slice(Math.max(0, position - 5), position + 10))}: ` +
            `scanner ${found}, expression ${expected}`,
        );
      }
    }
    position = expected > position ? expected : position + 1;
  }
  return { scanned, asked };
}

describe('cl100k_base ASCII pre-tokenizer', () => {
  const sticky = new RegExp(CL100K_PATTERN, 'yu');

  it("is the rank file's pattern, and the encoder's scanner for it alone", () => {
    expect(loadRankFile('cl100k_base').pat_str).toBe(CL100K_PATTERN);
    expect(asciiPieceScanner(CL100K_PATTERN)).toBe(cl100kAsciiPieceEnd);
    expect(asciiPieceScanner(loadRankFile('o200k_base').pat_str)).toBeUndefined();
    expect(asciiPieceScanner(loadRankFile('gpt2').pat_str)).toBeUndefined();
  });

  it('finds the pieces the expression finds on the corpora, and answers for nearly all of them', async () => {
    let scanned = 0;
    let asked = 0;
    for (const document of await loadCorpus('sample')) {
      const counts = checkAgainstRegex(document.text, sticky);
      scanned += counts.scanned;
      asked += counts.asked;
    }
    expect(scanned).toBeGreaterThan(100_000);
    expect(asked / (asked + scanned)).toBeLessThan(0.05);
  });

  it('finds the same pieces on every string of up to four of the class members', () => {
    const checked = forEveryString(CLASS_MEMBERS, 4, (text) => {
      checkAgainstRegex(text, sticky);
      checkAgainstRegex(`x${text}y`, sticky);
    });
    expect(checked).toBe(
      CLASS_MEMBERS.length ** 4 +
        CLASS_MEMBERS.length ** 3 +
        CLASS_MEMBERS.length ** 2 +
        CLASS_MEMBERS.length,
    );
  });

  it('finds the same pieces on random strings of the class members', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...CLASS_MEMBERS, "'ll", "'RE", "'ve", '   ', '\r\n', '1234'), {
          maxLength: 60,
        }),
        (parts) => {
          checkAgainstRegex(parts.join(''), sticky);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
