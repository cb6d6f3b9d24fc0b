/**
 * Scan: a small JSONL corpus in, the radioactivity verdict out (does the corpus carry this service's
 * watermark, as text copied from it or produced by a model trained on it?), with the fake-key calibration.
 */
import type { Ref } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { type Explained, explainError, isEngineKeyScan, type ScanResponse } from './api.ts';
import { formatCount, formatPercent, formatPower, oneIn } from './format.ts';
import { MAX_DOCUMENTS, MAX_TEXT_BYTES, type ParsedCorpus, parseJsonl } from './jsonl.ts';
import { CalibrationPlot } from './plots.tsx';
import type { Session } from './session.ts';
import { DropZone, Problem } from './widgets.tsx';

export interface ScanViewProps {
  readonly session: Session;
  readonly onRefused: (problem: Explained) => void;
}

interface Loaded {
  readonly name: string;
  readonly content: string;
  readonly corpus: ParsedCorpus;
}

const MAX_FILE_BYTES = 8 * 1024 * 1024;

export function ScanView({ session, onRefused }: ScanViewProps) {
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Explained | null>(null);
  const [result, setResult] = useState<ScanResponse | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  useEffect(() => fileInput.current?.focus(), []);

  useEffect(() => {
    if (result !== null) heading.current?.focus();
  }, [result]);

  const loadFile = async (file: File) => {
    setResult(null);
    if (file.size > MAX_FILE_BYTES) {
      setLoaded(null);
      setProblem({
        title: 'This file is too large',
        detail: `It has ${formatCount(file.size)} bytes. The console scans up to ${formatCount(MAX_DOCUMENTS)} documents and 2 MiB of text; scan larger corpora with tracemark scan.`,
        signOut: false,
      });
      return;
    }
    const content = await file.text();
    setProblem(null);
    setLoaded({ name: file.name, content, corpus: parseJsonl(content, { name: file.name }) });
  };

  const choose = (textField: string, promptField: string | null) => {
    if (loaded === null) return;
    setLoaded({
      ...loaded,
      corpus: parseJsonl(loaded.content, { name: loaded.name, textField, promptField }),
    });
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    const corpus = loaded?.corpus;
    if (corpus === undefined || corpus.documents.length === 0) {
      setProblem({
        title: 'Nothing to scan',
        detail:
          loaded === null
            ? 'Choose a JSONL file first: one JSON object a line, with the text in a field such as "text".'
            : 'No line of this file has a text to scan.',
        signOut: false,
      });
      return;
    }
    if (corpus.documents.length > MAX_DOCUMENTS || corpus.textBytes > MAX_TEXT_BYTES) {
      setProblem({
        title: 'This corpus is too large for the console',
        detail: `It has ${formatCount(corpus.documents.length)} documents and ${formatCount(corpus.textBytes)} bytes of text; the console scans up to ${formatCount(MAX_DOCUMENTS)} documents and ${formatCount(MAX_TEXT_BYTES)} bytes. Scan it with tracemark scan.`,
        signOut: false,
      });
      return;
    }
    setBusy(true);
    setProblem(null);
    try {
      setResult(await session.gateway.scan({ documents: corpus.documents }));
    } catch (error) {
      const explained = explainError(error);
      if (explained.signOut) onRefused(explained);
      else setProblem(explained);
    } finally {
      setBusy(false);
    }
  };

  const corpus = loaded?.corpus ?? null;
  return (
    <>
      <section class="panel no-print" aria-labelledby="scan-heading">
        <h2 id="scan-heading">Scan a corpus</h2>
        <p class="hint">
          Does a collection of texts (a data set, a crawl, samples from another model) carry this service’s
          watermark? Upload it as JSONL: one JSON object per line, the text in a field such as{' '}
          <code>"text"</code>. Up to {formatCount(MAX_DOCUMENTS)} documents and 2 MiB of text.
        </p>
        <form onSubmit={submit}>
          <DropZone onFile={loadFile}>
            <label for="scan-file">Corpus file (JSONL)</label>
            <input
              id="scan-file"
              ref={fileInput}
              type="file"
              accept=".jsonl,.ndjson,.json,.txt,application/x-ndjson,application/json"
              onChange={(event) => {
                const file = (event.target as HTMLInputElement).files?.[0];
                if (file !== undefined) void loadFile(file);
              }}
            />
            <p class="hint">Or drop the file here.</p>
          </DropZone>
          {corpus === null || loaded === null ? null : (
            <CorpusSummary name={loaded.name} corpus={corpus} onChoose={choose} />
          )}
          <div class="row">
            <button type="submit" disabled={busy}>
              {busy ? 'Scanning…' : 'Scan corpus'}
            </button>
          </div>
        </form>
        <Problem id="scan-problem" problem={problem} />
      </section>
      <div aria-live="polite" aria-busy={busy}>
        {result === null ? null : <ScanResult result={result} headingRef={heading} />}
      </div>
    </>
  );
}

function CorpusSummary({
  name,
  corpus,
  onChoose,
}: {
  readonly name: string;
  readonly corpus: ParsedCorpus;
  readonly onChoose: (textField: string, promptField: string | null) => void;
}) {
  return (
    <div class="corpus" data-testid="corpus-summary">
      <p>
        <strong>{name}</strong>: {formatCount(corpus.documents.length)} documents,{' '}
        {formatCount(corpus.textBytes)} bytes of text
        {corpus.problems.length === 0
          ? '.'
          : `; ${formatCount(corpus.problems.length)} ${corpus.problems.length === 1 ? 'line' : 'lines'} left out (below).`}
      </p>
      {corpus.fields.length === 0 ? null : (
        <div class="row fields">
          <label>
            <span>Text field</span>
            <select
              value={corpus.textField ?? ''}
              onChange={(event) => onChoose((event.target as HTMLSelectElement).value, corpus.promptField)}
            >
              {corpus.fields.map((field) => (
                <option key={field} value={field}>
                  {field}
                </option>
              ))}
            </select>
          </label>
          <label>
            <span>Prompt field (its word pairs are not scored)</span>
            <select
              value={corpus.promptField ?? ''}
              onChange={(event) => {
                const value = (event.target as HTMLSelectElement).value;
                onChoose(corpus.textField ?? '', value === '' ? null : value);
              }}
            >
              <option value="">none</option>
              {corpus.fields
                .filter((field) => field !== corpus.textField)
                .map((field) => (
                  <option key={field} value={field}>
                    {field}
                  </option>
                ))}
            </select>
          </label>
        </div>
      )}
      {corpus.problems.length === 0 ? null : (
        <ul class="line-problems">
          {corpus.problems.slice(0, 5).map((problem) => (
            <li key={problem.line}>
              Line {problem.line}: {problem.message}
            </li>
          ))}
          {corpus.problems.length > 5 ? <li>… and {formatCount(corpus.problems.length - 5)} more</li> : null}
        </ul>
      )}
    </div>
  );
}

const SCAN_HEADLINES = {
  radioactive: {
    title: 'Radioactive',
    tone: 'detected',
    sentence:
      'This corpus carries this service’s watermark: it contains text generated by this service, or by a model trained on such text.',
  },
  not_radioactive: {
    title: 'Not radioactive',
    tone: 'clear',
    sentence:
      'The corpus shows no trace of this service’s watermark, and the data rule out more than a small share of it.',
  },
  insufficient: {
    title: 'Inconclusive',
    tone: 'unknown',
    sentence: 'The scan cannot decide either way; the reason is below.',
  },
} as const;

function ScanResult({
  result,
  headingRef,
}: {
  readonly result: ScanResponse;
  readonly headingRef: Ref<HTMLHeadingElement>;
}) {
  const headline = SCAN_HEADLINES[result.verdict];
  const key = result.keys[0];
  // An engine's key (engine-native mode) has an exact null and a score; tracemark's, green counts and fake keys.
  const calibrated = key === undefined || isEngineKeyScan(key) ? null : key;
  const documents =
    key === undefined
      ? []
      : isEngineKeyScan(key)
        ? key.topDocuments.map((document) => ({ ...document, numGreen: null }))
        : key.topDocuments;
  return (
    <section class="result" aria-labelledby="scan-verdict-heading" data-verdict={result.verdict}>
      <div class={`verdict ${headline.tone}`}>
        <h2 id="scan-verdict-heading" tabIndex={-1} ref={headingRef}>
          {headline.title}
        </h2>
        <p>{headline.sentence}</p>
        <p class="reason">{result.reason}</p>
      </div>
      {key === undefined ? null : (
        <>
          <dl class="numbers">
            <div>
              <dt>p-value, corrected</dt>
              <dd>
                {formatPower(key.log10PAdjusted)}
                {oneIn(key.log10PAdjusted) === null ? null : (
                  <span class="aside"> ({oneIn(key.log10PAdjusted)})</span>
                )}
              </dd>
            </div>
            <div>
              <dt>Threshold</dt>
              <dd>{result.alpha}</dd>
            </div>
            {calibrated === null ? (
              <div>
                <dt>Score / scored units</dt>
                <dd>
                  {isEngineKeyScan(key) ? key.score.toFixed(1) : '—'} / {formatCount(key.numScored)} (
                  {key.scheme})
                </dd>
              </div>
            ) : (
              <div>
                <dt>Green / scored tokens</dt>
                <dd>
                  {formatCount(calibrated.numGreen)} / {formatCount(calibrated.numScored)} (
                  {formatPercent(calibrated.greenFraction)}; chance: {formatPercent(calibrated.gamma)})
                </dd>
              </div>
            )}
            {calibrated === null ? null : (
              <div>
                <dt>Our key among {calibrated.calibration.fakeKeys} fake keys</dt>
                <dd>
                  rank {calibrated.calibration.rank} of {calibrated.calibration.fakeKeys + 1}
                </dd>
              </div>
            )}
          </dl>
          <p class="caption">
            {formatCount(result.numDocuments)} documents, {formatCount(result.numTokens)} tokens
            {result.numPromptTokens > 0
              ? ` (and ${formatCount(result.numPromptTokens)} prompt tokens, not scored)`
              : ''}
            .
          </p>
          <h3>Calibration</h3>
          {calibrated === null ? (
            <p class="caption">
              No fake keys: under this key every distinct scored unit is an independent draw under the null,
              so the p-value is exact.
            </p>
          ) : (
            <>
              <CalibrationPlot fakePValues={calibrated.fakeKeyRandomizedP} trueLog10P={calibrated.log10P} />
              <p class="caption">
                The same test run with {calibrated.calibration.fakeKeys} keys that nobody ever used (derived
                from the public label <code>{calibrated.calibration.seed}</code>) shows what chance alone
                produces on this corpus: their dots should lie along the diagonal.{' '}
                {calibrated.calibration.uniform === false
                  ? `They do not (KS p = ${formatPower(Math.log10(calibrated.calibration.ksPValue))}): the test is not calibrated on this corpus, so no verdict is given.`
                  : `They do (Kolmogorov–Smirnov p = ${formatPower(Math.log10(Math.max(calibrated.calibration.ksPValue, 1e-300)))}).`}{' '}
                The red line is our key: far above the dots means far more evidence than chance gives.
              </p>
            </>
          )}
          {documents.length === 0 || key.numScored === 0 ? null : (
            <>
              <h3>Documents with the most evidence</h3>
              <div class="table-scroll">
                <table class="documents">
                  <thead>
                    <tr>
                      <th scope="col">document</th>
                      <th scope="col">green / scored</th>
                      <th scope="col">p-value (corrected for the documents searched)</th>
                    </tr>
                  </thead>
                  <tbody>
                    {documents.map((document) => (
                      <tr key={document.document}>
                        <td>{document.source}</td>
                        <td>
                          {document.numGreen === null ? '—' : formatCount(document.numGreen)} /{' '}
                          {formatCount(document.numScored)}
                        </td>
                        <td>{formatPower(document.log10PCorrected)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </>
          )}
        </>
      )}
    </section>
  );
}
