/**
 * The risk API (scope `admin`): the extraction monitor's report, one account's detail with its time series
 * and the actions taken on it, and the policy actions (throttle, review, suspend, clear), each recorded in an
 * audit trail with the admin key that took it.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { GatewayError } from '../errors.ts';
import { errorResponses, list, nullable, recordOf, stringEnum } from '../schemas.ts';

// Times are milliseconds since the epoch, as the monitor keeps them.

const nullableNumber = nullable(Type.Number());
const optionalInteger = Type.Optional(Type.Integer());
const optionalNumber = Type.Optional(Type.Number());
const optionalNullableNumber = Type.Optional(nullableNumber);

const riskReasonSchema = Type.Object(
  {
    code: Type.String(),
    message: Type.String(),
    value: optionalNumber,
    threshold: optionalNumber,
    strength: optionalNumber,
    principal: Type.String(),
    window: Type.Object({ name: Type.String(), from: Type.Number(), to: Type.Number() }),
    volume: Type.Object({
      requests: Type.Integer(),
      promptTokens: Type.Integer(),
      completionTokens: Type.Integer(),
    }),
    inputDistribution: Type.Object({
      sampledPrompts: optionalInteger,
      distinctFeatures: optionalInteger,
      featureCoverage: optionalNullableNumber,
      featureEntropyBits: optionalNullableNumber,
      promptDiversity: optionalNullableNumber,
      templateReuse: optionalNullableNumber,
      topSkeletonShare: optionalNullableNumber,
      nearDuplicateShare: optionalNullableNumber,
      reasoningShare: optionalNullableNumber,
      enumerationShare: optionalNullableNumber,
      outputPromptRatio: optionalNullableNumber,
      interArrivalCv: optionalNullableNumber,
      pradaW: optionalNullableNumber,
      mmd: optionalNullableNumber,
    }),
    firstSeen: Type.Number(),
    lastSeen: Type.Number(),
    links: Type.Optional(recordOf(Type.Integer(), { description: 'Cluster reasons: links by kind' })),
    cluster: Type.Optional(Type.String()),
  },
  {
    description:
      'Why a principal scored as it did, with the alert context of OWASP AISVS C11.5: principal, window, volume, input-distribution statistics, first and last seen.',
  },
);

const accountStatusSchema = stringEnum(['active', 'throttled', 'review', 'suspended'], {
  description:
    'After the policy actions: throttled (lower rate limit), review (served, outputs redacted at least), suspended (403)',
});

const riskActionKind = stringEnum(['throttle', 'review', 'suspend', 'clear']);

const riskAccountSchema = Type.Object({
  account: Type.String(),
  score: Type.Number(),
  flagged: Type.Boolean(),
  reasons: list(riskReasonSchema),
  cluster: nullable(Type.String()),
  status: accountStatusSchema,
});

const riskClusterSchema = Type.Object({
  id: Type.String(),
  accounts: list(Type.String()),
  score: Type.Number(),
  flagged: Type.Boolean(),
  reasons: list(riskReasonSchema),
});

const riskReportResponseSchema = Type.Object({
  at: Type.Number(),
  accounts: list(riskAccountSchema),
  clusters: list(riskClusterSchema),
});

const windowFeaturesSchema = Type.Object({
  window: Type.Optional(Type.String()),
  from: optionalNumber,
  to: optionalNumber,
  requests: optionalInteger,
  requestsPerHour: optionalNumber,
  promptTokens: optionalInteger,
  completionTokens: optionalInteger,
  outputPromptRatio: optionalNullableNumber,
  reasoningShare: optionalNullableNumber,
  enumerationShare: optionalNullableNumber,
  sampledPrompts: optionalInteger,
  distinctFeatures: optionalInteger,
  featureCoverage: optionalNullableNumber,
  featureEntropyBits: optionalNullableNumber,
  promptDiversity: optionalNullableNumber,
  templateReuse: optionalNullableNumber,
  topSkeletonShare: optionalNullableNumber,
  nearDuplicateShare: optionalNullableNumber,
  interArrivalCv: optionalNullableNumber,
  pradaW: optionalNullableNumber,
  pradaSamples: optionalInteger,
  mmd: optionalNullableNumber,
});

const riskActionSchema = Type.Object({
  id: Type.Integer(),
  at: Type.String(),
  account: Type.String(),
  action: riskActionKind,
  reason: Type.String(),
  adminKeyId: Type.String(),
});

const riskAccountResponseSchema = Type.Object({
  account: Type.String(),
  status: accountStatusSchema,
  score: Type.Number(),
  flagged: Type.Boolean(),
  reasons: list(riskReasonSchema),
  cluster: nullable(Type.String()),
  firstSeen: optionalNumber,
  lastSeen: optionalNumber,
  totalRequests: optionalInteger,
  keyCreatedAt: optionalNullableNumber,
  subnet: Type.Optional(nullable(Type.String())),
  subnets: Type.Optional(list(Type.String())),
  userAgent: Type.Optional(nullable(Type.String())),
  detectors: Type.Optional(
    list(
      Type.Object({
        code: Type.Optional(Type.String()),
        primary: Type.Optional(Type.Boolean()),
        value: optionalNumber,
        threshold: optionalNumber,
        strength: optionalNumber,
        message: Type.Optional(Type.String()),
      }),
    ),
  ),
  windows: Type.Optional(list(windowFeaturesSchema)),
  series: list(
    Type.Object({
      start: optionalNumber,
      requests: optionalInteger,
      promptTokens: optionalInteger,
      completionTokens: optionalInteger,
      reasoning: optionalInteger,
      enumeration: optionalInteger,
      nearDuplicates: optionalInteger,
    }),
    { description: 'Counters per bucket (5 min by default) of the longest window, oldest first' },
  ),
  findings: list(
    Type.Object({
      kind: Type.Optional(stringEnum(['input', 'output'])),
      rule: Type.Optional(Type.String()),
      count: optionalInteger,
      redacted: optionalInteger,
      refused: optionalInteger,
    }),
    {
      description:
        'Input-screening and output-audit findings in the scoring window, by rule (never the text)',
    },
  ),
  actions: list(riskActionSchema),
});

const riskActionRequestSchema = Type.Object(
  { action: riskActionKind, reason: Type.String({ minLength: 1, maxLength: 1000 }) },
  { additionalProperties: false },
);

const riskActionResponseSchema = Type.Object({ action: riskActionSchema, status: accountStatusSchema });

const riskSchema = { tags: ['admin', 'monitoring'], security: [{ bearerAuth: [] }] };

const accountParams = Type.Object({ account: Type.String({ minLength: 1, maxLength: 200 }) });

const riskRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { monitoring } = fastify.gateway;

  const requireMonitor = () => {
    if (!monitoring.enabled) {
      throw new GatewayError(
        404,
        'TM_ERR_NOT_FOUND',
        'extraction monitoring is off on this gateway (TRACEMARK_MONITOR=false)',
      );
    }
  };

  fastify.get(
    '/v1/admin/risk',
    {
      config: { scope: 'admin' },
      schema: {
        ...riskSchema,
        summary: 'Accounts and clusters of linked accounts by extraction risk, with reasons',
        response: { 200: riskReportResponseSchema, ...errorResponses() },
      },
    },
    async () => {
      requireMonitor();
      await monitoring.flush();
      return monitoring.report();
    },
  );

  fastify.get(
    '/v1/admin/risk/accounts/:account',
    {
      config: { scope: 'admin' },
      schema: {
        ...riskSchema,
        summary: "One account's risk: score and reasons, features per window, time series, findings, actions",
        params: accountParams,
        response: { 200: riskAccountResponseSchema, ...errorResponses() },
      },
    },
    async (request) => {
      requireMonitor();
      const { account } = request.params;
      await monitoring.flush();
      const found = await monitoring.accountDetail(account);
      if (found === null) {
        throw new GatewayError(
          404,
          'TM_ERR_NOT_FOUND',
          `no traffic from the account "${account}" in the monitor's window`,
          {
            param: 'account',
          },
        );
      }
      const { detail } = found;
      const risk = monitoring.report().accounts.find((entry) => entry.account === account);
      return {
        ...detail,
        status: found.status,
        score: risk?.score ?? detail.score,
        flagged: risk?.flagged ?? detail.flagged,
        reasons: risk?.reasons ?? [],
        cluster: risk?.cluster ?? detail.cluster,
        findings: found.findings,
        actions: found.actions,
      };
    },
  );

  fastify.post(
    '/v1/admin/risk/accounts/:account/actions',
    {
      config: { scope: 'admin' },
      schema: {
        ...riskSchema,
        summary:
          'Act on an account: throttle (lower rate limit), review (served, outputs redacted at least, events marked), suspend (completions refused with 403), clear',
        params: accountParams,
        body: riskActionRequestSchema,
        response: { 201: riskActionResponseSchema, ...errorResponses() },
      },
    },
    async (request, reply) => {
      requireMonitor();
      const { account } = request.params;
      const { action, reason } = request.body;
      const stored = await monitoring.act(account, action, reason, request.apiKey!.id);
      return reply.code(201).send({ action: stored, status: monitoring.statusOf(account) });
    },
  );
};

export default riskRoutes;
