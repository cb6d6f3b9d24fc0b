/**
 * The extraction experiment: the attack of issue 6, end to end, through the real gateway.
 *
 * 1. A gateway (`startServer`, embedded model, watermarked with a LeftHash(h) key) serves an attacker
 *    account, which sends many varied chat prompts and stores the answers.
 * 2. A student n-gram model (`trainNgramModel`) is trained on S tokens, a fraction ρ of them the
 *    stored answers and the rest human text (the human corpus' train split).
 * 3. The student is served on an OpenAI-compatible endpoint (node:http, chat completions sampled from
 *    the student, no watermark); `tracemark probe` samples it with fresh prompts; `tracemark scan`
 *    tests the outputs, supervised (`--issued` on the gateway's database) and unsupervised.
 *
 * Reported: log10 p (Holm-adjusted over the one key; exact binomial), scored tokens, verdict, the
 * fake-key rank and KS p-value, per (ρ, h), supervised and unsupervised; ρ = 0 is repeated over
 * several probe seeds. Every random choice derives from a text label.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { run as runCli } from '@tracemark/cli';
import { createWatermarkKey, generateTokens, serializeKeyFile } from '@tracemark/core';
import { formatChatPrompt, resolveConfig, startServer } from '@tracemark/gateway';
import { loadHumanCorpus, logitsSource, type NgramModel, trainNgramModel } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { loadAverage } from '../environment.ts';
import { saveChart } from '../plot.ts';
import { integer, reportHeader, rounded, writeResult } from '../report.ts';

export const EXTRACTION_RHOS: readonly number[] = [0, 0.01, 0.02, 0.05, 0.1, 0.25, 1];
export const EXTRACTION_WIDTHS: readonly number[] = [1, 2, 4];
/** The goal of issue 6: at ρ = 5% (h = 1, the default), log10 p ≤ −10 from at most 200k scored tokens. */
export const GOAL_RHO = 0.05;
export const GOAL_WIDTH = 1;

/** A watermark scheme of the grid, with the shares ρ its students are trained on. */
export interface ExtractionScheme {
  readonly name: 'lefthash' | 'selfhash';
  readonly contextWidth: number;
  readonly rhos: readonly number[];
}

export interface ExtractionConfig {
  readonly schemes: readonly ExtractionScheme[];
  /** Student training tokens (answers + human text). */
  readonly trainTokens: number;
  /** Attacker requests at ρ = 100% and their max_tokens (a scheme whose largest ρ is less needs fewer). */
  readonly harvestRequests: number;
  readonly harvestMaxTokens: number;
  /** Probe prompts sent to the student and their max_tokens. */
  readonly probePrompts: number;
  readonly probeMaxTokens: number;
  /** Probe repetitions (fresh prompts and sampling seeds) at ρ = 0. */
  readonly nullSeeds: number;
  readonly studentOrder: number;
  readonly fakeKeys: number;
  /** Seconds after which remaining (ρ, h) cells are skipped (reported as not run). */
  readonly budgetSeconds: number;
  /**
   * The goal cell (h = 1, ρ = 5%) is probed a second time with this many fresh prompts (0: not run),
   * and its student is also trained on these smaller totals (same ρ), to show how the evidence grows
   * with the amount of watermarked text the student saw.
   */
  readonly goalProbePrompts: number;
  readonly goalTrainTokens: readonly number[];
}

export const FULL_CONFIG: ExtractionConfig = {
  schemes: [
    ...EXTRACTION_WIDTHS.map((contextWidth) => ({
      name: 'lefthash' as const,
      contextWidth,
      rhos: EXTRACTION_RHOS,
    })),
    // The runner-up of the defaults decision (docs/decisions/2026-11-22-defaults.md), at fewer shares.
    { name: 'selfhash', contextWidth: 4, rhos: [0, 0.05, 0.1, 0.25] },
  ],
  trainTokens: 1_000_000,
  harvestRequests: 2_550,
  harvestMaxTokens: 400,
  probePrompts: 300,
  probeMaxTokens: 200,
  nullSeeds: 3,
  studentOrder: 4,
  fakeKeys: 100,
  budgetSeconds: 75 * 60,
  goalProbePrompts: 1_000,
  goalTrainTokens: [200_000, 500_000],
};

export const QUICK_CONFIG: ExtractionConfig = {
  schemes: [{ name: 'lefthash', contextWidth: 1, rhos: [0, 0.25, 1] }],
  trainTokens: 40_000,
  harvestRequests: 220,
  harvestMaxTokens: 200,
  probePrompts: 100,
  probeMaxTokens: 150,
  nullSeeds: 2,
  studentOrder: 4,
  fakeKeys: 40,
  budgetSeconds: 120,
  goalProbePrompts: 0,
  goalTrainTokens: [],
};

export interface ScanNumbers {
  readonly numScored: number;
  readonly numGreen: number;
  readonly log10P: number;
  readonly verdict: string;
  readonly rank: number;
  readonly ksPValue: number;
  readonly uniform: boolean | null;
  readonly dose: number | null;
}

export interface ExtractionCell {
  readonly scheme: ExtractionScheme['name'];
  readonly h: number;
  readonly rho: number;
  /** Probe repetition (0 unless ρ = 0). */
  readonly seed: number;
  /** `grid`: the (ρ, h) grid; `goal`: the larger probe of the goal cell; `size`: a smaller training total. */
  readonly kind: 'grid' | 'goal' | 'size';
  readonly trainTokens: number;
  readonly probePrompts: number;
  readonly answerTokens: number;
  readonly humanTokens: number;
  readonly sampledTokens: number;
  readonly supervised: ScanNumbers;
  readonly unsupervised: ScanNumbers;
  readonly seconds: number;
}

export interface ExtractionResult {
  readonly config: ExtractionConfig;
  readonly harvest: readonly {
    readonly scheme: ExtractionScheme['name'];
    readonly h: number;
    readonly requests: number;
    readonly tokens: number;
    readonly issuedGreenFraction: number | null;
    readonly seconds: number;
  }[];
  readonly cells: readonly ExtractionCell[];
  /** (ρ, h) cells skipped for the time budget. */
  readonly skipped: readonly {
    readonly scheme: ExtractionScheme['name'];
    readonly h: number;
    readonly rho: number;
  }[];
}

const tokenizer = getTokenizer('cl100k_base');

function labelNumber(label: string): number {
  return createHash('sha256').update(`tracemark/research/extraction/${label}`).digest().readUInt32LE(0);
}

function shuffle<T>(items: readonly T[], label: string): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = labelNumber(`${label}/${i}`) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const TOPICS = [
  'the history of',
  'how to cook',
  'the economics of',
  'a short story about',
  'the science behind',
  'an argument for',
  'the geography of',
  'a letter about',
  'the rules of',
  'a review of',
];
const SUBJECTS = [
  'rivers',
  'bread',
  'railways',
  'a lighthouse keeper',
  'volcanoes',
  'public libraries',
  'mountain villages',
  'the winter harvest',
  'chess',
  'an old film',
  'copper mining',
  'city gardens',
  'sailing ships',
  'the postal service',
  'bees',
];

/** Varied prompts; `label` keeps the attacker's and the probe's apart. */
function prompts(count: number, label: string): string[] {
  return Array.from({ length: count }, (_, i) => {
    const n = labelNumber(`${label}/prompt/${i}`);
    return `Write ${TOPICS[n % TOPICS.length]} ${SUBJECTS[(n >>> 8) % SUBJECTS.length]} (${label} ${i}).`;
  });
}

interface CliResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

async function cli(argv: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  let out = '';
  let err = '';
  const io = {
    stdout: { write: (text: string) => void (out += text) },
    stderr: { write: (text: string) => void (err += text) },
    stdin: new PassThrough(),
    stdoutIsTTY: false,
    stderrIsTTY: false,
    env: { ...process.env, ...env },
  } as unknown as Parameters<typeof runCli>[1];
  const code = await runCli(argv, io);
  return { code, out, err };
}

/** The student on an OpenAI-compatible endpoint: POST /v1/chat/completions, sampled, no watermark. */
async function serveStudent(
  model: NgramModel,
  label: string,
): Promise<{ url: string; close(): Promise<void> }> {
  const source = logitsSource(model);
  let counter = 0;
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    if (request.method !== 'POST' || request.url !== '/v1/chat/completions') {
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { message: 'not found' } }));
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      model: string;
      messages: { content: string }[];
      max_tokens?: number;
      temperature?: number;
    };
    const prompt = tokenizer.encode(formatChatPrompt(body.messages));
    const ids: number[] = [];
    for await (const { token } of generateTokens({
      source,
      prompt,
      maxTokens: body.max_tokens ?? 200,
      watermarker: null,
      temperature: body.temperature ?? 1,
      // From the request itself, not its arrival order, so concurrent probes sample the same texts.
      seed: labelNumber(
        `${label}/sample/${createHash('sha256').update(JSON.stringify(body.messages)).digest('hex')}`,
      ),
    })) {
      ids.push(token);
    }
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(
      JSON.stringify({
        id: `chatcmpl-student-${++counter}`,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: body.model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: tokenizer.decode(ids) },
            finish_reason: ids.length >= (body.max_tokens ?? 200) ? 'length' : 'stop',
          },
        ],
        usage: {
          prompt_tokens: prompt.length,
          completion_tokens: ids.length,
          total_tokens: prompt.length + ids.length,
        },
      }),
    );
  };
  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      response.writeHead(500, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { message: String(error) } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function scanNumbers(json: string): ScanNumbers {
  const report = JSON.parse(json) as {
    verdict: string;
    keys: {
      numScored: number;
      numGreen: number;
      log10PAdjusted: number;
      calibration: { rank: number; ksPValue: number; uniform: boolean | null };
      dose: { estimate: number } | null;
    }[];
  };
  const key = report.keys[0]!;
  return {
    numScored: key.numScored,
    numGreen: key.numGreen,
    log10P: key.log10PAdjusted,
    verdict: report.verdict,
    rank: key.calibration.rank,
    ksPValue: key.calibration.ksPValue,
    uniform: key.calibration.uniform,
    dose: key.dose?.estimate ?? null,
  };
}

interface Harvest {
  readonly answers: Uint32Array[];
  readonly tokens: number;
  readonly seconds: number;
  readonly issuedGreenFraction: number | null;
}

/**
 * Runs the grid. Per scheme: a gateway with its key, the attacker's harvest, then per ρ a student,
 * its endpoint, a probe and two scans.
 */
export async function runExtractionGrid(
  config: ExtractionConfig,
  log: (message: string) => void = () => undefined,
): Promise<ExtractionResult> {
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  const work = mkdtempSync(join(tmpdir(), 'tracemark-extraction-'));
  const cells: ExtractionCell[] = [];
  const skipped: ExtractionResult['skipped'][number][] = [];
  const harvests: ExtractionResult['harvest'][number][] = [];
  const human = shuffle(
    (await loadHumanCorpus({ split: 'train' })).map((document) => tokenizer.encodeFast(document.text)),
    'human-order',
  );
  try {
    for (const scheme of config.schemes) {
      const h = scheme.contextWidth;
      // Labels: LeftHash(h) keeps the plain `h${h}`, other schemes prefix their name.
      const tag = scheme.name === 'lefthash' ? `h${h}` : `${scheme.name}-h${h}`;
      if (elapsed() > config.budgetSeconds) {
        for (const rho of scheme.rhos) skipped.push({ scheme: scheme.name, h, rho });
        continue;
      }
      const dataDir = join(work, `gateway-${tag}`);
      const keyFile = join(work, `key-${tag}.json`);
      const key = createWatermarkKey({
        secret: createHash('sha256').update(`tracemark/research/extraction/key/${tag}`).digest(),
        scheme: { name: scheme.name, contextWidth: h },
      });
      writeFileSync(keyFile, serializeKeyFile(key));
      const gateway = await startServer(
        resolveConfig({ port: 0, host: '127.0.0.1', dataDir, keyFile }, { ...process.env }),
        { logger: false, handleSignals: false },
      );
      let harvest: Harvest;
      try {
        const requests = Math.ceil(config.harvestRequests * Math.max(...scheme.rhos));
        harvest = await harvestAnswers(
          gateway.url,
          gateway.firstStart.devApiKey!,
          config,
          requests,
          tag,
          log,
        );
      } catch (error) {
        await gateway.close();
        throw error;
      }
      // The gateway stops; its database stays for the supervised scans (opened read-only).
      await gateway.close();
      /** Trains a student on `trainTokens` tokens (a share ρ of them answers), probes it, scans. */
      const runStudent = async (
        rho: number,
        trainTokens: number,
        seeds: number,
        probePrompts: number,
        kind: ExtractionCell['kind'],
      ): Promise<void> => {
        const answerBudget = Math.round(rho * trainTokens);
        // An answer may end early (a stop); a harvest short by more than 1% would misstate ρ.
        if (answerBudget > 1.01 * harvest.tokens) {
          throw new Error(
            `ρ = ${rho} of ${trainTokens} tokens needs more than the ${harvest.tokens} harvested`,
          );
        }
        const documents: Uint32Array[] = [];
        let answerTokens = 0;
        for (const answer of harvest.answers) {
          if (answerTokens >= answerBudget) break;
          const take = answer.subarray(0, Math.min(answer.length, answerBudget - answerTokens));
          documents.push(take);
          answerTokens += take.length;
        }
        let humanTokens = 0;
        for (const document of human) {
          if (humanTokens >= trainTokens - answerTokens) break;
          const take = document.subarray(
            0,
            Math.min(document.length, trainTokens - answerTokens - humanTokens),
          );
          documents.push(take);
          humanTokens += take.length;
        }
        const t0 = performance.now();
        const student = await trainNgramModel({
          documents: shuffle(
            documents,
            `mix/${tag}/rho${rho}${trainTokens === config.trainTokens ? '' : `/size${trainTokens}`}`,
          ),
          vocabSize: tokenizer.vocabSize,
          tokenizerId: 'cl100k_base',
          order: config.studentOrder,
        });
        for (let seed = 0; seed < seeds; seed++) {
          const cellStarted = performance.now();
          const label =
            kind === 'grid'
              ? `${tag}/rho${rho}/seed${seed}`
              : kind === 'goal'
                ? `${tag}/rho${rho}/goal`
                : `${tag}/rho${rho}/size${trainTokens}`;
          const endpoint = await serveStudent(student, label);
          const name = label.replaceAll('/', '-');
          const promptsFile = join(work, `probe-${name}.txt`);
          const outputs = join(work, `probe-${name}.jsonl`);
          writeFileSync(promptsFile, `${prompts(probePrompts, `probe/${label}`).join('\n')}\n`);
          let probe: CliResult;
          try {
            probe = await cli([
              'probe',
              '--endpoint',
              endpoint.url,
              '--model',
              'student',
              '--prompts',
              promptsFile,
              '--out',
              outputs,
              '--max-tokens',
              String(config.probeMaxTokens),
              '--concurrency',
              '2',
              '--rate',
              '0',
              '--quiet',
            ]);
          } finally {
            await endpoint.close();
          }
          if (probe.code !== 0) throw new Error(`probe failed (${probe.code}): ${probe.err}`);
          const sampledTokens = readFileSync(outputs, 'utf8')
            .split('\n')
            .filter((line) => line !== '')
            .reduce(
              (sum, line) =>
                sum + tokenizer.encodeFast((JSON.parse(line) as { output: string }).output).length,
              0,
            );
          const common = [
            'scan',
            '--key',
            keyFile,
            '--field',
            'output',
            '--prompt-field',
            'prompt',
            '--fake-keys',
            String(config.fakeKeys),
            '--workers',
            '0',
            '--json',
            outputs,
          ];
          const supervised = await cli([...common, '--issued', dataDir]);
          const unsupervised = await cli(common);
          if (supervised.out === '' || unsupervised.out === '') {
            throw new Error(`scan failed: ${supervised.err}${unsupervised.err}`);
          }
          const cell: ExtractionCell = {
            scheme: scheme.name,
            h,
            rho,
            seed,
            kind,
            trainTokens,
            probePrompts,
            answerTokens,
            humanTokens,
            sampledTokens,
            supervised: scanNumbers(supervised.out),
            unsupervised: scanNumbers(unsupervised.out),
            seconds: (performance.now() - (seed === 0 ? t0 : cellStarted)) / 1000,
          };
          cells.push(cell);
          log(
            `extraction: ${tag} ρ=${rho} ${kind} (${trainTokens} training tokens, ${probePrompts} prompts) seed ${seed}: supervised log10 p ${cell.supervised.log10P.toFixed(1)} (${cell.supervised.numScored} scored, ${cell.supervised.verdict}), unsupervised ${cell.unsupervised.log10P.toFixed(1)} (${cell.unsupervised.numScored}, ${cell.unsupervised.verdict}); ${cell.seconds.toFixed(1)} s`,
          );
        }
      };
      for (const rho of scheme.rhos) {
        if (elapsed() > config.budgetSeconds) {
          skipped.push({ scheme: scheme.name, h, rho });
          continue;
        }
        await runStudent(
          rho,
          config.trainTokens,
          rho === 0 ? config.nullSeeds : 1,
          config.probePrompts,
          'grid',
        );
      }
      if (scheme.name === 'lefthash' && h === GOAL_WIDTH && scheme.rhos.includes(GOAL_RHO)) {
        if (config.goalProbePrompts > 0) {
          await runStudent(GOAL_RHO, config.trainTokens, 1, config.goalProbePrompts, 'goal');
        }
        for (const trainTokens of config.goalTrainTokens) {
          await runStudent(GOAL_RHO, trainTokens, 1, config.probePrompts, 'size');
        }
      }
      harvests.push({
        scheme: scheme.name,
        h,
        requests: harvest.answers.length,
        tokens: harvest.tokens,
        issuedGreenFraction: harvest.issuedGreenFraction,
        seconds: harvest.seconds,
      });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { config, harvest: harvests, cells, skipped };
}

/** The attacker: an account of its own, many varied prompts, the answers stored. */
async function harvestAnswers(
  url: string,
  adminKey: string,
  config: ExtractionConfig,
  requests: number,
  tag: string,
  log: (message: string) => void,
): Promise<Harvest> {
  const started = performance.now();
  const post = async <T>(path: string, key: string, body: unknown): Promise<T> => {
    const response = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  };
  const created = await post<{ key: string }>('/v1/admin/keys', adminKey, {
    scopes: ['generate'],
    account: 'attacker',
    name: 'attacker',
    rateLimitPerMinute: 100_000,
    // The default daily quota (1M tokens) would stop the harvest: this attacker is a large customer.
    dailyTokenQuota: 100_000_000,
  });
  const attacker = created.key;
  const questions = prompts(requests, `attacker/${tag}`);
  const answers: Uint32Array[] = new Array(questions.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= questions.length) return;
      const completion = await post<{ choices: { message: { content: string } }[] }>(
        '/v1/chat/completions',
        attacker,
        {
          model: 'tracemark-ngram',
          messages: [{ role: 'user', content: questions[i] }],
          max_tokens: config.harvestMaxTokens,
          temperature: 1,
          seed: labelNumber(`attacker/${tag}/seed/${i}`),
        },
      );
      answers[i] = tokenizer.encodeFast(completion.choices[0]!.message.content);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  const tokens = answers.reduce((sum, answer) => sum + answer.length, 0);
  const seconds = (performance.now() - started) / 1000;
  log(`extraction: ${tag}: harvested ${answers.length} answers, ${tokens} tokens in ${seconds.toFixed(1)} s`);
  return { answers, tokens, seconds, issuedGreenFraction: null };
}

export interface ExtractionGoal {
  readonly h: number;
  readonly kind: ExtractionCell['kind'];
  readonly probePrompts: number;
  readonly supervisedLog10P: number;
  readonly supervisedScored: number;
  readonly unsupervisedLog10P: number;
  readonly unsupervisedScored: number;
  readonly met: boolean;
}

/** research/results/extraction.json. */
export interface ExtractionSummary {
  readonly experiment: 'extraction';
  readonly quick: boolean;
  readonly config: ExtractionConfig;
  readonly run: {
    readonly seconds: number;
    readonly workers: number;
    readonly loadAtStart: number;
    readonly loadAtEnd: number;
  };
  readonly harvest: ExtractionResult['harvest'];
  readonly cells: readonly ExtractionCell[];
  readonly skipped: ExtractionResult['skipped'];
  readonly goals: {
    readonly rho5: readonly ExtractionGoal[];
    readonly nullRadioactive: number;
    readonly nullRuns: number;
  };
}

export interface ExtractionContext {
  readonly quick: boolean;
  readonly outDir: string;
  readonly workers: number;
  readonly log: (message: string) => void;
}

/** "LeftHash(1)", "SelfHash(4)". */
export const schemeName = (cell: { readonly scheme: ExtractionScheme['name']; readonly h: number }): string =>
  `${cell.scheme === 'lefthash' ? 'LeftHash' : 'SelfHash'}(${cell.h})`;

/** The goal of issue 6 is stated for the default scheme, LeftHash(1), at ρ = 5%. */
export const isGoalCell = (cell: ExtractionCell): boolean =>
  cell.scheme === 'lefthash' && cell.h === GOAL_WIDTH && cell.rho === GOAL_RHO;

/** The goal's bar: log10 p ≤ −10 (the stronger scan) from at most 200k scored tokens (either scan). */
const meetsGoal = (cell: ExtractionCell): boolean =>
  Math.min(cell.supervised.log10P, cell.unsupervised.log10P) <= -10 &&
  Math.max(cell.supervised.numScored, cell.unsupervised.numScored) <= 200_000;

const percent = (rho: number) => `${Number((100 * rho).toFixed(2))}%`;
const log10 = (value: number) => (value <= -1000 ? value.toFixed(0) : value.toFixed(1));

/**
 * `TRACEMARK_RESEARCH_SUBSET=gumbel pnpm research extraction [--quick]`: the Gumbel-max subset
 * ({@link runGumbelExtraction}) instead of the grid.
 */
export const EXTRACTION_SUBSET_VARIABLE = 'TRACEMARK_RESEARCH_SUBSET';

/** `pnpm research extraction [--quick]`: the grid, research/results/extraction.md, .json and the plot. */
export async function runExtraction(
  context: ExtractionContext,
): Promise<ExtractionSummary | GumbelExtractionSummary> {
  if (process.env[EXTRACTION_SUBSET_VARIABLE] === 'gumbel') return runGumbelExtraction(context);
  const startedAt = performance.now();
  const loadAtStart = loadAverage();
  const config = context.quick ? QUICK_CONFIG : FULL_CONFIG;
  const result = await runExtractionGrid(config, context.log);
  const run = {
    seconds: (performance.now() - startedAt) / 1000,
    workers: context.workers,
    loadAtStart,
    loadAtEnd: loadAverage(),
  };
  const gridCells = result.cells.filter((cell) => cell.kind === 'grid');
  const nullCells = gridCells.filter((cell) => cell.rho === 0);
  const goalCells = result.cells.filter(
    (cell) => isGoalCell(cell) && cell.trainTokens === config.trainTokens,
  );
  const summary: ExtractionSummary = {
    experiment: 'extraction',
    quick: context.quick,
    config,
    run,
    harvest: result.harvest,
    cells: result.cells,
    skipped: result.skipped,
    goals: {
      rho5: goalCells.map((cell) => ({
        h: cell.h,
        kind: cell.kind,
        probePrompts: cell.probePrompts,
        supervisedLog10P: cell.supervised.log10P,
        supervisedScored: cell.supervised.numScored,
        unsupervisedLog10P: cell.unsupervised.log10P,
        unsupervisedScored: cell.unsupervised.numScored,
        met: meetsGoal(cell),
      })),
      nullRadioactive: nullCells.filter(
        (cell) => cell.supervised.verdict === 'radioactive' || cell.unsupervised.verdict === 'radioactive',
      ).length,
      nullRuns: nullCells.length,
    },
  };
  await writeResult(context.outDir, 'extraction.json', `${JSON.stringify(rounded(summary), null, 2)}\n`);
  await renderExtraction(summary, context);
  return summary;
}

/** Writes extraction.md and the plot from a summary (`pnpm research extraction --render` re-renders the committed one). */
export async function renderExtraction(
  summary: ExtractionSummary,
  context: ExtractionContext,
): Promise<void> {
  const { config, quick } = summary;
  const result = { cells: summary.cells, harvest: summary.harvest, skipped: summary.skipped };
  const gridCells = result.cells.filter((cell) => cell.kind === 'grid');
  const report = reportHeader(
    {
      name: 'extraction' as never,
      quick,
      outDir: context.outDir,
      workers: summary.run.workers,
      log: context.log,
    },
    'Extraction: radioactivity of a student trained on the gateway’s outputs',
    'every choice derives from a label under tracemark/research/extraction/ (keys, prompts, sampling seeds, the training mix)',
    0,
    summary.run.loadAtStart,
    summary.run,
  );
  report.paragraph(
    'The attack of issue 6 end to end through the real gateway: an attacker account sends varied chat prompts to the gateway (embedded model, watermarked with a LeftHash(h) or SelfHash(h) key, γ = 0.25, δ = 2; one gateway, key and harvest per scheme) and stores the answers; a student n-gram model (order ' +
      `${config.studentOrder}) is trained on ${integer(config.trainTokens)} tokens of which a fraction ρ are those answers and the rest human text (train split); the student is served on an OpenAI-compatible endpoint; \`tracemark probe\` samples it with ${config.probePrompts} fresh prompts (${config.probeMaxTokens} tokens each); \`tracemark scan\` tests the outputs supervised (\`--issued\` on the gateway's database: only windows that occur in issued outputs) and unsupervised, with ${config.fakeKeys} fake keys. log10 p is the exact binomial tail after dedup and prompt exclusion. ρ = 0 is probed ${config.nullSeeds} times with fresh prompts and sampling seeds.`,
  );
  const rows = gridCells.map((cell) => [
    schemeName(cell),
    percent(cell.rho),
    cell.seed,
    integer(cell.sampledTokens),
    `${log10(cell.supervised.log10P)} (${integer(cell.supervised.numScored)})`,
    cell.supervised.verdict,
    `${log10(cell.unsupervised.log10P)} (${integer(cell.unsupervised.numScored)})`,
    cell.unsupervised.verdict,
    `${cell.supervised.rank} / ${cell.unsupervised.rank}`,
    `${cell.supervised.ksPValue.toPrecision(2)} / ${cell.unsupervised.ksPValue.toPrecision(2)}`,
  ]);
  report.heading(2, 'log10 p against ρ and the scheme');
  report.table(
    [
      'scheme',
      'ρ',
      'probe seed',
      'sampled tokens',
      'supervised log10 p (scored)',
      'verdict',
      'unsupervised log10 p (scored)',
      'verdict',
      'fake-key rank (sup. / unsup.)',
      'KS p (sup. / unsup.)',
    ],
    rows,
  );
  if (result.skipped.length > 0) {
    report.paragraph(
      `Not run within the ${Math.round(config.budgetSeconds / 60)}-minute budget: ${result.skipped.map((s) => `${schemeName(s)}, ρ = ${percent(s.rho)}`).join('; ')}.`,
    );
  }
  report.heading(2, 'Goals');
  report.bullets([
    ...summary.goals.rho5.map(
      (goal) =>
        `ρ = 5%, LeftHash(${goal.h}), ${goal.probePrompts} probe prompts: supervised log10 p ${log10(goal.supervisedLog10P)} from ${integer(goal.supervisedScored)} scored tokens, unsupervised ${log10(goal.unsupervisedLog10P)} from ${integer(goal.unsupervisedScored)}: goal (≤ −10 from ≤ 200k) ${goal.met ? 'met' : 'NOT met'}`,
    ),
    `ρ = 0: ${summary.goals.nullRadioactive} radioactive verdicts in ${summary.goals.nullRuns} probe runs × 2 scans`,
    `Harvest: ${result.harvest.map((hv) => `${schemeName(hv)}: ${hv.requests} answers, ${integer(hv.tokens)} tokens in ${hv.seconds.toFixed(0)} s`).join('; ')}`,
  ]);
  const goalRows = result.cells
    .filter(isGoalCell)
    .sort((a, b) => a.trainTokens - b.trainTokens || a.probePrompts - b.probePrompts);
  if (goalRows.length > 0) {
    report.heading(
      2,
      `The goal cell (LeftHash(${GOAL_WIDTH}), ρ = ${percent(GOAL_RHO)}): probe size and training total`,
    );
    report.paragraph(
      'The same harvest and key. The training total sets how many watermarked tokens the student saw at a fixed share ρ; the probe size sets how many tokens the scan reads.',
    );
    report.table(
      [
        'training tokens',
        'of which answers',
        'probe prompts',
        'sampled tokens',
        'supervised log10 p (scored)',
        'verdict',
        'unsupervised log10 p (scored)',
        'verdict',
        'goal',
      ],
      goalRows.map((cell) => [
        integer(cell.trainTokens),
        integer(cell.answerTokens),
        integer(cell.probePrompts),
        integer(cell.sampledTokens),
        `${log10(cell.supervised.log10P)} (${integer(cell.supervised.numScored)})`,
        cell.supervised.verdict,
        `${log10(cell.unsupervised.log10P)} (${integer(cell.unsupervised.numScored)})`,
        cell.unsupervised.verdict,
        meetsGoal(cell) ? 'met' : 'not met',
      ]),
    );
  }
  const plotted = gridCells
    .filter((cell) => cell.seed === 0)
    .flatMap((cell) => [
      {
        scheme: schemeName(cell),
        mode: 'supervised',
        rho: Math.max(cell.rho, 0.002),
        evidence: Math.max(-cell.supervised.log10P, 0.1),
      },
      {
        scheme: schemeName(cell),
        mode: 'unsupervised',
        rho: Math.max(cell.rho, 0.002),
        evidence: Math.max(-cell.unsupervised.log10P, 0.1),
      },
    ]);
  const files = await saveChart(context.outDir, 'extraction', {
    width: 420,
    height: 280,
    title: 'Student radioactivity: log10 p against the share ρ of watermarked training text',
    data: { values: plotted },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'rho', type: 'quantitative', scale: { type: 'log' }, title: 'ρ (0 drawn at 0.2%)' },
      y: {
        field: 'evidence',
        type: 'quantitative',
        scale: { type: 'log' },
        title: '−log10 p (values below 0.1 drawn at 0.1)',
      },
      color: { field: 'scheme', type: 'nominal' },
      strokeDash: { field: 'mode', type: 'nominal' },
    },
  });
  report.image('log10 p against ρ', files[0]!);
  report.heading(2, 'Reading it');
  const sizeCells = result.cells
    .filter((cell) => isGoalCell(cell) && cell.probePrompts === config.probePrompts)
    .sort((a, b) => a.trainTokens - b.trainTokens);
  const doses = gridCells.filter(
    (cell) =>
      cell.scheme === 'lefthash' && cell.h === GOAL_WIDTH && cell.rho > 0 && cell.supervised.dose !== null,
  );
  const strongest = [...new Set(gridCells.map((cell) => schemeName(cell)))].map((name) => {
    const rhos = gridCells.filter((cell) => schemeName(cell) === name && cell.rho > 0 && cell.rho < 1);
    return { name, cells: rhos.sort((a, b) => a.rho - b.rho) };
  });
  report.bullets([
    'Supervised scans score only positions whose window occurs in the attacker’s issued outputs (windows only, never (window, token) pairs).',
    ...(sizeCells.length > 1
      ? [
          `At ρ = ${percent(GOAL_RHO)} the evidence depends on how much of our text the student saw and varies from probe to probe: ${sizeCells.map((cell) => `${integer(cell.trainTokens)} training tokens (${integer(cell.answerTokens)} of them ours): log10 p ${log10(cell.supervised.log10P)}`).join('; ')} (supervised, ${config.probePrompts} prompts each; the table above adds the larger probe). Kneser–Ney discounting takes most of the weight of n-grams seen once, so a few thousand of our tokens leave little trace; an extraction campaign harvests far more.`,
        ]
      : []),
    ...(doses.length > 0
      ? [
          `A dose is a share of the scanned text. The LeftHash(${GOAL_WIDTH}) student’s samples carry an estimated dose of ${doses.map((cell) => `${(100 * cell.supervised.dose!).toFixed(1)}% at ρ = ${percent(cell.rho)}`).join(', ')} (supervised scans), so \`not_radioactive\` (a dose of 5% or more ruled out) is expected for students trained on a smaller share: a true statement about the samples, not a proof that the training mix held none of our outputs; the scan’s reason says so.`,
        ]
      : []),
    ...(strongest.length > 1
      ? [
          `By scheme (supervised log10 p at ρ = ${strongest[0]!.cells.map((cell) => percent(cell.rho)).join(' / ')}): ${strongest.map((entry) => `${entry.name} ${entry.cells.map((cell) => log10(cell.supervised.log10P)).join(' / ')}`).join('; ')}. An order-4 student conditions on 3 tokens, so a green list that depends on 4 previous tokens (LeftHash(4)) reaches its samples only where it copies whole training passages.`,
        ]
      : []),
    'The student is an n-gram model: it copies the (window, token) statistics of its training text and does not generalize, so its radioactivity is that of the text it memorized; a neural student spreads the bias differently (field notes §4).',
    'The embedded teacher’s outputs carry far more entropy than a chat model’s; compare with the published figure (p = 2.6e-24 from 248k scored tokens at ρ = 5%) through that difference.',
  ]);
  await writeResult(context.outDir, 'extraction.md', report.toString());
}

/**
 * The Gumbel-max subset of the extraction experiment: the same attack (a gateway marking with a
 * `gumbel` key, h = 4; an attacker's harvest; a student n-gram model trained on a share ρ of the
 * answers; `tracemark probe`; `tracemark scan`) at fewer shares. The scan is unsupervised only: the
 * supervised filter selects green-list windows and refuses Gumbel keys, and the null is exact (the
 * Gamma tail of the distinct (seed, token) pairs' scores), so no fake keys run.
 */
export interface GumbelExtractionConfig {
  readonly scheme: { readonly name: 'gumbel'; readonly contextWidth: number };
  readonly rhos: readonly number[];
  readonly trainTokens: number;
  readonly harvestRequests: number;
  readonly harvestMaxTokens: number;
  readonly probePrompts: number;
  readonly probeMaxTokens: number;
  readonly studentOrder: number;
}

export const GUMBEL_EXTRACTION_CONFIG: GumbelExtractionConfig = {
  scheme: { name: 'gumbel', contextWidth: 4 },
  rhos: [0, 0.05, 0.1],
  trainTokens: 1_000_000,
  harvestRequests: FULL_CONFIG.harvestRequests,
  harvestMaxTokens: FULL_CONFIG.harvestMaxTokens,
  probePrompts: FULL_CONFIG.probePrompts,
  probeMaxTokens: FULL_CONFIG.probeMaxTokens,
  studentOrder: FULL_CONFIG.studentOrder,
};

export const GUMBEL_EXTRACTION_QUICK_CONFIG: GumbelExtractionConfig = {
  scheme: { name: 'gumbel', contextWidth: 4 },
  rhos: [0, 1],
  trainTokens: 40_000,
  harvestRequests: 220,
  harvestMaxTokens: 200,
  probePrompts: 100,
  probeMaxTokens: 150,
  studentOrder: 4,
};

export interface GumbelExtractionCell {
  readonly rho: number;
  readonly trainTokens: number;
  readonly answerTokens: number;
  readonly humanTokens: number;
  readonly probePrompts: number;
  readonly sampledTokens: number;
  /** Distinct (seed, token) pairs scored, their score sum S, exact log10 p (Holm over the one key). */
  readonly numScored: number;
  readonly score: number;
  readonly log10P: number;
  readonly verdict: string;
  readonly seconds: number;
}

export interface GumbelExtractionSummary {
  readonly experiment: 'extraction-gumbel';
  readonly quick: boolean;
  readonly config: GumbelExtractionConfig;
  readonly harvest: { readonly requests: number; readonly tokens: number; readonly seconds: number };
  readonly cells: readonly GumbelExtractionCell[];
  readonly run: { readonly seconds: number; readonly loadAtStart: number; readonly loadAtEnd: number };
}

export async function runGumbelExtraction(context: ExtractionContext): Promise<GumbelExtractionSummary> {
  const startedAt = performance.now();
  const loadAtStart = loadAverage();
  const config = context.quick ? GUMBEL_EXTRACTION_QUICK_CONFIG : GUMBEL_EXTRACTION_CONFIG;
  const log = context.log;
  const h = config.scheme.contextWidth;
  const tag = `gumbel-h${h}`;
  const work = mkdtempSync(join(tmpdir(), 'tracemark-extraction-gumbel-'));
  const cells: GumbelExtractionCell[] = [];
  let harvest: Harvest;
  try {
    const human = shuffle(
      (await loadHumanCorpus({ split: 'train' })).map((document) => tokenizer.encodeFast(document.text)),
      'human-order',
    );
    const dataDir = join(work, `gateway-${tag}`);
    const keyFile = join(work, `key-${tag}.json`);
    const key = createWatermarkKey({
      secret: createHash('sha256').update(`tracemark/research/extraction/key/${tag}`).digest(),
      scheme: config.scheme,
    });
    writeFileSync(keyFile, serializeKeyFile(key));
    const gateway = await startServer(
      resolveConfig({ port: 0, host: '127.0.0.1', dataDir, keyFile }, { ...process.env }),
      { logger: false, handleSignals: false },
    );
    try {
      const requests = Math.ceil(config.harvestRequests * Math.max(...config.rhos));
      harvest = await harvestAnswers(
        gateway.url,
        gateway.firstStart.devApiKey!,
        { ...QUICK_CONFIG, harvestMaxTokens: config.harvestMaxTokens },
        requests,
        tag,
        log,
      );
    } finally {
      await gateway.close();
    }
    for (const rho of config.rhos) {
      const cellStarted = performance.now();
      const answerBudget = Math.round(rho * config.trainTokens);
      if (answerBudget > 1.01 * harvest.tokens) {
        throw new Error(
          `ρ = ${rho} of ${config.trainTokens} tokens needs more than the ${harvest.tokens} harvested`,
        );
      }
      const documents: Uint32Array[] = [];
      let answerTokens = 0;
      for (const answer of harvest.answers) {
        if (answerTokens >= answerBudget) break;
        const take = answer.subarray(0, Math.min(answer.length, answerBudget - answerTokens));
        documents.push(take);
        answerTokens += take.length;
      }
      let humanTokens = 0;
      for (const document of human) {
        if (humanTokens >= config.trainTokens - answerTokens) break;
        const take = document.subarray(
          0,
          Math.min(document.length, config.trainTokens - answerTokens - humanTokens),
        );
        documents.push(take);
        humanTokens += take.length;
      }
      const student = await trainNgramModel({
        documents: shuffle(documents, `mix/${tag}/rho${rho}`),
        vocabSize: tokenizer.vocabSize,
        tokenizerId: 'cl100k_base',
        order: config.studentOrder,
      });
      const label = `${tag}/rho${rho}/seed0`;
      const endpoint = await serveStudent(student, label);
      const name = label.replaceAll('/', '-');
      const promptsFile = join(work, `probe-${name}.txt`);
      const outputs = join(work, `probe-${name}.jsonl`);
      writeFileSync(promptsFile, `${prompts(config.probePrompts, `probe/${label}`).join('\n')}\n`);
      let probe: CliResult;
      try {
        probe = await cli([
          'probe',
          '--endpoint',
          endpoint.url,
          '--model',
          'student',
          '--prompts',
          promptsFile,
          '--out',
          outputs,
          '--max-tokens',
          String(config.probeMaxTokens),
          '--concurrency',
          '2',
          '--rate',
          '0',
          '--quiet',
        ]);
      } finally {
        await endpoint.close();
      }
      if (probe.code !== 0) throw new Error(`probe failed (${probe.code}): ${probe.err}`);
      const sampledTokens = readFileSync(outputs, 'utf8')
        .split('\n')
        .filter((line) => line !== '')
        .reduce(
          (sum, line) => sum + tokenizer.encodeFast((JSON.parse(line) as { output: string }).output).length,
          0,
        );
      const scan = await cli([
        'scan',
        '--key',
        keyFile,
        '--field',
        'output',
        '--prompt-field',
        'prompt',
        '--workers',
        '0',
        '--json',
        outputs,
      ]);
      if (scan.out === '') throw new Error(`scan failed: ${scan.err}`);
      const report = JSON.parse(scan.out) as {
        verdict: string;
        keys: { numScored: number; score: number; log10PAdjusted: number }[];
      };
      const scanned = report.keys[0]!;
      const cell: GumbelExtractionCell = {
        rho,
        trainTokens: config.trainTokens,
        answerTokens,
        humanTokens,
        probePrompts: config.probePrompts,
        sampledTokens,
        numScored: scanned.numScored,
        score: scanned.score,
        log10P: scanned.log10PAdjusted,
        verdict: report.verdict,
        seconds: (performance.now() - cellStarted) / 1000,
      };
      cells.push(cell);
      log(
        `extraction: ${tag} ρ=${rho}: log10 p ${cell.log10P.toFixed(1)} (${cell.numScored} scored, S/n ${(cell.score / Math.max(1, cell.numScored)).toFixed(4)}, ${cell.verdict}); ${cell.seconds.toFixed(1)} s`,
      );
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const summary: GumbelExtractionSummary = {
    experiment: 'extraction-gumbel',
    quick: context.quick,
    config,
    harvest: { requests: harvest.answers.length, tokens: harvest.tokens, seconds: harvest.seconds },
    cells,
    run: { seconds: (performance.now() - startedAt) / 1000, loadAtStart, loadAtEnd: loadAverage() },
  };
  const report = reportHeader(
    {
      name: 'extraction' as never,
      quick: context.quick,
      outDir: context.outDir,
      workers: context.workers,
      log,
    },
    'Extraction, Gumbel-max subset: radioactivity of a gumbel key',
    `key SHA-256("tracemark/research/extraction/key/${tag}"); attacker prompts "attacker/${tag}", probe prompts "probe/${tag}/rho<ρ>/seed0"; the rest as extraction.md`,
    startedAt,
    loadAtStart,
    { seconds: summary.run.seconds, loadAtEnd: summary.run.loadAtEnd },
  );
  report.bullets([
    `This subset's command: \`${EXTRACTION_SUBSET_VARIABLE}=gumbel pnpm research extraction${context.quick ? ' --quick' : ''}\` (without the variable the command runs the full grid, [extraction.md](extraction.md)).`,
    `Setting: a gateway marking with a \`gumbel\` key, h = ${h} (the Gumbel default; generation skips repeated context seeds); the attacker harvests ${integer(harvest.answers.length)} answers (${integer(harvest.tokens)} tokens, up to ${config.harvestMaxTokens} each); per ρ ∈ {${config.rhos.map(percent).join(', ')}} a student n-gram model of order ${config.studentOrder} on ${integer(config.trainTokens)} tokens (a share ρ of them answers, the rest human text of the train split), served without a watermark and probed with ${config.probePrompts} fresh prompts of up to ${config.probeMaxTokens} tokens; \`tracemark scan\` unsupervised (the supervised filter and fake keys are green-list features; the Gumbel null is exact).`,
    "Compare with the grid's LeftHash(4) and LeftHash(1) cells at the same ρ, training size and probe size in extraction.md (unsupervised column).",
  ]);
  report.table(
    ['ρ', 'answer tokens', 'sampled tokens', 'distinct pairs scored', 'S/n', 'log10 p', 'verdict', 'seconds'],
    cells.map((cell) => [
      percent(cell.rho),
      integer(cell.answerTokens),
      integer(cell.sampledTokens),
      integer(cell.numScored),
      (cell.score / Math.max(1, cell.numScored)).toFixed(4),
      log10(cell.log10P),
      cell.verdict,
      cell.seconds.toFixed(0),
    ]),
  );
  await writeResult(context.outDir, 'extraction-gumbel.md', report.toString());
  await writeResult(
    context.outDir,
    'extraction-gumbel.json',
    `${JSON.stringify(rounded(summary), null, 2)}\n`,
  );
  return summary;
}
