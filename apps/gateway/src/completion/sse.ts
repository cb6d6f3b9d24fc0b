/** A server-sent-event body with backpressure, and a promise that settles when its first byte is written. */
import { PassThrough } from 'node:stream';

export interface EventStream {
  readonly output: PassThrough;
  /** Resolves when the first byte is written. */
  readonly started: Promise<void>;
  hasStarted(): boolean;
  /** Writes raw SSE text; waits for the client to drain once the body is piped. */
  write(data: string): Promise<void>;
  /** Writes `data: JSON\n\n`. */
  event(value: unknown): Promise<void>;
  /** Called once the body is handed to the reply: from then on writes wait for the client to drain. */
  piped(): void;
  end(): void;
}

export function createEventStream(): EventStream {
  const output = new PassThrough();
  let piped = false;
  let started = false;
  let markStarted: () => void = () => undefined;
  const startedPromise = new Promise<void>((resolve) => {
    markStarted = resolve;
  });
  const write = async (data: string) => {
    if (output.destroyed || output.writableEnded) return;
    if (!started) {
      started = true;
      markStarted();
    }
    if (!output.write(data) && piped) {
      await new Promise<void>((resolve) => {
        const done = () => {
          output.off('drain', done);
          output.off('close', done);
          resolve();
        };
        output.on('drain', done);
        output.on('close', done);
      });
    }
  };
  return {
    output,
    started: startedPromise,
    hasStarted: () => started,
    write,
    event: (value) => write(`data: ${JSON.stringify(value)}\n\n`),
    piped: () => {
      piped = true;
      output.emit('drain');
    },
    end: () => {
      if (!output.destroyed) output.end();
    },
  };
}
