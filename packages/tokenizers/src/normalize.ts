/**
 * The text normalization of every tokenizer id, on its own: the package exports it as
 * `@tracemark/tokenizers/normalize` for browsers (the client, the console), so this module imports
 * nothing (the package's root would bring the vocabularies).
 */

/**
 * Characters removed by {@link normalizeText}: zero-width space, zero-width non-joiner, zero-width joiner,
 * word joiner, zero-width no-break space (BOM), variation selectors 1-16 and variation selectors 17-256.
 */
const REMOVED_CHARACTERS = /[\u200B\u200C\u2060\uFEFF]|\u200D|[\uFE00-\uFE0F]|[\u{E0100}-\u{E01EF}]/gu;
/** The same characters, to test for before replacing (no new string when there are none). */
const ANY_REMOVED_CHARACTER = new RegExp(REMOVED_CHARACTERS.source, 'u');
/**
 * Below U+0300 every character is NFC, with canonical combining class 0, and no two compose (the tests go
 * through every pair), and none is removed: such text is already normalized.
 */
const BEYOND_STABLE = /[\u0300-\uFFFF]/; // astral characters are surrogate pairs, in range

/**
 * The text normalization that is part of every tokenizer id's definition: removal of U+200B, U+200C,
 * U+200D, U+2060, U+FEFF, U+FE00–U+FE0F and U+E0100–U+E01EF, then Unicode NFC. Removing first makes
 * the normalization idempotent: a removed character can no longer keep two others from composing.
 */
export function normalizeText(text: string): string {
  if (typeof text !== 'string') throw new TypeError(`text must be a string, got ${typeof text}`);
  if (!BEYOND_STABLE.test(text)) return text;
  const kept = ANY_REMOVED_CHARACTER.test(text) ? text.replace(REMOVED_CHARACTERS, '') : text;
  return kept.normalize('NFC');
}
