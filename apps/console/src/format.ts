/** Numbers for people: p-values as powers of ten, counts with separators. */

const SUPERSCRIPT: Readonly<Record<string, string>> = {
  '-': '⁻',
  '0': '⁰',
  '1': '¹',
  '2': '²',
  '3': '³',
  '4': '⁴',
  '5': '⁵',
  '6': '⁶',
  '7': '⁷',
  '8': '⁸',
  '9': '⁹',
};

export function superscript(value: number): string {
  return [...String(value)].map((c) => SUPERSCRIPT[c] ?? c).join('');
}

/** 10^log10Value in words a reader can compare: "0.032", "3.2 × 10⁻¹²", "1.2 × 10³⁸". */
export function formatPower(log10Value: number): string {
  if (!Number.isFinite(log10Value)) return log10Value < 0 ? '0' : '∞';
  if (log10Value > -3 && log10Value < 6)
    return (10 ** log10Value).toLocaleString('en-US', { maximumSignificantDigits: 2 });
  let exponent = Math.floor(log10Value);
  let mantissa = 10 ** (log10Value - exponent);
  if (Number(mantissa.toFixed(1)) >= 10) {
    mantissa /= 10;
    exponent += 1;
  }
  return `${mantissa.toFixed(1)} × 10${superscript(exponent)}`;
}

/** "about 1 in 3.1 × 10¹¹" for a p-value; null when p is not small enough for the phrase to help. */
export function oneIn(log10Value: number): string | null {
  if (!Number.isFinite(log10Value) || log10Value > -2) return null;
  return `about 1 in ${formatPower(-log10Value)}`;
}

export function formatCount(value: number): string {
  return value.toLocaleString('en-US');
}

export function formatPercent(fraction: number): string {
  return `${Number((100 * fraction).toPrecision(3))}%`;
}
