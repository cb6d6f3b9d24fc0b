/**
 * `tracemark scan --issued`: the issued outputs, read from the gateway's issuance log. Three forms:
 * a SQLite file (or the data directory holding it), opened read-only; a postgres:// URL, opened with
 * read-only transactions and without migrating; an http(s):// gateway, read through
 * GET /v1/admin/issuance with an admin key. Records whose output tokens were pruned are counted and
 * skipped (the supervised filter then covers less; it never widens).
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { GatewayStorage } from '@tracemark/gateway';
import { loadGateway } from '../commands/serve.ts';
import { CliError, EXIT } from '../io.ts';

/** One issued output. */
export interface IssuedOutput {
  readonly account: string;
  readonly watermarkKeyId: string;
  readonly tokens: Uint32Array;
}

export interface IssuedLog {
  /** What was read, for the report (a path, a URL without credentials). */
  readonly source: string;
  readonly outputs: IssuedOutput[];
  /** Records read whose tokens were pruned (not in `outputs`). */
  readonly pruned: number;
}

export interface ReadIssuedLogOptions {
  /** Only this account's outputs. */
  readonly account?: string;
  /** Admin API key for the http(s) form. */
  readonly apiKey?: string;
  readonly fetch?: typeof fetch;
}

const PAGE = 1000;

export function isPostgresUrl(target: string): boolean {
  return /^postgres(ql)?:\/\//i.test(target);
}

export function isHttpUrl(target: string): boolean {
  return /^https?:\/\//i.test(target);
}

/** A URL with its password hidden, or the path as given. */
export function describeTarget(target: string): string {
  if (!isPostgresUrl(target) && !isHttpUrl(target)) return target;
  try {
    const url = new URL(target);
    if (url.password !== '') url.password = '***';
    return url.toString();
  } catch {
    return target.replace(/:\/\/[^@]*@/, '://***@');
  }
}

/** Opens the log's storage read-only (a SQLite file or directory, or a postgres:// URL). */
export async function openIssuedStorage(target: string): Promise<GatewayStorage> {
  // The gateway package reads its own databases; the http(s) form needs none of it.
  const { openPostgresStorage, openSqliteStorage, SQLITE_FILE_NAME } = await loadGateway(
    'tracemark scan --issued with a database',
  );
  try {
    if (isPostgresUrl(target)) return await openPostgresStorage({ connectionString: target, readonly: true });
    const info = await stat(target).catch(() => null);
    if (info === null) throw new Error(`${target}: no such file`);
    return openSqliteStorage(info.isDirectory() ? join(target, SQLITE_FILE_NAME) : target, {
      readonly: true,
    });
  } catch (error) {
    throw new CliError(
      'TM_ERR_ISSUED',
      `--issued: cannot open the issuance log at ${describeTarget(target)}: ${(error as Error).message}`,
      EXIT.io,
    );
  }
}

/** Every issued output (optionally one account's), in log order. */
export async function readIssuedLog(target: string, options: ReadIssuedLogOptions = {}): Promise<IssuedLog> {
  if (isHttpUrl(target)) return readIssuedOverHttp(target, options);
  const storage = await openIssuedStorage(target);
  const outputs: IssuedOutput[] = [];
  let pruned = 0;
  try {
    let after = -1;
    for (;;) {
      const page = await storage.listIssuance({
        afterSeq: after,
        limit: PAGE,
        ...(options.account === undefined ? {} : { account: options.account }),
      });
      for (const record of page) {
        if (record.outputTokens === null) pruned++;
        else
          outputs.push({
            account: record.account,
            watermarkKeyId: record.watermarkKeyId,
            tokens: record.outputTokens,
          });
      }
      if (page.length < PAGE) break;
      after = page[page.length - 1]!.seq;
    }
  } finally {
    await storage.close();
  }
  return { source: describeTarget(target), outputs, pruned };
}

interface IssuanceJson {
  seq: number;
  account: string;
  watermarkKeyId: string;
  outputTokens: number[] | null;
}

async function readIssuedOverHttp(base: string, options: ReadIssuedLogOptions): Promise<IssuedLog> {
  if (options.apiKey === undefined) {
    throw new CliError(
      'TM_ERR_USAGE',
      '--issued with a gateway URL needs an admin API key (--api-key-env VAR)',
      EXIT.usage,
    );
  }
  const doFetch = options.fetch ?? fetch;
  const outputs: IssuedOutput[] = [];
  let pruned = 0;
  let after = -1;
  for (;;) {
    const url = new URL('/v1/admin/issuance', base);
    url.searchParams.set('after', String(after));
    url.searchParams.set('limit', String(PAGE));
    let response: Response;
    try {
      response = await doFetch(url, { headers: { authorization: `Bearer ${options.apiKey}` } });
    } catch (error) {
      throw new CliError('TM_ERR_ISSUED', `--issued: ${url.origin}: ${(error as Error).message}`, EXIT.io);
    }
    if (!response.ok) {
      const text = await response.text().catch(() => '');
      throw new CliError(
        'TM_ERR_ISSUED',
        `--issued: GET ${url.pathname} answered ${response.status}: ${text.slice(0, 300)}`,
        EXIT.io,
      );
    }
    const body = (await response.json()) as { data: IssuanceJson[] };
    for (const record of body.data) {
      if (options.account !== undefined && record.account !== options.account) continue;
      if (record.outputTokens === null) pruned++;
      else
        outputs.push({
          account: record.account,
          watermarkKeyId: record.watermarkKeyId,
          tokens: Uint32Array.from(record.outputTokens),
        });
    }
    if (body.data.length < PAGE) break;
    after = body.data[body.data.length - 1]!.seq;
  }
  return { source: describeTarget(base), outputs, pruned };
}

/** Outputs grouped by account, accounts sorted by name. */
export function byAccount(outputs: readonly IssuedOutput[]): Map<string, Uint32Array[]> {
  const groups = new Map<string, Uint32Array[]>();
  for (const output of outputs) {
    let group = groups.get(output.account);
    if (group === undefined) groups.set(output.account, (group = []));
    group.push(output.tokens);
  }
  return new Map([...groups].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
}
