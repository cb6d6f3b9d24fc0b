/** Sign in with an API key that has the verify scope. The key is held in memory by the session only. */
import { useEffect, useRef, useState } from 'preact/hooks';
import { connect, type Explained, explainError, fetchServiceKeys, type ServiceKeys } from './api.ts';
import type { Session } from './session.ts';
import { Problem } from './widgets.tsx';

export interface SignInProps {
  readonly onSignedIn: (session: Session) => void;
  /** Why the previous session ended, if the gateway refused its key. */
  readonly notice: Explained | null;
}

export function SignIn({ onSignedIn, notice }: SignInProps) {
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Explained | null>(notice);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);

  const submit = async (event: Event) => {
    event.preventDefault();
    const presented = key.trim();
    if (presented === '') {
      setProblem({
        title: 'Enter an API key',
        detail: 'Paste the key an administrator gave you.',
        signOut: false,
      });
      input.current?.focus();
      return;
    }
    setBusy(true);
    setProblem(null);
    const gateway = connect(presented);
    try {
      const identity = await gateway.whoami();
      const serviceKeys: ServiceKeys | null = await fetchServiceKeys().catch(() => null);
      setKey('');
      onSignedIn({ gateway, identity, serviceKeys });
    } catch (error) {
      setProblem(explainError(error));
      setBusy(false);
      input.current?.focus();
    }
  };

  return (
    <section class="panel sign-in" aria-labelledby="sign-in-heading">
      <h2 id="sign-in-heading">Sign in</h2>
      <p>
        Use an API key with the <strong>verify</strong> scope. The key stays in this tab’s memory only: it is
        never stored, and reloading or closing the page signs you out.
      </p>
      <form onSubmit={submit} noValidate>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          ref={input}
          type="password"
          name="api-key"
          autocomplete="off"
          spellcheck={false}
          placeholder="tm_live_…"
          value={key}
          onInput={(event) => setKey((event.target as HTMLInputElement).value)}
          aria-describedby={problem === null ? undefined : 'sign-in-problem'}
          aria-invalid={problem !== null}
        />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <Problem id="sign-in-problem" problem={problem} />
    </section>
  );
}
