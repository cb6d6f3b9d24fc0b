/**
 * The API reference builds with TypeDoc's validation as errors (typedoc.json): a `{@link}` to nothing or
 * to a symbol the packages do not export, or an exported signature that names an unexported type, fails
 * here, as `pnpm docs` would. Nothing is written (`--emit none`); about 5 s on 2 cores.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repositoryRoot = fileURLToPath(new URL('..', import.meta.url));
const typedocBin = join(
  createRequire(join(repositoryRoot, 'package.json')).resolve('typedoc/package.json'),
  '..',
  'bin',
  'typedoc',
);

describe('API reference (TypeDoc)', () => {
  it('typedoc.json documents every library package and treats validation warnings as errors', () => {
    const options = JSON.parse(readFileSync(join(repositoryRoot, 'typedoc.json'), 'utf8'));
    expect(options.treatValidationWarningsAsErrors).toBe(true);
    expect(options.validation).toMatchObject({ notExported: true, invalidLink: true });
    for (const name of ['core', 'detection', 'extraction', 'lm', 'provenance', 'tokenizers']) {
      expect(options.entryPoints).toContain(`examples/api/${name}.ts`);
    }
  });

  it('converts and validates with no warning or error', () => {
    const run = spawnSync(process.execPath, [typedocBin, '--emit', 'none', '--logLevel', 'Warn'], {
      cwd: repositoryRoot,
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
      timeout: 120_000,
    });
    const said = `${run.stdout}${run.stderr}`;
    expect(run.status, said).toBe(0);
    expect(said).not.toMatch(/\[(warning|error)\]/);
  }, 150_000);
});
