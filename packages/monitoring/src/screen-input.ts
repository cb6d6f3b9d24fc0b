/**
 * Prompt-injection screening: named rules for instruction overrides, role-play jailbreaks,
 * system-prompt extraction, chat-template tokens and hidden or encoded payloads. A finding is
 * evidence for a policy, not proof: rules match phrasings, and a determined attacker paraphrases
 * (README, "Known bypasses"). Hand-written because the npm libraries for this (llm-guard 0.1.x,
 * @andersmyrmel/vard 1.x) were young single-maintainer packages when this was written; these rules
 * are small, synchronous, span-based and measured on human corpora (bench/false-positives.ts).
 */

import { hexToBytes } from '@noble/hashes/utils.js';

export type InputCategory =
  | 'instruction-override'
  | 'role-play-jailbreak'
  | 'system-prompt-extraction'
  | 'chat-template-injection'
  | 'hidden-payload';

export type Severity = 'high' | 'medium' | 'low';

export interface InputFinding {
  readonly rule: string;
  readonly category: InputCategory;
  readonly severity: Severity;
  /** UTF-16 offsets of the match in the screened text. */
  readonly start: number;
  readonly end: number;
  /** At most 80 characters of the match. */
  readonly excerpt: string;
  /** For encoded payloads: the rules that matched the decoded text. */
  readonly decoded?: readonly string[];
}

export interface InputRule {
  readonly rule: string;
  readonly category: InputCategory;
  readonly severity: Severity;
  readonly pattern: RegExp;
}

const OVERRIDE_TARGET = String.raw`(?:previous|prior|above|earlier|preceding|original|initial|system|developer)\s+(?:instructions?|prompts?|rules|directions|guidelines|directives|messages?|context|commands?)`;

/** The rules, in reporting order. Patterns are global and case-insensitive unless noted. */
const input_rules: InputRule[] = [
  {
    rule: 'ignore-previous-instructions',
    category: 'instruction-override',
    severity: 'high',
    pattern: new RegExp(
      String.raw`\b(?:ignore|disregard|forget|override|bypass|skip)\s+(?:all\s+|any\s+|the\s+|your\s+|my\s+|of\s+)*${OVERRIDE_TARGET}\b`,
      'gi',
    ),
  },
  {
    rule: 'new-instructions',
    category: 'instruction-override',
    severity: 'medium',
    pattern:
      /\b(?:your\s+new\s+instructions\s+are|new\s+system\s+prompt\s*:|from\s+now\s+on,?\s+you\s+(?:will|must|shall)\s+(?:only\s+)?(?:answer|respond|reply|act|ignore|obey))\b/gi,
  },
  {
    rule: 'do-anything-now',
    category: 'role-play-jailbreak',
    severity: 'high',
    pattern: /\bDAN\b(?=[^.\n]{0,80}\b(?:mode|prompt|jailbreak|anything|now)\b)|\bdo\s+anything\s+now\b/g,
  },
  {
    rule: 'unrestricted-persona',
    category: 'role-play-jailbreak',
    severity: 'high',
    pattern:
      /\b(?:pretend|act|behave|roleplay|role-play)\s+(?:to\s+be\s+|as\s+if\s+you\s+(?:are|were)\s+|like\s+|as\s+)(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|jailbroken|amoral|evil|rogue)\b/gi,
  },
  {
    rule: 'special-mode',
    category: 'role-play-jailbreak',
    severity: 'high',
    pattern:
      /\b(?:enable|enter|activate|switch\s+to)\s+(?:the\s+)?(?:developer|god|jailbreak|unrestricted|debug)\s+mode\b/gi,
  },
  {
    rule: 'no-restrictions',
    category: 'role-play-jailbreak',
    severity: 'medium',
    pattern:
      /\byou\s+(?:are|have\s+been)\s+(?:now\s+)?(?:freed|released|liberated)\s+from\b|\b(?:answer|respond|reply)\s+without\s+(?:any\s+)?(?:restrictions|filters|censorship|limitations|guidelines|refusals?)\b/gi,
  },
  {
    rule: 'reveal-system-prompt',
    category: 'system-prompt-extraction',
    severity: 'high',
    pattern:
      /\b(?:reveal|show|print|repeat|output|display|leak|dump|tell\s+me|give\s+me|what\s+(?:is|are|was|were))\s+(?:me\s+)?(?:your|the)\s+(?:full\s+|entire\s+|exact\s+)?(?:system|initial|original|hidden|secret|developer)\s+(?:prompt|instructions|message|rules)\b/gi,
  },
  {
    rule: 'repeat-text-above',
    category: 'system-prompt-extraction',
    severity: 'medium',
    pattern:
      /\b(?:repeat|print|output|copy)\s+(?:everything|all(?:\s+the\s+text)?|the\s+(?:text|words|instructions))\s+(?:above|before\s+this|verbatim)\b/gi,
  },
  {
    rule: 'chat-template-tokens',
    category: 'chat-template-injection',
    severity: 'high',
    pattern:
      /<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|>|\[\/?INST\]|<<\/?SYS>>/g,
  },
  {
    rule: 'unicode-tag-characters',
    category: 'hidden-payload',
    severity: 'high',
    // Tag characters (U+E0000–E007F) spell invisible ASCII ("ASCII smuggling").
    pattern: /(?:\u{E0000}|[\u{E0020}-\u{E007F}]){3,}/gu,
  },
  {
    rule: 'zero-width-run',
    category: 'hidden-payload',
    severity: 'medium',
    pattern: /[\u200B-\u200F\u2060-\u2064\uFEFF]{4,}/g,
  },
];

export const INPUT_RULES: readonly InputRule[] = Object.freeze(input_rules);

const BASE64_RUN = /[A-Za-z0-9+/]{60,}={0,2}|[A-Za-z0-9_-]{80,}/g;
const HEX_RUN = /\b(?:[0-9a-fA-F]{2}){40,}\b/g;

function excerpt(text: string): string {
  return text.length <= 80 ? text : `${text.slice(0, 77)}...`;
}

function printableShare(bytes: Uint8Array): number {
  let printable = 0;
  for (const byte of bytes)
    if ((byte >= 32 && byte < 127) || byte === 9 || byte === 10 || byte === 13) printable++;
  return bytes.length === 0 ? 0 : printable / bytes.length;
}

function decodeBase64(run: string): Uint8Array | null {
  let normalised = run.replaceAll('-', '+').replaceAll('_', '/').replace(/=+$/, '');
  if (normalised.length % 4 === 1) normalised = normalised.slice(0, -1);
  try {
    const binary = atob(normalised);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  } catch {
    return null;
  }
}

function matchRules(text: string, offset: number, depth: number): InputFinding[] {
  const findings: InputFinding[] = [];
  for (const rule of INPUT_RULES) {
    rule.pattern.lastIndex = 0;
    for (const match of text.matchAll(rule.pattern)) {
      findings.push({
        rule: rule.rule,
        category: rule.category,
        severity: rule.severity,
        start: offset + match.index,
        end: offset + match.index + match[0].length,
        excerpt: excerpt(match[0]),
      });
    }
  }
  if (depth > 0) findings.push(...encodedPayloads(text, offset, depth - 1));
  return findings;
}

/** Base64 or hex runs that decode to text; high severity when the decoded text trips a rule. */
function encodedPayloads(text: string, offset: number, depth: number): InputFinding[] {
  const findings: InputFinding[] = [];
  const candidates: { match: RegExpMatchArray; bytes: Uint8Array | null; kind: string }[] = [];
  for (const match of text.matchAll(BASE64_RUN)) {
    // Runs of one case or without digits are words, paths or identifiers more often than base64.
    if (!/[0-9]/.test(match[0]) || !/[a-z]/.test(match[0]) || !/[A-Z]/.test(match[0])) continue;
    candidates.push({ match, bytes: decodeBase64(match[0]), kind: 'base64' });
  }
  for (const match of text.matchAll(HEX_RUN)) {
    candidates.push({ match, bytes: hexToBytes(match[0]), kind: 'hex' });
  }
  for (const { match, bytes, kind } of candidates) {
    if (bytes === null || bytes.length < 24 || printableShare(bytes) < 0.95) continue;
    const decoded = new TextDecoder().decode(bytes);
    const inner = matchRules(decoded, 0, depth).map((finding) => finding.rule);
    findings.push({
      rule: `${kind}-text-payload`,
      category: 'hidden-payload',
      severity: inner.length > 0 ? 'high' : 'low',
      start: offset + match.index!,
      end: offset + match.index! + match[0].length,
      excerpt: excerpt(match[0]),
      decoded: [...new Set(inner)],
    });
  }
  return findings;
}

/**
 * Screens a prompt for injection attempts. Returns the findings in text order (ties: rule order);
 * an empty list when nothing matched.
 */
export function screenInput(text: string): InputFinding[] {
  if (typeof text !== 'string') throw new TypeError('text: expected a string');
  return matchRules(text, 0, 1).sort((a, b) => a.start - b.start || a.end - b.end);
}
