/**
 * Request → prepared completion: the fields a client may send, the ones that would weaken the mark
 * (refused, never silently dropped), limits, and the prompts tokenized on a work thread.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest, GatewayError, onClientInput } from '../errors.ts';
import { formatChatPrompt, messageText, type RequestMessage } from '../prompt.ts';
import type { Endpoint } from '../storage/types.ts';
import type { Body, PreparedCompletion, PreparedPrompt } from './types.ts';

/** The sampler defaults of `tracemark generate`, so the same prompt reads the same from either. */
export const DEFAULT_TEMPERATURE = 0.8;
export const DEFAULT_TOP_P = 0.95;

/**
 * Fields that would disable or counter the watermark on some engine (OpenAI, vLLM, SGLang, TGI,
 * llama.cpp, transformers), substitute a key, or hand out soft labels: refused, never silently dropped, so
 * a client knows its request was not honoured. In engine-native mode they matter twice: the engine marks,
 * and these are the fields its OpenAI-compatible server reads to turn its mark off (SGLang's `watermark`
 * object with `enabled: false` or its own `key`; `top_k: 1`, which SGLang samples without the mark;
 * `use_beam_search`, which bypasses vLLM's sampler; logits processors and structured outputs, which
 * replace or constrain the distribution the mark is drawn from). The upstream body is built from an
 * allow-list as well (upstream-mark/engine-upstream.ts).
 */
export const WATERMARK_WEAKENING_FIELDS: readonly string[] = [
  'logit_bias',
  'watermark',
  'watermarking',
  'watermark_config',
  'watermark_key',
  'watermark_key_b',
  'no_watermark',
  'disable_watermark',
  'logits_processors',
  'logits_processor',
  'vllm_xargs',
  'extra_body',
  'extra_args',
  'custom_logit_processor',
  'custom_params',
  'sampling_params',
  'allowed_token_ids',
  'bad_words',
  'guided_json',
  'guided_regex',
  'guided_choice',
  'guided_grammar',
  'guided_decoding_backend',
  'guided_whitespace_pattern',
  'structured_outputs',
  'structural_tag',
  'grammar',
  'json_schema',
  'regex',
  'ebnf',
  'use_beam_search',
  'top_k',
  'min_p',
  'n_probs',
  'top_n_tokens',
  'prompt_logprobs',
  'return_tokens_as_token_ids',
];

/** Values of a weakening field that change nothing (default: absent, null, false or an empty object). */
const HARMLESS_VALUES: Readonly<Record<string, (value: unknown) => boolean>> = {
  // `watermark: true` asks for what every completion gets; an object may carry `enabled: false` or a key.
  watermark: (value) => value === true || !isPresent(value),
  top_k: (value) => !isPresent(value) || value === 0 || value === -1,
  min_p: (value) => !isPresent(value) || value === 0,
};

export function isPresent(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value === 'object' && !Array.isArray(value) && Object.keys(value as object).length === 0)
    return false;
  return true;
}

export function checkWeakeningFields(body: unknown): void {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return;
  for (const field of WATERMARK_WEAKENING_FIELDS) {
    const value = (body as Body)[field];
    const harmless = HARMLESS_VALUES[field] ?? ((v: unknown) => !isPresent(v) || v === false);
    if (!harmless(value)) {
      throw badRequest(
        'TM_ERR_WATERMARK_OPT_OUT',
        `"${field}" is not accepted: this gateway watermarks every completion and refuses fields that would weaken or bypass the watermark`,
        field,
      );
    }
  }
}

/** The Responses API's `instructions` and `input` as chat messages (text parts only). */
function responsesMessages(body: Body): { role: string; content: string }[] {
  const messages: { role: string; content: string }[] = [];
  if (typeof body.instructions === 'string' && body.instructions !== '') {
    messages.push({ role: 'system', content: body.instructions });
  }
  const input = body.input as string | { type?: string; role: string; content: unknown }[];
  if (typeof input === 'string') {
    messages.push({ role: 'user', content: input });
    return messages;
  }
  input.forEach((item, index) => {
    if (item.type !== undefined && item.type !== 'message') {
      throw unsupported(
        `input[${index}]`,
        `input[${index}]: only message items are supported, got "${item.type}"`,
      );
    }
    const content = item.content;
    if (typeof content === 'string') {
      messages.push({ role: item.role, content });
      return;
    }
    const parts = (content ?? []) as { type: string; text?: string }[];
    const text = parts
      .map((part, partIndex) => {
        const isText = part.type === 'input_text' || part.type === 'output_text' || part.type === 'text';
        if (!isText || typeof part.text !== 'string') {
          throw unsupported(
            `input[${index}].content`,
            `input[${index}].content[${partIndex}]: only text parts are supported, got "${part.type}"`,
          );
        }
        return part.text;
      })
      .join('');
    messages.push({ role: item.role, content: text });
  });
  return messages;
}

function unsupported(param: string, message: string): GatewayError {
  return badRequest('TM_ERR_UNSUPPORTED_PARAMETER', message, param);
}

/** Non-negative safe integer for the sampler's generator (OpenAI seeds are any 64-bit integer). */
function normalizeSeed(seed: number): number {
  return Math.abs(Math.trunc(seed)) % Number.MAX_SAFE_INTEGER;
}

/** Builds the stage that turns a request's body into a prepared completion. */
export type RequestStage = (
  endpoint: Endpoint,
  body: Body,
  request: FastifyRequest,
) => Promise<PreparedCompletion>;

export function createRequestStage(fastify: FastifyInstance): RequestStage {
  const { config, backend } = fastify.gateway;
  const tokenizer = backend.tokenizer;

  // Long prompts are tokenized on a work thread, within the per-request work budget (src/work/pool.ts).
  const encodePrompt = (text: string, param: string) =>
    fastify.gateway.work.run({ kind: 'encode', text, param });

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

  return async (endpoint: Endpoint, body: Body, request: FastifyRequest): Promise<PreparedCompletion> => {
    fastify.gateway.monitoring.checkAccount(request.apiKey!);
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
    // Each endpoint reads only the fields its schema checked: a field another endpoint takes (max_tokens, n,
    // stop on /v1/responses; max_output_tokens on the others) is unknown here, and unknown fields are ignored.
    const limitField =
      endpoint === 'responses'
        ? 'max_output_tokens'
        : endpoint === 'chat.completions' && body.max_completion_tokens != null
          ? 'max_completion_tokens'
          : 'max_tokens';
    const requested = (body[limitField] ?? null) as number | null;
    const maxTokens = requested ?? config.defaultMaxTokens;
    if (maxTokens > config.maxTokensLimit) {
      throw badRequest(
        'TM_ERR_MAX_TOKENS',
        `${limitField} is ${maxTokens}; this gateway allows at most ${config.maxTokensLimit}`,
        limitField,
      );
    }
    const n = endpoint === 'responses' ? 1 : ((body.n as number | null | undefined) ?? 1);
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
    if (endpoint === 'responses') {
      if (isPresent(body.previous_response_id)) {
        throw unsupported(
          'previous_response_id',
          'previous_response_id is not supported: this gateway stores no conversation state; send the whole input',
        );
      }
      const textFormat = (body.text as { format?: { type?: string } } | null | undefined)?.format;
      if (textFormat != null && textFormat.type !== 'text') {
        throw unsupported('text', 'only text.format {"type":"text"} is supported');
      }
      const messages = responsesMessages(body);
      const text = formatChatPrompt(messages);
      prompts = [{ text, tokens: await encodePrompt(text, 'input'), messages }];
    } else if (endpoint === 'chat.completions') {
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
          endpoint === 'chat.completions' ? 'messages' : endpoint === 'responses' ? 'input' : 'prompt',
        );
      }
    }
    // Prompt-injection screening (TRACEMARK_INPUT_POLICY), once the limits passed: redacted prompts are encoded again.
    const screened = await fastify.gateway.monitoring.screenPrompts(request, endpoint, prompts);
    if (screened !== null) {
      prompts = await Promise.all(
        screened.prompts.map(async (prompt, index) =>
          screened.changed[index] ? { ...prompt, tokens: await encodePrompt(prompt.text, 'prompt') } : prompt,
        ),
      );
    }
    const engine = fastify.gateway.engineNative;
    if (engine !== null && topLogprobs !== null) {
      // An engine's logprobs are those of its distribution before the mark (SGLang documents it): they
      // would hand out what the mark hides.
      throw unsupported(
        'logprobs',
        'logprobs are not returned in engine-native mode: the engine reports its distribution before its watermark',
      );
    }
    if (engine?.engineKey && body.temperature === 0) {
      throw badRequest(
        'TM_ERR_WATERMARK_OPT_OUT',
        '"temperature": 0 is not accepted: the serving engine samples greedy requests without its watermark (vLLM, SGLang); send a temperature above 0',
        'temperature',
      );
    }
    if (topLogprobs !== null && !request.apiKey!.scopes.includes('logprobs')) {
      throw new GatewayError(
        403,
        'TM_ERR_LOGPROBS_FORBIDDEN',
        'logprobs are only returned to API keys with the "logprobs" scope',
        { param: 'logprobs' },
      );
    }
    if (topLogprobs !== null && body.stream !== true) {
      const entries = maxTokens * choices * (topLogprobs + 1);
      if (entries > config.maxLogprobEntries) {
        throw badRequest(
          'TM_ERR_MAX_TOKENS',
          `a response without stream carries at most ${config.maxLogprobEntries} log-probabilities, and this one may carry ${entries} (${maxTokens} tokens × ${choices} choices × ${topLogprobs + 1}): send "stream": true, or ask for fewer tokens, choices or top logprobs`,
          endpoint === 'chat.completions' ? 'top_logprobs' : 'logprobs',
        );
      }
    }
    const stop = endpoint === 'responses' ? null : (body.stop as string | string[] | null | undefined);
    const options =
      endpoint === 'responses'
        ? null
        : (body.stream_options as { include_usage?: boolean | null } | null | undefined);
    return {
      endpoint,
      model,
      prompts,
      n,
      maxTokens,
      temperature: (body.temperature as number | null | undefined) ?? DEFAULT_TEMPERATURE,
      topP: (body.top_p as number | null | undefined) ?? DEFAULT_TOP_P,
      seed: endpoint !== 'responses' && typeof body.seed === 'number' ? normalizeSeed(body.seed) : null,
      stops: stop == null ? [] : typeof stop === 'string' ? [stop] : stop,
      stream: body.stream === true,
      includeUsage: options?.include_usage === true,
      topLogprobs,
      account: request.apiKey!.account,
    };
  };
}
