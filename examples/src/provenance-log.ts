/**
 * A tamper-evident issuance log: append issuance records to an RFC 6962 Merkle log, sign a checkpoint,
 * and, as a verifier holding only the public key, check the checkpoint and a record's inclusion proof.
 * Run: pnpm --filter @tracemark/examples run provenance-log
 */
import {
  encodeIssuanceLeaf,
  generateSigningKey,
  type IssuanceRecord,
  issuanceLeafHash,
  MemoryLogStore,
  MerkleLog,
  ProvenanceError,
  sha256Hex,
  signCheckpoint,
  verifyCheckpoint,
  verifyInclusion,
} from '@tracemark/provenance';

const origin = 'example.com/issuance-log';
const signer = generateSigningKey(origin); // Ed25519; publish signer.verifierKey, keep the private key
const log = new MerkleLog(new MemoryLogStore()); // a database implements LogStore in production

// One record per output issued: hashes and ids only, never the text or a key.
const records: IssuanceRecord[] = ['first output', 'second output', 'third output'].map((output, i) => ({
  id: `rec-${i + 1}`,
  time: new Date(Date.UTC(2026, 0, 1, 12, i)).toISOString(),
  apiKeyId: 'ak_demo',
  account: 'acme',
  model: 'tracemark-ngram',
  watermarkKeyId: 'tmk1_000000000000000000000000',
  keyEpoch: null,
  promptSha256: sha256Hex('a prompt'),
  outputSha256: sha256Hex(output),
  normalizedOutputSha256: sha256Hex(output),
  tokenCount: 2,
}));
await log.appendLeaves(records.map(encodeIssuanceLeaf));
const checkpoint = signCheckpoint({ origin, size: await log.size(), rootHash: await log.root() }, signer);
console.log(checkpoint);

// The verifier's side: trust the checkpoint only through the published key, then the proof.
const verified = verifyCheckpoint(checkpoint, signer.verifierKey, { origin });
const proof = await log.inclusionProof(1, verified.size);
const included = (record: IssuanceRecord) =>
  verifyInclusion(issuanceLeafHash(record), 1, verified.size, proof, verified.rootHash);
console.log(`checkpoint signed by ${verified.verifiedBy.join(', ')}, tree size ${verified.size}`);
console.log(`record rec-2 included: ${included(records[1]!)}`);
console.log(`edited record included: ${included({ ...records[1]!, account: 'someone-else' })}`);

// Untrusted input that does not verify is a ProvenanceError with a stable code.
try {
  verifyCheckpoint(checkpoint, generateSigningKey(origin).verifierKey);
} catch (error) {
  if (!(error instanceof ProvenanceError)) throw error;
  console.log(`another key: ${error.code}`);
}
