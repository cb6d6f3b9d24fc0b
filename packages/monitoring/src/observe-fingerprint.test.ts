/** A caller that keeps fingerprints, not prompts, gets the same monitor as one that passes the text. */
import { describe, expect, it } from 'vitest';
import { CampaignMonitor } from './monitor.ts';
import { fingerprintPrompt } from './prompt-features.ts';
import { mergeTraffic, simulateTraffic } from './simulate.ts';

describe('observe with a precomputed fingerprint', () => {
  it('gives the same report and state as observe with the prompt text', () => {
    const traffic = mergeTraffic(
      simulateTraffic('support-bot', { seed: 7, durationMs: 3_600_000 }),
      simulateTraffic('extraction-campaign', { seed: 8, durationMs: 3_600_000 }),
    );
    const fromText = new CampaignMonitor();
    const fromFingerprint = new CampaignMonitor();
    for (const event of traffic) {
      fromText.observe(event);
      fromFingerprint.observe({ ...event, prompt: fingerprintPrompt(event.prompt as string) });
    }
    const at = traffic.at(-1)!.at;
    expect(fromFingerprint.report(at)).toEqual(fromText.report(at));
    expect(JSON.stringify(fromFingerprint.toJSON())).toBe(JSON.stringify(fromText.toJSON()));
  });

  it('refuses a prompt that is neither text nor a fingerprint', () => {
    const monitor = new CampaignMonitor();
    expect(() =>
      monitor.observe({ account: 'a', at: 0, prompt: { features: [] } as never, promptTokens: 1 }),
    ).toThrow(/event.prompt: expected a string or a prompt fingerprint/);
  });
});
