/**
 * A completion's lifecycle, stage by stage: request → prepared completion → quota → backend session →
 * issuance record → response (JSON, or SSE chunks). A non-streamed completion whose record cannot be
 * written is withheld (500 TM_ERR_ISSUANCE_LOG); a stream is recorded before its last event, and if that
 * fails the stream ends with an error event instead of `data: [DONE]`.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, SERVER_ERROR_MESSAGES } from '../errors.ts';
import type { Endpoint } from '../storage/types.ts';
import { type IssuanceContext, issuanceRecords, recordIssuance } from './issuance.ts';
import { jsonBodyStream } from './json-body.ts';
import { completionLifetime } from './lifetime.ts';
import { reserveQuota } from './quota.ts';
import { createRequestStage } from './request.ts';
import type { CompletionSession } from './session.ts';
import { createShaper, type ShapingContext, usageOf } from './shaping.ts';
import { createEventStream } from './sse.ts';
import {
  type Body,
  type ChoiceResult,
  type ChoiceTask,
  choiceTasks,
  type PreparedCompletion,
} from './types.ts';

/** Stands for a chunk's text in the precomputed chunk halves (textChunkWriter); never in a real text. */
const DELTA_PLACEHOLDER = '\u0000tracemark:delta\u0000';
const QUOTED_PLACEHOLDER = JSON.stringify(DELTA_PLACEHOLDER);

export interface CompletionStages {
  readonly session: CompletionSession;
  readonly issuance: IssuanceContext;
  readonly shaping: ShapingContext;
}

export type CompletionHandler = (
  endpoint: Endpoint,
  request: FastifyRequest,
  reply: FastifyReply,
) => Promise<FastifyReply>;

export function createCompletionHandler(
  fastify: FastifyInstance,
  stages: CompletionStages,
): CompletionHandler {
  const { config } = fastify.gateway;
  const active = fastify.gateway.activeGenerations;
  const { monitoring } = fastify.gateway;
  const prepare = createRequestStage(fastify);
  const shaper = createShaper(stages.shaping);
  const { session } = stages;
  const { accountKeys } = stages.issuance;
  const record = async (
    request: FastifyRequest,
    prepared: PreparedCompletion,
    completionId: string,
    results: readonly ChoiceResult[],
  ) =>
    recordIssuance(
      fastify,
      request,
      issuanceRecords(
        stages.issuance,
        request,
        prepared,
        completionId,
        results,
        accountKeys == null ? null : await accountKeys.forAccount(prepared.account),
      ),
    );
  const countUsage = (prepared: PreparedCompletion, results: readonly ChoiceResult[]) => {
    const usage = usageOf(prepared, results);
    fastify.metrics.promptTokens.inc({ endpoint: prepared.endpoint }, usage.prompt_tokens);
    fastify.metrics.completionTokens.inc({ endpoint: prepared.endpoint }, usage.completion_tokens);
    return usage;
  };

  const handle = async (
    endpoint: Endpoint,
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply> => {
    const prepared = await prepare(endpoint, request.body as Body, request);
    const settle = await reserveQuota(fastify, request, prepared);
    const completionId =
      endpoint === 'responses'
        ? `resp_${randomBytes(12).toString('hex')}`
        : `${endpoint === 'chat.completions' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    const life = completionLifetime(active, config.completionTimeoutMs, reply);
    const tasks = choiceTasks(prepared);
    const onToken = () => fastify.metrics.generatedTokens.inc();
    let used = 0;
    let handedOff = false;
    const cleanup = async () => {
      life.done();
      await settle(used);
    };
    try {
      if (!prepared.stream) {
        const results: ChoiceResult[] = [];
        for (const task of tasks) {
          const outcome = await session.run(prepared, task, life.signal, { onToken });
          used += outcome.tokens.length;
          results.push({ ...outcome, index: task.index, prompt: task.prompt });
          if (life.signal.aborted) break;
        }
        if (life.signal.aborted) {
          const reason = life.signal.reason;
          fastify.metrics.completions.inc({ endpoint, stream: 'false', outcome: 'cancelled' });
          if (reason instanceof GatewayError) throw reason;
          return reply; // The client went away: nothing was returned, so nothing is recorded.
        }
        // The output audit (TRACEMARK_OUTPUT_POLICY) before the record: what is recorded is what is returned.
        const issued = monitoring.auditOutputs(request, prepared, results, (text) =>
          stages.issuance.tokenizer.encodeFast(text),
        );
        const ids = await record(request, prepared, completionId, issued);
        monitoring.observeCompletion(request, prepared, issued, completionId);
        countUsage(prepared, issued);
        fastify.metrics.completions.inc({ endpoint, stream: 'false', outcome: 'ok' });
        const body = shaper.body(prepared, completionId, created, issued, ids);
        // With log-probabilities the body is large (up to TRACEMARK_MAX_LOGPROB_ENTRIES entries): it is written
        // a piece at a time, other requests served in between (json-body.ts).
        if (prepared.topLogprobs === null) return reply.send(body);
        return reply.type('application/json; charset=utf-8').send(jsonBodyStream(body));
      }
      return await stream(request, reply, prepared, tasks, completionId, created, life.signal, onToken, {
        addUsed: (n) => {
          used += n;
        },
        handOff: () => {
          handedOff = true;
        },
        cleanup,
      });
    } finally {
      if (!handedOff) await cleanup();
    }
  };

  const stream = async (
    request: FastifyRequest,
    reply: FastifyReply,
    prepared: PreparedCompletion,
    tasks: readonly ChoiceTask[],
    completionId: string,
    created: number,
    signal: AbortSignal,
    onToken: () => void,
    hooks: { addUsed: (tokens: number) => void; handOff: () => void; cleanup: () => Promise<void> },
  ): Promise<FastifyReply> => {
    const { endpoint } = prepared;
    const events = createEventStream();
    const common = shaper.common(prepared, completionId, created);
    const usageField = prepared.includeUsage ? { usage: null } : {};
    const object = endpoint === 'chat.completions' ? 'chat.completion.chunk' : 'text_completion';
    const chunk = (choice: Record<string, unknown>) =>
      events.event({ ...common, object, choices: [choice], ...usageField });
    /**
     * The text chunk of one choice as two fixed halves around the text's JSON: the bytes
     * `chunk({…, delta: {content: text}})` writes, without building and serializing the whole chunk for
     * every token.
     */
    const textChunkWriter = (index: number): ((text: string) => Promise<void>) => {
      const choice =
        endpoint === 'chat.completions'
          ? { index, delta: { content: DELTA_PLACEHOLDER }, logprobs: null, finish_reason: null }
          : { index, text: DELTA_PLACEHOLDER, logprobs: null, finish_reason: null };
      const whole = `data: ${JSON.stringify({ ...common, object, choices: [choice], ...usageField })}\n\n`;
      const at = whole.lastIndexOf(QUOTED_PLACEHOLDER);
      const head = whole.slice(0, at);
      const tail = whole.slice(at + QUOTED_PLACEHOLDER.length);
      return (text) => events.write(head + JSON.stringify(text) + tail);
    };
    // The Responses API streams typed events (`event: NAME`), numbered, and no `[DONE]`.
    const responses = endpoint === 'responses';
    let sequence = 0;
    const typed = (type: string, payload: Record<string, unknown>) =>
      events.write(
        `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...payload })}\n\n`,
      );
    const itemId = `msg_${completionId.slice(5)}`;
    const part = { item_id: itemId, output_index: 0, content_index: 0 };
    const openResponse = async () => {
      await typed('response.created', {
        response: shaper.responseBody(prepared, completionId, created, [], [], 'in_progress'),
      });
      await typed('response.output_item.added', {
        output_index: 0,
        item: { type: 'message', id: itemId, status: 'in_progress', role: 'assistant', content: [] },
      });
      await typed('response.content_part.added', {
        ...part,
        part: { type: 'output_text', text: '', annotations: [] },
      });
    };
    const closeResponse = async (text: string) => {
      await typed('response.output_text.done', { ...part, text });
      await typed('response.content_part.done', {
        ...part,
        part: { type: 'output_text', text, annotations: [] },
      });
      await typed('response.output_item.done', {
        output_index: 0,
        item: {
          type: 'message',
          id: itemId,
          status: 'completed',
          role: 'assistant',
          content: [{ type: 'output_text', text, annotations: [] }],
        },
      });
    };

    fastify.metrics.activeStreams.inc();
    const results: ChoiceResult[] = [];
    const produce = async (): Promise<void> => {
      for (const task of tasks) {
        let sentRole = false;
        let textOffset = 0;
        let sentText = '';
        const textChunk = prepared.topLogprobs === null ? textChunkWriter(task.index) : null;
        const roleChunk = () =>
          chunk({
            index: task.index,
            delta: { role: 'assistant', content: '' },
            logprobs: null,
            finish_reason: null,
          });
        const run = session.run(prepared, task, signal, {
          onToken,
          onDelta: async (delta, steps) => {
            if (responses) {
              if (!sentRole) {
                sentRole = true;
                await openResponse();
              }
              sentText += delta;
              if (delta !== '') await typed('response.output_text.delta', { ...part, delta });
              return;
            }
            sentText += delta;
            if (endpoint === 'chat.completions') {
              if (!sentRole) {
                sentRole = true;
                await roleChunk();
              }
              if (textChunk !== null) return textChunk(delta);
              await chunk({
                index: task.index,
                delta: { content: delta },
                logprobs: prepared.topLogprobs === null ? null : shaper.chatLogprobs(steps),
                finish_reason: null,
              });
            } else if (textChunk !== null) {
              textOffset += delta.length;
              await textChunk(delta);
            } else {
              await chunk({
                index: task.index,
                text: delta,
                logprobs: prepared.topLogprobs === null ? null : shaper.legacyLogprobs(steps, textOffset),
                finish_reason: null,
              });
              textOffset += delta.length;
            }
          },
        });
        let outcome: Awaited<typeof run>;
        try {
          outcome = await run;
        } catch (error) {
          // What reached the client was issued, even if the backend failed before the choice ended.
          if (sentText !== '') {
            const tokens = Array.from(stages.issuance.tokenizer.encodeFast(sentText));
            hooks.addUsed(tokens.length);
            results.push({
              text: sentText,
              tokens,
              steps: [],
              finishReason: 'cancelled',
              strength: { expectedGreen: 0, spikeEntropySum: 0 },
              index: task.index,
              prompt: task.prompt,
            });
          }
          throw error;
        }
        hooks.addUsed(outcome.tokens.length);
        results.push({ ...outcome, index: task.index, prompt: task.prompt });
        if (outcome.finishReason === 'cancelled') return;
        if (responses) {
          if (!sentRole) await openResponse();
          await closeResponse(outcome.text);
        } else if (endpoint === 'chat.completions') {
          if (!sentRole) await roleChunk();
          await chunk({ index: task.index, delta: {}, logprobs: null, finish_reason: outcome.finishReason });
        } else {
          await chunk({ index: task.index, text: '', logprobs: null, finish_reason: outcome.finishReason });
        }
      }
    };

    const errorEvent = (error: GatewayError) =>
      (responses
        ? (value: Record<string, unknown>) => typed('error', value.error as Record<string, unknown>)
        : events.event)({
        error: {
          message:
            error.statusCode >= 500 ? (SERVER_ERROR_MESSAGES[error.code] ?? 'internal error') : error.message,
          type: error.type,
          param: error.param,
          code: error.code,
        },
      });

    const finish = async (failure: unknown): Promise<void> => {
      // What was streamed was issued: record it, even when the stream was cut short.
      const issued = results.filter(
        (result) => result.tokens.length > 0 || result.finishReason !== 'cancelled',
      );
      let ids: string[] | null = null;
      let recordError: GatewayError | null = null;
      try {
        ids = await record(request, prepared, completionId, issued);
        // Streams are audited after the fact, flag only: their text has already been sent.
        monitoring.observeCompletion(request, prepared, issued, completionId);
      } catch (error) {
        recordError = error as GatewayError;
      }
      const cancelledReason = signal.aborted ? signal.reason : null;
      const problem =
        recordError ??
        (failure !== null
          ? failure instanceof GatewayError
            ? failure
            : new GatewayError(500, 'TM_ERR_INTERNAL', 'internal error', { cause: failure })
          : cancelledReason instanceof GatewayError
            ? cancelledReason
            : null);
      const usage = countUsage(prepared, results);
      if (problem !== null) {
        if (failure !== null && !(failure instanceof GatewayError && failure.statusCode < 500)) {
          request.log.error({ err: failure }, 'stream failed');
        }
        fastify.metrics.completions.inc({ endpoint, stream: 'true', outcome: problem.code });
        await errorEvent(problem);
      } else if (signal.aborted) {
        fastify.metrics.completions.inc({ endpoint, stream: 'true', outcome: 'cancelled' });
      } else {
        fastify.metrics.completions.inc({ endpoint, stream: 'true', outcome: 'ok' });
        const tracemark = shaper.tracemarkInfo(ids ?? [], results);
        if (responses) {
          const body = shaper.responseBody(prepared, completionId, created, results, ids ?? []);
          await typed(body.status === 'incomplete' ? 'response.incomplete' : 'response.completed', {
            response: body,
          });
          events.end();
          return;
        }
        if (prepared.includeUsage) {
          await events.event({ ...common, object, choices: [], usage, tracemark });
        } else {
          await events.write(`: tracemark ${JSON.stringify(tracemark)}\n\n`);
        }
        await events.write('data: [DONE]\n\n');
      }
      events.end();
    };

    let failure: unknown = null;
    const production = produce().catch((error: unknown) => {
      failure = error;
    });
    // Nothing is sent until the first token (or an error): an upstream that is down is a plain 502.
    await Promise.race([events.started, production]);
    if (!events.hasStarted() && failure !== null) {
      fastify.metrics.activeStreams.dec();
      throw failure;
    }
    hooks.handOff();
    reply
      .code(200)
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('x-accel-buffering', 'no');
    const sent = reply.send(events.output);
    events.piped();
    // A client that goes away unpipes the body: a write waiting for it to drain would wait for good, so
    // the body goes too (what was sent is still recorded by `finish`).
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) events.output.destroy();
    });
    void production
      .then(() => finish(failure))
      .catch((error: unknown) => {
        request.log.error({ err: error }, 'stream finalization failed');
        events.output.destroy();
      })
      .finally(() => {
        fastify.metrics.activeStreams.dec();
        return hooks.cleanup();
      });
    return sent;
  };

  return handle;
}
