// The generation thread from TypeScript sources (tests, `--conditions=source`): worker threads do not inherit
// tsx's loader in Node 20, so register it, then load generation-thread.ts. The built gateway starts
// dist/backends/generation-thread.js instead.
import { register } from 'tsx/esm/api';

register();
await import('./generation-thread.ts');
