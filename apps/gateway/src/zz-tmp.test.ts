import { it } from 'vitest';
import { startTestGateway } from './test-support/harness.ts';

it('logprobs stall', async () => {
  const g = await startTestGateway({ config: { generationThreads: 1 } });
  const key = (await g.call('POST', '/v1/admin/keys', { scopes: ['generate', 'logprobs'] })).json.key;
  for (const [n, max] of [
    [1, 256],
    [8, 1024],
    [8, 4096],
  ]) {
    let worst = 0;
    let stop = false;
    const probe = (async () => {
      while (!stop) {
        const t = performance.now();
        await fetch(`${g.url}/healthz`);
        worst = Math.max(worst, performance.now() - t);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const t0 = performance.now();
    const r = await fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'tracemark-ngram',
        messages: [{ role: 'user', content: 'Tell me a story' }],
        n,
        max_tokens: max,
        logprobs: true,
        top_logprobs: 20,
      }),
    });
    const text = await r.text();
    stop = true;
    await probe;
    console.log(
      `n=${n} max=${max}: ${r.status} ${(text.length / 1e6).toFixed(1)} MB in ${(performance.now() - t0).toFixed(0)} ms, worst healthz ${worst.toFixed(0)} ms`,
    );
  }
  await g.close();
}, 300_000);
