/**
 * The verification console (apps/console, built by `pnpm build`) served at `/`: the built files are read
 * once into memory and served with their content types, an ETag, long caching for the hashed assets, and a
 * strict Content-Security-Policy (same-origin scripts, styles and requests only; nothing from a CDN). While
 * the console is not built, `/` is a 503 page that says how to build it.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { GatewayError } from '../errors.ts';

export interface ConsolePluginOptions {
  /** The built console; default apps/console/dist beside this package (the same from src/ and dist/). */
  readonly distDir?: string;
}

/** apps/gateway/{src,dist}/plugins → apps/console/dist. */
export const DEFAULT_CONSOLE_DIST: string = fileURLToPath(new URL('../../../console/dist/', import.meta.url));

/** Scripts, styles, images and requests from this origin only; no inline code, no framing, no plugins. */
export const CONSOLE_CSP: string = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
  readonly cacheControl: string;
}

const NOT_BUILT_PAGE = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>tracemark console: not built</title></head>
<body><h1>The verification console is not built</h1>
<p>This gateway serves the console from <code>apps/console/dist</code>, which does not exist yet.
Build it from the repository root with <code>pnpm build</code>, then reload this page.</p>
<p>The API works without it: see <a href="/openapi.json">/openapi.json</a>.</p></body></html>
`;

async function filesUnder(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

/** Every built file by its URL path, or null when the console is not built (no index.html). */
async function loadAssets(distDir: string): Promise<Map<string, Asset> | null> {
  let paths: string[];
  try {
    paths = await filesUnder(distDir);
  } catch {
    return null;
  }
  const assets = new Map<string, Asset>();
  for (const path of paths) {
    const urlPath = `/${relative(distDir, path).split(sep).join('/')}`;
    const type = CONTENT_TYPES[extname(path).toLowerCase()];
    if (type === undefined) continue;
    const body = await readFile(path);
    assets.set(urlPath, {
      body,
      type,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
      // Vite names what it emits under assets/ by content hash, so those never change; the rest revalidates.
      cacheControl: urlPath.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
  }
  return assets.has('/index.html') ? assets : null;
}

const consolePlugin: FastifyPluginAsync<ConsolePluginOptions> = async (fastify: FastifyInstance, options) => {
  const distDir = options.distDir ?? DEFAULT_CONSOLE_DIST;
  let assets: Map<string, Asset> | null = null;
  // Read on first use and kept; while the console is not built, every request looks again.
  const current = async (): Promise<Map<string, Asset> | null> => {
    assets ??= await loadAssets(distDir);
    return assets;
  };

  const send = (request: FastifyRequest, reply: FastifyReply, asset: Asset) => {
    reply.headers(SECURITY_HEADERS).header('cache-control', asset.cacheControl).header('etag', asset.etag);
    const ifNoneMatch = request.headers['if-none-match'];
    if (typeof ifNoneMatch === 'string' && ifNoneMatch.split(/\s*,\s*/).includes(asset.etag)) {
      return reply.code(304).send();
    }
    return reply.type(asset.type).send(asset.body);
  };

  // Limited per client address, as the other public routes are.
  const publicRoute = { publicRateLimit: true };
  const page = {
    hide: true,
    response: {
      200: { type: 'string', description: 'The file.' },
      304: { type: 'null', description: 'Not modified.' },
      404: { $ref: 'OpenAiError#' },
      429: { $ref: 'OpenAiError#' },
      503: { type: 'string', description: 'HTML: the console is not built.' },
    },
  };

  fastify.get('/', { schema: page, config: publicRoute }, async (request, reply) => {
    const built = await current();
    if (built === null) {
      return reply
        .code(503)
        .headers(SECURITY_HEADERS)
        .header('cache-control', 'no-store')
        .type('text/html; charset=utf-8')
        .send(NOT_BUILT_PAGE);
    }
    return send(request, reply, built.get('/index.html')!);
  });

  const file = async (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0]!;
    const asset = path === '/index.html' ? undefined : (await current())?.get(path);
    if (asset === undefined) throw new GatewayError(404, 'TM_ERR_NOT_FOUND', `no console file ${path}`);
    return send(request, reply, asset);
  };
  fastify.get('/assets/*', { schema: page, config: publicRoute }, file);
  fastify.get('/favicon.svg', { schema: page, config: publicRoute }, file);
};

/** Registers `/`, `/assets/*` and `/favicon.svg`. */
const plugin: FastifyPluginAsync<ConsolePluginOptions> = fp(consolePlugin, {
  name: 'tracemark-console',
  fastify: '5.x',
});
export default plugin;
