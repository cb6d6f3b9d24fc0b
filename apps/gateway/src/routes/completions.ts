/**
 * POST /v1/chat/completions and POST /v1/completions, in the OpenAI shapes. Every output is watermarked by
 * the sampler and appended to the issuance log before it is returned: a non-streamed completion whose record
 * cannot be written is withheld (500 TM_ERR_ISSUANCE_LOG); a stream is recorded when it ends, and if that
 * fails the stream ends with an error event instead of `data: [DONE]`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { createRandom, log10BinomialSf, type Watermarker, zScore } from '@tracemark/core';
import { minhashSignature } from '@tracemark/provenance';
import { normalizeText } from '@tracemark/tokenizers';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { ChatMessage, ChoiceRequest, GeneratedStep } from '../backends/types.ts';
import { badRequest, GatewayError, onClientInput, SERVER_ERROR_MESSAGES } from '../errors.ts';
import { type ChoiceOutcome, runChoice } from '../generation/run-choice.ts';
import { formatChatPrompt, messageText, type RequestMessage } from '../prompt.ts';
import { secondsUntilReset } from '../quota.ts';
import {
  chatRequestSchema,
  chatResponseSchema,
  completionRequestSchema,
  completionResponseSchema,
  errorResponses,
  eventStreamResponse,
} from '../schemas.ts';
import type { Endpoint, IssuanceInput } from '../storage/types.ts';

/** The sampler defaults of `tracemark generate`, so the same prompt reads the same from either. */
export const DEFAULT_TEMPERATURE = 0.8;
export const DEFAULT_TOP_P = 0.95;

/**
 * Fields that would disable or counter the watermark on some engine (OpenAI, vLLM, TGI, llama.cpp), or hand
 * out soft labels: refused, never silently dropped, so a client knows its request was not honoured.
 */
export const WATERMARK_WEAKENING_FIELDS: readonly string[] = [
  'logit_bias',
  'watermark',
  'no_watermark',
  'disable_watermark',
  'logits_processors',
  'allowed_token_ids',
  'bad_words',
  'guided_json',
  'guided_regex',
  'guided_choice',
  'guided_grammar',
  'guided_decoding_backend',
  'structured_outputs',
  'grammar',
  'json_schema',
  'n_probs',
  'top_n_tokens',
  'prompt_logprobs',
];

type Body = Record<string, unknown>;

interface PreparedPrompt {
  readonly text: string;
  readonly tokens: Uint32Array;
  readonly messages: readonly ChatMessage[] | null;
}

interface PreparedCompletion {
  readonly endpoint: Endpoint;
  readonly model: string;
  readonly prompts: readonly PreparedPrompt[];
  readonly n: number;
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP: number;
  readonly seed: number | null;
  readonly stops: readonly string[];
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly topLogprobs: number | null;
}

interface ChoiceResult extends ChoiceOutcome {
  readonly index: number;
  readonly prompt: PreparedPrompt;
}

/**
 * The mark's expected strength in one choice, from the distributions its tokens were sampled from:
 * E[green] = Σ P(green) (core `stepStrength`), the z and log10 p that a detector would report for
 * that many greens among all the choice's tokens (an upper estimate: repeated (seed, token) pairs and a
 * prompt's pairs are scored once or not at all), and the spike-entropy sum of KGW (Definition 4.1).
 */
export interface WatermarkStrength {
  readonly index: number;
  readonly tokens: number;
  readonly expected_green_fraction: number;
  readonly expected_z: number;
  readonly expected_log10_p: number;
  readonly spike_entropy_sum: number;
}

export function watermarkStrength(
  result: Pick<ChoiceResult, 'index' | 'tokens' | 'strength'>,
  watermarker: Watermarker,
): WatermarkStrength {
  const tokens = result.tokens.length;
  const gamma = watermarker.scheme.gammaEffective;
  const expectedGreen = result.strength.expectedGreen;
  const rounded = Math.min(tokens, Math.round(expectedGreen));
  return {
    index: result.index,
    tokens,
    expected_green_fraction: tokens === 0 ? 0 : expectedGreen / tokens,
    expected_z: tokens === 0 ? 0 : zScore(expectedGreen, tokens, gamma),
    expected_log10_p: tokens === 0 ? 0 : log10BinomialSf(rounded, tokens, gamma),
    spike_entropy_sum: result.strength.spikeEntropySum,
  };
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

function isPresent(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value === 'object' && !Array.isArray(value) && Object.keys(value as object).length === 0)
    return false;
  return true;
}

export function checkWeakeningFields(body: unknown): void {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return;
  for (const field of WATERMARK_WEAKENING_FIELDS) {
    const value = (body as Body)[field];
    if (field === 'watermark' ? value === false || value === 'false' : isPresent(value) && value !== false) {
      throw badRequest(
        'TM_ERR_WATERMARK_OPT_OUT',
        `"${field}" is not accepted: this gateway watermarks every completion and refuses fields that would weaken or bypass the watermark`,
        field,
      );
    }
  }
}

function unsupported(param: string, message: string): GatewayError {
  return badRequest('TM_ERR_UNSUPPORTED_PARAMETER', message, param);
}

/** Non-negative safe integer for the sampler's generator (OpenAI seeds are any 64-bit integer). */
function normalizeSeed(seed: number): number {
  return Math.abs(Math.trunc(seed)) % Number.MAX_SAFE_INTEGER;
}

const completionsRoutes: FastifyPluginAsync = async (fastify: FastifyInstance) => {
  const { config, backend, storage, watermarker, keyEpoch } = fastify.gateway;
  const tokenizer = backend.tokenizer;
  const active = fastify.gateway.activeGenerations;

  // Long prompts are tokenized on a work thread, within the per-request work budget (src/work/pool.ts).
  const encodePrompt = (text: string, param: string) =>
    fastify.gateway.work.run({ kind: 'encode', text, param });

  const prepare = async (
    endpoint: Endpoint,
    body: Body,
    request: FastifyRequest,
  ): Promise<PreparedCompletion> => {
    const model = body.model as string;
    if (!backend.models().some((info) => info.id === model)) {
      throw new GatewayError(
        404,
        'TM_ERR_UNKNOWN_MODEL',
        `the model "${model}" does not exist here; GET /v1/models lists ${backend
          .models()
          .map((info) => `"${info.id}"`)
          .join(', ')}`,
        { param: 'model' },
      );
    }
    const requested = (body.max_completion_tokens ?? body.max_tokens ?? null) as number | null;
    const maxTokens = requested ?? config.defaultMaxTokens;
    if (maxTokens > config.maxTokensLimit) {
      throw badRequest(
        'TM_ERR_MAX_TOKENS',
        `max_tokens is ${maxTokens}; this gateway allows at most ${config.maxTokensLimit}`,
        body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens',
      );
    }
    const n = (body.n as number | null | undefined) ?? 1;
    if ((body.frequency_penalty ?? 0) !== 0)
      throw unsupported('frequency_penalty', 'frequency_penalty is not supported; omit it or send 0');
    if ((body.presence_penalty ?? 0) !== 0)
      throw unsupported('presence_penalty', 'presence_penalty is not supported; omit it or send 0');
    for (const field of ['tools', 'functions']) {
      if (
        isPresent(body[field]) &&
        !(Array.isArray(body[field]) && (body[field] as unknown[]).length === 0)
      ) {
        throw unsupported(field, `${field} (tool calling) is not supported by this gateway`);
      }
    }
    const format = body.response_format as { type?: string } | null | undefined;
    if (format != null && format.type !== 'text') {
      throw unsupported('response_format', 'only response_format {"type":"text"} is supported');
    }
    let topLogprobs: number | null = null;
    let prompts: PreparedPrompt[];
    if (endpoint === 'chat.completions') {
      if (body.logprobs === true) topLogprobs = (body.top_logprobs as number | null | undefined) ?? 0;
      const messages = (body.messages as RequestMessage[]).map((message, index) => ({
        role: message.role,
        content: messageText(message, index),
      }));
      const text = formatChatPrompt(messages);
      prompts = [{ text, tokens: await encodePrompt(text, 'messages'), messages }];
    } else {
      if (body.logprobs != null) topLogprobs = body.logprobs as number;
      if (body.echo === true) throw unsupported('echo', 'echo is not supported');
      if (isPresent(body.suffix)) throw unsupported('suffix', 'suffix (insertion) is not supported');
      if (((body.best_of as number | null | undefined) ?? 1) > 1)
        throw unsupported('best_of', 'best_of is not supported; use n');
      prompts = await legacyPrompts(body.prompt);
    }
    const choices = prompts.length * n;
    if (choices > config.maxChoices) {
      throw badRequest(
        'TM_ERR_TOO_MANY_CHOICES',
        `${choices} choices requested; this gateway allows at most ${config.maxChoices} per request`,
        'n',
      );
    }
    for (const prompt of prompts) {
      if (prompt.tokens.length > config.maxPromptTokens) {
        throw badRequest(
          'TM_ERR_PROMPT_TOO_LONG',
          `the prompt has ${prompt.tokens.length} tokens; this gateway allows at most ${config.maxPromptTokens}`,
          endpoint === 'chat.completions' ? 'messages' : 'prompt',
        );
      }
    }
    if (topLogprobs !== null && !request.apiKey!.scopes.includes('logprobs')) {
      throw new GatewayError(
        403,
        'TM_ERR_LOGPROBS_FORBIDDEN',
        'logprobs are only returned to API keys with the "logprobs" scope',
        { param: 'logprobs' },
      );
    }
    const stop = body.stop as string | string[] | null | undefined;
    const options = body.stream_options as { include_usage?: boolean | null } | null | undefined;
    return {
      endpoint,
      model,
      prompts,
      n,
      maxTokens,
      temperature: (body.temperature as number | null | undefined) ?? DEFAULT_TEMPERATURE,
      topP: (body.top_p as number | null | undefined) ?? DEFAULT_TOP_P,
      seed: typeof body.seed === 'number' ? normalizeSeed(body.seed) : null,
      stops: stop == null ? [] : typeof stop === 'string' ? [stop] : stop,
      stream: body.stream === true,
      includeUsage: options?.include_usage === true,
      topLogprobs,
    };
  };

  const legacyPrompts = async (prompt: unknown): Promise<PreparedPrompt[]> => {
    const one = async (value: unknown, index: number): Promise<PreparedPrompt> => {
      if (typeof value === 'string')
        return { text: value, tokens: await encodePrompt(value, 'prompt'), messages: null };
      const ids = value as number[];
      ids.forEach((id, position) => {
        if (!tokenizer.isOrdinaryToken(id)) {
          throw badRequest(
            'TM_ERR_INVALID_TOKENS',
            `prompt${index < 0 ? '' : `[${index}]`}[${position}] is ${id}, not an ordinary token id of ${tokenizer.id} (0 … ${tokenizer.ordinaryTokenCount - 1})`,
            'prompt',
          );
        }
      });
      return {
        text: onClientInput('prompt', () => tokenizer.decode(ids)),
        tokens: Uint32Array.from(ids),
        messages: null,
      };
    };
    if (typeof prompt === 'string') return [await one(prompt, -1)];
    const list = prompt as unknown[];
    if (typeof list[0] === 'number') return [await one(list, -1)];
    return Promise.all(list.map((item, index) => one(item, index)));
  };

  /** Deadline, client disconnect and shutdown all abort the same signal, each with its own reason. */
  const lifetime = (reply: FastifyReply) => {
    const controller = new AbortController();
    active.add(controller);
    const timer = setTimeout(
      () =>
        controller.abort(
          new GatewayError(
            504,
            'TM_ERR_TIMEOUT',
            `the completion took longer than ${config.completionTimeoutMs} ms`,
          ),
        ),
      config.completionTimeoutMs,
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
  };

  const reserveQuota = async (request: FastifyRequest, prepared: PreparedCompletion) => {
    const key = request.apiKey!;
    const limit = key.dailyTokenQuota ?? config.dailyTokenQuota;
    const amount = prepared.maxTokens * prepared.prompts.length * prepared.n;
    let reservation: Awaited<ReturnType<typeof fastify.quota.reserve>>;
    try {
      reservation = await fastify.quota.reserve(key.id, amount, limit);
    } catch (error) {
      throw new GatewayError(503, 'TM_ERR_STORAGE_UNAVAILABLE', 'the quota store is unavailable', {
        retryAfterSeconds: 5,
        cause: error,
      });
    }
    if (!reservation.granted) {
      fastify.metrics.rejected.inc({ reason: 'quota' });
      const remaining = Math.max(0, limit - reservation.used);
      throw new GatewayError(
        429,
        'TM_ERR_QUOTA_EXCEEDED',
        `daily token quota of ${limit} reached: this request may use up to ${amount} tokens and ${remaining} remain today (quotas reset at 00:00 UTC)`,
        { retryAfterSeconds: secondsUntilReset() },
      );
    }
    let settled = false;
    return async (used: number) => {
      if (settled) return;
      settled = true;
      await fastify.quota.adjust(key.id, reservation.day, used - amount).catch((error: unknown) => {
        request.log.warn({ err: error }, 'could not settle the token quota');
      });
    };
  };

  const choiceRequest = (
    prepared: PreparedCompletion,
    prompt: PreparedPrompt,
    index: number,
    signal: AbortSignal,
  ): ChoiceRequest => ({
    model: prepared.model,
    promptTokens: prompt.tokens,
    messages: prompt.messages,
    maxTokens: prepared.maxTokens,
    temperature: prepared.temperature,
    topP: prepared.topP,
    random: createRandom(
      prepared.seed === null ? undefined : (prepared.seed + index) % Number.MAX_SAFE_INTEGER,
    ),
    watermarker,
    signal,
    topLogprobs: prepared.topLogprobs,
  });

  const issuanceRecords = (
    request: FastifyRequest,
    prepared: PreparedCompletion,
    completionId: string,
    results: readonly ChoiceResult[],
  ): IssuanceInput[] => {
    const createdAt = new Date().toISOString();
    return results.map((result) => ({
      id: `iss_${randomBytes(12).toString('hex')}`,
      completionId,
      choiceIndex: result.index,
      createdAt,
      apiKeyId: request.apiKey!.id,
      account: request.apiKey!.account,
      endpoint: prepared.endpoint,
      model: prepared.model,
      backend: backend.kind,
      watermarkKeyId: watermarker.keyId,
      keyEpoch,
      promptSha256: sha256(result.prompt.text),
      outputSha256: sha256(result.text),
      normalizedOutputSha256: sha256(normalizeText(result.text)),
      // Shingles of the text's canonical tokens: what POST /v1/verify computes from a text it is sent.
      minhash: result.text === '' ? null : minhashSignature(tokenizer.encodeFast(result.text)),
      numPromptTokens: result.prompt.tokens.length,
      numTokens: result.tokens.length,
      outputTokens: config.issuanceTokenRetentionDays === 0 ? null : Uint32Array.from(result.tokens),
      finishReason: result.finishReason,
    }));
  };

  /** Appends the records; the completion is withheld (500) if they cannot be written. */
  const record = async (request: FastifyRequest, records: IssuanceInput[]): Promise<string[]> => {
    if (records.length === 0) return [];
    try {
      const stored = await storage.appendIssuance(records);
      fastify.metrics.issuanceRecords.inc(stored.length);
      return stored.map((entry) => entry.id);
    } catch (error) {
      fastify.metrics.issuanceFailures.inc();
      request.log.error({ err: error }, 'issuance log write failed; completion withheld');
      throw new GatewayError(500, 'TM_ERR_ISSUANCE_LOG', 'the completion could not be recorded', {
        cause: error,
      });
    }
  };

  const usageOf = (prepared: PreparedCompletion, results: readonly ChoiceResult[]) => {
    const promptTokens = prepared.prompts.reduce((sum, prompt) => sum + prompt.tokens.length, 0);
    const completionTokens = results.reduce((sum, result) => sum + result.tokens.length, 0);
    return {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    };
  };

  const pieces = (tokens: readonly number[]) => tokenizer.decodeTokens(tokens);
  const bytesOf = (text: string) => Array.from(Buffer.from(text, 'utf8'));

  const chatLogprobs = (steps: readonly GeneratedStep[]) => {
    const own = pieces(steps.map((step) => step.token));
    return {
      content: steps.map((step, i) => {
        const topPieces = pieces((step.top ?? []).map((entry) => entry.token));
        return {
          token: own[i]!,
          logprob: step.logprob ?? 0,
          bytes: bytesOf(own[i]!),
          top_logprobs: (step.top ?? []).map((entry, j) => ({
            token: topPieces[j]!,
            logprob: entry.logprob,
            bytes: bytesOf(topPieces[j]!),
          })),
        };
      }),
      refusal: null,
    };
  };

  const legacyLogprobs = (steps: readonly GeneratedStep[], startOffset: number) => {
    const own = pieces(steps.map((step) => step.token));
    let offset = startOffset;
    const textOffset = own.map((piece) => {
      const at = offset;
      offset += piece.length;
      return at;
    });
    return {
      tokens: own,
      token_logprobs: steps.map((step) => step.logprob ?? 0),
      top_logprobs: steps.map((step) => {
        const topPieces = pieces((step.top ?? []).map((entry) => entry.token));
        const entries: Record<string, number> = {};
        (step.top ?? []).forEach((entry, j) => {
          entries[topPieces[j]!] ??= entry.logprob;
        });
        return entries;
      }),
      text_offset: textOffset,
    };
  };

  const tracemarkInfo = (ids: readonly string[], results: readonly ChoiceResult[]) => ({
    watermark_key_id: watermarker.keyId,
    key_epoch: keyEpoch,
    issuance_ids: ids,
    watermark_strength: results.map((result) => watermarkStrength(result, watermarker)),
  });

  const handle = async (endpoint: Endpoint, request: FastifyRequest, reply: FastifyReply) => {
    const body = request.body as Body;
    const prepared = await prepare(endpoint, body, request);
    const settle = await reserveQuota(request, prepared);
    const completionId = `${endpoint === 'chat.completions' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    const life = lifetime(reply);
    const tasks: { prompt: PreparedPrompt; index: number }[] = [];
    prepared.prompts.forEach((prompt, promptIndex) => {
      for (let i = 0; i < prepared.n; i++) tasks.push({ prompt, index: promptIndex * prepared.n + i });
    });
    const onToken = () => fastify.metrics.generatedTokens.inc();
    const streamLabel = String(prepared.stream);
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
          const outcome = await runChoice({
            backend,
            request: choiceRequest(prepared, task.prompt, task.index, life.signal),
            stops: prepared.stops,
            onToken,
          });
          used += outcome.tokens.length;
          results.push({ ...outcome, index: task.index, prompt: task.prompt });
          if (life.signal.aborted) break;
        }
        if (life.signal.aborted) {
          const reason = life.signal.reason;
          fastify.metrics.completions.inc({ endpoint, stream: streamLabel, outcome: 'cancelled' });
          if (reason instanceof GatewayError) throw reason;
          return reply; // The client went away: nothing was returned, so nothing is recorded.
        }
        const ids = await record(request, issuanceRecords(request, prepared, completionId, results));
        const usage = usageOf(prepared, results);
        fastify.metrics.completions.inc({ endpoint, stream: streamLabel, outcome: 'ok' });
        fastify.metrics.promptTokens.inc({ endpoint }, usage.prompt_tokens);
        fastify.metrics.completionTokens.inc({ endpoint }, usage.completion_tokens);
        const common = {
          id: completionId,
          created,
          model: prepared.model,
          system_fingerprint: fingerprint(watermarker.keyId),
        };
        if (endpoint === 'chat.completions') {
          return reply.send({
            ...common,
            object: 'chat.completion',
            choices: results.map((result) => ({
              index: result.index,
              message: { role: 'assistant', content: result.text, refusal: null },
              logprobs: prepared.topLogprobs === null ? null : chatLogprobs(result.steps),
              finish_reason: result.finishReason,
            })),
            usage,
            tracemark: tracemarkInfo(ids, results),
          });
        }
        return reply.send({
          ...common,
          object: 'text_completion',
          choices: results.map((result) => ({
            index: result.index,
            text: result.text,
            logprobs: prepared.topLogprobs === null ? null : legacyLogprobs(result.steps, 0),
            finish_reason: result.finishReason,
          })),
          usage,
          tracemark: tracemarkInfo(ids, results),
        });
      }
      return await stream(
        endpoint,
        request,
        reply,
        prepared,
        tasks,
        completionId,
        created,
        life.signal,
        onToken,
        {
          addUsed: (n) => {
            used += n;
          },
          handOff: () => {
            handedOff = true;
          },
          cleanup,
        },
      );
    } finally {
      if (!handedOff) await cleanup();
    }
  };

  const stream = async (
    endpoint: Endpoint,
    request: FastifyRequest,
    reply: FastifyReply,
    prepared: PreparedCompletion,
    tasks: readonly { prompt: PreparedPrompt; index: number }[],
    completionId: string,
    created: number,
    signal: AbortSignal,
    onToken: () => void,
    hooks: { addUsed: (tokens: number) => void; handOff: () => void; cleanup: () => Promise<void> },
  ): Promise<FastifyReply> => {
    const { addUsed } = hooks;
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
    const common = {
      id: completionId,
      created,
      model: prepared.model,
      system_fingerprint: fingerprint(watermarker.keyId),
    };
    const usageField = prepared.includeUsage ? { usage: null } : {};
    const event = (value: unknown) => write(`data: ${JSON.stringify(value)}\n\n`);
    const chunk = (choice: Record<string, unknown>) =>
      event(
        endpoint === 'chat.completions'
          ? { ...common, object: 'chat.completion.chunk', choices: [choice], ...usageField }
          : { ...common, object: 'text_completion', choices: [choice], ...usageField },
      );

    fastify.metrics.activeStreams.inc();
    const results: ChoiceResult[] = [];
    const produce = async (): Promise<void> => {
      for (const task of tasks) {
        let sentRole = false;
        let textOffset = 0;
        const outcome = await runChoice({
          backend,
          request: choiceRequest(prepared, task.prompt, task.index, signal),
          stops: prepared.stops,
          onToken,
          onDelta: async (delta, steps) => {
            if (endpoint === 'chat.completions') {
              if (!sentRole) {
                sentRole = true;
                await chunk({
                  index: task.index,
                  delta: { role: 'assistant', content: '' },
                  logprobs: null,
                  finish_reason: null,
                });
              }
              await chunk({
                index: task.index,
                delta: { content: delta },
                logprobs: prepared.topLogprobs === null ? null : chatLogprobs(steps),
                finish_reason: null,
              });
            } else {
              await chunk({
                index: task.index,
                text: delta,
                logprobs: prepared.topLogprobs === null ? null : legacyLogprobs(steps, textOffset),
                finish_reason: null,
              });
              textOffset += delta.length;
            }
          },
        });
        addUsed(outcome.tokens.length);
        results.push({ ...outcome, index: task.index, prompt: task.prompt });
        if (outcome.finishReason === 'cancelled') return;
        if (endpoint === 'chat.completions') {
          if (!sentRole)
            await chunk({
              index: task.index,
              delta: { role: 'assistant', content: '' },
              logprobs: null,
              finish_reason: null,
            });
          await chunk({ index: task.index, delta: {}, logprobs: null, finish_reason: outcome.finishReason });
        } else {
          await chunk({ index: task.index, text: '', logprobs: null, finish_reason: outcome.finishReason });
        }
      }
    };

    const errorEvent = (error: GatewayError) =>
      event({
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
        ids = await record(request, issuanceRecords(request, prepared, completionId, issued));
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
      const usage = usageOf(prepared, results);
      fastify.metrics.promptTokens.inc({ endpoint }, usage.prompt_tokens);
      fastify.metrics.completionTokens.inc({ endpoint }, usage.completion_tokens);
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
        if (prepared.includeUsage) {
          await event(
            endpoint === 'chat.completions'
              ? {
                  ...common,
                  object: 'chat.completion.chunk',
                  choices: [],
                  usage,
                  tracemark: tracemarkInfo(ids ?? [], results),
                }
              : {
                  ...common,
                  object: 'text_completion',
                  choices: [],
                  usage,
                  tracemark: tracemarkInfo(ids ?? [], results),
                },
          );
        } else {
          await write(`: tracemark ${JSON.stringify(tracemarkInfo(ids ?? [], results))}\n\n`);
        }
        await write('data: [DONE]\n\n');
      }
      output.end();
    };

    let failure: unknown = null;
    const production = produce().catch((error: unknown) => {
      failure = error;
    });
    // Nothing is sent until the first token (or an error): an upstream that is down is a plain 502.
    await Promise.race([startedPromise, production]);
    if (!started && failure !== null) {
      fastify.metrics.activeStreams.dec();
      throw failure;
    }
    hooks.handOff();
    reply
      .code(200)
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('x-accel-buffering', 'no');
    const sent = reply.send(output);
    piped = true;
    output.emit('drain');
    void production
      .then(() => finish(failure))
      .catch((error: unknown) => {
        request.log.error({ err: error }, 'stream finalization failed');
        output.destroy();
      })
      .finally(() => {
        fastify.metrics.activeStreams.dec();
        return hooks.cleanup();
      });
    return sent;
  };

  const responses = (schema: object) => ({
    200: {
      description: 'The completion (JSON), or with "stream": true a text/event-stream of chunks.',
      content: {
        'application/json': { schema },
        'text/event-stream': { schema: eventStreamResponse },
      },
    },
    ...errorResponses(),
  });

  fastify.post(
    '/v1/chat/completions',
    {
      config: { scope: 'generate' },
      preValidation: async (request) => checkWeakeningFields(request.body),
      schema: {
        summary: 'Create a watermarked chat completion',
        tags: ['completions'],
        security: [{ bearerAuth: [] }],
        body: chatRequestSchema,
        response: responses(chatResponseSchema),
      },
    },
    (request, reply) => handle('chat.completions', request, reply),
  );

  fastify.post(
    '/v1/completions',
    {
      config: { scope: 'generate' },
      preValidation: async (request) => checkWeakeningFields(request.body),
      schema: {
        summary: 'Create a watermarked text completion (legacy)',
        tags: ['completions'],
        security: [{ bearerAuth: [] }],
        body: completionRequestSchema,
        response: responses(completionResponseSchema),
      },
    },
    (request, reply) => handle('completions', request, reply),
  );
};

function fingerprint(keyId: string): string {
  return `fp_${keyId.slice(5, 17)}`;
}

export default completionsRoutes;
