/**
 * The gateway's modules import one another without a cycle, type-only imports included (a cycle through
 * app.ts once left a route reading the app's exports before they existed), and only the entry points import
 * app.ts: what routes and services share lives in context.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';

const SOURCE_ROOT = dirname(fileURLToPath(import.meta.url));

/** The modules that may import app.ts: the package's entry, the server, the test harness, and tests. */
const APP_IMPORTERS = new Set(['index.ts', 'server.ts', 'test-support/harness.ts']);

/** Module specifiers of a file's static imports and re-exports (`import type` and `export … from` too). */
function staticImports(fileName: string, source: string): string[] {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  const specifiers: string[] = [];
  for (const statement of file.statements) {
    const specifier =
      ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement)
        ? statement.moduleSpecifier
        : undefined;
    if (specifier !== undefined && ts.isStringLiteral(specifier)) specifiers.push(specifier.text);
  }
  return specifiers;
}

function typeScriptFiles(directory: string): string[] {
  return readdirSync(directory, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts'))
    .map((name) => name.replaceAll('\\', '/'))
    .sort();
}

/** Each module (path relative to `root`) → the modules under `root` it imports with a relative specifier. */
function importGraph(root: string): Map<string, string[]> {
  const files = typeScriptFiles(root);
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const edges: string[] = [];
    for (const specifier of staticImports(file, readFileSync(join(root, file), 'utf8'))) {
      if (!specifier.startsWith('.')) continue;
      const target = relative(root, resolve(root, dirname(file), specifier)).replaceAll('\\', '/');
      if (target.startsWith('../')) continue; // another package's sources (a test fixture's)
      if (!known.has(target))
        throw new Error(`${file} imports ${specifier}, which is not a module under src`);
      edges.push(target);
    }
    graph.set(file, edges);
  }
  return graph;
}

/** A cycle of the graph as the path [a, b, …, a], or null when there is none (depth-first search). */
function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | null {
  const done = new Set<string>();
  const path: string[] = [];
  const onPath = new Set<string>();
  const visit = (node: string): string[] | null => {
    if (onPath.has(node)) return [...path.slice(path.indexOf(node)), node];
    if (done.has(node)) return null;
    path.push(node);
    onPath.add(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle !== null) return cycle;
    }
    path.pop();
    onPath.delete(node);
    done.add(node);
    return null;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle !== null) return cycle;
  }
  return null;
}

describe('the import walker', () => {
  it('reads static imports and re-exports, type-only ones included, and nothing else', () => {
    const source = [
      "import a from './a.ts';",
      "import type { B } from '../b.ts';",
      "import {\n  type C,\n  c,\n} from './c.ts';",
      "import './side-effect.ts';",
      "export { d } from './d.ts';",
      "export type * from './e.ts';",
      "import fastify from 'fastify';",
      "// import x from './commented.ts';",
      "const lazy = () => import('./lazy.ts');",
      'const text = "import y from \'./in-a-string.ts\'";',
    ].join('\n');
    expect(staticImports('example.ts', source)).toEqual([
      './a.ts',
      '../b.ts',
      './c.ts',
      './side-effect.ts',
      './d.ts',
      './e.ts',
      'fastify',
    ]);
  });

  it('finds a cycle, however long, and none in a graph without one', () => {
    const acyclic = new Map([
      ['app.ts', ['routes/a.ts', 'context.ts']],
      ['routes/a.ts', ['context.ts', 'verify.ts']],
      ['verify.ts', ['context.ts']],
      ['context.ts', []],
    ]);
    expect(findCycle(acyclic)).toBeNull();
    const cyclic = new Map([...acyclic, ['verify.ts', ['context.ts', 'app.ts']]]);
    expect(findCycle(cyclic)).toEqual(['app.ts', 'routes/a.ts', 'verify.ts', 'app.ts']);
    expect(findCycle(new Map([['self.ts', ['self.ts']]]))).toEqual(['self.ts', 'self.ts']);
  });
});

describe("the gateway's modules", () => {
  let graph: Map<string, string[]>;
  beforeAll(() => {
    graph = importGraph(SOURCE_ROOT);
  });

  it('are all walked, with their edges', () => {
    expect(graph.get('app.ts')).toContain('routes/provenance.ts');
    expect(graph.get('routes/provenance.ts')).toContain('provenance/verify.ts');
    expect(graph.get('provenance/verify.ts')).toContain('errors.ts');
    // A type-only import is an edge too.
    expect(graph.get('routes/completions.ts')).toContain('context.ts');
    expect(graph.size).toBeGreaterThan(80);
  });

  it('import one another without a cycle', () => {
    expect(findCycle(graph)).toBeNull();
  });

  it('import app.ts only from the entry points', () => {
    const importers = [...graph]
      .filter(([, edges]) => edges.includes('app.ts'))
      .map(([file]) => file)
      .filter((file) => !file.endsWith('.test.ts'));
    expect(importers.filter((file) => !APP_IMPORTERS.has(file))).toEqual([]);
  });
});
