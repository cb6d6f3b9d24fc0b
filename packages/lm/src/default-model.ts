import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_TOKENIZER_ID, getTokenizer, isTokenizerId, type TokenizerId } from '@tracemark/tokenizers';
import { humanCorpusFingerprint, loadHumanCorpus } from './human-corpus.js';
import { DEFAULT_ORDER, MAX_ORDER, MIN_ORDER, MODEL_FORMAT_VERSION, NgramModel } from './ngram-model.js';
import { trainFromText } from './train.js';

export interface LoadDefaultModelOptions {
  /** Default: `$TRACEMARK_CACHE_DIR`, else `~/.cache/tracemark`. */
  readonly cacheDir?: string;
  readonly tokenizerId?: TokenizerId;
  /** 1 … 6, default 4. */
  readonly order?: number;
}

/** `$TRACEMARK_CACHE_DIR` if set and non-empty, else `~/.cache/tracemark`. */
export function defaultCacheDirectory(): string {
  const fromEnvironment = process.env.TRACEMARK_CACHE_DIR;
  return fromEnvironment !== undefined && fromEnvironment !== ''
    ? fromEnvironment
    : join(homedir(), '.cache', 'tracemark');
}

/** The cache file's name: corpus versions, tokenizer, order and format version, so a change misses the cache. */
export async function defaultModelFileName(tokenizerId: TokenizerId, order: number): Promise<string> {
  return `lm-${await humanCorpusFingerprint()}-${tokenizerId}-order${order}-format${MODEL_FORMAT_VERSION}.tmng`;
}

const pending = new Map<string, Promise<NgramModel>>();

/**
 * The embedded default model: interpolated modified Kneser-Ney over the train split of the Brown corpus and
 * nlp-corpus. Trained on first use (seconds), then read from the cache directory; concurrent calls in one
 * process share one load.
 */
export function loadDefaultModel(options: LoadDefaultModelOptions = {}): Promise<NgramModel> {
  const { tokenizerId = DEFAULT_TOKENIZER_ID, order = DEFAULT_ORDER } = options;
  if (!isTokenizerId(tokenizerId)) {
    try {
      getTokenizer(tokenizerId);
    } catch (error) {
      return Promise.reject(error);
    }
  }
  if (!Number.isInteger(order) || order < MIN_ORDER || order > MAX_ORDER) {
    return Promise.reject(
      new RangeError(
        `options.order must be an integer in [${MIN_ORDER}, ${MAX_ORDER}], got ${String(order)}`,
      ),
    );
  }
  const cacheDir = options.cacheDir ?? defaultCacheDirectory();
  const key = `${cacheDir}\0${tokenizerId}\0${order}`;
  let model = pending.get(key);
  if (model === undefined) {
    model = loadOrTrain(cacheDir, tokenizerId, order);
    pending.set(key, model);
    model.catch(() => pending.delete(key));
  }
  return model;
}

async function loadOrTrain(cacheDir: string, tokenizerId: TokenizerId, order: number): Promise<NgramModel> {
  const path = join(cacheDir, await defaultModelFileName(tokenizerId, order));
  try {
    const model = NgramModel.deserialize(await readFile(path));
    if (model.tokenizerId === tokenizerId && model.order === order) return model;
  } catch {
    // Missing or unreadable: train afresh and replace it.
  }
  const documents = await loadHumanCorpus({ split: 'train' });
  const model = await trainFromText({
    texts: documents.map((document) => document.text),
    tokenizer: tokenizerId,
    order,
    metadata: { corpus: await humanCorpusFingerprint(), split: 'train' },
  });
  await writeAtomically(path, model.serialize()).catch(() => {
    // A read-only or full disk costs only the cache; the model is still good.
  });
  return model;
}

/** Writes a cache file under a temporary name and renames it into place, so no reader sees half of it. */
export async function writeAtomically(path: string, bytes: Uint8Array): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  const temporary = `${path}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2)}.tmp`;
  try {
    await writeFile(temporary, bytes);
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
