/**
 * What the page shows of a signed evidence report: the report is checked here, in the browser, with
 * `verifyEvidenceReport` of @tracemark/client/evidence (the check `tracemark evidence verify` makes) against
 * the keys the service publishes, and everything drawn comes from the signed predicate. The helpers that cut
 * the text into tokens and draw the evidence are the client's, shared with `tracemark evidence render`.
 */
import {
  checkTitle,
  EvidenceReportError,
  type EvidenceReportVerification,
  evidenceReportFile,
  renderEvidenceHtml,
  serializeEvidenceReport,
  trustedKeysOf,
  verifyEvidenceReport,
} from '@tracemark/client/evidence';
import type { EvidencePredicate } from '@tracemark/provenance';
import type { ServiceKeys, VerifyResponse } from './api.ts';

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
} from '@tracemark/client/evidence';

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
  /** The shared verification, for the printable page; null when the report could not be checked at all. */
  readonly verification: EvidenceReportVerification | null;
}

const SIGNER_TITLE = 'Signed by a key this service publishes';

const sentenceCase = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1);

/** Checks the report of a /v1/verify answer against the service's published keys (or, lacking them, its own). */
export function checkReport(response: VerifyResponse, serviceKeys: ServiceKeys | null): CheckedReport {
  const report = evidenceReportFile(response);
  let verification: EvidenceReportVerification;
  try {
    verification = verifyEvidenceReport(report, {
      ...(serviceKeys === null ? {} : { trustedKeys: trustedKeysOf(serviceKeys) }),
    });
  } catch (error) {
    // A malformed key: nothing can be checked, and nothing shown can be relied on.
    const reason = error instanceof EvidenceReportError ? error.message : String(error);
    return {
      predicate: null,
      signatureOk: false,
      pinned: serviceKeys !== null,
      allOk: false,
      checks: [{ name: 'envelope', title: 'Signature of the report', state: 'failed', detail: reason }],
      verification: null,
    };
  }
  const checks = verification.checks.map((check): ProofCheck => {
    const state =
      !check.ok && !(check.name === 'signer-key' && verification.status === 'not-pinned')
        ? 'failed'
        : check.skipped || !check.ok
          ? 'skipped'
          : 'ok';
    if (check.name === 'signer-key') {
      return {
        name: check.name,
        title: SIGNER_TITLE,
        state,
        detail:
          state === 'ok'
            ? response.keyId
            : state === 'skipped'
              ? 'the service’s published keys could not be fetched; the key the report names was used'
              : check.detail,
      };
    }
    return { name: check.name, title: sentenceCase(checkTitle(check.name)), state, detail: check.detail };
  });
  return {
    predicate: verification.predicate,
    signatureOk: verification.signatureOk,
    pinned: verification.pinned,
    allOk: verification.status === 'verified',
    checks,
    verification,
  };
}

/** The file `tracemark verify --out` writes, which `tracemark evidence verify|render` read. */
export function reportFile(response: VerifyResponse): string {
  return serializeEvidenceReport(evidenceReportFile(response));
}

/** The report as the self-contained page `tracemark evidence render` writes; null when it could not be checked. */
export function reportPage(response: VerifyResponse, checked: CheckedReport): string | null {
  return checked.verification === null
    ? null
    : renderEvidenceHtml(evidenceReportFile(response), checked.verification);
}
