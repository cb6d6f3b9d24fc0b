/**
 * What the monitor keeps of one prompt: hashed word n-gram features (for diversity, coverage, entropy
 * and the MMD kernel), a MinHash signature (for near-duplicates and LSH), a template skeleton and
 * the elicitation flags. Nothing here stores the prompt's text.
 */
import { fmix32, hashPair, hashString } from './hashing.ts';

/** Characters of a prompt that the features read; the rest is ignored (bounds observe() cost). */
export const MAX_PROMPT_CHARS = 8192;
/** Characters the skeleton reads (its SKELETON_TOKENS tokens and any quoted string they open). */
const SKELETON_CHARS = 400;
/** Hashed features kept per prompt (the smallest hashes, a bottom-k sample when there are more). */
export const MAX_FEATURES_PER_PROMPT = 96;
/** Skeleton tokens hashed (a template's fixed part sits at the front of a prompt). */
export const SKELETON_TOKENS = 40;
/** MinHash signature length and LSH layout: 16 bands of 2 rows. */
export const MINHASH_SIZE = 32;
export const LSH_BANDS = 16;
export const LSH_ROWS = 2;

const WORD = /[\p{L}\p{N}]+(?:['’][\p{L}]+)?|[^\s\p{L}\p{N}]/gu;

const LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;

function isWordCode(code: number, text: string, i: number): boolean {
  if (code < 128)
    return (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || (code >= 48 && code <= 57);
  return LETTER_OR_DIGIT.test(text.charAt(i));
}

/**
 * Seeded hashes of the lower-cased words (runs of letters and digits) of a prompt's first
 * MAX_PROMPT_CHARS characters, computed in one scan without building strings: the hash of each
 * word equals hashString(word.toLowerCase(), seed).
 */
export function wordHashes(text: string, seed: number): number[] {
  const out: number[] = [];
  const end = Math.min(text.length, MAX_PROMPT_CHARS);
  let h = 0;
  let inWord = false;
  for (let i = 0; i < end; i++) {
    const code = text.charCodeAt(i);
    if (isWordCode(code, text, i)) {
      if (!inWord) {
        h = (0x811c9dc5 ^ seed) >>> 0;
        inWord = true;
      }
      const lower =
        code >= 65 && code <= 90
          ? code | 0x20
          : code < 128
            ? code
            : text.charAt(i).toLowerCase().charCodeAt(0);
      h ^= lower;
      h = Math.imul(h, 0x01000193);
    } else if (inWord) {
      out.push(fmix32(h));
      inWord = false;
    }
  }
  if (inWord) out.push(fmix32(h));
  return out;
}

/**
 * Hashed word unigram and bigram features: a sorted, duplicate-free set of 32-bit hashes (binary
 * features, so cosine(A, B) = |A ∩ B| / sqrt(|A| |B|)). Above MAX_FEATURES_PER_PROMPT, the smallest
 * hashes are kept: a consistent sample, so that two long near-identical prompts keep the same ones.
 */
export function hashedFeatures(text: string): Uint32Array {
  const set = new Set<number>();
  let previous = -1;
  for (const h of wordHashes(text, 1)) {
    set.add(h);
    if (previous >= 0) set.add(hashPair(previous, h));
    previous = h;
  }
  const sorted = Uint32Array.from(set).sort();
  return sorted.length > MAX_FEATURES_PER_PROMPT ? sorted.slice(0, MAX_FEATURES_PER_PROMPT) : sorted;
}

/** |A ∩ B| of two sorted hash sets. */
export function intersectionSize(a: Uint32Array, b: Uint32Array): number {
  let i = 0;
  let j = 0;
  let shared = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    if (x === y) {
      shared++;
      i++;
      j++;
    } else if (x < y) i++;
    else j++;
  }
  return shared;
}

/** Cosine similarity of two binary feature sets; 0 when either is empty. */
export function cosineSimilarity(a: Uint32Array, b: Uint32Array): number {
  if (a.length === 0 || b.length === 0) return 0;
  return intersectionSize(a, b) / Math.sqrt(a.length * b.length);
}

/** Word bigram shingles (unigrams for one-word prompts), hashed. */
function shingles(text: string): number[] {
  const tokens = wordHashes(text, 2);
  if (tokens.length < 2) return tokens;
  const out: number[] = [];
  for (let i = 1; i < tokens.length; i++) out.push(hashPair(tokens[i - 1]!, tokens[i]!));
  return out;
}

const MINHASH_SEEDS: Uint32Array = (() => {
  const seeds = new Uint32Array(MINHASH_SIZE);
  for (let i = 0; i < MINHASH_SIZE; i++) seeds[i] = fmix32(0x6d6f6e69 + i * 0x9e3779b9);
  return seeds;
})();

/**
 * MinHash signature of the bigram shingle set (Broder 1997): position i holds min over shingles of
 * fmix32(shingle ^ seed_i); two signatures agree at a position with probability J (Jaccard).
 * An empty prompt has the all-ones signature.
 */
export function minHashSignature(text: string): Uint32Array {
  const signature = new Uint32Array(MINHASH_SIZE).fill(0xffffffff);
  for (const shingle of shingles(text)) {
    for (let i = 0; i < MINHASH_SIZE; i++) {
      const h = fmix32(shingle ^ MINHASH_SEEDS[i]!);
      if (h < signature[i]!) signature[i] = h;
    }
  }
  return signature;
}

/** Share of equal positions: an unbiased estimate of the Jaccard similarity. */
export function estimatedJaccard(a: Uint32Array, b: Uint32Array): number {
  let equal = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) equal++;
  return equal / a.length;
}

/** Whether two signatures agree on all rows of at least one LSH band (a candidate pair). */
export function sharesLshBand(a: Uint32Array, b: Uint32Array): boolean {
  for (let band = 0; band < LSH_BANDS; band++) {
    let same = true;
    for (let row = band * LSH_ROWS; row < (band + 1) * LSH_ROWS && same; row++) same = a[row] === b[row];
    if (same) return true;
  }
  return false;
}

/** The LSH bucket keys of a signature: one 32-bit hash per band, salted by the band index. */
export function lshBandKeys(signature: Uint32Array): number[] {
  const keys: number[] = [];
  for (let band = 0; band < LSH_BANDS; band++) {
    let h = fmix32(band + 0x4c5348);
    for (let row = band * LSH_ROWS; row < (band + 1) * LSH_ROWS; row++) h = hashPair(h, signature[row]!);
    keys.push(h);
  }
  return keys;
}

/**
 * Words a template keeps verbatim: English function words and the vocabulary of instructions. Any
 * other lower-case word is a slot filler (a topic, an object) and becomes `<w>`.
 */
const TEMPLATE_WORDS: ReadonlySet<string> = new Set(
  (
    'a an the and or but if then else of to in on at by for with from into about as is are was were be been ' +
    'being am do does did done have has had not no yes this that these those it its they them their there ' +
    'here what which who whom whose when where why how all any each every some many much more most other ' +
    'such only own same so than too very can could will would should may might must shall i me my you your ' +
    'we our us he she his her him one two three first second next last also just up down out over under ' +
    'between through during before after again further once both few nor per via vs versus like than ' +
    'explain describe list write summarize summarise translate give provide generate create answer ' +
    'question questions answers step steps reasoning reason think thought show tell make use using ' +
    'following below above text article document passage paragraph sentence sentences words word detail ' +
    'details detailed example examples possible key main important please help need want know ' +
    'compare contrast define definition analyze analyse evaluate discuss outline identify classify ' +
    'rewrite improve correct fix check review respond reply format json table bullet points point ' +
    'short long brief concise full complete exhaustive comprehensive in-depth output input return'
  ).split(/\s+/),
);

/**
 * A prompt's skeleton: its first SKELETON_TOKENS tokens with URLs, e-mail addresses, quoted strings,
 * numbers, proper-noun-ish words (capitalised, not sentence-initial, or all-caps) and content words
 * replaced by placeholders, and runs of one placeholder collapsed. Two prompts made from one template
 * with different slot fillers get the same skeleton.
 */
export function promptSkeleton(text: string): string[] {
  const replaced = text
    .slice(0, SKELETON_CHARS)
    .replace(/\bhttps?:\/\/\S+/gi, ' URLPLACEHOLDER ')
    .replace(/[\w.+-]+@[\w-]+(?:\.[\w-]+)+/g, ' EMAILPLACEHOLDER ')
    .replace(/"[^"\n]{0,500}"|“[^”\n]{0,500}”|`[^`\n]{0,500}`|'[^'\n]{1,500}'(?!\w)/g, ' QUOTEPLACEHOLDER ');
  const tokens = replaced.match(WORD) ?? [];
  const skeleton: string[] = [];
  let sentenceStart = true;
  for (const token of tokens) {
    if (skeleton.length >= SKELETON_TOKENS) break;
    let out: string;
    if (token === 'URLPLACEHOLDER') out = '<url>';
    else if (token === 'EMAILPLACEHOLDER') out = '<email>';
    else if (token === 'QUOTEPLACEHOLDER') out = '<str>';
    else if (/\p{N}/u.test(token)) out = '<num>';
    else if (/^\p{L}/u.test(token)) {
      const lower = token.toLowerCase();
      const capitalised = /^\p{Lu}/u.test(token);
      const allCaps = token.length > 1 && token === token.toUpperCase();
      if ((capitalised && !sentenceStart) || allCaps) out = TEMPLATE_WORDS.has(lower) ? lower : '<name>';
      else out = TEMPLATE_WORDS.has(lower) ? lower : '<w>';
    } else out = token;
    sentenceStart = /^[.!?:\n]$/.test(token);
    if (out.startsWith('<') && out.length > 1 && skeleton[skeleton.length - 1] === out) continue;
    skeleton.push(out);
  }
  return skeleton;
}

/** Hash of a skeleton (placeholders included). */
export function skeletonHash(skeleton: readonly string[]): number {
  return hashString(skeleton.join(' '), 3);
}

/** Chain-of-thought elicitation: "step by step", "explain your reasoning", "show your work", … */
export const REASONING_PATTERN: RegExp =
  /\bstep[- ]by[- ]step\b|\bexplain (?:your|the|each|every) (?:reasoning|steps?|thought process|logic)\b|\bchain[- ]of[- ]thought\b|\bshow (?:your|all|the) (?:work|reasoning|steps|working)\b|\bthink (?:it |this )?(?:through|carefully)\b|\blet'?s think\b|\breason (?:carefully|through|about each)\b|\bwalk me through\b/i;

/** Exhaustive enumeration: "list all", "every possible", "enumerate", "complete list", … */
export const ENUMERATION_PATTERN: RegExp =
  /\blist (?:all|every|each)\b|\b(?:every|all) possible\b|\bexhaustive(?:ly)?\b|\benumerate\b|\bcomplete list\b|\ball (?:the )?(?:known|existing|different) (?:types|kinds|ways|cases|variants)\b/i;

/** Everything the monitor keeps of one prompt. */
export interface PromptFingerprint {
  /** Sorted hashed unigram+bigram features. */
  readonly features: Uint32Array;
  readonly signature: Uint32Array;
  readonly skeleton: number;
  /** Tokens in the skeleton (short skeletons are too generic to link accounts). */
  readonly skeletonLength: number;
  readonly reasoning: boolean;
  readonly enumeration: boolean;
}

export function fingerprintPrompt(prompt: string): PromptFingerprint {
  if (typeof prompt !== 'string') throw new TypeError('prompt: expected a string');
  const head = prompt.slice(0, MAX_PROMPT_CHARS);
  const skeleton = promptSkeleton(head);
  return {
    features: hashedFeatures(head),
    signature: minHashSignature(head),
    skeleton: skeletonHash(skeleton),
    skeletonLength: skeleton.length,
    reasoning: REASONING_PATTERN.test(head),
    enumeration: ENUMERATION_PATTERN.test(head),
  };
}
