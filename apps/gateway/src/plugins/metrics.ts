/** Prometheus metrics on a registry of the app's own (several apps can share a process, as tests do). */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { BackendStats } from '../backends/types.ts';

export interface GatewayMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly requestDuration: Histogram<'method' | 'route'>;
  readonly completions: Counter<'endpoint' | 'stream' | 'outcome'>;
  readonly promptTokens: Counter<'endpoint'>;
  readonly completionTokens: Counter<'endpoint'>;
  /** Every token the sampler produced, counted as it is produced (a disconnected stream stops adding). */
  readonly generatedTokens: Counter;
  readonly activeStreams: Gauge;
  readonly issuanceRecords: Counter;
  readonly issuanceFailures: Counter;
  readonly rejected: Counter<'reason'>;
  readonly detections: Counter<'verdict'>;
  /** Engine-native mode: the live check of the engine's mark over a sliding window of completions. */
  readonly upstreamMark: UpstreamMarkMetrics;
  /** Extraction monitoring: flagged principals, content-policy findings, the cost of observing. */
  readonly monitoring: MonitoringMetrics;
}

export interface MonitoringMetrics {
  /** Accounts flagged in the last risk report (refreshed periodically and on GET /v1/admin/risk). */
  readonly flaggedAccounts: Gauge;
  readonly flaggedClusters: Gauge;
  /** Accounts the monitor holds state for. */
  readonly accounts: Gauge;
  readonly inputFindings: Counter<'rule' | 'policy'>;
  readonly outputFindings: Counter<'rule' | 'policy'>;
  /** Seconds to fingerprint and observe one prompt (off the request path). */
  readonly observeDuration: Histogram;
  /** Main-thread seconds of the monitor's work by stage: `screen`, `audit` (request path), `observe` (batches). */
  readonly workDuration: Histogram<'stage'>;
  readonly actions: Counter<'action'>;
  /** Monitor events that could not be stored (the monitor kept them in memory). */
  readonly persistFailures: Counter;
}

export interface UpstreamMarkMetrics {
  /** log10 p of the window's pooled detection under the serving key (the start-up check's until the first). */
  readonly log10P: Gauge;
  readonly scoredTokens: Gauge;
  /** 1 while the window holds enough scored tokens and its verdict is not `watermarked`, else 0. */
  readonly missing: Gauge;
  readonly checks: Counter<'verdict'>;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: GatewayMetrics;
  }
}

export interface MetricsPluginOptions {
  readonly backendStats: BackendStats;
  /** The work pool's threads in use and requests waiting for one. */
  readonly workStats?: () => { readonly running: number; readonly queued: number };
}

const metricsPlugin: FastifyPluginAsync<MetricsPluginOptions> = async (fastify: FastifyInstance, options) => {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tracemark_' });
  const stats = options.backendStats;
  const fromStats = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  fromStats(
    'tracemark_upstream_round_trips_total',
    'HTTP round trips to the upstream for generation',
    () => stats.roundTrips,
  );
  fromStats(
    'tracemark_upstream_drafts_accepted_total',
    'upstream draft tokens accepted',
    () => stats.draftsAccepted,
  );
  fromStats(
    'tracemark_upstream_drafts_rejected_total',
    'upstream draft tokens rejected and resampled',
    () => stats.draftsRejected,
  );
  fromStats(
    'tracemark_upstream_sample_tokens_total',
    "tokens of the upstream's samples read for generation (with their top-k logprobs)",
    () => stats.positionsReceived ?? 0,
  );

  const workStats = options.workStats;
  if (workStats !== undefined) {
    new Gauge({
      name: 'tracemark_work_threads_busy',
      help: 'work threads tokenizing or scoring a request',
      registers: [registry],
      collect() {
        this.set(workStats().running);
      },
    });
    new Gauge({
      name: 'tracemark_work_queued',
      help: 'requests waiting for a work thread',
      registers: [registry],
      collect() {
        this.set(workStats().queued);
      },
    });
  }

  const metrics: GatewayMetrics = {
    registry,
    requests: new Counter({
      name: 'tracemark_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'tracemark_http_request_duration_seconds',
      help: 'time to the end of the response',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    completions: new Counter({
      name: 'tracemark_completions_total',
      help: 'completions by endpoint, streaming and outcome',
      labelNames: ['endpoint', 'stream', 'outcome'],
      registers: [registry],
    }),
    promptTokens: new Counter({
      name: 'tracemark_prompt_tokens_total',
      help: 'prompt tokens of served completions',
      labelNames: ['endpoint'],
      registers: [registry],
    }),
    completionTokens: new Counter({
      name: 'tracemark_completion_tokens_total',
      help: 'completion tokens issued',
      labelNames: ['endpoint'],
      registers: [registry],
    }),
    generatedTokens: new Counter({
      name: 'tracemark_generated_tokens_total',
      help: 'tokens sampled, counted as they are sampled',
      registers: [registry],
    }),
    activeStreams: new Gauge({
      name: 'tracemark_active_streams',
      help: 'streams in progress',
      registers: [registry],
    }),
    issuanceRecords: new Counter({
      name: 'tracemark_issuance_records_total',
      help: 'records appended to the issuance log',
      registers: [registry],
    }),
    issuanceFailures: new Counter({
      name: 'tracemark_issuance_failures_total',
      help: 'completions withheld because their record could not be written',
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'tracemark_rejected_requests_total',
      help: 'requests refused by authentication, rate limits, quotas and the work pool',
      labelNames: ['reason'],
      registers: [registry],
    }),
    detections: new Counter({
      name: 'tracemark_detections_total',
      help: 'POST /v1/detect results by verdict',
      labelNames: ['verdict'],
      registers: [registry],
    }),
    upstreamMark: {
      log10P: new Gauge({
        name: 'tracemark_upstream_mark_log10_p',
        help: "engine-native: log10 p of the serving key's mark in the live check's window of completions",
        registers: [registry],
      }),
      scoredTokens: new Gauge({
        name: 'tracemark_upstream_mark_scored_tokens',
        help: "engine-native: tokens scored in the live check's window",
        registers: [registry],
      }),
      missing: new Gauge({
        name: 'tracemark_upstream_mark_missing',
        help: "engine-native: 1 when the live check's window has enough tokens and is no longer watermarked",
        registers: [registry],
      }),
      checks: new Counter({
        name: 'tracemark_upstream_mark_checks_total',
        help: "engine-native: live checks of the engine's mark by verdict",
        labelNames: ['verdict'],
        registers: [registry],
      }),
    },
    monitoring: {
      flaggedAccounts: new Gauge({
        name: 'tracemark_monitor_flagged_accounts',
        help: 'accounts flagged by the extraction monitor in its last report',
        registers: [registry],
      }),
      flaggedClusters: new Gauge({
        name: 'tracemark_monitor_flagged_clusters',
        help: 'clusters of linked accounts flagged by the extraction monitor in its last report',
        registers: [registry],
      }),
      accounts: new Gauge({
        name: 'tracemark_monitor_accounts',
        help: 'accounts the extraction monitor holds state for',
        registers: [registry],
      }),
      inputFindings: new Counter({
        name: 'tracemark_input_findings_total',
        help: 'prompt-injection findings of the input screening, by rule and policy action',
        labelNames: ['rule', 'policy'],
        registers: [registry],
      }),
      outputFindings: new Counter({
        name: 'tracemark_output_findings_total',
        help: 'secret and personal-data findings of the output audit, by rule and policy action',
        labelNames: ['rule', 'policy'],
        registers: [registry],
      }),
      observeDuration: new Histogram({
        name: 'tracemark_monitor_observe_duration_seconds',
        help: 'time to fingerprint and observe one prompt, off the request path',
        buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025],
        registers: [registry],
      }),
      workDuration: new Histogram({
        name: 'tracemark_monitor_work_seconds',
        help: "main-thread time of the monitor's work by stage: input screening and output audit (on the request path), and the batches that fingerprint, observe and store prompts (off it)",
        labelNames: ['stage'],
        buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
        registers: [registry],
      }),
      actions: new Counter({
        name: 'tracemark_risk_actions_total',
        help: 'policy actions taken on accounts (throttle, review, suspend, clear)',
        labelNames: ['action'],
        registers: [registry],
      }),
      persistFailures: new Counter({
        name: 'tracemark_monitor_persist_failures_total',
        help: 'monitor events that could not be written to storage',
        registers: [registry],
      }),
    },
  };
  fastify.decorate('metrics', metrics);

  fastify.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.requestDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });
};

const plugin: FastifyPluginAsync<MetricsPluginOptions> = fp(metricsPlugin, {
  name: 'tracemark-metrics',
  fastify: '5.x',
});
export default plugin;
