/**
 * The SQLite append transaction: records, near-duplicate index and Merkle leaves in one immediate
 * transaction. Shared by the writer thread (sqlite-writer.ts) and the gateway's own connection (the leaf
 * back-fill at open, and in-memory databases, which another thread cannot open).
 */
import { compactRange, lshBuckets, type NodeRef, planAppend, signatureToBytes } from '@tracemark/provenance';
import type Database from 'better-sqlite3';
import { leafHashOf } from '../provenance/leaf.ts';
import { bytesOf, ISSUANCE_COLUMNS, issuanceFromRow, issuanceValues, type Row } from './rows.ts';
import type { IssuanceInput } from './types.ts';

const placeholders = (count: number) => Array.from({ length: count }, () => '?').join(', ');

export interface SqliteAppender {
  /** Appends the records in one immediate transaction (all or nothing); returns the first one's seq. */
  append(records: readonly IssuanceInput[]): number;
  /** Records written before the Merkle log existed (migration 2) become its first leaves. */
  backfillLeaves(): void;
}

export function prepareSqliteAppend(db: Database.Database): SqliteAppender {
  const nextSeq = db.prepare('SELECT COALESCE(MAX(seq), -1) + 1 AS next FROM issuance_log');
  const insertIssuance = db.prepare(
    `INSERT INTO issuance_log (${ISSUANCE_COLUMNS.join(', ')}) VALUES (${placeholders(ISSUANCE_COLUMNS.length)})`,
  );
  const logSize = db.prepare('SELECT COALESCE(MAX(idx), -1) + 1 AS n FROM log_nodes WHERE level = 0');
  const selectNode = db.prepare('SELECT hash FROM log_nodes WHERE level = ? AND idx = ?');
  const insertNode = db.prepare('INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)');
  const insertMinhash = db.prepare('INSERT INTO issuance_minhash (seq, signature) VALUES (?, ?)');
  const insertLsh = db.prepare('INSERT OR IGNORE INTO issuance_lsh (band, bucket, seq) VALUES (?, ?, ?)');
  const selectUnlogged = db.prepare('SELECT * FROM issuance_log WHERE seq >= ? ORDER BY seq');

  const readNode = (ref: NodeRef): Uint8Array => {
    const row = selectNode.get(ref.level, ref.index) as Row | undefined;
    if (row === undefined) throw new Error(`the Merkle log has no node (${ref.level}, ${ref.index})`);
    return bytesOf(row.hash);
  };
  /** Leaves and completed subtrees for records [seq, …), inside the caller's transaction. */
  const appendLeaves = (seq: number, records: readonly Omit<IssuanceInput, 'minhash'>[]): void => {
    const size = Number((logSize.get() as Row).n);
    if (size !== seq) throw new Error(`the Merkle log has ${size} leaves but the next record is ${seq}`);
    const range = compactRange(seq).map((ref) => ({ ...ref, hash: readNode(ref) }));
    const plan = planAppend(seq, range, records.map(leafHashOf));
    plan.batch.leafHashes.forEach((hash, i) => {
      insertNode.run(0, seq + i, Buffer.from(hash));
    });
    for (const node of plan.batch.nodes) insertNode.run(node.level, node.index, Buffer.from(node.hash));
  };
  const append = db.transaction((records: readonly IssuanceInput[]): number => {
    const first = Number((nextSeq.get() as Row).next);
    let seq = first;
    const stored = records.map(({ minhash, ...record }) => {
      insertIssuance.run(...issuanceValues(seq, record));
      if (minhash !== null) {
        insertMinhash.run(seq, Buffer.from(signatureToBytes(minhash)));
        lshBuckets(minhash).forEach((bucket, band) => {
          insertLsh.run(band, bucket, seq);
        });
      }
      seq++;
      return record;
    });
    appendLeaves(first, stored);
    return first;
  });
  const backfill = db.transaction(() => {
    const size = Number((logSize.get() as Row).n);
    const missing = selectUnlogged.all(size) as Row[];
    if (missing.length > 0) appendLeaves(size, missing.map(issuanceFromRow));
  });
  return {
    append: (records) => append.immediate(records),
    backfillLeaves: () => backfill.immediate(),
  };
}
