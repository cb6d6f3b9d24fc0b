/**
 * A JSONL corpus read in the browser, as `tracemark scan --field F --prompt-field P` reads one: one JSON
 * object (or string) a line, blank lines skipped, a bad line reported with its number and left out.
 */

export const MAX_DOCUMENTS = 2000;
export const MAX_TEXT_BYTES: number = 2 * 1024 * 1024;

/** Fields tried, in order, when the person has not chosen one. */
const TEXT_FIELDS = ['text', 'output', 'completion', 'content', 'response', 'answer'] as const;
const PROMPT_FIELDS = ['prompt', 'input', 'question'] as const;

export interface CorpusDocument {
  readonly text: string;
  readonly prompt?: string;
  readonly source: string;
}

export interface LineProblem {
  readonly line: number;
  readonly message: string;
}

export interface ParsedCorpus {
  readonly documents: readonly CorpusDocument[];
  /** Fields holding a string in at least one line, in order of first appearance. */
  readonly fields: readonly string[];
  readonly textField: string | null;
  readonly promptField: string | null;
  readonly problems: readonly LineProblem[];
  /** UTF-8 bytes of the texts and prompts kept. */
  readonly textBytes: number;
}

export interface ParseOptions {
  /** Default: the first of text, output, completion, content, response, answer that the lines have. */
  readonly textField?: string | null;
  /** Default: prompt, input or question when present; null for none. */
  readonly promptField?: string | null;
  /** Names documents in the result: `<name>:<line>`. */
  readonly name?: string;
}

export function parseJsonl(content: string, options: ParseOptions = {}): ParsedCorpus {
  const lines = content.split(/\r?\n/);
  const values: { line: number; value: unknown }[] = [];
  const problems: LineProblem[] = [];
  const fields: string[] = [];
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line === '') return;
    try {
      const value: unknown = JSON.parse(line);
      values.push({ line: index + 1, value });
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
        for (const [field, fieldValue] of Object.entries(value)) {
          if (typeof fieldValue === 'string' && !fields.includes(field)) fields.push(field);
        }
      }
    } catch {
      problems.push({ line: index + 1, message: 'not valid JSON' });
    }
  });
  const textField =
    options.textField ?? TEXT_FIELDS.find((field) => fields.includes(field)) ?? fields[0] ?? null;
  const promptField =
    options.promptField === undefined
      ? (PROMPT_FIELDS.find((field) => fields.includes(field) && field !== textField) ?? null)
      : options.promptField;
  const encoder = new TextEncoder();
  const documents: CorpusDocument[] = [];
  let textBytes = 0;
  const name = options.name ?? 'line';
  for (const { line, value } of values) {
    let text: unknown;
    let prompt: unknown;
    const isRecord = typeof value === 'object' && value !== null && !Array.isArray(value);
    if (typeof value === 'string') {
      text = value;
    } else if (isRecord) {
      const record = value as Record<string, unknown>;
      text = textField === null ? undefined : record[textField];
      prompt = promptField === null ? undefined : record[promptField];
    }
    if (typeof text !== 'string') {
      problems.push({
        line,
        message:
          textField === null || !isRecord
            ? 'neither a string nor an object with a text field'
            : `no string field "${textField}"`,
      });
      continue;
    }
    textBytes +=
      encoder.encode(text).length + (typeof prompt === 'string' ? encoder.encode(prompt).length : 0);
    documents.push({
      text,
      ...(typeof prompt === 'string' ? { prompt } : {}),
      source: `${name}:${line}`,
    });
  }
  problems.sort((a, b) => a.line - b.line);
  return { documents, fields, textField, promptField, problems, textBytes };
}
