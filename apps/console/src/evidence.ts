/**
 * What the page shows of a signed evidence report: the report is checked here, in the browser, with
 * `verifyEvidence` of @tracemark/provenance (the function `tracemark evidence verify` uses) against the keys
 * the service publishes, and everything drawn comes from the signed predicate.
 */
import { log10BinomialSf } from '@tracemark/core';
import {
  type DsseEnvelope,
  type EvidenceCheck,
  type EvidencePredicate,
  type EvidenceSegment,
  fromBase64,
  parseCheckpoint,
  verifyEvidence,
} from '@tracemark/provenance';
import type { ServiceKeys, VerifyResponse } from './api.ts';
import { normalizeText } from './normalize.ts';

export interface ProofCheck {
  readonly name: string;
  readonly title: string;
  readonly state: 'ok' | 'failed' | 'skipped';
  readonly detail: string;
}

export interface CheckedReport {
  /** The predicate as signed, or as the payload claims when the signature failed (then `signatureOk` is false). */
  readonly predicate: EvidencePredicate | null;
  readonly signatureOk: boolean;
  /** Every check held and the signer is a key the service publishes. */
  readonly allOk: boolean;
  /** The signer's key came from the service's published keys, not from the report. */
  readonly pinned: boolean;
  readonly checks: readonly ProofCheck[];
}

const CHECK_TITLES: Readonly<Record<EvidenceCheck['name'], string>> = {
  envelope: 'Signature of the report',
  statement: 'Report format',
  consistency: 'Numbers consistent with each other',
  'text-digest': 'Text matches the report',
  'checkpoint-signature': 'Signature of the issuance log checkpoint',
  'issuance-inclusion': 'Inclusion proof leads to the signed checkpoint',
  'issuance-record': 'Issuance record matches its log entry',
  'issuance-text': 'Issued output is this text',
};

/** The statement a DSSE payload claims, without checking anything. */
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

/** Checks the report of a /v1/verify answer against the service's published keys (or, lacking them, its own). */
export function checkReport(response: VerifyResponse, serviceKeys: ServiceKeys | null): CheckedReport {
  const published = serviceKeys?.keys.map((key) => key.verifierKey) ?? [];
  const pinned = published.length > 0;
  const keys = pinned ? published : [response.verifierKey];
  const signerCheck: ProofCheck = pinned
    ? published.includes(response.verifierKey)
      ? {
          name: 'signer-key',
          title: 'Signed by a key this service publishes',
          state: 'ok',
          detail: response.keyId,
        }
      : {
          name: 'signer-key',
          title: 'Signed by a key this service publishes',
          state: 'failed',
          detail: `the report names ${response.keyId}, which the service does not publish`,
        }
    : {
        name: 'signer-key',
        title: 'Signed by a key this service publishes',
        state: 'skipped',
        detail: 'the service’s published keys could not be fetched; the key the report names was used',
      };
  let checks: readonly EvidenceCheck[];
  let predicate: EvidencePredicate | null;
  try {
    const verification = verifyEvidence({
      envelope: response.report,
      publicKeys: keys,
      checkpointVerifierKey: keys,
      ...(serviceKeys === null ? {} : { checkpointOrigin: serviceKeys.logOrigin }),
      normalize: normalizeText,
    });
    checks = verification.checks;
    predicate = verification.statement?.predicate ?? claimedPredicate(response.report);
  } catch (error) {
    checks = [
      { name: 'envelope', ok: false, reason: `the signing key is malformed (${(error as Error).message})` },
    ];
    predicate = claimedPredicate(response.report);
  }
  const proofChecks: ProofCheck[] = [
    signerCheck,
    ...checks.map(
      (check): ProofCheck => ({
        name: check.name,
        title: CHECK_TITLES[check.name] ?? check.name,
        state: !check.ok ? 'failed' : check.skipped ? 'skipped' : 'ok',
        detail: check.ok && !check.skipped ? 'holds' : (check.reason ?? ''),
      }),
    ),
  ];
  const signatureOk = checks.find((check) => check.name === 'envelope')?.ok === true;
  return {
    predicate,
    signatureOk,
    pinned,
    allOk: pinned && proofChecks.every((check) => check.state !== 'failed'),
    checks: proofChecks,
  };
}

export interface TokenPiece {
  readonly text: string;
  /** G green, R red (scored); C, S, P, D not scored (no context, special, prompt, repeated pair). */
  readonly status: string;
}

/** The report's text cut into its tokens (`ends` count code points of the normalized text). */
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

export const STATUS_WORDS: Readonly<Record<string, string>> = {
  G: 'green: counts toward the watermark',
  R: 'red: counts against it',
  C: 'not scored: no preceding context',
  S: 'not scored: special token',
  P: 'not scored: repeats the prompt',
  D: 'not scored: repeats an earlier word pair',
};

/** The effective green-list fraction γ the report's p-values use. */
export function gammaOf(predicate: EvidencePredicate): number {
  const parameters = predicate.algorithm.parameters;
  const value = parameters.gammaEffective ?? parameters.gamma;
  return typeof value === 'number' && value > 0 && value < 1 ? value : 0.25;
}

export interface CurvePoint {
  /** Tokens read so far. */
  readonly token: number;
  /** −log10 p of the text up to here. */
  readonly value: number;
}

/** −log10 p of the text read so far, at most `maxPoints` points along it (the CLI's report draws the same). */
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

/** The signed checkpoint's log size and root, for display. */
export function checkpointSummary(checkpoint: string): { origin: string; size: number; root: string } | null {
  try {
    const parsed = parseCheckpoint(checkpoint);
    const root = Array.from(parsed.rootHash, (byte) => byte.toString(16).padStart(2, '0')).join('');
    return { origin: parsed.origin, size: Number(parsed.size), root };
  } catch {
    return null;
  }
}

/** The file `tracemark verify --out` writes, which `tracemark evidence verify|render` read. */
export function reportFile(response: VerifyResponse): string {
  return `${JSON.stringify(
    {
      format: 'tracemark-evidence',
      version: 1,
      keyId: response.keyId,
      verifierKey: response.verifierKey,
      envelope: response.report,
    },
    null,
    2,
  )}\n`;
}
