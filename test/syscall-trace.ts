/**
 * Reads `strace -f -ttt -yy` output and checks, per completion, that its issuance record was durable before
 * the gateway wrote the part of the response that acknowledges it. Pure functions over the trace text; the
 * processes are started in traced-gateway.ts.
 */

/** One system call, with its unfinished and resumed halves joined. */
export interface Syscall {
  readonly pid: number;
  readonly name: string;
  /** Line of the trace where the call entered, and where it returned (equal unless it was interrupted). */
  readonly enter: number;
  readonly exit: number;
  /** Seconds since the epoch when the call entered (strace -ttt). */
  readonly time: number;
  /** What strace -yy shows for the first argument: a path, or `TCP:[local->remote]` for a socket. */
  readonly target: string | null;
  /** The arguments as strace printed them (strings escaped, as in C). */
  readonly args: string;
  /** The return value as printed, with -yy's annotation (`= 23<TCP:[…]>` for accept4). */
  readonly result: string;
}

export type SyscallTrace = readonly Syscall[];

const LINE = /^(\d+)\s+(\d+\.\d+)\s+(.*)$/;
const CALL = /^([a-z_0-9]+)\((.*)$/;
const RESUMED = /^<\.\.\. ([a-z_0-9]+) resumed>(.*)$/;
const UNFINISHED = ' <unfinished ...>';
/** `23</path>` or `23<TCP:[127.0.0.1:1->127.0.0.1:2]>` (socket descriptions contain `->`). */
const DESCRIPTOR = /^\d+<(?:([\w-]+:\[.*?\])|([^>]*))>/;

function descriptor(text: string): string | null {
  const match = DESCRIPTOR.exec(text);
  return match === null ? null : (match[1] ?? match[2] ?? null);
}

/** Splits `args) = result` at the last `) = ` (arguments may contain that text inside strings). */
function splitResult(rest: string): { args: string; result: string } {
  const at = rest.lastIndexOf(') = ');
  if (at === -1) return { args: rest.replace(/\)\s*$/, ''), result: '?' };
  return { args: rest.slice(0, at), result: rest.slice(at + 4) };
}

/** Parses `strace -f -ttt -yy -o FILE` output (one line per call, pid first); other lines are skipped. */
export function parseStrace(text: string): SyscallTrace {
  const calls: Syscall[] = [];
  const pending = new Map<number, { name: string; enter: number; time: number; head: string }>();
  const lines = text.split('\n');
  lines.forEach((line, index) => {
    const match = LINE.exec(line);
    if (match === null) return;
    const pid = Number(match[1]);
    const time = Number(match[2]);
    const body = match[3]!;
    const resumed = RESUMED.exec(body);
    if (resumed !== null) {
      const start = pending.get(pid);
      if (start === undefined || start.name !== resumed[1]) return;
      pending.delete(pid);
      const { args, result } = splitResult(start.head + resumed[2]!);
      calls.push({
        pid,
        name: start.name,
        enter: start.enter,
        exit: index,
        time: start.time,
        target: descriptor(args),
        args,
        result,
      });
      return;
    }
    const call = CALL.exec(body);
    if (call === null) return;
    const name = call[1]!;
    if (body.endsWith(UNFINISHED)) {
      pending.set(pid, { name, enter: index, time, head: call[2]!.slice(0, -UNFINISHED.length) });
      return;
    }
    const { args, result } = splitResult(call[2]!);
    calls.push({ pid, name, enter: index, exit: index, time, target: descriptor(args), args, result });
  });
  return calls.sort((a, b) => a.exit - b.exit);
}

const SOCKET_WRITES = new Set(['write', 'writev', 'sendto', 'sendmsg', 'pwritev', 'pwritev2']);
const SOCKET_READS = new Set(['read', 'readv', 'recvfrom', 'recvmsg']);
const FILE_WRITES = new Set(['write', 'writev', 'pwrite64', 'pwritev', 'pwritev2']);
const SYNCS = new Set(['fsync', 'fdatasync']);

/** `127.0.0.1:5432->127.0.0.1:40000` of a `TCP:[…]` / `TCPv6:[…]` description, or null. */
export function tcpConnection(target: string | null): string | null {
  const match = target === null ? null : /^TCP(?:v6)?:\[(.+)\]$/.exec(target);
  return match === null ? null : match[1]!;
}

/** The same connection seen from its other end. */
export function reversedConnection(connection: string): string {
  const [local, remote] = connection.split('->');
  return `${remote}->${local}`;
}

const remotePort = (connection: string) => Number(connection.slice(connection.lastIndexOf(':') + 1));

/** One completion the test made, found in the trace by a header only it carries. */
export interface TracedCompletion {
  readonly label: string;
  /** Value of the `x-durability-probe` request header. */
  readonly probe: string;
  readonly stream: boolean;
  /** Its issuance ids, as the response gave them: the SQLite check finds the record's writes by them. */
  readonly records: readonly string[];
}

export const PROBE_HEADER = 'x-durability-probe';

/** Where the record must already be durable: SQLite files, or a PostgreSQL server (and its own trace). */
export type DurableStore =
  | { readonly kind: 'sqlite'; readonly files: readonly string[] }
  | { readonly kind: 'postgres'; readonly port: number; readonly server: SyscallTrace | null };

export interface CompletionFinding {
  readonly label: string;
  readonly ok: boolean;
  /** What the trace shows, in order; for a violation, what is missing. */
  readonly detail: string;
}

/** Bytes of the stream that acknowledge the record: the ids (usage event or comment), or `[DONE]`. */
const STREAM_ACKNOWLEDGEMENT = ['[DONE]', '\\"tracemark\\":{', ': tracemark {'];
/** The simple-query message `COMMIT` and its CommandComplete reply, as strace escapes them. */
const COMMIT_QUERY = 'Q\\0\\0\\0\\vCOMMIT\\0';
const COMMIT_COMPLETE = 'C\\0\\0\\0\\vCOMMIT\\0';

const fileName = (path: string) => path.slice(path.lastIndexOf('/') + 1);
const ms = (from: Syscall, to: Syscall) => `${((to.time - from.time) * 1000).toFixed(2)} ms`;

/**
 * For each completion: the window opens when the gateway reads its request (found by the probe header) and
 * closes when the gateway first writes, on that same connection, the response (non-streamed) or the part of
 * the stream that acknowledges the record (the issuance ids or `[DONE]`). Inside it the record must be
 * durable: SQLite: the record's writes to the database's files (those of the connection that wrote its id),
 * each followed by fsync/fdatasync of that file;
 * PostgreSQL: COMMIT sent and its reply read on the database connection, and (when the server was traced)
 * the server flushed its WAL between receiving that COMMIT and replying.
 */
export function checkDurability(
  trace: SyscallTrace,
  completions: readonly TracedCompletion[],
  store: DurableStore,
): CompletionFinding[] {
  return completions.map((completion) => {
    const window = completionWindow(trace, completion);
    if (typeof window === 'string') return { label: completion.label, ok: false, detail: window };
    const problem =
      store.kind === 'sqlite'
        ? sqliteDurable(trace, window, store.files, completion.records)
        : postgresDurable(trace, window, store.port, store.server);
    return { label: completion.label, ok: problem.ok, detail: problem.detail };
  });
}

interface Window {
  readonly request: Syscall;
  readonly response: Syscall;
  readonly what: string;
}

function completionWindow(trace: SyscallTrace, completion: TracedCompletion): Window | string {
  const marker = `${PROBE_HEADER}: ${completion.probe}\\r`;
  const request = trace.find(
    (call) => SOCKET_READS.has(call.name) && call.args.includes(marker) && tcpConnection(call.target),
  );
  if (request === undefined) return `the gateway's read of the request (${marker}) is not in the trace`;
  const connection = tcpConnection(request.target);
  const response = trace.find(
    (call) =>
      call.enter > request.exit &&
      SOCKET_WRITES.has(call.name) &&
      tcpConnection(call.target) === connection &&
      (!completion.stream || STREAM_ACKNOWLEDGEMENT.some((text) => call.args.includes(text))),
  );
  if (response === undefined)
    return `no ${completion.stream ? 'acknowledging stream write' : 'response write'} on ${connection}`;
  return { request, response, what: completion.stream ? 'the stream end' : 'the first response byte' };
}

const inside = (call: Syscall, window: Window) =>
  call.enter > window.request.exit && call.exit < window.response.enter;

/** The descriptor number a call was made on (`19</path>` → 19), or null. */
const descriptorNumber = (call: Syscall) => /^(\d+)</.exec(call.args)?.[1] ?? null;

/**
 * The record is durable in SQLite once its connection's writes to a file of the database (the WAL frames of
 * its transaction, found by the descriptor whose writes carry one of its issuance ids) are followed by an
 * fsync/fdatasync of that file. Writes by other connections to the same files (the monitor's batches, with
 * synchronous = NORMAL by design) are not the record's and are only counted.
 */
function sqliteDurable(
  trace: SyscallTrace,
  window: Window,
  files: readonly string[],
  records: readonly string[],
): { ok: boolean; detail: string } {
  const steps: string[] = [];
  let written = 0;
  for (const file of files) {
    const writes = trace.filter(
      (call) => FILE_WRITES.has(call.name) && call.target === file && inside(call, window),
    );
    const descriptors = new Set(
      writes
        .filter((call) => records.some((id) => call.args.includes(id)))
        .map(descriptorNumber)
        .filter((fd) => fd !== null),
    );
    if (descriptors.size === 0) continue;
    const recordWrites = writes.filter((call) => descriptors.has(descriptorNumber(call) ?? ''));
    const others = writes.length - recordWrites.length;
    const alongside = others === 0 ? '' : ` (and ${others} by another connection)`;
    written += recordWrites.length;
    const last = recordWrites.at(-1)!;
    const sync = trace.find(
      (call) =>
        SYNCS.has(call.name) &&
        call.target === file &&
        call.result === '0' &&
        call.enter > last.exit &&
        call.exit < window.response.enter,
    );
    if (sync === undefined) {
      return {
        ok: false,
        detail: `${recordWrites.length} writes of the record to ${fileName(file)}${alongside}, then ${window.what} ${ms(last, window.response)} later with no fsync/fdatasync of it in between`,
      };
    }
    steps.push(
      `${recordWrites.length} writes of the record to ${fileName(file)}${alongside}, ${sync.name} ${ms(last, sync)} after the last, ${window.what} ${ms(sync, window.response)} after that`,
    );
  }
  if (written === 0)
    return {
      ok: false,
      detail: `the record (${records.join(', ')}) was not written to ${files.map(fileName).join(' or ')} before ${window.what}`,
    };
  return { ok: true, detail: steps.join('; ') };
}

function postgresDurable(
  trace: SyscallTrace,
  window: Window,
  port: number,
  server: SyscallTrace | null,
): { ok: boolean; detail: string } {
  const onDatabase = (call: Syscall) => {
    const connection = tcpConnection(call.target);
    return connection !== null && remotePort(connection) === port;
  };
  // Only explicit transactions send COMMIT (the append is one); every one in the window must be durable.
  const commits = trace.filter(
    (call) =>
      SOCKET_WRITES.has(call.name) &&
      onDatabase(call) &&
      call.args.includes(COMMIT_QUERY) &&
      inside(call, window),
  );
  if (commits.length === 0)
    return { ok: false, detail: `no COMMIT was sent to PostgreSQL before ${window.what}` };
  const details: string[] = [];
  for (const commit of commits) {
    const checked = commitDurable(trace, window, commit, server);
    if (!checked.ok) return checked;
    details.push(checked.detail);
  }
  return { ok: true, detail: details.join(' / ') };
}

function commitDurable(
  trace: SyscallTrace,
  window: Window,
  commit: Syscall,
  server: SyscallTrace | null,
): { ok: boolean; detail: string } {
  const acknowledged = trace.find(
    (call) =>
      SOCKET_READS.has(call.name) &&
      call.target === commit.target &&
      call.args.includes(COMMIT_COMPLETE) &&
      call.enter > commit.exit &&
      call.exit < window.response.enter,
  );
  if (acknowledged === undefined)
    return { ok: false, detail: `COMMIT was sent but its reply not read before ${window.what}` };
  const gatewaySide = `COMMIT sent, its reply read ${ms(commit, acknowledged)} later, ${window.what} ${ms(acknowledged, window.response)} after that`;
  if (server === null) return { ok: true, detail: gatewaySide };

  // The server's end of the same connection. The two traces' clocks are read by two tracers, each when it
  // gets to a call, so a time in one may trail the other's by a scheduling delay: the server's receipt of
  // this COMMIT is singled out as the COMMIT the server read on the connection after the gateway had the
  // reply to the connection's previous COMMIT and before it sent the next one (a client sends a query only
  // after the last reply: the neighbours are a whole request away, far beyond such a delay).
  const backendConnection = reversedConnection(tcpConnection(commit.target)!);
  const previous = trace.findLast(
    (call) =>
      SOCKET_READS.has(call.name) &&
      call.target === commit.target &&
      call.args.includes(COMMIT_COMPLETE) &&
      call.exit < commit.enter,
  );
  const next = trace.find(
    (call) =>
      SOCKET_WRITES.has(call.name) &&
      call.target === commit.target &&
      call.args.includes(COMMIT_QUERY) &&
      call.enter > acknowledged.exit,
  );
  const received = server.find(
    (call) =>
      SOCKET_READS.has(call.name) &&
      tcpConnection(call.target) === backendConnection &&
      call.args.includes(COMMIT_QUERY) &&
      (previous === undefined || call.time > previous.time) &&
      (next === undefined || call.time < next.time),
  );
  if (received === undefined)
    return { ok: false, detail: `${gatewaySide}; the server's receipt of it is not in the server trace` };
  const replied = server.find(
    (call) =>
      SOCKET_WRITES.has(call.name) &&
      call.pid === received.pid &&
      tcpConnection(call.target) === backendConnection &&
      call.enter > received.exit,
  );
  if (replied === undefined || !replied.args.includes(COMMIT_COMPLETE))
    return { ok: false, detail: `${gatewaySide}; the server's reply to it is not in the server trace` };
  // By any server process: another backend's or the WAL writer's flush can cover this commit (group commit).
  const flush = server.find(
    (call) =>
      SYNCS.has(call.name) &&
      call.target?.includes('/pg_wal/') === true &&
      call.result === '0' &&
      call.enter > received.exit &&
      call.exit < replied.enter,
  );
  if (flush === undefined) {
    return {
      ok: false,
      detail: `${gatewaySide}; but the server replied to COMMIT ${ms(received, replied)} after receiving it without flushing its WAL (no fsync/fdatasync of pg_wal/ in between)`,
    };
  }
  return {
    ok: true,
    detail: `${gatewaySide}; server: ${flush.name}(${fileName(flush.target!)}) ${ms(received, flush)} after receiving COMMIT, reply ${ms(flush, replied)} after that`,
  };
}
