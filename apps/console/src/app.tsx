/** The console: sign in, then Verify or Scan. The API key lives only in the session object, in memory. */
import { useEffect, useState } from 'preact/hooks';
import type { Explained } from './api.ts';
import { RiskView } from './risk-view.tsx';
import { ScanView } from './scan-view.tsx';
import type { Session } from './session.ts';
import { SignIn } from './sign-in.tsx';
import { VerifyView } from './verify-view.tsx';

type View = 'verify' | 'scan' | 'risk';

const TITLES: Readonly<Record<View, string>> = { verify: 'Verify', scan: 'Scan', risk: 'Extraction risk' };

export function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [notice, setNotice] = useState<Explained | null>(null);
  const [view, setView] = useState<View>('verify');

  useEffect(() => {
    document.title = session === null ? 'Sign in · tracemark console' : `${TITLES[view]} · tracemark console`;
  }, [session, view]);

  const signOut = (reason: Explained | null) => {
    setSession(null);
    setNotice(reason);
    setView('verify');
  };

  const tab = (target: View, label: string) => (
    <button
      type="button"
      class="tab"
      aria-current={view === target ? 'page' : undefined}
      onClick={() => setView(target)}
    >
      {label}
    </button>
  );

  return (
    <>
      <a class="skip" href="#main">
        Skip to the main content
      </a>
      <header class="top no-print">
        <div class="brand">
          <span class="logo" aria-hidden="true">
            ◆
          </span>{' '}
          tracemark <span class="sub">verification console</span>
        </div>
        {session === null ? null : (
          <div class="who">
            <span>
              Signed in: <strong>{session.identity.name || session.identity.id}</strong>
              {session.identity.account === '' ? '' : ` (${session.identity.account})`}
            </span>
            {session.identity.scopes.includes('admin') ? (
              <button
                type="button"
                class="link"
                aria-current={view === 'risk' ? 'page' : undefined}
                onClick={() => setView('risk')}
              >
                Extraction risk
              </button>
            ) : null}
            <button type="button" class="link" onClick={() => signOut(null)}>
              Sign out
            </button>
          </div>
        )}
      </header>
      {session === null ? null : (
        <nav class="tabs no-print" aria-label="Tools">
          {tab('verify', 'Verify a text')}
          {tab('scan', 'Scan a corpus')}
        </nav>
      )}
      <main id="main" tabIndex={-1}>
        {session === null ? (
          <SignIn
            notice={notice}
            onSignedIn={(next) => {
              setNotice(null);
              setSession(next);
            }}
          />
        ) : view === 'risk' ? (
          <RiskView />
        ) : view === 'verify' ? (
          <VerifyView session={session} onRefused={signOut} />
        ) : (
          <ScanView session={session} onRefused={signOut} />
        )}
      </main>
      <footer class="no-print">
        Served by this gateway; nothing is loaded from elsewhere. The API key is kept in this tab’s memory
        only.
      </footer>
    </>
  );
}
