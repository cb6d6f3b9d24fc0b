/**
 * Type-level check that a (window, token) filter cannot be expressed: compiles fixtures/pair-filter.ts
 * with the project's settings and expects an error on exactly the lines marked `// error`.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

describe('the supervised filter at the type level', () => {
  it('rejects predicates, pair sets, look-alikes, direct construction and token arguments', () => {
    const fixture = fileURLToPath(new URL('./fixtures/pair-filter.ts', import.meta.url));
    const program = ts.createProgram([fixture], {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      exactOptionalPropertyTypes: true,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
      customConditions: ['source'],
      allowImportingTsExtensions: true,
    });
    const lines = readFileSync(fixture, 'utf8').split('\n');
    const expected = lines.flatMap((line, i) => (line.includes('// error') ? [i + 1] : []));
    const errors = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file !== undefined && d.file.fileName === fixture && d.start !== undefined)
      .map((d) => d.file!.getLineAndCharacterOfPosition(d.start!).line + 1);
    expect(expected).toHaveLength(6);
    expect([...new Set(errors)].sort((a, b) => a - b)).toEqual(expected);
  }, 60_000);
});
