/**
 * `tracemark evidence verify REPORT [--text FILE] [--public-key FILE]`: checks a signed evidence report
 * offline (signature, text, checkpoint signature, inclusion proof). `tracemark evidence render REPORT --html
 * OUT`: the report as a self-contained page to read and print (`renderEvidenceHtml` of @tracemark/client,
 * which the console uses too; a radioactivity scan's report gets the scan template).
 *
 * Exit codes of `verify`: 0 every check holds and the signer's key was pinned with --public-key; 1 a check
 * failed (the reason is printed); 2 usage; 3 I/O (a file cannot be read, the report is not a report);
 * 4 every check holds but no key was pinned (the report's own key was used).
 */
import { writeFile } from 'node:fs/promises';
import { renderEvidenceHtml } from '@tracemark/client/evidence';
import type { Command } from 'commander';
import {
  checkTitle,
  EVIDENCE_EXIT,
  type PublicKeys,
  type ReportVerification,
  readBytes,
  readPublicKeys,
  readReport,
  verifyReport,
} from '../evidence-report.ts';
import { CliError, type CliIo, EXIT, printable } from '../io.ts';

interface EvidenceOptions {
  text?: string;
  publicKey?: string;
  json?: boolean;
  html?: string;
}

async function check(report: string, options: EvidenceOptions) {
  const file = await readReport(report);
  const publicKeys: PublicKeys | undefined =
    options.publicKey === undefined ? undefined : await readPublicKeys(options.publicKey);
  const text = options.text === undefined ? undefined : await readBytes(options.text, 'text');
  const verification = verifyReport(file, {
    path: report,
    ...(text === undefined ? {} : { text }),
    ...(publicKeys === undefined ? {} : { publicKeys }),
  });
  return { file, verification };
}

function describeChecks(verification: ReportVerification): string {
  return verification.checks
    .map(
      (entry) =>
        `  ${entry.skipped ? '–' : entry.ok ? '✓' : entry.name === 'signer-key' ? '!' : '✗'} ${checkTitle(entry.name)}: ${printable(entry.detail)}`,
    )
    .join('\n');
}

export function registerEvidence(program: Command, io: CliIo, setExit: (code: number) => void): void {
  const evidence = program
    .command('evidence')
    .description('check or render a signed evidence report, offline');

  evidence
    .command('verify')
    .description('check a report: signature, text, checkpoint signature, inclusion proof')
    .argument('<report>', 'report file from `tracemark verify --out` (or a DSSE envelope)')
    .option('--text <file>', 'the text the report is about (default: the text the report carries)')
    .option(
      '--public-key <file>',
      "the service's verifier key, or its /.well-known/tracemark/keys.json (default: the report's own, not pinned)",
    )
    .option('--json', 'print {"ok","exitCode","reason","checks":[…]}')
    .addHelpText(
      'after',
      '\nExit codes: 0 every check holds with a pinned key; 1 a check failed; 2 usage; 3 I/O or not a report;\n4 every check holds, but the key came from the report itself (pass --public-key to pin it).',
    )
    .action(async (report: string, options: EvidenceOptions) => {
      const { verification } = await check(report, options);
      if (options.json) {
        io.stdout.write(
          `${JSON.stringify({
            ok: verification.ok,
            exitCode: verification.exitCode,
            reason: verification.reason,
            signer: verification.signer,
            checks: verification.checks,
          })}\n`,
        );
      } else {
        const head =
          verification.exitCode === EVIDENCE_EXIT.ok
            ? `${report}: VERIFIED — every check holds, signed by ${verification.signer}`
            : verification.exitCode === EVIDENCE_EXIT.notPinned
              ? `${report}: intact, but the signer is NOT PINNED — ${verification.reason} (pass --public-key keys.json)`
              : `${report}: FAILED — ${verification.reason}`;
        // The report's path, and what the report says of itself (names, reasons), are shown with controls escaped.
        io.stdout.write(`${printable(head)}\n${describeChecks(verification)}\n`);
      }
      setExit(verification.exitCode);
    });

  evidence
    .command('render')
    .description('write the report as a self-contained HTML page to read and print')
    .argument('<report>', 'report file from `tracemark verify --out`')
    .requiredOption('--html <file>', 'where to write the page')
    .option('--text <file>', 'the text the report is about (default: the text the report carries)')
    .option('--public-key <file>', "the service's verifier key or keys.json, to pin the signer")
    .action(async (report: string, options: EvidenceOptions) => {
      const { file, verification } = await check(report, options);
      const html = renderEvidenceHtml(file, verification);
      await writeFile(options.html!, html).catch((error: NodeJS.ErrnoException) => {
        throw new CliError(
          'TM_ERR_IO',
          `${options.html}: cannot write the page (${error.code ?? 'error'})`,
          EXIT.io,
        );
      });
      io.stderr.write(
        `wrote ${printable(options.html!)} (${verification.exitCode === EVIDENCE_EXIT.failed ? `the report did NOT verify: ${printable(verification.reason ?? '')}` : verification.pinned ? 'the report verifies' : 'the report is intact; signer not pinned'})\n`,
      );
      setExit(EXIT.ok);
    });
}
