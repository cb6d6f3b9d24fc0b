/** vLLM's family of foreign keys (docs/spec/foreign-vllm.md §9) behind the {@link ForeignKeyType} interface. */
import type { VllmScheme } from '@tracemark/core';
import { ForeignKeyError, ForeignKeyFileError, type ForeignKeyType } from './foreign.ts';
import { createVllmKeyScorer } from './vllm-detection.ts';
import {
  createVllmWatermarkKey,
  parseVllmKeyFile,
  serializeVllmKeyFile,
  VLLM_KEY_FILE_FORMAT,
  VLLM_SCHEME_NAMES,
  VllmKeyError,
  VllmKeyFileError,
  type VllmKeyOptions,
  type VllmKeyParameter,
  type VllmWatermarkKey,
  vllmKeyParameters,
} from './vllm-keys.ts';

/** The keygen flag (long name without dashes) of each vLLM key parameter; `secret` for the engine key. */
const FLAG_OF: Readonly<Record<VllmKeyParameter, string>> = Object.freeze({
  scheme: 'scheme',
  engineKey: 'secret',
  prf: 'prf',
  contextWidth: 'context-width',
  alpha: 'alpha',
  gamma: 'gamma',
  delta: 'delta',
  sbwScheme: 'sbw-scheme',
  sbwLefthashSeeds: 'sbw-lefthash-seeds',
  tokenizer: 'tokenizer',
  vocabSize: 'vocab-size',
});

const NUMERIC = new Set(['contextWidth', 'alpha', 'gamma', 'delta', 'vocabSize']);

/** Parses an engine key given as decimal or 0x hex; the message never holds the text. */
export function parseIntegerSecret(text: string): bigint {
  const trimmed = text.trim();
  if (/^[0-9]{1,100}$/.test(trimmed) || /^0x[0-9a-fA-F]{1,80}$/.test(trimmed)) return BigInt(trimmed);
  throw new ForeignKeyError('secret', 'the engine key must be a non-negative integer, in decimal or 0x hex');
}

function vllmKeyFromKeygen(
  schemeName: string,
  flags: Readonly<Record<string, string>>,
  secret: string | null,
): VllmWatermarkKey {
  if (!(VLLM_SCHEME_NAMES as readonly string[]).includes(schemeName)) {
    throw new ForeignKeyError('scheme', `must be one of ${VLLM_SCHEME_NAMES.join(', ')}`);
  }
  if (secret === null) throw new ForeignKeyError('secret', 'a vLLM key needs the engine key');
  const options: Record<string, unknown> = {
    scheme: schemeName.slice('vllm:'.length) as VllmScheme,
    engineKey: parseIntegerSecret(secret),
  };
  for (const [parameter, flag] of Object.entries(FLAG_OF)) {
    const text = flags[flag];
    if (text === undefined || flag === 'scheme' || flag === 'secret') continue;
    if (NUMERIC.has(parameter)) {
      const value = Number(text);
      if (text.trim() === '' || !Number.isFinite(value)) throw new ForeignKeyError(flag, 'must be a number');
      options[parameter] = value;
    } else options[parameter] = text;
  }
  for (const flag of Object.keys(flags)) {
    if (!Object.values(FLAG_OF).includes(flag)) {
      throw new ForeignKeyError(flag, `does not apply to ${schemeName} keys`);
    }
  }
  try {
    return createVllmWatermarkKey(options as unknown as VllmKeyOptions);
  } catch (error) {
    if (error instanceof VllmKeyError) throw new ForeignKeyError(FLAG_OF[error.parameter], error.detail);
    throw error;
  }
}

export const vllmKeyType: ForeignKeyType<VllmWatermarkKey> = Object.freeze({
  kind: 'vllm',
  label: 'vLLM',
  fileFormat: VLLM_KEY_FILE_FORMAT,
  schemeNames: VLLM_SCHEME_NAMES,
  secretDescription: "the engine's watermark key, an integer (decimal or 0x hex)",
  keygenFlags: Object.freeze([
    { flag: '--prf <name>', description: 'vLLM keys: philox (default) or hmac-sha256-v1 (vllm:gumbel only)' },
    { flag: '--alpha <a>', description: 'vllm:dual_key_gumbel: the weight of key B (default 0.1)' },
    { flag: '--sbw-scheme <name>', description: 'vllm:sbw: selfhash (default) or lefthash' },
    {
      flag: '--sbw-lefthash-seeds <which>',
      description:
        "vllm:sbw lefthash: detector (vLLM's detector, default) or generator (what vLLM's generator embeds)",
    },
  ]),
  fromKeygen: vllmKeyFromKeygen,
  parse(record: Readonly<Record<string, unknown>>): VllmWatermarkKey {
    try {
      return parseVllmKeyFile(record);
    } catch (error) {
      if (error instanceof VllmKeyFileError) throw new ForeignKeyFileError(error.message);
      throw error;
    }
  },
  serialize: (key: VllmWatermarkKey, createdAt?: Date) => serializeVllmKeyFile(key, createdAt),
  parameters: (key: VllmWatermarkKey) => ({ prf: key.prf, ...vllmKeyParameters(key) }),
  createScorer: createVllmKeyScorer,
});
