/**
 * Evidence report files and their offline verification, shared by `tracemark verify` / `tracemark evidence`
 * and the console.
 *
 * A report file is JSON: `{"format":"tracemark-evidence","version":1,"keyId","verifierKey","envelope"}`,
 * where `envelope` is the DSSE envelope exactly as the gateway signed it and `verifierKey` is the key the
 * gateway named when the report was fetched. That key proves the report intact, not who signed it: only a
 * key obtained independently (the service's /.well-known/tracemark/keys.json) pins the signer, and then the
 * key the report names must be that key. Everything else in the file is signed. A bare DSSE envelope is
 * accepted too.
 */
import {
  type DsseEnvelope,
  type EvidenceCheck,
  type EvidencePredicate,
  type EvidenceStatement,
  parseVerifierKey,
  verifyEvidence,
} from '@tracemark/provenance';
import { normalizeText } from '@tracemark/tokenizers/normalize';
import { claimedPredicate } from './evidence-predicate.ts';
import type { ServiceKeys, VerifyResponse } from './types.ts';

/** The `format` of a report file. */
export const REPORT_FORMAT = 'tracemark-evidence';

/** A saved evidence report: what `tracemark verify --out` writes and the console downloads. */
export interface EvidenceReportFile {
  readonly format: typeof REPORT_FORMAT;
  readonly version: 1;
  /** DSSE key id of the signer, and its verifier key as the gateway named it (absent for a bare envelope). */
  readonly keyId?: string;
  readonly verifierKey?: string;
  readonly envelope: DsseEnvelope;
}

/** Why a report file cannot be read or checked at all (as opposed to a check that fails). */
export class EvidenceReportError extends Error {
  override readonly name = 'EvidenceReportError';
  /** `TM_ERR_REPORT`: not a report; `TM_ERR_NO_SIGNING_KEY`: no key to check it with; `TM_ERR_VERIFIER_KEY`: a malformed key. */
  readonly code: 'TM_ERR_REPORT' | 'TM_ERR_NO_SIGNING_KEY' | 'TM_ERR_VERIFIER_KEY';
  constructor(code: EvidenceReportError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * The report file of a /v1/verify answer: the signed envelope with the signer the gateway named.
 * @example
 * ```ts
 * await writeFile('report.json', serializeEvidenceReport(evidenceReportFile(await client.verify(text))));
 * ```
 */
export function evidenceReportFile(
  response: Pick<VerifyResponse, 'keyId' | 'verifierKey' | 'report'>,
): EvidenceReportFile {
  return {
    format: REPORT_FORMAT,
    version: 1,
    keyId: response.keyId,
    verifierKey: response.verifierKey,
    envelope: response.report,
  };
}

/** The report file's text: JSON, two-space indented, with a final newline. */
export function serializeEvidenceReport(report: EvidenceReportFile): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A report from its JSON text (a report file or a bare DSSE envelope). Only its shape is checked here,
 * not its signature: that is {@link verifyEvidenceReport}.
 * @throws EvidenceReportError (`TM_ERR_REPORT`) naming what is wrong
 */
export function parseEvidenceReport(text: string): EvidenceReportFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new EvidenceReportError('TM_ERR_REPORT', 'not a report (not valid JSON)');
  }
  if (isRecord(value) && typeof value.payloadType === 'string') {
    return { format: REPORT_FORMAT, version: 1, envelope: value as unknown as DsseEnvelope };
  }
  if (!isRecord(value) || value.format !== REPORT_FORMAT || !isRecord(value.envelope)) {
    throw new EvidenceReportError(
      'TM_ERR_REPORT',
      `not a report (expected {"format":"${REPORT_FORMAT}",…} or a DSSE envelope)`,
    );
  }
  if (value.version !== 1) {
    throw new EvidenceReportError(
      'TM_ERR_REPORT',
      `report version ${String(value.version)} is not supported`,
    );
  }
  // Every field is required and nothing else is allowed, so no byte of the file goes unchecked.
  const fields = Object.keys(value).sort().join(',');
  if (fields !== 'envelope,format,keyId,verifierKey,version') {
    throw new EvidenceReportError(
      'TM_ERR_REPORT',
      `a report has exactly the fields envelope, format, keyId, verifierKey and version (found ${fields})`,
    );
  }
  for (const field of ['keyId', 'verifierKey'] as const) {
    if (typeof value[field] !== 'string') {
      throw new EvidenceReportError('TM_ERR_REPORT', `${field} must be a string`);
    }
  }
  return value as unknown as EvidenceReportFile;
}

/** Keys trusted to have signed reports and checkpoints, obtained independently of the report. */
export interface TrustedKeys {
  /** Verifier key strings, `<name>+<hash>+<base64>`. */
  readonly keys: readonly string[];
  /** The issuance log's origin, when known (keys.json names it). */
  readonly origin?: string;
}

/** The trusted keys of a service, from its published /.well-known/tracemark/keys.json. */
export function trustedKeysOf(serviceKeys: Pick<ServiceKeys, 'keys' | 'logOrigin'>): TrustedKeys {
  return { keys: serviceKeys.keys.map((key) => key.verifierKey), origin: serviceKeys.logOrigin };
}

/** One check of a report: `signer-key`, then the checks of `verifyEvidence` in their order. */
export interface ReportCheck {
  readonly name: string;
  readonly ok: boolean;
  /** The check did not apply (no text given, no issuance match). */
  readonly skipped: boolean;
  /** `holds`, or why it failed or was skipped. */
  readonly detail: string;
}

/** The outcome of {@link verifyEvidenceReport}. */
export interface EvidenceReportVerification {
  /**
   * `verified`: every check holds and the signer is a trusted key; `not-pinned`: every check holds, but
   * only under the key the report names itself; `failed`: a check failed (see `reason`).
   */
  readonly status: 'verified' | 'not-pinned' | 'failed';
  /** `status` is `verified`. */
  readonly ok: boolean;
  /** Trusted keys were given. */
  readonly pinned: boolean;
  readonly checks: readonly ReportCheck[];
  /** The first failure (or, not pinned, what that means) in plain words; null when verified. */
  readonly reason: string | null;
  /** The signed statement, once the signature and the statement's shape hold. */
  readonly statement: EvidenceStatement | null;
  /** The predicate as signed, or, when the signature failed, as the payload claims (unverified). */
  readonly predicate: EvidencePredicate | null;
  /** The envelope's signature holds under the keys used. */
  readonly signatureOk: boolean;
  /** The id (`<name>+<hash>`) of the key the report was checked with. */
  readonly signer: string | null;
}

const CHECK_TITLES: Readonly<Record<EvidenceCheck['name'], string>> = {
  envelope: 'signature of the report',
  statement: 'report format',
  consistency: 'numbers consistent',
  'text-digest': 'text matches the report',
  'checkpoint-signature': 'issuance log checkpoint signature',
  'issuance-inclusion': 'inclusion proof leads to the checkpoint',
  'issuance-record': 'issuance record matches its log entry',
  'issuance-text': 'issued output is this text',
};

/** A check's name in words, lower case: "signature of the report", "signer's key", … */
export function checkTitle(name: string): string {
  return name === 'signer-key' ? "signer's key" : (CHECK_TITLES[name as EvidenceCheck['name']] ?? name);
}

const keyIdOf = (verifierKey: string): string => verifierKey.split('+').slice(0, 2).join('+');

/**
 * Checks a report offline: the signature under the trusted keys (or, without them, the key the report
 * names), the text (given, or carried in the report) against the signed digest and normalized digest,
 * the checkpoint's signature and origin, the inclusion proof against the checkpoint root, and a disclosed
 * issuance record. Never throws for a report that fails a check; it throws only when there is no key to
 * check with, or a key is malformed.
 *
 * @param options.text - the text the report is about (exact bytes or string); default: the text it carries
 * @param options.trustedKeys - keys obtained independently (see {@link trustedKeysOf}); pins the signer
 * @throws EvidenceReportError (`TM_ERR_NO_SIGNING_KEY`, `TM_ERR_VERIFIER_KEY`)
 */
export function verifyEvidenceReport(
  report: EvidenceReportFile,
  options: { readonly text?: string | Uint8Array; readonly trustedKeys?: TrustedKeys } = {},
): EvidenceReportVerification {
  const pinned = options.trustedKeys !== undefined;
  const keys = options.trustedKeys?.keys ?? (report.verifierKey === undefined ? [] : [report.verifierKey]);
  if (keys.length === 0) {
    throw new EvidenceReportError(
      'TM_ERR_NO_SIGNING_KEY',
      'the report names no signing key: check it with the service’s published keys (/.well-known/tracemark/keys.json)',
    );
  }
  let signerNames: string[];
  try {
    signerNames = keys.map((key) => parseVerifierKey(key).name);
  } catch (error) {
    throw new EvidenceReportError(
      'TM_ERR_VERIFIER_KEY',
      `${pinned ? 'a trusted' : "the report's"} verifier key is malformed (${(error as Error).message})`,
    );
  }
  const origin = options.trustedKeys?.origin ?? signerNames[0]!;
  const result = verifyEvidence({
    envelope: report.envelope,
    ...(options.text === undefined ? {} : { text: options.text }),
    publicKeys: keys,
    checkpointVerifierKey: keys,
    checkpointOrigin: origin,
    normalize: normalizeText,
  });
  const signer = keys.map(keyIdOf);
  const named = report.verifierKey === undefined ? undefined : keyIdOf(report.verifierKey);
  const mismatch =
    report.keyId !== undefined && named !== undefined && report.keyId !== named
      ? `the report's keyId ${report.keyId} is not the id of its verifierKey (${named})`
      : report.keyId !== undefined && !report.envelope.signatures?.some((s) => s.keyid === report.keyId)
        ? `the report's keyId ${report.keyId} did not sign its envelope`
        : pinned && report.verifierKey !== undefined && !keys.includes(report.verifierKey)
          ? `the report names the signing key ${named}, not the trusted key (${signer.join(', ')})`
          : undefined;
  const checks: ReportCheck[] = [
    {
      name: 'signer-key',
      ok: pinned && mismatch === undefined,
      skipped: false,
      detail:
        mismatch ??
        (pinned
          ? `pinned: signed by a trusted key, ${signer.join(', ')}`
          : `not pinned: the key named in the report itself (${signer.join(', ')}) was used, which shows the report is intact but not who signed it; check it with the service's published key`),
    },
    ...result.checks.map((check) => ({
      name: check.name,
      ok: check.ok,
      skipped: check.skipped === true,
      detail: check.reason ?? 'holds',
    })),
  ];
  const failure =
    mismatch !== undefined
      ? { name: 'signer-key', reason: mismatch }
      : result.checks.find((check) => !check.ok);
  const status = failure !== undefined ? 'failed' : pinned ? 'verified' : 'not-pinned';
  const statement = result.statement ?? null;
  return {
    status,
    ok: status === 'verified',
    pinned,
    checks,
    reason:
      failure !== undefined
        ? `${checkTitle(failure.name)}: ${failure.reason ?? 'failed'}`
        : pinned
          ? null
          : checks[0]!.detail,
    statement,
    predicate: statement?.predicate ?? claimedPredicate(report.envelope),
    signatureOk: result.checks.find((check) => check.name === 'envelope')?.ok === true,
    signer: signer[0] ?? null,
  };
}
