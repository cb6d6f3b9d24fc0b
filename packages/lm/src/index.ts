export { brownFileToText, detokenizeBrownSentence } from './brown.js';
export {
  defaultCacheDirectory,
  defaultModelFileName,
  type LoadDefaultModelOptions,
  loadDefaultModel,
} from './default-model.js';
export {
  type HumanCorpusSource,
  type HumanCorpusSplit,
  type HumanDocument,
  humanCorpusFingerprint,
  type LoadHumanCorpusOptions,
  loadHumanCorpus,
  NLP_CORPUS_SENTENCES_PER_DOCUMENT,
  TEST_SPLIT_MODULUS,
} from './human-corpus.js';
export { logitsSource, type ModelLogitsSource } from './logits-source.js';
export {
  type Candidates,
  DEFAULT_MAX_CANDIDATES,
  DEFAULT_ORDER,
  MAX_ORDER,
  MIN_ORDER,
  MODEL_FORMAT_VERSION,
  type NgramLevel,
  NgramModel,
  type NgramTables,
} from './ngram-model.js';
export { BROWN_BIGRAMS_LEARNABILITY, brownBigramCounts } from './reference-bigrams.js';
export { type LoadTextCorpusOptions, loadTextCorpus } from './text-corpus.js';
export {
  type Discount,
  modifiedKneserNeyDiscounts,
  type TrainFromTextOptions,
  type TrainNgramModelOptions,
  trainFromText,
  trainNgramModel,
} from './train.js';
