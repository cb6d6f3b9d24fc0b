/**
 * Evidence report files and their offline verification, shared by `tracemark verify` (which saves them) and
 * `tracemark evidence verify|render` (which check them without any network).
 *
 * A report file is JSON: `{"format":"tracemark-evidence","version":1,"keyId","verifierKey","envelope"}`,
 * where `envelope` is the DSSE envelope exactly as the gateway signed it and `verifierKey` is the key the
 * server named when the report was fetched. That key proves the report intact, not who signed it: only a key
 * obtained independently (`--public-key`, from /.well-known/tracemark/keys.json) pins the signer, and then the
 * key the report names must be that key. Everything else in the file is signed. A bare DSSE envelope is
 * accepted too.
 */
import { readFile } from 'node:fs/promises';
import {
  type DsseEnvelope,
  type EvidenceCheck,
  type EvidenceStatement,
  ProvenanceError,
  parseVerifierKey,
  verifyEvidence,
} from '@tracemark/provenance';
import { normalizeText } from '@tracemark/tokenizers';
import { CliError, EXIT } from './io.ts';

export const REPORT_FORMAT = 'tracemark-evidence';

export interface ReportFile {
  readonly format: typeof REPORT_FORMAT;
  readonly version: 1;
  /** DSSE key id of the signer, and its verifier key as the server named it. */
  readonly keyId?: string;
  readonly verifierKey?: string;
  readonly envelope: DsseEnvelope;
}

/** Exit codes of `tracemark evidence verify`. */
export const EVIDENCE_EXIT: {
  readonly ok: 0;
  readonly failed: 1;
  readonly usage: 2;
  readonly io: 3;
  readonly notPinned: 4;
} = Object.freeze({ ok: 0, failed: 1, usage: 2, io: 3, notPinned: 4 } as const);

async function readText(path: string, what: string): Promise<string> {
  return readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new CliError('TM_ERR_IO', `${path}: cannot read the ${what} (${error.code ?? 'error'})`, EXIT.io);
  });
}

export async function readBytes(path: string, what: string): Promise<Uint8Array> {
  const buffer = await readFile(path).catch((error: NodeJS.ErrnoException) => {
    throw new CliError('TM_ERR_IO', `${path}: cannot read the ${what} (${error.code ?? 'error'})`, EXIT.io);
  });
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads a report file (or a bare DSSE envelope). Only its shape is checked here, not its signature. */
export async function readReport(path: string): Promise<ReportFile> {
  return parseReport(await readText(path, 'report'), path);
}

/** A report from its JSON text; throws a CliError (exit 3) naming what is wrong. */
export function parseReport(text: string, path = 'report'): ReportFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CliError('TM_ERR_REPORT', `${path}: not a report (not valid JSON)`, EXIT.io);
  }
  if (isRecord(value) && typeof value.payloadType === 'string') {
    return { format: REPORT_FORMAT, version: 1, envelope: value as unknown as DsseEnvelope };
  }
  if (!isRecord(value) || value.format !== REPORT_FORMAT || !isRecord(value.envelope)) {
    throw new CliError(
      'TM_ERR_REPORT',
      `${path}: not a report (expected {"format":"${REPORT_FORMAT}",…} or a DSSE envelope)`,
      EXIT.io,
    );
  }
  if (value.version !== 1) {
    throw new CliError(
      'TM_ERR_REPORT',
      `${path}: report version ${String(value.version)} is not supported`,
      EXIT.io,
    );
  }
  // Every field is required and nothing else is allowed, so no byte of the file goes unchecked.
  const fields = Object.keys(value).sort().join(',');
  if (fields !== 'envelope,format,keyId,verifierKey,version') {
    throw new CliError(
      'TM_ERR_REPORT',
      `${path}: a report has exactly the fields envelope, format, keyId, verifierKey and version (found ${fields})`,
      EXIT.io,
    );
  }
  for (const field of ['keyId', 'verifierKey'] as const) {
    if (typeof value[field] !== 'string') {
      throw new CliError('TM_ERR_REPORT', `${path}: ${field} must be a string`, EXIT.io);
    }
  }
  return value as unknown as ReportFile;
}

export interface PublicKeys {
  /** Verifier key strings. */
  readonly keys: readonly string[];
  /** The log's origin, when the file named it (keys.json). */
  readonly origin?: string;
}

/**
 * A public key file: a verifier key string (`<name>+<hash>+<base64>`, one per line), or the JSON of
 * GET /.well-known/tracemark/keys.json.
 */
export async function readPublicKeys(path: string): Promise<PublicKeys> {
  const text = (await readText(path, 'public key')).trim();
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

export interface ReportCheck {
  /** `signer-key`, then the checks of `verifyEvidence` in their order. */
  readonly name: string;
  readonly ok: boolean;
  readonly skipped: boolean;
  readonly detail: string;
}

export interface ReportVerification {
  /** Every check holds (skipped ones included) and the signer's key was pinned. */
  readonly ok: boolean;
  readonly pinned: boolean;
  readonly exitCode: number;
  readonly checks: readonly ReportCheck[];
  /** The first failure, in plain words; null when everything holds. */
  readonly reason: string | null;
  readonly statement: EvidenceStatement | null;
  /** The signer's key id as checked. */
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

export function checkTitle(name: string): string {
  return name === 'signer-key' ? "signer's key" : (CHECK_TITLES[name as EvidenceCheck['name']] ?? name);
}

/**
 * Checks a report offline: the signature under the pinned key (or, unpinned, the key the report names), the
 * text (given, or carried in the report) against the signed digest and normalized digest, the checkpoint's
 * signature and origin, the inclusion proof against the checkpoint root, and a disclosed record.
 */
export function verifyReport(
  report: ReportFile,
  options: { readonly text?: Uint8Array; readonly publicKeys?: PublicKeys },
): ReportVerification {
  const pinned = options.publicKeys !== undefined;
  const keys = options.publicKeys?.keys ?? (report.verifierKey === undefined ? [] : [report.verifierKey]);
  if (keys.length === 0) {
    throw new CliError(
      'TM_ERR_USAGE',
      'the report names no signing key: pass --public-key FILE (the service’s /.well-known/tracemark/keys.json)',
      EXIT.usage,
    );
  }
  let signerNames: string[];
  try {
    signerNames = keys.map((key) => parseVerifierKey(key).name);
  } catch (error) {
    throw new CliError(
      'TM_ERR_REPORT',
      `the report's verifier key is malformed (${(error as Error).message})`,
      EXIT.io,
    );
  }
  const origin = options.publicKeys?.origin ?? signerNames[0]!;
  const result = verifyEvidence({
    envelope: report.envelope,
    ...(options.text === undefined ? {} : { text: options.text }),
    publicKeys: keys,
    checkpointVerifierKey: keys,
    checkpointOrigin: origin,
    normalize: normalizeText,
  });
  const signer = keys.map((key) => key.split('+').slice(0, 2).join('+'));
  const named = report.verifierKey?.split('+').slice(0, 2).join('+');
  const mismatch =
    report.keyId !== undefined && named !== undefined && report.keyId !== named
      ? `the report's keyId ${report.keyId} is not the id of its verifierKey (${named})`
      : report.keyId !== undefined && !report.envelope.signatures?.some((s) => s.keyid === report.keyId)
        ? `the report's keyId ${report.keyId} did not sign its envelope`
        : pinned && report.verifierKey !== undefined && !keys.includes(report.verifierKey)
          ? `the report names the signing key ${named}, not the pinned key (${signer.join(', ')})`
          : undefined;
  const checks: ReportCheck[] = [
    {
      name: 'signer-key',
      ok: pinned && mismatch === undefined,
      skipped: false,
      detail:
        mismatch ??
        (pinned
          ? `pinned with --public-key: ${signer.join(', ')}`
          : `not pinned: the key named in the report itself (${signer.join(', ')}) was used, which shows the report is intact but not who signed it; pass --public-key with the service's published key`),
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
  const exitCode =
    failure !== undefined ? EVIDENCE_EXIT.failed : pinned ? EVIDENCE_EXIT.ok : EVIDENCE_EXIT.notPinned;
  return {
    ok: exitCode === EVIDENCE_EXIT.ok,
    pinned,
    exitCode,
    checks,
    reason:
      failure !== undefined
        ? `${checkTitle(failure.name)}: ${failure.reason ?? 'failed'}`
        : pinned
          ? null
          : checks[0]!.detail,
    statement: result.statement ?? null,
    signer: signer[0] ?? null,
  };
}
