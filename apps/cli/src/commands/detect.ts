import { readFile, stat } from 'node:fs/promises';
import { parseKeyFile } from '@tracemark/core';
import type { DocumentResult, DocumentSession } from '@tracemark/detection';
import type { Command } from 'commander';
import type { ErrorResult, Job, JobResult, Outcome } from '../detect-engine.ts';
import { type InputFormat, readInputs } from '../inputs.ts';
import { CliError, type CliIo, EXIT } from '../io.ts';
import { collect, parseNumber, parseOpenUnit } from '../options.ts';
import { createRunner, defaultWorkerCount } from '../pool.ts';
import { createProgress } from '../progress.ts';
import { colouredTokens, verdictLine } from '../render.ts';

interface DetectCommandOptions {
  key: string[];
  format?: InputFormat;
  field: string;
  promptField?: string;
  fpr?: number;
  window?: boolean;
  failOnDetect?: boolean;
  json?: boolean;
  quiet?: boolean;
  workers?: number;
}

/** Inputs smaller than this run in the main thread: starting workers would cost more than it saves. */
const WORKER_THRESHOLD_BYTES = 4 * 1024 * 1024;

export function registerDetect(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('detect')
    .description('detect the watermark in files, directories, JSONL or stdin')
    .argument('[paths...]', 'files or directories; - or nothing reads stdin')
    .requiredOption(
      '--key <file>',
      'key file (repeat for several keys or epochs; corrected by Holm)',
      collect,
    )
    .option('--format <format>', 'text or jsonl (default: by file extension, .jsonl/.ndjson are JSONL)')
    .option('--field <name>', 'JSONL field holding the text or the token ids', 'text')
    .option('--prompt-field <name>', 'JSONL field holding the prompt, whose windows are excluded')
    .option('--fpr <alpha>', 'target false-positive rate', parseOpenUnit('--fpr'))
    .option('--window', 'search for a watermarked passage inside longer text (corrected for the search)')
    .option('--fail-on-detect', 'exit with code 1 when a watermark is found')
    .option(
      '--workers <n>',
      'worker threads (default: all cores for inputs over 4 MB)',
      parseNumber('--workers', 0, 64, true),
    )
    .option('--json', 'print {"results":[…],"summary":{…}}')
    .option('--quiet', 'no progress on stderr')
    .action(async (paths: string[], options: DetectCommandOptions) => {
      if (options.format !== undefined && options.format !== 'text' && options.format !== 'jsonl') {
        throw new CliError('TM_ERR_USAGE', '--format must be text or jsonl', EXIT.usage);
      }
      const keyFiles = await Promise.all(
        options.key.map(async (path) => {
          const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
            throw new CliError(
              'TM_ERR_IO',
              `${path}: cannot read key file (${error.code ?? 'error'})`,
              EXIT.io,
            );
          });
          try {
            parseKeyFile(text);
          } catch (error) {
            throw new CliError('TM_ERR_KEY_FILE', `${path}: ${(error as Error).message}`, EXIT.io);
          }
          return text;
        }),
      );
      let inputBytes = 0;
      for (const path of paths) {
        if (path === '-') inputBytes += WORKER_THRESHOLD_BYTES;
        else
          inputBytes += await stat(path).then(
            (s) => (s.isDirectory() ? WORKER_THRESHOLD_BYTES : s.size),
            () => 0,
          );
      }
      if (paths.length === 0) inputBytes += WORKER_THRESHOLD_BYTES;
      const workers = options.workers ?? (inputBytes >= WORKER_THRESHOLD_BYTES ? defaultWorkerCount() : 0);
      let runner: ReturnType<typeof createRunner>;
      try {
        runner = createRunner(
          {
            keyFiles,
            window: options.window === true,
            field: options.field,
            ...(options.fpr === undefined ? {} : { fpr: options.fpr }),
            ...(options.promptField === undefined ? {} : { promptField: options.promptField }),
          },
          workers,
        );
      } catch (error) {
        const code = (error as { code?: string }).code ?? 'TM_ERR_KEY_FILE';
        throw new CliError(
          code,
          (error as Error).message,
          code === 'TM_ERR_TOKENIZER_MISMATCH' ? EXIT.usage : EXIT.io,
        );
      }
      const progress = createProgress(io, options.quiet === true);
      const summary = {
        documents: 0,
        watermarked: 0,
        notWatermarked: 0,
        insufficient: 0,
        errors: 0,
        numTokens: 0,
        bytes: 0,
      };
      const started = performance.now();
      const results: DocumentResult[] = [];
      let firstJson = true;
      if (options.json) io.stdout.write('{"results":[');

      const emit = (outcome: Outcome): void => {
        summary.documents++;
        if ('error' in outcome) {
          summary.errors++;
          if (!options.json) io.stderr.write(`${progress.clear()}error: ${outcome.error.message}\n`);
        } else {
          summary.numTokens += outcome.numTokens;
          if (outcome.verdict === 'watermarked') summary.watermarked++;
          else if (outcome.verdict === 'not_watermarked') summary.notWatermarked++;
          else summary.insufficient++;
          if (!options.json) io.stdout.write(`${progress.clear()}${verdictLine(outcome)}\n`);
          if (results.length < 2) results.push(outcome);
        }
        if (options.json) {
          io.stdout.write(`${firstJson ? '' : ','}\n${JSON.stringify(toJson(outcome))}`);
          firstJson = false;
        }
      };

      type Entry =
        | { kind: 'outcomes'; promise: Promise<JobResult>; bytes: number }
        | {
            kind: 'piece';
            promise: Promise<JobResult>;
            source: string;
            first: boolean;
            last: boolean;
            bytes: number;
            error?: ErrorResult['error'];
          };
      const queue: Entry[] = [];
      // A failing job fails when its turn comes, after the documents before it are out; meanwhile its
      // rejection must not end the process as unhandled.
      const submit = (job: Job): Promise<JobResult> => {
        let promise: Promise<JobResult>;
        try {
          promise = runner.submit(job);
        } catch (error) {
          promise = Promise.reject(error);
        }
        promise.catch(() => undefined);
        return promise;
      };
      const maxInFlight = Math.max(2, runner.workers * 3);
      let session: DocumentSession | null = null;
      let lastSingleText: string | null = null;
      const drainOne = async (): Promise<void> => {
        const entry = queue.shift()!;
        const result = await entry.promise;
        summary.bytes += entry.bytes;
        if (entry.kind === 'outcomes') {
          if (result.kind === 'outcomes') result.outcomes.forEach(emit);
        } else if (entry.error !== undefined) {
          emit({ source: entry.source, error: entry.error });
        } else if (result.kind === 'tokens') {
          if (entry.first) session = runner.engine.detector.session({ source: entry.source });
          session!.pushTokens(result.tokens);
          if (entry.last) {
            emit(session!.finish());
            session = null;
          }
        }
        progress.update(summary, started);
      };

      // Once `{"results":[` is out, a failure still ends the document: it closes the array and says what
      // failed in a top-level "error", so that stdout stays one valid JSON value.
      let failure: unknown = null;
      try {
        for await (const unit of readInputs(paths, {
          stdin: io.stdin,
          ...(options.format === undefined ? {} : { format: options.format }),
        })) {
          if ('lines' in unit) {
            queue.push({
              kind: 'outcomes',
              bytes: unit.bytes,
              promise: submit({
                kind: 'lines',
                source: unit.source,
                firstLine: unit.firstLine,
                texts: unit.texts,
              }),
            });
          } else if ('piece' in unit) {
            if (unit.error !== undefined) {
              queue.push({
                kind: 'piece',
                promise: Promise.resolve({ kind: 'tokens', tokens: new Uint32Array(0) }),
                source: unit.source,
                first: true,
                last: true,
                bytes: unit.bytes,
                error: unit.error,
              });
            } else {
              if (unit.first && unit.last) lastSingleText = unit.text;
              queue.push({
                kind: 'piece',
                promise: submit({ kind: 'tokenize', text: unit.text }),
                source: unit.source,
                first: unit.first,
                last: unit.last,
                bytes: unit.bytes,
              });
            }
          } else {
            queue.push({
              kind: 'outcomes',
              bytes: unit.bytes,
              promise: Promise.resolve({
                kind: 'outcomes',
                outcomes: [{ source: unit.source, error: unit.error! }],
              }),
            });
          }
          while (queue.length > maxInFlight) await drainOne();
        }
        while (queue.length > 0) await drainOne();
      } catch (error) {
        if (!options.json) throw error;
        failure = error;
      } finally {
        await runner.close();
      }
      progress.done();

      const seconds = (performance.now() - started) / 1000;
      const summaryJson = {
        ...summary,
        seconds: Number(seconds.toFixed(3)),
        megabytesPerSecond: Number((summary.bytes / 1e6 / Math.max(seconds, 1e-9)).toFixed(2)),
        workers: runner.workers,
      };
      if (options.json) {
        const error = failure === null ? '' : `,"error":${JSON.stringify(describeFailure(failure))}`;
        io.stdout.write(`\n],"summary":${JSON.stringify(summaryJson)}${error}}\n`);
      } else {
        if (summary.documents === 1 && results.length === 1 && lastSingleText !== null && io.stdoutIsTTY) {
          const detector = runner.engine.detector;
          const ids = detector.tokenizer.encodeFast(lastSingleText);
          io.stdout.write(
            colouredTokens(detector.tokenizer.decodeTokens(ids), detector.explain(ids), results[0]!.keyId),
          );
        }
        if (summary.documents > 1) {
          io.stdout.write(
            `${summary.documents} documents: ${summary.watermarked} watermarked, ${summary.notWatermarked} not watermarked, ${summary.insufficient} insufficient, ${summary.errors} errors\n`,
          );
        }
      }
      if (failure !== null) setExit(failure instanceof CliError ? failure.exitCode : EXIT.io);
      else if (options.failOnDetect && summary.watermarked > 0) setExit(EXIT.detected);
      else if (summary.errors > 0) setExit(EXIT.io);
      else setExit(EXIT.ok);
    });
}

function toJson(outcome: Outcome): object {
  if ('error' in outcome) return outcome;
  const { keys, window, tokensToSettle, ...rest } = outcome;
  return {
    ...rest,
    // Infinity: no number of tokens up to a million settles it (always so with δ = 0).
    tokensToSettle: Number.isFinite(tokensToSettle) ? tokensToSettle : null,
    ...(window === null ? {} : { window }),
    ...(keys.length > 1 ? { keys } : {}),
  };
}

/** The stable code and message of a failure that ended a run after its JSON output had begun. */
function describeFailure(error: unknown): { code: string; message: string } {
  const code = (error as { code?: unknown } | null)?.code;
  return {
    code:
      error instanceof CliError || (typeof code === 'string' && code.startsWith('TM_ERR_'))
        ? String(code)
        : 'TM_ERR_INTERNAL',
    message: error instanceof Error ? error.message : String(error),
  };
}
