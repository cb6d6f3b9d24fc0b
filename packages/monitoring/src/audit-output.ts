/**
 * Output audit: secrets of known formats and personal data in a model's output, with spans, and a
 * policy that flags, redacts or refuses. A finding never carries the full secret: `masked` keeps at
 * most a quarter of it (and at most 4 leading characters or the last 4 digits of a card).
 *
 * Hand-written rather than secretlint (@secretlint/secretlint-rule-preset-recommend, MIT, well kept):
 * secretlint is asynchronous and file-oriented, its messages include the matched value, and it has no
 * rules for tracemark keys, card numbers (Luhn) or IBANs (mod 97); a gateway needs a synchronous
 * span-based check on every response. The formats follow the providers' documentation.
 */
import type { Severity } from './screen-input.ts';

export type OutputCategory = 'secret' | 'personal-data';

export interface OutputFinding {
  readonly rule: string;
  readonly category: OutputCategory;
  readonly severity: Severity;
  readonly start: number;
  readonly end: number;
  /** The match with most characters replaced by `*`. */
  readonly masked: string;
}

export interface OutputRule {
  readonly rule: string;
  readonly category: OutputCategory;
  readonly severity: Severity;
  readonly pattern: RegExp;
  /** A checksum or sanity check on the match; false drops it. */
  readonly validate?: (match: string) => boolean;
  /** Characters kept at each end when masking. */
  readonly keep?: (match: string) => readonly [number, number];
}

/** Luhn mod-10 check over the digits of a string. */
export function luhnValid(text: string): boolean {
  const digits = text.replace(/\D/g, '');
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let digit = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return digits.length > 0 && sum % 10 === 0;
}

/** IBAN lengths by country (ISO 13616 registry, the common ones). */
const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24,
  AE: 23,
  AT: 20,
  AZ: 28,
  BA: 20,
  BE: 16,
  BG: 22,
  BH: 22,
  BR: 29,
  CH: 21,
  CR: 22,
  CY: 28,
  CZ: 24,
  DE: 22,
  DK: 18,
  DO: 28,
  EE: 20,
  EG: 29,
  ES: 24,
  FI: 18,
  FO: 18,
  FR: 27,
  GB: 22,
  GE: 22,
  GI: 23,
  GL: 18,
  GR: 27,
  GT: 28,
  HR: 21,
  HU: 28,
  IE: 22,
  IL: 23,
  IS: 26,
  IT: 27,
  JO: 30,
  KW: 30,
  KZ: 20,
  LB: 28,
  LI: 21,
  LT: 20,
  LU: 20,
  LV: 21,
  MC: 27,
  MD: 24,
  ME: 22,
  MK: 19,
  MR: 27,
  MT: 31,
  MU: 30,
  NL: 18,
  NO: 15,
  PK: 24,
  PL: 28,
  PS: 29,
  PT: 25,
  QA: 29,
  RO: 24,
  RS: 22,
  SA: 24,
  SE: 24,
  SI: 19,
  SK: 24,
  SM: 27,
  TN: 24,
  TR: 26,
  UA: 29,
  VG: 24,
  XK: 20,
};

/** ISO 7064 mod 97-10 check of an IBAN (spaces ignored) and its country's length. */
export function ibanValid(text: string): boolean {
  const iban = text.replace(/\s+/g, '').toUpperCase();
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(iban)) return false;
  if (IBAN_LENGTHS[iban.slice(0, 2)] !== iban.length) return false;
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let remainder = 0;
  for (const char of rearranged) {
    const value = char >= 'A' ? char.charCodeAt(0) - 55 : char.charCodeAt(0) - 48;
    remainder = value >= 10 ? (remainder * 100 + value) % 97 : (remainder * 10 + value) % 97;
  }
  return remainder === 1;
}

function cardValid(match: string): boolean {
  const digits = match.replace(/\D/g, '');
  if (digits.length < 13 || digits.length > 19 || /^(\d)\1+$/.test(digits)) return false;
  // Issuer prefixes: Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay.
  if (!/^(?:4|5[1-5]|2[2-7]|3[47]|6(?:011|5|4[4-9]|2)|35|3[068])/.test(digits)) return false;
  return luhnValid(digits);
}

function phoneValid(match: string): boolean {
  const digits = match.replace(/\D/g, '');
  return digits.length >= 8 && digits.length <= 15;
}

function ssnValid(match: string): boolean {
  const [area, group, serial] = match.split('-');
  return area !== '000' && area !== '666' && !area!.startsWith('9') && group !== '00' && serial !== '0000';
}

const keepPrefix =
  (prefix: number) =>
  (match: string): readonly [number, number] => [Math.min(prefix, Math.floor(match.length / 4)), 0];

/** The rules, in reporting order. */
const output_rules: OutputRule[] = [
  {
    rule: 'private-key-block',
    category: 'secret',
    severity: 'high',
    pattern:
      /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)/g,
    keep: () => [0, 0],
  },
  {
    rule: 'tracemark-api-key',
    category: 'secret',
    severity: 'high',
    pattern: /\btm_(?:live|dev)_[0-9a-f]{16}_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g,
    keep: (match) => [match.indexOf('_', 3) + 1, 0],
  },
  {
    rule: 'anthropic-api-key',
    category: 'secret',
    severity: 'high',
    pattern: /\bsk-ant-[A-Za-z0-9]{2,10}-[A-Za-z0-9_-]{32,}/g,
    keep: keepPrefix(7),
  },
  {
    rule: 'openai-api-key',
    category: 'secret',
    severity: 'high',
    pattern: /\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}(?![A-Za-z0-9_-])/g,
    validate: (match) => /\d/.test(match) && /[A-Za-z]/.test(match.slice(3)),
    keep: keepPrefix(3),
  },
  {
    rule: 'aws-access-key-id',
    category: 'secret',
    severity: 'high',
    pattern: /\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b/g,
    keep: keepPrefix(4),
  },
  {
    rule: 'aws-secret-access-key',
    category: 'secret',
    severity: 'high',
    pattern: /\baws_?secret_?access_?key\b["']?\s*[:=]\s*["']?[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])/gi,
    keep: (match) => [match.length - 40, 0],
  },
  {
    rule: 'github-token',
    category: 'secret',
    severity: 'high',
    pattern: /\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})\b/g,
    keep: keepPrefix(4),
  },
  {
    rule: 'slack-token',
    category: 'secret',
    severity: 'high',
    pattern:
      /\bxox[abposr]-[A-Za-z0-9-]{10,}|https:\/\/hooks\.slack\.com\/services\/[A-Z0-9]+\/[A-Z0-9]+\/[A-Za-z0-9]+/g,
    keep: keepPrefix(5),
  },
  {
    rule: 'google-api-key',
    category: 'secret',
    severity: 'high',
    pattern: /\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])/g,
    keep: keepPrefix(4),
  },
  {
    rule: 'stripe-secret-key',
    category: 'secret',
    severity: 'high',
    pattern: /\b(?:sk|rk)_live_[0-9A-Za-z]{24,}\b/g,
    keep: keepPrefix(8),
  },
  {
    rule: 'json-web-token',
    category: 'secret',
    severity: 'medium',
    pattern: /\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/g,
    keep: keepPrefix(3),
  },
  {
    rule: 'email-address',
    category: 'personal-data',
    severity: 'medium',
    pattern: /\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b/g,
    keep: (match) => [1, match.length - match.indexOf('@')],
  },
  {
    rule: 'payment-card-number',
    category: 'personal-data',
    severity: 'high',
    pattern: /(?<![\d.-])\d(?:[ -]?\d){12,18}(?![\d-])/g,
    validate: cardValid,
    keep: () => [0, 4],
  },
  {
    rule: 'iban',
    category: 'personal-data',
    severity: 'high',
    pattern: /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b/g,
    validate: ibanValid,
    keep: () => [2, 0],
  },
  {
    rule: 'us-social-security-number',
    category: 'personal-data',
    severity: 'high',
    pattern: /\b\d{3}-\d{2}-\d{4}\b/g,
    validate: ssnValid,
    keep: () => [0, 0],
  },
  {
    rule: 'phone-number',
    category: 'personal-data',
    severity: 'low',
    pattern:
      /(?<![\w+])\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}(?!\w)|(?<!\w)\(\d{3}\) ?\d{3}-\d{4}(?!\w)/g,
    validate: phoneValid,
    keep: () => [0, 2],
  },
];

export const OUTPUT_RULES: readonly OutputRule[] = Object.freeze(output_rules);

/** Masks a match: keeps `start` leading and `end` trailing characters (at most a quarter together). */
export function maskSecret(value: string, start = 0, end = 0): string {
  const budget = Math.floor(value.length / 4);
  let keepStart = Math.max(0, Math.min(start, budget));
  let keepEnd = Math.max(0, Math.min(end, budget - keepStart));
  if (value.length < 8) keepStart = keepEnd = 0;
  return `${value.slice(0, keepStart)}${'*'.repeat(Math.min(value.length - keepStart - keepEnd, 16))}${keepEnd > 0 ? value.slice(value.length - keepEnd) : ''}`;
}

/**
 * Audits a model's output for secrets and personal data. Findings are in text order; where two
 * rules match overlapping text, the earlier rule of OUTPUT_RULES wins (a tracemark key is not also
 * reported as an OpenAI-like key).
 */
export function auditOutput(text: string): OutputFinding[] {
  if (typeof text !== 'string') throw new TypeError('text: expected a string');
  const findings: OutputFinding[] = [];
  const taken: [number, number][] = [];
  for (const rule of OUTPUT_RULES) {
    rule.pattern.lastIndex = 0;
    for (const match of text.matchAll(rule.pattern)) {
      const value = match[0];
      const start = match.index;
      const end = start + value.length;
      if (rule.validate !== undefined && !rule.validate(value)) continue;
      if (taken.some(([a, b]) => start < b && a < end)) continue;
      taken.push([start, end]);
      const [keepStart, keepEnd] = rule.keep?.(value) ?? [0, 0];
      findings.push({
        rule: rule.rule,
        category: rule.category,
        severity: rule.severity,
        start,
        end,
        masked: maskSecret(value, keepStart, keepEnd),
      });
    }
  }
  return findings.sort((a, b) => a.start - b.start || a.end - b.end);
}

export type Policy = 'flag' | 'redact' | 'refuse';

/** What to do with a text: pass it (flagged or not), pass a redacted copy, or refuse it. */
export interface PolicyDecision {
  readonly action: 'allow' | 'flag' | 'redact' | 'refuse';
  /** The text to return: unchanged, redacted, or null when refused. */
  readonly text: string | null;
  readonly findings: readonly { readonly rule: string; readonly start: number; readonly end: number }[];
}

/**
 * Applies a policy to a text and the findings of screenInput or auditOutput: `flag` passes the text
 * unchanged (action 'flag' when there are findings), `redact` replaces every finding's span with
 * `[REDACTED:<rule>]` (overlapping spans merged), `refuse` withholds the text when there is any finding.
 */
export function applyPolicy(
  text: string,
  findings: readonly { readonly rule: string; readonly start: number; readonly end: number }[],
  policy: Policy,
): PolicyDecision {
  if (typeof text !== 'string') throw new TypeError('text: expected a string');
  if (policy !== 'flag' && policy !== 'redact' && policy !== 'refuse') {
    throw new RangeError(`policy: expected 'flag', 'redact' or 'refuse', got ${String(policy)}`);
  }
  for (const [i, finding] of findings.entries()) {
    if (
      !(Number.isSafeInteger(finding.start) && Number.isSafeInteger(finding.end)) ||
      finding.start < 0 ||
      finding.end > text.length ||
      finding.start > finding.end
    ) {
      throw new RangeError(`findings[${i}]: span [${finding.start}, ${finding.end}) outside the text`);
    }
  }
  if (findings.length === 0) return { action: 'allow', text, findings };
  if (policy === 'flag') return { action: 'flag', text, findings };
  if (policy === 'refuse') return { action: 'refuse', text: null, findings };
  const spans = [...findings].sort((a, b) => a.start - b.start || b.end - a.end);
  const merged: { start: number; end: number; rules: string[] }[] = [];
  for (const span of spans) {
    const last = merged[merged.length - 1];
    if (last !== undefined && span.start < last.end) {
      last.end = Math.max(last.end, span.end);
      if (!last.rules.includes(span.rule)) last.rules.push(span.rule);
    } else merged.push({ start: span.start, end: span.end, rules: [span.rule] });
  }
  let out = '';
  let cursor = 0;
  for (const span of merged) {
    out += `${text.slice(cursor, span.start)}[REDACTED:${span.rules.join('+')}]`;
    cursor = span.end;
  }
  return { action: 'redact', text: out + text.slice(cursor), findings };
}
