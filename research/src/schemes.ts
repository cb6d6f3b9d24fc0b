/** Watermark configurations under test, their labels, and the spike-entropy quantities of KGW §4. */
import { createWatermarker, createWatermarkKey, type SchemeName, type Watermarker } from '@tracemark/core';
import { tokenizer } from './corpus.ts';

export interface WatermarkConfig {
  readonly name: SchemeName;
  readonly contextWidth: number;
  readonly gamma: number;
  readonly delta: number;
}

/** The code's defaults at the time of these experiments (packages/core scheme.ts). */
export const CODE_DEFAULT: WatermarkConfig = Object.freeze({
  name: 'lefthash',
  contextWidth: 1,
  gamma: 0.25,
  delta: 2,
});

export const SCHEME_VARIANTS: readonly { name: SchemeName; contextWidth: number }[] = Object.freeze([
  { name: 'lefthash', contextWidth: 1 },
  { name: 'lefthash', contextWidth: 2 },
  { name: 'lefthash', contextWidth: 4 },
  { name: 'selfhash', contextWidth: 1 },
  { name: 'selfhash', contextWidth: 2 },
  { name: 'selfhash', contextWidth: 4 },
]);

/** "LeftHash(1)", "SelfHash(4)". */
export function schemeLabel(config: { name: SchemeName; contextWidth: number }): string {
  return `${config.name === 'lefthash' ? 'LeftHash' : 'SelfHash'}(${config.contextWidth})`;
}

/** "LeftHash(1) γ=0.25 δ=2". */
export function configLabel(config: WatermarkConfig): string {
  return `${schemeLabel(config)} γ=${config.gamma} δ=${config.delta}`;
}

export function sameConfig(a: WatermarkConfig, b: WatermarkConfig): boolean {
  return a.name === b.name && a.contextWidth === b.contextWidth && a.gamma === b.gamma && a.delta === b.delta;
}

export function watermarkerFor(secret: Uint8Array, config: WatermarkConfig): Watermarker {
  const key = createWatermarkKey({
    secret,
    scheme: {
      name: config.name,
      contextWidth: config.contextWidth,
      gamma: config.gamma,
      delta: config.delta,
    },
    tokenizer: tokenizer().id,
  });
  return createWatermarker(key, { specialTokenIds: tokenizer().specialTokenIds });
}

/**
 * The modulus z = (1 − γ)(e^δ − 1) / (1 + (e^δ − 1)γ) of the spike entropy S(p, z) = Σ_k p_k / (1 + z p_k)
 * (Kirchenbauer et al. 2023, "A Watermark for Large Language Models", https://arxiv.org/abs/2301.10226,
 * Definition 4.1 and Theorem 4.2).
 */
export function spikeModulus(gamma: number, delta: number): number {
  const alpha = Math.exp(delta);
  return ((1 - gamma) * (alpha - 1)) / (1 + (alpha - 1) * gamma);
}

/**
 * Theorem 4.2's lower bound on the expected green fraction of a generation whose mean spike entropy
 * (with the modulus above) is S: γα S / (1 + (α − 1)γ), α = e^δ.
 */
export function greenFractionBound(gamma: number, delta: number, spikeEntropy: number): number {
  const alpha = Math.exp(delta);
  return ((gamma * alpha) / (1 + (alpha - 1) * gamma)) * spikeEntropy;
}
