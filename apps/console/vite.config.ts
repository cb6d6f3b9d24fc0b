import { defaultClientConditions, defineConfig } from 'vite';

/** `pnpm --filter @tracemark/console dev` talks to a running gateway (default `tracemark serve`'s address). */
const gateway = process.env.TRACEMARK_GATEWAY_URL ?? 'http://127.0.0.1:8787';

export default defineConfig({
  // Workspace packages are bundled from their TypeScript sources, as vitest reads them.
  resolve: { conditions: ['source', ...defaultClientConditions] },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  server: { proxy: { '/v1': gateway, '/.well-known': gateway } },
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
    // Everything is a file of its own: the gateway's Content-Security-Policy allows no inline code or data URLs.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
});
