/**
 * Characters removed by {@link normalizeText}: zero-width space, zero-width non-joiner, zero-width joiner,
 * word joiner, zero-width no-break space (BOM), variation selectors 1-16 and variation selectors 17-256.
 */
const REMOVED_CHARACTERS = /[\u200B\u200C\u2060\uFEFF]|\u200D|[\uFE00-\uFE0F]|[\u{E0100}-\u{E01EF}]/gu;
const NON_ASCII = /[\u0080-\u{10FFFF}]/u;

/**
 * The text normalization that is part of every tokenizer id's definition: removal of U+200B, U+200C,
 * U+200D, U+2060, U+FEFF, U+FE00–U+FE0F and U+E0100–U+E01EF, then Unicode NFC. Removing first makes
 * the normalization idempotent: a removed character can no longer keep two others from composing.
 */
export function normalizeText(text: string): string {
  if (typeof text !== 'string') throw new TypeError(`text must be a string, got ${typeof text}`);
  // ASCII is already NFC and holds none of the removed characters.
  if (!NON_ASCII.test(text)) return text;
  return text.replace(REMOVED_CHARACTERS, '').normalize('NFC');
}
