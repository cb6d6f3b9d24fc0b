/**
 * observe() cost: μs per event over a day of mixed simulated traffic (support bot, writing assistant,
 * batch summariser with ~1 KB prompts, classroom of 30, a campaign split over 50 accounts), and the
 * cost of report() at the end. Five runs in one process after a warm-up; prints the median.
 * Run: pnpm --filter @tracemark/monitoring exec node --conditions=source --import tsx bench/observe.ts
 */

import { CampaignMonitor, mergeTraffic, simulateTraffic } from '@tracemark/monitoring';
import { median } from 'simple-statistics';

const H = 3_600_000;
const events = mergeTraffic(
  simulateTraffic('support-bot', { seed: 7, prefix: 'bot', durationMs: 24 * H }),
  simulateTraffic('writing-assistant', { seed: 8, prefix: 'writer', durationMs: 24 * H }),
  simulateTraffic('batch-summariser', { seed: 9, prefix: 'summariser', durationMs: 24 * H }),
  simulateTraffic('classroom', { seed: 10, prefix: 'class', accounts: 30, durationMs: 24 * H }),
  simulateTraffic('extraction-campaign', { seed: 11, prefix: 'split', accounts: 50, durationMs: 24 * H }),
);
const promptChars = median(events.map((event) => event.prompt.length));

function once(): { observeMicros: number; reportMillis: number } {
  const monitor = new CampaignMonitor();
  const start = performance.now();
  for (const event of events) monitor.observe(event);
  const observed = performance.now();
  monitor.report(24 * H);
  return {
    observeMicros: ((observed - start) * 1000) / events.length,
    reportMillis: performance.now() - observed,
  };
}

once(); // warm-up
const runs = Array.from({ length: 5 }, once);
console.log(
  `observe(): median ${median(runs.map((run) => run.observeMicros)).toFixed(1)} μs/event over ${events.length} events ` +
    `(median prompt ${promptChars} chars; runs ${runs.map((run) => run.observeMicros.toFixed(1)).join(', ')})`,
);
console.log(
  `report(): median ${median(runs.map((run) => run.reportMillis)).toFixed(0)} ms for ${new Set(events.map((e) => e.account)).size} accounts`,
);
console.log(`node ${process.version}, ${process.arch}`);
