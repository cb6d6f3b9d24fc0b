/**
 * The replay adapter against the package's own observe(): the same traffic, observed live from prompts or
 * rebuilt from fingerprints alone, gives the same serialised state and the same report.
 */
import {
  CampaignMonitor,
  clientSubnet,
  fingerprintPrompt,
  type MonitorEvent,
  type MonitorOptions,
  mergeTraffic,
  simulateTraffic,
} from '@tracemark/monitoring';
import { describe, expect, it } from 'vitest';
import { type FingerprintedEvent, monitorFromEvents } from './replay.ts';

const H = 3_600_000;

function fingerprinted(event: MonitorEvent): FingerprintedEvent {
  return {
    account: event.account,
    at: event.at,
    fingerprint: fingerprintPrompt(event.prompt),
    promptTokens: event.promptTokens,
    completionTokens: event.completionTokens ?? 0,
    subnet: event.ip === undefined ? null : clientSubnet(event.ip),
    userAgent: event.userAgent ?? null,
    keyCreatedAt: event.keyCreatedAt ?? null,
  };
}

function compare(options: MonitorOptions, traffic: readonly MonitorEvent[], at: number) {
  const live = new CampaignMonitor(options);
  for (const event of traffic) live.observe(event);
  const replayed = monitorFromEvents(options, traffic.map(fingerprinted));
  expect(JSON.parse(JSON.stringify(replayed.toJSON()))).toEqual(JSON.parse(JSON.stringify(live.toJSON())));
  const report = live.report(at);
  expect(replayed.report(at)).toEqual(report);
  return report;
}

describe('monitorFromEvents', () => {
  it('rebuilds the live state and report of a split campaign among benign traffic', () => {
    const traffic = mergeTraffic(
      simulateTraffic('support-bot', { seed: 1, prefix: 'helpdesk', durationMs: 6 * H }),
      simulateTraffic('classroom', { seed: 2, prefix: 'class', accounts: 6, durationMs: 6 * H }),
      simulateTraffic('extraction-campaign', { seed: 3, prefix: 'acct', accounts: 5, durationMs: 6 * H }),
    );
    const report = compare({}, traffic, 6 * H);
    // The comparison is not vacuous: the campaign is linked and flagged.
    expect(report.clusters.some((cluster) => cluster.flagged && cluster.accounts.length >= 2)).toBe(true);
  });

  it('follows custom windows, buckets and reservoir sizes (bucket pruning, reservoir eviction)', () => {
    const options: MonitorOptions = {
      windows: [{ name: '30m', ms: H / 2 }],
      bucketMs: 60_000,
      recentPrompts: 8,
      detectors: { nearDuplicateSimilarity: 0.7 },
    };
    const traffic = simulateTraffic('extraction-campaign', {
      seed: 9,
      prefix: 'x',
      accounts: 2,
      durationMs: 3 * H,
    });
    compare(options, traffic, 3 * H);
  });

  it('continues from a base monitor: live traffic split at any point gives the state of all of it', () => {
    const options: MonitorOptions = { recentPrompts: 8, bucketMs: 60_000 };
    const traffic = mergeTraffic(
      simulateTraffic('extraction-campaign', { seed: 4, prefix: 'a', accounts: 3, durationMs: 2 * H }),
      simulateTraffic('support-bot', { seed: 5, prefix: 'b', durationMs: 2 * H }),
    );
    const live = new CampaignMonitor(options);
    for (const event of traffic) live.observe(event);
    for (const split of [0, 1, Math.floor(traffic.length / 3), traffic.length - 1]) {
      const base = new CampaignMonitor(options);
      for (const event of traffic.slice(0, split)) base.observe(event);
      const before = JSON.stringify(base.toJSON());
      const continued = monitorFromEvents(options, traffic.slice(split).map(fingerprinted), base);
      expect(JSON.parse(JSON.stringify(continued.toJSON()))).toEqual(
        JSON.parse(JSON.stringify(live.toJSON())),
      );
      expect(JSON.stringify(base.toJSON())).toBe(before);
    }
  });

  it('refuses options the package refuses', () => {
    expect(() => monitorFromEvents({ bucketMs: -1 }, [])).toThrow(RangeError);
  });
});
