/**
 * Evidence report files on disk, for `tracemark verify` (which saves them) and `tracemark evidence
 * verify|render` (which check them without any network). The format and its offline check are those of
 * `@tracemark/client/evidence` (shared with the console); this module reads files and turns their failures
 * into the CLI's errors and exit codes.
 */
import {
  checkTitle,
  EvidenceReportError,
  type EvidenceReportFile,
  type EvidenceReportVerification,
  parseEvidenceReport,
  REPORT_FORMAT,
  type ReportCheck,
  type TrustedKeys,
  verifyEvidenceReport,
} from '@tracemark/client/evidence';
import { ProvenanceError, parseVerifierKey } from '@tracemark/provenance';
import { CliError, EXIT, readFileBytes, readTextFile } from './io.ts';

export { checkTitle, REPORT_FORMAT, type ReportCheck };

/** A report file: `{"format":"tracemark-evidence","version":1,"keyId","verifierKey","envelope"}`. */
export type ReportFile = EvidenceReportFile;

/** Exit codes of `tracemark evidence verify`. */
export const EVIDENCE_EXIT: {
  readonly ok: 0;
  readonly failed: 1;
  readonly usage: 2;
  readonly io: 3;
  readonly notPinned: 4;
} = Object.freeze({ ok: 0, failed: 1, usage: 2, io: 3, notPinned: 4 } as const);

export async function readBytes(path: string, what: string): Promise<Uint8Array> {
  const buffer = await readFileBytes(path, what);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads a report file (or a bare DSSE envelope). Only its shape is checked here, not its signature. */
export async function readReport(path: string): Promise<ReportFile> {
  return parseReport(await readTextFile(path, 'report'), path);
}

/** A report from its JSON text; throws a CliError (exit 3) naming what is wrong. */
export function parseReport(text: string, path = 'report'): ReportFile {
  try {
    return parseEvidenceReport(text);
  } catch (error) {
    if (error instanceof EvidenceReportError) {
      throw new CliError(error.code, `${path}: ${error.message}`, EXIT.io);
    }
    throw error;
  }
}

/** Verifier keys given with --public-key. */
export type PublicKeys = TrustedKeys;

/**
 * A public key file: a verifier key string (`<name>+<hash>+<base64>`, one per line), or the JSON of
 * GET /.well-known/tracemark/keys.json.
 */
export async function readPublicKeys(path: string): Promise<PublicKeys> {
  const text = (await readTextFile(path, 'public key')).trim();
  let keys: string[];
  let origin: string | undefined;
  if (text.startsWith('{')) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new CliError('TM_ERR_PUBLIC_KEY', `${path}: not valid JSON`, EXIT.usage);
    }
    const list = isRecord(value) && Array.isArray(value.keys) ? value.keys : [];
    keys = list.filter(isRecord).map((key) => String(key.verifierKey));
    if (isRecord(value) && typeof value.logOrigin === 'string') origin = value.logOrigin;
  } else {
    keys = text
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
  }
  if (keys.length === 0)
    throw new CliError('TM_ERR_PUBLIC_KEY', `${path}: no verifier key found`, EXIT.usage);
  for (const key of keys) {
    try {
      parseVerifierKey(key);
    } catch (error) {
      const message = error instanceof ProvenanceError ? error.message : String(error);
      throw new CliError('TM_ERR_PUBLIC_KEY', `${path}: not a verifier key (${message})`, EXIT.usage);
    }
  }
  return { keys, ...(origin === undefined ? {} : { origin }) };
}

/** The shared verification, with the exit code of `tracemark evidence verify`. */
export interface ReportVerification extends EvidenceReportVerification {
  readonly exitCode: number;
}

/**
 * Checks a report offline (`verifyEvidenceReport` of @tracemark/client/evidence): the signature under the
 * pinned key (or, unpinned, the key the report names), the text (given, or carried in the report), the
 * checkpoint's signature and origin, the inclusion proof, and a disclosed record.
 */
export function verifyReport(
  report: ReportFile,
  options: { readonly text?: Uint8Array; readonly publicKeys?: PublicKeys; readonly path?: string },
): ReportVerification {
  let verification: EvidenceReportVerification;
  try {
    verification = verifyEvidenceReport(report, {
      ...(options.text === undefined ? {} : { text: options.text }),
      ...(options.publicKeys === undefined ? {} : { trustedKeys: options.publicKeys }),
    });
  } catch (error) {
    if (!(error instanceof EvidenceReportError)) throw error;
    throw error.code === 'TM_ERR_NO_SIGNING_KEY'
      ? new CliError(
          'TM_ERR_USAGE',
          'the report names no signing key: pass --public-key FILE (the service’s /.well-known/tracemark/keys.json)',
          EXIT.usage,
        )
      : new CliError(
          'TM_ERR_REPORT',
          options.path === undefined ? error.message : `${options.path}: ${error.message}`,
          EXIT.io,
        );
  }
  const exitCode =
    verification.status === 'failed'
      ? EVIDENCE_EXIT.failed
      : verification.status === 'verified'
        ? EVIDENCE_EXIT.ok
        : EVIDENCE_EXIT.notPinned;
  return { ...verification, exitCode };
}
