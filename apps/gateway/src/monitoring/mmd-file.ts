/**
 * The MMD calibration the monitor tests accounts with (`--monitor-mmd FILE`): written by `tracemark monitor
 * --issued … --calibrate-mmd FILE` from the provider's own stored traffic, read and checked at start-up.
 */
import { readFile } from 'node:fs/promises';
import { type MmdCalibration, parseMmdCalibration } from '@tracemark/monitoring';
import { ConfigError, describeConfigField } from '../config.ts';

export async function readMmdCalibration(path: string): Promise<MmdCalibration> {
  const where = `${describeConfigField('monitorMmdFile')} ${path}`;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`${where}: cannot read it (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ConfigError(`${where}: not JSON (write it with tracemark monitor --calibrate-mmd)`);
  }
  try {
    return parseMmdCalibration(value);
  } catch (error) {
    throw new ConfigError(`${where}: ${(error as Error).message}`);
  }
}
