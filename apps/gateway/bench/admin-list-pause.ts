/**
 * How long listing the issuance log pauses the gateway's event loop:
 * `pnpm --filter @tracemark/gateway admin-list-pause`.
 *
 * A gateway (embedded backend, SQLite) whose log holds 1,000 records of 4,096 token ids each; another process
 * asks `GET /v1/admin/issuance?limit=1000` (about 25 MB of JSON) while it polls `/healthz` every 20 ms, and
 * prints the slowest `/healthz` answer during the request (the pause). The poller is a process of its own: a
 * poller on the gateway's own event loop would not see the loop's pauses.
 */
import { spawn } from 'node:child_process';
import { startTestGateway } from '../src/test-support/harness.ts';
import { syntheticIssuance } from '../src/test-support/synthetic-issuance.ts';

const RECORDS = 1000;
const TOKENS = 4096;
const gateway = await startTestGateway({ config: { rateLimitPerMinute: 1_000_000 }, logLevel: 'warn' });
for (let done = 0; done < RECORDS; done += 100) {
  await gateway.services.storage.appendIssuance(
    Array.from({ length: 100 }, (_, i) =>
      syntheticIssuance(done + i, gateway.services.watermarkKey.keyId, {
        numTokens: TOKENS,
        outputTokens: Uint32Array.from({ length: TOKENS }, (_, j) => (j * 7919 + done + i) % 100_000),
        minhash: null,
      }),
    ),
  );
}
const poller = `
const [url, key] = process.argv.slice(1);
let slowest = 0;
let done = false;
const polling = (async () => {
  while (!done) {
    const begin = performance.now();
    await (await fetch(url + '/healthz')).arrayBuffer();
    slowest = Math.max(slowest, performance.now() - begin);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
})();
const begin = performance.now();
const response = await fetch(url + '/v1/admin/issuance?limit=${RECORDS}', { headers: { authorization: 'Bearer ' + key } });
const text = await response.text();
const elapsed = performance.now() - begin;
done = true;
await polling;
if (response.status !== 200) throw new Error('HTTP ' + response.status + ' ' + text.slice(0, 200));
console.log('| ${RECORDS} records of ${TOKENS} tokens | ' + (text.length / 1e6).toFixed(1) + ' MB | ' + elapsed.toFixed(0) + ' ms | ' + slowest.toFixed(0) + ' ms |');
`;
try {
  console.log('| listed | response | request | slowest /healthz meanwhile |\n| --- | --- | --- | --- |');
  const child = spawn(process.execPath, ['--input-type=module', '-e', poller, gateway.url, gateway.devKey], {
    stdio: 'inherit',
  });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  if (code !== 0) process.exitCode = 1;
} finally {
  await gateway.close();
}
