export {
  createTextDetector,
  type DetectInput,
  type DetectorOptions,
  type DocumentResult,
  type DocumentSession,
  type KeyResult,
  reportedKey,
  type TextDetector,
} from './detector.ts';
export { type ErrorCode, InputError } from './errors.ts';
export { readKeyFile, writeKeyFile } from './key-files.ts';
