/**
 * The risk API (scope `admin`): the extraction monitor's report, one account's detail with its time series
 * and the actions taken on it, and the policy actions (throttle, review, suspend, clear), each recorded in an
 * audit trail with the admin key that took it.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { GatewayError } from '../errors.ts';
import {
  errorResponses,
  riskAccountResponseSchema,
  riskActionRequestSchema,
  riskActionResponseSchema,
  riskReportResponseSchema,
} from '../schemas.ts';
import type { RiskActionKind } from '../storage/types.ts';

const riskSchema = { tags: ['admin', 'monitoring'], security: [{ bearerAuth: [] }] };

const accountParams = {
  type: 'object',
  required: ['account'],
  properties: { account: { type: 'string', minLength: 1, maxLength: 200 } },
};

const riskRoutes: FastifyPluginAsync = async (fastify: FastifyInstance) => {
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
      const { account } = request.params as { account: string };
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
      const { account } = request.params as { account: string };
      const { action, reason } = request.body as { action: RiskActionKind; reason: string };
      const stored = await monitoring.act(account, action, reason, request.apiKey!.id);
      return reply.code(201).send({ action: stored, status: monitoring.statusOf(account) });
    },
  );
};

export default riskRoutes;
