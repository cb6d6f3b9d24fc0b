// The writer thread from TypeScript sources (tests, `--conditions=source`): worker threads do not inherit
// tsx's loader in Node 20, so register it, then load sqlite-writer.ts. Built, sqlite.js starts sqlite-writer.js.
import { register } from 'tsx/esm/api';

register();
await import('./sqlite-writer.ts');
