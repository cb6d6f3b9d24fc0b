/**
 * Attribution: which accounts' outputs did the suspect most likely learn from?
 *
 * Every account is marked with the same key, so a window issued to two accounts cannot tell them
 * apart: a suspect that learned from A is green on a window A and B were both issued. Each account is
 * therefore scanned, supervised, on the windows issued to it and to no other account tested
 * (`IssuedWindowSet.exclusive`): windows only, never (window, token) pairs. Under "the suspect did not
 * learn from this account", positions at its exclusive windows are scored like any clean text, so each
 * per-account p-value is a valid test of that account alone. m accounts are m tests: the p-values are
 * Holm-adjusted across the accounts tested (after Holm across keys within each account), and an account
 * is named only at an adjusted p-value ≤ α. Accounts with no exclusive windows in the corpus score
 * nothing and cannot be named.
 *
 * Limitation: an n-gram student does not generalize, so its bias stays on the windows it was trained
 * on; a neural student spreads bias to similar contexts, which can make a second account whose
 * exclusive windows resemble the first one's significant too. The named accounts are those whose
 * exclusive windows carry the signal, not proof that no other account was used.
 */
import { holmAdjustLog10, type WatermarkKey } from '@tracemark/core';
import { IssuedWindowSet, type ScanDocument, scanCorpus } from '@tracemark/extraction';

export interface AccountAttribution {
  readonly account: string;
  readonly numOutputs: number;
  readonly numIssuedTokens: number;
  /** Windows issued to this account alone (of the narrowest width held). */
  readonly numExclusiveWindows: number;
  readonly numScored: number;
  readonly numGreen: number;
  /** The key with the strongest evidence, Holm-adjusted across keys. */
  readonly keyId: string | null;
  readonly log10P: number;
  /** Holm-adjusted across the accounts tested. */
  readonly log10PAdjusted: number;
  readonly attributed: boolean;
}

export interface Attribution {
  readonly method: 'exclusive-windows';
  readonly accountsTested: number;
  readonly alpha: number;
  /** Strongest evidence first. */
  readonly accounts: readonly AccountAttribution[];
  /** Accounts named (adjusted p ≤ α), strongest first. */
  readonly attributedTo: readonly string[];
}

export async function attributeAccounts(options: {
  readonly documents: readonly ScanDocument[];
  readonly keys: readonly WatermarkKey[];
  readonly specialTokenIds: Iterable<number>;
  readonly accounts: ReadonlyMap<string, readonly Uint32Array[]>;
  readonly alpha: number;
}): Promise<Attribution> {
  const special = [...options.specialTokenIds];
  const names = [...options.accounts.keys()];
  const sets = await Promise.all(
    names.map((name) =>
      IssuedWindowSet.fromOutputs(options.accounts.get(name)!, {
        schemes: options.keys.map((key) => key.scheme),
        specialTokenIds: special,
      }),
    ),
  );
  const exclusive = IssuedWindowSet.exclusive(sets);
  const rows: Omit<AccountAttribution, 'log10PAdjusted' | 'attributed'>[] = [];
  for (let i = 0; i < names.length; i++) {
    const report = await scanCorpus({
      documents: options.documents,
      keys: options.keys,
      specialTokenIds: special,
      fakeKeys: 0,
      issuedWindows: exclusive[i]!,
      alpha: options.alpha,
    });
    const best = [...report.keys].sort((a, b) => a.log10PAdjusted - b.log10PAdjusted)[0];
    const width = exclusive[i]!.widths[0]!;
    rows.push({
      account: names[i]!,
      numOutputs: sets[i]!.numOutputs,
      numIssuedTokens: sets[i]!.numTokens,
      numExclusiveWindows: exclusive[i]!.numWindows(width),
      numScored: best?.numScored ?? 0,
      numGreen: best?.numGreen ?? 0,
      keyId: best?.keyId ?? null,
      log10P: best?.log10PAdjusted ?? 0,
    });
  }
  const adjusted = holmAdjustLog10(rows.map((row) => row.log10P));
  const threshold = Math.log10(options.alpha);
  const accounts = rows
    .map((row, i) => ({
      ...row,
      log10PAdjusted: adjusted[i]!,
      attributed: row.numScored > 0 && adjusted[i]! <= threshold,
    }))
    .sort((a, b) => a.log10PAdjusted - b.log10PAdjusted || a.log10P - b.log10P);
  return {
    method: 'exclusive-windows',
    accountsTested: accounts.length,
    alpha: options.alpha,
    accounts,
    attributedTo: accounts.filter((row) => row.attributed).map((row) => row.account),
  };
}
