export {
  createDetection,
  DEFAULT_FPR,
  DEFAULT_MIN_WINDOW,
  DEFAULT_MISS_RATE,
  type Detection,
  type DetectionSession,
  type DetectOptions,
  decideVerdict,
  detect,
  type KeyDetection,
  type ResolvedVerdictOptions,
  resolveVerdictOptions,
  type Verdict,
  type VerdictOptions,
  type WindowOptions,
  type WindowResult,
  windowScan,
} from './detect.ts';
export {
  type GeneratedToken,
  type GenerateOptions,
  generateAll,
  generateTokens,
  type LogitsSource,
} from './generate.ts';
export {
  type CreateKeyOptions,
  createWatermarkKey,
  DEFAULT_TOKENIZER,
  derivePrfKeys,
  deriveSubkey,
  deriveSubkeySecret,
  generateSecret,
  KEY_ID_PREFIX,
  type KeyFile,
  KeyFileError,
  keyIdOf,
  type PrfKeys,
  parseKeyFile,
  SECRET_LENGTH,
  serializeKeyFile,
  type WatermarkKey,
} from './keys.ts';
export { createRandom, type RandomSource } from './random.ts';
export {
  type Logits,
  type SampleOptions,
  type SampleResult,
  type SparseLogits,
  sampleToken,
  watermarkLogits,
  watermarkLogitsInto,
} from './sampling.ts';
export {
  biasedGreenFraction,
  createScheme,
  DEFAULT_SCHEME_PARAMS,
  SCHEME_NAMES,
  type Scheme,
  type SchemeName,
  type SchemeParams,
} from './scheme.ts';
export {
  type ChunkScore,
  DedupTape,
  type ScoreCounts,
  Scorer,
  type ScorerOptions,
  TOKEN_STATUS_NAMES,
  TokenStatus,
  type TokenStatusName,
} from './scoring.ts';
export { createSipHasher, type SipHasher, siphashHex } from './siphash.ts';
export {
  bonferroniLog10,
  holmAdjustLog10,
  log10BinomialCdf,
  log10BinomialSf,
  log10NormalSf,
  logBinomialCdf,
  logBinomialPmf,
  logBinomialSf,
  logNormalSf,
  wilsonInterval,
  zScore,
} from './statistics.ts';
export { createWatermarker, type Watermarker, type WatermarkerOptions } from './watermarker.ts';
