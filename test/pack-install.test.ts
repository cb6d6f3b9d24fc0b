/**
 * The CLI as a user installs it: scripts/pack-install.sh packs every package and installs the CLI from the
 * tarballs with npm, on a PATH without build tools and without the gateway. The installed `tracemark` must
 * give the same detection as the sources, and the commands that need the gateway must name it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repositoryRoot, runCli } from './helpers.ts';

const prefix = mkdtempSync(join(tmpdir(), 'tracemark-pack-install-test-'));
const installed = join(prefix, 'node_modules/.bin/tracemark');

function tracemark(args: readonly string[]) {
  const result = spawnSync(installed, args, { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('the CLI installed from its packed tarballs (scripts/pack-install.sh)', () => {
  let script: ReturnType<typeof spawnSync>;

  beforeAll(() => {
    script = spawnSync('bash', [join(repositoryRoot, 'scripts/pack-install.sh'), prefix], {
      cwd: repositoryRoot,
      encoding: 'utf8',
      timeout: 170_000,
    });
  }, 180_000);

  afterAll(() => rmSync(prefix, { recursive: true, force: true }));

  it('installs without build tools and passes its own checks', () => {
    expect(script.status, `${script.stdout}\n${script.stderr}`).toBe(0);
    expect(script.stdout).toMatch(/== ok: the CLI installs from its tarballs/);
  });

  it('brings neither the gateway nor its native and database dependencies', () => {
    for (const name of ['@tracemark/gateway', 'better-sqlite3', 'pg', 'ioredis', 'fastify']) {
      expect(existsSync(join(prefix, 'node_modules', name)), name).toBe(false);
    }
    for (const name of ['@tracemark/cli', '@tracemark/core', '@tracemark/detection', 'commander']) {
      expect(existsSync(join(prefix, 'node_modules', name)), name).toBe(true);
    }
  });

  it('detects exactly as the sources do', async () => {
    const key = join(prefix, 'key.json');
    expect(tracemark(['keygen', '--out', key]).code).toBe(0);
    const text = join(prefix, 'text.txt');
    writeFileSync(
      text,
      'A sailor home from the sea told of the storm that took the mast, and of the long calm after it.\n',
    );
    const fromPackage = tracemark(['detect', '--key', key, '--json', text]);
    expect(fromPackage.code).toBe(0);
    const fromSource = await runCli(['detect', '--key', key, '--json', text]);
    expect(fromSource.code).toBe(0);
    const result = (output: string) => {
      const { seconds: _s, megabytesPerSecond: _m, workers: _w, ...summary } = JSON.parse(output).summary;
      return { results: JSON.parse(output).results, summary };
    };
    expect(result(fromPackage.stdout)).toEqual(result(fromSource.stdout));
    expect(result(fromPackage.stdout).results[0].numTokens).toBeGreaterThan(15);
  });

  it('serve and keys name the package to install, exit 3', () => {
    const serve = tracemark(['serve', '--port', '0']);
    expect(serve.code).toBe(3);
    expect(serve.stderr).toMatch(
      /^error: tracemark serve needs the package @tracemark\/gateway, which is not installed: install it beside the CLI \(npm install --global @tracemark\/gateway/,
    );
    const keys = tracemark(['keys', 'list', '--json']);
    expect(keys.code).toBe(3);
    expect(JSON.parse(keys.stdout).error.code).toBe('TM_ERR_GATEWAY_MISSING');
    const { version } = JSON.parse(readFileSync(join(repositoryRoot, 'apps/cli/package.json'), 'utf8'));
    expect(tracemark(['--version']).stdout).toBe(`${version}\n`);
  });
});
