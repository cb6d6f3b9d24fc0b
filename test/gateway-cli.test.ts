/**
 * `tracemark serve` and `tracemark keys`, in-process through commander (as cli.ts registers them), plus the
 * first-start banner's curl command run for real when curl is installed.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { Command, CommanderError } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { registerKeys } from '../apps/cli/src/commands/keys.ts';
import { registerServe, runServe } from '../apps/cli/src/commands/serve.ts';
import { gatewayDataDir } from '../apps/cli/src/gateway-data-dir.test-helper.ts';
import { CliError, type CliIo } from '../apps/cli/src/io.ts';
import { cacheDir, removeTemporaryDirectories, temporaryDirectory } from './helpers.ts';

afterAll(removeTemporaryDirectories);

process.env.TRACEMARK_CACHE_DIR = cacheDir;

interface Captured {
  readonly io: CliIo;
  readonly out: () => string;
  readonly err: () => string;
}

function capture(env: NodeJS.ProcessEnv = {}): Captured {
  let out = '';
  let err = '';
  return {
    io: {
      stdout: { write: (text: string) => (out += text) },
      stderr: { write: (text: string) => (err += text) },
      stdin: new PassThrough(),
      stdoutIsTTY: false,
      stderrIsTTY: false,
      env: { PATH: process.env.PATH, TRACEMARK_CACHE_DIR: cacheDir, ...env },
    },
    out: () => out,
    err: () => err,
  };
}

/** Runs argv through a program that registers the two commands the way cli.ts does; returns the exit code. */
async function run(argv: string[], captured: Captured): Promise<number> {
  let exitCode = 0;
  const setExit = (code: number) => {
    exitCode = code;
  };
  const program = new Command('tracemark').exitOverride().configureOutput({
    writeOut: (t) => captured.io.stdout.write(t),
    writeErr: (t) => captured.io.stderr.write(t),
  });
  registerServe(program, captured.io, setExit);
  registerKeys(program, captured.io, setExit);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof CliError) {
      captured.io.stderr.write(`error: ${error.message}\n`);
      return error.exitCode;
    }
    throw error;
  }
}

describe('tracemark keys', () => {
  it('create prints {"id","key"} once with --json; list never shows keys; revoke takes effect', async () => {
    // the keys commands work on a gateway's data directory, never making one
    const dataDir = await gatewayDataDir(temporaryDirectory());
    const created = capture();
    expect(
      await run(
        ['keys', 'create', '--scopes', 'generate,verify', '--data-dir', dataDir, '--json', '--name', 'ci'],
        created,
      ),
    ).toBe(0);
    const { id, key } = JSON.parse(created.out());
    expect(Object.keys(JSON.parse(created.out())).sort()).toEqual(['id', 'key']);
    expect(id).toMatch(/^ak_[0-9a-f]{16}$/);
    expect(key).toMatch(/^tm_live_[0-9a-f]{16}_/);
    expect(statSync(join(dataDir, 'server-secret')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, 'gateway.sqlite')).mode & 0o777).toBe(0o600);

    const plain = capture();
    expect(
      await run(
        ['keys', 'create', '--scopes', 'admin', '--data-dir', dataDir, '--expires-in-days', '30'],
        plain,
      ),
    ).toBe(0);
    expect(plain.out()).toMatch(/^tm_live_\S+\n$/);
    expect(plain.err()).toMatch(/shown only now/);

    const listed = capture();
    expect(await run(['keys', 'list', '--data-dir', dataDir, '--json'], listed)).toBe(0);
    const keys = JSON.parse(listed.out()).keys;
    expect(keys).toHaveLength(2);
    expect(keys[0]).toMatchObject({ id, scopes: ['generate', 'verify'], name: 'ci', state: 'active' });
    expect(listed.out()).not.toContain(key);
    expect(listed.out()).not.toContain('hash');

    const revoked = capture();
    expect(await run(['keys', 'revoke', id, '--data-dir', dataDir], revoked)).toBe(0);
    expect(revoked.out()).toBe(`revoked ${id}\n`);
    const human = capture();
    await run(['keys', 'list', '--data-dir', dataDir], human);
    expect(human.out()).toMatch(new RegExp(`${id}\\s+revoked`));
  });

  it('usage errors exit 2 and name the problem', async () => {
    const empty = capture();
    const nowhere = temporaryDirectory();
    expect(await run(['keys', 'list', '--data-dir', nowhere], empty)).toBe(2);
    expect(empty.err()).toMatch(/no gateway has run in this data directory/);
    const dataDir = await gatewayDataDir(temporaryDirectory());
    const bad = capture();
    expect(await run(['keys', 'create', '--scopes', 'generate,root', '--data-dir', dataDir], bad)).toBe(2);
    expect(bad.err()).toMatch(/unknown scope "root"/);
    expect(await run(['keys', 'create', '--data-dir', dataDir], capture())).toBe(2);
    const missing = capture();
    expect(await run(['keys', 'revoke', 'ak_0000000000000000', '--data-dir', dataDir], missing)).toBe(2);
    expect(missing.err()).toMatch(/no API key/);
  });
});

describe('tracemark serve', () => {
  it('first start: creates the keys (0600), prints the dev key once and a curl command that works', async () => {
    const dataDir = temporaryDirectory();
    const captured = capture({ TRACEMARK_DATA_DIR: dataDir, TRACEMARK_PORT: '0' });
    const stop = new AbortController();
    const serving = runServe({ logLevel: 'warn' }, captured.io, stop.signal);
    for (let i = 0; i < 300 && !captured.err().includes('listening on'); i++)
      await new Promise((r) => setTimeout(r, 50));
    const banner = captured.err();
    const url = /listening on (http:\/\/\S+)/.exec(banner)![1]!;
    const devKey = readFileSync(join(dataDir, 'dev-api-key'), 'utf8').trim();
    expect(statSync(join(dataDir, 'dev-api-key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, 'watermark-key.json')).mode & 0o777).toBe(0o600);
    expect(banner.split(devKey).length - 1).toBe(2); // the key itself, and inside the curl command
    const curl = banner
      .split('\n')
      .find((line) => line.trim().startsWith('curl '))!
      .trim();
    expect(curl).toContain(`${url}/v1/chat/completions`);
    if (existsSync('/usr/bin/curl')) {
      const { stdout } = await promisify(execFile)('bash', ['-c', curl]);
      expect(JSON.parse(stdout).object).toBe('chat.completion');
    } else {
      const body = /-d '([^']+)'/.exec(curl)![1]!;
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${devKey}`, 'content-type': 'application/json' },
        body,
      });
      expect(response.status).toBe(200);
    }
    expect(captured.out()).not.toContain(devKey);
    stop.abort();
    await serving;

    const second = capture({ TRACEMARK_DATA_DIR: dataDir, TRACEMARK_PORT: '0' });
    const again = new AbortController();
    const servingAgain = runServe({}, second.io, again.signal);
    for (let i = 0; i < 300 && !second.err().includes('listening on'); i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(second.err()).not.toContain(devKey);
    expect(second.err()).not.toMatch(/First start/);
    again.abort();
    await servingAgain;
  });

  it('a bad setting is a usage error naming it; --help lists the options', async () => {
    const bad = capture({ TRACEMARK_PORT: 'eighty' });
    expect(await run(['serve', '--data-dir', temporaryDirectory()], bad)).toBe(2);
    expect(bad.err()).toMatch(/TRACEMARK_PORT/);
    const help = capture();
    expect(await run(['serve', '--help'], help)).toBe(0);
    for (const flag of ['--port', '--host', '--data-dir', '--key', '--upstream'])
      expect(help.out()).toContain(flag);
  });
});
