/**
 * Prompt screening that keeps the event loop responsive: a long prompt is screened in overlapping slices,
 * yielding between them, so that a 1 MiB prompt does not hold every other request (GET /healthz answers
 * within 100 ms while it runs; responsiveness.test.ts). The input rules match spans of a few hundred
 * characters, which the overlap covers; an encoded payload longer than a slice is decoded slice by slice.
 */
import { type InputFinding, screenInput } from '@tracemark/monitoring';

/** Characters screened at once, and the overlap between slices. */
export const SCREEN_SLICE = 32_768;
export const SCREEN_OVERLAP = 1024;

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function screenPromptText(text: string): Promise<InputFinding[]> {
  if (text.length <= SCREEN_SLICE + SCREEN_OVERLAP) return screenInput(text);
  const seen = new Set<string>();
  const findings: InputFinding[] = [];
  for (let offset = 0; offset < text.length; offset += SCREEN_SLICE) {
    if (offset > 0) await yieldToLoop();
    for (const finding of screenInput(text.slice(offset, offset + SCREEN_SLICE + SCREEN_OVERLAP))) {
      const shifted = { ...finding, start: finding.start + offset, end: finding.end + offset };
      const key = `${shifted.rule}\0${shifted.start}\0${shifted.end}`;
      if (seen.has(key)) continue;
      seen.add(key);
      findings.push(shifted);
    }
  }
  return findings.sort((a, b) => a.start - b.start || a.end - b.end);
}
