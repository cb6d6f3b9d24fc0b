/** `tracemark` from its sources as a real process, for what only a process shows: signals, exit, hangs. */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cliDirectory = fileURLToPath(new URL('..', import.meta.url));

export interface Spawned {
  readonly child: ChildProcessWithoutNullStreams;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Resolves once stdout has any output. */
  readonly firstOutput: Promise<void>;
  /** The exit code, or the signal that ended the process. */
  readonly exited: Promise<number | NodeJS.Signals>;
}

export function spawnCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Spawned {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', 'src/bin.ts', ...args], {
    cwd: cliDirectory,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let outputSeen: () => void = () => undefined;
  const firstOutput = new Promise<void>((resolve) => {
    outputSeen = resolve;
  });
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    outputSeen();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | NodeJS.Signals>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? signal ?? -1));
  });
  return { child, stdout: () => stdout, stderr: () => stderr, firstOutput, exited };
}

/**
 * Writes `bytes` to the process's stdin, more than a pipe holds, and resolves once it has taken most of
 * them: it is then reading its input (stdin stays open, so the run cannot end by itself).
 */
export async function feedStdin(spawned: Spawned, bytes: Uint8Array): Promise<void> {
  if (spawned.child.stdin.write(bytes)) return;
  await new Promise<void>((resolve) => spawned.child.stdin.once('drain', resolve));
}
