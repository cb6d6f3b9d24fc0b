/**
 * Calibration of detection on human text, cited in evidence reports: the measured false-positive rates of
 * research/results/fpr.md (Experiment 1, `pnpm research fpr`: the Brown corpus and nlp-corpus, tokenized with
 * cl100k_base, plain detection with dedup), at α = 1e-4. test/calibration.test.ts re-checks plain and
 * windowed detection at α = 1e-2 and 1e-3 on every test run.
 */
import type { EvidenceCalibration } from '@tracemark/provenance';

interface CalibrationRow {
  readonly scheme: string;
  readonly contextWidth: number;
  readonly gamma: number;
  readonly passageTokens: number;
  readonly passages: number;
  readonly trials: number;
  readonly falsePositives: number;
}

const REFERENCE = 'research/results/fpr.md (Experiment 1: false-positive rate on human text)';
const CALIBRATED_ALPHA = 1e-4;

/** The "plain, dedup" rows at α = 1e-4 (δ = 2 throughout; δ does not change the null distribution). */
const ROWS: readonly CalibrationRow[] = [
  {
    scheme: 'lefthash',
    contextWidth: 1,
    gamma: 0.25,
    passageTokens: 50,
    passages: 64_199,
    trials: 128_398,
    falsePositives: 9,
  },
  {
    scheme: 'lefthash',
    contextWidth: 1,
    gamma: 0.25,
    passageTokens: 200,
    passages: 16_049,
    trials: 128_392,
    falsePositives: 8,
  },
  {
    scheme: 'lefthash',
    contextWidth: 1,
    gamma: 0.25,
    passageTokens: 1000,
    passages: 3_209,
    trials: 102_688,
    falsePositives: 7,
  },
  {
    scheme: 'lefthash',
    contextWidth: 2,
    gamma: 0.25,
    passageTokens: 200,
    passages: 16_049,
    trials: 128_392,
    falsePositives: 11,
  },
  {
    scheme: 'lefthash',
    contextWidth: 4,
    gamma: 0.25,
    passageTokens: 200,
    passages: 16_049,
    trials: 128_392,
    falsePositives: 12,
  },
  {
    scheme: 'selfhash',
    contextWidth: 1,
    gamma: 0.25,
    passageTokens: 200,
    passages: 16_049,
    trials: 128_392,
    falsePositives: 11,
  },
  {
    scheme: 'selfhash',
    contextWidth: 2,
    gamma: 0.25,
    passageTokens: 200,
    passages: 16_049,
    trials: 128_392,
    falsePositives: 11,
  },
  {
    scheme: 'selfhash',
    contextWidth: 4,
    gamma: 0.25,
    passageTokens: 200,
    passages: 16_049,
    trials: 128_392,
    falsePositives: 18,
  },
  {
    scheme: 'lefthash',
    contextWidth: 1,
    gamma: 0.5,
    passageTokens: 200,
    passages: 16_049,
    trials: 128_392,
    falsePositives: 10,
  },
];

/**
 * The calibration entry for a scheme, α and text length: the measured row closest in length when the
 * scheme and α were measured, else the reference alone.
 */
export function calibrationFor(
  scheme: { readonly name: string; readonly contextWidth: number; readonly gamma: number },
  alpha: number,
  numScored: number,
): EvidenceCalibration {
  const rows = ROWS.filter(
    (row) =>
      row.scheme === scheme.name && row.contextWidth === scheme.contextWidth && row.gamma === scheme.gamma,
  );
  if (rows.length === 0 || alpha !== CALIBRATED_ALPHA) {
    return {
      reference: `${REFERENCE}; α = ${alpha} and this scheme were not measured there, so no observed rate is given`,
    };
  }
  const distance = (row: CalibrationRow) =>
    Math.abs(Math.log(row.passageTokens) - Math.log(Math.max(numScored, 1)));
  const row = rows.reduce((best, candidate) => (distance(candidate) < distance(best) ? candidate : best));
  return {
    reference: `${REFERENCE}, table "${row.scheme === 'lefthash' ? 'LeftHash' : 'SelfHash'}(${row.contextWidth}) γ=${row.gamma} δ=2, ${row.passageTokens} tokens", row "plain, dedup" at α = 1e-4: ${row.falsePositives} false positives in ${row.trials.toLocaleString('en-US')} (passage, key) trials`,
    numTexts: row.passages,
    observedFalsePositiveRate: row.falsePositives / row.trials,
  };
}
