export {
  CandidateStatus,
  evaluateKey,
  evaluateKeyBySeed,
  type FakeKeyCounts,
  type FakeKeyJob,
  type FakeKeyScheme,
  fakeKeyTrials,
  type KeyEvaluation,
  runFakeKeyJob,
} from './evaluate.ts';
export {
  type CandidateOrigins,
  type EvaluationTape,
  EvidenceTape,
  type GroupedCandidates,
  groupByWindow,
  type TapeCounts,
  type TapeLayout,
} from './evidence-tape.ts';
export {
  DEFAULT_FAKE_KEY_SEED,
  fakeKeyMasks,
  fakeKeyUniform,
  fakeTrialSecret,
} from './fake-keys.ts';
export {
  type AnyScanOptions,
  type AnyScanReport,
  type CorpusScorer,
  ForeignCorpusTest,
  type ForeignDocumentReport,
  type ForeignKeyScan,
  type ForeignScanKey,
  isForeignKeyScan,
  isForeignScanKey,
  scanCorpusAnyKeys,
} from './foreign-scan.ts';
export { type GreenFraction, measureGreenFraction } from './green-fraction.ts';
export {
  createGumbelCorpusScorer,
  gumbelScanKey,
  isGumbelKey,
  TRACEMARK_KEY_KIND,
} from './gumbel-scan.ts';
export {
  filterWindowWidth,
  IssuedWindowSet,
  type IssuedWindowSetBuilder,
  type IssuedWindowSetOptions,
} from './issued.ts';
export {
  countLeftHash,
  countMixed,
  type KernelOutput,
  kernelKeyBytes,
  leftHashGreenValues,
  type WindowGroupedTape,
} from './kernel.ts';
export {
  layoutCounts,
  mergeKeyScores,
  mergePartition,
  type PartitionedScanInput,
  type PartitionKeyScore,
  type PartitionScoreOptions,
  type PartitionTape,
  partitionedScanReport,
  type ShardCounts,
  type ShardFragment,
  ShardTape,
  scorePartition,
  tokenPartition,
} from './partitioned-tape.ts';
export { bestWindows, type DocumentEvidence, type TapeWindow, topDocuments } from './passages.ts';
export {
  assembleScanReport,
  type Calibration,
  type CalibrationRequest,
  type Calibrator,
  DEFAULT_CALIBRATION_THRESHOLD,
  DEFAULT_FAKE_KEYS,
  DEFAULT_MINIMUM_DOSE,
  DEFAULT_SCAN_ALPHA,
  DEFAULT_SCAN_MISS_RATE,
  type DocumentReport,
  type Dose,
  type FakeKeyRunner,
  fakeKeyPValues,
  type KeyEvidence,
  type KeyScan,
  type KeyTally,
  type Location,
  MIN_FAKE_KEYS_FOR_VERDICT,
  NO_EVIDENCE_LEVEL,
  type PassageReport,
  type PoolScan,
  refuseGumbelKey,
  runFakeKeyJobsHere,
  type ScanDocument,
  type ScanOptions,
  type ScanReport,
  type ScanTally,
  type ScanVerdict,
  scanCorpus,
  splitFakeKeyJobs,
} from './scan.ts';
export {
  kolmogorovSmirnovStatistic,
  kolmogorovSmirnovUniform,
  kolmogorovSurvival,
  type UniformityTest,
} from './uniformity.ts';
