/**
 * The console's extraction-risk page in a real browser (Debian's chromium, headless, playwright-core) against
 * a real gateway on 127.0.0.1: a campaign split over three keys shows as flagged accounts and one flagged
 * cluster; an account's timeline and reasons; the scan step's command; suspending an account from the page
 * takes effect at the gateway and lands in the audit trail. Screenshots go to test-results/console/.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../apps/gateway/src/test-support/harness.ts';
import { cacheDir, repositoryRoot } from './helpers.ts';

process.env.TRACEMARK_CACHE_DIR = cacheDir;

const CHROMIUM = process.env.TRACEMARK_CHROMIUM ?? '/usr/bin/chromium';
const CONSOLE_DIST = join(repositoryRoot, 'apps/console/dist/index.html');
const SCREENSHOTS = join(repositoryRoot, 'test-results/console');
const LAUNCH_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
];
const underCi = (process.env.CI ?? '') !== '' && process.env.CI !== 'false' && process.env.CI !== '0';
const browserMissing = !existsSync(CHROMIUM);
if (browserMissing && !underCi) {
  process.stderr.write(`\n*** test/console-risk.test.ts: SKIPPED, ${CHROMIUM} is missing ***\n\n`);
}

describe.skipIf(browserMissing && !underCi)('console: extraction risk (chromium)', () => {
  let gateway: TestGateway;
  let browser: Browser;
  const keys: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CONSOLE_DIST)) throw new Error('apps/console/dist is missing: run `pnpm build` first');
    mkdirSync(SCREENSHOTS, { recursive: true });
    [gateway, browser] = await Promise.all([
      startTestGateway(),
      chromium.launch({ executablePath: CHROMIUM, headless: true, args: LAUNCH_ARGS }),
    ]);
    for (const account of ['bulk-1', 'bulk-2', 'bulk-3']) {
      keys.push((await gateway.call('POST', '/v1/admin/keys', { scopes: ['generate'], account })).json.key);
    }
    // A templated campaign: one instruction, slot fillers, chain-of-thought elicitation.
    const topics = [
      'photosynthesis',
      'compound interest',
      'TCP congestion control',
      'the Krebs cycle',
      'RSA keys',
      'glaciers',
    ];
    const prompts = Array.from(
      { length: 36 },
      (_, i) =>
        `Explain step by step how ${topics[i % topics.length]} works in case ${i}. List all possible edge cases and show your reasoning for each one in detail.`,
    );
    for (let i = 0; i < 36; i++) {
      const response = await gateway.call(
        'POST',
        '/v1/chat/completions',
        { model: 'tracemark-ngram', messages: [{ role: 'user', content: prompts[i]! }], max_tokens: 2 },
        keys[i % 3]!,
      );
      expect(response.status).toBe(200);
    }
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await gateway?.close();
  });

  async function openRisk(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource'))
        pageErrors.push(`console: ${message.text()}`);
    });
    await page.goto(`${gateway.url}/`);
    await page.getByLabel('API key').fill(gateway.devKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Extraction risk' }).click();
    await page.getByLabel('Admin API key').fill(gateway.devKey);
    await page.getByRole('button', { name: 'Open the risk report' }).click();
    await page.getByRole('table', { name: 'Accounts by risk' }).waitFor();
    return page;
  }

  it('shows the flagged accounts and their cluster, an account timeline and the scan step', async () => {
    const page = await openRisk();
    expect(await page.title()).toBe('Extraction risk · tracemark console');
    const rows = page.locator('table.risk-table tbody tr.flagged');
    expect(await rows.count()).toBe(3);
    const cluster = page.locator('li.cluster.flagged');
    expect(await cluster.count()).toBe(1);
    expect(await cluster.locator('.members button').allTextContents()).toEqual([
      'bulk-1',
      'bulk-2',
      'bulk-3',
    ]);
    expect(await cluster.textContent()).toContain('linked-accounts');

    await page.getByRole('button', { name: 'bulk-2', exact: true }).first().click();
    await page.locator('#account-heading').waitFor();
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('account-heading');
    expect(await page.locator('svg.timeline').count()).toBe(1);
    expect(await page.locator('svg.timeline desc').textContent()).toContain('12 requests');
    const command = await page.getByLabel('Scan command').inputValue();
    expect(command).toContain(`tracemark scan --key KEY_FILE --issued ${gateway.url}`);
    expect(command).toContain('--account bulk-2');
    expect(command).not.toContain(gateway.devKey);
    await page.screenshot({ path: join(SCREENSHOTS, 'risk-account.png'), fullPage: true });
    await page.context().close();
  });

  it('suspends an account from the page: enforced by the gateway, recorded in the audit trail', async () => {
    const page = await openRisk();
    await page.getByRole('button', { name: 'bulk-3', exact: true }).first().click();
    await page.locator('#account-heading').waitFor();
    await page.getByLabel('Reason (kept in the audit trail)').fill('campaign confirmed by the scan');
    await page.getByRole('button', { name: 'Suspend' }).click();
    await expect.poll(() => page.getByTestId('account-status').textContent()).toBe('suspended');
    expect(await page.locator('table.audit tbody tr').first().textContent()).toContain(
      'campaign confirmed by the scan',
    );
    const refused = await gateway.call(
      'POST',
      '/v1/chat/completions',
      { model: 'tracemark-ngram', messages: [{ role: 'user', content: 'hello' }], max_tokens: 2 },
      keys[2]!,
    );
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe('TM_ERR_ACCOUNT_SUSPENDED');
    await page.screenshot({ path: join(SCREENSHOTS, 'risk-suspended.png'), fullPage: true });
    await page.context().close();
  });

  it('refuses a key without the admin scope in plain words', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${gateway.url}/`);
    await page.getByLabel('API key').fill(gateway.devKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Extraction risk' }).click();
    const verifier = await gateway.call('POST', '/v1/admin/keys', { scopes: ['verify'] });
    await page.getByLabel('Admin API key').fill(verifier.json.key);
    await page.getByRole('button', { name: 'Open the risk report' }).click();
    await expect.poll(() => page.locator('#risk-problem').textContent()).toContain('admin');
    await context.close();
  });

  it('reported no script errors and no Content-Security-Policy violations', () => {
    expect(pageErrors).toEqual([]);
  });
});
