/**
 * A thread of the gateway's work pool (piscina). It builds its context once, from the key material in
 * `workerData` (which it then wipes), loads the tokenizer before it reports ready, and answers tasks.
 */
import { type MessagePort, workerData } from 'node:worker_threads';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import {
  createWorkContext,
  type KeyMaterial,
  keyFromMaterial,
  type SigningKeyMaterial,
  signingKeyFromMaterial,
  type WorkOutcome,
  type WorkTask,
} from './tasks.ts';

export interface WorkerStart {
  readonly watermarkKey: KeyMaterial;
  readonly rootWatermarkKey: KeyMaterial;
  readonly logSigningKey: SigningKeyMaterial;
}

export interface WorkerMessage {
  readonly task: WorkTask;
  /** Told when the task starts, so the pool times the work and not the wait for a thread. */
  readonly started: MessagePort;
}

const start = workerData as WorkerStart;
const context = createWorkContext({
  watermarkKey: keyFromMaterial(start.watermarkKey),
  rootWatermarkKey: keyFromMaterial(start.rootWatermarkKey),
  logSigningKey: signingKeyFromMaterial(start.logSigningKey),
});
start.watermarkKey.secret.fill(0);
start.rootWatermarkKey.secret.fill(0);
start.logSigningKey.privateKey.fill(0);
context.tokenizer.encodeFast('load the ranks before the first task');

export default async function runTask(message: WorkerMessage): Promise<unknown> {
  message.started.postMessage(true);
  message.started.close();
  const outcome: WorkOutcome = await context.run(message.task);
  // Token ids travel back without a copy.
  const buffers = outcome.ok && outcome.value instanceof Uint32Array ? [outcome.value.buffer] : [];
  return move({
    get [transferableSymbol]() {
      return buffers;
    },
    get [valueSymbol]() {
      return outcome;
    },
  });
}
