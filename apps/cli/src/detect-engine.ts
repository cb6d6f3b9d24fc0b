/**
 * The detection work of `tracemark detect`, the same in a worker thread and in the main thread:
 * it parses JSONL lines, tokenizes, and scores with the shared detection path. A watermarked document
 * that the spoofing-artefact test applies to leaves here with its tokens; the main thread runs the test
 * (`Engine.spoofTested`), so that the Brown bigram table is built once per process, not once per worker.
 */
import {
  type AnyDocumentResult,
  type AnyKeyTextDetector,
  type AnyWatermarkKey,
  createTextDetector,
  type ForeignDedup,
  InputError,
  parseAnyKeyFile,
  type SpoofingChecker,
  type SpoofingResult,
  spoofTestApplies,
} from '@tracemark/detection';
import { decodeLines, type InputDocument, parseJsonlLine } from './inputs.ts';
import type { CorrectedVerdict } from './render.ts';

export interface EngineOptions {
  /** Key files' text (secrets stay in memory, passed to workers by structured clone). */
  readonly keyFiles: readonly string[];
  readonly fpr?: number;
  readonly window: boolean;
  /** Engines' keys: which repeated inputs are scored once (default `strict`; `context` is the engine's rule). */
  readonly foreignDedup?: ForeignDedup;
  /** JSONL fields (inputs.ts `parseJsonlLine`): absent for the default rule; promptField false for none. */
  readonly field?: string;
  readonly promptField?: string | false;
  /** Mark watermarked documents for the spoofing-artefact test (default false). */
  readonly spoofTest?: boolean;
}

export interface ErrorResult {
  readonly source: string;
  readonly error: { readonly code: string; readonly message: string };
}

/** A watermarked document's input to the spoofing test, sent to the main thread (`Engine.spoofTested`). */
export interface PendingSpoofTest {
  readonly keyId: string;
  readonly tokens: Uint32Array;
  readonly prompt?: string | readonly number[];
}

/** A scored document as detect prints it. */
export type DocumentOutcome = AnyDocumentResult & {
  /** The spoofing-artefact test (@tracemark/detection `createSpoofingChecker`); absent or null: not tested. */
  readonly spoofing?: SpoofingResult | null;
  /** Set by `run` where the test applies and not yet run; never printed. */
  readonly spoofTest?: PendingSpoofTest;
};

export type Outcome = DocumentOutcome | ErrorResult;

export type Job =
  | {
      readonly kind: 'lines';
      readonly source: string;
      readonly firstLine: number;
      readonly texts: string[];
      /** Print the outcomes as `detect --json` does, here (in the worker), and send the text. */
      readonly render?: 'json';
    }
  | {
      /** JSONL lines as read (inputs.ts `RawLineBatch`): decoded here, so a worker gets a buffer moved, not strings copied. */
      readonly kind: 'line-bytes';
      readonly source: string;
      readonly firstLine: number;
      readonly data: Uint8Array;
      readonly render?: 'json';
    }
  | { readonly kind: 'documents'; readonly documents: InputDocument[] }
  | { readonly kind: 'tokenize'; readonly text: string };

export type JobResult =
  | { readonly kind: 'outcomes'; readonly outcomes: Outcome[] }
  | { readonly kind: 'rendered'; readonly rendered: RenderedOutcomes }
  | { readonly kind: 'tokens'; readonly tokens: Uint32Array };

/**
 * A batch's outcomes as `detect --json` prints them, with what the summary needs: one string crosses
 * from a worker instead of an object per document (cloned, then printed, on the main thread).
 */
export interface RenderedOutcomes {
  /** The JSON of each outcome, joined by ",\n" as detect separates results; '' when there are none. */
  readonly json: string;
  readonly documents: number;
  readonly errors: number;
  readonly watermarked: number;
  readonly notWatermarked: number;
  readonly insufficient: number;
  readonly numTokens: number;
  /** The first two scored results, in order (detect reads α from the first of the run). */
  readonly first: AnyDocumentResult[];
}

/** A result as `detect --json` prints it; `corrected` adds the Benjamini–Hochberg fields. */
export function outcomeJson(outcome: Outcome, corrected?: CorrectedVerdict): object {
  if ('error' in outcome) return outcome;
  // The fields in the result's order, less three that follow them (a loop, not a rest pattern and
  // spreads: on short documents those took a tenth of a worker's time).
  const json: Record<string, unknown> = {};
  for (const name in outcome) {
    if (
      name !== 'keys' &&
      name !== 'window' &&
      name !== 'tokensToSettle' &&
      name !== 'spoofing' &&
      name !== 'spoofTest'
    ) {
      json[name] = outcome[name as keyof AnyDocumentResult];
    }
  }
  // Infinity: no number of tokens up to a million settles it (always so with δ = 0).
  json.tokensToSettle = Number.isFinite(outcome.tokensToSettle) ? outcome.tokensToSettle : null;
  if (outcome.window !== null) json.window = outcome.window;
  if (outcome.keys.length > 1) json.keys = outcome.keys;
  json.spoofing = outcome.spoofing ?? null;
  if (corrected !== undefined) {
    json.log10PCorrected = corrected.log10PCorrected;
    json.verdictCorrected = corrected.verdict;
  }
  return json;
}

function renderJson(outcomes: readonly Outcome[]): RenderedOutcomes {
  const json: string[] = [];
  const first: AnyDocumentResult[] = [];
  const counts = { errors: 0, watermarked: 0, notWatermarked: 0, insufficient: 0, numTokens: 0 };
  for (const outcome of outcomes) {
    json.push(JSON.stringify(outcomeJson(outcome)));
    if ('error' in outcome) {
      counts.errors++;
      continue;
    }
    counts.numTokens += outcome.numTokens;
    if (outcome.verdict === 'watermarked') counts.watermarked++;
    else if (outcome.verdict === 'not_watermarked') counts.notWatermarked++;
    else counts.insufficient++;
    if (first.length < 2) first.push(outcome);
  }
  return { json: json.join(',\n'), documents: outcomes.length, ...counts, first };
}

export interface Engine {
  readonly detector: AnyKeyTextDetector;
  /**
   * A job's outcomes. With `spoofTest`, a watermarked document the test applies to carries its tokens
   * (`spoofTest`), and a batch holding one comes back as outcomes even when asked to render JSON.
   */
  run(job: Job): JobResult;
  /** Marks a document scored elsewhere (a text read in pieces), as `run` marks its own; `tokens` null: too long. */
  markForSpoofTest(result: AnyDocumentResult, tokens: Uint32Array | null): DocumentOutcome;
  /** The outcome with its pending spoofing test run by `checker`; any other outcome as it is, at once. */
  spoofTested(outcome: Outcome, checker: SpoofingChecker): Outcome | Promise<Outcome>;
}

export function createEngine(options: EngineOptions): Engine {
  const keys = options.keyFiles.map((text) => parseAnyKeyFile(text));
  const keysById = new Map<string, AnyWatermarkKey>();
  for (const key of keys) if (!keysById.has(key.keyId)) keysById.set(key.keyId, key);
  const detector = createTextDetector({
    keys,
    window: options.window,
    ...(options.fpr === undefined ? {} : { fpr: options.fpr }),
    ...(options.foreignDedup === undefined ? {} : { foreignDedup: options.foreignDedup }),
  });
  const tokenizer = detector.tokenizer;
  const spoofTesting = options.spoofTest === true;
  /** The key of a watermarked document when the test applies to it. */
  const spoofTestKey = (result: AnyDocumentResult): AnyWatermarkKey | null => {
    if (!spoofTesting || result.verdict !== 'watermarked') return null;
    const key = keysById.get(result.keyId);
    return key !== undefined && spoofTestApplies(key) ? key : null;
  };
  const marked = (
    result: AnyDocumentResult,
    key: AnyWatermarkKey,
    tokens: Uint32Array | null,
    prompt?: string | readonly number[],
  ): DocumentOutcome =>
    tokens === null || !spoofTestApplies(key, tokens.length)
      ? result
      : { ...result, spoofTest: { keyId: key.keyId, tokens, ...(prompt === undefined ? {} : { prompt }) } };
  const detectDocument = (document: InputDocument): Outcome => {
    if (document.error !== undefined) return { source: document.source, error: document.error };
    try {
      const input = {
        source: document.source,
        ...(document.prompt === undefined ? {} : { prompt: document.prompt }),
      };
      const result =
        document.tokens !== undefined
          ? detector.detectTokens(document.tokens, input)
          : detector.detectText(document.text ?? '', input);
      const key = spoofTestKey(result);
      if (key === null) return result;
      // The tokens the gateway's test reads: the ids given, or the text encoded as detection encodes it.
      const tokens =
        document.tokens !== undefined
          ? Uint32Array.from(document.tokens)
          : tokenizer!.encodeFast(document.text ?? '');
      return marked(result, key, tokens, document.prompt);
    } catch (error) {
      if (error instanceof InputError) {
        return {
          source: document.source,
          error: { code: error.code, message: `${document.source}: ${error.message}` },
        };
      }
      throw error;
    }
  };
  const run = (job: Job): JobResult => {
    if (job.kind === 'tokenize') {
      // detect sends text here only when the keys' tokenizer is one tracemark ships
      if (tokenizer === null) throw new InputError('TM_ERR_TOKENIZER_UNAVAILABLE', 'no tokenizer for text');
      return { kind: 'tokens', tokens: tokenizer.encodeFast(job.text) };
    }
    if (job.kind === 'documents') return { kind: 'outcomes', outcomes: job.documents.map(detectDocument) };
    const outcomes: Outcome[] = [];
    const texts = job.kind === 'lines' ? job.texts : decodeLines(job.data, job.firstLine);
    texts.forEach((text, i) => {
      const document = parseJsonlLine(
        text,
        `${job.source}:${job.firstLine + i}`,
        options.field,
        options.promptField,
      );
      if (document !== null) outcomes.push(detectDocument(document));
    });
    return job.render === 'json' && !outcomes.some((outcome) => 'spoofTest' in outcome)
      ? { kind: 'rendered', rendered: renderJson(outcomes) }
      : { kind: 'outcomes', outcomes };
  };
  const markForSpoofTest = (result: AnyDocumentResult, tokens: Uint32Array | null): DocumentOutcome => {
    const key = spoofTestKey(result);
    return key === null ? result : marked(result, key, tokens);
  };
  const spoofTested = (outcome: Outcome, checker: SpoofingChecker): Outcome | Promise<Outcome> => {
    if (!('spoofTest' in outcome) || outcome.spoofTest === undefined) return outcome;
    const { spoofTest: pending, ...result } = outcome;
    const input = {
      tokens: pending.tokens,
      ...(pending.prompt === undefined ? {} : { prompt: pending.prompt }),
    };
    return checker.check(keysById.get(pending.keyId)!, input).then((spoofing) => ({ ...result, spoofing }));
  };
  return { detector, run, markForSpoofTest, spoofTested };
}
