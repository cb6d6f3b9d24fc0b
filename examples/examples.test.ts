/**
 * The examples of examples/src run as a user runs them (a child process on the workspace sources) and
 * print what the READMEs say; the README blocks marked `<!-- example: PATH -->` are that file verbatim,
 * and those marked `<!-- excerpt: PATH -->` are cut from it (chunks separated by `// …` lines), so no
 * snippet in a README can drift from code that runs.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const examplesDirectory = fileURLToPath(new URL('.', import.meta.url));
const repositoryRoot = join(examplesDirectory, '..');
/** The model cache the end-to-end tests share (test/helpers.ts), so the embedded model trains once. */
const cacheDir = process.env.TRACEMARK_CACHE_DIR ?? join(tmpdir(), 'tracemark-test-cache');

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `node --conditions=source --import tsx src/NAME.ts ARGS`, as the package's scripts run it. */
function runExample(name: string, args: readonly string[] = []): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', `src/${name}.ts`, ...args],
      {
        cwd: examplesDirectory,
        env: { ...process.env, TRACEMARK_CACHE_DIR: cacheDir },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** The verdict and log10 p printed on the line that starts with `label`. */
function line(stdout: string, label: string): { verdict: string; log10P: number } {
  const found = stdout.split('\n').find((text) => text.startsWith(label));
  expect(found, `no line starting with ${JSON.stringify(label)} in:\n${stdout}`).toBeDefined();
  const match = /: (\w+)[,( ].*log10 p = (-?[\d.]+)/.exec(found!);
  expect(match, found).not.toBeNull();
  return { verdict: match![1]!, log10P: Number(match![2]) };
}

const modelTimeout = 180_000;

/**
 * The examples make a fresh key at each run, as a user's first run does, and their controls (unwatermarked
 * text, a human corpus) are then judged under that key: each comes up "watermarked" by chance about 1 time in
 * 10,000 keys (the controls' log10 p below −4), so a test with such a control runs once more before it fails.
 * A real fault (a control always detected, a mark never) fails both runs.
 */
const freshKey = { retry: 1, timeout: modelTimeout };

describe('examples', () => {
  it('every example has a script of the same name in examples/package.json', () => {
    const scripts = JSON.parse(readFileSync(join(examplesDirectory, 'package.json'), 'utf8')).scripts;
    const files = readdirSync(join(examplesDirectory, 'src')).filter((file) => file.endsWith('.ts'));
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const file of files) {
      const name = file.replace(/\.ts$/, '');
      expect(scripts[name]).toBe(`node --conditions=source --import tsx src/${file}`);
    }
  });

  it('watermark-any-logits: the watermarked output is detected, the control is not', freshKey, async () => {
    const run = await runExample('watermark-any-logits');
    expect(run.code, run.stderr).toBe(0);
    const marked = line(run.stdout, 'with watermark:');
    expect(marked.verdict).toBe('watermarked');
    expect(marked.log10P).toBeLessThan(-10);
    const control = line(run.stdout, 'control (none):');
    expect(control.verdict).not.toBe('watermarked');
    expect(control.log10P).toBeGreaterThan(-4);
  });

  it(
    'generation-loop: the decoded text of the watermarked loop is detected, the control is not',
    freshKey,
    async () => {
      const run = await runExample('generation-loop');
      expect(run.code, run.stderr).toBe(0);
      const marked = line(run.stdout, 'with watermark:');
      expect(marked.verdict).toBe('watermarked');
      expect(marked.log10P).toBeLessThan(-10);
      const control = line(run.stdout, 'control (none):');
      expect(control.verdict).not.toBe('watermarked');
      expect(control.log10P).toBeGreaterThan(-4);
    },
  );

  it(
    'detect-text: the demo files are detected and a corrupt key file is an InputError',
    freshKey,
    async () => {
      const run = await runExample('detect-text');
      expect(run.code, run.stderr).toBe(0);
      const marked = run.stdout.split('\n').find((text) => text.includes('watermarked.txt: '));
      expect(marked, run.stdout).toMatch(/watermarked\.txt: watermarked \(/);
      expect(Number(/log10 p = (-?[\d.]+)/.exec(marked!)![1])).toBeLessThan(-10);
      expect(run.stdout).toMatch(/human\.txt: (not_watermarked|insufficient) \(/);
      expect(run.stdout).toMatch(/^error TM_ERR_KEY_FILE: .*broken-key\.json: key file: /m);
    },
  );

  it('detect-text with --key: a missing key file exits 3 with TM_ERR_IO', async () => {
    const run = await runExample('detect-text', ['--key', 'no-such-key.json', 'no-such-text.txt']);
    expect(run.code).toBe(3);
    expect(run.stdout).toMatch(/^error TM_ERR_IO: no-such-key\.json: cannot read key file/m);
  });

  it(
    'radioactivity-scan: the corpus with our outputs is radioactive, the human one is not',
    freshKey,
    async () => {
      const run = await runExample('radioactivity-scan');
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/^copied: radioactive: /m);
      expect(run.stdout).toMatch(/^human: (not_radioactive|insufficient): /m);
      expect(run.stdout).toMatch(/fake-key rank 1 of 101/);
    },
  );

  it('tokenize: invisible characters do not change the ids; bad ids are a RangeError', async () => {
    const run = await runExample('tokenize');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('same ids as the clean text: true');
    expect(run.stdout).toMatch(/^RangeError: tokens\[2\] /m);
  });

  it(
    'cli-in-process: run(argv) returns the exit codes, --json output parses, the marked text is detected',
    freshKey,
    async () => {
      const run = await runExample('cli-in-process');
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/^keygen: exit 0, key id tmk1_[0-9a-f]+$/m);
      expect(run.stdout).toMatch(/^marked\.txt: watermarked \(log10 p = -\d/m);
      expect(Number(/^marked\.txt: .*log10 p = (-?[\d.]+)/m.exec(run.stdout)![1])).toBeLessThan(-10);
      expect(run.stdout).toMatch(/^plain\.txt: (not_watermarked|insufficient) /m);
      expect(run.stdout).toContain('detect --fail-on-detect: exit 1');
      expect(run.stdout).toContain('detect without --key: exit 2, TM_ERR_USAGE');
    },
  );

  it('provenance-log: the checkpoint and the inclusion proof verify; an edited record does not', async () => {
    const run = await runExample('provenance-log');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('record rec-2 included: true');
    expect(run.stdout).toContain('edited record included: false');
    expect(run.stdout).toContain('another key: TM_ERR_UNKNOWN_KEY');
  });
});

/** Markdown files that may carry example or excerpt blocks: every README of a package or an app. */
function markdownFiles(): string[] {
  const readmes = ['packages', 'apps'].flatMap((parent) =>
    readdirSync(join(repositoryRoot, parent))
      .map((name) => join(parent, name, 'README.md'))
      .filter((path) => existsSync(join(repositoryRoot, path))),
  );
  const examples = readdirSync(examplesDirectory)
    .filter((name) => name.endsWith('.md'))
    .map((name) => join('examples', name));
  return [...readmes, ...examples, 'README.md', 'CONTRIBUTING.md'].filter((path) =>
    existsSync(join(repositoryRoot, path)),
  );
}

/** The library packages and the CLI: each README shows one whole runnable example. */
const documented: Readonly<Record<string, string>> = {
  'packages/core/README.md': 'examples/src/watermark-any-logits.ts',
  'packages/detection/README.md': 'examples/src/detect-text.ts',
  'packages/extraction/README.md': 'examples/src/radioactivity-scan.ts',
  'packages/lm/README.md': 'examples/src/generation-loop.ts',
  'packages/provenance/README.md': 'examples/src/provenance-log.ts',
  'packages/tokenizers/README.md': 'examples/src/tokenize.ts',
  'apps/cli/README.md': 'examples/src/cli-in-process.ts',
};

interface Block {
  readonly kind: 'example' | 'excerpt';
  readonly path: string;
  readonly code: string;
}

function blocks(markdown: string): Block[] {
  const found: Block[] = [];
  const pattern = /<!-- (example|excerpt): (\S+) -->\n```ts\n([\s\S]*?)```/g;
  for (const match of markdown.matchAll(pattern)) {
    found.push({ kind: match[1] as Block['kind'], path: match[2]!, code: match[3]! });
  }
  return found;
}

/** Each chunk (between `// …` lines) is a run of consecutive lines of the file, indentation aside. */
function isExcerpt(code: string, file: string): boolean {
  const fileLines = file.split('\n').map((text) => text.trim());
  const chunks = code
    .replace(/\n$/, '')
    .split(/^\s*\/\/ …\s*$/m)
    .map((chunk) =>
      chunk
        .replace(/^\n|\n$/g, '')
        .split('\n')
        .map((text) => text.trim()),
    )
    .filter((chunk) => chunk.some((text) => text !== ''));
  let from = 0;
  for (const chunk of chunks) {
    let at = -1;
    for (let i = from; i + chunk.length <= fileLines.length && at < 0; i++) {
      if (chunk.every((text, j) => fileLines[i + j] === text)) at = i;
    }
    if (at < 0) return false;
    from = at + chunk.length;
  }
  return chunks.length > 0;
}

describe('README code blocks are the examples', () => {
  const files = markdownFiles();
  const marked = files.flatMap((path) =>
    blocks(readFileSync(join(repositoryRoot, path), 'utf8')).map((block) => [path, block] as const),
  );

  it('each library package README and the CLI README shows its whole example', () => {
    const shown = marked
      .filter(([, block]) => block.kind === 'example')
      .map(([path, block]) => `${path} ${block.path}`);
    for (const [readme, example] of Object.entries(documented))
      expect(shown).toContain(`${readme} ${example}`);
  });

  it('every example file is shown in some README', () => {
    const used = new Set(marked.map(([, block]) => block.path));
    for (const file of readdirSync(join(examplesDirectory, 'src')).filter((name) => name.endsWith('.ts'))) {
      expect(used, `examples/src/${file} is in no README`).toContain(`examples/src/${file}`);
    }
  });

  it('the root README has a "Use the library" section with excerpts of the examples', () => {
    const readme = readFileSync(join(repositoryRoot, 'README.md'), 'utf8');
    const section = readme.slice(
      readme.indexOf('## Use the library'),
      readme.indexOf('\n## ', readme.indexOf('## Use the library') + 1),
    );
    expect(section.length).toBeGreaterThan(100);
    expect(blocks(section).length).toBeGreaterThanOrEqual(4);
  });

  it.each(marked.map(([path, block]) => [`${path}: ${block.kind} ${block.path}`, block] as const))(
    '%s',
    (_name, block) => {
      const file = readFileSync(join(repositoryRoot, block.path), 'utf8');
      if (block.kind === 'example') expect(block.code).toBe(file);
      else expect(isExcerpt(block.code, file), `not cut from ${block.path}:\n${block.code}`).toBe(true);
    },
  );
});
