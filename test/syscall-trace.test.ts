/** The strace reader and the durability checker on hand-written traces (no strace needed). */
import { describe, expect, it } from 'vitest';
import {
  checkDurability,
  type DurableStore,
  parseStrace,
  reversedConnection,
  tcpConnection,
} from './syscall-trace.ts';

const WAL = '/data/gateway.sqlite-wal';
const CLIENT = 'TCP:[127.0.0.1:8787->127.0.0.1:50000]';
const OTHER_CLIENT = 'TCP:[127.0.0.1:8787->127.0.0.1:50001]';
const sqlite: DurableStore = { kind: 'sqlite', files: ['/data/gateway.sqlite', WAL] };
const plain = [{ label: 'plain', probe: 'abc', stream: false, records: ['iss_00ab'] }];

/** A trace of one process (pid 7), one call per line, a microsecond apart. */
function trace(...calls: string[]): string {
  return calls.map((call, i) => `7 1800000000.${String(i).padStart(6, '0')} ${call}`).join('\n');
}
const request = `read(23<${CLIENT}>, "POST /v1/completions HTTP/1.1\\r\\nx-durability-probe: abc\\r\\n\\r\\n", 65536) = 60`;
const walWrite = `pwrite64(19<${WAL}>, "\\0\\0\\0\\niss_00ab", 4096, 32) = 4096`;
/** A frame of the same transaction without the id (another page), and one by another connection. */
const walPage = `pwrite64(19<${WAL}>, "\\0\\0\\0\\r", 4096, 4152) = 4096`;
const monitorWrite = `pwrite64(21<${WAL}>, "\\0\\0\\0\\t", 4096, 8272) = 4096`;
const walSync = `fsync(19<${WAL}>) = 0`;
const response = `writev(23<${CLIENT}>, [{iov_base="HTTP/1.1 200 OK\\r\\n", iov_len=17}], 1) = 17`;

describe('reading strace output', () => {
  it('joins unfinished and resumed calls, and reads socket addresses and paths', () => {
    const calls = parseStrace(
      [
        `7 1800000000.000001 fsync(19<${WAL}> <unfinished ...>`,
        '8 1800000000.000002 write(5<pipe:[1]>, "x", 1) = 1',
        '7 1800000000.000003 <... fsync resumed>) = 0',
        '7 1800000000.000004 accept4(22<TCP:[127.0.0.1:8787]>, NULL, NULL, SOCK_CLOEXEC) = 23<TCP:[127.0.0.1:8787->127.0.0.1:50000]>',
        '9 1800000000.000005 recvfrom(10<TCPv6:[[::1]:5432->[::1]:40000]>, "Q\\0\\0\\0\\vCOMMIT\\0", 8192, 0, NULL, NULL) = 12',
        '7 1800000000.000006 +++ exited with 0 +++',
      ].join('\n'),
    );
    expect(calls.map((call) => [call.name, call.enter, call.exit, call.target, call.result])).toEqual([
      ['write', 1, 1, 'pipe:[1]', '1'],
      ['fsync', 0, 2, WAL, '0'],
      ['accept4', 3, 3, 'TCP:[127.0.0.1:8787]', '23<TCP:[127.0.0.1:8787->127.0.0.1:50000]>'],
      ['recvfrom', 4, 4, 'TCPv6:[[::1]:5432->[::1]:40000]', '12'],
    ]);
    expect(calls[1]!.time).toBe(1_800_000_000.000001);
    expect(tcpConnection(calls[3]!.target)).toBe('[::1]:5432->[::1]:40000');
    expect(reversedConnection('[::1]:5432->[::1]:40000')).toBe('[::1]:40000->[::1]:5432');
  });

  it('passes a record written and synced before the response', () => {
    const [finding] = checkDurability(
      parseStrace(trace(request, walWrite, walSync, response)),
      plain,
      sqlite,
    );
    expect(finding).toMatchObject({ ok: true });
    expect(finding!.detail).toMatch(/^1 writes of the record to gateway.sqlite-wal, fsync/);
  });

  it("ignores another connection's writes to the same files, but not a later page of the record's transaction", () => {
    const [alongside] = checkDurability(
      parseStrace(trace(request, walWrite, walSync, monitorWrite, response)),
      plain,
      sqlite,
    );
    expect(alongside).toMatchObject({ ok: true });
    expect(alongside!.detail).toMatch(/and 1 by another connection/);
    const [unsyncedPage] = checkDurability(
      parseStrace(trace(request, walWrite, walSync, walPage, response)),
      plain,
      sqlite,
    );
    expect(unsyncedPage).toMatchObject({ ok: false });
    const [otherRecord] = checkDurability(
      parseStrace(trace(request, walWrite, walSync, response)),
      [{ ...plain[0]!, records: ['iss_ffff'] }],
      sqlite,
    );
    expect(otherRecord!.detail).toMatch(/the record \(iss_ffff\) was not written/);
  });

  it('fails a record never synced, synced only after the response, or synced before its last write', () => {
    for (const calls of [
      [request, walWrite, response],
      [request, walWrite, response, walSync],
      [request, walWrite, walSync, walWrite, response],
    ]) {
      const [finding] = checkDurability(parseStrace(trace(...calls)), plain, sqlite);
      expect(finding, calls.join('\n')).toMatchObject({ ok: false });
      expect(finding!.detail).toMatch(/no fsync\/fdatasync of it in between/);
    }
  });

  it('fails a response written before anything was recorded, and a sync that failed', () => {
    const [unrecorded] = checkDurability(
      parseStrace(trace(request, response, walWrite, walSync)),
      plain,
      sqlite,
    );
    expect(unrecorded!.detail).toMatch(/was not written/);
    const failedSync = `fsync(19<${WAL}>) = -1 EIO (Input/output error)`;
    const [failed] = checkDurability(
      parseStrace(trace(request, walWrite, failedSync, response)),
      plain,
      sqlite,
    );
    expect(failed).toMatchObject({ ok: false });
  });

  it("matches the response by the request's connection, not by fd number", () => {
    // fd 23 is reused by another connection that is answered before the record is synced.
    const otherResponse = response.replace(CLIENT, OTHER_CLIENT);
    const [finding] = checkDurability(
      parseStrace(trace(request, walWrite, otherResponse, walSync, response)),
      plain,
      sqlite,
    );
    expect(finding).toMatchObject({ ok: true });
  });

  it('a stream must be durable before the bytes that acknowledge it, not before its tokens', () => {
    const streamed = [{ label: 'stream', probe: 'abc', stream: true, records: ['iss_00ab'] }];
    const tokens = `write(23<${CLIENT}>, "data: {\\"choices\\":[{\\"text\\":\\"Hi\\"}]}\\n\\n", 40) = 40`;
    const done = `write(23<${CLIENT}>, "data: [DONE]\\n\\n", 14) = 14`;
    expect(
      checkDurability(parseStrace(trace(request, tokens, walWrite, walSync, done)), streamed, sqlite)[0],
    ).toMatchObject({ ok: true });
    expect(
      checkDurability(parseStrace(trace(request, tokens, walWrite, done, walSync)), streamed, sqlite)[0],
    ).toMatchObject({ ok: false });
  });

  it('PostgreSQL: COMMIT acknowledged before the response, and the WAL flushed before the reply', () => {
    const database = 'TCP:[127.0.0.1:40000->127.0.0.1:5432]';
    const backend = 'TCP:[127.0.0.1:5432->127.0.0.1:40000]';
    const gateway = parseStrace(
      trace(
        request,
        `write(30<${database}>, "Q\\0\\0\\0\\vCOMMIT\\0", 12) = 12`,
        `read(30<${database}>, "C\\0\\0\\0\\vCOMMIT\\0Z\\0\\0\\0\\5I", 65536) = 19`,
        response,
      ),
    );
    const server = (flushed: boolean) =>
      parseStrace(
        [
          `50 1800000000.000001 recvfrom(9<${backend}>, "Q\\0\\0\\0\\vCOMMIT\\0", 8192, 0, NULL, NULL) = 12`,
          '50 1800000000.000001 pwrite64(4</pg/pg_wal/000000010000000000000001>, "x", 8192, 0) = 8192',
          flushed ? '50 1800000000.000001 fdatasync(4</pg/pg_wal/000000010000000000000001>) = 0' : '',
          `50 1800000000.000002 sendto(9<${backend}>, "C\\0\\0\\0\\vCOMMIT\\0Z\\0\\0\\0\\5I", 19, 0, NULL, 0) = 19`,
        ].join('\n'),
      );
    const store = (flushed: boolean): DurableStore => ({
      kind: 'postgres',
      port: 5432,
      server: server(flushed),
    });
    expect(checkDurability(gateway, plain, store(true))[0]).toMatchObject({ ok: true });
    expect(checkDurability(gateway, plain, store(false))[0]!.detail).toMatch(/without flushing its WAL/);
    const unacknowledged = parseStrace(
      trace(request, `write(30<${database}>, "Q\\0\\0\\0\\vCOMMIT\\0", 12) = 12`, response),
    );
    expect(
      checkDurability(unacknowledged, plain, { kind: 'postgres', port: 5432, server: null })[0],
    ).toMatchObject({
      ok: false,
    });
  });
});
