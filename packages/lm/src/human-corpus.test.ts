import { describe, expect, it } from 'vitest';
import { brownFileToText, detokenizeBrownSentence } from './brown.js';
import { humanCorpusFingerprint, loadHumanCorpus } from './human-corpus.js';

describe('Brown detokenization', () => {
  it('strips tags and spaces punctuation as prose', () => {
    const file = [
      '',
      '',
      "\tThe/at jury/nn said/vbd ``/`` it's/pps+bez fine/jj ''/'' ,/, and/cc left/vbd ./.",
      'It/pps cost/vbd $30/nns (/( or/cc 1/2/cd )/) ;/. did/dod it/pps ?/.',
      '',
      '',
      'Merger/nn-hl proposed/vbn-hl',
      "He/pps met/vbd Jr./np ./. A/at '/' pro/jj '/' vote/nn --/-- yes/rb !/.",
    ].join('\n');
    expect(brownFileToText(file)).toBe(
      [
        'The jury said "it\'s fine", and left. It cost $30 (or 1/2); did it?',
        'Merger proposed',
        "He met Jr. A 'pro' vote -- yes!",
      ].join('\n\n'),
    );
  });

  it('joins a sentence', () => {
    expect(detokenizeBrownSentence(['``', 'Hi', "''", ',', 'she', 'said', '.'])).toBe('"Hi", she said.');
  });
});

describe('loadHumanCorpus', () => {
  it('holds 500 Brown documents and 5,000 nlp-corpus documents, 5% held out', async () => {
    const all = await loadHumanCorpus();
    const brown = await loadHumanCorpus({ source: 'brown' });
    const nlp = await loadHumanCorpus({ source: 'nlp-corpus', split: 'all' });
    expect(brown).toHaveLength(500);
    expect(nlp).toHaveLength(5000);
    expect(all.map((d) => d.id)).toEqual([...brown, ...nlp].map((d) => d.id));
    expect(await loadHumanCorpus({ split: 'test', source: 'brown' })).toHaveLength(25);
    expect(await loadHumanCorpus({ split: 'test', source: 'nlp-corpus' })).toHaveLength(250);

    const train = await loadHumanCorpus({ split: 'train' });
    const test = await loadHumanCorpus({ split: 'test' });
    expect(train.length + test.length).toBe(all.length);
    const trainIds = new Set(train.map((d) => d.id));
    expect(test.some((d) => trainIds.has(d.id))).toBe(false);
    expect(new Set(all.map((d) => d.id)).size).toBe(all.length);
  });

  it('is deterministic and gives plain text', async () => {
    const [first] = await loadHumanCorpus({ source: 'brown', split: 'test' });
    expect(first!.id).toBe('brown/ca01');
    expect(first!.text.startsWith('The Fulton County Grand Jury said Friday an investigation of')).toBe(true);
    const test = await loadHumanCorpus({ split: 'test' });
    expect(test.map((d) => d.id).slice(0, 3)).toEqual(['brown/ca01', 'brown/ca21', 'brown/ca41']);
    expect(test.map((d) => d.id)).toContain('nlp-corpus/doc-0/00');
    for (const document of await loadHumanCorpus({ source: 'brown' })) {
      expect(document.text).not.toMatch(/``|[a-z]\/(at|nn|vbd|in) /);
      expect(document.text.length).toBeGreaterThan(5000);
    }
    for (const document of test) expect(document.text.trim()).not.toBe('');
  });

  it('names the corpus versions in its fingerprint', async () => {
    expect(await humanCorpusFingerprint()).toMatch(/^brown[\d.]+\+nlp-corpus[\d.]+\+v\d+$/);
  });

  it('validates options', async () => {
    await expect(loadHumanCorpus({ split: 'dev' as 'all' })).rejects.toThrow(/split/);
    await expect(loadHumanCorpus({ source: 'wiki' as 'brown' })).rejects.toThrow(/source/);
  });
});
