import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { apiKeyIdOf, hashApiKey, keyState, mintApiKey, parseScopes, verifyApiKey } from './api-keys.ts';
import { ConfigError, resolveConfig } from './config.ts';

describe('API keys', () => {
  const secret = randomBytes(32);
  it('are prefixed, carry 256 random bits after their id, and are stored as an HMAC', () => {
    const minted = mintApiKey(secret, 'live');
    expect(minted.key).toMatch(/^tm_live_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(minted.id).toBe(`ak_${minted.key.slice(8, 24)}`);
    expect(apiKeyIdOf(minted.key)).toBe(minted.id);
    expect(minted.hash).toBe(hashApiKey(secret, minted.key));
    expect(minted.hash).not.toContain(minted.key.slice(25));
    expect(mintApiKey(secret, 'dev').key.startsWith('tm_dev_')).toBe(true);
    expect(new Set(Array.from({ length: 100 }, () => mintApiKey(secret).key)).size).toBe(100);
  });

  it('verify only the exact key under the same server secret', () => {
    const minted = mintApiKey(secret);
    const record = {
      id: minted.id,
      hash: minted.hash,
      environment: 'live' as const,
      name: '',
      account: 'a',
      scopes: ['generate' as const],
      createdAt: '',
      expiresAt: null,
      revokedAt: null,
      rateLimitPerMinute: null,
      dailyTokenQuota: null,
    };
    expect(verifyApiKey(secret, minted.key, record)).toBe(true);
    expect(verifyApiKey(randomBytes(32), minted.key, record)).toBe(false);
    expect(verifyApiKey(secret, `${minted.key.slice(0, -1)}x`, record)).toBe(false);
    expect(verifyApiKey(secret, minted.key, null)).toBe(false);
    expect(apiKeyIdOf('tm_live_nothex_abc')).toBeNull();
    expect(keyState({ ...record, expiresAt: '2000-01-01T00:00:00Z' })).toBe('expired');
    expect(keyState({ ...record, revokedAt: '2000-01-01T00:00:00Z' })).toBe('revoked');
    expect(keyState(record)).toBe('active');
  });

  it('scopes parse and reject unknown names', () => {
    expect(parseScopes('generate, verify,generate')).toEqual(['generate', 'verify']);
    expect(() => parseScopes('generate,root')).toThrow(/unknown scope "root"/);
    expect(() => parseScopes('')).toThrow(RangeError);
  });
});

describe('configuration', () => {
  it('flags over environment over defaults', () => {
    const config = resolveConfig(
      { port: 9000 },
      { TRACEMARK_PORT: '9100', TRACEMARK_HOST: '0.0.0.0', TRACEMARK_DATA_DIR: '/tmp/x' },
    );
    expect(config).toMatchObject({
      port: 9000,
      host: '0.0.0.0',
      dataDir: '/tmp/x',
      upstreamUrl: null,
      databaseUrl: null,
    });
    expect(resolveConfig({}, { XDG_DATA_HOME: '/data' }).dataDir).toBe('/data/tracemark');
  });

  it('names the variable of a bad value and never echoes a URL with credentials', () => {
    expect(() => resolveConfig({}, { TRACEMARK_PORT: 'eighty' })).toThrow(/TRACEMARK_PORT must be a number/);
    // a setting without a serve flag is named by its variable alone; one with a flag, by both
    expect(() => resolveConfig({}, { TRACEMARK_MAX_CHOICES: '0' })).toThrow(
      /^TRACEMARK_MAX_CHOICES must be an integer from 1 to 128, got 0$/,
    );
    expect(() => resolveConfig({}, { TRACEMARK_RATE_LIMIT_PER_MINUTE: '-5' })).toThrow(
      /^TRACEMARK_RATE_LIMIT_PER_MINUTE must be/,
    );
    expect(() => resolveConfig({}, { TRACEMARK_THROTTLED_RATE_LIMIT_PER_MINUTE: '0' })).toThrow(
      /^--throttled-rate-limit-per-minute \(TRACEMARK_THROTTLED_RATE_LIMIT_PER_MINUTE\) must be/,
    );
    const error = (() => {
      try {
        resolveConfig({}, { DATABASE_URL: 'mysql://user:hunter2@db/x' });
      } catch (e) {
        return e as Error;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.message).not.toContain('hunter2');
    expect(() => resolveConfig({}, { TRACEMARK_UPSTREAM_URL: 'ftp://x' })).toThrow(/http: or https:/);
  });
});

describe('the data directory', () => {
  it('a file where it should be, or on the way to it, is an I/O error naming the path', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { ensureDataDir } = await import('./data-dir.ts');
    const base = mkdtempSync(join(tmpdir(), 'tracemark-data-dir-'));
    const file = join(base, 'a-file');
    writeFileSync(file, 'x');
    for (const dir of [file, join(file, 'below')]) {
      await expect(ensureDataDir(dir)).rejects.toMatchObject({
        code: 'TM_ERR_IO',
        message: `${dir}: not a directory (a file is there or on the way to it)`,
      });
    }
    await expect(ensureDataDir(join(base, 'new', 'dir'))).resolves.toBeUndefined();
  });
});
