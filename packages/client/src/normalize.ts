/**
 * The tokenizer normalization of spec §6, which the token ends of an evidence report count in:
 * remove U+200B, U+200C, U+200D, U+2060, U+FEFF, U+FE00–U+FE0F and U+E0100–U+E01EF, then NFC. It is
 * `normalizeText` of @tracemark/tokenizers, which cannot be bundled for a browser without its
 * vocabularies; normalize.test.ts checks the two agree.
 */
const REMOVED_CHARACTERS = /[\u200B\u200C\u2060\uFEFF]|\u200D|[\uFE00-\uFE0F]|[\u{E0100}-\u{E01EF}]/gu;
const NON_ASCII = /[\u0080-\u{10FFFF}]/u;

/** The text as the tokenizer sees it (spec §6). */
export function normalizeText(text: string): string {
  if (!NON_ASCII.test(text)) return text;
  return text.replace(REMOVED_CHARACTERS, '').normalize('NFC');
}
