import { availableParallelism } from 'node:os';
import { defineConfig, type Plugin } from 'vitest/config';

/**
 * Tests run against the TypeScript sources of the workspace packages, never their `dist`: each
 * package's `exports` has a "source" condition. Vitest runs tests in Vite's server-side ("ssr")
 * environment, whose conditions are `ssr.resolve.conditions` (Vite 6+); the top-level
 * `resolve.conditions` reaches only the client environment, and a stale `dist` was loaded instead.
 * Setting the list replaces Vite's defaults, so they follow "source". Tests that spawn the built
 * CLI or gateway (`node apps/cli/dist/bin.js`) are separate processes and still use `dist`.
 */
const sourceConditions = ['source', 'module', 'node', 'development|production'];

/** Fails any test that loads a workspace package's `dist` through Vite (test/sources.test.ts checks it too). */
function refuseWorkspaceDist(): Plugin {
  const workspaceDist = /\/(?:packages|apps)\/[^/]+\/dist\//;
  return {
    name: 'tracemark:refuse-workspace-dist',
    enforce: 'pre',
    load(id) {
      if (workspaceDist.test(id.replaceAll('\\', '/'))) {
        throw new Error(`${id}: a test loaded a workspace package's dist; tests must run against src`);
      }
      return null;
    },
  };
}

/** Shared with vitest.slow.config.ts. */
export const sourceResolution: { ssr: { resolve: { conditions: string[] } }; plugins: Plugin[] } = {
  ssr: { resolve: { conditions: sourceConditions } },
  plugins: [refuseWorkspaceDist()],
};

/**
 * Suites that time the gateway's answers while it works (`/healthz` within 100 ms under the worst inputs
 * and under long generations): they run last, one at a time, with nothing else on the machine.
 */
const timed = ['apps/gateway/src/responsiveness.test.ts', 'apps/gateway/src/generation-threads.test.ts'];

export default defineConfig({
  ...sourceResolution,
  test: {
    exclude: ['**/node_modules/**', '**/dist/**', '**/*.slow.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'suites',
          include: [
            'packages/*/src/**/*.test.ts',
            'packages/*/test/**/*.test.ts',
            'apps/*/src/**/*.test.ts',
            'apps/*/test/**/*.test.ts',
            'test/**/*.test.ts',
            'research/**/*.test.ts',
            'examples/**/*.test.ts',
          ],
          // Added to the exclusions above (a project's arrays extend the root's).
          exclude: timed,
          // At least two files at a time (Vitest's default is one fewer than the cores: one on a two-core
          // machine): most suites wait on the processes and servers they start, and two at once take 0.6
          // of the time there.
          maxWorkers: Math.max(2, availableParallelism() - 1),
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: { name: 'timed', include: timed, maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
