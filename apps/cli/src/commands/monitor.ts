/**
 * `tracemark monitor --issued DB_OR_URL [--since T] [--at T] [--mmd FILE] [--json]`: the extraction-risk report the
 * gateway serves at GET /v1/admin/risk, computed from its stored monitor events (prompt fingerprints, never
 * prompts) and policy actions: a SQLite file or data directory (read-only) or a postgres:// URL; or read
 * from a running gateway (http(s):// URL, admin key from --api-key-env). Accounts and clusters by score, with
 * the reasons; JSON with --json. `--calibrate-mmd FILE` instead calibrates the monitor's MMD test on the
 * stored traffic (for `serve --monitor-mmd`).
 */
import { writeFile } from 'node:fs/promises';
import type { GatewayStorage, StoredMmdCalibration, StoredMmdCalibrationOptions } from '@tracemark/gateway';
import {
  type MmdCalibration,
  type MonitorOptions as PackageMonitorOptions,
  parseMmdCalibration,
} from '@tracemark/monitoring';
import type { Command } from 'commander';
import { CliError, type CliIo, EXIT, readTextFile } from '../io.ts';
import { parseNumber, parseOpenUnit } from '../options.ts';
import { describeTarget, isHttpUrl, openIssuedStorage } from '../scan/issued.ts';
import { loadGateway } from './serve.ts';

/** One reason, as the report carries it (the fields the table shows; --json prints all of them). */
interface ReasonRow {
  readonly code: string;
  readonly message: string;
}

export interface RiskReportRows {
  readonly at: number;
  readonly accounts: readonly {
    readonly account: string;
    readonly score: number;
    readonly flagged: boolean;
    readonly cluster: string | null;
    readonly status: string;
    readonly reasons: readonly ReasonRow[];
  }[];
  readonly clusters: readonly {
    readonly id: string;
    readonly accounts: readonly string[];
    readonly score: number;
    readonly flagged: boolean;
    readonly reasons: readonly ReasonRow[];
  }[];
}

/** Computes the report from storage (the gateway's riskReportFromStorage). */
export type LoadRiskReport = (
  storage: GatewayStorage,
  options: {
    readonly since?: string;
    readonly at?: number;
    readonly monitorOptions?: PackageMonitorOptions;
  },
) => Promise<RiskReportRows & { readonly events?: number }>;

interface MonitorOptions {
  issued: string;
  since?: string;
  at?: string;
  apiKeyEnv?: string;
  json?: boolean;
  mmd?: string;
  calibrateMmd?: string;
  target: number;
  window: number;
}

/** Default history a calibration reads: it needs hundreds of windows. */
const CALIBRATION_SINCE = '30d';
/**
 * The calibration research experiment `monitoring` evaluates as `calibrated-mmd-64`: windows of 64 prompts
 * (the most the monitor keeps per account) at 0.25% per window; it needs about 830 windows.
 */
const DEFAULT_CALIBRATION_WINDOW = 64;
const DEFAULT_CALIBRATION_TARGET = 0.0025;

const UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** An ISO 8601 time, or a duration before `now` (`90m`, `24h`, `7d`); milliseconds. */
export function parseTime(flag: string, value: string, now: number): number {
  const relative = /^(\d+(?:\.\d+)?)([smhd])$/.exec(value.trim());
  if (relative !== null) return now - Number(relative[1]) * UNITS[relative[2]!]!;
  const parsed = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(parsed)) {
    throw new CliError(
      'TM_ERR_USAGE',
      `${flag}: expected an ISO 8601 time (2026-12-01T00:00:00Z) or a duration before now (90m, 24h, 7d), got "${value}"`,
      EXIT.usage,
    );
  }
  return parsed;
}

/** The gateway's own function; absent from a gateway package without monitoring. */
async function gatewayRiskReport(
  storage: GatewayStorage,
  options: { since?: string; at?: number; monitorOptions?: PackageMonitorOptions },
) {
  const gateway = (await loadGateway('tracemark monitor --issued with a database')) as unknown as {
    riskReportFromStorage?: LoadRiskReport;
  };
  if (gateway.riskReportFromStorage === undefined) {
    throw new CliError(
      'TM_ERR_GATEWAY_MISSING',
      'tracemark monitor needs a version of @tracemark/gateway with extraction monitoring (riskReportFromStorage); update it',
      EXIT.io,
    );
  }
  return gateway.riskReportFromStorage(storage, options);
}

/** The gateway's calibration from storage; absent from a gateway package without it. */
async function gatewayMmdCalibration(
  storage: GatewayStorage,
  options: StoredMmdCalibrationOptions,
): Promise<StoredMmdCalibration> {
  const gateway = (await loadGateway('tracemark monitor --calibrate-mmd')) as unknown as {
    mmdCalibrationFromStorage?: (
      storage: GatewayStorage,
      options: StoredMmdCalibrationOptions,
    ) => Promise<StoredMmdCalibration>;
  };
  if (gateway.mmdCalibrationFromStorage === undefined) {
    throw new CliError(
      'TM_ERR_GATEWAY_MISSING',
      'tracemark monitor --calibrate-mmd needs a version of @tracemark/gateway with mmdCalibrationFromStorage; update it',
      EXIT.io,
    );
  }
  return gateway.mmdCalibrationFromStorage(storage, options);
}

/** A calibration file (as --calibrate-mmd writes it), checked. */
async function readCalibration(path: string): Promise<MmdCalibration> {
  const text = await readTextFile(path, 'MMD calibration');
  try {
    return parseMmdCalibration(JSON.parse(text));
  } catch (error) {
    const detail = error instanceof SyntaxError ? 'not JSON' : (error as Error).message;
    throw new CliError('TM_ERR_USAGE', `--mmd ${path}: ${detail}`, EXIT.usage);
  }
}

async function fromGateway(target: string, options: MonitorOptions, io: CliIo): Promise<RiskReportRows> {
  const variable = options.apiKeyEnv ?? 'TRACEMARK_API_KEY';
  const key = io.env[variable];
  if (key === undefined || key === '') {
    throw new CliError(
      'TM_ERR_USAGE',
      `--issued with a gateway URL needs an admin API key in $${variable} (--api-key-env)`,
      EXIT.usage,
    );
  }
  if (options.since !== undefined || options.at !== undefined) {
    throw new CliError(
      'TM_ERR_USAGE',
      '--since and --at apply to a database; a gateway reports its live window',
      EXIT.usage,
    );
  }
  let response: Response;
  try {
    response = await fetch(new URL('/v1/admin/risk', target), {
      headers: { authorization: `Bearer ${key}` },
    });
  } catch (error) {
    throw new CliError(
      'TM_ERR_ISSUED',
      `--issued: cannot reach ${describeTarget(target)}: ${(error as Error).message}`,
      EXIT.io,
    );
  }
  const body = (await response.json().catch(() => null)) as { error?: { message?: string } } | null;
  if (!response.ok || body === null) {
    throw new CliError(
      'TM_ERR_ISSUED',
      `--issued: ${describeTarget(target)} answered ${response.status}${body?.error?.message === undefined ? '' : `: ${body.error.message}`}`,
      EXIT.io,
    );
  }
  return body as unknown as RiskReportRows;
}

function table(rows: readonly string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const reasonCodes = (reasons: readonly ReasonRow[]) =>
  reasons.length === 0 ? '-' : reasons.map((r) => r.code).join(',');

/** The report as two tables: accounts, then clusters. */
export function renderRiskReport(report: RiskReportRows): string {
  const lines: string[] = [`risk at ${new Date(report.at).toISOString()}`];
  if (report.accounts.length === 0) lines.push('no account active in the window');
  else {
    lines.push(
      table([
        ['ACCOUNT', 'SCORE', 'FLAGGED', 'STATUS', 'CLUSTER', 'REASONS'],
        ...report.accounts.map((entry) => [
          entry.account,
          entry.score.toFixed(3),
          entry.flagged ? 'yes' : 'no',
          entry.status,
          entry.cluster ?? '-',
          reasonCodes(entry.reasons),
        ]),
      ]),
    );
  }
  if (report.clusters.length > 0) {
    lines.push(
      '',
      table([
        ['CLUSTER', 'SCORE', 'FLAGGED', 'ACCOUNTS', 'REASONS'],
        ...report.clusters.map((cluster) => [
          cluster.id,
          cluster.score.toFixed(3),
          cluster.flagged ? 'yes' : 'no',
          cluster.accounts.join(','),
          reasonCodes(cluster.reasons),
        ]),
      ]),
    );
  }
  const flagged = report.accounts.filter((entry) => entry.flagged);
  if (flagged.length > 0) {
    lines.push('', 'flagged accounts:');
    for (const entry of flagged) {
      lines.push(`  ${entry.account}`);
      for (const reason of entry.reasons) lines.push(`    ${reason.code}: ${reason.message}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function registerMonitor(
  program: Command,
  io: CliIo,
  setExit: (code: number) => void,
  loadReport: LoadRiskReport = gatewayRiskReport,
): void {
  program
    .command('monitor')
    .description(
      "the extraction-risk report (accounts, clusters of linked accounts, reasons) from the gateway's stored monitor events, as GET /v1/admin/risk gives it",
    )
    .requiredOption(
      '--issued <db-or-url>',
      "the gateway's SQLite file or data directory (read-only), a postgres:// URL, or an http(s):// gateway (admin key from --api-key-env)",
    )
    .option(
      '--since <time>',
      "first event replayed: ISO 8601 or a duration before --at (default: the monitor's longest window, 24h)",
    )
    .option('--at <time>', 'the time the report is for: ISO 8601 or a duration before now (default: now)')
    .option(
      '--api-key-env <var>',
      'environment variable holding an admin API key (gateway URL form)',
      'TRACEMARK_API_KEY',
    )
    .option('--json', 'print the report as JSON (the shape of GET /v1/admin/risk)')
    .option(
      '--mmd <file>',
      "test each account's recent prompts against this MMD calibration, as a gateway started with --monitor-mmd does",
    )
    .option(
      '--calibrate-mmd <out>',
      `instead of the report: calibrate the MMD test on the stored traffic (since --since, default ${CALIBRATION_SINCE}; accounts the report flags or holds under an action are left out) and write it for serve --monitor-mmd`,
    )
    .option(
      '--target <rate>',
      'with --calibrate-mmd: the false-flag rate per window the threshold is set for',
      parseOpenUnit('--target'),
      DEFAULT_CALIBRATION_TARGET,
    )
    .option(
      '--window <n>',
      'with --calibrate-mmd: prompts per window',
      parseNumber('--window', 4, 1024, true),
      DEFAULT_CALIBRATION_WINDOW,
    )
    .action(async (options: MonitorOptions) => {
      let report: RiskReportRows;
      if (isHttpUrl(options.issued) && (options.mmd !== undefined || options.calibrateMmd !== undefined)) {
        throw new CliError(
          'TM_ERR_USAGE',
          '--mmd and --calibrate-mmd read a database; a running gateway tests with its own --monitor-mmd',
          EXIT.usage,
        );
      }
      if (options.mmd !== undefined && options.calibrateMmd !== undefined) {
        throw new CliError('TM_ERR_USAGE', '--mmd and --calibrate-mmd cannot be combined', EXIT.usage);
      }
      if (isHttpUrl(options.issued)) report = await fromGateway(options.issued, options, io);
      else {
        const now = Date.now();
        const at = options.at === undefined ? now : parseTime('--at', options.at, now);
        const sinceText =
          options.since ?? (options.calibrateMmd === undefined ? undefined : CALIBRATION_SINCE);
        const since =
          sinceText === undefined ? undefined : new Date(parseTime('--since', sinceText, at)).toISOString();
        const monitorOptions =
          options.mmd === undefined ? undefined : { mmd: await readCalibration(options.mmd) };
        const storage = await openIssuedStorage(options.issued);
        try {
          if (options.calibrateMmd !== undefined) {
            await calibrate(storage, options.calibrateMmd, { since: since!, at, options }, io);
            setExit(EXIT.ok);
            return;
          }
          const { events: _events, ...rest } = await loadReport(storage, {
            at,
            ...(since === undefined ? {} : { since }),
            ...(monitorOptions === undefined ? {} : { monitorOptions }),
          });
          report = rest;
        } catch (error) {
          if (error instanceof CliError) throw error;
          throw new CliError('TM_ERR_ISSUED', `--issued: ${(error as Error).message}`, EXIT.io);
        } finally {
          await storage.close();
        }
      }
      io.stdout.write(options.json ? `${JSON.stringify(report)}\n` : renderRiskReport(report));
      setExit(EXIT.ok);
    });
}

/** --calibrate-mmd: the calibration from stored traffic, written where serve --monitor-mmd reads it. */
async function calibrate(
  storage: GatewayStorage,
  out: string,
  range: { readonly since: string; readonly at: number; readonly options: MonitorOptions },
  io: CliIo,
): Promise<void> {
  let result: StoredMmdCalibration;
  try {
    result = await gatewayMmdCalibration(storage, {
      since: range.since,
      at: range.at,
      targetFalseFlagRate: range.options.target,
      windowSize: range.options.window,
    });
  } catch (error) {
    if (error instanceof CliError) throw error;
    if (error instanceof RangeError) {
      throw new CliError(
        'TM_ERR_USAGE',
        `--calibrate-mmd: the stored traffic since ${range.since} is too little: ${error.message}; widen --since, or raise --target`,
        EXIT.usage,
      );
    }
    throw new CliError('TM_ERR_ISSUED', `--issued: ${(error as Error).message}`, EXIT.io);
  }
  try {
    // Hashed word features of customers' prompts, as the monitor events hold them: readable by the owner only.
    await writeFile(out, `${JSON.stringify(result.calibration)}\n`, { mode: 0o600 });
  } catch (error) {
    throw new CliError(
      'TM_ERR_IO',
      `--calibrate-mmd ${out}: cannot write it (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      EXIT.io,
    );
  }
  const c = result.calibration;
  const summary = {
    file: out,
    since: range.since,
    windows: result.windows,
    windowSize: c.windowSize,
    accountsUsed: result.accountsUsed,
    accountsLeftOut: result.accountsLeftOut,
    referenceWindows: c.referenceWindows.length,
    calibrationWindows: c.calibrationWindows,
    heldOutWindows: c.heldOutWindows,
    threshold: c.threshold,
    targetFalseFlagRate: c.targetFalseFlagRate,
    achievedFalseFlagRate: c.achievedFalseFlagRate,
  };
  io.stdout.write(
    range.options.json
      ? `${JSON.stringify(summary)}\n`
      : [
          `MMD calibration written to ${out}: ${result.windows} windows of ${c.windowSize} prompts from ${result.accountsUsed} accounts since ${range.since} (${result.accountsLeftOut} flagged or acted-on accounts left out)`,
          `  ${c.referenceWindows.length} reference, ${c.calibrationWindows} calibration and ${c.heldOutWindows} held-out windows; threshold ${c.threshold.toPrecision(4)} for a false-flag rate of ${c.targetFalseFlagRate} per window (held out: ${c.achievedFalseFlagRate.toPrecision(3)})`,
          `  start the gateway with --monitor-mmd ${out} (TRACEMARK_MONITOR_MMD), and report from history with tracemark monitor --mmd ${out}`,
          '',
        ].join('\n'),
  );
}
