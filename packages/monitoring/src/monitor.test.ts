import { describe, expect, it } from 'vitest';
import { hashPair, hashString } from './hashing.ts';
import { calibrateMmd } from './mmd.ts';
import { CampaignMonitor, type MonitorEvent } from './monitor.ts';
import { mergeTraffic, promptWindows, simulateTraffic } from './simulate.ts';

const H = 3_600_000;

describe('per-account features (hand-computed)', () => {
  // Four requests at 0, 10, 20 and 40 s; the second repeats the first prompt.
  const events: MonitorEvent[] = [
    {
      account: 'a',
      at: 1_000,
      prompt: 'red fox',
      promptTokens: 10,
      completionTokens: 50,
      ip: '203.0.113.9',
      keyCreatedAt: 5,
    },
    { account: 'a', at: 11_000, prompt: 'Red fox!', promptTokens: 10, completionTokens: 30 },
    { account: 'a', at: 21_000, prompt: 'explain step by step', promptTokens: 20, completionTokens: 100 },
    {
      account: 'a',
      at: 41_000,
      prompt: 'list all blue whales',
      promptTokens: 20,
      completionTokens: 20,
      userAgent: 'ua/1',
    },
  ];
  const monitor = new CampaignMonitor({ windows: [{ name: '1h', ms: H }], bucketMs: 20_000 });
  for (const event of events) monitor.observe(event);
  const detail = monitor.accountDetail('a', 60_000)!;
  const [window] = detail.windows;

  it('volume, tokens, ratio, elicitation shares', () => {
    expect(window).toMatchObject({
      requests: 4,
      requestsPerHour: 4,
      promptTokens: 60,
      completionTokens: 200,
      reasoningShare: 0.25,
      enumerationShare: 0.25,
      sampledPrompts: 4,
    });
    expect(window!.outputPromptRatio).toBeCloseTo(200 / 60, 15);
  });

  it('coverage, entropy, template reuse, near-duplicates, PRADA distances, timing', () => {
    // Features: {red, fox, red→fox} twice; {explain, step, by, step→…}: explain, step, by, and the
    // bigrams explain→step, step→by, by→step (6); list, all, blue, whales + 3 bigrams (7).
    expect(window!.distinctFeatures).toBe(3 + 6 + 7);
    expect(window!.featureCoverage).toBeCloseTo(16 / 19, 15);
    const bins = new Map<number, number>();
    const add = (h: number, n = 1) => bins.set(h & 1023, (bins.get(h & 1023) ?? 0) + n);
    const [red, fox] = [hashString('red', 1), hashString('fox', 1)];
    for (const h of [red, fox, hashPair(red, fox)]) add(h, 2);
    const ws = ['explain', 'step', 'by', 'step'].map((w) => hashString(w, 1));
    for (const h of new Set([
      ...ws,
      hashPair(ws[0]!, ws[1]!),
      hashPair(ws[1]!, ws[2]!),
      hashPair(ws[2]!, ws[3]!),
    ]))
      add(h);
    const ls = ['list', 'all', 'blue', 'whales'].map((w) => hashString(w, 1));
    for (const h of [...ls, hashPair(ls[0]!, ls[1]!), hashPair(ls[1]!, ls[2]!), hashPair(ls[2]!, ls[3]!)])
      add(h);
    let entropy = 0;
    for (const count of bins.values()) entropy -= (count / 19) * Math.log2(count / 19);
    expect(window!.featureEntropyBits).toBeCloseTo(entropy, 12);
    // Skeletons: 'red fox' and 'Red fox!' differ ('!'), so 4 prompts have 4 skeletons.
    expect(window!.templateReuse).toBe(0);
    expect(window!.nearDuplicateShare).toBe(0.25);
    // Gaps 10, 10, 20 s: mean 40/3, sample sd sqrt(100/3), CV = sqrt(3)/4.
    expect(window!.interArrivalCv).toBeCloseTo(Math.sqrt(3) / 4, 12);
    expect(window!.pradaSamples).toBe(3);
    expect(window!.pradaW).toBeNull();
  });

  it('metadata and the bucket series', () => {
    expect(detail).toMatchObject({
      firstSeen: 1_000,
      lastSeen: 41_000,
      keyCreatedAt: 5,
      subnet: '203.0.113.0/24',
      userAgent: 'ua/1',
    });
    expect(detail.series.map((bucket) => [bucket.start, bucket.requests, bucket.completionTokens])).toEqual([
      [0, 2, 80],
      [20_000, 1, 100],
      [40_000, 1, 20],
    ]);
  });

  it('rejects bad events and options', () => {
    expect(() => monitor.observe({ account: '', at: 0, prompt: 'x', promptTokens: 1 })).toThrow(TypeError);
    expect(() => monitor.observe({ account: 'a', at: Number.NaN, prompt: 'x', promptTokens: 1 })).toThrow(
      /event.at/,
    );
    expect(() => monitor.observe({ account: 'a', at: 0, prompt: 'x', promptTokens: -1 })).toThrow(
      /promptTokens/,
    );
    expect(() => new CampaignMonitor({ bucketMs: 0 })).toThrow(/bucketMs/);
  });
});

describe('campaigns in simulated traffic', () => {
  // Half a day of traffic keeps the file fast; the monitor's windows are 1 h and 24 h.
  const DAY = 12 * H;
  // Benign windows of 32 prompts from accounts that the monitored traffic does not contain.
  const benignWindows: string[][] = [];
  for (let s = 0; s < 22; s++) {
    benignWindows.push(
      promptWindows(simulateTraffic('support-bot', { seed: 1000 + s, durationMs: 2 * H }), 32)[0]!,
    );
    benignWindows.push(
      promptWindows(simulateTraffic('writing-assistant', { seed: 2000 + s, durationMs: DAY }), 32)[0]!,
    );
    benignWindows.push(
      promptWindows(simulateTraffic('batch-summariser', { seed: 3000 + s, durationMs: 6 * H }), 32)[0]!,
    );
  }
  const target = 0.05;
  const mmd = calibrateMmd(benignWindows, target);
  const benignEvents = mergeTraffic(
    simulateTraffic('support-bot', { seed: 7, prefix: 'bot', durationMs: DAY }),
    simulateTraffic('writing-assistant', { seed: 8, prefix: 'writer', durationMs: DAY }),
    simulateTraffic('batch-summariser', { seed: 9, prefix: 'summariser', durationMs: DAY }),
    simulateTraffic('classroom', { seed: 10, prefix: 'class', accounts: 30, durationMs: DAY }),
  );
  const run = (attack: MonitorEvent[]) => {
    const monitor = new CampaignMonitor({ mmd });
    for (const event of mergeTraffic(benignEvents, attack)) monitor.observe(event);
    return { monitor, report: monitor.report(DAY) };
  };

  it('calibration: the held-out benign false-flag rate is at most the target', () => {
    expect(mmd.calibrationWindows).toBeGreaterThanOrEqual(19);
    expect(mmd.heldOutWindows).toBeGreaterThanOrEqual(19);
    expect(mmd.achievedFalseFlagRate).toBeLessThanOrEqual(target);
  });

  it('one attacker account is flagged; benign accounts are not, and the classroom is not one cluster', () => {
    const { report } = run(
      simulateTraffic('extraction-campaign', { seed: 11, prefix: 'attacker', durationMs: DAY }),
    );
    const byName = new Map(report.accounts.map((account) => [account.account, account]));
    expect(byName.get('attacker')).toMatchObject({ flagged: true });
    expect(byName.get('attacker')!.reasons.map((reason) => reason.code)).toContain('mmd-shift');
    const flaggedBenign = report.accounts.filter(
      (account) => account.flagged && account.account !== 'attacker',
    );
    expect(flaggedBenign).toEqual([]);
    // Students share the /24, the browser and the key-creation hour, but not their phrasing: at most
    // a pair with the same habitual phrase links, never the class.
    const linkedStudents = report.accounts.filter(
      (a) => a.account.startsWith('class-') && a.cluster !== null,
    );
    console.log(
      'linked students',
      linkedStudents.map((a) => a.account),
    );
    expect(linkedStudents.length).toBeLessThanOrEqual(4);
    // The AISVS alert context travels with every reason.
    const reason = byName.get('attacker')!.reasons[0]!;
    expect(reason).toMatchObject({
      principal: 'attacker',
      volume: { requests: 400 },
      firstSeen: expect.any(Number),
    });
    expect(reason.inputDistribution.reasoningShare).toBe(1);
  });

  it.each([5, 50])('a campaign split over %i accounts is one flagged cluster', (accounts) => {
    const { monitor, report } = run(
      simulateTraffic('extraction-campaign', { seed: 12, prefix: 'split', accounts, durationMs: DAY }),
    );
    const splitIds = new Set(
      report.accounts.filter((a) => a.account.startsWith('split-')).map((a) => a.cluster),
    );
    expect(splitIds.size).toBe(1);
    const [id] = splitIds;
    const cluster = report.clusters.find((candidate) => candidate.id === id)!;
    expect(cluster.accounts).toHaveLength(accounts);
    expect(cluster.flagged).toBe(true);
    expect(cluster.score).toBeGreaterThan(0.5);
    expect(monitor.clusterOf('split-000')).toBe(id);
    expect(report.accounts.filter((a) => a.account.startsWith('split-')).every((a) => a.flagged)).toBe(true);
    expect(report.accounts.filter((a) => !a.account.startsWith('split-') && a.flagged)).toEqual([]);
    // The cluster id is stable: the same campaign seen a day later keeps it.
    const later = new CampaignMonitor({ mmd });
    for (const event of simulateTraffic('extraction-campaign', {
      seed: 12,
      prefix: 'split',
      accounts,
      durationMs: DAY,
    })) {
      later.observe(event);
    }
    later.refreshClusters(DAY);
    expect(later.clusterOf('split-001')).toBe(id);
  });

  it('the report is a pure function of the events: replay and toJSON/fromJSON give the same report', () => {
    const events = mergeTraffic(
      simulateTraffic('support-bot', { seed: 3, prefix: 'bot', durationMs: 3 * H }),
      simulateTraffic('extraction-campaign', {
        seed: 4,
        prefix: 'x',
        accounts: 4,
        requests: 120,
        durationMs: 3 * H,
      }),
    );
    const first = new CampaignMonitor({ mmd, windows: [{ name: '3h', ms: 3 * H }] });
    const second = new CampaignMonitor({ mmd, windows: [{ name: '3h', ms: 3 * H }] });
    for (const event of events) first.observe(event);
    for (const event of events) second.observe(event);
    const report = JSON.stringify(first.report(3 * H));
    expect(JSON.stringify(second.report(3 * H))).toBe(report);
    const restored = CampaignMonitor.fromJSON(JSON.parse(JSON.stringify(first)));
    expect(JSON.stringify(restored.report(3 * H))).toBe(report);
    expect(JSON.parse(report).clusters).toHaveLength(1);
  });
});
