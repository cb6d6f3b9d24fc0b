/** A completion's lifetime: deadline, client disconnect and shutdown abort one signal, each with its reason. */
import type { FastifyReply } from 'fastify';
import { GatewayError } from '../errors.ts';

export interface CompletionLifetime {
  readonly signal: AbortSignal;
  done(): void;
}

export function completionLifetime(
  active: Set<AbortController>,
  timeoutMs: number,
  reply: FastifyReply,
): CompletionLifetime {
  const controller = new AbortController();
  active.add(controller);
  const timer = setTimeout(
    () =>
      controller.abort(
        new GatewayError(504, 'TM_ERR_TIMEOUT', `the completion took longer than ${timeoutMs} ms`),
      ),
    timeoutMs,
  );
  const onClose = () => {
    if (!reply.raw.writableFinished) controller.abort('client disconnected');
  };
  reply.raw.on('close', onClose);
  return {
    signal: controller.signal,
    done: () => {
      clearTimeout(timer);
      active.delete(controller);
      reply.raw.off('close', onClose);
    },
  };
}
