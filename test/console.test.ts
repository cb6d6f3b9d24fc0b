/**
 * The verification console in a real browser: Debian's chromium, headless, driven by playwright-core, against
 * a real gateway on 127.0.0.1 (embedded model, temporary data directory). Sign in, verify a completion the
 * gateway issued and a human text, refused keys, a gateway that cannot be reached, a corpus scan, keyboard
 * use, a phone-sized screen and the printable report. Screenshots go to test-results/console/.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadHumanCorpus } from '@tracemark/lm';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../apps/gateway/src/test-support/harness.ts';
import {
  cacheDir,
  removeTemporaryDirectories,
  repositoryRoot,
  temporaryDirectory,
  writeFixedKeyFile,
} from './helpers.ts';

process.env.TRACEMARK_CACHE_DIR = cacheDir;

const CHROMIUM = process.env.TRACEMARK_CHROMIUM ?? '/usr/bin/chromium';
const CONSOLE_DIST = join(repositoryRoot, 'apps/console/dist/index.html');
const SCREENSHOTS = join(repositoryRoot, 'test-results/console');
const LAUNCH_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

// Without a browser the suite cannot run. Outside CI it says so loudly (a warning on stderr and a skipped
// test that names the browser); under CI (CI set, and not false or 0) a missing browser fails the run.
const underCi = (process.env.CI ?? '') !== '' && process.env.CI !== 'false' && process.env.CI !== '0';
const browserMissing = !existsSync(CHROMIUM);
const MISSING = `${CHROMIUM} is missing: install Chromium (apt-get install -y chromium) or point TRACEMARK_CHROMIUM at one`;
if (browserMissing && !underCi) {
  process.stderr.write(
    `\n*** test/console.test.ts: SKIPPED, the verification console was NOT tested: ${MISSING} ***\n\n`,
  );
}

describe.skipIf(browserMissing)('verification console (chromium)', () => {
  let gateway: TestGateway;
  let browser: Browser;
  let markedText: string;
  let humanText: string;
  let corpus: string;

  /** Problems the page reported: script errors, CSP violations, failed requests it did not expect. */
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CONSOLE_DIST)) throw new Error('apps/console/dist is missing: run `pnpm build` first');
    mkdirSync(SCREENSHOTS, { recursive: true });
    // A fixed key: the page's scan shows one known verdict. With a fresh key each run, the fake keys'
    // uniformity check (KS p ≥ 0.001) withheld the verdict on this small, repetitive corpus now and then.
    const keyFile = join(temporaryDirectory('tracemark-console-'), 'watermark-key.json');
    writeFixedKeyFile(keyFile, 23);
    [gateway, browser] = await Promise.all([
      startTestGateway({ config: { keyFile } }),
      chromium.launch({ executablePath: CHROMIUM, headless: true, args: LAUNCH_ARGS }),
    ]);
    const complete = async (content: string, seed: number, maxTokens: number) => {
      const response = await gateway.call('POST', '/v1/chat/completions', {
        model: 'tracemark-ngram',
        messages: [{ role: 'user', content }],
        max_tokens: maxTokens,
        seed,
      });
      expect(response.status).toBe(200);
      return response.json.choices[0].message.content as string;
    };
    markedText = await complete('Tell me about the sea.', 7, 220);
    const documents: string[] = [];
    for (let i = 0; i < 12; i++) documents.push(await complete(`Write about topic ${i}.`, 100 + i, 90));
    const human = await loadHumanCorpus({ source: 'nlp-corpus', split: 'test' });
    humanText = human.find((document) => document.text.length > 2500)!.text.slice(0, 2500);
    corpus = [
      ...documents.map((text, i) =>
        JSON.stringify({ id: i, prompt: `Write about topic ${i}.`, output: text }),
      ),
      'this line is not JSON',
      ...human.slice(0, 8).map((document) => JSON.stringify({ output: document.text.slice(0, 600) })),
    ].join('\n');
  });

  afterAll(async () => {
    await browser?.close();
    await gateway?.close();
    removeTemporaryDirectories();
  });

  async function open(viewport = DESKTOP): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ viewport, acceptDownloads: true });
    const page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      // Network failures are logged by the browser itself (a refused key, the gateway that is down on purpose).
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource'))
        pageErrors.push(`console: ${message.text()}`);
    });
    await page.goto(`${gateway.url}/`);
    return { context, page };
  }

  async function signIn(page: Page, key = gateway.devKey): Promise<void> {
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Verify', exact: true }).waitFor();
  }

  async function verify(page: Page, text: string): Promise<string> {
    await page.getByLabel('Text to verify').fill(text);
    await page.getByRole('button', { name: 'Verify', exact: true }).click();
    const heading = page.locator('#verdict-heading');
    await heading.waitFor();
    return (await heading.textContent()) ?? '';
  }

  const shot = (page: Page, name: string) =>
    page.screenshot({ path: join(SCREENSHOTS, name), fullPage: true });

  it('serves the page with its security headers, and nothing from elsewhere', async () => {
    const { context, page } = await open();
    const requested: string[] = [];
    page.on('request', (request) => requested.push(request.url()));
    await page.reload();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    // The key field has focus, so a keyboard user can type at once.
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('api-key');
    const response = await fetch(`${gateway.url}/`);
    expect(response.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(requested.every((url) => url.startsWith(gateway.url))).toBe(true);
    await shot(page, 'sign-in.png');
    await context.close();
  });

  it('refuses a bad key, a key without the verify scope, and a key revoked during the session, in plain words', async () => {
    const { context, page } = await open();
    await page
      .getByLabel('API key')
      .fill('tm_live_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.locator('#sign-in-problem');
    await expect.poll(() => alert.textContent()).toContain('This API key is not valid');
    await shot(page, 'bad-key.png');

    const generateOnly = await gateway.call('POST', '/v1/admin/keys', { scopes: ['generate'] });
    await page.getByLabel('API key').fill(generateOnly.json.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => alert.textContent()).toContain('This API key cannot verify text');

    const verifier = await gateway.call('POST', '/v1/admin/keys', { scopes: ['verify'], name: 'analyst' });
    await signIn(page, verifier.json.key);
    expect(await page.locator('header .who').textContent()).toContain('Signed in: analyst');
    // The key is held in memory only.
    const stored = await page.evaluate(() => ({
      local: localStorage.length,
      session: sessionStorage.length,
      cookie: document.cookie,
    }));
    expect(stored).toEqual({ local: 0, session: 0, cookie: '' });
    expect(await page.getByLabel('API key').count()).toBe(0);
    await gateway.call('DELETE', `/v1/admin/keys/${verifier.json.id}`);
    await page.getByLabel('Text to verify').fill(humanText);
    await page.getByRole('button', { name: 'Verify', exact: true }).click();
    await expect.poll(() => alert.textContent()).toContain('This API key has been revoked');
    await context.close();
  });

  it('verifies a completion the gateway issued: watermarked, green tokens, passage, proofs, downloadable evidence', async () => {
    const { context, page } = await open();
    await signIn(page);
    expect(await verify(page, markedText)).toBe('Watermarked');
    const result = page.locator('section.result');
    expect(await result.getAttribute('data-verdict')).toBe('watermarked');
    expect(await result.textContent()).toContain('This exact text was issued by this service');
    const green = await page.locator('[data-testid="token-text"] .t.g').count();
    const red = await page.locator('[data-testid="token-text"] .t.r').count();
    // The colours are the report's counts: green far above the chance share γ = 1/4.
    expect(await result.locator('dl.numbers').textContent()).toContain(`${green} / ${green + red}`);
    expect(green).toBeGreaterThan(red);
    expect(await page.locator('[data-testid="passage"]').count()).toBeGreaterThanOrEqual(1);
    // The tokens put back together are the text.
    expect(await page.locator('[data-testid="token-text"]').textContent()).toBe(markedText);
    expect(await page.locator('svg.plot path.curve').count()).toBe(1);
    // Every proof was checked in the browser against the keys the service publishes.
    expect(await page.locator('table.checks tr.failed').count()).toBe(0);
    expect(await page.locator('table.checks tr.ok').count()).toBeGreaterThanOrEqual(6);
    // Focus moved to the verdict, for keyboard and screen reader users.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('verdict-heading');
    await shot(page, 'verify-watermarked.png');

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download signed evidence (JSON)' }).click(),
    ]);
    const report = JSON.parse(readFileSync((await download.path())!, 'utf8'));
    expect(report.format).toBe('tracemark-evidence');
    expect(report.envelope.payloadType).toBe('application/vnd.in-toto+json');

    await page.emulateMedia({ media: 'print' });
    await shot(page, 'verify-print.png');
    await page.pdf({ path: join(SCREENSHOTS, 'report.pdf'), format: 'A4' });
    expect(await page.getByRole('button', { name: 'Print report' }).isVisible()).toBe(false);
    await context.close();
  });

  it('verifies human text: not watermarked; too little text is explained', async () => {
    const { context, page } = await open();
    await signIn(page);
    // A text file dropped on the box fills it.
    const dropped = await page.evaluateHandle((text) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([text], 'human.txt', { type: 'text/plain' }));
      return transfer;
    }, humanText);
    await page.locator('#verify-text').dispatchEvent('drop', { dataTransfer: dropped });
    await expect.poll(() => page.locator('#verify-text').inputValue()).toBe(humanText);
    await page.getByRole('button', { name: 'Verify', exact: true }).click();
    await page.locator('#verdict-heading').waitFor();
    expect(await page.locator('#verdict-heading').textContent()).toBe('Not watermarked');
    expect(await page.locator('[data-testid="passage"]').count()).toBe(0);
    expect(await page.locator('section.result').textContent()).toContain('No output recorded');
    await shot(page, 'verify-human.png');
    expect(await verify(page, 'Thank you, see you tomorrow.')).toBe('Too little text to decide');
    expect(await page.locator('section.result').textContent()).toContain('Paste a longer passage');
    await context.close();
  });

  it('says so when the gateway cannot be reached', async () => {
    const { context, page } = await open();
    await signIn(page);
    await page.route('**/v1/verify', (route) => route.abort('connectionrefused'));
    await page.getByLabel('Text to verify').fill(markedText);
    await page.getByRole('button', { name: 'Verify', exact: true }).click();
    await expect
      .poll(() => page.locator('#verify-problem').textContent())
      .toContain('The gateway cannot be reached');
    // Still signed in: the next attempt needs no key.
    expect(await page.getByRole('button', { name: 'Sign out' }).count()).toBe(1);
    await shot(page, 'server-down.png');
    await context.close();
  });

  it('scans a JSONL corpus: radioactive, with the fake-key calibration plot', async () => {
    const { context, page } = await open();
    await signIn(page);
    await page.getByRole('button', { name: 'Scan a corpus' }).click();
    await page.getByLabel('Corpus file (JSONL)').setInputFiles({
      name: 'suspect.jsonl',
      mimeType: 'application/x-ndjson',
      buffer: Buffer.from(corpus),
    });
    const summary = page.locator('[data-testid="corpus-summary"]');
    await expect.poll(() => summary.textContent()).toContain('20 documents');
    expect(await summary.textContent()).toContain('Line 13: not valid JSON');
    expect(await page.getByLabel('Text field').inputValue()).toBe('output');
    await page.getByRole('button', { name: 'Scan corpus' }).click();
    const heading = page.locator('#scan-verdict-heading');
    await heading.waitFor();
    expect(await heading.textContent()).toBe('Radioactive');
    expect(await page.locator('svg.calibration circle.fake').count()).toBe(100);
    expect(await page.locator('svg.calibration line.true-key').count()).toBe(1);
    expect(await page.locator('section.result').textContent()).toContain('rank 1 of 101');
    await shot(page, 'scan-radioactive.png');
    await context.close();
  });

  it('works with the keyboard alone', async () => {
    const { context, page } = await open();
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('api-key');
    await page.keyboard.type(gateway.devKey);
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Verify', exact: true }).waitFor();
    const focused = () =>
      page.evaluate(() => {
        const element = document.activeElement as HTMLElement | null;
        return element?.id || element?.textContent?.trim() || element?.tagName || '';
      });
    // Signing in lands in the text box; before it come the account and the tools, after it the actions.
    expect(await focused()).toBe('verify-text');
    const backwards: string[] = [];
    for (let i = 0; i < 3; i++) {
      await page.keyboard.press('Shift+Tab');
      backwards.push(await focused());
    }
    expect(backwards).toEqual(['Scan a corpus', 'Verify a text', 'Sign out']);
    // Focus is visible.
    expect(await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle)).toBe('solid');
    await page.locator('#verify-text').focus();
    await page.keyboard.insertText(markedText);
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (document.activeElement as HTMLInputElement).type)).toBe('file');
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('Verify');
    await page.keyboard.press('Enter');
    await page.locator('#verdict-heading').waitFor();
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('verdict-heading');
    await context.close();
  });

  it('is readable on a phone', async () => {
    const { context, page } = await open(PHONE);
    await signIn(page);
    expect(await verify(page, markedText)).toBe('Watermarked');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await shot(page, 'phone-verify.png');
    await page.getByRole('button', { name: 'Scan a corpus' }).click();
    await page.getByLabel('Corpus file (JSONL)').setInputFiles({
      name: 'suspect.jsonl',
      mimeType: 'application/x-ndjson',
      buffer: Buffer.from(corpus),
    });
    await page.getByRole('button', { name: 'Scan corpus' }).click();
    await page.locator('#scan-verdict-heading').waitFor();
    expect(
      await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth),
    ).toBeLessThanOrEqual(0);
    await shot(page, 'phone-scan.png');
    await context.close();
  });

  it('reported no script errors and no Content-Security-Policy violations', () => {
    expect(pageErrors).toEqual([]);
  });
});

if (browserMissing) {
  describe('verification console (chromium)', () => {
    if (underCi) {
      it('runs under CI, which needs Chromium', () => {
        throw new Error(`${MISSING}; under CI=${process.env.CI} this suite must run`);
      });
    } else {
      it.skip(`SKIPPED, not tested: ${MISSING}; under CI=true this fails`, () => {});
    }
  });
}
