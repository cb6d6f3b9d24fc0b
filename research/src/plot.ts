/**
 * Charts: a Vega-Lite spec compiled and rendered to SVG by Vega in Node (no browser, no canvas), then
 * rasterized to PNG by resvg. Text uses DejaVu Sans when the system has it.
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import { writeResult } from './report.ts';

export type ChartSpec = vegaLite.TopLevelSpec;

const FONT = 'DejaVu Sans';

/** Writes `<name>.svg` and `<name>.png` and returns their file names. */
export async function saveChart(outDir: string, name: string, spec: ChartSpec): Promise<string[]> {
  const withConfig = {
    ...spec,
    background: 'white',
    config: {
      font: FONT,
      axis: { labelFontSize: 11, titleFontSize: 12 },
      legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 320 },
      ...(spec.config ?? {}),
    },
  } as ChartSpec;
  const compiled = vegaLite.compile(withConfig).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: 1.25 },
    font: { loadSystemFonts: true, defaultFontFamily: FONT, sansSerifFamily: FONT },
  })
    .render()
    .asPng();
  await writeResult(outDir, `${name}.svg`, svg);
  await writeResult(outDir, `${name}.png`, png);
  return [`${name}.svg`, `${name}.png`];
}
