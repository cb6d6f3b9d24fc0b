/**
 * The console's static files (plugins/console.ts) on a bare fastify app over a temporary build: content
 * types, caching, ETags, the Content-Security-Policy, the 503 page before a build, and nothing served from
 * outside the build. The console itself is tested in a browser by test/console.test.ts.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import consolePlugin, { CONSOLE_CSP, DEFAULT_CONSOLE_DIST } from './plugins/console.ts';
import errorsPlugin from './plugins/errors.ts';
import { openAiErrorSchema } from './schemas.ts';
import { removeTemporaryDirectories, startTestGateway, temporaryDirectory } from './test-support/harness.ts';

afterAll(removeTemporaryDirectories);

const directory = temporaryDirectory('tracemark-console-');
const dist = join(directory, 'dist');
let app: FastifyInstance;

async function serve(distDir: string): Promise<FastifyInstance> {
  const instance = Fastify({ logger: false });
  instance.addSchema(openAiErrorSchema);
  await instance.register(errorsPlugin);
  await instance.register(consolePlugin, { distDir });
  await instance.ready();
  return instance;
}

beforeAll(async () => {
  app = await serve(dist);
});
afterAll(async () => {
  await app?.close();
  rmSync(directory, { recursive: true, force: true });
});

describe('console files', () => {
  it('answers 503 with a page that says to build, until the console is built; then serves it', async () => {
    const before = await app.inject({ method: 'GET', url: '/' });
    expect(before.statusCode).toBe(503);
    expect(before.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(before.body).toContain('pnpm build');
    expect(before.headers['content-security-policy']).toBe(CONSOLE_CSP);
    expect(before.headers['cache-control']).toBe('no-store');

    mkdirSync(join(dist, 'assets'), { recursive: true });
    writeFileSync(
      join(dist, 'index.html'),
      '<!doctype html><script type="module" src="/assets/index-abc123.js"></script>',
    );
    writeFileSync(join(dist, 'assets/index-abc123.js'), 'console.log("hi");');
    writeFileSync(join(dist, 'assets/index-abc123.css'), 'body{}');
    writeFileSync(join(dist, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    writeFileSync(join(dist, 'assets/notes.unknown'), 'not served');
    const after = await app.inject({ method: 'GET', url: '/' });
    expect(after.statusCode).toBe(200);
    expect(after.body).toContain('index-abc123.js');
  });

  it('serves each file with its content type, caching and security headers', async () => {
    const cases = [
      ['/', 'text/html; charset=utf-8', 'no-cache'],
      ['/assets/index-abc123.js', 'text/javascript; charset=utf-8', 'public, max-age=31536000, immutable'],
      ['/assets/index-abc123.css', 'text/css; charset=utf-8', 'public, max-age=31536000, immutable'],
      ['/favicon.svg', 'image/svg+xml', 'no-cache'],
    ] as const;
    for (const [url, type, cacheControl] of cases) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(200);
      expect(response.headers['content-type'], url).toBe(type);
      expect(response.headers['cache-control'], url).toBe(cacheControl);
      expect(response.headers['content-security-policy'], url).toBe(CONSOLE_CSP);
      expect(response.headers['x-content-type-options']).toBe('nosniff');
      expect(response.headers['x-frame-options']).toBe('DENY');
      expect(response.headers['referrer-policy']).toBe('no-referrer');
      expect(response.headers.etag).toMatch(/^"[\w-]{27}"$/);
    }
    const head = await app.inject({ method: 'HEAD', url: '/assets/index-abc123.js' });
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');
  });

  it('has a strict Content-Security-Policy: this origin only, no inline code, no framing', () => {
    const directives = new Map(
      CONSOLE_CSP.split('; ').map((directive) => {
        const [name, ...values] = directive.split(' ');
        return [name!, values.join(' ')];
      }),
    );
    expect(directives.get('default-src')).toBe("'none'");
    for (const name of ['script-src', 'style-src', 'connect-src', 'img-src']) {
      expect(directives.get(name)).toBe("'self'");
    }
    expect(CONSOLE_CSP).not.toMatch(/unsafe-|https?:|data:|\*/);
    expect(directives.get('frame-ancestors')).toBe("'none'");
  });

  it('answers 304 to a matching If-None-Match', async () => {
    const first = await app.inject({ method: 'GET', url: '/' });
    const again = await app.inject({
      method: 'GET',
      url: '/',
      headers: { 'if-none-match': first.headers.etag },
    });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    const changed = await app.inject({ method: 'GET', url: '/', headers: { 'if-none-match': '"other"' } });
    expect(changed.statusCode).toBe(200);
  });

  it('serves nothing but the build: unknown files, other types and paths outside it are 404s', async () => {
    for (const url of [
      '/assets/missing.js',
      '/assets/notes.unknown',
      '/assets/../index.html',
      '/assets/%2e%2e/%2e%2e/package.json',
      '/assets/..%2f..%2fpackage.json',
      '/index.html',
      '/package.json',
    ]) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(404);
      expect(response.json().error.code, url).toBe('TM_ERR_NOT_FOUND');
    }
  });

  it('finds the console build beside the gateway package', () => {
    expect(DEFAULT_CONSOLE_DIST.replaceAll('\\', '/')).toMatch(/apps\/console\/dist\/$/);
  });

  it('is part of the gateway: / answers with the console or the 503 page, never a JSON 404', async () => {
    const gateway = await startTestGateway();
    try {
      const response = await fetch(`${gateway.url}/`);
      expect([200, 503]).toContain(response.status);
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(response.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
      // The API keeps its own 404s.
      const missing = await gateway.call('GET', '/v1/nothing-here');
      expect(missing.status).toBe(404);
      expect(missing.json.error.code).toBe('TM_ERR_NOT_FOUND');
    } finally {
      await gateway.close();
    }
  });
});
