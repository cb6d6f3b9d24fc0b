// A client on a thread of its own: it sends one heavy request (a POST, or a GET when the body is null) and, until
// it is answered, probes /healthz
// (and once a small completion). On its own thread, the client's work (building and sending a megabyte,
// reading the answer) never runs on the event loop of the gateway it measures.
import { parentPort } from 'node:worker_threads';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function probe({ url, key, path, body, completion }) {
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  let answered = false;
  // a body: POST; none: GET
  const heavy = fetch(`${url}${path}`, body === null ? { headers } : { method: 'POST', headers, body })
    .then(async (response) => {
      const text = await response.text();
      let code = null;
      try {
        code = JSON.parse(text)?.error?.code ?? null;
      } catch {}
      return { status: response.status, code };
    })
    .finally(() => {
      answered = true;
    });
  const healthMs = [];
  const healthStatuses = [];
  let completionMs = null;
  let completionStatus = null;
  await sleep(10);
  while (!answered) {
    const started = performance.now();
    const health = await fetch(`${url}/healthz`);
    await health.arrayBuffer();
    healthMs.push(performance.now() - started);
    healthStatuses.push(health.status);
    if (completion && completionMs === null && !answered) {
      const begun = performance.now();
      const small = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          model: 'tracemark-ngram',
          messages: [{ role: 'user', content: 'Tell me about the sea.' }],
          max_tokens: 4,
        }),
      });
      await small.arrayBuffer();
      completionStatus = small.status;
      completionMs = performance.now() - begun;
    }
    await sleep(10);
  }
  return { ...(await heavy), healthMs, healthStatuses, completionMs, completionStatus };
}

parentPort.on('message', (job) => {
  probe(job).then(
    (result) => parentPort.postMessage({ result }),
    (error) => parentPort.postMessage({ failure: String(error?.stack ?? error) }),
  );
});
