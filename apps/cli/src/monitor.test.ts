/**
 * `tracemark monitor`: the risk report from a real gateway's stored history (its SQLite file, read-only)
 * equals what the running gateway serves at GET /v1/admin/risk; the http(s) form reads that route; errors.
 * The command is registered here as cli.ts will register it (run() lists its commands itself).
 */
import { simulateTraffic } from '@tracemark/monitoring';
import { Command, CommanderError } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { riskReportFromStorage } from '../../gateway/src/monitoring/history.ts';
import {
  removeTemporaryDirectories,
  startTestGateway,
  type TestGateway,
  temporaryDirectory,
} from '../../gateway/src/test-support/harness.ts';
import { type LoadRiskReport, parseTime, registerMonitor } from './commands/monitor.ts';
import { CliError, type CliIo, EXIT } from './io.ts';

async function runMonitor(argv: readonly string[], env: NodeJS.ProcessEnv = {}, tty = false) {
  let stdout = '';
  let stderr = '';
  const io = {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    stdoutIsTTY: tty,
    stderrIsTTY: tty,
    env,
  } as unknown as CliIo;
  let code: number = EXIT.ok;
  const program = new Command('tracemark').exitOverride().configureOutput({
    writeOut: (text) => (stdout += text),
    writeErr: (text) => (stderr += text),
  });
  registerMonitor(program, io, (exit) => (code = exit), riskReportFromStorage as unknown as LoadRiskReport);
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
  } catch (error) {
    if (error instanceof CliError) {
      stderr += `error: ${error.message}\n`;
      code = error.exitCode;
    } else if (error instanceof CommanderError) code = EXIT.usage;
    else throw error;
  }
  return { code, stdout, stderr };
}

describe('tracemark monitor', () => {
  const dataDir = temporaryDirectory('tracemark-cli-monitor-');
  let gateway: TestGateway;
  let served: { accounts: unknown[]; clusters: unknown[] };

  beforeAll(async () => {
    gateway = await startTestGateway({ config: { dataDir } });
    const prompts = simulateTraffic('extraction-campaign', { seed: 11, accounts: 1, requests: 60 }).map(
      (e) => e.prompt,
    );
    const keys: string[] = [];
    for (const account of ['x1', 'x2', 'x3']) {
      keys.push((await gateway.call('POST', '/v1/admin/keys', { scopes: ['generate'], account })).json.key);
    }
    for (let i = 0; i < 36; i++) {
      const response = await gateway.call(
        'POST',
        '/v1/chat/completions',
        { model: 'tracemark-ngram', messages: [{ role: 'user', content: prompts[i]! }], max_tokens: 2 },
        keys[i % 3]!,
      );
      expect(response.status).toBe(200);
    }
    await gateway.call('POST', '/v1/admin/risk/accounts/x2/actions', { action: 'throttle', reason: 'test' });
    served = (await gateway.call('GET', '/v1/admin/risk')).json;
  }, 120_000);

  afterAll(async () => {
    await gateway?.close();
    removeTemporaryDirectories();
  });

  it('computes from the stored events the report the gateway serves (--json)', async () => {
    const { code, stdout } = await runMonitor(['monitor', '--issued', dataDir, '--json']);
    expect(code).toBe(EXIT.ok);
    const report = JSON.parse(stdout);
    const strip = (value: { accounts: unknown[]; clusters: unknown[] }) => ({
      accounts: value.accounts,
      clusters: value.clusters,
    });
    // The live report's windows end at its own time: compare what does not depend on the instant.
    const shape = (value: { accounts: unknown[]; clusters: unknown[] }) =>
      JSON.parse(
        JSON.stringify(strip(value), (key, item) =>
          ['window', 'firstSeen', 'lastSeen'].includes(key) ? undefined : item,
        ),
      );
    expect(shape(report)).toEqual(shape(served));
    expect(report.clusters[0].accounts).toEqual(['x1', 'x2', 'x3']);
    expect(report.accounts.find((entry: { account: string }) => entry.account === 'x2').status).toBe(
      'throttled',
    );
  });

  it('prints tables on a terminal, and an empty window when --at is before the traffic', async () => {
    const { code, stdout } = await runMonitor(['monitor', '--issued', dataDir], {}, true);
    expect(code).toBe(EXIT.ok);
    expect(stdout).toMatch(/^ACCOUNT\s+SCORE\s+FLAGGED\s+STATUS\s+CLUSTER\s+REASONS$/m);
    expect(stdout).toMatch(/^x2\s+\d\.\d{3}\s+yes\s+throttled\s+cl_[0-9a-f]{12}/m);
    expect(stdout).toContain('linked-accounts');
    const before = await runMonitor(['monitor', '--issued', dataDir, '--at', '2020-01-01T00:00:00Z']);
    expect(before.stdout).toContain('no account active in the window');
  });

  it('reads a running gateway over http(s) with an admin key', async () => {
    const { code, stdout } = await runMonitor(['monitor', '--issued', gateway.url, '--json'], {
      TRACEMARK_API_KEY: gateway.devKey,
    });
    expect(code).toBe(EXIT.ok);
    expect(JSON.parse(stdout).clusters[0].accounts).toEqual(['x1', 'x2', 'x3']);
    const noKey = await runMonitor(['monitor', '--issued', gateway.url]);
    expect(noKey.code).toBe(EXIT.usage);
    expect(noKey.stderr).toContain('$TRACEMARK_API_KEY');
  });

  it('says what is wrong with a missing database or a bad time', async () => {
    const missing = await runMonitor(['monitor', '--issued', '/nonexistent/gateway.sqlite']);
    expect(missing.code).toBe(EXIT.io);
    expect(missing.stderr).toContain('no such file');
    const bad = await runMonitor(['monitor', '--issued', dataDir, '--since', 'yesterday']);
    expect(bad.code).toBe(EXIT.usage);
    expect(bad.stderr).toContain('--since');
    expect(parseTime('--since', '2h', 10_000_000)).toBe(10_000_000 - 7_200_000);
  });
});
