/**
 * JSON schemas of every request and response. Responses are serialized through them, so a field that is not
 * listed here never reaches a client (no key, hash or internal can leak by accident).
 */

/** A JSON schema, as fastify and @fastify/swagger take it. */
export type JsonSchema = Readonly<Record<string, unknown>>;

/** The schema, or null: a type list when the schema has a single type (clearer errors), else anyOf. */
const nullable = (schema: Record<string, unknown>): Record<string, unknown> =>
  typeof schema.type === 'string'
    ? { ...schema, type: [schema.type, 'null'] }
    : { anyOf: [schema, { type: 'null' }] };
const integer = { type: 'integer' };
const number = { type: 'number' };
const string = { type: 'string' };
const boolean = { type: 'boolean' };

export const openAiErrorSchema: JsonSchema = {
  $id: 'OpenAiError',
  type: 'object',
  description: 'OpenAI error shape with a stable tracemark code.',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['message', 'type', 'param', 'code'],
      properties: {
        message: string,
        type: string,
        param: nullable(string),
        code: { type: 'string', description: 'Stable error code, TM_ERR_…' },
      },
    },
  },
};

export const ERROR_STATUSES = [400, 401, 403, 404, 413, 415, 422, 429, 500, 502, 503, 504] as const;

/** Every error status a route can answer with, all in the OpenAI error shape. */
export function errorResponses(): Record<number, { $ref: string }> {
  return Object.fromEntries(ERROR_STATUSES.map((status) => [status, { $ref: 'OpenAiError#' }]));
}

const stopSchema = nullable({
  anyOf: [
    { type: 'string', maxLength: 256 },
    { type: 'array', maxItems: 4, items: { type: 'string', maxLength: 256 } },
  ],
});

/** Sampling fields common to both endpoints. Limits that depend on the configuration are checked later. */
const samplingProperties = {
  model: { type: 'string', minLength: 1, maxLength: 256 },
  max_tokens: nullable({ type: 'integer', minimum: 1 }),
  temperature: nullable({ type: 'number', minimum: 0, maximum: 2 }),
  top_p: nullable({ type: 'number', exclusiveMinimum: 0, maximum: 1 }),
  n: nullable({ type: 'integer', minimum: 1 }),
  seed: nullable(integer),
  stop: stopSchema,
  stream: nullable(boolean),
  stream_options: nullable({
    type: 'object',
    properties: { include_usage: nullable(boolean), include_obfuscation: nullable(boolean) },
  }),
  user: nullable({ type: 'string', maxLength: 256 }),
  frequency_penalty: nullable({ type: 'number', minimum: -2, maximum: 2 }),
  presence_penalty: nullable({ type: 'number', minimum: -2, maximum: 2 }),
};

const textPart = {
  type: 'object',
  required: ['type'],
  properties: { type: string, text: string },
};

export const chatRequestSchema: JsonSchema = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    ...samplingProperties,
    messages: {
      type: 'array',
      minItems: 1,
      maxItems: 2048,
      items: {
        type: 'object',
        required: ['role'],
        properties: {
          role: { type: 'string', enum: ['system', 'developer', 'user', 'assistant', 'tool', 'function'] },
          content: nullable({ anyOf: [string, { type: 'array', maxItems: 256, items: textPart }] }),
          name: string,
        },
      },
    },
    max_completion_tokens: nullable({ type: 'integer', minimum: 1 }),
    logprobs: nullable(boolean),
    top_logprobs: nullable({ type: 'integer', minimum: 0, maximum: 20 }),
    response_format: nullable({ type: 'object', required: ['type'], properties: { type: string } }),
  },
};

/** POST /v1/responses (the OpenAI Responses API): text input and output, streamed or not. */
export const responsesRequestSchema: JsonSchema = {
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model: samplingProperties.model,
    input: {
      anyOf: [
        { type: 'string' },
        {
          type: 'array',
          minItems: 1,
          maxItems: 2048,
          items: {
            type: 'object',
            required: ['role'],
            properties: {
              type: string,
              role: { type: 'string', enum: ['system', 'developer', 'user', 'assistant'] },
              content: { anyOf: [string, { type: 'array', maxItems: 256, items: textPart }] },
            },
          },
        },
      ],
    },
    instructions: nullable({ type: 'string' }),
    max_output_tokens: nullable({ type: 'integer', minimum: 1 }),
    temperature: samplingProperties.temperature,
    top_p: samplingProperties.top_p,
    stream: samplingProperties.stream,
    user: samplingProperties.user,
    store: nullable(boolean),
    metadata: nullable({ type: 'object' }),
    previous_response_id: nullable(string),
    tools: nullable({ type: 'array' }),
    text: nullable({ type: 'object' }),
  },
};

/** The non-streamed Responses API body (the fields this gateway fills). */
export const responsesResponseSchema: JsonSchema = {
  type: 'object',
  required: ['id', 'object', 'created_at', 'status', 'model', 'output', 'usage'],
  properties: {
    id: string,
    object: { type: 'string', enum: ['response'] },
    created_at: integer,
    status: string,
    model: string,
    output: { type: 'array', items: { type: 'object', additionalProperties: true } },
    output_text: string,
    usage: { type: 'object', additionalProperties: true },
    tracemark: { type: 'object', additionalProperties: true },
  },
};

export const completionRequestSchema: JsonSchema = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: {
    ...samplingProperties,
    prompt: {
      anyOf: [
        string,
        { type: 'array', minItems: 1, maxItems: 128, items: string },
        { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
        {
          type: 'array',
          minItems: 1,
          maxItems: 128,
          items: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
        },
      ],
    },
    logprobs: nullable({ type: 'integer', minimum: 0, maximum: 5 }),
    echo: nullable(boolean),
    suffix: nullable(string),
    best_of: nullable({ type: 'integer', minimum: 1 }),
  },
};

const usageSchema = {
  type: 'object',
  required: ['prompt_tokens', 'completion_tokens', 'total_tokens'],
  properties: { prompt_tokens: integer, completion_tokens: integer, total_tokens: integer },
};

const tracemarkSchema = {
  type: 'object',
  description: 'Provenance: the watermark key id (public) and the issuance-log records of this response.',
  required: ['watermark_key_id', 'issuance_ids'],
  properties: {
    watermark_key_id: string,
    key_epoch: nullable(string),
    issuance_ids: { type: 'array', items: string },
    watermark_strength: {
      type: 'array',
      description:
        'Per choice, the mark’s expected strength from the distributions its tokens were sampled from: expected green fraction, the z and log10 p a detector would report for it (an upper estimate: repeats are scored once), and the spike-entropy sum. A choice whose expected_log10_p is above log10(α) is provable only through the issuance log.',
      items: {
        type: 'object',
        required: [
          'index',
          'tokens',
          'expected_green_fraction',
          'expected_z',
          'expected_log10_p',
          'spike_entropy_sum',
        ],
        properties: {
          index: integer,
          tokens: integer,
          expected_green_fraction: number,
          expected_z: number,
          expected_log10_p: number,
          spike_entropy_sum: number,
        },
      },
    },
  },
};

const topLogprobSchema = {
  type: 'object',
  required: ['token', 'logprob', 'bytes'],
  properties: { token: string, logprob: number, bytes: nullable({ type: 'array', items: integer }) },
};

const chatLogprobsSchema = nullable({
  type: 'object',
  required: ['content'],
  properties: {
    content: nullable({
      type: 'array',
      items: {
        type: 'object',
        required: ['token', 'logprob', 'bytes', 'top_logprobs'],
        properties: {
          ...topLogprobSchema.properties,
          top_logprobs: { type: 'array', items: topLogprobSchema },
        },
      },
    }),
    refusal: nullable({ type: 'array', items: topLogprobSchema }),
  },
});

export const chatResponseSchema: JsonSchema = {
  type: 'object',
  required: ['id', 'object', 'created', 'model', 'choices', 'usage'],
  properties: {
    id: string,
    object: { type: 'string', enum: ['chat.completion'] },
    created: integer,
    model: string,
    system_fingerprint: string,
    choices: {
      type: 'array',
      items: {
        type: 'object',
        required: ['index', 'message', 'logprobs', 'finish_reason'],
        properties: {
          index: integer,
          message: {
            type: 'object',
            required: ['role', 'content'],
            properties: {
              role: { type: 'string', enum: ['assistant'] },
              content: string,
              refusal: { type: 'null' },
            },
          },
          logprobs: chatLogprobsSchema,
          finish_reason: string,
        },
      },
    },
    usage: usageSchema,
    tracemark: tracemarkSchema,
  },
};

const legacyLogprobsSchema = nullable({
  type: 'object',
  required: ['tokens', 'token_logprobs', 'top_logprobs', 'text_offset'],
  properties: {
    tokens: { type: 'array', items: string },
    token_logprobs: { type: 'array', items: number },
    top_logprobs: { type: 'array', items: { type: 'object', additionalProperties: number } },
    text_offset: { type: 'array', items: integer },
  },
});

export const completionResponseSchema: JsonSchema = {
  type: 'object',
  required: ['id', 'object', 'created', 'model', 'choices', 'usage'],
  properties: {
    id: string,
    object: { type: 'string', enum: ['text_completion'] },
    created: integer,
    model: string,
    system_fingerprint: string,
    choices: {
      type: 'array',
      items: {
        type: 'object',
        required: ['index', 'text', 'logprobs', 'finish_reason'],
        properties: { index: integer, text: string, logprobs: legacyLogprobsSchema, finish_reason: string },
      },
    },
    usage: usageSchema,
    tracemark: tracemarkSchema,
  },
};

/** A streamed completion: Server-Sent Events, one JSON chunk per `data:` line, then `data: [DONE]`. */
export const eventStreamResponse: JsonSchema = {
  description:
    'With "stream": true, text/event-stream: `data: {chunk}` lines, then `data: [DONE]`. If the issuance record cannot be written, an error event `data: {"error":{…}}` replaces [DONE].',
  type: 'string',
};

export const modelsResponseSchema: JsonSchema = {
  type: 'object',
  required: ['object', 'data'],
  properties: {
    object: { type: 'string', enum: ['list'] },
    data: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'object', 'created', 'owned_by'],
        properties: {
          id: string,
          object: { type: 'string', enum: ['model'] },
          created: integer,
          owned_by: string,
        },
      },
    },
  },
};

export const detectRequestSchema: JsonSchema = {
  type: 'object',
  properties: {
    text: { type: 'string' },
    tokens: { type: 'array', items: { type: 'integer', minimum: 0 } },
    prompt: { anyOf: [string, { type: 'array', items: { type: 'integer', minimum: 0 } }] },
    fpr: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 },
    window: boolean,
  },
};

const windowSchema = nullable({
  type: 'object',
  required: [
    'startToken',
    'endToken',
    'tapeStart',
    'length',
    'numGreen',
    'log10P',
    'windowsSearched',
    'log10PCorrected',
  ],
  properties: {
    startToken: integer,
    endToken: integer,
    tapeStart: integer,
    length: integer,
    numGreen: integer,
    score: { ...number, description: "Keys without green lists: the best window's score sum" },
    log10P: number,
    windowsSearched: integer,
    log10PCorrected: number,
  },
});

const keyResultProperties = {
  keyId: string,
  verdict: { type: 'string', enum: ['watermarked', 'not_watermarked', 'insufficient'] },
  numScored: integer,
  numGreen: { ...nullable(integer), description: 'null for a key without green lists (Gumbel schemes)' },
  greenFraction: nullable(number),
  z: number,
  log10P: number,
  log10PAdjusted: number,
  scheme: {
    ...string,
    description: 'Keys other than green-list tracemark keys: the scheme (gumbel, vllm:gumbel, …)',
  },
  score: { ...number, description: 'Keys without green lists: the score S of their scheme' },
  peerLog10P: { ...nullable(number), description: "Engines' keys: the engine's own p-value formula, log10" },
  dedup: { type: 'string', enum: ['none', 'context', 'strict'] },
};

/** The `DocumentResult` of @tracemark/detection: the same fields `tracemark detect --json` prints. */
export const detectResponseSchema: JsonSchema = {
  type: 'object',
  required: [
    'source',
    'verdict',
    'numTokens',
    'numScored',
    'numGreen',
    'greenFraction',
    'z',
    'log10P',
    'log10PAdjusted',
    'keyId',
    'tokenizer',
    'keysTested',
    'fpr',
    'tokensToSettle',
    'window',
    'keys',
  ],
  properties: {
    source: string,
    ...keyResultProperties,
    numTokens: integer,
    tokenizer: string,
    keysTested: integer,
    fpr: number,
    tokensToSettle: { ...nullable(number), description: 'null when no number of tokens would settle it' },
    window: windowSchema,
    keys: { type: 'array', items: { type: 'object', properties: keyResultProperties } },
  },
};

const apiKeyInfoSchema = {
  type: 'object',
  required: ['id', 'environment', 'name', 'account', 'scopes', 'createdAt', 'expiresAt', 'revokedAt'],
  properties: {
    id: string,
    environment: string,
    name: string,
    account: string,
    scopes: { type: 'array', items: string },
    createdAt: string,
    expiresAt: nullable(string),
    revokedAt: nullable(string),
    rateLimitPerMinute: nullable(integer),
    dailyTokenQuota: nullable(integer),
    state: { type: 'string', enum: ['active', 'revoked', 'expired'] },
  },
};

export const createKeyRequestSchema: JsonSchema = {
  type: 'object',
  required: ['scopes'],
  additionalProperties: false,
  properties: {
    scopes: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { type: 'string', enum: ['generate', 'verify', 'logprobs', 'admin'] },
    },
    name: { type: 'string', maxLength: 200 },
    account: { type: 'string', minLength: 1, maxLength: 200 },
    expiresAt: { type: 'string', format: 'date-time' },
    rateLimitPerMinute: { type: 'integer', minimum: 1 },
    dailyTokenQuota: { type: 'integer', minimum: 1 },
  },
};

export const createKeyResponseSchema: JsonSchema = {
  type: 'object',
  required: ['id', 'key', 'info'],
  properties: {
    id: string,
    key: { type: 'string', description: 'The API key. Shown once: the gateway keeps only its HMAC.' },
    info: apiKeyInfoSchema,
  },
};

export const listKeysResponseSchema: JsonSchema = {
  type: 'object',
  required: ['object', 'data'],
  properties: {
    object: { type: 'string', enum: ['list'] },
    data: { type: 'array', items: apiKeyInfoSchema },
  },
};

export const keyInfoResponseSchema: JsonSchema = apiKeyInfoSchema;

export const issuanceRecordSchema: JsonSchema = {
  type: 'object',
  properties: {
    seq: integer,
    id: string,
    completionId: string,
    choiceIndex: integer,
    createdAt: string,
    apiKeyId: string,
    account: string,
    endpoint: string,
    model: string,
    backend: string,
    watermarkKeyId: string,
    keyEpoch: nullable(string),
    promptSha256: string,
    outputSha256: string,
    numPromptTokens: integer,
    numTokens: integer,
    outputTokens: nullable({ type: 'array', items: integer }),
    finishReason: string,
  },
};

export const listIssuanceResponseSchema: JsonSchema = {
  type: 'object',
  required: ['object', 'data'],
  properties: {
    object: { type: 'string', enum: ['list'] },
    data: { type: 'array', items: issuanceRecordSchema },
    total: integer,
  },
};

export const healthResponseSchema: JsonSchema = {
  type: 'object',
  required: ['status'],
  properties: {
    status: { type: 'string', enum: ['ok', 'degraded'] },
    storage: { type: 'string' },
    storageOk: boolean,
    backend: { type: 'string' },
    model: { type: 'string' },
    watermarkKeyId: { type: 'string' },
    uptimeSeconds: number,
  },
};

export const verifyRequestSchema: JsonSchema = {
  type: 'object',
  properties: {
    text: {
      type: 'string',
      description: 'The text to verify (exact bytes; the report is about its SHA-256).',
    },
    tokens: {
      type: 'array',
      items: { type: 'integer', minimum: 0 },
      description: 'Or: token ids of the key’s tokenizer; the report then carries their decoding.',
    },
    prompt: { anyOf: [string, { type: 'array', items: { type: 'integer', minimum: 0 } }] },
    fpr: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 },
  },
};

const hex = { type: 'string', pattern: '^[0-9a-f]{64}$' };

export const dsseEnvelopeSchema: JsonSchema = {
  type: 'object',
  description: 'DSSE envelope; the payload is the base64 of an in-toto Statement v1 (canonical JSON).',
  required: ['payloadType', 'payload', 'signatures'],
  properties: {
    payloadType: string,
    payload: string,
    signatures: {
      type: 'array',
      items: { type: 'object', required: ['keyid', 'sig'], properties: { keyid: string, sig: string } },
    },
  },
};

export const verifyResponseSchema: JsonSchema = {
  type: 'object',
  required: ['object', 'verdict', 'summary', 'detection', 'issuance', 'report', 'keyId', 'verifierKey'],
  properties: {
    object: { type: 'string', enum: ['tracemark.verification'] },
    verdict: { type: 'string', enum: ['watermarked', 'not_watermarked', 'insufficient'] },
    summary: { type: 'string', description: 'The verdict in plain words.' },
    detection: {
      type: 'object',
      required: [
        'keyId',
        'numTokens',
        'numScored',
        'numGreen',
        'z',
        'log10P',
        'log10PAdjusted',
        'keysTested',
        'fpr',
      ],
      properties: {
        keyId: string,
        numTokens: integer,
        numScored: integer,
        numGreen: nullable(integer),
        z: number,
        log10P: number,
        log10PAdjusted: number,
        keysTested: integer,
        fpr: number,
        scheme: string,
        score: number,
      },
    },
    issuance: nullable({
      type: 'object',
      required: ['match', 'recordId', 'similarity', 'leafIndex', 'treeSize', 'disclosed'],
      properties: {
        match: { type: 'string', enum: ['exact', 'near-duplicate'] },
        recordId: string,
        similarity: number,
        leafIndex: integer,
        treeSize: integer,
        disclosed: {
          ...boolean,
          description: 'Whether the report carries the record (same account, or admin).',
        },
      },
    }),
    report: dsseEnvelopeSchema,
    keyId: { type: 'string', description: 'DSSE key id of the signature: <name>+<key hash>.' },
    verifierKey: {
      type: 'string',
      description: 'The signer’s verifier key string (also at /.well-known/tracemark/keys.json).',
    },
  },
};

const checkpointProperties = {
  treeSize: integer,
  rootHash: hex,
  checkpoint: { type: 'string', description: 'C2SP signed checkpoint (signed note text).' },
};

export const checkpointResponseSchema: JsonSchema = {
  type: 'object',
  required: ['origin', 'treeSize', 'rootHash', 'checkpoint'],
  properties: { origin: string, ...checkpointProperties },
};

export const inclusionQuerySchema: JsonSchema = {
  type: 'object',
  properties: {
    leafIndex: { type: 'string', pattern: '^\\d{1,15}$' },
    recordId: { type: 'string', minLength: 1, maxLength: 64 },
    treeSize: { type: 'string', pattern: '^\\d{1,15}$', description: 'Default: the whole log.' },
  },
};

export const inclusionResponseSchema: JsonSchema = {
  type: 'object',
  required: ['recordId', 'leafIndex', 'leafHash', 'inclusionProof', ...Object.keys(checkpointProperties)],
  properties: {
    recordId: string,
    leafIndex: integer,
    leafHash: hex,
    inclusionProof: {
      type: 'array',
      items: hex,
      description: 'Audit path, leaf level first (RFC 9162 §2.1.3).',
    },
    ...checkpointProperties,
  },
};

export const consistencyQuerySchema: JsonSchema = {
  type: 'object',
  required: ['from'],
  properties: {
    from: { type: 'string', pattern: '^\\d{1,15}$' },
    to: { type: 'string', pattern: '^\\d{1,15}$', description: 'Default: the whole log.' },
  },
};

export const consistencyResponseSchema: JsonSchema = {
  type: 'object',
  required: ['fromSize', 'fromRootHash', 'consistencyProof', ...Object.keys(checkpointProperties)],
  properties: {
    fromSize: integer,
    fromRootHash: hex,
    consistencyProof: { type: 'array', items: hex, description: 'RFC 9162 §2.1.4.' },
    ...checkpointProperties,
  },
};

export const publicKeysResponseSchema: JsonSchema = {
  type: 'object',
  required: ['logOrigin', 'keys', 'watermarkKeyIds', 'predicateType'],
  properties: {
    logOrigin: string,
    keys: {
      type: 'array',
      items: {
        type: 'object',
        required: ['keyId', 'verifierKey', 'algorithm', 'uses'],
        properties: {
          keyId: { type: 'string', description: 'DSSE key id and signed-note key name + hash.' },
          verifierKey: {
            type: 'string',
            description: 'Signed-note verifier key string: <name>+<hash>+<base64>.',
          },
          algorithm: { type: 'string', enum: ['ed25519'] },
          uses: { type: 'array', items: { type: 'string', enum: ['checkpoints', 'evidence-reports'] } },
        },
      },
    },
    watermarkKeyIds: {
      type: 'array',
      items: string,
      description: 'Public ids of the watermark keys verification tests.',
    },
    predicateType: string,
  },
};

// Extraction monitoring (GET /v1/admin/risk …). Times are milliseconds since the epoch, as the monitor keeps them.

const nullableNumber = nullable(number);

const riskReasonSchema = {
  type: 'object',
  description:
    'Why a principal scored as it did, with the alert context of OWASP AISVS C11.5: principal, window, volume, input-distribution statistics, first and last seen.',
  required: [
    'code',
    'message',
    'principal',
    'window',
    'volume',
    'inputDistribution',
    'firstSeen',
    'lastSeen',
  ],
  properties: {
    code: string,
    message: string,
    value: number,
    threshold: number,
    strength: number,
    principal: string,
    window: {
      type: 'object',
      required: ['name', 'from', 'to'],
      properties: { name: string, from: number, to: number },
    },
    volume: {
      type: 'object',
      required: ['requests', 'promptTokens', 'completionTokens'],
      properties: { requests: integer, promptTokens: integer, completionTokens: integer },
    },
    inputDistribution: {
      type: 'object',
      properties: {
        sampledPrompts: integer,
        distinctFeatures: integer,
        featureCoverage: nullableNumber,
        featureEntropyBits: nullableNumber,
        promptDiversity: nullableNumber,
        templateReuse: nullableNumber,
        topSkeletonShare: nullableNumber,
        nearDuplicateShare: nullableNumber,
        reasoningShare: nullableNumber,
        enumerationShare: nullableNumber,
        outputPromptRatio: nullableNumber,
        interArrivalCv: nullableNumber,
        pradaW: nullableNumber,
        mmd: nullableNumber,
      },
    },
    firstSeen: number,
    lastSeen: number,
    links: { type: 'object', additionalProperties: integer, description: 'Cluster reasons: links by kind' },
    cluster: string,
  },
};

const accountStatusSchema = {
  type: 'string',
  enum: ['active', 'throttled', 'review', 'suspended'],
  description:
    'After the policy actions: throttled (lower rate limit), review (served, outputs redacted at least), suspended (403)',
};

const riskAccountSchema = {
  type: 'object',
  required: ['account', 'score', 'flagged', 'reasons', 'cluster', 'status'],
  properties: {
    account: string,
    score: number,
    flagged: boolean,
    reasons: { type: 'array', items: riskReasonSchema },
    cluster: nullable(string),
    status: accountStatusSchema,
  },
};

const riskClusterSchema = {
  type: 'object',
  required: ['id', 'accounts', 'score', 'flagged', 'reasons'],
  properties: {
    id: string,
    accounts: { type: 'array', items: string },
    score: number,
    flagged: boolean,
    reasons: { type: 'array', items: riskReasonSchema },
  },
};

export const riskReportResponseSchema: JsonSchema = {
  type: 'object',
  required: ['at', 'accounts', 'clusters'],
  properties: {
    at: number,
    accounts: { type: 'array', items: riskAccountSchema },
    clusters: { type: 'array', items: riskClusterSchema },
  },
};

const windowFeaturesSchema = {
  type: 'object',
  properties: {
    window: string,
    from: number,
    to: number,
    requests: integer,
    requestsPerHour: number,
    promptTokens: integer,
    completionTokens: integer,
    outputPromptRatio: nullableNumber,
    reasoningShare: nullableNumber,
    enumerationShare: nullableNumber,
    sampledPrompts: integer,
    distinctFeatures: integer,
    featureCoverage: nullableNumber,
    featureEntropyBits: nullableNumber,
    promptDiversity: nullableNumber,
    templateReuse: nullableNumber,
    topSkeletonShare: nullableNumber,
    nearDuplicateShare: nullableNumber,
    interArrivalCv: nullableNumber,
    pradaW: nullableNumber,
    pradaSamples: integer,
    mmd: nullableNumber,
  },
};

const riskActionSchema = {
  type: 'object',
  required: ['id', 'at', 'account', 'action', 'reason', 'adminKeyId'],
  properties: {
    id: integer,
    at: string,
    account: string,
    action: { type: 'string', enum: ['throttle', 'review', 'suspend', 'clear'] },
    reason: string,
    adminKeyId: string,
  },
};

export const riskAccountResponseSchema: JsonSchema = {
  type: 'object',
  required: ['account', 'status', 'score', 'flagged', 'reasons', 'cluster', 'series', 'actions', 'findings'],
  properties: {
    account: string,
    status: accountStatusSchema,
    score: number,
    flagged: boolean,
    reasons: { type: 'array', items: riskReasonSchema },
    cluster: nullable(string),
    firstSeen: number,
    lastSeen: number,
    totalRequests: integer,
    keyCreatedAt: nullableNumber,
    subnet: nullable(string),
    subnets: { type: 'array', items: string },
    userAgent: nullable(string),
    detectors: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          code: string,
          primary: boolean,
          value: number,
          threshold: number,
          strength: number,
          message: string,
        },
      },
    },
    windows: { type: 'array', items: windowFeaturesSchema },
    series: {
      type: 'array',
      description: 'Counters per bucket (5 min by default) of the longest window, oldest first',
      items: {
        type: 'object',
        properties: {
          start: number,
          requests: integer,
          promptTokens: integer,
          completionTokens: integer,
          reasoning: integer,
          enumeration: integer,
          nearDuplicates: integer,
        },
      },
    },
    findings: {
      type: 'array',
      description:
        'Input-screening and output-audit findings in the scoring window, by rule (never the text)',
      items: {
        type: 'object',
        properties: {
          kind: { type: 'string', enum: ['input', 'output'] },
          rule: string,
          count: integer,
          redacted: integer,
          refused: integer,
        },
      },
    },
    actions: { type: 'array', items: riskActionSchema },
  },
};

export const riskActionRequestSchema: JsonSchema = {
  type: 'object',
  required: ['action', 'reason'],
  additionalProperties: false,
  properties: {
    action: { type: 'string', enum: ['throttle', 'review', 'suspend', 'clear'] },
    reason: { type: 'string', minLength: 1, maxLength: 1000 },
  },
};

export const riskActionResponseSchema: JsonSchema = {
  type: 'object',
  required: ['action', 'status'],
  properties: { action: riskActionSchema, status: accountStatusSchema },
};
