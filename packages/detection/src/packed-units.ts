/**
 * What the foreign scorers' packed units ({@link ForeignKeyScorer.packedUnits}) share: the core
 * detector's `strictUnits`, the units its `detect(…, { dedup: 'strict' })` scores from that loop,
 * packed in words by the core. Each family's tests (packed-units.test.ts) hold the packing to the
 * family's `units`.
 */
import type { StrictUnits } from '@tracemark/core';
import type { ForeignKeyScorer, PackedForeignDocument } from './foreign.ts';

/**
 * A scorer's `unitWidth` and `packedUnits` from its core detector's `strictUnits` (the units of
 * `units`). Ids the core refuses are refused as `units` refuses them: `units` is asked, and throws
 * its own error. The completion's units, then the prompt's keys, packed alone (the scorers that pack
 * have no units in context).
 */
export function strictPacking(
  units: (ids: ArrayLike<number>) => unknown,
  strictUnits: (ids: ArrayLike<number>) => StrictUnits,
): Required<Pick<ForeignKeyScorer, 'unitWidth' | 'packedUnits'>> {
  const pack = (ids: ArrayLike<number>): StrictUnits => {
    try {
      return strictUnits(ids);
    } catch (error) {
      units(ids);
      throw error;
    }
  };
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
