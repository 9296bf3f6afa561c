/** Pieces the CLI's recipes share: backend set-up, the wall-clock budget, writing results. */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type BackendName, initBackend } from '@diffuse/backend';
import type { Ema, NetworkDenoiser } from '@diffuse/models';
import { saveModelFiles } from '@diffuse/models/node';

/** Options every training command takes. */
export interface CommonOptions {
  /** Output base path: writes `<out>.safetensors`, `<out>.json` and `<out>.metrics.json`. */
  out: string;
  /** Checkpoint directory (resumed when it holds a checkpoint). */
  checkpoints: string;
  steps: number;
  /** Wall-clock budget in minutes: stops (after a checkpoint) when it runs out. */
  minutes: number;
  seed: number;
  backend: BackendName;
  batchSize: number;
  learningRate: number;
}

export async function setUp(backend: BackendName): Promise<void> {
  const info = await initBackend(backend);
  console.log(`backend ${info.name} (simd ${info.simd}, threads ${info.threads})`);
}

/** An abort signal that fires after `minutes` (none when not finite). */
export function budget(minutes: number): AbortSignal | undefined {
  return Number.isFinite(minutes) && minutes > 0
    ? AbortSignal.timeout(minutes * 60_000)
    : undefined;
}

/** Saves the EMA weights of `model` as `<out>.safetensors` + `<out>.json`, and `<out>.metrics.json`. */
export async function writeResults(
  model: NetworkDenoiser,
  ema: Ema | null,
  out: string,
  metrics: Record<string, unknown>,
): Promise<void> {
  await mkdir(dirname(out), { recursive: true });
  ema?.swap();
  try {
    await saveModelFiles(model, out, { weights: ema ? 'ema' : 'raw' });
  } finally {
    ema?.swap();
  }
  await writeFile(`${out}.metrics.json`, `${JSON.stringify(metrics, null, 2)}\n`);
  console.log(`wrote ${out}.safetensors, ${out}.json, ${out}.metrics.json`);
}

/** The command line that made a result, for its metrics file and README. */
export function commandLine(): string {
  return ['diffuse-train', ...process.argv.slice(2)].join(' ');
}
