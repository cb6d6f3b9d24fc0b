/** Inline SVG plots: evidence along a text, and a scan's fake-key calibration. No styles in attributes (CSP). */
import { useEffect, useState } from 'preact/hooks';
import type { CurvePoint } from './evidence.ts';
import { formatPower } from './format.ts';

const NARROW = '(max-width: 640px)';

/** Whether the screen is phone-sized: plots then draw in a narrower frame, so that their type stays legible. */
export function useNarrowScreen(): boolean {
  const [narrow, setNarrow] = useState(() => window.matchMedia(NARROW).matches);
  useEffect(() => {
    const query = window.matchMedia(NARROW);
    const update = () => setNarrow(query.matches);
    query.addEventListener('change', update);
    return () => query.removeEventListener('change', update);
  }, []);
  return narrow;
}

/** Round tick values from 0 to `max`. */
export function niceTicks(max: number, count: number): number[] {
  if (!(max > 0)) return [0];
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let t = 0; t <= max + 1e-9; t += step) ticks.push(Number(t.toPrecision(6)));
  return ticks;
}

const HEIGHT = 280;
const LEFT = 60;
const RIGHT = 16;
const TOP = 16;
const BOTTOM = 48;

const fixed = (value: number) => value.toFixed(1);

export interface EvidencePlotProps {
  readonly points: readonly CurvePoint[];
  readonly numTokens: number;
  /** −log10 α. */
  readonly threshold: number;
  readonly alpha: number;
  readonly passage: { readonly startToken: number; readonly endToken: number } | null;
}

/** −log10 p of the text read so far, along the text, with the threshold and the detected passage. */
export function EvidencePlot({ points, numTokens, threshold, alpha, passage }: EvidencePlotProps) {
  const narrow = useNarrowScreen();
  const WIDTH = narrow ? 400 : 720;
  const n = Math.max(numTokens, 1);
  const top = Math.max(threshold * 1.25, 1, ...points.map((p) => p.value));
  const x = (token: number) => LEFT + ((WIDTH - LEFT - RIGHT) * token) / n;
  const y = (value: number) => TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top);
  const path = [
    `M${fixed(x(0))},${fixed(y(0))}`,
    ...points.map((p) => `L${fixed(x(p.token))},${fixed(y(p.value))}`),
  ].join(' ');
  const last = points.at(-1);
  return (
    <svg
      class="plot"
      viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
      role="img"
      aria-labelledby="evidence-plot-title evidence-plot-desc"
    >
      <title id="evidence-plot-title">Strength of evidence along the text</title>
      <desc id="evidence-plot-desc">
        {`After ${n} tokens the evidence reaches −log₁₀ p = ${(last?.value ?? 0).toFixed(1)}; the threshold is ${threshold.toFixed(1)}.`}
        {passage === null
          ? ''
          : ` The detected watermarked passage spans tokens ${passage.startToken + 1} to ${passage.endToken}.`}
      </desc>
      {passage === null ? null : (
        <rect
          class="band"
          x={fixed(x(passage.startToken))}
          y={TOP}
          width={fixed(Math.max(2, x(passage.endToken) - x(passage.startToken)))}
          height={HEIGHT - TOP - BOTTOM}
        />
      )}
      {niceTicks(top, 5).map((tick) => (
        <g key={`y${tick}`}>
          <line class="grid" x1={LEFT} x2={WIDTH - RIGHT} y1={fixed(y(tick))} y2={fixed(y(tick))} />
          <text x={LEFT - 6} y={fixed(y(tick) + 4)} text-anchor="end">
            {tick}
          </text>
        </g>
      ))}
      {niceTicks(n, narrow ? 4 : 6).map((tick) => (
        <text key={`x${tick}`} x={fixed(x(tick))} y={HEIGHT - BOTTOM + 18} text-anchor="middle">
          {tick}
        </text>
      ))}
      <line
        class="threshold"
        x1={LEFT}
        x2={WIDTH - RIGHT}
        y1={fixed(y(threshold))}
        y2={fixed(y(threshold))}
      />
      <text class="threshold-label" x={WIDTH - RIGHT - 4} y={fixed(y(threshold) - 6)} text-anchor="end">
        {`threshold p = ${alpha}`}
      </text>
      <path class="curve" d={path} />
      <line class="axis" x1={LEFT} x2={LEFT} y1={TOP} y2={HEIGHT - BOTTOM} />
      <line class="axis" x1={LEFT} x2={WIDTH - RIGHT} y1={HEIGHT - BOTTOM} y2={HEIGHT - BOTTOM} />
      <text x={(LEFT + WIDTH - RIGHT) / 2} y={HEIGHT - 8} text-anchor="middle">
        position in the text (tokens)
      </text>
      <text transform={`translate(16 ${(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)`} text-anchor="middle">
        evidence (−log₁₀ p)
      </text>
    </svg>
  );
}

export interface CalibrationPlotProps {
  /** The fake keys' randomized p-values (uniform under the null). */
  readonly fakePValues: readonly number[];
  /** The true key's exact log10 p. */
  readonly trueLog10P: number;
}

/**
 * Quantile–quantile plot of the fake keys' p-values against the uniform distribution, on −log10 scales: a
 * calibrated test puts them on the diagonal. The true key is the horizontal line.
 */
export function CalibrationPlot({ fakePValues, trueLog10P }: CalibrationPlotProps) {
  const sorted = [...fakePValues].sort((a, b) => a - b);
  const n = sorted.length;
  const points = sorted.map((p, i) => ({
    expected: -Math.log10((i + 1) / (n + 1)),
    observed: -Math.log10(Math.max(p, 1e-300)),
  }));
  const trueValue = -trueLog10P;
  const fakeTop = Math.max(2, ...points.map((p) => Math.max(p.expected, p.observed)));
  // The dots decide the scale: a true key far above them is drawn at the top edge, marked off the scale.
  const offScale = trueValue > fakeTop * 2;
  const top = offScale ? fakeTop * 1.25 : Math.max(fakeTop * 1.15, trueValue * 1.1);
  const size = 300;
  const left = 56;
  const bottom = 46;
  const margin = 14;
  const width = left + size + margin;
  const height = margin + size + bottom;
  const x = (value: number) => left + (size * Math.min(value, top)) / top;
  const y = (value: number) => margin + size * (1 - Math.min(value, top) / top);
  const ticks = niceTicks(top, 5);
  return (
    <svg
      class="plot calibration"
      viewBox={`0 0 ${width} ${height}`}
      role="img"
      aria-labelledby="calibration-title calibration-desc"
    >
      <title id="calibration-title">Calibration: fake keys’ p-values against the uniform distribution</title>
      <desc id="calibration-desc">
        {`${n} fake keys plotted against what chance predicts; our key’s evidence is −log₁₀ p = ${trueValue.toFixed(1)}${offScale ? ', above the top of the plot' : ''}.`}
      </desc>
      {ticks.map((tick) => (
        <g key={tick}>
          <line class="grid" x1={left} x2={left + size} y1={fixed(y(tick))} y2={fixed(y(tick))} />
          <text x={left - 6} y={fixed(y(tick) + 4)} text-anchor="end">
            {tick}
          </text>
          <text x={fixed(x(tick))} y={margin + size + 18} text-anchor="middle">
            {tick}
          </text>
        </g>
      ))}
      <line class="diagonal" x1={x(0)} y1={y(0)} x2={fixed(x(top))} y2={fixed(y(top))} />
      {points.map((p, i) => (
        <circle key={i} class="fake" cx={fixed(x(p.expected))} cy={fixed(y(p.observed))} r="3.5" />
      ))}
      <line class="true-key" x1={left} x2={left + size} y1={fixed(y(trueValue))} y2={fixed(y(trueValue))} />
      <text
        class="true-key-label"
        x={left + size - 4}
        y={fixed(y(trueValue) + (offScale ? 16 : -6))}
        text-anchor="end"
      >
        {offScale
          ? `↑ our key: −log₁₀ p = ${trueValue.toFixed(0)}, far above`
          : `our key: p = ${formatPower(trueLog10P)}`}
      </text>
      <line class="axis" x1={left} x2={left} y1={margin} y2={margin + size} />
      <line class="axis" x1={left} x2={left + size} y1={margin + size} y2={margin + size} />
      <text x={left + size / 2} y={height - 8} text-anchor="middle">
        expected by chance (−log₁₀ p)
      </text>
      <text transform={`translate(16 ${margin + size / 2}) rotate(-90)`} text-anchor="middle">
        fake keys (−log₁₀ p)
      </text>
    </svg>
  );
}
