/**
 * `@tracemark/client/evidence`: signed evidence reports after the API returned them. Save one
 * ({@link evidenceReportFile}, {@link serializeEvidenceReport}), read one back ({@link parseEvidenceReport}),
 * check it offline against the service's published keys ({@link verifyEvidenceReport}), and draw it as a
 * self-contained HTML page ({@link renderEvidenceHtml}; a radioactivity scan gets its own template).
 * Browser-safe: no Node module is imported.
 */

export { normalizeText } from '@tracemark/tokenizers/normalize';
export {
  escapeHtml,
  formatAlpha,
  formatLog10,
  type Headline,
  plainScanVerdict,
  plainVerdict,
  powerOfTen,
  renderEvidenceHtml,
} from './evidence-html.ts';
export {
  type CurvePoint,
  checkpointSummary,
  claimedPredicate,
  detectedPassage,
  evidenceCurve,
  gammaOf,
  STATUS_WORDS,
  type TokenPiece,
  tokenPieces,
} from './evidence-predicate.ts';
export {
  checkTitle,
  EvidenceReportError,
  type EvidenceReportFile,
  type EvidenceReportVerification,
  evidenceReportFile,
  parseEvidenceReport,
  REPORT_FORMAT,
  type ReportCheck,
  serializeEvidenceReport,
  type TrustedKeys,
  trustedKeysOf,
  verifyEvidenceReport,
} from './evidence-report.ts';
export {
  CORPUS_FORMAT,
  type CorpusDescription,
  type CorpusInput,
  corpusDescriptionOf,
  SCAN_EVIDENCE_KIND,
  type ScanEvidence,
  type ScanEvidenceAttribution,
  type ScanEvidenceKey,
  scanEvidenceOf,
} from './scan-evidence.ts';
