/**
 * Processes for the durability test: `tracemark serve` under strace, strace attached to a local PostgreSQL
 * server, completions over one fresh connection each, and a sabotaged copy of the gateway's build.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, realpathSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cacheDir, cliPath, repositoryRoot } from './helpers.ts';
import { PROBE_HEADER } from './syscall-trace.ts';

interface PostgresClient {
  connect(): Promise<void>;
  query(text: string): Promise<{ rows: Record<string, unknown>[] }>;
  end(): Promise<void>;
}
/** The gateway's own PostgreSQL driver (the test package does not depend on it). */
const pg = createRequire(join(repositoryRoot, 'apps/gateway/package.json'))('pg') as {
  Client: new (options: { connectionString: string }) => PostgresClient;
};

/** One query on a connection of its own. */
export async function queryPostgres(databaseUrl: string, text: string): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

/** Calls whose order the checker reads: socket reads and writes, file writes, and syncs. */
const TRACED_CALLS = [
  'read',
  'readv',
  'recvfrom',
  'recvmsg',
  'write',
  'writev',
  'sendto',
  'sendmsg',
  'pwrite64',
  'pwritev',
  'pwritev2',
  'fsync',
  'fdatasync',
].join(',');
/** -ttt: epoch timestamps (the two traces are compared by time); -yy: paths and socket addresses of fds. */
const STRACE_OPTIONS = ['-f', '-ttt', '-yy', '-s', '8192', '-e', `trace=${TRACED_CALLS}`];

interface Exited {
  readonly code: number | null;
  readonly output: string;
}

function run(command: string, args: readonly string[]): Promise<Exited> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', (error) => resolve({ code: null, output: error.message }));
    child.once('close', (code) => resolve({ code, output }));
  });
}

/** Why strace cannot trace a started program here, or null when it can. */
export async function straceProblem(): Promise<string | null> {
  const probe = await run('strace', ['-f', '--seccomp-bpf', '-e', 'trace=write', '-o', '/dev/null', 'true']);
  if (probe.code === null) return `strace is not installed (${probe.output.trim()})`;
  if (probe.code !== 0) return `strace cannot trace here: ${probe.output.trim()}`;
  return null;
}

/** Parent pid of a process, from /proc (null when it is gone or not visible). */
function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

function childrenOf(parent: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => parentOf(pid) === parent);
}

function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

export interface TracedGateway {
  readonly url: string;
  /** Stops the gateway (SIGTERM) and resolves once strace has written the whole trace. */
  stop(): Promise<void>;
}

/** `tracemark serve` on 127.0.0.1:0, started by strace (seccomp-bpf: only the traced calls stop it). */
export function startTracedGateway(options: {
  readonly dataDir: string;
  readonly tracePath: string;
  readonly env?: Readonly<Record<string, string>>;
  /** A module for `node --import` (the sabotaged build's redirect). */
  readonly preload?: string;
}): Promise<TracedGateway> {
  const node = [
    process.execPath,
    ...(options.preload === undefined ? [] : ['--import', pathToFileURL(options.preload).href]),
    cliPath,
    'serve',
    '--port',
    '0',
    '--data-dir',
    options.dataDir,
    '--log-level',
    'warn',
  ];
  const strace = spawn('strace', [...STRACE_OPTIONS, '--seccomp-bpf', '-o', options.tracePath, ...node], {
    env: {
      ...process.env,
      TRACEMARK_CACHE_DIR: cacheDir,
      TRACEMARK_RATE_LIMIT_PER_MINUTE: '1000000',
      ...options.env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = exitOf(strace);
  const stop = async () => {
    // strace's child is the gateway; SIGTERM closes it gracefully and strace exits after it.
    for (const pid of childrenOf(strace.pid!)) process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => strace.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    let stderr = '';
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`the traced gateway did not start: ${stderr}`));
    }, 90_000);
    strace.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(stderr);
      if (match !== null) {
        clearTimeout(timer);
        resolve({ url: match[1]!, stop });
      }
    });
    strace.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`strace / serve exited (${code}): ${stderr}`));
    });
  });
}

export interface ServerTrace {
  /** Detaches strace from the server (it keeps running) and resolves once the trace is written. */
  stop(): Promise<void>;
}

/**
 * The pids of a PostgreSQL server on this machine, postmaster first (from a session's backend pid), or why
 * it cannot be traced from here.
 */
export async function postgresProcesses(databaseUrl: string): Promise<number[] | string> {
  if (process.getuid?.() !== 0) return 'tracing the PostgreSQL server needs root';
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  let postmaster: number | null;
  try {
    // Read while the session is open: its backend exits with it.
    postmaster = parentOf(Number((await client.query('SELECT pg_backend_pid() AS pid')).rows[0]!.pid));
  } finally {
    await client.end();
  }
  const comm = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      return null;
    }
  };
  if (postmaster === null || comm(postmaster) !== 'postgres')
    return 'the PostgreSQL server does not run on this machine (its backend pid is not a local postgres process)';
  return [postmaster, ...childrenOf(postmaster)];
}

/**
 * Attaches strace to the server's running processes and, with -f, to every backend forked while it runs.
 * Bounded by timeout(1), so the server is never left traced if the test process dies.
 */
export function tracePostgres(pids: readonly number[], tracePath: string): Promise<ServerTrace> {
  const strace = spawn(
    'timeout',
    [
      '-s',
      'INT',
      '120',
      'strace',
      ...STRACE_OPTIONS,
      '-o',
      tracePath,
      ...pids.flatMap((pid) => ['-p', String(pid)]),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const exited = exitOf(strace);
  const stop = async () => {
    strace.kill('SIGINT');
    await exited;
  };
  return new Promise((resolve, reject) => {
    let stderr = '';
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`strace did not attach to PostgreSQL: ${stderr}`));
    }, 20_000);
    strace.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      // A backend may exit between listing and attaching; the postmaster must be attached.
      const attached = new Set(
        [...stderr.matchAll(/Process (\d+) attached/g)].map((match) => Number(match[1])),
      );
      const gone = new Set(
        [...stderr.matchAll(/attach: ptrace\(\w+, (\d+)\)/g)].map((match) => Number(match[1])),
      );
      if (gone.has(pids[0]!)) {
        clearTimeout(timer);
        void stop();
        reject(new Error(`strace could not attach to the postmaster: ${stderr}`));
      } else if (pids.every((pid) => attached.has(pid) || gone.has(pid))) {
        clearTimeout(timer);
        resolve({ stop });
      }
    });
    strace.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`strace exited (${code}) before attaching to PostgreSQL: ${stderr}`));
    });
  });
}

export interface CompletionResponse {
  readonly status: number;
  readonly body: string;
}

/** POST over a fresh connection (no keep-alive), so each completion has a connection of its own. */
export function postCompletion(
  url: string,
  path: string,
  key: string,
  body: unknown,
  probe: string,
): Promise<CompletionResponse> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const outgoing = request(
      new URL(path, url),
      {
        method: 'POST',
        agent: false,
        headers: {
          [PROBE_HEADER]: probe,
          authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          connection: 'close',
        },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
        response.on('error', reject);
      },
    );
    outgoing.on('error', reject);
    outgoing.end(payload);
  });
}

/** A change that makes a build lose acknowledged records on a crash. */
export interface Sabotage {
  /** Path under the gateway's dist/. */
  readonly file: string;
  readonly from: string;
  readonly to: string;
}

export interface SabotagedBuild {
  /** For `node --import`: serves the gateway's modules from the copy. */
  readonly preload: string;
  remove(): void;
}

/**
 * A copy of apps/gateway/dist with `sabotages` applied, under apps/gateway/.cache/ (ignored by git; inside
 * the package, so its imports resolve as the real build's do), and a resolve hook that loads it in place of
 * the real build. Throws when a sabotage no longer matches the build, so the check cannot become vacuous.
 */
export function sabotagedGatewayBuild(name: string, sabotages: readonly Sabotage[]): SabotagedBuild {
  const gatewayRoot = realpathSync(join(repositoryRoot, 'apps/gateway'));
  const root = join(gatewayRoot, '.cache', `durability-${name}-${process.pid}`);
  rmSync(root, { recursive: true, force: true });
  cpSync(join(gatewayRoot, 'dist'), join(root, 'dist'), { recursive: true });
  for (const sabotage of sabotages) {
    const path = join(root, 'dist', sabotage.file);
    const source = readFileSync(path, 'utf8');
    if (!source.includes(sabotage.from))
      throw new Error(
        `${sabotage.file} no longer contains ${JSON.stringify(sabotage.from)}: update the test`,
      );
    writeFileSync(path, source.replaceAll(sabotage.from, sabotage.to));
  }
  const real = pathToFileURL(join(gatewayRoot, 'dist')).href;
  const copy = pathToFileURL(join(root, 'dist')).href;
  writeFileSync(
    join(root, 'redirect.mjs'),
    `const real = ${JSON.stringify(`${real}/`)};
const copy = ${JSON.stringify(`${copy}/`)};
export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  return resolved.url.startsWith(real) ? { ...resolved, url: copy + resolved.url.slice(real.length) } : resolved;
}
`,
  );
  const preload = join(root, 'register.mjs');
  writeFileSync(
    preload,
    `import { register } from 'node:module';\nregister('./redirect.mjs', import.meta.url);\n`,
  );
  const remove = () => {
    rmSync(root, { recursive: true, force: true });
    try {
      rmdirSync(join(gatewayRoot, '.cache'));
    } catch {
      // Not empty: something else keeps files there.
    }
  };
  return { preload, remove };
}
