/**
 * A pass-through proxy that ends every server-sent-event body with a blank line. Some servers
 * (inference-server 1.0.0-beta.32) write their last event, `data: [DONE]`, without the blank line that
 * dispatches an event, so a client that follows the SSE specification never sees it. Everything else is
 * forwarded unchanged.
 */
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EventStreamTerminator {
  /** The proxy's base URL: `target` with its origin replaced. */
  readonly url: string;
  close(): Promise<void>;
}

export async function startEventStreamTerminator(target: string): Promise<EventStreamTerminator> {
  const upstream = new URL(target);
  const server = createServer((incoming, outgoing) => {
    const forwarded = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: incoming.method,
        path: incoming.url,
        headers: { ...incoming.headers, host: upstream.host },
      },
      (response) => {
        const eventStream = String(response.headers['content-type'] ?? '').startsWith('text/event-stream');
        outgoing.writeHead(response.statusCode ?? 502, response.headers);
        let tail = '';
        response.on('data', (chunk: Buffer) => {
          if (eventStream) tail = (tail + chunk.toString('latin1')).slice(-2);
          outgoing.write(chunk);
        });
        response.on('end', () => outgoing.end(eventStream && tail !== '\n\n' ? '\n\n' : undefined));
      },
    );
    forwarded.on('error', () => outgoing.destroy());
    incoming.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${upstream.pathname}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
