/**
 * What every part of the gateway shares: its version, the services the app is built from and the context
 * routes and plugins reach as `fastify.gateway`. Its own module so that routes and services never import
 * app.ts (which imports them): only the entry points do (import-graph.test.ts keeps the graph acyclic).
 */

import type { Watermarker } from '@tracemark/core';
import type { AnyKeyTextDetector, AnyWatermarkKey, TextDetector } from '@tracemark/detection';
import type { MonitorOptions } from '@tracemark/monitoring';
import type { SigningKey } from '@tracemark/provenance';
import type { Redis } from 'ioredis';
import type { AccountKeys } from './account-keys.ts';
import type { Backend } from './backends/types.ts';
import type { GatewayConfig } from './config.ts';
import type { MonitoringService } from './monitoring/service.ts';
import type { IssuanceLog } from './provenance/issuance-log.ts';
import type { QuotaStore } from './quota.ts';
import type { GatewayStorage } from './storage/types.ts';
import type { EngineUpstream } from './upstream-mark/engine-upstream.ts';
import type { LiveMarkCheck } from './upstream-mark/live-check.ts';
import type { MarkCheckResult } from './upstream-mark/self-check.ts';
import type { WorkPool } from './work/pool.ts';

export const GATEWAY_VERSION = '0.1.0';

/**
 * Engine-native mode (`--upstream-watermark`): the upstream engine marks its own output and the gateway
 * streams it through; null when the gateway samples and marks every token itself.
 */
export interface EngineNativeServices {
  readonly upstream: EngineUpstream;
  /** The serving key is an engine's (vLLM, transformers, SynthID, SGLang), not a tracemark key. */
  readonly engineKey: boolean;
  /** The start-up check that found the mark in the engine's completions. */
  readonly startupCheck: MarkCheckResult;
}

/** What the app is built from; bootstrap.ts prepares it from the configuration. */
export interface GatewayServices {
  readonly config: GatewayConfig;
  readonly storage: GatewayStorage;
  readonly backend: Backend;
  /**
   * The key whose mark served output carries: the configured tracemark key or its epoch sub-key, or in
   * engine-native mode the key of `--upstream-watermark` (a tracemark key or an engine's; no epochs).
   */
  readonly watermarkKey: AnyWatermarkKey;
  readonly keyEpoch: string | null;
  /**
   * The key file's key, from which every epoch sub-key of a tracemark key derives (verification tests each
   * registered epoch); an engine's key has no sub-keys and is its own root.
   */
  readonly rootWatermarkKey: AnyWatermarkKey;
  /** Signs the issuance log's checkpoints and the evidence reports (Ed25519; its name is the log's origin). */
  readonly logSigningKey: SigningKey;
  readonly serverSecret: Uint8Array;
  /** Shared rate limits and quotas; null keeps them in memory. */
  readonly redis: Redis | null;
  /** Engine-native mode; absent or null: the gateway's own sampler marks. */
  readonly engineNative?: EngineNativeServices | null;
  /** The campaign monitor's options (windows, detectors, linking); default the package's. */
  readonly monitorOptions?: MonitorOptions;
  /** Per-account or per-cohort sub-keys (TRACEMARK_ACCOUNT_KEYS); absent or null: one serving key. */
  readonly accountKeys?: AccountKeys | null;
}

export interface GatewayContext extends GatewayServices {
  /** The watermarker of a tracemark serving key; null for an engine's key. */
  readonly watermarker: Watermarker | null;
  readonly engineNative: EngineNativeServices | null;
  /** Engine-native mode: the live check of the engine's mark over recent completions; else null. */
  readonly upstreamMarkCheck: LiveMarkCheck | null;
  /** The Merkle log over the issuance records, and its signed checkpoints. */
  readonly issuanceLog: IssuanceLog;
  /**
   * The detector for the serving key (cached per option set), on the main thread: an engine's key gives an
   * AnyKeyTextDetector, which has no windowed search.
   */
  detector(options: { fpr?: number; window: boolean }): TextDetector | AnyKeyTextDetector;
  /** Worker threads for tokenizing and scoring client text, with a per-request budget and a bounded queue. */
  readonly work: WorkPool;
  readonly startedAt: number;
  /** Generations in progress: closing the app aborts them (streams end with an error event). */
  readonly activeGenerations: Set<AbortController>;
  /** Extraction monitoring: input screening, output audit, the campaign monitor, policy actions. */
  readonly monitoring: MonitoringService;
}

declare module 'fastify' {
  interface FastifyInstance {
    gateway: GatewayContext;
    quota: QuotaStore;
  }
}
