/**
 * The benchmark page that runs in headless Chromium (`--browser`): the same models and the same timed
 * workloads as the Node suites, on webgl or webgpu. Bundled by tsup into `dist/browser/page.global.js`;
 * the Node side (`runner.ts`) serves it and calls `globalThis.diffuseBench.run(job)`.
 */
import '@diffuse/backend/webgl';
import '@diffuse/backend/webgpu';
import { initBackend } from '@diffuse/backend';
import { timeForward, timeTrainStep } from '../measure.js';
import { createModel, type ModelName } from '../models.js';
import type { BackendSizes } from '../plan.js';
import type { BackendRecord, ThroughputRow, TrainingRow } from '../results.js';

export interface BrowserJob {
  backend: 'webgl' | 'webgpu';
  models: ModelName[];
  suites: ('throughput' | 'training')[];
  sizes: BackendSizes;
  warmup: number;
  repeats: number;
  seed: number;
}

export interface BrowserResult {
  backend: BackendRecord;
  throughput: ThroughputRow[];
  training: TrainingRow[];
  errors: string[];
}

async function run(job: BrowserJob): Promise<BrowserResult> {
  const out: BrowserResult = {
    backend: { name: job.backend, environment: 'browser', available: false },
    throughput: [],
    training: [],
    errors: [],
  };
  try {
    const info = await initBackend(job.backend);
    out.backend = {
      name: info.name,
      environment: 'browser',
      available: true,
      simd: info.simd,
      threads: info.threads,
      float32: info.float32,
      simdKernels: info.simdKernels,
      browser: navigator.userAgent,
    };
  } catch (e) {
    out.backend.reason = (e as Error).message;
    return out;
  }
  const plan = { warmup: job.warmup, repeats: job.repeats, seed: job.seed };
  for (const name of job.models) {
    const model = createModel(name, job.seed);
    const base = {
      model: name,
      modelLabel: model.label,
      modelSource: model.source,
      params: model.params,
      backend: job.backend,
      environment: 'browser' as const,
    };
    try {
      if (job.suites.includes('throughput')) {
        const batch = name === 'mlp' ? job.sizes.mlpBatch : job.sizes.unetBatch;
        const { stat, leaked } = await timeForward(model, batch, plan);
        out.throughput.push({
          ...base,
          batch,
          msPerCall: stat,
          samplesPerSecond: (batch * 1000) / stat.median,
          leakedTensors: leaked,
          modelBytes: 0,
        });
      }
      if (job.suites.includes('training')) {
        const batch = name === 'mlp' ? job.sizes.mlpTrainBatch : job.sizes.unetTrainBatch;
        const { stat, leaked } = await timeTrainStep(model, batch, plan);
        out.training.push({
          ...base,
          batch,
          variant: 'default',
          ablation: false,
          msPerStep: stat,
          leakedTensors: leaked,
        });
      }
    } catch (e) {
      out.errors.push(`${name} on ${job.backend}: ${(e as Error).message}`);
    } finally {
      model.dispose();
    }
  }
  return out;
}

(globalThis as unknown as { diffuseBench: { run: typeof run } }).diffuseBench = { run };
