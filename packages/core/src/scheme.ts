/** Scheme parameters (spec §2.4) and the green threshold (spec §3.1). */

export type SchemeName = 'lefthash' | 'selfhash';

export const SCHEME_NAMES: readonly SchemeName[] = Object.freeze(['lefthash', 'selfhash'] as const);

export interface SchemeParams {
  readonly name?: SchemeName;
  readonly contextWidth?: number;
  readonly gamma?: number;
  readonly delta?: number;
}

export interface Scheme {
  readonly name: SchemeName;
  /** h: the number of tokens that determine a seed. */
  readonly contextWidth: number;
  /** γ as requested. */
  readonly gamma: number;
  /** δ, the logit bias for green tokens. */
  readonly delta: number;
  /** τ = floor(γ·2^32), the green threshold on the high 32 bits of the PRF. */
  readonly threshold: number;
  /** γ_eff = τ / 2^32, the exact null green probability used by every statistic. */
  readonly gammaEffective: number;
}

/** Defaults chosen by measurement: see docs/decisions/2026-11-22-defaults.md. */
export const DEFAULT_SCHEME_PARAMS: Required<SchemeParams> = Object.freeze({
  name: 'lefthash',
  contextWidth: 1,
  gamma: 0.25,
  delta: 2,
});

const TWO_32 = 4294967296;

/** Validates parameters and returns a frozen scheme. Throws TypeError/RangeError naming the parameter. */
export function createScheme(params: SchemeParams = {}): Scheme {
  if (params === null || typeof params !== 'object') throw new TypeError('scheme: expected an object');
  const name = params.name ?? DEFAULT_SCHEME_PARAMS.name;
  const contextWidth = params.contextWidth ?? DEFAULT_SCHEME_PARAMS.contextWidth;
  const gamma = params.gamma ?? DEFAULT_SCHEME_PARAMS.gamma;
  const delta = params.delta ?? DEFAULT_SCHEME_PARAMS.delta;
  if (!SCHEME_NAMES.includes(name)) {
    throw new RangeError(`scheme.name: expected one of ${SCHEME_NAMES.join(', ')}, got ${String(name)}`);
  }
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
  return Object.freeze({ name, contextWidth, gamma, delta, threshold, gammaEffective: threshold / TWO_32 });
}

/** The green fraction that bias δ produces at high entropy: γe^δ / (1 + γ(e^δ − 1)). */
export function biasedGreenFraction(scheme: Scheme): number {
  const g = scheme.gammaEffective;
  const e = Math.exp(scheme.delta);
  return (g * e) / (1 + g * (e - 1));
}
