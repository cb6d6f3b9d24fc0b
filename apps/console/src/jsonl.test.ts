import { describe, expect, it } from 'vitest';
import { parseJsonl } from './jsonl.ts';

describe('parseJsonl', () => {
  const content = [
    '{"id":1,"prompt":"Say hi","output":"Hello there"}',
    '',
    'not json',
    '{"id":2,"prompt":"Say bye","output":"Goodbye"}',
    '{"id":3}',
    '"a bare string line"',
    '[1,2]',
  ].join('\r\n');

  it('finds the text and prompt fields, keeps good lines and reports bad ones by number', () => {
    const corpus = parseJsonl(content, { name: 'c.jsonl' });
    expect(corpus.textField).toBe('output');
    expect(corpus.promptField).toBe('prompt');
    expect(corpus.fields).toEqual(['prompt', 'output']);
    expect(corpus.documents).toEqual([
      { text: 'Hello there', prompt: 'Say hi', source: 'c.jsonl:1' },
      { text: 'Goodbye', prompt: 'Say bye', source: 'c.jsonl:4' },
      { text: 'a bare string line', source: 'c.jsonl:6' },
    ]);
    expect(corpus.problems).toEqual([
      { line: 3, message: 'not valid JSON' },
      { line: 5, message: 'no string field "output"' },
      { line: 7, message: 'neither a string nor an object with a text field' },
    ]);
    expect(corpus.textBytes).toBe('Hello thereSay hiGoodbyeSay byea bare string line'.length);
  });

  it('takes the fields the person chooses, or no prompt', () => {
    const corpus = parseJsonl(content, { textField: 'prompt', promptField: null });
    expect(corpus.documents.map((document) => document.text)).toEqual([
      'Say hi',
      'Say bye',
      'a bare string line',
    ]);
    expect(corpus.documents.every((document) => document.prompt === undefined)).toBe(true);
  });

  it('counts UTF-8 bytes', () => {
    expect(parseJsonl('{"text":"é日"}').textBytes).toBe(5);
  });
});
