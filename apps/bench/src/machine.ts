/** The machine a run was measured on: printed with every result and stored in results.json. */
import os from 'node:os';
import { version_core as tfjsVersion } from '@tensorflow/tfjs-core';

export interface MachineInfo {
  cpuModel: string;
  /** Logical cores Node sees. */
  cores: number;
  /** Cores this process may use (cgroup / affinity aware where Node knows it). */
  availableParallelism: number;
  totalMemoryBytes: number;
  platform: string;
  arch: string;
  osRelease: string;
  node: string;
  tfjs: string;
  /** 1, 5 and 15 minute load averages when the run started: other work on the machine slows every number. */
  loadAverage: number[];
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() || 'unknown',
    cores: cpus.length,
    availableParallelism:
      typeof os.availableParallelism === 'function' ? os.availableParallelism() : cpus.length,
    totalMemoryBytes: os.totalmem(),
    platform: os.platform(),
    arch: os.arch(),
    osRelease: os.release(),
    node: process.version,
    tfjs: tfjsVersion,
    loadAverage: os.loadavg().map((v) => Math.round(v * 100) / 100),
  };
}

/** One line for the console and the report header. */
export function describeMachine(m: MachineInfo): string {
  const gib = (m.totalMemoryBytes / 2 ** 30).toFixed(1);
  return `${m.cpuModel}, ${m.cores} cores (${m.availableParallelism} available), ${gib} GiB, ${m.platform}-${m.arch}, Node ${m.node}, tfjs ${m.tfjs}, load average ${m.loadAverage.join(' / ')}`;
}
