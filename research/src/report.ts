/** Result files: a Markdown report with a standard header, a JSON summary, and number formatting. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeEnvironment, loadAverage } from './environment.ts';

export type ExperimentName =
  | 'fpr'
  | 'power'
  | 'robustness'
  | 'quality'
  | 'sampling'
  | 'performance'
  | 'foreign'
  | 'stealing'
  | 'monitoring'
  | 'defaults';

export const EXPERIMENT_NAMES: readonly ExperimentName[] = Object.freeze([
  'fpr',
  'power',
  'robustness',
  'quality',
  'sampling',
  'performance',
  'foreign',
  'stealing',
  'monitoring',
  'defaults',
]);

export interface ExperimentContext {
  readonly name: ExperimentName;
  /** The fast variant, for CI: small samples, same code paths. */
  readonly quick: boolean;
  /** Where NAME.md, NAME.json and the plots go (and where `defaults` reads the others' summaries). */
  readonly outDir: string;
  /** Worker threads for generation; 1 runs everything in this thread. */
  readonly workers: number;
  /** Progress, to stderr. */
  readonly log: (message: string) => void;
}

/** The command that reproduces a result. */
export function commandLine(context: ExperimentContext): string {
  return `pnpm research ${context.name}${context.quick ? ' --quick' : ''}`;
}

/** A Markdown document built section by section. */
export class Markdown {
  private readonly parts: string[] = [];

  heading(level: number, text: string): this {
    this.parts.push(`${'#'.repeat(level)} ${text}`);
    return this;
  }

  paragraph(...lines: string[]): this {
    this.parts.push(lines.join('\n'));
    return this;
  }

  bullets(items: readonly string[]): this {
    this.parts.push(items.map((item) => `- ${item}`).join('\n'));
    return this;
  }

  table(headers: readonly string[], rows: readonly (readonly (string | number)[])[]): this {
    const line = (cells: readonly (string | number)[]) => `| ${cells.map(String).join(' | ')} |`;
    this.parts.push([line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n'));
    return this;
  }

  image(alt: string, file: string): this {
    this.parts.push(`![${alt}](${file})`);
    return this;
  }

  toString(): string {
    return `${this.parts.join('\n\n')}\n`;
  }
}

/** The header every result file starts with: what ran, where, with which seeds. */
export function reportHeader(
  context: ExperimentContext,
  title: string,
  seeds: string,
  startedAt: number,
  loadAtStart: number,
  /** A run rendered later (from its summary): its own duration and final load. */
  finished?: { readonly seconds: number; readonly loadAtEnd: number },
): Markdown {
  const environment = describeEnvironment();
  const seconds = finished?.seconds ?? (performance.now() - startedAt) / 1000;
  const duration = seconds < 90 ? `${seconds.toFixed(0)} s` : `${(seconds / 60).toFixed(1)} min`;
  return new Markdown()
    .heading(1, title)
    .bullets([
      `Command: \`${commandLine(context)}\`${context.quick ? ' (quick variant: small samples, for CI; not the committed results)' : ''}`,
      `Machine: ${environment.cpuModel}, ${environment.cores} cores, ${environment.memoryGiB} GiB, ${environment.platform}; Node ${environment.node}`,
      `Seeds: ${seeds}`,
      `Run time: ${duration} with ${context.workers} generation worker${context.workers === 1 ? '' : 's'}; 1-minute load average ${loadAtStart.toFixed(2)} at the start and ${(finished?.loadAtEnd ?? loadAverage()).toFixed(2)} at the end (other work shared the machine)`,
    ]);
}

export async function writeResult(outDir: string, file: string, content: string | Uint8Array): Promise<void> {
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, file), content);
}

export async function writeSummary(outDir: string, name: ExperimentName, summary: unknown): Promise<void> {
  await writeResult(outDir, `${name}.json`, `${JSON.stringify(summary, null, 2)}\n`);
}

/** Fixed-point with `digits` decimals; NaN as a dash. */
export function fixed(value: number, digits = 3): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '—';
}

/** Compact scientific notation, e.g. 1.2e-5. */
export function scientific(value: number, digits = 2): string {
  if (!Number.isFinite(value)) return '—';
  if (value === 0) return '0';
  const [mantissa, exponent] = value.toExponential(digits - 1).split('e');
  return `${mantissa}e${Number(exponent)}`;
}

export function integer(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '—';
}

/** Rounds every number in a JSON-bound value so summaries stay readable and stable. */
export function rounded<T>(value: T, digits = 6): T {
  return JSON.parse(
    JSON.stringify(value, (_key, v: unknown) =>
      typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(digits)) : v,
    ),
  ) as T;
}
