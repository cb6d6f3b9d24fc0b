/**
 * Extraction risk, for the security team: accounts and clusters of linked accounts by score with their
 * reasons, one account's timeline, the policy actions (throttle, review, suspend, clear) with their audit
 * trail, and the next step for a flagged account: the supervised radioactivity scan of its issued outputs.
 * The admin key is asked here (the session's key stays inside its client) and kept in this view's memory.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { type Explained, explainError } from './api.ts';
import { niceTicks, useNarrowScreen } from './plots.tsx';
import {
  type AccountRisk,
  connectRisk,
  type RiskAction,
  type RiskApi,
  type RiskReport,
  type SeriesBucket,
  scanCommand,
} from './risk-api.ts';
import { Problem } from './widgets.tsx';

const time = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 16);
const score = (value: number) => value.toFixed(2);

const ACTIONS: readonly { readonly action: RiskAction; readonly label: string; readonly help: string }[] = [
  { action: 'throttle', label: 'Throttle', help: 'a lower rate limit' },
  { action: 'review', label: 'Require review', help: 'served, outputs redacted at least, requests marked' },
  { action: 'suspend', label: 'Suspend', help: 'completions refused (403)' },
  { action: 'clear', label: 'Clear', help: 'back to normal' },
];

export function RiskView() {
  const [api, setApi] = useState<RiskApi | null>(null);
  const [key, setKey] = useState('');
  const [report, setReport] = useState<RiskReport | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [detail, setDetail] = useState<AccountRisk | null>(null);
  const [problem, setProblem] = useState<Explained | null>(null);
  const [busy, setBusy] = useState(false);
  const keyInput = useRef<HTMLInputElement>(null);
  const detailHeading = useRef<HTMLHeadingElement>(null);
  useEffect(() => keyInput.current?.focus(), []);

  const load = async (client: RiskApi) => {
    setBusy(true);
    try {
      setReport(await client.report());
      setProblem(null);
      return true;
    } catch (error) {
      setProblem(explainError(error));
      return false;
    } finally {
      setBusy(false);
    }
  };

  const open = async (account: string, client: RiskApi | null = api) => {
    if (client === null) return;
    setSelected(account);
    try {
      setDetail(await client.account(account));
      setProblem(null);
      requestAnimationFrame(() => detailHeading.current?.focus());
    } catch (error) {
      setDetail(null);
      setProblem(explainError(error));
    }
  };

  if (api === null) {
    return (
      <section class="panel" aria-labelledby="risk-key-heading">
        <h2 id="risk-key-heading">Extraction risk</h2>
        <p>
          Accounts and clusters of accounts whose traffic looks like model extraction. This page needs an API
          key with the <strong>admin</strong> scope; it is kept in this page’s memory only.
        </p>
        <form
          onSubmit={async (event) => {
            event.preventDefault();
            const client = connectRisk(key.trim());
            if (await load(client)) {
              setKey('');
              setApi(client);
            }
          }}
          noValidate
        >
          <label for="risk-admin-key">Admin API key</label>
          <input
            id="risk-admin-key"
            ref={keyInput}
            type="password"
            autocomplete="off"
            spellcheck={false}
            value={key}
            onInput={(event) => setKey((event.target as HTMLInputElement).value)}
          />
          <button type="submit" disabled={busy}>
            {busy ? 'Opening…' : 'Open the risk report'}
          </button>
        </form>
        <Problem id="risk-problem" problem={problem} />
      </section>
    );
  }

  return (
    <>
      <section class="panel risk" aria-labelledby="risk-heading">
        <div class="risk-head">
          <h2 id="risk-heading">Extraction risk</h2>
          <button type="button" onClick={() => void load(api)} disabled={busy}>
            {busy ? 'Refreshing…' : 'Refresh'}
          </button>
        </div>
        {report === null ? null : (
          <>
            <p data-testid="risk-summary">
              {`${report.accounts.filter((a) => a.flagged).length} of ${report.accounts.length} accounts flagged, ${report.clusters.filter((c) => c.flagged).length} of ${report.clusters.length} clusters flagged, at ${time(report.at)} UTC.`}
            </p>
            <div class="table-scroll">
              <table class="risk-table" aria-label="Accounts by risk">
                <thead>
                  <tr>
                    <th scope="col">Account</th>
                    <th scope="col">Score</th>
                    <th scope="col">Flagged</th>
                    <th scope="col">Status</th>
                    <th scope="col">Cluster</th>
                    <th scope="col">Main reason</th>
                  </tr>
                </thead>
                <tbody>
                  {report.accounts.map((entry) => (
                    <tr
                      key={entry.account}
                      class={entry.flagged ? 'flagged' : undefined}
                      aria-selected={selected === entry.account}
                    >
                      <th scope="row">
                        <button type="button" class="link" onClick={() => void open(entry.account)}>
                          {entry.account}
                        </button>
                      </th>
                      <td>{score(entry.score)}</td>
                      <td>{entry.flagged ? 'yes' : 'no'}</td>
                      <td>
                        <span class={`status ${entry.status}`}>{entry.status}</span>
                      </td>
                      <td>{entry.cluster ?? '–'}</td>
                      <td>{entry.reasons[0]?.message ?? '–'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <h3>Clusters of linked accounts</h3>
            {report.clusters.length === 0 ? (
              <p>No accounts act as one.</p>
            ) : (
              <ul class="clusters">
                {report.clusters.map((cluster) => (
                  <li
                    key={cluster.id}
                    class={cluster.flagged ? 'cluster flagged' : 'cluster'}
                    data-cluster={cluster.id}
                  >
                    <strong>{cluster.id}</strong> · score {score(cluster.score)} ·{' '}
                    {cluster.flagged ? 'flagged' : 'not flagged'}
                    <div class="members">
                      {cluster.accounts.map((account) => (
                        <button type="button" class="link" key={account} onClick={() => void open(account)}>
                          {account}
                        </button>
                      ))}
                    </div>
                    <ul>
                      {cluster.reasons.map((reason) => (
                        <li key={reason.code}>
                          <code>{reason.code}</code> {reason.message}
                        </li>
                      ))}
                    </ul>
                  </li>
                ))}
              </ul>
            )}
          </>
        )}
        <Problem id="risk-problem" problem={problem} />
      </section>
      {detail === null ? null : (
        <AccountPanel
          detail={detail}
          headingRef={detailHeading}
          onAct={async (action, reason) => {
            try {
              await api.act(detail.account, action, reason);
              await open(detail.account);
              await load(api);
            } catch (error) {
              setProblem(explainError(error));
            }
          }}
        />
      )}
    </>
  );
}

interface AccountPanelProps {
  readonly detail: AccountRisk;
  readonly headingRef: preact.RefObject<HTMLHeadingElement>;
  readonly onAct: (action: RiskAction, reason: string) => Promise<void>;
}

function AccountPanel({ detail, headingRef, onAct }: AccountPanelProps) {
  const [reason, setReason] = useState('');
  const [copied, setCopied] = useState(false);
  const command = scanCommand(detail.account, window.location.origin);
  return (
    <section class="panel account" aria-labelledby="account-heading" data-account={detail.account}>
      <h2 id="account-heading" tabIndex={-1} ref={headingRef}>
        {`Account ${detail.account}`}
      </h2>
      <dl class="numbers">
        <dt>Score</dt>
        <dd>{`${score(detail.score)} (${detail.flagged ? 'flagged' : 'not flagged'})`}</dd>
        <dt>Status</dt>
        <dd data-testid="account-status">{detail.status}</dd>
        <dt>Cluster</dt>
        <dd>{detail.cluster ?? 'none'}</dd>
        <dt>Requests</dt>
        <dd>{`${detail.totalRequests}, first ${time(detail.firstSeen)}, last ${time(detail.lastSeen)} UTC`}</dd>
        <dt>Network</dt>
        <dd>{detail.subnets.join(', ') || 'unknown'}</dd>
        <dt>User agent</dt>
        <dd>{detail.userAgent ?? 'none sent'}</dd>
      </dl>
      <Timeline series={detail.series} />
      <h3>Reasons</h3>
      {detail.reasons.length === 0 ? (
        <p>Nothing stands out.</p>
      ) : (
        <ul class="reasons">
          {detail.reasons.map((item) => (
            <li key={item.code}>
              <code>{item.code}</code> {item.message}
              <span class="context">{` · ${item.volume.requests} requests in ${item.window.name}`}</span>
            </li>
          ))}
        </ul>
      )}
      {detail.findings.length === 0 ? null : (
        <>
          <h3>Input and output findings</h3>
          <ul class="findings">
            {detail.findings.map((finding) => (
              <li key={`${finding.kind}/${finding.rule}`}>
                {`${finding.kind === 'input' ? 'prompt' : 'output'}: ${finding.rule} × ${finding.count} (${finding.refused} refused, ${finding.redacted} redacted)`}
              </li>
            ))}
          </ul>
        </>
      )}
      <h3>Next step: the supervised radioactivity scan</h3>
      <p>
        Does a suspect model’s output carry the mark of what this account was issued? Run, with the watermark
        key file and the suspect’s outputs:
      </p>
      <div class="copy-line">
        <input
          id="scan-command"
          aria-label="Scan command"
          readOnly
          value={command}
          onFocus={(event) => (event.target as HTMLInputElement).select()}
        />
        <button
          type="button"
          onClick={async () => {
            await navigator.clipboard?.writeText(command).catch(() => undefined);
            setCopied(true);
          }}
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
      </div>
      <h3>Act on this account</h3>
      <label for="action-reason">Reason (kept in the audit trail)</label>
      <input
        id="action-reason"
        value={reason}
        maxLength={1000}
        onInput={(event) => setReason((event.target as HTMLInputElement).value)}
      />
      <div class="actions">
        {ACTIONS.map((item) => (
          <button
            type="button"
            key={item.action}
            title={item.help}
            disabled={reason.trim() === ''}
            onClick={async () => {
              await onAct(item.action, reason.trim());
              setReason('');
            }}
          >
            {item.label}
          </button>
        ))}
      </div>
      <h3>Audit trail</h3>
      {detail.actions.length === 0 ? (
        <p>No action taken.</p>
      ) : (
        <table class="audit" aria-label="Actions taken">
          <thead>
            <tr>
              <th scope="col">When (UTC)</th>
              <th scope="col">Action</th>
              <th scope="col">Reason</th>
              <th scope="col">By (admin key)</th>
            </tr>
          </thead>
          <tbody>
            {detail.actions.map((action) => (
              <tr key={action.id}>
                <td>{action.at.replace('T', ' ').slice(0, 19)}</td>
                <td>{action.action}</td>
                <td>{action.reason}</td>
                <td>
                  <code>{action.adminKeyId}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

const HEIGHT = 200;
const LEFT = 48;
const RIGHT = 16;
const TOP = 12;
const BOTTOM = 40;

/** Requests per bucket over the monitor's longest window, with the near-duplicate and elicitation counts. */
function Timeline({ series }: { readonly series: readonly SeriesBucket[] }) {
  const narrow = useNarrowScreen();
  const WIDTH = narrow ? 360 : 720;
  if (series.length === 0) return <p>No requests in the window.</p>;
  const first = series[0]!.start;
  const last = series[series.length - 1]!.start;
  const span = Math.max(last - first, 1);
  const top = Math.max(1, ...series.map((bucket) => bucket.requests));
  const x = (start: number) => LEFT + ((WIDTH - LEFT - RIGHT) * (start - first)) / span;
  const y = (value: number) => TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top);
  const line = (value: (bucket: SeriesBucket) => number) =>
    series
      .map(
        (bucket, i) => `${i === 0 ? 'M' : 'L'}${x(bucket.start).toFixed(1)},${y(value(bucket)).toFixed(1)}`,
      )
      .join(' ');
  const total = series.reduce((sum, bucket) => sum + bucket.requests, 0);
  return (
    <svg
      class="plot timeline"
      viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
      role="img"
      aria-labelledby="timeline-title timeline-desc"
    >
      <title id="timeline-title">Requests over time</title>
      <desc id="timeline-desc">
        {`${total} requests in ${series.length} intervals from ${time(first)} to ${time(last)} UTC; at most ${top} in one interval.`}
      </desc>
      {niceTicks(top, 4).map((tick) => (
        <g key={`y${tick}`}>
          <line class="grid" x1={LEFT} x2={WIDTH - RIGHT} y1={y(tick).toFixed(1)} y2={y(tick).toFixed(1)} />
          <text x={LEFT - 6} y={(y(tick) + 4).toFixed(1)} text-anchor="end">
            {tick}
          </text>
        </g>
      ))}
      {series.length === 1 ? (
        <circle class="curve-point" cx={x(first).toFixed(1)} cy={y(series[0]!.requests).toFixed(1)} r="4" />
      ) : (
        <>
          <path class="curve" d={line((bucket) => bucket.requests)} />
          <path class="curve secondary" d={line((bucket) => bucket.nearDuplicates)} />
        </>
      )}
      <line class="axis" x1={LEFT} x2={LEFT} y1={TOP} y2={HEIGHT - BOTTOM} />
      <line class="axis" x1={LEFT} x2={WIDTH - RIGHT} y1={HEIGHT - BOTTOM} y2={HEIGHT - BOTTOM} />
      <text x={LEFT} y={HEIGHT - BOTTOM + 18} text-anchor="start">
        {time(first)}
      </text>
      <text x={WIDTH - RIGHT} y={HEIGHT - BOTTOM + 18} text-anchor="end">
        {time(last)}
      </text>
      <text x={(LEFT + WIDTH - RIGHT) / 2} y={HEIGHT - 6} text-anchor="middle">
        requests per interval (dashed: near-duplicates)
      </text>
    </svg>
  );
}
