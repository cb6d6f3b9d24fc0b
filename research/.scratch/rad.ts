import { createHash } from 'node:crypto';
import { createWatermarkKey, createWatermarker, generateTokens } from '@tracemark/core';
import { loadDefaultModel, loadHumanCorpus, logitsSource, trainNgramModel } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { scanCorpus } from '@tracemark/extraction';
import { writeFileSync, readFileSync, existsSync } from 'node:fs';

const tok = getTokenizer('cl100k_base');
const h = Number(process.env.H ?? 1);
const key = createWatermarkKey({ secret: createHash('sha256').update(`scratch/h${h}`).digest(), scheme: { name: 'lefthash', contextWidth: h } });
const wm = createWatermarker(key, { specialTokenIds: tok.specialTokenIds });
const teacher = await loadDefaultModel({ tokenizerId: 'cl100k_base' });
const tsrc = logitsSource(teacher, 512);
const prompt = tok.encode('Write about rivers.\n\n');
const cache = `harvest-h${h}.json`;
let W: number[][] = [];
const need = Number(process.env.HARVEST ?? 100000);
if (existsSync(cache)) W = JSON.parse(readFileSync(cache, 'utf8'));
let have = W.reduce((s, a) => s + a.length, 0);
const t0 = performance.now();
let i = W.length;
while (have < need) {
  const ids: number[] = [];
  for await (const { token } of generateTokens({ source: tsrc, prompt, maxTokens: 200, watermarker: wm, temperature: 1, seed: 1000 + i })) ids.push(token);
  // round trip through text like the gateway's client
  const a = Array.from(tok.encodeFast(tok.decode(ids)));
  W.push(a); have += a.length; i++;
}
writeFileSync(cache, JSON.stringify(W));
console.error(`harvest ${have} tokens, ${((performance.now()-t0)/1000).toFixed(1)} s`);
const human = (await loadHumanCorpus({ split: 'train' })).map((d) => tok.encodeFast(d.text));

async function cell(S: number, rho: number, order: number, T: number, sampled: number, discount: any = 'modified') {
  const docs: ArrayLike<number>[] = [];
  let a = 0; const budget = Math.round(rho * S);
  for (const w of W) { if (a >= budget) break; const t = w.slice(0, Math.min(w.length, budget - a)); docs.push(t); a += t.length; }
  let hu = 0;
  for (const d of human) { if (hu >= S - a) break; const t = d.subarray(0, Math.min(d.length, S - a - hu)); docs.push(t); hu += t.length; }
  if (a < budget) throw new Error('harvest too small');
  const student = await trainNgramModel({ documents: docs, vocabSize: tok.vocabSize, tokenizerId: 'cl100k_base', order, discount });
  const src = logitsSource(student, 512);
  const outs: { tokens: Uint32Array; prompt: Uint32Array; source: string }[] = [];
  let n = 0, j = 0;
  const p2 = tok.encode('Tell me about bread.\n\n');
  while (n < sampled) {
    const ids: number[] = [];
    for await (const { token } of generateTokens({ source: src, prompt: p2, maxTokens: 200, watermarker: null, temperature: T, seed: 77 + j })) ids.push(token);
    outs.push({ tokens: Uint32Array.from(ids), prompt: p2, source: `d${j}` }); n += ids.length; j++;
  }
  let raw = 0, rawG = 0;
  for (const o of outs) for (let t = h; t < o.tokens.length; t++) { raw++; if (wm.isGreen(o.tokens, t)) rawG++; }
  const r = await scanCorpus({ documents: outs, keys: [key], specialTokenIds: tok.specialTokenIds, fakeKeys: 0 });
  const k = r.keys[0]!;
  console.log(JSON.stringify({ S, rho, order, T, discount, sampled: n, scored: k.numScored, g: +k.greenFraction.toFixed(4), z: +k.z.toFixed(2), log10P: +k.log10P.toFixed(2), rawG: +(rawG/raw).toFixed(4) }));
}
const grid = JSON.parse(process.env.GRID!);
for (const c of grid) await cell(c.S, c.rho, c.order ?? 4, c.T ?? 1, c.N ?? 60000, c.D ?? 'modified');
