/**
 * The tokenizer normalization of spec §6 (`normalizeText` of @tracemark/tokenizers, which cannot be bundled
 * without its vocabularies): remove U+200B, U+200C, U+200D, U+2060, U+FEFF, U+FE00–U+FE0F and
 * U+E0100–U+E01EF, then NFC. Token ends in evidence reports count code points of this text.
 * `normalize.test.ts` checks it against the package's function.
 */
const REMOVED_CHARACTERS = /[\u200B\u200C\u2060\uFEFF]|\u200D|[\uFE00-\uFE0F]|[\u{E0100}-\u{E01EF}]/gu;
const NON_ASCII = /[\u0080-\u{10FFFF}]/u;

export function normalizeText(text: string): string {
  if (!NON_ASCII.test(text)) return text;
  return text.replace(REMOVED_CHARACTERS, '').normalize('NFC');
}
