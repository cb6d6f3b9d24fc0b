/** Watermark configurations under test, their labels, and the spike-entropy quantities of KGW §4. */
import {
  createWatermarker,
  createWatermarkKey,
  type GreenListSchemeName,
  type GumbelSchemeName,
  type Watermarker,
} from '@tracemark/core';
import { tokenizer } from './corpus.ts';

/** A green-list configuration (LeftHash, SelfHash): γ and δ. */
export interface WatermarkConfig {
  readonly name: GreenListSchemeName;
  readonly contextWidth: number;
  readonly gamma: number;
  readonly delta: number;
}

/**
 * A Gumbel-max configuration (docs/spec/watermark-gumbel.md): no γ, no δ; `alpha` for `dual_gumbel`.
 * `repeatedContexts` is how generation treats a context seed seen before (core `generateTokens`).
 */
export interface GumbelConfig {
  readonly name: GumbelSchemeName;
  readonly contextWidth: number;
  /** `dual_gumbel`: the weight of key B (0 for `gumbel`). */
  readonly alpha: number;
  readonly repeatedContexts: 'skip' | 'mark';
}

export type AnyWatermarkConfig = WatermarkConfig | GumbelConfig;

export function isGumbelConfig(config: AnyWatermarkConfig): config is GumbelConfig {
  return config.name === 'gumbel' || config.name === 'dual_gumbel';
}

/** The Gumbel configuration the code defaults to (core DEFAULT_GUMBEL_CONTEXT_WIDTH, skip repeats). */
export const GUMBEL_DEFAULT: GumbelConfig = Object.freeze({
  name: 'gumbel',
  contextWidth: 4,
  alpha: 0,
  repeatedContexts: 'skip',
});

/**
 * The Gumbel configurations every experiment measures: `gumbel` at h = 4 (the default), 2 and 1, and
 * `dual_gumbel` at h = 4 with the default α = 0.1; generation skips repeated contexts (the default).
 */
export const GUMBEL_VARIANTS: readonly GumbelConfig[] = Object.freeze([
  GUMBEL_DEFAULT,
  { name: 'gumbel', contextWidth: 2, alpha: 0, repeatedContexts: 'skip' },
  { name: 'gumbel', contextWidth: 1, alpha: 0, repeatedContexts: 'skip' },
  { name: 'dual_gumbel', contextWidth: 4, alpha: 0.1, repeatedContexts: 'skip' },
]);

/** "gumbel(4)", "dual_gumbel(4) α=0.1", with ", mark repeats" when repeated contexts are marked. */
export function gumbelLabel(config: GumbelConfig): string {
  return `${config.name}(${config.contextWidth})${config.name === 'dual_gumbel' ? ` α=${config.alpha}` : ''}${config.repeatedContexts === 'mark' ? ', mark repeats' : ''}`;
}

/** The label of any configuration: {@link configLabel} or {@link gumbelLabel}. */
export function anyConfigLabel(config: AnyWatermarkConfig): string {
  return isGumbelConfig(config) ? gumbelLabel(config) : configLabel(config);
}

export function sameGumbelConfig(a: GumbelConfig, b: GumbelConfig): boolean {
  return (
    a.name === b.name &&
    a.contextWidth === b.contextWidth &&
    a.alpha === b.alpha &&
    a.repeatedContexts === b.repeatedContexts
  );
}

/** The code's defaults at the time of these experiments (packages/core scheme.ts). */
export const CODE_DEFAULT: WatermarkConfig = Object.freeze({
  name: 'lefthash',
  contextWidth: 1,
  gamma: 0.25,
  delta: 2,
});

export const SCHEME_VARIANTS: readonly { name: GreenListSchemeName; contextWidth: number }[] = Object.freeze([
  { name: 'lefthash', contextWidth: 1 },
  { name: 'lefthash', contextWidth: 2 },
  { name: 'lefthash', contextWidth: 4 },
  { name: 'selfhash', contextWidth: 1 },
  { name: 'selfhash', contextWidth: 2 },
  { name: 'selfhash', contextWidth: 4 },
]);

/** "LeftHash(1)", "SelfHash(4)". */
export function schemeLabel(config: { name: GreenListSchemeName; contextWidth: number }): string {
  return `${config.name === 'lefthash' ? 'LeftHash' : 'SelfHash'}(${config.contextWidth})`;
}

/** "LeftHash(1) γ=0.25 δ=2". */
export function configLabel(config: WatermarkConfig): string {
  return `${schemeLabel(config)} γ=${config.gamma} δ=${config.delta}`;
}

export function sameConfig(a: WatermarkConfig, b: WatermarkConfig): boolean {
  return a.name === b.name && a.contextWidth === b.contextWidth && a.gamma === b.gamma && a.delta === b.delta;
}

export function watermarkerFor(secret: Uint8Array, config: AnyWatermarkConfig): Watermarker {
  const key = createWatermarkKey({
    secret,
    scheme: isGumbelConfig(config)
      ? {
          name: config.name,
          contextWidth: config.contextWidth,
          ...(config.name === 'dual_gumbel' ? { alpha: config.alpha } : {}),
        }
      : {
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
