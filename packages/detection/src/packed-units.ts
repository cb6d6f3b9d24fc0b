/**
 * What the foreign scorers' packed units ({@link ForeignKeyScorer.packedUnits}) share: the check of
 * a document's token ids, then the core detector's `strictUnits`, the units its
 * `detect(…, { dedup: 'strict' })` scores from that loop, packed in words by the core. Each family's
 * tests (packed-units.test.ts) hold the packing to the family's `units`.
 */
import type { StrictUnits } from '@tracemark/core';
import type { ForeignKeyScorer, PackedForeignDocument } from './foreign.ts';

function idsBelow(ids: ArrayLike<number>, limit: number): boolean {
  if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') return false;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!(typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < limit)) return false;
  }
  return true;
}

/**
 * `ids` when every one is an integer token id below `limit`; otherwise what the scorer's `units`
 * makes of them (its InputError), so that packed units refuse exactly what units refuse.
 */
export function checkedIds(
  ids: ArrayLike<number>,
  limit: number,
  units: (ids: ArrayLike<number>) => unknown,
): ArrayLike<number> {
  if (idsBelow(ids, limit)) return ids;
  units(ids);
  // `units` took them: an array-like whose length Array.from reads otherwise. Read them as it does.
  const copy = Array.from(ids);
  if (idsBelow(copy, limit)) return copy;
  throw new TypeError('tokens: expected an array of token ids');
}

/**
 * A scorer's `unitWidth` and `packedUnits` from its core detector's `strictUnits` (the units of
 * `units`, whose errors it keeps: ids at or above `limit` are refused as `units` refuses them). The
 * completion's units, then the prompt's keys, packed alone (the scorers that pack have no units in
 * context).
 */
export function strictPacking(
  limit: number,
  units: (ids: ArrayLike<number>) => unknown,
  strictUnits: (ids: ArrayLike<number>) => StrictUnits,
): Required<Pick<ForeignKeyScorer, 'unitWidth' | 'packedUnits'>> {
  const pack = (ids: ArrayLike<number>) => strictUnits(checkedIds(ids, limit, units));
  return {
    unitWidth: strictUnits([]).unitWidth,
    packedUnits(ids: ArrayLike<number>, prompt?: ArrayLike<number>): PackedForeignDocument {
      const { words, values } = pack(ids);
      return {
        completion: { words, values },
        prompt: prompt === undefined || prompt.length === 0 ? null : pack(prompt).words,
      };
    },
  };
}
