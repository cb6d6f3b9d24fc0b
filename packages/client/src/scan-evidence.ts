/**
 * The evidence predicate of a radioactivity scan (`tracemark scan --evidence`), as its producer writes it
 * and the HTML page reads it. A scan's subject is a corpus, not one text: `text.content` is the corpus
 * description (canonical JSON, format `tracemark-corpus`) and `scan` carries the scan's numbers.
 */
import type { EvidencePredicate } from '@tracemark/provenance';
import type { ScanVerdict } from './types.ts';

/** `predicate.scan.kind` of a radioactivity scan. */
export const SCAN_EVIDENCE_KIND = 'radioactivity-scan';
/** `format` of the corpus description a scan report is about. */
export const CORPUS_FORMAT = 'tracemark-corpus';

/** One file the corpus was read from. */
export interface CorpusInput {
  readonly path: string;
  readonly bytes: number;
  /** Lower-case hex SHA-256 of the file. */
  readonly sha256: string;
}

/** The corpus a scan report is about: its files in the order read, and how they were read. */
export interface CorpusDescription {
  readonly format: typeof CORPUS_FORMAT;
  readonly version: 1;
  readonly inputs: readonly CorpusInput[];
  /** The field the text was read from (or the rule used). */
  readonly field: string;
  /** The field prompts were read from; null when prompts were not read. */
  readonly promptField: string | null;
  /** The issued outputs whose windows the scan was restricted to, if any. */
  readonly supervision: {
    readonly source: string;
    readonly account: string | null;
    readonly numOutputs: number;
  } | null;
}

/** One key's corpus-wide numbers. */
export interface ScanEvidenceKey {
  readonly keyId: string;
  readonly scheme: string;
  readonly contextWidth: number;
  readonly gamma: number;
  /** Distinct (seed, token) pairs scored, corpus-wide. */
  readonly numScored: number;
  readonly numGreen: number;
  /** Green fraction − γ, with a 95% Wilson interval. */
  readonly effect: number;
  readonly effectInterval: readonly number[];
  readonly z: number;
  readonly log10P: number;
  /** Holm-adjusted across the keys tested. */
  readonly log10PAdjusted: number;
  readonly calibration: {
    readonly fakeKeys: number;
    readonly seed: string;
    readonly rank: number;
    readonly empiricalPValue: number;
    readonly ksStatistic: number;
    readonly ksPValue: number;
    readonly uniform: boolean | null;
    readonly minFakeLog10P?: number;
  };
  /** ρ ≈ (ĝ − γ)/(ĝ_issued − γ), when the issued green fraction is known. */
  readonly dose: {
    readonly estimate: number;
    readonly interval: readonly number[];
    readonly issuedGreenFraction: number;
  } | null;
  /** Doses of watermarked training text at or above this are ruled out. */
  readonly doseUpperBound: number;
  readonly verdict: ScanVerdict;
  readonly reason: string;
}

/** Attribution of the radioactivity to the accounts the outputs were issued to. */
export interface ScanEvidenceAttribution {
  readonly method: string;
  readonly accountsTested: number;
  readonly alpha: number;
  readonly accounts: readonly {
    readonly account: string;
    readonly numOutputs: number;
    readonly numIssuedTokens: number;
    readonly numExclusiveWindows: number;
    readonly numScored: number;
    readonly numGreen: number;
    readonly keyId: string | null;
    readonly log10P: number;
    readonly log10PAdjusted: number;
    readonly attributed: boolean;
  }[];
  readonly attributedTo: readonly string[];
}

/** `predicate.scan` of a radioactivity scan report. */
export interface ScanEvidence {
  readonly kind: typeof SCAN_EVIDENCE_KIND;
  readonly verdict: ScanVerdict;
  readonly reason: string;
  /** Restricted to windows of issued outputs. */
  readonly supervised: boolean;
  readonly issued: { readonly numOutputs: number; readonly numTokens: number } | null;
  readonly numDocuments: number;
  readonly numTokens: number;
  readonly numPromptTokens: number;
  readonly minimumDose: number;
  readonly missRate: number;
  readonly fakeKeys: { readonly count: number; readonly seed: string };
  readonly keys: readonly ScanEvidenceKey[];
  readonly attribution: ScanEvidenceAttribution | null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The scan of a radioactivity scan report; null for a report about one text. */
export function scanEvidenceOf(predicate: EvidencePredicate): ScanEvidence | null {
  const scan = (predicate as EvidencePredicate & { readonly scan?: unknown }).scan;
  return isRecord(scan) && scan.kind === SCAN_EVIDENCE_KIND && Array.isArray(scan.keys)
    ? (scan as unknown as ScanEvidence)
    : null;
}

/** The corpus description a scan report carries as its text; null when it is not one. */
export function corpusDescriptionOf(predicate: EvidencePredicate): CorpusDescription | null {
  const content = predicate.text.content;
  if (content === undefined) return null;
  try {
    const value: unknown = JSON.parse(content);
    return isRecord(value) && value.format === CORPUS_FORMAT && Array.isArray(value.inputs)
      ? (value as unknown as CorpusDescription)
      : null;
  } catch {
    return null;
  }
}
