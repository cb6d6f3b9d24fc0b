/**
 * Verify: a text in (pasted, dropped or chosen), the verdict out in plain words, with the text's green and red
 * tokens, the detected passage, a plot of the evidence, the issuance match, the proof status, and the signed
 * report to download (the JSON file, or the page `tracemark evidence render` writes) or print.
 */
import type { EvidencePredicate } from '@tracemark/provenance';
import type { Ref } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { type Explained, explainError, type VerifyResponse } from './api.ts';
import {
  type CheckedReport,
  checkpointSummary,
  checkReport,
  detectedPassage,
  evidenceCurve,
  gammaOf,
  reportFile,
  reportPage,
  STATUS_WORDS,
  tokenPieces,
} from './evidence.ts';
import { formatCount, formatPower, oneIn } from './format.ts';
import { EvidencePlot } from './plots.tsx';
import type { Session } from './session.ts';
import { DropZone, download, Problem } from './widgets.tsx';

/** The gateway's default body limit is 1 MiB; leave room for the JSON around the text. */
const MAX_TEXT_BYTES = 900 * 1024;

export interface VerifyViewProps {
  readonly session: Session;
  readonly onRefused: (problem: Explained) => void;
}

interface Result {
  readonly response: VerifyResponse;
  readonly checked: CheckedReport;
}

export function VerifyView({ session, onRefused }: VerifyViewProps) {
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Explained | null>(null);
  const [result, setResult] = useState<Result | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  const textarea = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    if (result !== null) heading.current?.focus();
  }, [result]);
  // Signing in lands here: the text box is the next thing to use.
  useEffect(() => textarea.current?.focus(), []);

  const loadFile = async (file: File) => {
    if (file.size > MAX_TEXT_BYTES) {
      setProblem({
        title: 'This file is too large',
        detail: `It has ${formatCount(file.size)} bytes; the console verifies up to ${formatCount(MAX_TEXT_BYTES)} bytes of text at a time.`,
        signOut: false,
      });
      return;
    }
    setProblem(null);
    setText(await file.text());
    textarea.current?.focus();
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    if (text.trim() === '') {
      setProblem({
        title: 'Nothing to verify',
        detail: 'Paste a text, or drop a text file here.',
        signOut: false,
      });
      textarea.current?.focus();
      return;
    }
    if (new TextEncoder().encode(text).length > MAX_TEXT_BYTES) {
      setProblem({
        title: 'This text is too long',
        detail: `The console verifies up to ${formatCount(MAX_TEXT_BYTES)} bytes at a time; verify it in parts, or use tracemark verify.`,
        signOut: false,
      });
      return;
    }
    setBusy(true);
    setProblem(null);
    try {
      const response = await session.gateway.verify(text);
      setResult({ response, checked: checkReport(response, session.serviceKeys) });
    } catch (error) {
      const explained = explainError(error);
      if (explained.signOut) onRefused(explained);
      else setProblem(explained);
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <section class="panel no-print" aria-labelledby="verify-heading">
        <h2 id="verify-heading">Verify a text</h2>
        <p class="hint">
          Was this text produced by this service, and does it carry its watermark? Paste it below or drop a
          text file on the box.
        </p>
        <form onSubmit={submit}>
          <DropZone onFile={loadFile}>
            <label for="verify-text">Text to verify</label>
            <textarea
              id="verify-text"
              ref={textarea}
              rows={9}
              value={text}
              onInput={(event) => setText((event.target as HTMLTextAreaElement).value)}
              placeholder="Paste the text here, or drop a .txt file"
            />
            <div class="row">
              <label class="file">
                <span>Or choose a text file</span>
                <input
                  type="file"
                  accept=".txt,.md,.text,text/plain"
                  onChange={(event) => {
                    const file = (event.target as HTMLInputElement).files?.[0];
                    if (file !== undefined) void loadFile(file);
                  }}
                />
              </label>
              <span class="count" aria-live="off">
                {formatCount(text.length)} characters
              </span>
            </div>
          </DropZone>
          <div class="row">
            <button type="submit" disabled={busy}>
              {busy ? 'Verifying…' : 'Verify'}
            </button>
            {text === '' ? null : (
              <button
                type="button"
                class="secondary"
                onClick={() => {
                  setText('');
                  setResult(null);
                  setProblem(null);
                  textarea.current?.focus();
                }}
              >
                Clear
              </button>
            )}
          </div>
        </form>
        <Problem id="verify-problem" problem={problem} />
      </section>
      <div aria-live="polite" aria-busy={busy}>
        {result === null ? null : <VerifyResult result={result} headingRef={heading} />}
      </div>
    </>
  );
}

interface Headline {
  readonly title: string;
  readonly tone: 'detected' | 'clear' | 'unknown';
  readonly sentence: string;
}

export function headlineOf(response: VerifyResponse, gamma: number): Headline {
  const d = response.detection;
  const expected = Math.round(d.numScored * gamma);
  // A key without green lists (a Gumbel scheme, an engine's key such as vllm:gumbel) has a score instead.
  const evidence =
    d.numGreen === null
      ? `its ${formatCount(d.numScored)} scored tokens give the ${d.scheme ?? 'scheme'}'s score ${(d.score ?? 0).toFixed(1)}, where about ${formatCount(d.numScored)} would be expected by chance`
      : `${formatCount(d.numGreen)} of its ${formatCount(d.numScored)} scored tokens are green, where about ${formatCount(expected)} would be by chance`;
  switch (response.verdict) {
    case 'watermarked':
      return {
        title: 'Watermarked',
        tone: 'detected',
        sentence: `This text carries this service’s watermark: ${evidence}.`,
      };
    case 'not_watermarked':
      return {
        title: 'Not watermarked',
        tone: 'clear',
        sentence: `The watermark was not found: ${formatCount(d.numGreen ?? 0)} of ${formatCount(d.numScored)} scored tokens are green, about what text without the watermark shows. This does not prove that a person wrote the text.`,
      };
    default:
      return {
        title: 'Too little text to decide',
        tone: 'unknown',
        sentence: `Only ${formatCount(d.numScored)} tokens (words and word pieces) could be scored, too few to tell watermarked from unwatermarked text reliably. Paste a longer passage: a few hundred words usually suffice.`,
      };
  }
}

function issuanceSentence(response: VerifyResponse): string {
  const issuance = response.issuance;
  if (issuance === null) return 'No output recorded in this service’s issuance log matches this text.';
  if (issuance.match === 'exact')
    return `This exact text was issued by this service: entry ${formatCount(issuance.leafIndex)} of its tamper-evident issuance log.`;
  return `This text is an edited copy of an output this service issued (entry ${formatCount(issuance.leafIndex)} of its issuance log): they share about ${Math.round(issuance.similarity * 100)}% of their wording.`;
}

function VerifyResult({
  result,
  headingRef,
}: {
  readonly result: Result;
  readonly headingRef: Ref<HTMLHeadingElement>;
}) {
  const { response, checked } = result;
  const predicate = checked.predicate;
  const gamma = predicate === null ? 0.25 : gammaOf(predicate);
  const headline = headlineOf(response, gamma);
  const d = response.detection;
  const chance = oneIn(d.log10PAdjusted);
  const fileName = (extension: string) =>
    `tracemark-evidence-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}.${extension}`;
  const saveReport = () => download(fileName('json'), 'application/json', reportFile(response));
  // The page is drawn on demand: the report as `tracemark evidence render` writes it.
  const savePage =
    checked.verification === null
      ? null
      : () => download(fileName('html'), 'text/html', reportPage(response, checked) ?? '');
  return (
    <section class="result" aria-labelledby="verdict-heading" data-verdict={response.verdict}>
      <h2 class="print-only">Watermark and provenance report</h2>
      <div class={`verdict ${headline.tone}`}>
        <h2 id="verdict-heading" tabIndex={-1} ref={headingRef}>
          {headline.title}
        </h2>
        <p>{headline.sentence}</p>
        <p>{issuanceSentence(response)}</p>
        {response.spoofing?.flagged === true ? (
          <p class="warning" data-testid="spoofing">
            The marked words of this text sit on word pairs that are common in ordinary text more often than a
            genuine mark's do (p = {formatPower(response.spoofing.log10P)}): the mark may have been forged by
            someone who learned it from this service's outputs. Carrying the mark is not proof that this
            service issued the text.
          </p>
        ) : null}
        {checked.signatureOk ? null : (
          <p class="warning">
            The signed report that came with this answer did not verify in this browser, so nothing below can
            be relied on.
          </p>
        )}
      </div>
      <dl class="numbers">
        <div>
          <dt>p-value, corrected</dt>
          <dd>
            <span data-testid="p-value">{formatPower(d.log10PAdjusted)}</span>
            {chance === null ? null : <span class="aside"> ({chance})</span>}
          </dd>
        </div>
        <div>
          <dt>Threshold</dt>
          <dd>{d.fpr}</dd>
        </div>
        {d.numGreen === null ? (
          <div>
            <dt>Score / scored tokens</dt>
            <dd>
              {(d.score ?? 0).toFixed(1)} / {formatCount(d.numScored)}
            </dd>
          </div>
        ) : (
          <div>
            <dt>Green / scored tokens</dt>
            <dd>
              {formatCount(d.numGreen)} / {formatCount(d.numScored)}
            </dd>
          </div>
        )}
        <div>
          <dt>Watermark keys tested</dt>
          <dd>{d.keysTested}</dd>
        </div>
      </dl>
      <p class="caption">
        The p-value is the probability that text without the watermark shows at least this much evidence
        {d.keysTested > 1 ? `, corrected for testing ${d.keysTested} keys` : ''}. The text is called
        watermarked when it is at most the threshold.
      </p>
      <div class="actions no-print">
        <button type="button" onClick={saveReport}>
          Download signed evidence (JSON)
        </button>
        {savePage === null ? null : (
          <button type="button" class="secondary" onClick={savePage}>
            Download report page (HTML)
          </button>
        )}
        <button type="button" class="secondary" onClick={() => window.print()}>
          Print report
        </button>
      </div>
      {predicate === null ? (
        <p class="warning">The report’s contents cannot be read.</p>
      ) : (
        <ReportBody predicate={predicate} response={response} checked={checked} />
      )}
    </section>
  );
}

function ReportBody({
  predicate,
  response,
  checked,
}: {
  readonly predicate: EvidencePredicate;
  readonly response: VerifyResponse;
  readonly checked: CheckedReport;
}) {
  const passage = detectedPassage(predicate);
  const statuses = predicate.tokens?.statuses ?? '';
  return (
    <>
      <h3>The text</h3>
      <TokenText predicate={predicate} passage={passage} />
      <h3>Evidence along the text</h3>
      {statuses === '' || !/[GR]/.test(statuses) ? (
        <p class="caption">
          {statuses === ''
            ? 'The report has no per-token data to plot.'
            : 'This watermark has no green tokens to plot: its evidence is the score of the whole text (or of its best passage).'}
        </p>
      ) : (
        <>
          <EvidencePlot
            points={evidenceCurve(statuses, gammaOf(predicate))}
            numTokens={statuses.length}
            threshold={-Math.log10(predicate.detection.alpha)}
            alpha={predicate.detection.alpha}
            passage={passage}
          />
          <p class="caption">
            The line is the strength of the evidence after reading the text up to each point: the higher, the
            less likely that the green tokens came about by chance. Above the dashed line, the text read so
            far would be called watermarked on its own.
            {passage === null ? '' : ' The shaded band is the detected watermarked passage.'}
          </p>
        </>
      )}
      {passage === null ? null : (
        <p>
          <strong>Detected watermarked passage:</strong> tokens {formatCount(passage.startToken + 1)} to{' '}
          {formatCount(passage.endToken)}, {formatCount(passage.numGreen)} of {formatCount(passage.numScored)}{' '}
          scored tokens green (p = {formatPower(passage.log10PCorrected ?? passage.log10P)}, corrected for the
          passages searched).
        </p>
      )}
      <h3>Issuance record</h3>
      <Issuance predicate={predicate} response={response} />
      <h3>Proof status</h3>
      <ProofStatus checked={checked} />
      <h3>Report details</h3>
      <ReportDetails predicate={predicate} />
      <h3>Limitations</h3>
      <ul class="limits">
        {predicate.limitations.map((line) => (
          <li key={line}>{line}</li>
        ))}
      </ul>
      <p class="caption">
        Verified at {predicate.verifiedAt} by {predicate.software.name} {predicate.software.version}. The
        downloaded report is the evidence; anyone can check it offline with{' '}
        <code>tracemark evidence verify REPORT --public-key keys.json</code>.
      </p>
    </>
  );
}

function TokenText({
  predicate,
  passage,
}: {
  readonly predicate: EvidencePredicate;
  readonly passage: { readonly startToken: number; readonly endToken: number } | null;
}) {
  const cut = tokenPieces(predicate);
  if (cut === null)
    return <p class="caption">The report does not carry the text, so it cannot be shown here.</p>;
  const span = (piece: { text: string; status: string }, i: number) => (
    <span
      key={i}
      class={`t ${piece.status === 'G' ? 'g' : piece.status === 'R' ? 'r' : piece.status === 'N' ? 'n' : 's'}`}
      title={STATUS_WORDS[piece.status]}
    >
      {piece.text}
    </span>
  );
  const pieces = cut.pieces;
  const start = passage?.startToken ?? pieces.length;
  const end = passage?.endToken ?? pieces.length;
  return (
    <>
      <p class="legend" id="token-legend">
        <span class="t g">green</span> counts toward the watermark · <span class="t r">red</span> counts
        against it · <span class="t s">grey</span> not scored
        {passage === null ? null : (
          <>
            {' '}
            · <mark class="passage">outlined</mark>: detected watermarked passage
          </>
        )}
      </p>
      <div class="token-text" aria-describedby="token-legend" data-testid="token-text">
        {pieces.slice(0, start).map((piece, i) => span(piece, i))}
        {passageRuns(pieces, start, end).map((run) =>
          run.marked ? (
            <mark key={`m${run.start}`} class="passage" data-testid="passage">
              {pieces.slice(run.start, run.end).map((piece, i) => span(piece, run.start + i))}
            </mark>
          ) : (
            pieces.slice(run.start, run.end).map((piece, i) => span(piece, run.start + i))
          ),
        )}
        {pieces.slice(end).map((piece, i) => span(piece, end + i))}
        {cut.rest === '' ? null : <span class="t s">{cut.rest}</span>}
      </div>
      {predicate.tokens?.truncated ? (
        <p class="caption">
          Token colours are shown for the first {formatCount(pieces.length)} of{' '}
          {formatCount(predicate.tokens.numTokens)} tokens.
        </p>
      ) : null}
    </>
  );
}

/** The passage's tokens in runs to outline, broken at line breaks (an outline around a bare line break is noise). */
function passageRuns(
  pieces: readonly { text: string }[],
  start: number,
  end: number,
): { start: number; end: number; marked: boolean }[] {
  const runs: { start: number; end: number; marked: boolean }[] = [];
  for (let i = start; i < end; i++) {
    const marked = !pieces[i]!.text.includes('\n');
    const last = runs.at(-1);
    if (last !== undefined && last.marked === marked) last.end = i + 1;
    else runs.push({ start: i, end: i + 1, marked });
  }
  return runs;
}

function Issuance({
  predicate,
  response,
}: {
  readonly predicate: EvidencePredicate;
  readonly response: VerifyResponse;
}) {
  const issuance = predicate.issuance;
  if (issuance === null) {
    return <p>No output in the issuance log matched this text, exactly or as a near-duplicate.</p>;
  }
  const checkpoint = checkpointSummary(issuance.checkpoint);
  const record = issuance.record;
  return (
    <table class="details">
      <tbody>
        <tr>
          <th scope="row">Match</th>
          <td>
            {issuance.match === 'near-duplicate'
              ? `near-duplicate (similarity ${(issuance.similarity ?? response.issuance?.similarity ?? 0).toFixed(2)})`
              : 'exact: the same text'}
          </td>
        </tr>
        <tr>
          <th scope="row">Issuance record</th>
          <td>
            <code>{issuance.recordId}</code>, entry {formatCount(issuance.leafIndex)} of{' '}
            {formatCount(issuance.treeSize)}
          </td>
        </tr>
        <tr>
          <th scope="row">Signed checkpoint</th>
          <td>
            {checkpoint === null ? (
              'cannot be read'
            ) : (
              <>
                log <code>{checkpoint.origin}</code>, {formatCount(checkpoint.size)}{' '}
                {checkpoint.size === 1 ? 'entry' : 'entries'}, root <code>{checkpoint.root}</code>
              </>
            )}
          </td>
        </tr>
        <tr>
          <th scope="row">Inclusion proof</th>
          <td>
            {issuance.inclusionProof.length === 0
              ? 'none needed: the entry is the whole log, so its hash is the checkpoint’s root'
              : `${issuance.inclusionProof.length} ${issuance.inclusionProof.length === 1 ? 'hash' : 'hashes'} leading from the entry to the checkpoint’s root`}
          </td>
        </tr>
        {record === undefined ? (
          <tr>
            <th scope="row">Record</th>
            <td>not disclosed to this key (it belongs to another account)</td>
          </tr>
        ) : (
          <>
            <tr>
              <th scope="row">Issued at</th>
              <td>{record.time}</td>
            </tr>
            <tr>
              <th scope="row">Account / API key</th>
              <td>
                {record.account} / <code>{record.apiKeyId}</code>
              </td>
            </tr>
            <tr>
              <th scope="row">Model</th>
              <td>{record.model}</td>
            </tr>
          </>
        )}
      </tbody>
    </table>
  );
}

function ReportDetails({ predicate }: { readonly predicate: EvidencePredicate }) {
  const d = predicate.detection;
  return (
    <table class="details">
      <tbody>
        <tr>
          <th scope="row">Text (SHA-256 of its exact bytes)</th>
          <td>
            <code>{predicate.text.sha256}</code>
          </td>
        </tr>
        <tr>
          <th scope="row">Watermark scheme and tokenizer</th>
          <td>
            {predicate.algorithm.name}, {predicate.tokenizer.name}
          </td>
        </tr>
        <tr>
          <th scope="row">Watermark keys tested (public ids)</th>
          <td>
            {predicate.algorithm.keyIds.map((id, i) => (
              <span key={id}>
                {i === 0 ? '' : ', '}
                <code>{id}</code>
              </span>
            ))}
          </td>
        </tr>
        <tr>
          <th scope="row">p-value before correction; z-score</th>
          <td>
            {formatPower(d.log10P)}; z = {d.z.toFixed(2)}
          </td>
        </tr>
        <tr>
          <th scope="row">Calibration on human text</th>
          <td>{predicate.calibration.reference}</td>
        </tr>
      </tbody>
    </table>
  );
}

const STATE_MARKS = { ok: '✓', failed: '✗', skipped: '–' } as const;
const STATE_WORDS = { failed: 'failed', skipped: 'not applicable' } as const;

function ProofStatus({ checked }: { readonly checked: CheckedReport }) {
  return (
    <>
      <p>
        {checked.allOk
          ? 'The signed report was checked in this browser against the keys this service publishes: every check holds.'
          : checked.pinned
            ? 'The signed report was checked in this browser: a check FAILED (below).'
            : 'The signed report was checked in this browser with the key it names, because the service’s published keys could not be fetched.'}
      </p>
      <table class="checks">
        <tbody>
          {checked.checks.map((check) => (
            <tr key={check.name} class={check.state}>
              <td class="mark" aria-hidden="true">
                {STATE_MARKS[check.state]}
              </td>
              <th scope="row">{check.title}</th>
              <td>
                {check.state === 'ok' ? null : (
                  <span class="visually-hidden">{STATE_WORDS[check.state]}: </span>
                )}
                {check.detail}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
