import { readFile } from 'node:fs/promises';
import { DEFAULT_FPR } from '@tracemark/core';
import {
  type AnyDocumentResult,
  type AnyDocumentSession,
  type AnyWatermarkKey,
  createSpoofingChecker,
  type ForeignDedup,
  InputError,
  isVllmKey,
  keysWithoutTokenizer,
  parseAnyKeyFile,
  SPOOF_TEST_ALPHA,
  SPOOF_TEST_MAX_TOKENS,
  type SpoofingChecker,
  tokenizerUnavailableMessage,
} from '@tracemark/detection';
import type { Command } from 'commander';
import {
  type ErrorResult,
  type Job,
  type JobResult,
  type Outcome,
  outcomeJson,
  type RenderedOutcomes,
} from '../detect-engine.ts';
import {
  checkTerminalStdin,
  decodeLines,
  FIELD_HELP,
  type InputFormat,
  JSONL_HELP,
  joinArrays,
  measureInputs,
  NO_PROMPT_FIELD_HELP,
  readRawInputs,
} from '../inputs.ts';
import {
  CliError,
  type CliIo,
  COLOUR_HELP,
  EXIT,
  Interrupted,
  type InterruptWatch,
  printable,
  stdoutHasColour,
  watchInterrupts,
} from '../io.ts';
import { benjaminiHochberg } from '../multiple-testing.ts';
import { collect, parseNumber, parseOpenUnit } from '../options.ts';
import { createRunner, workersFor } from '../pool.ts';
import { createProgress } from '../progress.ts';
import { type CorrectedVerdict, colouredTokens, formatCount, spoofingLine, verdictLine } from '../render.ts';
import { WORKER_PREFETCH } from '../worker-threads.ts';

interface DetectCommandOptions {
  key: string[];
  format?: InputFormat;
  field?: string;
  promptField?: string | false;
  fpr?: number;
  correct: string;
  window?: boolean;
  dedup?: string;
  failOnDetect?: boolean;
  json?: boolean;
  quiet?: boolean;
  workers?: number;
  spoofTest: boolean;
}

export function registerDetect(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('detect')
    .description('detect the watermark in files, directories, JSONL or stdin')
    .argument('[paths...]', 'files or directories; - reads stdin (nothing: stdin, when piped)')
    .requiredOption(
      '--key <file>',
      'key file (repeat for several keys or epochs; corrected by Holm)',
      collect,
    )
    .option('--format <format>', 'text or jsonl (default: by file extension, .jsonl/.ndjson are JSONL)')
    .option('--field <name>', FIELD_HELP)
    .option(
      '--prompt-field <name>',
      'JSONL field holding the prompt, whose windows are excluded (default: "prompt" when a record has it)',
    )
    .option('--no-prompt-field', NO_PROMPT_FIELD_HELP)
    .option(
      '--fpr <alpha>',
      'target false-positive rate α of each document (default 1e-4)',
      parseOpenUnit('--fpr'),
    )
    .option(
      '--correct <method>',
      'across documents: none, or bh (Benjamini–Hochberg: the false discovery rate is kept at α; results are printed after the last document)',
      'none',
    )
    .option('--window', 'search for a watermarked passage inside longer text (corrected for the search)')
    .option(
      '--dedup <rule>',
      "engines' keys (vLLM, transformers, SynthID, SGLang): which repeated inputs are scored once: strict (default), context (the engine's own detector), or none",
    )
    .option('--fail-on-detect', 'exit with code 1 when a watermark is found')
    .option(
      '--no-spoof-test',
      'skip the spoofing-artefact test of watermarked documents (its table of word pairs takes about 1.5 s to build, once, at the first such document)',
    )
    .option(
      '--workers <n>',
      'threads that score: this one and n − 1 workers (default: one per 4 MB of input, up to every core but one and 8; 0 or 1: this thread alone)',
      parseNumber('--workers', 0, 64, true),
    )
    .option('--json', 'print {"results":[…],"summary":{…}}')
    .option('--quiet', 'no progress or hints on stderr')
    .addHelpText('after', () => `${JSONL_HELP}\n${detectHelp()}\n${COLOUR_HELP}`)
    .action(async (paths: string[], options: DetectCommandOptions) => {
      if (options.format !== undefined && options.format !== 'text' && options.format !== 'jsonl') {
        throw new CliError('TM_ERR_USAGE', '--format must be text or jsonl', EXIT.usage);
      }
      if (options.correct !== 'none' && options.correct !== 'bh') {
        throw new CliError('TM_ERR_USAGE', '--correct must be none or bh', EXIT.usage);
      }
      if (
        options.dedup !== undefined &&
        options.dedup !== 'none' &&
        options.dedup !== 'context' &&
        options.dedup !== 'strict'
      ) {
        throw new CliError('TM_ERR_USAGE', '--dedup must be none, context or strict', EXIT.usage);
      }
      checkTerminalStdin(paths, io, 'detect', options.quiet === true);
      const loaded = await Promise.all(
        options.key.map(async (path) => {
          const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
            throw new CliError(
              'TM_ERR_IO',
              `${path}: cannot read key file (${error.code ?? 'error'})`,
              EXIT.io,
            );
          });
          try {
            return { text, key: parseAnyKeyFile(text, path) };
          } catch (error) {
            if (error instanceof InputError) throw new CliError(error.code, error.message, EXIT.io);
            throw error;
          }
        }),
      );
      const keyFiles = loaded.map((file) => file.text);
      const keys: AnyWatermarkKey[] = loaded.map((file) => file.key);
      if (
        options.dedup !== undefined &&
        options.dedup !== 'strict' &&
        options.quiet !== true &&
        keys.some((key) => isVllmKey(key) && key.scheme === 'sbw')
      ) {
        io.stderr.write(
          `note: --dedup ${options.dedup} scores repeated sbw seeds again, as vLLM's detector does: its p-values are not valid on natural text (docs/spec/foreign-vllm.md §10)\n`,
        );
      }
      // A key bound to a tokenizer tracemark does not ship reads token ids only: text documents fail.
      const textlessKey = keysWithoutTokenizer(keys)[0];
      const workers = options.workers ?? workersFor(await measureInputs(paths, options.format));
      let runner: ReturnType<typeof createRunner>;
      try {
        runner = createRunner(
          {
            keyFiles,
            window: options.window === true,
            ...(options.field === undefined ? {} : { field: options.field }),
            ...(options.fpr === undefined ? {} : { fpr: options.fpr }),
            ...(options.promptField === undefined ? {} : { promptField: options.promptField }),
            ...(options.dedup === undefined ? {} : { foreignDedup: options.dedup as ForeignDedup }),
            spoofTest: options.spoofTest,
          },
          workers,
        );
      } catch (error) {
        const code = (error as { code?: string }).code ?? 'TM_ERR_KEY_FILE';
        throw new CliError(
          code,
          (error as Error).message,
          code === 'TM_ERR_TOKENIZER_MISMATCH' || code === 'TM_ERR_USAGE' ? EXIT.usage : EXIT.io,
        );
      }
      const { engine } = runner;
      // Built here, on the main thread: workers send their watermarked documents' tokens (detect-engine.ts).
      const tokenizer = engine.detector.tokenizer;
      // The checker, and @tracemark/lm with its word-pair table, load at the first document the test applies to.
      let spoofingChecker: Promise<SpoofingChecker> | null = null;
      const spoofTested = (outcome: Outcome): Outcome | Promise<Outcome> => {
        if (tokenizer === null || !('spoofTest' in outcome) || outcome.spoofTest === undefined)
          return outcome;
        spoofingChecker ??= import('@tracemark/lm').then(
          ({ BROWN_BIGRAMS_LEARNABILITY, brownBigramCounts }) =>
            createSpoofingChecker(tokenizer, {
              bigrams: () => brownBigramCounts(tokenizer),
              learnability: BROWN_BIGRAMS_LEARNABILITY,
            }),
        );
        return spoofingChecker.then((checker) => engine.spoofTested(outcome, checker));
      };
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
      const results: AnyDocumentResult[] = [];
      const correcting = options.correct === 'bh';
      // With --correct bh no verdict is final before the last document: the outcomes wait here.
      const held: Outcome[] = [];
      let firstJson = true;
      const stdout = createOutputBuffer(io);
      if (options.json) stdout.write('{"results":[');

      const print = (outcome: Outcome, corrected?: CorrectedVerdict): void => {
        if (options.json) {
          stdout.write(`${firstJson ? '' : ','}\n${JSON.stringify(outcomeJson(outcome, corrected))}`);
          firstJson = false;
        } else if (!('error' in outcome)) {
          // The source is a file's name (and a JSONL line's number): printed with its controls escaped.
          stdout.write(`${progress.clear()}${printable(verdictLine(outcome, corrected))}\n`);
          if (outcome.spoofing)
            stdout.write(`${printable(spoofingLine(outcome.source, outcome.spoofing))}\n`);
        }
      };
      const emit = (outcome: Outcome): void => {
        summary.documents++;
        if ('error' in outcome) {
          summary.errors++;
          if (!options.json) {
            stdout.flush();
            io.stderr.write(`${progress.clear()}error: ${printable(outcome.error.message)}\n`);
          }
        } else {
          summary.numTokens += outcome.numTokens;
          if (outcome.verdict === 'watermarked') summary.watermarked++;
          else if (outcome.verdict === 'not_watermarked') summary.notWatermarked++;
          else summary.insufficient++;
          if (results.length < 2) results.push(outcome);
        }
        if (correcting) held.push(outcome);
        else print(outcome);
      };
      // --json without --correct: workers print the results, and send their JSON with the counts.
      const render = options.json === true && !correcting;
      const emitRendered = (rendered: RenderedOutcomes): void => {
        summary.documents += rendered.documents;
        summary.errors += rendered.errors;
        summary.watermarked += rendered.watermarked;
        summary.notWatermarked += rendered.notWatermarked;
        summary.insufficient += rendered.insufficient;
        summary.numTokens += rendered.numTokens;
        for (const outcome of rendered.first) if (results.length < 2) results.push(outcome);
        if (rendered.documents === 0) return;
        stdout.write(`${firstJson ? '' : ','}\n${rendered.json}`);
        firstJson = false;
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
      // Enough for every thread to hold its jobs (WORKER_PREFETCH) while the next is read.
      const maxInFlight = (runner.workers + 1) * (WORKER_PREFETCH + 1);
      let session: AnyDocumentSession | null = null;
      // The document's tokens so far, for the spoofing test, while they are few enough for it.
      let sessionTokens: Uint32Array[] | null = null;
      let sessionLength = 0;
      let lastSingleText: string | null = null;
      const drainOne = async (interrupt: InterruptWatch): Promise<void> => {
        interrupt.check();
        const entry = queue.shift()!;
        const result = await Promise.race([entry.promise, interrupt.stopped]);
        summary.bytes += entry.bytes;
        if (entry.kind === 'outcomes') {
          if (result.kind === 'outcomes') {
            for (const outcome of result.outcomes) {
              const tested = spoofTested(outcome);
              emit(tested instanceof Promise ? await tested : tested);
            }
          } else if (result.kind === 'rendered') emitRendered(result.rendered);
        } else if (entry.error !== undefined) {
          emit({ source: entry.source, error: entry.error });
        } else if (result.kind === 'tokens') {
          if (entry.first) {
            session = engine.detector.session({ source: entry.source });
            sessionTokens = [];
            sessionLength = 0;
          }
          session!.pushTokens(result.tokens);
          sessionLength += result.tokens.length;
          if (sessionLength > SPOOF_TEST_MAX_TOKENS) sessionTokens = null;
          else sessionTokens?.push(result.tokens);
          if (entry.last) {
            const tokens =
              sessionTokens === null
                ? null
                : sessionTokens.length === 1
                  ? sessionTokens[0]!
                  : joinArrays(sessionTokens, sessionLength, (length) => new Uint32Array(length));
            emit(await spoofTested(engine.markForSpoofTest(session!.finish(), tokens)));
            session = null;
            sessionTokens = null;
          }
        }
        stdout.flush();
        progress.update(summary, started);
      };

      // Once `{"results":[` is out, a failure still ends the document: it closes the array and says what
      // failed in a top-level "error", so that stdout stays one valid JSON value.
      // Ctrl-C (or SIGTERM) stops the reading: the documents already out stay, and the output ends
      // as any failure ends it, with a TM_ERR_INTERRUPTED error and exit code 130.
      let failure: unknown = null;
      const interrupt = watchInterrupts(io);
      const units = readRawInputs(paths, {
        stdin: io.stdin,
        ...(options.format === undefined ? {} : { format: options.format }),
      });
      try {
        for (;;) {
          // Raced: stdin may wait for input that never comes.
          const next = await Promise.race([units.next(), interrupt.stopped]);
          if (next.done === true) break;
          const unit = next.value;
          if ('rawLines' in unit) {
            const { source, firstLine } = unit;
            // Workers decode the bytes moved to them; without workers the lines are decoded here.
            queue.push({
              kind: 'outcomes',
              bytes: unit.bytes,
              promise: submit({
                ...(runner.workers > 0
                  ? { kind: 'line-bytes' as const, source, firstLine, data: unit.data }
                  : { kind: 'lines' as const, source, firstLine, texts: decodeLines(unit.data, firstLine) }),
                ...(render ? { render: 'json' as const } : {}),
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
            } else if (textlessKey !== undefined) {
              // Later pieces of the same document only count their bytes: its error is already out.
              queue.push(
                unit.first
                  ? {
                      kind: 'piece',
                      promise: Promise.resolve({ kind: 'tokens', tokens: new Uint32Array(0) }),
                      source: unit.source,
                      first: true,
                      last: true,
                      bytes: unit.bytes,
                      error: {
                        code: 'TM_ERR_TOKENIZER_UNAVAILABLE',
                        message: `${unit.source}: ${tokenizerUnavailableMessage(textlessKey)}`,
                      },
                    }
                  : {
                      kind: 'outcomes',
                      bytes: unit.bytes,
                      promise: Promise.resolve({ kind: 'outcomes', outcomes: [] }),
                    },
              );
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
          while (queue.length > maxInFlight) await drainOne(interrupt);
        }
        while (queue.length > 0) await drainOne(interrupt);
      } catch (error) {
        failure = error;
        if (error instanceof Interrupted) {
          failure = new CliError(
            'TM_ERR_INTERRUPTED',
            `${error.message} after ${summary.documents} documents: the output covers those only`,
            EXIT.interrupted,
          );
          // A read of stdin left waiting would keep the process alive.
          if (paths.length === 0 || paths.includes('-')) io.stdin.destroy();
          // The reading stops here: its file is closed (after a read in flight, if any), not left to the
          // garbage collector, which would print a warning about it on stderr.
          units.return(undefined).catch(() => undefined);
        }
      } finally {
        interrupt.release();
        await runner.close();
      }
      progress.done();
      const alpha = results[0]?.fpr ?? options.fpr ?? DEFAULT_FPR;
      const scoredDocuments = summary.documents - summary.errors;
      // N·α as the decimal it is: the float product carries noise (3 × 0.0001 = 0.00030000000000000003),
      // rounded off at 15 significant digits, which a double holds exactly.
      const expectedFalsePositives = Number((scoredDocuments * alpha).toPrecision(15));
      const corrected = correcting ? correctAcrossDocuments(held, alpha) : null;
      if (corrected !== null) for (const outcome of held) print(outcome, corrected.verdicts.get(outcome));
      stdout.flush();
      if (failure !== null && !options.json) throw failure;

      const seconds = (performance.now() - started) / 1000;
      const summaryJson = {
        ...summary,
        seconds: Number(seconds.toFixed(3)),
        megabytesPerSecond: Number((summary.bytes / 1e6 / Math.max(seconds, 1e-9)).toFixed(2)),
        // the threads that scored: this one and its workers
        workers: runner.workers + 1,
        expectedFalsePositives,
        correction: options.correct,
        ...(corrected === null ? {} : { watermarkedCorrected: corrected.watermarked }),
      };
      if (options.json) {
        const error = failure === null ? '' : `,"error":${JSON.stringify(describeFailure(failure))}`;
        io.stdout.write(`\n],"summary":${JSON.stringify(summaryJson)}${error}}\n`);
      } else {
        const detector = engine.detector;
        // Colours show the green and red tokens of a tracemark key; a vLLM key has no such display yet.
        if (
          summary.documents === 1 &&
          results.length === 1 &&
          results[0]!.scheme === undefined &&
          lastSingleText !== null &&
          detector.tokenizer !== null &&
          stdoutHasColour(io)
        ) {
          const ids = detector.tokenizer.encodeFast(lastSingleText);
          const explained = detector.explain(ids);
          if (explained !== null) {
            io.stdout.write(
              colouredTokens(detector.tokenizer.decodeTokens(ids), explained, results[0]!.keyId),
            );
          }
        }
        if (summary.documents > 1) {
          const counts =
            corrected === null
              ? `${summary.watermarked} watermarked, ${summary.notWatermarked} not watermarked, ${summary.insufficient} insufficient`
              : `${corrected.watermarked} watermarked after Benjamini–Hochberg (${summary.watermarked} at α alone), ${corrected.notWatermarked} not watermarked, ${corrected.insufficient} insufficient`;
          io.stdout.write(`${summary.documents} documents: ${counts}, ${summary.errors} errors\n`);
          const byChance = `of ${scoredDocuments} documents, about ${formatCount(expectedFalsePositives)} would be flagged by chance at α = ${alpha}`;
          io.stdout.write(
            corrected === null
              ? `${byChance} (--correct bh controls the false discovery rate instead)\n`
              : `${byChance}; Benjamini–Hochberg keeps the expected share of false discoveries among the documents flagged at most α\n`,
          );
        }
      }
      const watermarked = corrected === null ? summary.watermarked : corrected.watermarked;
      if (failure !== null) setExit(failure instanceof CliError ? failure.exitCode : EXIT.io);
      else if (options.failOnDetect && watermarked > 0) setExit(EXIT.detected);
      else if (summary.errors > 0) setExit(EXIT.io);
      else setExit(EXIT.ok);
    });
}

// A function: formatting numbers for a locale loads ICU's data, which only the help needs.
const detectHelp = (): string => `
Several documents: the summary says how many would be flagged by chance, N·α of N documents
(JSON: summary.expectedFalsePositives). With --correct bh each JSON result also carries
log10PCorrected (its Benjamini–Hochberg adjusted p-value, log10) and verdictCorrected (watermarked
only if Benjamini–Hochberg rejects at α; a document watermarked at α alone becomes insufficient), and
the summary correction "bh" and watermarkedCorrected; every other field is as without it, and
--fail-on-detect follows the corrected verdicts.
Engines' keys (keygen --scheme vllm:…, transformers:kgw, synthid:…, sglang:…) are scored as the
engine's own detector scores them, with exact p-values; --dedup context reproduces the engine's
detector, the default strict also scores each (context, token) pair once. Their JSON results also
carry scheme, score, peerLog10P (the engine's own formula, null where it has none) and dedup;
numGreen is null for schemes without green lists, which are only ever watermarked or insufficient. A key bound to a tokenizer tracemark does not ship reads token
ids (a JSONL field of ids), not text.
Spoofing: each document watermarked under a green-list key of context width 1 or 2, of at most
${SPOOF_TEST_MAX_TOKENS.toLocaleString('en-US')} tokens, is also tested for the artefact of a forged mark, as the gateway's /v1/verify
tests it: are its marked tokens on word pairs common in the Brown corpus more often than on rare ones
(an exact Fisher test, flagged at p ≤ ${SPOOF_TEST_ALPHA})? One more line follows its verdict ("spoofing test
passed" or "FLAGGED"); JSON results carry spoofing (null where not tested). It never changes the
verdict, the exit code or --fail-on-detect; --no-spoof-test skips it.
Exit codes: 0 done (also when stdout is closed early, as by head); 1 a watermark found with
--fail-on-detect; 2 usage; 3 I/O or input errors; 130 interrupted (SIGINT, SIGTERM: the documents
scored so far are printed, then with --json a top-level "error" TM_ERR_INTERRUPTED).`;

/** Benjamini–Hochberg across the documents' p-values (errors take no part), and the verdicts it gives. */
function correctAcrossDocuments(
  outcomes: readonly Outcome[],
  alpha: number,
): {
  verdicts: Map<Outcome, CorrectedVerdict>;
  watermarked: number;
  notWatermarked: number;
  insufficient: number;
} {
  const documents = outcomes.filter((outcome): outcome is AnyDocumentResult => !('error' in outcome));
  const tests = benjaminiHochberg(
    documents.map((document) => document.log10PAdjusted),
    alpha,
  );
  const verdicts = new Map<Outcome, CorrectedVerdict>();
  const counts = { watermarked: 0, notWatermarked: 0, insufficient: 0 };
  documents.forEach((document, i) => {
    const test = tests[i]!;
    // Benjamini–Hochberg rejects only p-values ≤ α, so it can only take a watermarked verdict away.
    const verdict = test.rejected
      ? 'watermarked'
      : document.verdict === 'watermarked'
        ? 'insufficient'
        : document.verdict;
    if (verdict === 'watermarked') counts.watermarked++;
    else if (verdict === 'not_watermarked') counts.notWatermarked++;
    else counts.insufficient++;
    verdicts.set(document, { verdict, log10PCorrected: test.log10PAdjusted, documents: documents.length });
  });
  return { verdicts, ...counts };
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

/** Characters of stdout held before a write: one write per batch of documents, not one per document. */
const OUTPUT_BLOCK_CHARACTERS = 1 << 16;

/**
 * stdout collected into blocks (each write to a pipe or file is a system call), flushed by the caller at
 * the end of each batch and before anything goes to stderr. A terminal gets each line at once: the
 * progress line on stderr must be erased just before it.
 */
function createOutputBuffer(io: CliIo): { write(text: string): void; flush(): void } {
  if (io.stdoutIsTTY) return { write: (text) => io.stdout.write(text), flush: () => undefined };
  let held = '';
  const flush = (): void => {
    if (held === '') return;
    const text = held;
    held = '';
    io.stdout.write(text);
  };
  return {
    write: (text) => {
      held += text;
      if (held.length >= OUTPUT_BLOCK_CHARACTERS) flush();
    },
    flush,
  };
}
