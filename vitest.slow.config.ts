import { defineConfig } from 'vitest/config';
import { sourceResolution } from './vitest.config.ts';

export default defineConfig({
  ...sourceResolution,
  test: {
    include: ['**/*.slow.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 600_000,
  },
});
