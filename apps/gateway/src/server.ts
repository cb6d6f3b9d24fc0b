/** Listens, prunes expired issuance tokens daily, and closes gracefully on SIGINT / SIGTERM. */
import type { FastifyInstance } from 'fastify';
import { buildApp, type LoggerSetting } from './app.ts';
import { type FirstStart, prepareGateway } from './bootstrap.ts';
import type { GatewayConfig } from './config.ts';

export interface RunningGateway {
  readonly app: FastifyInstance;
  /** http://host:port of the listening socket. */
  readonly url: string;
  readonly firstStart: FirstStart;
  /** Stops accepting, aborts streams in progress (they end with an error event), closes everything. */
  close(): Promise<void>;
  /** Settles once the gateway has closed (by `close()` or a signal). */
  readonly closed: Promise<void>;
}

export interface StartOptions {
  readonly logger?: LoggerSetting;
  /** Install SIGINT / SIGTERM handlers that close the gateway (default true). */
  readonly handleSignals?: boolean;
}

export async function startServer(
  config: GatewayConfig,
  options: StartOptions = {},
): Promise<RunningGateway> {
  const prepared = await prepareGateway(config);
  let app: FastifyInstance;
  try {
    app = await buildApp(prepared.services, options.logger === undefined ? {} : { logger: options.logger });
  } catch (error) {
    await prepared.close();
    throw error;
  }
  app.server.headersTimeout = 20_000;
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    await app.close();
    await prepared.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const pruneTimer =
    config.issuanceTokenRetentionDays > 0
      ? setInterval(() => {
          const before = new Date(Date.now() - config.issuanceTokenRetentionDays * 86_400_000).toISOString();
          prepared.services.storage.pruneIssuedTokens(before).catch((error: unknown) => {
            app.log.warn({ err: error }, 'pruning issued tokens failed');
          });
        }, 86_400_000)
      : null;
  pruneTimer?.unref();

  let markClosed: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => {
    markClosed = resolve;
  });
  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      if (pruneTimer !== null) clearInterval(pruneTimer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      try {
        await app.close();
        await prepared.close();
      } finally {
        markClosed();
      }
    })();
    return closing;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    app.log.info({ signal }, 'shutting down');
    close().then(
      () => undefined,
      (error: unknown) => {
        app.log.error({ err: error }, 'shutdown failed');
        process.exitCode = 1;
      },
    );
  };
  if (options.handleSignals !== false) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  return { app, url: `http://${host}:${port}`, firstStart: prepared.firstStart, close, closed };
}

/** The ready-to-paste request printed on first start. */
export function curlExample(url: string, apiKey: string, model: string): string {
  const body = JSON.stringify({
    model,
    messages: [{ role: 'user', content: 'Tell me about the weather.' }],
    max_tokens: 60,
  });
  return `curl -s ${url}/v1/chat/completions -H 'Authorization: Bearer ${apiKey}' -H 'Content-Type: application/json' -d '${body}'`;
}
