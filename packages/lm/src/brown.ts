/** Brown corpus files: tagged tokens (`word/tag`), one sentence a line, a tab opening each paragraph. */

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', ']', '}', '%', "''", "'s"]);
const NO_SPACE_AFTER = new Set(['``', '(', '[', '{', '$']);

/** Splits `word/tag` at its last slash (words such as `1/2` hold slashes of their own). */
function splitTagged(tagged: string): { word: string; tag: string } {
  const slash = tagged.lastIndexOf('/');
  return slash < 0
    ? { word: tagged, tag: '' }
    : { word: tagged.slice(0, slash), tag: tagged.slice(slash + 1) };
}

/** Joins a sentence's words with the spacing of ordinary prose. */
export function detokenizeBrownSentence(words: readonly string[]): string {
  let text = '';
  let spaceBeforeNext = false;
  let singleQuoteOpen = false;
  for (const word of words) {
    // "Jr./np ./." ends a sentence on an abbreviation: one period is enough.
    if (word === '.' && text.endsWith('.')) continue;
    let piece = word;
    let spaceBefore = spaceBeforeNext && !NO_SPACE_BEFORE.has(word);
    spaceBeforeNext = !NO_SPACE_AFTER.has(word);
    if (word === '``') piece = '"';
    else if (word === "''") piece = '"';
    else if (word === "'") {
      // A lone single quote opens and closes in turn.
      singleQuoteOpen = !singleQuoteOpen;
      if (singleQuoteOpen) spaceBeforeNext = false;
      else spaceBefore = false;
    }
    text += spaceBefore ? ` ${piece}` : piece;
  }
  return text;
}

/**
 * Plain text of one Brown corpus file: tags stripped, punctuation spaced as in prose, sentences of a
 * paragraph joined by a space, paragraphs (and headlines, whose tags end in `-hl`) separated by a blank line.
 */
export function brownFileToText(content: string): string {
  const paragraphs: string[][] = [];
  let current: string[] | undefined;
  for (const line of content.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '') continue;
    const tokens = trimmed.split(/\s+/).map(splitTagged);
    const isHeadline = tokens.every(({ tag }) => tag.endsWith('-hl'));
    if (current === undefined || line.startsWith('\t') || isHeadline) {
      current = [];
      paragraphs.push(current);
    }
    current.push(detokenizeBrownSentence(tokens.map(({ word }) => word)));
    if (isHeadline) current = undefined;
  }
  return paragraphs.map((sentences) => sentences.join(' ')).join('\n\n');
}
