// The worker from TypeScript sources (tests, `--conditions=source`): worker threads do not inherit tsx's
// loader in Node 20, so register it, then load worker.ts. The built gateway loads dist/work/worker.js instead.
import { register } from 'tsx/esm/api';

register();
const worker = await import('./worker.ts');

export default worker.default;
