/**
 * The issuance log as a Merkle log: the storage appends leaves with the records (same transaction); this
 * reads proofs from the stored subtree hashes and signs checkpoints (C2SP tlog-checkpoint). A checkpoint is
 * signed for the whole log when it is asked for and the log has grown since the last one, so signatures
 * (and checkpoint rows) are bounded by the appends, never by the requests; proofs are served against signed
 * checkpoints only.
 */
import { type LogStore, MerkleLog, type SigningKey, signCheckpoint, toHex } from '@tracemark/provenance';
import type { GatewayStorage, StoredCheckpoint } from '../storage/types.ts';

export interface IssuanceLog {
  /** The log's origin: the first line of every checkpoint, and the signing key's name. */
  readonly origin: string;
  readonly signingKey: SigningKey;
  size(): Promise<number>;
  /**
   * The signed checkpoint of the tree of `treeSize` leaves (default: the whole log), signed and stored once.
   * Only the gateway's own code passes a size; what a client names goes through `signedCheckpoint`.
   */
  checkpoint(treeSize?: number): Promise<StoredCheckpoint>;
  /** The stored checkpoint of exactly `treeSize` leaves, or null: never signs, never writes. */
  signedCheckpoint(treeSize: number): Promise<StoredCheckpoint | null>;
  /** The root hash (hex) of the tree of `treeSize` leaves, unsigned. */
  rootHash(treeSize: number): Promise<string>;
  leafHash(leafIndex: number): Promise<Uint8Array>;
  inclusionProof(leafIndex: number, treeSize: number): Promise<Uint8Array[]>;
  consistencyProof(oldSize: number, newSize: number): Promise<Uint8Array[]>;
}

/** The storage seen as a read-only `LogStore`: leaves and nodes are written by `appendIssuance` only. */
function logStoreOf(storage: GatewayStorage): LogStore {
  return {
    size: () => storage.logSize(),
    append: () => {
      throw new TypeError('the issuance log appends leaves together with their records (appendIssuance)');
    },
    leafHash: async (index) => (await storage.logNodeHashes([{ level: 0, index }]))[0]!,
    nodeHashes: (refs) => storage.logNodeHashes(refs),
  };
}

export function createIssuanceLog(storage: GatewayStorage, signingKey: SigningKey): IssuanceLog {
  const log = new MerkleLog(logStoreOf(storage));
  const signing = new Map<number, Promise<StoredCheckpoint>>();
  return {
    origin: signingKey.name,
    signingKey,
    size: () => log.size(),
    async checkpoint(treeSize) {
      const size = treeSize ?? (await log.size());
      const stored = await storage.getCheckpoint(size);
      if (stored !== null) return stored;
      // Concurrent requests for one size share one signature and one write.
      let pending = signing.get(size);
      if (pending === undefined) {
        pending = (async () => {
          const rootHash = await log.root(size);
          const note = signCheckpoint({ origin: signingKey.name, size, rootHash }, signingKey);
          return storage.saveCheckpoint({
            treeSize: size,
            rootHash: toHex(rootHash),
            note,
            createdAt: new Date().toISOString(),
          });
        })().finally(() => signing.delete(size));
        signing.set(size, pending);
      }
      return pending;
    },
    signedCheckpoint: (treeSize) => storage.getCheckpoint(treeSize),
    rootHash: async (treeSize) => toHex(await log.root(treeSize)),
    leafHash: (leafIndex) => log.leafHash(leafIndex),
    inclusionProof: (leafIndex, treeSize) => log.inclusionProof(leafIndex, treeSize),
    consistencyProof: (oldSize, newSize) => log.consistencyProof(oldSize, newSize),
  };
}
