/** The machine an experiment ran on, for the header of every result file. */
import os from 'node:os';

export interface Environment {
  readonly cpuModel: string;
  readonly cores: number;
  readonly node: string;
  readonly platform: string;
  readonly memoryGiB: number;
}

export function describeEnvironment(): Environment {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown CPU',
    cores: cpus.length,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  };
}

/** The 1-minute load average, a rough measure of what else the machine was doing. */
export function loadAverage(): number {
  return os.loadavg()[0] ?? 0;
}
