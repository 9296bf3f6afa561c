/** Pieces the CLI's recipes share: backend set-up, the wall-clock budget, writing results. */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type BackendName, initBackend } from '@diffuse/backend';
import type { Ema, NetworkDenoiser } from '@diffuse/models';
import { saveModelFiles } from '@diffuse/models/node';
import { type DiffusionBatch, type DiffusionLossOptions, diffusionLoss } from '../diffusion.js';
import { ParallelGradients } from '../parallel.js';
import type { TrainerOptions } from '../trainer.js';

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
  /** Gradient worker threads (0: compute gradients on the main thread). */
  workers: number;
}

export async function setUp(backend: BackendName): Promise<void> {
  const info = await initBackend(backend);
  console.log(`backend ${info.name} (simd ${info.simd}, threads ${info.threads})`);
}

/**
 * The trainer's loss, on the main thread (`workers` 0) or as `ParallelGradients` over `workers`
 * threads (same steps for one seed, within float32 rounding; the trainer disposes the workers).
 */
export async function gradientsFor(
  model: NetworkDenoiser,
  loss: DiffusionLossOptions,
  o: Pick<CommonOptions, 'workers' | 'backend'>,
): Promise<Pick<TrainerOptions<DiffusionBatch>, 'loss' | 'gradients'>> {
  if (o.workers === 0) return { loss: diffusionLoss(model, loss) };
  if (o.backend !== 'wasm' && o.backend !== 'cpu') {
    throw new Error(`--workers needs --backend wasm or cpu, got ${o.backend}`);
  }
  const gradients = await ParallelGradients.create(model, loss, {
    workers: o.workers,
    backend: o.backend,
  });
  console.log(`${gradients.workers} gradient worker threads (${gradients.backend})`);
  return { gradients };
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
