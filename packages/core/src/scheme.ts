/**
 * Scheme parameters (spec §2.4, watermark-gumbel §2) and the green threshold (spec §3.1).
 *
 * Two families share the key format, the context seeds and the dedup tape: the green-list schemes
 * (`lefthash`, `selfhash`: a keyed bias δ on a fraction γ of the vocabulary) and the distortion-free
 * Gumbel-max schemes (`gumbel`, `dual_gumbel`: a keyed choice among the model's own candidates,
 * docs/spec/watermark-gumbel.md), which have no green list, no γ and no δ.
 */

export type GreenListSchemeName = 'lefthash' | 'selfhash';
export type GumbelSchemeName = 'gumbel' | 'dual_gumbel';
export type SchemeName = GreenListSchemeName | GumbelSchemeName;
export type SchemeFamily = 'green-list' | 'gumbel';

export const GREEN_LIST_SCHEME_NAMES: readonly GreenListSchemeName[] = Object.freeze([
  'lefthash',
  'selfhash',
] as const);
export const GUMBEL_SCHEME_NAMES: readonly GumbelSchemeName[] = Object.freeze([
  'gumbel',
  'dual_gumbel',
] as const);
export const SCHEME_NAMES: readonly SchemeName[] = Object.freeze([
  ...GREEN_LIST_SCHEME_NAMES,
  ...GUMBEL_SCHEME_NAMES,
]);

export interface SchemeParams {
  readonly name?: SchemeName;
  readonly contextWidth?: number;
  /** Green-list schemes only. */
  readonly gamma?: number;
  /** Green-list schemes only. */
  readonly delta?: number;
  /** `dual_gumbel` only: the weight of key B in the score and the share of tokens it chooses. */
  readonly alpha?: number;
}

export interface Scheme {
  readonly name: SchemeName;
  readonly family: SchemeFamily;
  /** h: the number of tokens that determine a seed. */
  readonly contextWidth: number;
  /** γ as requested; NaN for the Gumbel family (no green list). */
  readonly gamma: number;
  /** δ, the logit bias for green tokens; 0 for the Gumbel family (it biases nothing). */
  readonly delta: number;
  /** τ = floor(γ·2^32), the green threshold on the high 32 bits of the PRF; NaN for the Gumbel family. */
  readonly threshold: number;
  /** γ_eff = τ / 2^32, the exact null green probability used by every statistic; NaN for the Gumbel family. */
  readonly gammaEffective: number;
  /** `dual_gumbel`: the weight α of key B (key A has 1 − α); 0 for every other scheme. */
  readonly alpha: number;
}

/** Defaults chosen by measurement: see docs/decisions/2026-11-22-defaults.md. */
export const DEFAULT_SCHEME_PARAMS: Required<Omit<SchemeParams, 'alpha'>> = Object.freeze({
  name: 'lefthash',
  contextWidth: 1,
  gamma: 0.25,
  delta: 2,
});

/**
 * Defaults of the Gumbel family: h = 4 as vLLM's `gumbel`, because a Gumbel-max choice repeats
 * whenever its context does (docs/decisions/2026-12-04-gumbel-scheme.md); α = 0.1 as vLLM's
 * `dual_key_gumbel`.
 */
export const DEFAULT_GUMBEL_CONTEXT_WIDTH = 4;
export const DEFAULT_DUAL_GUMBEL_ALPHA = 0.1;

const TWO_32 = 4294967296;

/** True for `gumbel` and `dual_gumbel`. */
export function isGumbelScheme(scheme: { readonly name: SchemeName }): boolean {
  return scheme.name === 'gumbel' || scheme.name === 'dual_gumbel';
}

/** Validates parameters and returns a frozen scheme. Throws TypeError/RangeError naming the parameter. */
export function createScheme(params: SchemeParams = {}): Scheme {
  if (params === null || typeof params !== 'object') throw new TypeError('scheme: expected an object');
  const name = params.name ?? DEFAULT_SCHEME_PARAMS.name;
  if (!SCHEME_NAMES.includes(name)) {
    throw new RangeError(`scheme.name: expected one of ${SCHEME_NAMES.join(', ')}, got ${String(name)}`);
  }
  const gumbel = name === 'gumbel' || name === 'dual_gumbel';
  const contextWidth =
    params.contextWidth ?? (gumbel ? DEFAULT_GUMBEL_CONTEXT_WIDTH : DEFAULT_SCHEME_PARAMS.contextWidth);
  if (
    typeof contextWidth !== 'number' ||
    !Number.isInteger(contextWidth) ||
    contextWidth < 1 ||
    contextWidth > 16
  ) {
    throw new RangeError(
      `scheme.contextWidth: expected an integer from 1 to 16, got ${String(contextWidth)}`,
    );
  }
  if (gumbel) return createGumbelScheme(name, contextWidth, params);
  if (params.alpha !== undefined && params.alpha !== 0) {
    throw new RangeError(`scheme.alpha: only dual_gumbel has a key weight, got ${String(params.alpha)}`);
  }
  const gamma = params.gamma ?? DEFAULT_SCHEME_PARAMS.gamma;
  const delta = params.delta ?? DEFAULT_SCHEME_PARAMS.delta;
  if (typeof gamma !== 'number' || !(gamma > 0 && gamma < 1)) {
    throw new RangeError(`scheme.gamma: expected a number strictly between 0 and 1, got ${String(gamma)}`);
  }
  const threshold = Math.floor(gamma * TWO_32);
  if (threshold < 1 || threshold > TWO_32 - 1) {
    throw new RangeError(`scheme.gamma: ${gamma} gives an empty or full green list at 32-bit resolution`);
  }
  if (typeof delta !== 'number' || !(delta >= 0 && delta <= 32)) {
    throw new RangeError(`scheme.delta: expected a number from 0 to 32, got ${String(delta)}`);
  }
  return Object.freeze({
    name,
    family: 'green-list',
    contextWidth,
    gamma,
    delta,
    threshold,
    gammaEffective: threshold / TWO_32,
    alpha: 0,
  });
}

function createGumbelScheme(name: GumbelSchemeName, contextWidth: number, params: SchemeParams): Scheme {
  // A scheme object passed back in carries the family's placeholders (γ NaN, δ 0); anything else is a mistake.
  if (params.gamma !== undefined && !Number.isNaN(params.gamma)) {
    throw new RangeError(`scheme.gamma: ${name} has no green list; omit gamma`);
  }
  if (params.delta !== undefined && params.delta !== 0) {
    throw new RangeError(`scheme.delta: ${name} adds no bias; omit delta`);
  }
  let alpha = 0;
  if (name === 'dual_gumbel') {
    alpha = params.alpha ?? DEFAULT_DUAL_GUMBEL_ALPHA;
    if (typeof alpha !== 'number' || !(alpha > 0 && alpha < 1)) {
      throw new RangeError(`scheme.alpha: expected a number strictly between 0 and 1, got ${String(alpha)}`);
    }
  } else if (params.alpha !== undefined && params.alpha !== 0) {
    throw new RangeError(`scheme.alpha: only dual_gumbel has a key weight, got ${String(params.alpha)}`);
  }
  return Object.freeze({
    name,
    family: 'gumbel',
    contextWidth,
    gamma: Number.NaN,
    delta: 0,
    threshold: Number.NaN,
    gammaEffective: Number.NaN,
    alpha,
  });
}

/** The green fraction that bias δ produces at high entropy: γe^δ / (1 + γ(e^δ − 1)). */
export function biasedGreenFraction(scheme: Scheme): number {
  if (scheme.family === 'gumbel') {
    throw new TypeError(`scheme: ${scheme.name} has no green list, so no biased green fraction`);
  }
  const g = scheme.gammaEffective;
  const e = Math.exp(scheme.delta);
  return (g * e) / (1 + g * (e - 1));
}
