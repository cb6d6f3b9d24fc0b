/**
 * `tracemark verify FILE --server URL --out REPORT`: asks a tracemark gateway (POST /v1/verify, API key from
 * TRACEMARK_API_KEY, through @tracemark/client) whether it issued the text and whether it carries the
 * watermark, prints the verdict, and saves the signed evidence report. Exit codes: 0 done; 1 a watermark
 * was found and --fail-on-detect was given; 2 usage (no API key, bad URL); 3 I/O, network or server errors.
 */
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import {
  CLIENT_ERROR_CODES,
  createClient,
  isTracemarkApiError,
  type TracemarkApiError,
  type VerifyResponse,
} from '@tracemark/client';
import { evidenceReportFile, serializeEvidenceReport } from '@tracemark/client/evidence';
import type { IssuanceRecord } from '@tracemark/provenance';
import { normalizeText } from '@tracemark/tokenizers';
import type { Command } from 'commander';
import { readBytes, verifyReport } from '../evidence-report.ts';
import { CliError, type CliIo, EXIT } from '../io.ts';
import { formatLog10 } from '../render.ts';

interface VerifyCommandOptions {
  server?: string;
  out?: string;
  json?: boolean;
  failOnDetect?: boolean;
  timeout: string;
}

const WATERMARK_WORDS = {
  watermarked: 'watermark DETECTED',
  not_watermarked: 'watermark not detected',
  insufficient: 'inconclusive (too little text to decide)',
} as const;

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/**
 * The gateway matches exactly on the SHA-256 of the text as sent and normalized, so a copy that only
 * gained trailing whitespace (the newline an editor adds) comes back as a near-duplicate. Where the
 * record is disclosed (and has checked out against the log), its hashes show whether the text without
 * its trailing whitespace is the issued output itself.
 */
function issuedApartFromTrailingWhitespace(text: string, record: IssuanceRecord | undefined): boolean {
  if (record === undefined) return false;
  const trimmed = text.replace(/\s+$/u, '');
  if (trimmed === text) return false;
  return (
    sha256(trimmed) === record.outputSha256 ||
    (record.normalizedOutputSha256 !== null &&
      sha256(normalizeText(trimmed)) === record.normalizedOutputSha256)
  );
}

function serverUrl(value: string | undefined): URL {
  if (value === undefined || value === '') {
    throw new CliError(
      'TM_ERR_USAGE',
      'give the gateway with --server URL (e.g. http://127.0.0.1:8787)',
      EXIT.usage,
    );
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliError('TM_ERR_USAGE', `--server: not a URL: ${value}`, EXIT.usage);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError('TM_ERR_USAGE', '--server must be an http: or https: URL', EXIT.usage);
  }
  return url;
}

/** A failed call in the CLI's terms: network and server errors exit 3, with the gateway's code and reason. */
function cliErrorOf(error: TracemarkApiError, server: URL, timeoutSeconds: number): CliError {
  switch (error.code) {
    case CLIENT_ERROR_CODES.network:
    case CLIENT_ERROR_CODES.aborted:
      return new CliError('TM_ERR_NETWORK', error.message, EXIT.io);
    case CLIENT_ERROR_CODES.timeout:
      return new CliError(
        'TM_ERR_NETWORK',
        `cannot reach ${server.origin} (no answer within ${timeoutSeconds} s)`,
        EXIT.io,
      );
    case CLIENT_ERROR_CODES.badResponse:
      return new CliError(
        'TM_ERR_SERVER',
        `${server.origin} answered ${error.status} with something other than JSON`,
        EXIT.io,
      );
    case CLIENT_ERROR_CODES.http:
      return new CliError(
        'TM_ERR_SERVER',
        `the gateway refused (${error.status}): ${error.message}`,
        EXIT.io,
      );
    default:
      return new CliError(
        error.code,
        `the gateway refused (${error.status} ${error.code}): ${error.message}`,
        EXIT.io,
      );
  }
}

export function registerVerify(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('verify')
    .description(
      'ask a tracemark gateway whether it issued a text and whether it is watermarked; save the signed report',
    )
    .argument('<file>', 'the text to verify (exact bytes); - reads stdin')
    .option('--server <url>', 'the gateway, e.g. http://127.0.0.1:8787 (TRACEMARK_SERVER)')
    .option(
      '--out <report>',
      'save the signed evidence report here (JSON; check it with `tracemark evidence verify`)',
    )
    .option('--fail-on-detect', 'exit with code 1 when the watermark is detected')
    .option('--timeout <seconds>', 'give up on the server after this long', '60')
    .option('--json', 'print the server’s answer as JSON')
    .addHelpText(
      'after',
      '\nThe API key (scope verify) is read from TRACEMARK_API_KEY.\nA copy that differs from an issued output only by trailing whitespace is reported as an exact match\nwith a note (JSON: exactIgnoringTrailingWhitespace) when the record is disclosed to the key; the\nsigned report, made by the gateway, still says near-duplicate.\nExit codes: 0 done, 1 watermark found with --fail-on-detect, 2 usage, 3 I/O, network or server error.',
    )
    .action(async (file: string, options: VerifyCommandOptions) => {
      const server = serverUrl(options.server ?? io.env.TRACEMARK_SERVER);
      const apiKey = io.env.TRACEMARK_API_KEY;
      if (apiKey === undefined || apiKey.trim() === '') {
        throw new CliError(
          'TM_ERR_USAGE',
          'set TRACEMARK_API_KEY to an API key with the verify scope',
          EXIT.usage,
        );
      }
      const timeoutSeconds = Number(options.timeout);
      if (!(timeoutSeconds > 0 && timeoutSeconds <= 3600)) {
        throw new CliError(
          'TM_ERR_USAGE',
          '--timeout must be a number of seconds from 0 to 3600',
          EXIT.usage,
        );
      }
      const bytes = file === '-' ? await readStdin(io) : await readBytes(file, 'text');
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
      } catch {
        throw new CliError('TM_ERR_INPUT', `${file}: not valid UTF-8 text`, EXIT.io);
      }

      let client: ReturnType<typeof createClient>;
      try {
        client = createClient({ baseUrl: server, apiKey, timeoutMs: timeoutSeconds * 1000 });
      } catch (error) {
        // A malformed key or a URL with credentials; the message never repeats the key.
        throw new CliError('TM_ERR_USAGE', (error as Error).message, EXIT.usage);
      }
      let result: VerifyResponse;
      try {
        result = await client.verify(text);
      } catch (error) {
        if (isTracemarkApiError(error)) throw cliErrorOf(error, server, timeoutSeconds);
        throw error;
      }
      const report = evidenceReportFile(result);
      // The server's own answer must hold up before it is saved as evidence.
      const check = verifyReport(report, { text: bytes });
      const failed = check.checks.find((entry) => !entry.ok && entry.name !== 'signer-key');
      if (failed !== undefined) {
        throw new CliError('TM_ERR_REPORT', `the gateway's report does not verify: ${check.reason}`, EXIT.io);
      }
      const trailingWhitespaceOnly =
        result.issuance?.match === 'near-duplicate' &&
        issuedApartFromTrailingWhitespace(text, check.statement?.predicate.issuance?.record);
      if (options.out !== undefined) {
        await writeFile(options.out, serializeEvidenceReport(report)).catch(
          (error: NodeJS.ErrnoException) => {
            throw new CliError(
              'TM_ERR_IO',
              `${options.out}: cannot write the report (${error.code ?? 'error'})`,
              EXIT.io,
            );
          },
        );
      }
      if (options.json) {
        io.stdout.write(
          `${JSON.stringify({
            ...result,
            ...(trailingWhitespaceOnly ? { exactIgnoringTrailingWhitespace: true } : {}),
            ...(options.out === undefined ? {} : { savedTo: options.out }),
          })}\n`,
        );
      } else {
        const d = result.detection;
        const issuance = result.issuance;
        const lines = [
          `${file}: ${WATERMARK_WORDS[result.verdict]}; ${
            issuance === null
              ? 'not issued by this service (no match)'
              : issuance.match === 'exact'
                ? `ISSUED by this service (exact match, record ${issuance.recordId})`
                : trailingWhitespaceOnly
                  ? `ISSUED by this service (exact match apart from trailing whitespace, record ${issuance.recordId})`
                  : `ISSUED by this service, then edited (near-duplicate of record ${issuance.recordId}, similarity ${issuance.similarity.toFixed(2)})`
          }`,
          '',
          result.summary,
          '',
          `  watermark  ${d.numGreen === null ? `score ${(d.score ?? 0).toFixed(1)} (${d.scheme ?? 'scheme'}) over ${d.numScored} scored` : `${d.numGreen}/${d.numScored} green`} of ${d.numTokens} tokens, z = ${d.z.toFixed(2)}, log10 p = ${formatLog10(d.log10P)}, corrected ${formatLog10(d.log10PAdjusted)} (${d.keysTested} key${d.keysTested === 1 ? '' : 's'}, α = ${d.fpr})`,
          issuance === null
            ? '  issuance   no issued output matches'
            : trailingWhitespaceOnly
              ? `  issuance   exact match apart from trailing whitespace (the signed report says near-duplicate, similarity ${issuance.similarity.toFixed(2)}), record ${issuance.recordId}, log entry ${issuance.leafIndex} of ${issuance.treeSize}`
              : `  issuance   ${issuance.match} match, record ${issuance.recordId}, log entry ${issuance.leafIndex} of ${issuance.treeSize}${issuance.disclosed ? '' : ' (record not disclosed to this key)'}`,
          options.out === undefined
            ? '  report     not saved (give --out REPORT)'
            : `  report     saved to ${options.out}, signed by ${result.keyId}; check it offline with \`tracemark evidence verify ${options.out}\``,
        ];
        io.stdout.write(`${lines.join('\n')}\n`);
      }
      setExit(options.failOnDetect && result.verdict === 'watermarked' ? EXIT.detected : EXIT.ok);
    });
}

async function readStdin(io: CliIo): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin)
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  const buffer = Buffer.concat(chunks);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}
