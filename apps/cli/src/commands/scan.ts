import { stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { describeAccountKeyMode, type WatermarkKey } from '@tracemark/core';
import {
  type AnyWatermarkKey,
  type ForeignWatermarkKey,
  foreignKeyType,
  foreignLabel,
  InputError,
  isForeignKey,
  readKeyFile,
  tokenizerUnavailableMessage,
} from '@tracemark/detection';
import {
  type AnyScanReport,
  DEFAULT_FAKE_KEYS,
  DEFAULT_MINIMUM_DOSE,
  DEFAULT_SCAN_ALPHA,
  type ForeignScanKey,
  IssuedWindowSet,
  isGumbelKey,
  measureGreenFraction,
  type ScanDocument,
  type ScanReport,
  scanCorpusAnyKeys,
} from '@tracemark/extraction';
import { getTokenizer, isTokenizerId } from '@tracemark/tokenizers';
import type { Command } from 'commander';
import type { DistributedRun } from '../distributed/coordinator.ts';
import { loadDistributed } from '../distributed/load.ts';
import {
  checkTerminalStdin,
  FIELD_HELP,
  type InputFormat,
  JSONL_HELP,
  NO_PROMPT_FIELD_HELP,
  readInputs,
} from '../inputs.ts';
import {
  CliError,
  type CliIo,
  EXIT,
  Interrupted,
  type InterruptWatch,
  printable,
  watchInterrupts,
} from '../io.ts';
import { collect, parseNumber, parseOpenUnit } from '../options.ts';
import { defaultWorkerCount } from '../pool.ts';
import { createProgress } from '../progress.ts';
import { type AccountScanKeys, accountScanKeys, parseScanAccountKeyMode } from '../scan/account-keys.ts';
import { type Attribution, attributeAccounts } from '../scan/attribution.ts';
import type { ScanJobResult, TokenizedDocument } from '../scan/engine.ts';
import {
  DEFAULT_FIELD_RULE,
  DEFAULT_PROMPT_FIELD_RULE,
  describeCorpus,
  readSigningKey,
  scanPredicate,
  signedScanReport,
} from '../scan/evidence.ts';
import { byAccount, type IssuedOutput, readIssuedLog } from '../scan/issued.ts';
import { createScanPool, type ScanPool } from '../scan/pool.ts';
import { renderAttribution, renderScanReport } from '../scan/render.ts';
import { startTapeThread, type TapeThread, tapeWorkerUrl } from '../scan/tape-thread.ts';
import { WORKER_PREFETCH } from '../worker-threads.ts';

interface ScanCommandOptions {
  key: string[];
  format?: InputFormat;
  field?: string;
  promptField?: string | false;
  fakeKeys: number;
  fakeKeySeed?: string;
  issuedFile?: string;
  issuedField: string;
  issued?: string;
  account?: string;
  accountKeys?: string;
  apiKeyEnv?: string;
  attribute?: boolean;
  evidence?: string;
  dataDir?: string;
  signingKey?: string;
  alpha: number;
  minDose: number;
  workers?: number;
  json?: boolean;
  quiet?: boolean;
  failOnRadioactive?: boolean;
  distributed?: string;
  runId?: string;
  partitions?: number;
  shardSize?: number;
}

/** Inputs smaller than this run in the main thread: starting workers would cost more than it saves. */
const WORKER_THRESHOLD_BYTES = 4 * 1024 * 1024;
/** Errors listed in the JSON output (all are counted). */
const MAX_LISTED_ERRORS = 100;

interface Summary {
  documents: number;
  errors: number;
  bytes: number;
}

export function registerScan(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('scan')
    .description(
      "test a suspect corpus (or a suspect model's sampled outputs) for the watermark's radioactivity: evidence of extraction",
    )
    .argument('[paths...]', 'files or directories; - reads stdin (nothing: stdin, when piped)')
    .requiredOption(
      '--key <file>',
      "key file: tracemark's (green-list or Gumbel) or a serving engine's (vLLM); repeat for several keys or epochs, corrected by Holm",
      collect,
    )
    .option('--format <format>', 'text or jsonl (default: by file extension, .jsonl/.ndjson are JSONL)')
    .option('--field <name>', FIELD_HELP)
    .option(
      '--prompt-field <name>',
      'JSONL field holding the prompt; pairs that occur in any prompt are not scored (default: "prompt" when a record has it)',
    )
    .option('--no-prompt-field', NO_PROMPT_FIELD_HELP)
    .option(
      '--fake-keys <n>',
      `fake keys for calibration (at least 20 for a verdict)`,
      parseNumber('--fake-keys', 0, 100_000, true),
      DEFAULT_FAKE_KEYS,
    )
    .option(
      '--fake-key-seed <label>',
      'public label the fake keys derive from (default tracemark/v1/calibration)',
    )
    .option(
      '--issued-file <path>',
      'JSONL (or text) of outputs we issued: score only positions whose window occurs in them (supervised)',
    )
    .option(
      '--issued-field <name>',
      'JSONL field of the issued file holding the text or the token ids',
      'text',
    )
    .option(
      '--issued <db-or-url>',
      "the gateway's issuance log: its SQLite file or data directory (read-only), a postgres:// URL, or an http(s):// gateway (GET /v1/admin/issuance, admin key from --api-key-env); supervised",
    )
    .option('--account <id>', 'with --issued: only the outputs issued to this account')
    .option(
      '--account-keys <mode>',
      "with --issued: the gateway served per-account sub-keys of --key (account, or cohort:N as it was served with); scan every account's sub-key and all of them pooled as one test (Holm across the key, the sub-keys and the pool)",
    )
    .option(
      '--api-key-env <var>',
      'environment variable holding an admin API key (--issued with a gateway URL)',
    )
    .option(
      '--attribute',
      'with --issued: scan each account on the windows issued to it alone and name the accounts the suspect most likely learned from (Holm-corrected across the accounts tested)',
    )
    .option(
      '--alpha <a>',
      'Holm-adjusted p-value at or below which the corpus is radioactive',
      parseOpenUnit('--alpha'),
      DEFAULT_SCAN_ALPHA,
    )
    .option(
      '--min-dose <rho>',
      'not_radioactive means a dose of this or more is ruled out',
      parseNumber('--min-dose', 0.000001, 1),
      DEFAULT_MINIMUM_DOSE,
    )
    .option(
      '--workers <n>',
      'threads: this one and n − 1 workers; from 2, one builds the evidence tape while the others tokenize (default for inputs of 4 MB or more: every core but one, 8 at most, and 2 on two cores; 0 or 1: this thread alone)',
      parseNumber('--workers', 0, 64, true),
    )
    .option(
      '--evidence <out>',
      'write a signed evidence report of the scan (check it with `tracemark evidence verify`)',
    )
    .option('--data-dir <dir>', "with --evidence: the gateway's data directory (its log-signing-key signs)")
    .option(
      '--signing-key <file>',
      'with --evidence: the signing key file (as the gateway writes log-signing-key)',
    )
    .option(
      '--distributed <redis-url>',
      'spread the scan over `tracemark scan-worker` processes through this Redis (the same report as one machine)',
    )
    .option('--run-id <id>', 'with --distributed: resume this run (its finished jobs are not run again)')
    .option(
      '--partitions <n>',
      'with --distributed: token partitions of the evidence tape (default 16)',
      parseNumber('--partitions', 1, 65_536, true),
    )
    .option(
      '--shard-size <MB>',
      'with --distributed: JSONL bytes per map job, in MB (default 16)',
      parseNumber('--shard-size', 0.001, 4096),
    )
    .option('--fail-on-radioactive', 'exit with code 1 when the verdict is radioactive')
    .option('--json', 'print the report as JSON')
    .option('--quiet', 'no progress or hints on stderr')
    .addHelpText('after', JSONL_HELP)
    .action(async (paths: string[], options: ScanCommandOptions, command: Command) => {
      if (options.format !== undefined && options.format !== 'text' && options.format !== 'jsonl') {
        throw new CliError('TM_ERR_USAGE', '--format must be text or jsonl', EXIT.usage);
      }
      checkTerminalStdin(paths, io, 'scan', options.quiet === true);
      if (options.issued !== undefined && options.issuedFile !== undefined) {
        throw new CliError('TM_ERR_USAGE', '--issued and --issued-file cannot be combined', EXIT.usage);
      }
      if ((options.attribute || options.account !== undefined) && options.issued === undefined) {
        throw new CliError('TM_ERR_USAGE', '--attribute and --account need --issued', EXIT.usage);
      }
      const accountKeyMode =
        options.accountKeys === undefined ? null : parseScanAccountKeyMode(options.accountKeys);
      if (accountKeyMode !== null) checkAccountKeyOptions(options);
      const allKeys = await readKeys(options.key);
      const foreignKeys = allKeys.filter(isForeignKey);
      const keys = allKeys.filter((key): key is WatermarkKey => !isForeignKey(key));
      // Green-list keys are the only ones with green counts, issued windows and fake keys.
      const numGreenListKeys = keys.filter((key) => !isGumbelKey(key)).length;
      const source = (name: string) => command.getOptionValueSource(name);
      if (accountKeyMode !== null && (foreignKeys.length > 0 || keys.length !== 1 || isGumbelKey(keys[0]!))) {
        throw new CliError(
          'TM_ERR_USAGE',
          '--account-keys needs one --key: the tracemark green-list key the gateway served with (its sub-keys are derived from it)',
          EXIT.usage,
        );
      }
      if (foreignKeys.length > 0) checkForeignOptions(foreignKeys[0]!, numGreenListKeys, options, source);
      const gumbelKey = keys.find(isGumbelKey);
      if (gumbelKey !== undefined) checkGumbelOptions(gumbelKey, numGreenListKeys, options, source);
      if (options.distributed !== undefined) checkDistributedOptions(paths, allKeys, options);
      else if (
        options.runId !== undefined ||
        options.partitions !== undefined ||
        options.shardSize !== undefined
      ) {
        throw new CliError(
          'TM_ERR_USAGE',
          '--run-id, --partitions and --shard-size need --distributed',
          EXIT.usage,
        );
      }
      // Keys before the signing key, so that options engines' keys do not take are refused first;
      // the signing key before the corpus: a scan that cannot be signed is not run.
      const signer = options.evidence === undefined ? null : await readSigningKey(options);
      if (options.evidence !== undefined && (paths.length === 0 || paths.includes('-'))) {
        throw new CliError(
          'TM_ERR_USAGE',
          '--evidence needs the corpus as files (stdin cannot be described in the report)',
          EXIT.usage,
        );
      }
      const scanKeys = allKeys.map((key): WatermarkKey | ForeignScanKey =>
        isForeignKey(key) ? foreignScanKey(key, options.alpha) : (key as WatermarkKey),
      );
      const tokenizerId = allKeys[0]!.tokenizer;
      const tokenizer = isTokenizerId(tokenizerId) ? getTokenizer(tokenizerId) : null;
      const specialTokenIds = tokenizer?.specialTokenIds ?? [];
      const bytes = await inputBytes(paths);
      // Threads: with two or more, one builds the evidence tape while the others tokenize (see
      // scan/tape-thread.ts), for the scans that can be sent there.
      const threads =
        options.workers ??
        (bytes >= WORKER_THRESHOLD_BYTES && availableParallelism() >= 2
          ? Math.max(2, defaultWorkerCount())
          : 0);
      // An engine's key carries its scorer, which cannot be sent to a thread; a distributed scan has workers
      // of its own.
      const tapeThreadWanted =
        threads >= 2 &&
        foreignKeys.length === 0 &&
        options.distributed === undefined &&
        tapeWorkerUrl() !== null;
      const workers = tapeThreadWanted ? threads - 1 : threads;
      const vocabSize = foreignKeys.find((key) => key.vocabSize !== null)?.vocabSize ?? undefined;
      const pool = createScanPool(
        {
          tokenizer: tokenizerId,
          ...(tokenizer === null && vocabSize !== undefined ? { vocabSize } : {}),
          ...(tokenizer === null ? { textUnavailable: tokenizerUnavailableMessage(foreignKeys[0]!) } : {}),
        },
        workers,
      );
      const progress = createProgress(io, options.quiet === true);
      const summary: Summary = { documents: 0, errors: 0, bytes: 0 };
      const errors: { source: string; code: string; message: string }[] = [];
      const onError = (source: string, error: { code: string; message: string }): void => {
        summary.errors++;
        if (errors.length < MAX_LISTED_ERRORS) errors.push({ source, ...error });
        if (!options.json) io.stderr.write(`${progress.clear()}error: ${printable(error.message)}\n`);
      };
      const started = performance.now();
      let report: AnyScanReport;
      let issuedLog: { source: string; numOutputs: number; pruned: number; account: string | null } | null =
        null;
      let attribution: Attribution | null = null;
      let accountKeys: AccountScanKeys | null = null;
      let distributedRun: DistributedRun | null = null;
      // Watched over the local scan only: a distributed run is resumed with --run-id after Ctrl-C ends it.
      let interrupt: InterruptWatch | null = null;
      let tapeThread: TapeThread | null = null;
      try {
        let issuedWindows: IssuedWindowSet | undefined;
        let issuedGreenFractions: Map<string, number> | undefined;
        let logOutputs: IssuedOutput[] | undefined;
        let issuedOutputs: Uint32Array[] | undefined;
        if (options.issued !== undefined) {
          const apiKey = options.apiKeyEnv === undefined ? undefined : io.env[options.apiKeyEnv];
          if (options.apiKeyEnv !== undefined && (apiKey === undefined || apiKey === '')) {
            throw new CliError('TM_ERR_USAGE', `--api-key-env: ${options.apiKeyEnv} is not set`, EXIT.usage);
          }
          const log = await readIssuedLog(options.issued, {
            ...(options.account === undefined ? {} : { account: options.account }),
            ...(apiKey === undefined ? {} : { apiKey }),
          });
          logOutputs = log.outputs;
          if (accountKeyMode !== null) {
            accountKeys = accountScanKeys(keys[0]!, accountKeyMode, log.outputs);
            keys.push(...accountKeys.subKeys);
            scanKeys.push(...accountKeys.subKeys);
          }
          issuedLog = {
            source: log.source,
            numOutputs: log.outputs.length,
            pruned: log.pruned,
            account: options.account ?? null,
          };
        }
        if (options.issuedFile !== undefined || logOutputs !== undefined) {
          const outputs =
            logOutputs === undefined
              ? await readIssued(pool, options.issuedFile!, options.issuedField, io)
              : logOutputs.map((output) => output.tokens);
          issuedOutputs = outputs;
          // The tape thread builds its own from the outputs.
          if (!tapeThreadWanted) {
            issuedWindows = await IssuedWindowSet.fromOutputs(outputs, {
              schemes: keys.map((key) => key.scheme),
              specialTokenIds,
            });
          }
          issuedGreenFractions = new Map();
          for (const key of keys) {
            // The green fraction of the outputs this key marked (all of them when the log does not say).
            const marked = logOutputs?.filter((output) => output.watermarkKeyId === key.keyId);
            const measured = await measureGreenFraction(
              marked === undefined || marked.length === 0 ? outputs : marked.map((output) => output.tokens),
              key,
              specialTokenIds,
            );
            if (measured.numScored > 0) issuedGreenFractions.set(key.keyId, measured.greenFraction);
          }
        }
        if (options.distributed !== undefined) {
          const { distributedScan } = await loadDistributed(
            'tracemark scan --distributed',
            () => import('../distributed/coordinator.ts'),
          );
          const result = await distributedScan({
            redisUrl: options.distributed,
            ...(options.runId === undefined ? {} : { runId: options.runId }),
            paths,
            keys,
            tokenizer: tokenizerId,
            ...(options.format === undefined ? {} : { format: options.format }),
            ...(options.field === undefined ? {} : { field: options.field }),
            ...(options.promptField === undefined ? {} : { promptField: options.promptField }),
            fakeKeys: options.fakeKeys,
            ...(options.fakeKeySeed === undefined ? {} : { fakeKeySeed: options.fakeKeySeed }),
            alpha: options.alpha,
            minimumDose: options.minDose,
            ...(issuedOutputs === undefined ? {} : { issuedOutputs }),
            ...(issuedGreenFractions === undefined ? {} : { issuedGreenFractions }),
            ...(options.partitions === undefined ? {} : { partitions: options.partitions }),
            ...(options.shardSize === undefined ? {} : { shardBytes: Math.round(options.shardSize * 1e6) }),
            onProgress: (text) => progress.message(text),
            onError,
          });
          report = result.report;
          Object.assign(summary, result.summary);
          distributedRun = result.run;
        } else {
          const watch = watchInterrupts(io);
          interrupt = watch;
          const kept: ScanDocument[] | null = options.attribute ? [] : null;
          // English text runs about 4.7 bytes a token; the guess only sizes tables.
          const expectedTokens = bytes / 4;
          const calibrating = (): void => progress.message(`calibrating with ${options.fakeKeys} fake keys…`);
          const pooledKeyIds =
            accountKeys === null || accountKeys.subKeys.length < 2
              ? undefined
              : accountKeys.subKeys.map((key) => key.keyId);
          if (tapeThreadWanted) {
            tapeThread = startTapeThread({
              keys,
              specialTokenIds: [...specialTokenIds],
              fakeKeys: options.fakeKeys,
              ...(options.fakeKeySeed === undefined ? {} : { fakeKeySeed: options.fakeKeySeed }),
              expectedTokens,
              alpha: options.alpha,
              minimumDose: options.minDose,
              ...(issuedOutputs === undefined ? {} : { issuedOutputs }),
              ...(issuedGreenFractions === undefined ? {} : { issuedGreenFractions }),
              ...(pooledKeyIds === undefined ? {} : { pooledKeyIds }),
            });
          }
          const documents = readDocuments(pool, paths, options, io, summary, onError, watch, () =>
            progress.update(summary, started),
          );
          const scanned =
            tapeThread !== null
              ? tapeThread.scan(kept === null ? documents : keep(documents, kept), calibrating)
              : scanCorpusAnyKeys({
                  documents: kept === null ? documents : keep(documents, kept),
                  keys: scanKeys,
                  specialTokenIds,
                  fakeKeys: options.fakeKeys,
                  expectedTokens,
                  alpha: options.alpha,
                  minimumDose: options.minDose,
                  runFakeKeyJobs: (jobs) => {
                    calibrating();
                    return pool.runFakeKeyJobs(jobs, watch.check);
                  },
                  ...(options.fakeKeySeed === undefined ? {} : { fakeKeySeed: options.fakeKeySeed }),
                  ...(issuedWindows === undefined ? {} : { issuedWindows }),
                  ...(issuedGreenFractions === undefined ? {} : { issuedGreenFractions }),
                  ...(pooledKeyIds === undefined ? {} : { pooledKeyIds }),
                });
          // Interrupted, the scan stops at its next document or batch of fake keys, rejecting unheard.
          scanned.catch(() => undefined);
          report = await Promise.race([scanned, watch.stopped]);
          if (kept !== null && logOutputs !== undefined) {
            progress.message('attributing to accounts…');
            attribution = await attributeAccounts({
              documents: kept,
              keys,
              specialTokenIds,
              accounts: byAccount(logOutputs),
              alpha: options.alpha,
            });
          }
        }
      } catch (error) {
        // A verdict about part of a corpus is no verdict about the corpus: an interrupted scan reports none.
        if (error instanceof Interrupted) {
          if (paths.length === 0 || paths.includes('-')) io.stdin.destroy();
          throw new CliError(
            'TM_ERR_INTERRUPTED',
            `${error.message} after ${summary.documents} documents: no report (a scan needs the whole corpus)`,
            EXIT.interrupted,
          );
        }
        throw error;
      } finally {
        interrupt?.release();
        await Promise.all([pool.close(), tapeThread?.close()]);
        progress.done();
      }
      let evidenceNote = '';
      if (signer !== null && options.evidence !== undefined) {
        const description = await describeCorpus(
          paths,
          {
            field: options.field ?? DEFAULT_FIELD_RULE,
            promptField:
              options.promptField === false ? null : (options.promptField ?? DEFAULT_PROMPT_FIELD_RULE),
          },
          issuedLog === null
            ? options.issuedFile === undefined
              ? null
              : { source: options.issuedFile, account: null, numOutputs: report.issued?.numOutputs ?? 0 }
            : { source: issuedLog.source, account: issuedLog.account, numOutputs: issuedLog.numOutputs },
        );
        // checkForeignOptions and checkGumbelOptions refused --evidence with engines' and Gumbel keys:
        // every key here is a tracemark green-list key.
        const text = signedScanReport(
          scanPredicate(report as ScanReport, keys, description, attribution),
          signer,
        );
        try {
          await writeFile(options.evidence, text, { mode: 0o644 });
        } catch (error) {
          throw new CliError(
            'TM_ERR_IO',
            `${options.evidence}: cannot write the evidence report (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
            EXIT.io,
          );
        }
        evidenceNote = `evidence report saved to ${options.evidence}, signed by ${signer.keyId}; check it with \`tracemark evidence verify ${options.evidence}\`\n`;
      }
      const seconds = (performance.now() - started) / 1000;
      if (options.json) {
        const summaryJson = {
          ...summary,
          seconds: Number(seconds.toFixed(3)),
          megabytesPerSecond: Number((summary.bytes / 1e6 / Math.max(seconds, 1e-9)).toFixed(2)),
          // the threads that scored: this one and its workers
          workers: pool.workers + 1 + (tapeThread === null ? 0 : 1),
          ...(distributedRun === null ? {} : { distributed: distributedRun }),
        };
        io.stdout.write(
          `${JSON.stringify({ ...report, issuedLog, accountKeys: accountKeysJson(accountKeys), attribution, summary: summaryJson, errors })}\n`,
        );
      } else {
        io.stdout.write(renderScanReport(report));
        if (issuedLog !== null)
          io.stdout.write(
            `issued outputs from ${issuedLog.source}${issuedLog.account === null ? '' : ` (account ${issuedLog.account})`}: ${issuedLog.numOutputs}${issuedLog.pruned > 0 ? ` (${issuedLog.pruned} pruned records skipped)` : ''}\n`,
          );
        if (accountKeys !== null)
          io.stdout.write(
            `account keys (${describeAccountKeyMode(accountKeys.mode)}): ${accountKeys.subKeys.length} sub-keys for the log's ${accountKeys.accounts} accounts, ${accountKeys.seenInLog} of them marked outputs in it\n`,
          );
        if (attribution !== null) io.stdout.write(renderAttribution(attribution));
        io.stdout.write(evidenceNote);
        if (summary.errors > 0)
          io.stdout.write(`${summary.errors} inputs could not be read (see the errors above)\n`);
      }
      if (options.failOnRadioactive && report.verdict === 'radioactive') setExit(EXIT.detected);
      else if (summary.errors > 0) setExit(EXIT.io);
      else setExit(EXIT.ok);
    });
}

/** --account-keys reads the accounts from --issued; the combinations it does not support are refused. */
function checkAccountKeyOptions(options: ScanCommandOptions): void {
  const refuse = (message: string) => {
    throw new CliError('TM_ERR_USAGE', message, EXIT.usage);
  };
  if (options.issued === undefined)
    refuse('--account-keys needs --issued (the accounts, and the keys that marked their outputs)');
  if (options.account !== undefined)
    refuse(
      "--account-keys scans every account of the log; without it, --key with the account's own key file scans one",
    );
  if (options.attribute)
    refuse('--account-keys and --attribute cannot be combined: the sub-key that matches names the account');
  if (options.distributed !== undefined) refuse('--account-keys cannot be combined with --distributed');
  if (options.evidence !== undefined)
    refuse(
      '--account-keys cannot be combined with --evidence: the signed report does not carry the pooled test',
    );
}

function accountKeysJson(accountKeys: AccountScanKeys | null) {
  return accountKeys === null
    ? null
    : {
        mode: describeAccountKeyMode(accountKeys.mode),
        accounts: accountKeys.accounts,
        subKeys: accountKeys.subKeys.length,
        seenInLog: accountKeys.seenInLog,
      };
}

/** A distributed scan takes files and tracemark green-list keys; attribution reads the corpus again here. */
function checkDistributedOptions(
  paths: readonly string[],
  keys: readonly AnyWatermarkKey[],
  options: ScanCommandOptions,
): void {
  const fail = (why: string): never => {
    throw new CliError('TM_ERR_USAGE', `--distributed ${why}`, EXIT.usage);
  };
  if (!/^rediss?:\/\//.test(options.distributed!)) fail('expects a redis:// or rediss:// URL');
  if (paths.length === 0 || paths.includes('-')) fail('needs the corpus as files that every worker can read');
  const other = keys.find((key) => isForeignKey(key) || isGumbelKey(key as WatermarkKey));
  if (other !== undefined) fail(`takes tracemark green-list keys (key ${other.keyId} is not one)`);
  if (options.attribute) fail('cannot be combined with --attribute yet');
}

/** Passes documents through, keeping them (attribution scans the corpus again per account). */
async function* keep(
  documents: AsyncIterable<ScanDocument>,
  kept: ScanDocument[],
): AsyncGenerator<ScanDocument> {
  for await (const document of documents) {
    kept.push(document);
    yield document;
  }
}

async function readKeys(paths: readonly string[]): Promise<AnyWatermarkKey[]> {
  const keys: AnyWatermarkKey[] = [];
  for (const path of paths) {
    try {
      const key = await readKeyFile(path, { accept: 'any' });
      if (isForeignKey(key)) {
        const scorer = foreignKeyType(key).createScorer(key, DEFAULT_SCAN_ALPHA);
        if (typeof scorer.units !== 'function' || typeof scorer.tail !== 'function') {
          throw new CliError(
            'TM_ERR_UNSUPPORTED_KEY',
            `${path}: scan does not support ${foreignLabel(key)} keys yet (key ${key.keyId}, ${scorer.schemeName})`,
            EXIT.io,
          );
        }
      }
      keys.push(key);
    } catch (error) {
      if (error instanceof InputError) throw new CliError(error.code, error.message, EXIT.io);
      throw error;
    }
  }
  const tokenizers = new Set(keys.map((key) => key.tokenizer));
  if (tokenizers.size > 1) {
    throw new CliError(
      'TM_ERR_TOKENIZER_MISMATCH',
      `keys are bound to different tokenizers (${[...tokenizers].join(', ')}); scan with one tokenizer at a time`,
      EXIT.usage,
    );
  }
  const tokenizer = keys[0]!.tokenizer;
  if (!isTokenizerId(tokenizer) && !keys.every(isForeignKey)) {
    throw new CliError(
      'TM_ERR_KEY_FILE',
      `${paths[0]}: key is bound to an unknown tokenizer "${tokenizer}"`,
      EXIT.io,
    );
  }
  const vocabSizes = new Set(
    keys.flatMap((key) => (isForeignKey(key) && key.vocabSize !== null ? [key.vocabSize] : [])),
  );
  if (vocabSizes.size > 1) {
    throw new CliError(
      'TM_ERR_TOKENIZER_MISMATCH',
      `keys bound to "${tokenizer}" give different vocabulary sizes (${[...vocabSizes].join(', ')})`,
      EXIT.usage,
    );
  }
  return keys;
}

/** An engine's key as the scan takes it: its family's scorer at the scan's α, its public parameters. */
function foreignScanKey(key: ForeignWatermarkKey, alpha: number): ForeignScanKey {
  const family = foreignKeyType(key);
  const scorer = family.createScorer(key, alpha);
  // readKeys checked that the family gives units and tail.
  return {
    scorer: scorer as ForeignScanKey['scorer'],
    label: family.label,
    parameters: family.parameters(key),
  };
}

/**
 * Options that do not apply to tracemark's Gumbel keys (no green list: no issued windows, no dose,
 * no fake keys; no evidence report yet) are usage errors, naming the option and the key.
 */
function checkGumbelOptions(
  key: WatermarkKey,
  numGreenListKeys: number,
  options: ScanCommandOptions,
  source: (name: string) => string | undefined,
): void {
  const fail = (option: string, why: string): never => {
    throw new CliError(
      'TM_ERR_USAGE',
      `${option} ${why} (key ${key.keyId}, ${key.scheme.name}); scan Gumbel keys without it`,
      EXIT.usage,
    );
  };
  if (options.issued !== undefined || options.issuedFile !== undefined) {
    fail(
      options.issued !== undefined ? '--issued' : '--issued-file',
      'selects green-list windows (the supervised filter) and a dose from green fractions; it does not apply to Gumbel keys',
    );
  }
  if (options.evidence !== undefined) fail('--evidence', 'does not support Gumbel keys yet');
  if (numGreenListKeys === 0) {
    for (const [name, option] of [
      ['fakeKeys', '--fake-keys'],
      ['fakeKeySeed', '--fake-key-seed'],
    ] as const) {
      if (source(name) === 'cli') {
        fail(option, 'calibrates green-list keys; Gumbel keys have an exact null and take no fake keys');
      }
    }
  }
}

/** Options that do not apply to engines' keys are usage errors, naming the option and the key. */
function checkForeignOptions(
  key: ForeignWatermarkKey,
  numGreenListKeys: number,
  options: ScanCommandOptions,
  source: (name: string) => string | undefined,
): void {
  const fail = (option: string, why: string): never => {
    throw new CliError(
      'TM_ERR_USAGE',
      `${option} ${why} (key ${key.keyId}, ${foreignLabel(key)}); scan engines' keys without it`,
      EXIT.usage,
    );
  };
  if (options.issued !== undefined || options.issuedFile !== undefined) {
    fail(
      options.issued !== undefined ? '--issued' : '--issued-file',
      "selects the windows tracemark's gateway issued; it does not apply to engines' keys",
    );
  }
  if (options.evidence !== undefined) fail('--evidence', "does not support engines' keys yet");
  if (numGreenListKeys === 0) {
    for (const [name, option] of [
      ['fakeKeys', '--fake-keys'],
      ['fakeKeySeed', '--fake-key-seed'],
    ] as const) {
      if (source(name) === 'cli') {
        fail(option, "calibrates tracemark keys; engines' keys have an exact null and take no fake keys");
      }
    }
  }
}

async function inputBytes(paths: readonly string[]): Promise<number> {
  if (paths.length === 0) return WORKER_THRESHOLD_BYTES;
  let bytes = 0;
  for (const path of paths) {
    if (path === '-') bytes += WORKER_THRESHOLD_BYTES;
    else
      bytes += await stat(path).then(
        (s) => (s.isDirectory() ? WORKER_THRESHOLD_BYTES : s.size),
        () => 0,
      );
  }
  return bytes;
}

/**
 * The issued outputs' token ids (a JSONL file by extension, else one text). Any unreadable line is
 * fatal: the supervised filter must know exactly which windows were issued.
 */
async function readIssued(pool: ScanPool, path: string, field: string, io: CliIo): Promise<Uint32Array[]> {
  const outputs: Uint32Array[] = [];
  const fail = (message: string): never => {
    throw new CliError('TM_ERR_ISSUED_FILE', `--issued-file: ${message}`, EXIT.io);
  };
  if (path === '-') fail('must be a file (stdin may hold the corpus)');
  let pieces: Uint32Array[] = [];
  for await (const unit of readInputs([path], { stdin: io.stdin })) {
    if ('lines' in unit) {
      const result = await pool.submit({
        kind: 'lines',
        source: unit.source,
        firstLine: unit.firstLine,
        texts: unit.texts,
        field,
        promptField: false,
      });
      if (result.kind !== 'documents') fail('unexpected result');
      for (const document of (result as Extract<ScanJobResult, { kind: 'documents' }>).documents) {
        if ('error' in document) fail(document.error.message);
        else outputs.push(document.tokens);
      }
    } else if ('piece' in unit) {
      if (unit.error !== undefined) fail(unit.error.message);
      const result = await pool.submit({ kind: 'tokenize', text: unit.text });
      if (result.kind === 'tokens') pieces.push(result.tokens);
      if (unit.last) {
        outputs.push(concat(pieces));
        pieces = [];
      }
    } else {
      fail(unit.error?.message ?? `${path}: cannot read`);
    }
  }
  return outputs;
}

function concat(pieces: readonly Uint32Array[]): Uint32Array {
  if (pieces.length === 1) return pieces[0]!;
  const out = new Uint32Array(pieces.reduce((sum, piece) => sum + piece.length, 0));
  let at = 0;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}

type Pending =
  | { kind: 'documents'; promise: Promise<ScanJobResult>; bytes: number }
  | { kind: 'piece'; promise: Promise<ScanJobResult>; source: string; last: boolean; bytes: number }
  | { kind: 'error'; source: string; error: { code: string; message: string } };

/**
 * The corpus as tokenized documents in input order, tokenized ahead on the workers (a bounded
 * number of batches in flight); unreadable inputs are reported and skipped.
 */
async function* readDocuments(
  pool: ScanPool,
  paths: readonly string[],
  options: ScanCommandOptions,
  io: CliIo,
  summary: Summary,
  onError: (source: string, error: { code: string; message: string }) => void,
  interrupt: InterruptWatch,
  onProgress: () => void,
): AsyncGenerator<ScanDocument> {
  const inputs = readInputs(paths, {
    stdin: io.stdin,
    ...(options.format === undefined ? {} : { format: options.format }),
  })[Symbol.asyncIterator]();
  // Enough for every thread to hold its jobs (WORKER_PREFETCH) while the next is read.
  const maxInFlight = (pool.workers + 1) * (WORKER_PREFETCH + 1);
  const queue: Pending[] = [];
  let exhausted = false;
  let pieces: Uint32Array[] = [];
  const fill = async (): Promise<void> => {
    while (!exhausted && queue.length < maxInFlight) {
      // Raced: stdin may wait for input that never comes.
      const next = await Promise.race([inputs.next(), interrupt.stopped]);
      if (next.done === true) {
        exhausted = true;
        break;
      }
      const unit = next.value;
      if ('lines' in unit) {
        queue.push({
          kind: 'documents',
          bytes: unit.bytes,
          promise: pool.submit({
            kind: 'lines',
            source: unit.source,
            firstLine: unit.firstLine,
            texts: unit.texts,
            ...(options.field === undefined ? {} : { field: options.field }),
            ...(options.promptField === undefined ? {} : { promptField: options.promptField }),
          }),
        });
      } else if ('piece' in unit) {
        if (unit.error !== undefined) queue.push({ kind: 'error', source: unit.source, error: unit.error });
        else {
          queue.push({
            kind: 'piece',
            source: unit.source,
            last: unit.last,
            bytes: unit.bytes,
            promise: pool.submit({ kind: 'tokenize', text: unit.text }),
          });
        }
      } else {
        queue.push({
          kind: 'error',
          source: unit.source,
          error: unit.error ?? { code: 'TM_ERR_IO', message: `${unit.source}: cannot read` },
        });
      }
    }
  };
  for (;;) {
    interrupt.check();
    await fill();
    const entry = queue.shift();
    if (entry === undefined) return;
    if (entry.kind === 'error') {
      // A text file that fails part way (invalid UTF-8, a line too long): its pieces so far are dropped.
      pieces = [];
      summary.documents++;
      onError(entry.source, entry.error);
      continue;
    }
    const result = await Promise.race([entry.promise, interrupt.stopped]);
    summary.bytes += entry.bytes;
    if (entry.kind === 'documents' && result.kind === 'documents') {
      for (const document of result.documents as TokenizedDocument[]) {
        summary.documents++;
        if ('error' in document) onError(document.source, document.error);
        else yield { source: document.source, tokens: document.tokens, prompt: document.prompt };
      }
    } else if (entry.kind === 'piece' && result.kind === 'tokens') {
      pieces.push(result.tokens);
      if (entry.last) {
        summary.documents++;
        yield { source: entry.source, tokens: concat(pieces) };
        pieces = [];
      }
    } else if (entry.kind === 'piece' && result.kind === 'error') {
      // A text the keys' tokenizer cannot read: one error for the document, at its last piece.
      pieces = [];
      if (entry.last) {
        summary.documents++;
        onError(entry.source, {
          code: result.error.code,
          message: `${entry.source}: ${result.error.message}`,
        });
      }
    }
    onProgress();
  }
}
