/** The upstream backend as the token-driving tests start it: no key, cl100k, top 20, 8 draft tokens, 10 s. */
import { getTokenizer } from '@tracemark/tokenizers';
import type { Backend } from '../backends/types.ts';
import { createUpstreamBackend, type UpstreamOptions } from '../backends/upstream.ts';

export function startTestUpstreamBackend(
  url: string,
  options: Partial<Omit<UpstreamOptions, 'url'>> = {},
): Promise<Backend> {
  return createUpstreamBackend({
    url,
    apiKey: null,
    model: null,
    api: 'auto',
    topLogprobs: 20,
    draftTokens: 8,
    timeoutMs: 10_000,
    tokenizer: getTokenizer('cl100k_base'),
    ...options,
  });
}
