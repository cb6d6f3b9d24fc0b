// Prints the CI's closing line "N passed, N failed" from vitest's JSON report, counting a failed
// lint or service step, or a test run that produced no report, as a failure. Exits non-zero on any.
import { existsSync, readFileSync } from 'node:fs';

const [reportPath, stepFailuresText = '0', testStatusText = '0'] = process.argv.slice(2);
const stepFailures = Number(stepFailuresText);
let passed = 0;
let failed = 0;
if (reportPath && existsSync(reportPath)) {
  const report = JSON.parse(readFileSync(reportPath, 'utf8'));
  passed = report.numPassedTests ?? 0;
  // A file that failed without a failed test in it (it did not load, or a hook threw) counts once;
  // numFailedTestSuites would count the file and each describe block around one failed test.
  const filesFailedOutsideTests = (report.testResults ?? []).filter(
    (file) =>
      file.status === 'failed' && !(file.assertionResults ?? []).some((test) => test.status === 'failed'),
  ).length;
  failed = (report.numFailedTests ?? 0) + filesFailedOutsideTests;
} else {
  failed = 1;
}
if (Number(testStatusText) !== 0 && failed === 0) failed = 1;
failed += stepFailures;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
