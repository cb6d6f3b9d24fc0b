/**
 * What a reader is shown of an evidence predicate: the text cut into its tokens, the evidence
 * accumulating along it, the detected passage, the checkpoint in brief. Pure functions, for the HTML page
 * and for the console's components alike.
 */
import { log10BinomialSf } from '@tracemark/core';
import {
  type DsseEnvelope,
  type EvidencePredicate,
  type EvidenceSegment,
  fromBase64,
  parseCheckpoint,
  toHex,
} from '@tracemark/provenance';
import { normalizeText } from '@tracemark/tokenizers/normalize';

/** The predicate a DSSE payload claims, without checking anything (null when it cannot be read). */
export function claimedPredicate(envelope: DsseEnvelope): EvidencePredicate | null {
  try {
    const statement = JSON.parse(
      new TextDecoder().decode(fromBase64(envelope.payload, 'payload', { urlSafe: true })),
    );
    return typeof statement?.predicate === 'object' && statement.predicate !== null
      ? (statement.predicate as EvidencePredicate)
      : null;
  } catch {
    return null;
  }
}

/** The effective green-list fraction γ the report's p-values use (0.25 when the report names none). */
export function gammaOf(predicate: EvidencePredicate): number {
  const parameters = predicate.algorithm.parameters;
  const value = parameters.gammaEffective ?? parameters.gamma;
  return typeof value === 'number' && value > 0 && value < 1 ? value : 0.25;
}

/** One token of the report's text, with its status letter. */
export interface TokenPiece {
  readonly text: string;
  /** G green, R red, N scored without green lists; C, S, P, D not scored (no context, special, prompt, repeat). */
  readonly status: string;
}

/** What each status letter means, in words. */
export const STATUS_WORDS: Readonly<Record<string, string>> = Object.freeze({
  G: 'green: counts toward the watermark',
  R: 'red: counts against it',
  N: 'scored (a scheme without green lists: its evidence is the score)',
  C: 'not scored: no preceding context',
  S: 'not scored: special token',
  P: 'not scored: repeats the prompt',
  D: 'not scored: repeats an earlier word pair',
});

/**
 * The report's text cut into its tokens (`ends` count code points of the normalized text); what follows
 * the last token with a status is `rest`. Null when the report carries no text or no tokens.
 */
export function tokenPieces(predicate: EvidencePredicate): { pieces: TokenPiece[]; rest: string } | null {
  const content = predicate.text.content;
  const tokens = predicate.tokens;
  if (content === undefined || tokens === undefined) return null;
  const codePoints = Array.from(normalizeText(content));
  const pieces: TokenPiece[] = [];
  let start = 0;
  tokens.ends.forEach((end, i) => {
    const clamped = Math.min(Math.max(end, start), codePoints.length);
    pieces.push({ text: codePoints.slice(start, clamped).join(''), status: tokens.statuses[i] ?? 'C' });
    start = clamped;
  });
  return { pieces, rest: codePoints.slice(start).join('') };
}

/** A point of the evidence curve. */
export interface CurvePoint {
  /** Tokens read so far. */
  readonly token: number;
  /** −log10 p of the text up to here (exact binomial tail). */
  readonly value: number;
}

/** −log10 p of the text read so far, at most `maxPoints` points along it. */
export function evidenceCurve(statuses: string, gamma: number, maxPoints = 400): CurvePoint[] {
  const points: CurvePoint[] = [];
  let scored = 0;
  let green = 0;
  const step = Math.max(1, Math.ceil(statuses.length / maxPoints));
  for (let i = 0; i < statuses.length; i++) {
    const letter = statuses[i];
    if (letter === 'G') green++;
    if (letter === 'G' || letter === 'R') scored++;
    if ((i + 1) % step === 0 || i === statuses.length - 1) {
      points.push({ token: i + 1, value: scored === 0 ? 0 : -log10BinomialSf(green, scored, gamma) });
    }
  }
  return points;
}

/** The strongest passage when it is itself significant after its correction: the detected watermarked passage. */
export function detectedPassage(predicate: EvidencePredicate): EvidenceSegment | null {
  const window = predicate.segments.find((segment) => segment.kind === 'window');
  if (window === undefined) return null;
  const corrected = window.log10PCorrected ?? window.log10P;
  return corrected <= Math.log10(predicate.detection.alpha) ? window : null;
}

/** A signed checkpoint's origin, size and root (hex), for display; null when it cannot be read. */
export function checkpointSummary(checkpoint: string): { origin: string; size: number; root: string } | null {
  try {
    const parsed = parseCheckpoint(checkpoint);
    return { origin: parsed.origin, size: Number(parsed.size), root: toHex(parsed.rootHash) };
  } catch {
    return null;
  }
}
