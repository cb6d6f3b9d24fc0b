/**
 * Pre-tokenization of ASCII text without the regular expression. For a pattern listed here, a scanner
 * over character codes finds the piece that the pattern (flags `yu`) matches at a position, as long as
 * every character the pattern would have to look at is ASCII; where one is not, it answers
 * {@link NOT_ASCII} and the caller asks the regular expression for that piece. The answers are the
 * regular expression's by construction (each alternative, in order, over the same characters), and the
 * tests compare the two on the corpora, on random strings and on every string of up to four characters
 * from an alphabet of each class's members.
 */

/** A piece end that means: a character the pattern must look at is not ASCII; ask the expression. */
export const NOT_ASCII = -1;

/** Finds the end of the piece that starts at `start < text.length`, or {@link NOT_ASCII}. */
export type AsciiPieceScanner = (text: string, start: number) => number;

/** cl100k_base's `pat_str` (js-tiktoken's rank file, compiled with the flags `gu`). */
export const CL100K_PATTERN =
  "('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Character classes of ASCII codes as the pattern sees them (JavaScript's \s, \p{L}, \p{N}).
const LETTER = 1;
const DIGIT = 2;
/** \s other than \r and \n: tab, vertical tab, form feed, space. */
const SPACE = 3;
const NEWLINE = 4;
/** Neither \s, \p{L} nor \p{N}: punctuation, symbols and the other control characters. */
const OTHER = 5;
/** Past the end of the text. */
const END = 6;
/** A code of 128 or more: any class is possible. */
const UNKNOWN = 0;

const ASCII_CLASSES: Uint8Array = (() => {
  const classes = new Uint8Array(128).fill(OTHER);
  for (let code = 48; code <= 57; code++) classes[code] = DIGIT;
  for (let code = 65; code <= 90; code++) classes[code] = LETTER;
  for (let code = 97; code <= 122; code++) classes[code] = LETTER;
  for (const code of [9, 11, 12, 32]) classes[code] = SPACE;
  classes[10] = NEWLINE;
  classes[13] = NEWLINE;
  return classes;
})();

/** The class of the character at `index` (UTF-16 code units; a surrogate is UNKNOWN, as it should be). */
function classAt(text: string, index: number): number {
  if (index >= text.length) return END;
  const code = text.charCodeAt(index);
  return code < 128 ? ASCII_CLASSES[code]! : UNKNOWN;
}

/** The first index from `index` whose class is not `wanted` (END and UNKNOWN stop it). */
function runEnd(text: string, index: number, wanted: number): number {
  let at = index;
  while (classAt(text, at) === wanted) at++;
  return at;
}

/** Lower-cased ASCII code at `index`, or 0 (never a letter) past the end or beyond ASCII. */
function lowerAt(text: string, index: number): number {
  if (index >= text.length) return 0;
  const code = text.charCodeAt(index);
  return code < 128 ? code | 32 : 0;
}

const APOSTROPHE = 39;

/** The contractions of the first alternative, `(?i:'s|'t|'re|'ve|'m|'ll|'d)`; NOT_ASCII, or 0 for no match. */
function contractionEnd(text: string, start: number): number {
  if (start + 1 >= text.length) return 0;
  const next = text.charCodeAt(start + 1);
  // Under the `u` flag, case-insensitive `s` also matches U+017F (long s), and `k` the Kelvin sign: ask.
  if (next >= 128) return NOT_ASCII;
  const letter = next | 32;
  if (letter === 115 || letter === 116 || letter === 109 || letter === 100) return start + 2; // s t m d
  let second = 0;
  if (letter === 114 || letter === 118)
    second = 101; // 're, 've
  else if (letter === 108)
    second = 108; // 'll
  else return 0;
  if (start + 2 < text.length && text.charCodeAt(start + 2) >= 128) return NOT_ASCII;
  return lowerAt(text, start + 2) === second ? start + 3 : 0;
}

/**
 * cl100k_base's pieces. The alternatives in order: contractions; an optional character that is not
 * \r, \n, a letter or a number, then letters; one to three numbers; an optional space, then characters
 * that are not \s, letters or numbers, then \r and \n; \s then \r or \n (the longest such prefix of the
 * run of \s); a run of \s not followed by a non-\s (all of a run at the end, else all but its last);
 * any run of \s.
 */
export function cl100kAsciiPieceEnd(text: string, start: number): number {
  const first = classAt(text, start);
  if (first === UNKNOWN) return NOT_ASCII;
  if (first === OTHER && text.charCodeAt(start) === APOSTROPHE) {
    const end = contractionEnd(text, start);
    if (end !== 0) return end;
  }
  if (first === LETTER) return lettersEnd(text, start + 1);
  const second = classAt(text, start + 1);
  if (first !== NEWLINE && first !== DIGIT && second === LETTER) return lettersEnd(text, start + 2);
  if (first === DIGIT) {
    // Up to three numbers: a fourth character is not looked at.
    let at = start + 1;
    while (at < start + 3) {
      const next = classAt(text, at);
      if (next === UNKNOWN) return NOT_ASCII;
      if (next !== DIGIT) break;
      at++;
    }
    return at;
  }
  // The optional character of the second alternative was not followed by a letter: a non-ASCII one might be.
  if (second === UNKNOWN && first !== NEWLINE) return NOT_ASCII;
  const punctuationStart = first === SPACE && text.charCodeAt(start) === 32 ? start + 1 : start;
  const punctuationClass = punctuationStart === start ? first : second;
  if (punctuationClass === OTHER) {
    const end = runEnd(text, punctuationStart, OTHER);
    if (classAt(text, end) === UNKNOWN) return NOT_ASCII;
    let at = end;
    while (classAt(text, at) === NEWLINE) at++;
    return at;
  }
  // Only \s is left (the optional space, if any, was followed by neither letter nor punctuation).
  let end = start;
  let afterLastNewline = -1;
  for (;;) {
    const next = classAt(text, end);
    if (next === SPACE) end++;
    else if (next === NEWLINE) afterLastNewline = ++end;
    else if (next === UNKNOWN) return NOT_ASCII;
    else break;
  }
  if (afterLastNewline > 0) return afterLastNewline;
  if (end === text.length || end - start === 1) return end;
  return end - 1;
}

/** The end of a run of letters from `index`, or NOT_ASCII where the run meets a non-ASCII character. */
function lettersEnd(text: string, index: number): number {
  const end = runEnd(text, index, LETTER);
  return classAt(text, end) === UNKNOWN ? NOT_ASCII : end;
}

/** The ASCII scanner for a pattern, or undefined where there is none (the regular expression serves). */
export function asciiPieceScanner(pattern: string): AsciiPieceScanner | undefined {
  return pattern === CL100K_PATTERN ? cl100kAsciiPieceEnd : undefined;
}
