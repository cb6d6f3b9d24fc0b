import { describe, expect, it } from 'vitest';
import { IssuedWindowSet } from './issued.ts';

const options = {
  schemes: [
    { name: 'lefthash', contextWidth: 2 },
    { name: 'lefthash', contextWidth: 1 },
  ] as const,
  specialTokenIds: [0],
};

describe('IssuedWindowSet.exclusive', () => {
  it('keeps, per set, the windows no other set holds', async () => {
    const a = await IssuedWindowSet.fromOutputs([[1, 2, 3, 4]], options);
    const b = await IssuedWindowSet.fromOutputs([[3, 4, 5, 70_000]], options);
    const [onlyA, onlyB] = IssuedWindowSet.exclusive([a, b]);
    // Width 1: a holds 1, 2, 3 (windows before positions 1..3); b holds 3, 4, 5.
    expect(onlyA!.numWindows(1)).toBe(2);
    expect(onlyA!.hasWindow(1, [1], 0)).toBe(true);
    expect(onlyA!.hasWindow(1, [3], 0)).toBe(false);
    expect(onlyB!.hasWindow(1, [5], 0)).toBe(true);
    expect(onlyB!.hasWindow(1, [3], 0)).toBe(false);
    // Width 2: a holds (1,2), (2,3); b holds (3,4), (4,5): disjoint.
    expect(onlyA!.numWindows(2)).toBe(2);
    expect(onlyB!.numWindows(2)).toBe(2);
    expect(onlyB!.hasWindow(2, [4, 5], 0)).toBe(true);
    expect(onlyA!.numOutputs).toBe(1);
    expect(IssuedWindowSet.isIssuedWindowSet(onlyA)).toBe(true);
  });

  it('is empty for identical sets and the identity for one set', async () => {
    const a = await IssuedWindowSet.fromOutputs([[1, 2, 3]], options);
    const b = await IssuedWindowSet.fromOutputs([[1, 2, 3]], options);
    const [onlyA] = IssuedWindowSet.exclusive([a, b]);
    expect(onlyA!.numWindows(1)).toBe(0);
    expect(IssuedWindowSet.exclusive([a])[0]!.numWindows(1)).toBe(a.numWindows(1));
  });
});
