import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import wabt from 'wabt';
import { PRF_WASM_BASE64 } from './prf-wasm.ts';

it('the committed WebAssembly module is the compilation of wasm/prf.wat', async () => {
  const source = readFileSync(new URL('../wasm/prf.wat', import.meta.url), 'utf8');
  const compiler = await wabt();
  const { buffer } = compiler.parseWat('prf.wat', source, { bulk_memory: true }).toBinary({});
  expect(Buffer.from(buffer).toString('base64')).toBe(PRF_WASM_BASE64);
});
