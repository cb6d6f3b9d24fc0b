import type { EngineKeyScan, TracemarkKeyScan } from './types.ts';

/** True for a /v1/scan key result under an engine's key (engine-native mode): an exact null, no fake keys. */
export function isEngineKeyScan(key: TracemarkKeyScan | EngineKeyScan): key is EngineKeyScan {
  return 'family' in key;
}
