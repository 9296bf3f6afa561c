/**
 * Throughput: ms per model call and samples/s for the MLP denoiser and the U-Net on each Node
 * backend; a whole sampling run on top, split into time inside the model and the sampler's own
 * time per step, with live tensors and backend memory at every model call.
 */
import * as tf from '@tensorflow/tfjs-core';
import { recordBackend, useBackend } from '../backends.js';
import { timeForward } from '../measure.js';
import { createModel, MODEL_NAMES, type ModelName } from '../models.js';
import { sizesFor } from '../plan.js';
import type { ThroughputRow, ThroughputSuite } from '../results.js';
import { measureSampling, samplingAvailable } from '../sampling.js';
import { type SuiteContext, since } from '../suite.js';

export const MODELS: ModelName[] = MODEL_NAMES;

export async function runThroughput(ctx: SuiteContext): Promise<ThroughputSuite> {
  const t0 = performance.now();
  const { plan, progress } = ctx;
  const rows: ThroughputRow[] = [];
  const notes: string[] = [];
  const sampler = await samplingAvailable();
  if (!sampler.ok) notes.push(`sampling runs skipped: ${sampler.reason}`);
  progress.plan(plan.backends.length * MODELS.length * (sampler.ok ? 2 : 1));
  for (const backend of plan.backends) {
    if (backend !== 'wasm' && backend !== 'cpu') continue;
    const rec = await useBackend(backend);
    recordBackend(ctx.backends, rec);
    if (!rec.available) {
      notes.push(`${backend}: unavailable (${rec.reason})`);
      progress.tick();
      continue;
    }
    const sizes = sizesFor(plan, backend);
    for (const name of MODELS) {
      const batch = name === 'mlp' ? sizes.mlpBatch : sizes.unetBatch;
      progress.status(`throughput: ${name} on ${backend}`);
      const model = createModel(name, plan.seed);
      try {
        const modelBytes = tf.memory().numBytes;
        const { stat, leaked } = await timeForward(model, batch, plan, () =>
          progress.status(`throughput: ${name} forward on ${backend} (batch ${batch})`),
        );
        progress.tick();
        const row: ThroughputRow = {
          model: name,
          modelLabel: model.label,
          modelSource: model.source,
          params: model.params,
          backend,
          environment: 'node',
          batch,
          msPerCall: stat,
          samplesPerSecond: (batch * 1000) / stat.median,
          leakedTensors: leaked,
          modelBytes,
          rssBytes: process.memoryUsage().rss,
        };
        if (sampler.ok && (backend !== 'cpu' || plan.preset === 'full')) {
          progress.status(`throughput: ${name} sampling on ${backend}`);
          row.sampling = await measureSampling(model, batch, plan.samplingSteps, ctx);
          progress.tick();
        } else if (sampler.ok) {
          progress.tick();
          const skip = 'cpu: no sampling runs outside --full (25-35x slower than wasm)';
          if (!notes.includes(skip)) notes.push(skip);
        }
        rows.push(row);
      } catch (e) {
        notes.push(`${name} on ${backend} failed: ${(e as Error).message}`);
      } finally {
        model.dispose();
      }
    }
  }
  const expected = plan.backends.length * MODELS.length;
  const status =
    plan.backends.length === 0
      ? 'skipped'
      : rows.length === 0
        ? 'failed'
        : rows.length < expected || !sampler.ok
          ? 'partial'
          : 'ok';
  return { status, notes, durationMs: since(t0), rows };
}
