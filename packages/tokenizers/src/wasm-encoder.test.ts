import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CLASS_MEMBERS,
  encoderVariants,
  forEveryString,
  loadCorpus,
  referenceEncode,
} from './reference-encoders.test-helper.js';
import { MAX_WASM_UNITS } from './wasm-encoder.js';

const { standard, javascript, heapOnly } = encoderVariants('cl100k_base');

/** The WebAssembly path's ids for `text`, checked against the JavaScript path's. */
function expectSameIds(text: string): void {
  expect([...standard.encode(text)], JSON.stringify(text)).toEqual([...javascript.encode(text)]);
}

/** The clang the module was compiled with (its file says), and the one here (null: none, or no wasm-ld). */
const recordedClang = /^\/\/ Compiler: (.*)$/m.exec(
  readFileSync(fileURLToPath(new URL('./ascii-encoder-wasm.ts', import.meta.url)), 'utf8'),
)?.[1];
function localClang(): string | null {
  try {
    execFileSync('wasm-ld', ['--version'], { stdio: 'ignore' });
    return execFileSync('clang', ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  } catch {
    return null;
  }
}

describe('the WebAssembly encoder of ASCII pieces (cl100k_base)', () => {
  it('serves cl100k_base and no other pattern, nor the merge tests', () => {
    expect(standard.wasm).toBe(true);
    expect(javascript.wasm).toBe(false);
    expect(heapOnly.wasm).toBe(false);
    expect(encoderVariants('o200k_base').standard.wasm).toBe(false);
    expect(encoderVariants('gpt2').standard.wasm).toBe(false);
  });

  // CI installs clang and lld (scripts/ci-services.sh), the version the module was made with; elsewhere
  // the check needs that version (another may compile the same source to other bytes).
  it.skipIf(process.env.CI !== 'true' && localClang() !== recordedClang)(
    'is the compiled wasm/ascii-encoder.c',
    () => {
      const script = fileURLToPath(new URL('../wasm/generate.mjs', import.meta.url));
      expect(execFileSync(process.execPath, [script, '--check'], { encoding: 'utf8' })).toMatch(/matches/);
    },
  );

  it('gives the JavaScript path’s ids on every document of the corpora', async () => {
    let tokens = 0;
    for (const document of await loadCorpus('all')) {
      const ids = standard.encode(document.text);
      expect(ids, document.id).toEqual(javascript.encode(document.text));
      tokens += ids.length;
    }
    expect(tokens).toBeGreaterThan(1_000_000);
  });

  // The pattern's classes, and the sentinel's byte as a character (U+00FF).
  const MEMBERS = [...CLASS_MEMBERS, '\u00ff'];

  it('gives the same ids on every string of up to three of the class members, alone and inside text', () => {
    const checked = forEveryString(MEMBERS, 3, (text) => {
      expectSameIds(text);
      expectSameIds(`x${text}y`);
      expectSameIds(`It ${text}'s 12345 ${text}`);
    });
    expect(checked).toBe(MEMBERS.length ** 3 + MEMBERS.length ** 2 + MEMBERS.length);
  });

  it('leaves pieces longer than 64 bytes to JavaScript, and takes the text up after them', () => {
    for (const unit of ['a', 'Ab', '1', '.', ' ', '\n', ' \n', "'", 'é']) {
      for (const count of [8, 31, 32, 33, 63, 64, 65, 66, 200]) {
        const run = unit.repeat(count);
        for (const text of [run, `x ${run}`, `${run} y`, `The ${run}, then ${run}.`]) {
          expectSameIds(text);
          expect([...standard.encode(text)]).toEqual(referenceEncode('cl100k_base', text));
        }
      }
    }
  });

  it('keeps its buffers right as texts grow and shrink, and its merge cache across them', () => {
    const word = (i: number) => `w${(i * 2654435761) >>> 20}q`;
    // MAX_WASM_UNITS and one more: the last takes the JavaScript path, the next the module again.
    const sizes = [0, 1, 7, 8, 9, 1000, 70_000, 3, 300_000, 10, MAX_WASM_UNITS, MAX_WASM_UNITS + 1, 2];
    for (const size of sizes) {
      const text = Array.from({ length: Math.ceil(size / 8) }, (_, i) => word(i))
        .join(' ')
        .slice(0, size);
      expectSameIds(text);
      // Non-ASCII at the end and in the middle: the byte offsets must follow the characters.
      expectSameIds(`${text}\u00e9`);
      expectSameIds(`\u{1f600}${text.slice(0, size >> 1)}\u00e9 ${text.slice(size >> 1)}`);
    }
  });

  it('gives the same ids on random text (property)', () => {
    const asciiHeavy = fc
      .array(
        fc.oneof(
          { weight: 8, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 12 }) },
          { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 3 }) },
          { weight: 1, arbitrary: fc.constantFrom("'s", "'LL", "'Ve", "'", ' ', '\r\n', '  ', '1234') },
        ),
        { maxLength: 30 },
      )
      .map((parts) => parts.join(''));
    fc.assert(
      fc.property(asciiHeavy, (text) => {
        expectSameIds(text);
      }),
      { numRuns: 3000 },
    );
  });
});
