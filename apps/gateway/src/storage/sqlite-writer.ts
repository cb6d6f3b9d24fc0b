/**
 * The SQLite writer thread: the gateway's appends run here on a connection of its own, so the main thread
 * keeps serving (and queueing the next group of records) while a commit waits for its fsync.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { prepareSqliteAppend } from './sqlite-append.ts';
import type { IssuanceInput } from './types.ts';

export interface SqliteWriterStart {
  readonly path: string;
  /** Set on the connection before anything else (sqlite.ts's durability settings). */
  readonly pragmas: readonly string[];
}

export type SqliteWriterRequest =
  | { readonly type: 'append'; readonly id: number; readonly records: readonly IssuanceInput[] }
  | { readonly type: 'close' };

export type SqliteWriterReply =
  | { readonly id: number; readonly firstSeq: number }
  | { readonly id: number; readonly error: { readonly message: string; readonly code: string | null } };

const port = parentPort;
if (port !== null) {
  const start = workerData as SqliteWriterStart;
  const db = new Database(start.path, { fileMustExist: true });
  for (const pragma of start.pragmas) db.pragma(pragma);
  const appender = prepareSqliteAppend(db);
  port.on('message', (request: SqliteWriterRequest) => {
    if (request.type === 'close') {
      db.close();
      port.close();
      return;
    }
    let reply: SqliteWriterReply;
    try {
      reply = { id: request.id, firstSeq: appender.append(request.records) };
    } catch (error) {
      const { message, code } = error as { message?: unknown; code?: unknown };
      reply = {
        id: request.id,
        error: { message: String(message ?? error), code: typeof code === 'string' ? code : null },
      };
    }
    port.postMessage(reply);
  });
}
