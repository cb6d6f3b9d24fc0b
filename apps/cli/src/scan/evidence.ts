/**
 * `tracemark scan --evidence OUT`: the scan as a signed evidence report, in the provenance format
 * (docs/decisions/2026-11-22-provenance.md): a report file `{format, version, keyId, verifierKey,
 * envelope}` whose DSSE envelope holds an in-toto Statement with the evidence predicate, so that
 * `tracemark evidence verify` checks it like any other report.
 *
 * The subject. A scan examines a corpus, not one text, so the subject is the corpus description: the
 * canonical JSON (RFC 8785, `canonicalJson` of @tracemark/provenance) of
 *
 *   {"format":"tracemark-corpus","version":1,
 *    "inputs":[{"path","bytes","sha256"}, …],        // every file read, in the order read
 *    "field","promptField","supervision"}             // how it was read, and the issued outputs used
 *
 * `field` and `promptField` are the --field and --prompt-field given; without them, the rules read
 * instead: DEFAULT_FIELD_RULE and DEFAULT_PROMPT_FIELD_RULE; promptField null with --no-prompt-field.
 *
 * and its SHA-256 is the subject digest. The description is carried as `predicate.text.content`
 * (normalization `none`), so the report can be checked on its own: the content hashes to the subject,
 * and each input's SHA-256 can be compared with the files. Directories are expanded to their files in
 * sorted order; stdin cannot be described and is refused.
 *
 * The predicate is the evidence predicate: `detection` carries the strongest key's numbers (Holm
 * across the keys tested; verdict radioactive → detected, not_radioactive → not-detected,
 * insufficient → inconclusive), `algorithm.keyIds` every key tested (ids only), `calibration.reference`
 * the fake-key calibration in words, `segments` nothing (passages span documents), `issuance` null,
 * and `scan` the rest of the scan: verdict and reason, per-key numbers, fake-key rank and uniformity
 * test, dose, the issued outputs used, and the attribution when asked for. The shapes of the description and
 * of `scan` are those `@tracemark/client/evidence` reads (`CorpusDescription`, `ScanEvidence`), so that
 * `tracemark evidence render` and the console draw a scan with its own template.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import {
  CORPUS_FORMAT,
  type CorpusDescription,
  type CorpusInput,
  SCAN_EVIDENCE_KIND,
  type ScanEvidence,
} from '@tracemark/client/evidence';
import type { WatermarkKey } from '@tracemark/core';
import type { ScanReport } from '@tracemark/extraction';
import {
  canonicalJson,
  type EvidencePredicate,
  type EvidenceVerdict,
  type JsonValue,
  parseSignerKey,
  type SigningKey,
  sha256Hex,
  signEvidence,
} from '@tracemark/provenance';
import { REPORT_FORMAT, type ReportFile } from '../evidence-report.ts';
import { CliError, EXIT } from '../io.ts';
import type { Attribution } from './attribution.ts';

const VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

export { CORPUS_FORMAT, type CorpusDescription, type CorpusInput };

/** The corpus description's `field` when --field was not given (inputs.ts DEFAULT_TEXT_FIELDS). */
export const DEFAULT_FIELD_RULE = 'text, else output';
/** Its `promptField` when --prompt-field was not given (inputs.ts DEFAULT_PROMPT_FIELD). */
export const DEFAULT_PROMPT_FIELD_RULE = 'prompt, when a record has it';

export const SCAN_LIMITATIONS: readonly string[] = Object.freeze([
  'The test is of the corpus as described: its files, read in this order, with these fields.',
  'Radioactivity shows that the corpus (or the model sampled to make it) carries the watermark key’s bias; it does not say how the watermarked text was obtained.',
  'Text that quotes or copies watermarked outputs is radioactive too; pairs found in the prompts were excluded, other quotations were not.',
  'The absence of radioactivity bounds the dose of watermarked training text (see scan.keys[].doseUpperBound); it does not prove that none was used.',
  'Only the watermark keys listed were tested; the fake keys derive from a public label and calibrate the test on this corpus.',
  'Attribution to accounts rests on the windows issued to each account alone; a student that generalizes beyond its training windows can blur it.',
]);

async function filesOf(path: string): Promise<string[]> {
  const info = await stat(path).catch(() => null);
  if (info === null)
    throw new CliError('TM_ERR_IO', `${path}: cannot read it to describe the corpus`, EXIT.io);
  if (!info.isDirectory()) return [path];
  const entries = (await readdir(path)).sort();
  const files: string[] = [];
  for (const entry of entries) files.push(...(await filesOf(join(path, entry))));
  return files;
}

/** The corpus description (files hashed in the order given, directories in sorted order). */
export async function describeCorpus(
  paths: readonly string[],
  read: { readonly field: string; readonly promptField: string | null },
  supervision: CorpusDescription['supervision'],
): Promise<CorpusDescription> {
  if (paths.length === 0 || paths.includes('-')) {
    throw new CliError(
      'TM_ERR_USAGE',
      '--evidence needs the corpus as files (stdin cannot be described in the report)',
      EXIT.usage,
    );
  }
  const inputs: CorpusInput[] = [];
  for (const path of paths) {
    for (const file of await filesOf(path)) {
      const bytes = await readFile(file);
      inputs.push({
        path: file,
        bytes: bytes.byteLength,
        sha256: createHash('sha256').update(bytes).digest('hex'),
      });
    }
  }
  return {
    format: CORPUS_FORMAT,
    version: 1,
    inputs,
    field: read.field,
    promptField: read.promptField,
    supervision,
  };
}

const VERDICT: Record<ScanReport['verdict'], EvidenceVerdict> = {
  radioactive: 'detected',
  not_radioactive: 'not-detected',
  insufficient: 'inconclusive',
};

/** The evidence predicate of a scan. */
export function scanPredicate(
  report: ScanReport,
  keys: readonly WatermarkKey[],
  description: CorpusDescription,
  attribution: Attribution | null,
  verifiedAt: Date = new Date(),
): EvidencePredicate & { readonly scan: JsonValue } {
  const content = canonicalJson(description);
  const strongest =
    report.keys.find((scan) => scan.keyId === report.matchedKeyId) ??
    [...report.keys].sort((a, b) => a.log10PAdjusted - b.log10PAdjusted)[0]!;
  const key = keys.find((k) => k.keyId === strongest.keyId) ?? keys[0]!;
  const c = strongest.calibration;
  let verdict = VERDICT[report.verdict];
  // The evidence format ties not-detected to p > α; a scan can also rule out a dose at higher p.
  const threshold = Math.log10(report.alpha);
  if (verdict === 'not-detected' && strongest.log10PAdjusted <= threshold) verdict = 'inconclusive';
  if (verdict === 'detected' && strongest.log10PAdjusted > threshold) verdict = 'inconclusive';
  const summary: ScanEvidence = {
    kind: SCAN_EVIDENCE_KIND,
    verdict: report.verdict,
    reason: report.reason,
    supervised: report.supervised,
    issued: report.issued,
    numDocuments: report.numDocuments,
    numTokens: report.numTokens,
    numPromptTokens: report.numPromptTokens,
    minimumDose: report.minimumDose,
    missRate: report.missRate,
    fakeKeys: report.fakeKeys,
    keys: report.keys.map((k) => ({
      keyId: k.keyId,
      scheme: k.scheme,
      contextWidth: k.contextWidth,
      gamma: k.gamma,
      numScored: k.numScored,
      numGreen: k.numGreen,
      effect: k.effect,
      effectInterval: k.effectInterval,
      z: k.z,
      log10P: k.log10P,
      log10PAdjusted: k.log10PAdjusted,
      calibration: k.calibration,
      dose: k.dose,
      doseUpperBound: k.doseUpperBound,
      verdict: k.verdict,
      reason: k.reason,
    })),
    attribution,
  };
  const scan = JSON.parse(JSON.stringify(summary)) as JsonValue;
  return {
    text: { sha256: sha256Hex(content), normalization: 'none', content },
    tokenizer: { name: key.tokenizer },
    algorithm: {
      name: `tracemark-v1/${key.scheme.name}`,
      parameters: {
        contextWidth: key.scheme.contextWidth,
        gamma: key.scheme.gamma,
        delta: key.scheme.delta,
      },
      keyIds: keys.map((k) => k.keyId),
    },
    software: { name: '@tracemark/cli', version: VERSION },
    detection: {
      keyId: strongest.keyId,
      numScored: strongest.numScored,
      numGreen: strongest.numGreen,
      z: strongest.z,
      log10P: Math.min(0, strongest.log10P),
      log10PCorrected: Math.min(0, Math.max(strongest.log10PAdjusted, strongest.log10P)),
      correction: 'holm',
      numTests: keys.length,
      alpha: report.alpha,
      verdict,
    },
    calibration: {
      reference:
        c.fakeKeys > 0
          ? `${c.fakeKeys} fake keys derived from the public label "${c.seed}", scored on the same deduplicated tape: the true key ranks ${c.rank} (empirical p = ${c.empiricalPValue.toPrecision(3)}); Kolmogorov–Smirnov test of the fake keys' p-values against uniform: p = ${c.ksPValue.toPrecision(3)} (${c.uniform === null ? 'too few fake keys for a verdict' : c.uniform ? 'uniform' : 'NOT uniform: verdict withheld'})`
          : 'no fake keys: uncalibrated, no verdict',
    },
    segments: [],
    issuance: null,
    limitations: [...SCAN_LIMITATIONS],
    verifiedAt: verifiedAt.toISOString(),
    scan,
  };
}

/** The signing key: `--signing-key FILE`, or `<data dir>/log-signing-key`. */
export async function readSigningKey(options: {
  readonly signingKey?: string;
  readonly dataDir?: string;
}): Promise<SigningKey> {
  const path =
    options.signingKey ??
    (options.dataDir === undefined ? undefined : join(options.dataDir, 'log-signing-key'));
  if (path === undefined) {
    throw new CliError(
      'TM_ERR_USAGE',
      '--evidence needs a signing key: --signing-key FILE or --data-dir DIR (its log-signing-key)',
      EXIT.usage,
    );
  }
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new CliError(
      'TM_ERR_IO',
      `${path}: cannot read the signing key (${error.code ?? 'error'})`,
      EXIT.io,
    );
  });
  try {
    return parseSignerKey(text.trim());
  } catch (error) {
    throw new CliError(
      'TM_ERR_KEY_FILE',
      `${path}: not a signing key (${(error as Error).message})`,
      EXIT.io,
    );
  }
}

/** Signs the predicate; the report file's JSON text. */
export function signedScanReport(predicate: EvidencePredicate, signer: SigningKey): string {
  const envelope = signEvidence(predicate, signer, { subjectName: 'corpus' });
  const file: ReportFile = {
    format: REPORT_FORMAT,
    version: 1,
    keyId: signer.keyId,
    verifierKey: signer.verifierKey,
    envelope,
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}
