/**
 * False-positive rates of screenInput and auditOutput on human text: every document of the Brown
 * corpus (500) and nlp-corpus (5,000 documents of 20 sentences), the corpora @tracemark/lm loads.
 * Human prose holds no injections and (almost) no secrets, so every finding is counted as a false
 * positive; the script prints each rule's findings with a masked excerpt to check that claim.
 * Run: pnpm --filter @tracemark/monitoring exec node --conditions=source --import tsx bench/false-positives.ts
 */
import { loadHumanCorpus } from '@tracemark/lm';
import { auditOutput, screenInput } from '@tracemark/monitoring';

const documents = await loadHumanCorpus({ split: 'all' });
for (const source of ['brown', 'nlp-corpus'] as const) {
  const texts = documents
    .filter((document) => document.id.startsWith(`${source}/`))
    .map((document) => document.text);
  const characters = texts.reduce((sum, text) => sum + text.length, 0);
  for (const [check, run] of [
    ['screenInput', screenInput],
    ['auditOutput', auditOutput],
  ] as const) {
    const start = performance.now();
    let flaggedDocuments = 0;
    const byRule = new Map<string, number>();
    const examples = new Map<string, string>();
    for (const text of texts) {
      const findings = run(text);
      if (findings.length > 0) flaggedDocuments++;
      for (const finding of findings) {
        byRule.set(finding.rule, (byRule.get(finding.rule) ?? 0) + 1);
        if (!examples.has(finding.rule)) {
          examples.set(finding.rule, 'masked' in finding ? finding.masked : finding.excerpt);
        }
      }
    }
    const millis = performance.now() - start;
    console.log(
      `${source} ${check}: ${flaggedDocuments}/${texts.length} documents flagged ` +
        `(${((100 * flaggedDocuments) / texts.length).toFixed(2)}%), ` +
        `${((characters / 1e6 / millis) * 1000).toFixed(1)} MB/s`,
    );
    for (const [rule, count] of [...byRule].sort((a, b) => b[1] - a[1])) {
      console.log(`  ${rule}: ${count} (e.g. ${JSON.stringify(examples.get(rule))})`);
    }
  }
}
