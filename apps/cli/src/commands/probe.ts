import { createHash } from 'node:crypto';
import { appendFile, open, readFile, truncate } from 'node:fs/promises';
import type { Command } from 'commander';
import { CliError, type CliIo, EXIT, readTextFile } from '../io.ts';
import { parseNumber } from '../options.ts';
import { createProbeClient, type ProbeApi, ProbeRequestError } from '../scan/probe-client.ts';

interface ProbeCommandOptions {
  endpoint: string;
  model: string;
  prompts: string;
  out: string;
  promptField: string;
  maxTokens: number;
  temperature: number;
  concurrency: number;
  rate: number;
  retries: number;
  timeout: number;
  api: string;
  apiKeyEnv?: string;
  json?: boolean;
  quiet?: boolean;
}

/** One line of --out: what `tracemark scan --prompt-field prompt --field output` reads. */
export interface ProbeRecord {
  /** 0-based index of the prompt in --prompts. */
  readonly index: number;
  /** SHA-256 of the prompt's UTF-8 bytes, hex: with the index, the key that resume matches on. */
  readonly promptSha256: string;
  readonly prompt: string;
  readonly output: string;
  readonly model: string;
  readonly finishReason: string | null;
  readonly createdAt: string;
}

/** True for a line that is a whole probe record. */
function isRecord(line: string): boolean {
  try {
    const record = JSON.parse(line) as Partial<ProbeRecord> | null;
    return (
      record !== null &&
      Number.isInteger(record.index) &&
      typeof record.promptSha256 === 'string' &&
      typeof record.output === 'string'
    );
  } catch {
    return false;
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * Prompts from a file: JSONL (.jsonl/.ndjson; one object a line, `field` holding the prompt), or
 * text (one prompt a non-empty line).
 */
async function readPrompts(path: string, field: string): Promise<string[]> {
  const text = await readTextFile(path, 'prompts');
  const lines = text.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  if (!/\.(jsonl|ndjson)$/i.test(path)) return lines.filter((line) => line.trim() !== '');
  const prompts: string[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      throw new CliError('TM_ERR_INVALID_JSON', `${path}:${i + 1}: not valid JSON`, EXIT.io);
    }
    const prompt = (record as Record<string, unknown> | null)?.[field];
    if (typeof prompt !== 'string') {
      throw new CliError(
        'TM_ERR_MISSING_FIELD',
        `${path}:${i + 1}: field "${field}" must be a string`,
        EXIT.io,
      );
    }
    prompts.push(prompt);
  });
  return prompts;
}

/**
 * Reads what an earlier run wrote to --out: the (index, hash) pairs already done. A last line cut
 * short (the run was killed while writing it) is removed; any other unreadable line stops the run.
 */
async function readDone(path: string): Promise<{ done: Set<string>; records: number }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { done: new Set(), records: 0 };
    throw new CliError(
      'TM_ERR_IO',
      `${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      EXIT.io,
    );
  }
  const complete = text.lastIndexOf('\n') + 1;
  if (complete < text.length) {
    const tail = text.slice(complete);
    if (isRecord(tail)) {
      // A whole record without its newline (written by another tool): keep it, end the line.
      await appendFile(path, '\n');
      text += '\n';
    } else {
      // A record cut short by a killed run: drop it, keeping every complete line.
      await truncate(path, Buffer.byteLength(text.slice(0, complete), 'utf8'));
      text = text.slice(0, complete);
    }
  }
  const done = new Set<string>();
  let records = 0;
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    if (!isRecord(line)) {
      throw new CliError(
        'TM_ERR_INVALID_JSON',
        `${path}:${i + 1}: not a probe record; move the file or fix the line before resuming`,
        EXIT.io,
      );
    }
    const record = JSON.parse(line) as ProbeRecord;
    records++;
    done.add(`${record.index}:${record.promptSha256}`);
  });
  return { done, records };
}

export function registerProbe(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('probe')
    .description(
      'sample a suspect OpenAI-compatible endpoint with prompts; writes prompt+output JSONL for `tracemark scan` (resumable)',
    )
    .requiredOption(
      '--endpoint <url>',
      'base URL of the endpoint, e.g. http://host:8000 (POST /v1/chat/completions)',
    )
    .requiredOption('--model <name>', 'model name sent in each request')
    .requiredOption('--prompts <file>', 'prompts: JSONL (.jsonl, a "prompt" field) or text (one a line)')
    .requiredOption('--out <file>', 'output JSONL, appended to; a rerun skips the prompts already there')
    .option('--prompt-field <name>', 'field of the prompts JSONL holding the prompt', 'prompt')
    .option(
      '--max-tokens <n>',
      'max_tokens of each request',
      parseNumber('--max-tokens', 1, 1_000_000, true),
      256,
    )
    .option('--temperature <t>', 'sampling temperature', parseNumber('--temperature', 0, 2), 1)
    .option('--concurrency <c>', 'requests in flight', parseNumber('--concurrency', 1, 256, true), 4)
    .option(
      '--rate <r>',
      'requests started per second at most (0: no limit)',
      parseNumber('--rate', 0, 10_000),
      5,
    )
    .option('--retries <n>', 'retries of a failed request', parseNumber('--retries', 0, 100, true), 6)
    .option('--timeout <seconds>', 'timeout of one request', parseNumber('--timeout', 0.001, 3600), 120)
    .option('--api <api>', 'chat (/v1/chat/completions) or completions (/v1/completions)', 'chat')
    .option('--api-key-env <var>', 'environment variable holding the API key (sent as a Bearer token)')
    .option('--json', 'print a JSON summary')
    .option('--quiet', 'no progress on stderr')
    .action(async (options: ProbeCommandOptions) => {
      if (options.api !== 'chat' && options.api !== 'completions') {
        throw new CliError('TM_ERR_USAGE', '--api must be chat or completions', EXIT.usage);
      }
      let endpoint: URL;
      try {
        endpoint = new URL(options.endpoint);
        if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:') throw new Error('scheme');
      } catch {
        throw new CliError('TM_ERR_USAGE', `--endpoint: not an http(s) URL: ${options.endpoint}`, EXIT.usage);
      }
      let apiKey: string | undefined;
      if (options.apiKeyEnv !== undefined) {
        apiKey = io.env[options.apiKeyEnv];
        if (apiKey === undefined || apiKey === '') {
          throw new CliError(
            'TM_ERR_USAGE',
            `--api-key-env: the variable ${options.apiKeyEnv} is not set`,
            EXIT.usage,
          );
        }
      }
      const prompts = await readPrompts(options.prompts, options.promptField);
      const { done, records } = await readDone(options.out);
      const hashes = prompts.map(sha256);
      const todo = prompts.map((_, index) => index).filter((index) => !done.has(`${index}:${hashes[index]}`));
      const alreadyDone = prompts.length - todo.length;
      const stale = records - alreadyDone;
      if (stale > 0 && !options.json) {
        io.stderr.write(
          `warning: ${options.out} holds ${stale} records that match no prompt of ${options.prompts}\n`,
        );
      }
      const client = createProbeClient({
        endpoint: endpoint.href,
        api: options.api as ProbeApi,
        model: options.model,
        maxTokens: options.maxTokens,
        temperature: options.temperature,
        retries: options.retries,
        timeoutMs: options.timeout * 1000,
        rate: options.rate,
        ...(apiKey === undefined ? {} : { apiKey }),
      });
      const handle = await open(options.out, 'a', 0o644).catch((error: NodeJS.ErrnoException) => {
        throw new CliError('TM_ERR_IO', `${options.out}: cannot write (${error.code ?? 'error'})`, EXIT.io);
      });
      const started = performance.now();
      let probed = 0;
      let failed = 0;
      let fatal: ProbeRequestError | null = null;
      const failures: { index: number; message: string }[] = [];
      const showProgress = io.stderrIsTTY && options.quiet !== true && options.json !== true;
      const progress = () => {
        if (showProgress) {
          io.stderr.write(
            `\r\u001b[2K${alreadyDone + probed}/${prompts.length} prompts, ${failed} failed, ${client.retries} retries`,
          );
        }
      };
      // Appends are serialized, one write a record, so a killed run leaves whole lines (or one cut line).
      let writing: Promise<unknown> = Promise.resolve();
      const append = (record: ProbeRecord): Promise<unknown> => {
        writing = writing.then(() => handle.write(`${JSON.stringify(record)}\n`));
        return writing;
      };
      let next = 0;
      const worker = async (): Promise<void> => {
        while (fatal === null && next < todo.length) {
          const index = todo[next++]!;
          const prompt = prompts[index]!;
          try {
            const completion = await client.complete(prompt);
            await append({
              index,
              promptSha256: hashes[index]!,
              prompt,
              output: completion.output,
              model: completion.model ?? options.model,
              finishReason: completion.finishReason,
              createdAt: new Date().toISOString(),
            });
            probed++;
          } catch (error) {
            if (!(error instanceof ProbeRequestError)) throw error;
            if (error.fatal) fatal = error;
            else {
              failed++;
              if (failures.length < 100) failures.push({ index, message: error.message });
              if (!options.json)
                io.stderr.write(
                  `${showProgress ? '\r\u001b[2K' : ''}error: prompt ${index}: ${error.message}\n`,
                );
            }
          }
          progress();
        }
      };
      try {
        await Promise.all(
          Array.from({ length: Math.min(options.concurrency, Math.max(1, todo.length)) }, worker),
        );
        await writing;
        await handle.datasync().catch(() => undefined);
      } finally {
        await handle.close();
        if (showProgress) io.stderr.write('\r\u001b[2K');
      }
      // (set in the workers' closures, which TypeScript's narrowing does not follow)
      const stopped = fatal as ProbeRequestError | null;
      if (stopped !== null) {
        const auth = stopped.status === 401 || stopped.status === 403;
        throw new CliError(auth ? 'TM_ERR_PROBE_AUTH' : 'TM_ERR_PROBE_REDIRECT', stopped.message, EXIT.io);
      }
      const seconds = (performance.now() - started) / 1000;
      const summary = {
        prompts: prompts.length,
        alreadyDone,
        probed,
        failed,
        retries: client.retries,
        out: options.out,
        seconds: Number(seconds.toFixed(3)),
      };
      if (options.json) io.stdout.write(`${JSON.stringify({ ...summary, failures })}\n`);
      else {
        io.stdout.write(
          `probed ${probed} prompts (${alreadyDone} already in ${options.out}), ${failed} failed, ${client.retries} retries, ${seconds.toFixed(1)} s\n`,
        );
        if (failed > 0) io.stdout.write(`run the same command again to retry the ${failed} failed prompts\n`);
      }
      setExit(failed > 0 ? EXIT.io : EXIT.ok);
    });
}
