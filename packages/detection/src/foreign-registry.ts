/**
 * Every foreign key family tracemark reads. Key files, `tracemark keygen`, the detector, scans and the
 * gateway find a family here by its `kind`, its key file `format` or a scheme name.
 */
import type { ForeignKeyBase, ForeignKeyType } from './foreign.ts';
import { sglangKeyType } from './sglang-keys.ts';
import { synthidKeyType } from './synthid-keys.ts';
import { transformersKeyType } from './transformers-keys.ts';
import { vllmKeyType } from './vllm-key-type.ts';

export const FOREIGN_KEY_TYPES: readonly ForeignKeyType[] = Object.freeze([
  vllmKeyType as unknown as ForeignKeyType,
  transformersKeyType as unknown as ForeignKeyType,
  synthidKeyType as unknown as ForeignKeyType,
  sglangKeyType as unknown as ForeignKeyType,
]);

/** A key of any foreign family. */
export type ForeignWatermarkKey = ForeignKeyBase;

/** True for a key some foreign family made (anything with a `kind` other than `tracemark`). */
export function isForeignKey(key: { readonly kind?: string }): key is ForeignWatermarkKey {
  return key.kind !== undefined && key.kind !== 'tracemark';
}

/** The family of a foreign key; throws for a kind no family has (a programming error). */
export function foreignKeyType(key: ForeignWatermarkKey): ForeignKeyType {
  const type = FOREIGN_KEY_TYPES.find((candidate) => candidate.kind === key.kind);
  if (type === undefined) throw new TypeError(`no foreign key family "${key.kind}"`);
  return type;
}

/** The family whose key files have this `format`, or null. */
export function foreignKeyTypeForFormat(format: unknown): ForeignKeyType | null {
  return FOREIGN_KEY_TYPES.find((type) => type.fileFormat === format) ?? null;
}

/** The family that accepts this `keygen --scheme` name, or null. */
export function foreignKeyTypeForScheme(schemeName: string): ForeignKeyType | null {
  return FOREIGN_KEY_TYPES.find((type) => type.schemeNames.includes(schemeName)) ?? null;
}

/** Every foreign scheme name, for help texts and errors. */
export function foreignSchemeNames(): string[] {
  return FOREIGN_KEY_TYPES.flatMap((type) => type.schemeNames);
}

/** `${kind}:${scheme}` of a foreign key. */
export function foreignSchemeName(key: ForeignWatermarkKey): string {
  return `${key.kind}:${key.scheme}`;
}

/** How people name a foreign key's engine (`vLLM`), for messages. */
export function foreignLabel(key: ForeignWatermarkKey): string {
  return foreignKeyType(key).label;
}
