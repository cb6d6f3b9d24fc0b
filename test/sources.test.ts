/**
 * Tests must exercise the TypeScript sources of the workspace packages, not a stale `dist` (see
 * vitest.config.ts). A stack trace is no proof: Vite maps a loaded `dist` file back to `src` through
 * its source map, so these checks read the file names V8 itself ran.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { repositoryRoot } from './helpers.ts';

interface WorkspacePackage {
  readonly name: string;
  readonly directory: string;
  readonly source: string;
}

const workspaceDist = /\/(?:packages|apps)\/[^/]+\/dist\//;

const workspacePackages: WorkspacePackage[] = ['packages', 'apps'].flatMap((parent) =>
  readdirSync(join(repositoryRoot, parent))
    .map((name) => join(repositoryRoot, parent, name))
    .filter((directory) => existsSync(join(directory, 'package.json')))
    .flatMap((directory) => {
      const manifest = JSON.parse(readFileSync(join(directory, 'package.json'), 'utf8'));
      const source: unknown = manifest.exports?.['.']?.source;
      return typeof source === 'string' ? [{ name: manifest.name as string, directory, source }] : [];
    }),
);

/** The file V8 ran for the innermost frame of the error `action` throws (not source-mapped). */
function throwingFile(action: () => unknown): string {
  const original = Error.prepareStackTrace;
  let file = '';
  Error.prepareStackTrace = (_error, frames) => {
    file = frames[0]?.getFileName() ?? '';
    return '';
  };
  try {
    action();
  } catch (error) {
    void (error as Error).stack;
  } finally {
    Error.prepareStackTrace = original;
  }
  return file.replace(/^file:\/\//, '');
}

describe('tests run against workspace sources, not dist', () => {
  it('finds the workspace packages', () => {
    expect(workspacePackages.map((p) => p.name)).toEqual(
      expect.arrayContaining(['@tracemark/core', '@tracemark/detection', '@tracemark/cli']),
    );
  });

  it.each(workspacePackages.map((p) => [p.name, p] as const))('%s resolves to its src entry', (_name, p) => {
    // A package resolves its own name through its `exports` (self-reference), so every one is reachable.
    const resolved = import.meta.resolve(p.name, pathToFileURL(join(p.directory, 'package.json')).href);
    expect(resolved).toBe(pathToFileURL(join(p.directory, p.source)).href);
  });

  it('the code that runs is src: @tracemark/core and @tracemark/detection', async () => {
    const core = await import('@tracemark/core');
    const detection = await import('@tracemark/detection');
    expect(throwingFile(() => core.windowScan(new Uint8Array(0), 0.5, 0))).toBe(
      join(repositoryRoot, 'packages/core/src/windows.ts'),
    );
    expect(throwingFile(() => detection.createTextDetector({ keys: [] }))).toBe(
      join(repositoryRoot, 'packages/detection/src/detector.ts'),
    );
  });

  it('no module loaded through the CLI (which imports every package) comes from a dist folder', async () => {
    // The CLI loads a command's modules when it runs; `--help` loads every command, then the gateway.
    const { run } = await import('@tracemark/cli');
    const quiet = { write: () => true };
    expect(
      await run(['--help'], {
        stdout: quiet,
        stderr: quiet,
        stdin: Readable.from([]),
        stdoutIsTTY: false,
        stderrIsTTY: false,
        env: {},
      }),
    ).toBe(0);
    await import('@tracemark/gateway');
    // Vitest's record of the modules this worker evaluated (internal; update this test if it moves).
    const evaluated = (
      globalThis as { __vitest_worker__?: { evaluatedModules?: { fileToModulesMap?: Map<string, unknown> } } }
    ).__vitest_worker__?.evaluatedModules?.fileToModulesMap;
    expect(evaluated, 'Vitest no longer exposes evaluatedModules: update this guard').toBeInstanceOf(Map);
    const files = [...evaluated!.keys()].map((file) => file.replaceAll('\\', '/'));
    expect(files.filter((file) => workspaceDist.test(file))).toEqual([]);
    for (const p of workspacePackages) {
      // The console is a browser bundle; client and monitoring are not reached by a CLI run's imports here.
      if (['@tracemark/console', '@tracemark/client', '@tracemark/monitoring'].includes(p.name)) continue;
      expect(
        files.some((file) => file.startsWith(`${p.directory}/src/`)),
        `${p.name}: no src module loaded`,
      ).toBe(true);
    }
  });
});
