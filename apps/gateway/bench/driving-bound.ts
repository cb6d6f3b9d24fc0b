/**
 * How few upstream round trips per token any exact token-driving method can reach, on the embedded model
 * at temperature 0.7, when each round trip returns n independent samples of D tokens from the upstream's
 * distribution p (top-k logprobs at every position) and the gateway must emit tokens distributed as the
 * watermarked q.
 *
 * Why it bounds every method: a call can emit its (m + 1)-th token only where the gateway knows p after
 * the first m emitted tokens, that is, only when those m tokens are the first m of one of the n samples.
 * For any coupling of the samples Y_1 … Y_n with the emitted prefix X (X ~ q_m, each Y_i ~ p_m):
 *   P[X ∈ {Y_i}] ≤ Σ_x min(q_m(x), P[x ∈ {Y_i}]) ≤ Σ_x min(q_m(x), n·p_m(x)) = E_{x~q_m}[min(1, n·p_m(x)/q_m(x))].
 * So E[tokens per call] ≤ 1 + Σ_{m=1}^{D−1} E_{x~q}[min(1, n·p_m(x)/q_m(x))], and round trips per token
 * ≥ its inverse. The expectation is estimated on watermarked text drawn from q: every position of it starts
 * a call in turn (the estimate is the bound averaged over the contexts the text visits).
 *
 *   pnpm --filter @tracemark/gateway driving-bound [-- --tokens 3000 --depth 8 --choices 1,16,64,256,1024 --simulate 1,16,64]
 */
import { parseArgs } from 'node:util';
import { createRandom, createWatermarker, createWatermarkKey } from '@tracemark/core';
import { loadDefaultModel } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { FIRST_LONE_BLOCK, LONE_BLOCK } from '../src/backends/upstream.ts';
import {
  acceptAmongDrafts,
  draftDistributions,
  drawIndex,
  verifyChain,
} from '../src/generation/distribution.ts';

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg, index) => !(index === 0 && arg === '--')),
  options: {
    tokens: { type: 'string', default: '3000' },
    depth: { type: 'string', default: '8' },
    choices: { type: 'string', default: '1,16,64,256,1024' },
    simulate: { type: 'string', default: '1,16,64' },
    temperature: { type: 'string', default: '0.7' },
    'top-logprobs': { type: 'string', default: '20' },
  },
});
const tokens = Number(values.tokens);
const depth = Number(values.depth);
const choices = values.choices.split(',').map(Number);
const simulated = values.simulate.split(',').filter(Boolean).map(Number);
const temperature = Number(values.temperature);
const topLogprobs = Number(values['top-logprobs']);

const tokenizer = getTokenizer('cl100k_base');
const model = await loadDefaultModel({ tokenizerId: 'cl100k_base' });
// the round-trips test's key and prompts
const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(5) }));
const PROMPTS = ['The committee said on Tuesday that', 'It was late in the evening when'];

// One watermarked text per prompt, with ln p and ln q of each emitted token (p: the upstream's top-k at T).
const logP: number[][] = [];
const logQ: number[][] = [];
const random = createRandom(100);
for (const prompt of PROMPTS) {
  const context: number[] = Array.from(tokenizer.encode(prompt));
  const lp: number[] = [];
  const lq: number[] = [];
  while (lp.length < tokens / PROMPTS.length) {
    const candidates = model.candidates(context, topLogprobs);
    const { p, q } = draftDistributions(candidates, context, { watermarker, temperature, topP: 1 });
    const index = drawIndex(q, random);
    lp.push(Math.log(p[index]!));
    lq.push(Math.log(q[index]!));
    context.push(candidates.ids[index]!);
  }
  logP.push(lp);
  logQ.push(lq);
}

console.log(
  `# Token driving: the least round trips per token of any exact method (embedded model, T = ${temperature}, top ${topLogprobs}, D = ${depth}, ${tokens} watermarked tokens)\n`,
);
console.log('| samples per call n | tokens per call ≤ | round trips per token ≥ |');
console.log('| --- | --- | --- |');
for (const n of choices) {
  let total = 0;
  let starts = 0;
  for (let text = 0; text < logP.length; text++) {
    const lp = logP[text]!;
    const lq = logQ[text]!;
    for (let start = 0; start + depth <= lp.length; start++) {
      let expected = 1;
      let logPm = 0;
      let logQm = 0;
      for (let m = 1; m < depth; m++) {
        logPm += lp[start + m - 1]!;
        logQm += lq[start + m - 1]!;
        // P[x among n independent draws] = 1 − (1 − p_m(x))^n (≤ n·p_m(x))
        const covered = -Math.expm1(n * Math.log1p(-Math.exp(logPm)));
        expected += Math.min(1, covered / Math.exp(logQm));
      }
      total += expected;
      starts++;
    }
  }
  const perCall = total / starts;
  console.log(`| ${n} | ${perCall.toFixed(2)} | ${(1 / perCall).toFixed(3)} |`);
}

// The gateway's walk, simulated in process on the same model as backends/upstream.ts runs it: n samples of
// D tokens per call drawn from p; acceptAmongDrafts at each position while several samples agree, and
// verifyChain over the rest of the last one (at most LONE_BLOCK positions; FIRST_LONE_BLOCK for a completion's first token).
const options = { watermarker, temperature, topP: 1 };
console.log(
  `\n# The gateway's walk, simulated in process (${tokens / 4} tokens per setting, D = ${depth})\n\n| samples per call n | round trips per token | tokens | samples agreeing at depth 0 / 1 / … (mean over the calls that got there) |\n| --- | --- | --- | --- |`,
);
for (const n of simulated) {
  const rng = createRandom(200 + n);
  // how many samples still agree with the emitted text at each depth, summed over the calls that got there
  const agreeing = new Array<number>(depth).fill(0);
  const reached = new Array<number>(depth).fill(0);
  let calls = 0;
  let emitted = 0;
  for (const prompt of PROMPTS) {
    const context: number[] = Array.from(tokenizer.encode(prompt));
    const promptLength = context.length;
    const goal = emitted + tokens / PROMPTS.length / 4;
    while (emitted < goal) {
      calls++;
      // n independent samples of D tokens from p
      const samples: number[][] = [];
      for (let s = 0; s < n; s++) {
        const path: number[] = [];
        const own = context.slice();
        for (let d = 0; d < depth; d++) {
          const candidates = model.candidates(own, topLogprobs);
          const { p } = draftDistributions(candidates, own, options);
          const token = candidates.ids[drawIndex(p, rng)]!;
          path.push(token);
          own.push(token);
        }
        samples.push(path);
      }
      let live = samples.map((_, index) => index);
      for (let d = 0; d < depth; d++) {
        agreeing[d]! += live.length;
        reached[d]!++;
        if (live.length === 1 && d < depth - 1) {
          // one sample left: the rest of it is verified as a block (verifyChain), and the call ends
          const sample = samples[live[0]!]!;
          const steps = [];
          const own = context.slice();
          const block = context.length === promptLength ? FIRST_LONE_BLOCK : LONE_BLOCK;
          const last = Math.min(depth - 1, d + block - 1);
          for (let k = d; k <= last; k++) {
            steps.push(draftDistributions(model.candidates(own, topLogprobs), own, options));
            own.push(sample[k]!);
          }
          const { tokens: out } = verifyChain(steps, sample.slice(d, last), rng);
          for (const token of out) context.push(token);
          emitted += out.length;
          break;
        }
        const candidates = model.candidates(context, topLogprobs);
        const distributions = draftDistributions(candidates, context, options);
        const outcome = acceptAmongDrafts(
          distributions,
          live.map((index) => samples[index]![d]!),
          rng,
        );
        context.push(outcome.token);
        emitted++;
        if (outcome.draftIndex < 0) break;
        live = live.filter((index) => samples[index]![d] === outcome.token);
      }
    }
  }
  const mean = agreeing.map((sum, d) => (reached[d]! > 0 ? (sum / reached[d]!).toFixed(1) : '–'));
  console.log(`| ${n} | ${(calls / emitted).toFixed(3)} | ${emitted} | ${mean.join(' / ')} |`);
}
