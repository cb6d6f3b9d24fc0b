/**
 * Throughput of `tracemark detect` and `tracemark scan` as whole processes (start-up, reading, JSON,
 * tokenization, scoring and output included) on a JSONL corpus of human text, against the tokenizer
 * alone in this process: tracemark's byte-pair encoder and gpt-tokenizer, both single-threaded, the
 * time of their encode loop only. The runs are interleaved (round r runs every case once, in turn) and
 * each case reports its median with the spread (min–max) over the rounds, with the load averages seen,
 * since a shared machine's noise reaches every case alike that way. Tokens per second are the corpus's
 * cl100k tokens over the wall time, set against the lm-watermarking reference detector's 3,347
 * tokens/s (the issue's measurement); bench/phases.ts splits one process's time into its phases.
 *
 * Run: pnpm --filter @tracemark/cli bench [-- --megabytes 16 --rounds 5 --workers 0,1,2
 *      --schemes lefthash,selfhash,gumbel --short --cli path/to/other/bin.js]
 *   --megabytes  corpus size (default 16); --short also cuts the same text into ~120-character documents
 *   --workers    detect's worker counts (default 0,1,2); --no-scan skips scan (100 fake keys)
 *   --schemes    key schemes (keygen --scheme; default lefthash); engines' schemes (vllm:gumbel,
 *                synthid:tournament, …) get a fixed engine key (and SynthID an n-gram length of 5)
 *   --cli        a second build to run beside this one (e.g. the last commit's), reported as "other"
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadHumanCorpus } from '@tracemark/lm';
import { ENCODING_FACTS, getTokenizer } from '@tracemark/tokenizers';
import { benchArguments } from './arguments.ts';

const { values } = parseArgs({
  args: benchArguments(),
  options: {
    megabytes: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '5' },
    workers: { type: 'string', default: '0,1,2' },
    schemes: { type: 'string', default: 'lefthash' },
    short: { type: 'boolean', default: false },
    'no-scan': { type: 'boolean', default: false },
    cli: { type: 'string' },
  },
});
const megabytes = Number(values.megabytes);
const rounds = Number(values.rounds);
const workerCounts = values.workers.split(',').map(Number);
const schemes = values.schemes.split(',');
const cli = new URL('../dist/bin.js', import.meta.url).pathname;
const clis: [string, string][] = [['', cli]];
if (values.cli !== undefined) clis.push(['other ', values.cli]);
if (!existsSync(cli)) throw new Error(`${cli} is missing: build first (pnpm build)`);

const directory = mkdtempSync(join(os.tmpdir(), 'tracemark-bench-'));
process.on('exit', () => rmSync(directory, { recursive: true, force: true }));

interface Corpus {
  readonly name: string;
  readonly path: string;
  readonly texts: string[];
  readonly textBytes: number;
  readonly fileBytes: number;
}

const documents = await loadHumanCorpus({ split: 'all' });
function writeCorpus(name: string, pieceLength: number | null): Corpus {
  const lines: string[] = [];
  const texts: string[] = [];
  let fileBytes = 0;
  let textBytes = 0;
  for (let round = 0; fileBytes < megabytes * 1e6; round++) {
    for (const document of documents) {
      const length = pieceLength ?? document.text.length;
      for (let start = 0; start < document.text.length && fileBytes < megabytes * 1e6; start += length) {
        const text = document.text.slice(start, start + length);
        const line = JSON.stringify({ id: `${round}-${document.id}-${start}`, text });
        lines.push(line);
        texts.push(text);
        fileBytes += Buffer.byteLength(line) + 1;
        textBytes += Buffer.byteLength(text);
      }
      if (fileBytes >= megabytes * 1e6) break;
    }
  }
  const path = join(directory, `${name}.jsonl`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return { name, path, texts, textBytes, fileBytes };
}
const corpora = [writeCorpus('documents', null)];
if (values.short) corpora.push(writeCorpus('short', 120));

const keys = schemes.map((scheme) => {
  const path = join(directory, `${scheme.replace(':', '-')}.json`);
  const engineKey = scheme.includes(':') ? ['--engine-key', '12345'] : [];
  const ngram = scheme.startsWith('synthid:') ? ['--ngram-len', '5'] : [];
  const made = spawnSync(
    process.execPath,
    [cli, 'keygen', '--out', path, '--scheme', scheme, ...engineKey, ...ngram, '--json'],
    { encoding: 'utf8' },
  );
  if (made.status !== 0) throw new Error(`keygen --scheme ${scheme} failed: ${made.stderr}`);
  return { scheme, path };
});

// The tokenizers alone, in this process, on the texts detect reads (ours normalizes, as detect does).
const require = createRequire(import.meta.resolve('@tracemark/tokenizers'));
const gptTokenizer = require(`gpt-tokenizer/cjs/encoding/${ENCODING_FACTS.cl100k_base.fastEncodingName}`) as {
  encode(text: string, options: { disallowedSpecial: Set<string> }): number[];
};
const allowSpecialText = { disallowedSpecial: new Set<string>() };
const ours = getTokenizer('cl100k_base');
ours.encode('warm up');
/** The lm-watermarking reference detector's throughput (issue 19): detect must stay 100× ahead of it. */
const REFERENCE_TOKENS_PER_SECOND = 3347;
const corpusTokens = new Map(
  corpora.map((corpus) => [corpus, corpus.texts.reduce((sum, text) => sum + ours.encode(text).length, 0)]),
);
gptTokenizer.encode('warm up', allowSpecialText);
function encodeSeconds(corpus: Corpus, encode: (text: string) => ArrayLike<number>): number {
  const begin = performance.now();
  for (const text of corpus.texts) encode(text);
  return (performance.now() - begin) / 1000;
}

/** CPU seconds of this process's waited-for children (Linux /proc), or NaN elsewhere. */
function childCpuSeconds(): number {
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return Number.NaN;
  }
}

interface Sample {
  readonly seconds: number;
  readonly cpuSeconds: number;
}
function runProcess(binary: string, args: string[]): Sample {
  const cpuBefore = childCpuSeconds();
  const begin = performance.now();
  const result = spawnSync(process.execPath, [binary, ...args], { maxBuffer: 1 << 30, encoding: 'utf8' });
  const seconds = (performance.now() - begin) / 1000;
  if (result.status !== 0) {
    // A build that lacks a scheme (an older one, say) fails its cases; the others still run.
    const said = `${result.stderr}${result.stdout}`.trim().split('\n').at(-1)?.slice(0, 200) ?? '';
    throw new Error(`exit ${result.status}: ${said}`);
  }
  return { seconds, cpuSeconds: childCpuSeconds() - cpuBefore };
}

interface Case {
  readonly name: string;
  readonly corpus: Corpus;
  readonly run: () => Sample;
  readonly samples: Sample[];
  failure?: string;
}
const cases: Case[] = [];
for (const corpus of corpora) {
  cases.push({
    name: 'tokenizer alone: tracemark encode (in-process, one thread)',
    corpus,
    run: () => ({ seconds: encodeSeconds(corpus, (text) => ours.encode(text)), cpuSeconds: Number.NaN }),
    samples: [],
  });
  cases.push({
    name: 'tokenizer alone: gpt-tokenizer encode (in-process, one thread)',
    corpus,
    run: () => ({
      seconds: encodeSeconds(corpus, (text) => gptTokenizer.encode(text, allowSpecialText)),
      cpuSeconds: Number.NaN,
    }),
    samples: [],
  });
  for (const [label, binary] of clis) {
    for (const key of keys) {
      for (const workers of workerCounts) {
        cases.push({
          name: `${label}detect ${key.scheme} --workers ${workers}`,
          corpus,
          run: () =>
            runProcess(binary, [
              'detect',
              '--key',
              key.path,
              corpus.path,
              '--json',
              '--quiet',
              '--workers',
              String(workers),
            ]),
          samples: [],
        });
      }
      if (!values['no-scan']) {
        for (const workers of workerCounts) {
          cases.push({
            name: `${label}scan ${key.scheme} (100 fake keys) --workers ${workers}`,
            corpus,
            run: () =>
              runProcess(binary, [
                'scan',
                '--key',
                key.path,
                corpus.path,
                '--json',
                '--quiet',
                '--workers',
                String(workers),
              ]),
            samples: [],
          });
        }
      }
    }
  }
}

const loads: number[] = [];
for (let round = 0; round < rounds; round++) {
  for (const entry of cases) {
    if (entry.failure !== undefined) continue;
    loads.push(os.loadavg()[0]!);
    try {
      entry.samples.push(entry.run());
    } catch (error) {
      entry.failure = (error as Error).message;
    }
  }
  process.stderr.write(`round ${round + 1} of ${rounds} done\n`);
}

function median(numbers: readonly number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
const seconds = (entry: Case) => entry.samples.map((sample) => sample.seconds);

console.log(
  `# detect and scan throughput\n\nNode ${process.version}, ${os.cpus()[0]?.model ?? 'CPU'}, ${os.availableParallelism()} cores; ` +
    `${rounds} interleaved rounds; 1-minute load average during the runs: median ${median(loads).toFixed(1)}, ` +
    `min ${Math.min(...loads).toFixed(1)}, max ${Math.max(...loads).toFixed(1)}.`,
);
for (const corpus of corpora) {
  const mine = cases.filter((entry) => entry.corpus === corpus);
  const oursSeconds = median(seconds(mine[0]!));
  const gptSeconds = median(seconds(mine[1]!));
  console.log(
    `\nCorpus "${corpus.name}": ${(corpus.fileBytes / 1e6).toFixed(1)} MB JSONL, ${(corpus.textBytes / 1e6).toFixed(1)} MB of text, ` +
      `${corpus.texts.length} documents, ${corpusTokens.get(corpus)} tokens. Throughput is MB of text per second of ` +
      `wall time; "× ours" and "× gpt-tokenizer" divide it by that tokenizer's single-thread throughput (median); ` +
      `"× reference" divides tokens/s by the reference detector's ${REFERENCE_TOKENS_PER_SECOND}.\n`,
  );
  console.log(
    '| run | median s | min–max s | CPU s (median) | MB/s | tokens/s | × ours | × gpt-tokenizer | × reference |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const entry of mine) {
    if (entry.failure !== undefined) {
      console.log(`| ${entry.name} | failed: ${entry.failure.replaceAll('|', '\\|')} | | | | | | | |`);
      continue;
    }
    const wall = median(seconds(entry));
    const cpu = median(entry.samples.map((sample) => sample.cpuSeconds));
    const tokensPerSecond = corpusTokens.get(corpus)! / wall;
    console.log(
      `| ${entry.name} | ${wall.toFixed(2)} | ${Math.min(...seconds(entry)).toFixed(2)}–${Math.max(...seconds(entry)).toFixed(2)} | ` +
        `${Number.isNaN(cpu) ? '–' : cpu.toFixed(2)} | ${(corpus.textBytes / 1e6 / wall).toFixed(2)} | ` +
        `${Math.round(tokensPerSecond)} | ${(oursSeconds / wall).toFixed(2)} | ${(gptSeconds / wall).toFixed(2)} | ` +
        `${Math.round(tokensPerSecond / REFERENCE_TOKENS_PER_SECOND)} |`,
    );
  }
  for (const [label] of clis) {
    for (const key of keys) {
      for (const workers of workerCounts) {
        const detect = mine.find(
          (entry) => entry.name === `${label}detect ${key.scheme} --workers ${workers}`,
        );
        const scan = mine.find(
          (entry) =>
            entry.name.startsWith(`${label}scan ${key.scheme} `) &&
            entry.name.endsWith(`--workers ${workers}`),
        );
        if (detect === undefined || scan === undefined) continue;
        if (detect.failure !== undefined || scan.failure !== undefined) continue;
        console.log(
          `\n${label}scan ÷ detect throughput, ${key.scheme}, --workers ${workers}: ${(median(seconds(detect)) / median(seconds(scan))).toFixed(2)}`,
        );
      }
    }
  }
}
