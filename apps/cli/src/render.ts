/** Human-readable output: verdict lines and, on a terminal, the text with green and red tokens. */
import type { Detection, TokenStatusName } from '@tracemark/core';
import type { AnyDocumentResult, DocumentResult, SpoofingResult } from '@tracemark/detection';
import { printable } from './io.ts';

const VERDICT_TEXT: Record<string, string> = {
  watermarked: 'WATERMARKED',
  not_watermarked: 'not watermarked',
  insufficient: 'insufficient evidence',
};

export function formatLog10(value: number): string {
  if (value === 0) return '0';
  if (value > -0.01) return value.toFixed(4);
  return value > -100 ? value.toFixed(2) : value.toFixed(0);
}

/** A document's verdict after correcting across the documents of a run (`detect --correct bh`). */
export interface CorrectedVerdict {
  readonly verdict: DocumentResult['verdict'];
  /** The Benjamini–Hochberg adjusted p-value, log10. */
  readonly log10PCorrected: number;
  /** Documents corrected across. */
  readonly documents: number;
}

/** A count that may be fractional (an expected number), to two significant digits. */
export function formatCount(value: number): string {
  return value >= 100 ? value.toFixed(0) : String(Number(value.toPrecision(2)));
}

/** What was counted: green tokens, or for an engine's key without green lists its score over the scored tokens. */
function evidence(result: AnyDocumentResult): string {
  const of = `of ${result.numTokens} tokens`;
  if (result.numGreen === null || result.greenFraction === null) {
    return `score ${(result.score ?? 0).toFixed(2)} over ${result.numScored} scored tokens (about ${result.numScored} by chance) ${of}`;
  }
  return `${result.numGreen}/${result.numScored} green (${(100 * result.greenFraction).toFixed(1)}%) ${of}`;
}

/** Whether a key without green lists is among the keys (its numGreen is null): it never says not_watermarked. */
function keysTestedHaveNoAlternative(result: AnyDocumentResult): boolean {
  return result.numGreen === null || result.keys.some((key) => key.numGreen === null);
}

export function verdictLine(result: AnyDocumentResult, corrected?: CorrectedVerdict): string {
  const verdict = corrected?.verdict ?? result.verdict;
  const parts = [
    `${result.source}: ${VERDICT_TEXT[verdict] ?? verdict}`,
    `log10 p = ${formatLog10(result.log10PAdjusted)}${corrected === undefined ? '' : `, BH-adjusted ${formatLog10(corrected.log10PCorrected)}`}`,
    `z = ${result.z.toFixed(2)}`,
    evidence(result),
    `key ${result.keyId}${result.scheme === undefined ? '' : ` (${result.scheme}${result.peerLog10P === null || result.peerLog10P === undefined ? '' : `; the engine's own formula: log10 p = ${formatLog10(result.peerLog10P)}`})`}`,
  ];
  let line = parts.join(', ');
  if (verdict !== result.verdict) {
    line += `; watermarked at α = ${result.fpr} alone, not after the Benjamini–Hochberg correction across ${corrected!.documents} documents`;
  } else if (result.verdict === 'insufficient') {
    line += Number.isFinite(result.tokensToSettle)
      ? `; about ${result.tokensToSettle} more scored tokens would settle it`
      : keysTestedHaveNoAlternative(result)
        ? "; no amount of text up to a million more scored tokens is sure to settle it (a key with δ = 0, or an engine's key without green lists, never rules a watermark out)"
        : '; no amount of text up to a million more scored tokens is sure to settle it (a key with δ = 0 never rules a watermark out)';
  }
  if (result.window !== null && result.window.length > 0) {
    line += `; best passage tokens ${result.window.startToken}–${result.window.endToken} (log10 p = ${formatLog10(result.window.log10P)} before correcting for ${result.window.windowsSearched} windows)`;
  }
  return line;
}

/** The spoofing-artefact test of a watermarked document, one line after its verdict line. */
export function spoofingLine(source: string, spoofing: SpoofingResult): string {
  const share = (value: number | null) => (value === null ? 'none' : `${(100 * value).toFixed(1)}%`);
  const line = [
    `${source}: spoofing test ${spoofing.flagged ? 'FLAGGED' : 'passed'}`,
    `log10 p = ${formatLog10(spoofing.log10P)} (flagged at p ≤ ${spoofing.alpha})`,
    `marked ${share(spoofing.commonMarkedShare)} of tokens on common word pairs, ${share(spoofing.rareMarkedShare)} on rare`,
    `${spoofing.numScored} scored`,
    `key ${spoofing.keyId}`,
  ].join(', ');
  return spoofing.flagged
    ? `${line}; the mark sits where someone who learned it from marked text would put it: it may be forged (the verdict stands)`
    : line;
}

const COLORS: Record<TokenStatusName, string> = {
  green: '\u001b[30;42m',
  red: '\u001b[30;41m',
  // A Gumbel key's scored token has no green or red: it is shown as counted, not coloured by its score.
  scored: '\u001b[4m',
  skipped_context: '\u001b[2m',
  skipped_special: '\u001b[2m',
  skipped_duplicate: '\u001b[2m',
  skipped_prompt: '\u001b[2m',
};

/**
 * The text with each token coloured by its status under the reported key; the text's controls (an escape
 * sequence in the file) are shown escaped, not sent to the terminal.
 */
export function colouredTokens(pieces: readonly string[], detection: Detection, keyId: string): string {
  const key = detection.results.find((r) => r.keyId === keyId) ?? detection.results[0]!;
  const status = key.status ?? [];
  return `${pieces.map((piece, i) => `${COLORS[status[i] ?? 'skipped_context']}${printable(piece, true)}\u001b[0m`).join('')}\n`;
}
