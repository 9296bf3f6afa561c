/**
 * One Adam step of denoising training, the workload the training suite times, built from the
 * toolkit's own pieces: `diffusionLoss` and `Adam` of `@diffuse/train` (the step `Trainer` takes:
 * `tf.variableGrads` of the loss, then `Adam.apply`), with t ~ U(0, 1) under the cosine schedule
 * (`uniformTimeSampler(new CosineSchedule())` of `@diffuse/losses` / `@diffuse/schedules`) and the
 * network's own prediction target (epsilon here, Ho et al. 2020, eq. 14).
 * Data are fixed standard-normal examples held in memory: the suite measures speed, not learning.
 */
import { Random } from '@diffuse/backend';
import { uniformTimeSampler } from '@diffuse/losses';
import type { NetworkDenoiser } from '@diffuse/models';
import { CosineSchedule } from '@diffuse/schedules';
import { Adam, diffusionLoss, ParallelGradients, type TrainableDenoiser } from '@diffuse/train';
import * as tf from '@tensorflow/tfjs-core';
import type { BenchModel } from './models.js';

export interface TrainStep {
  /** Runs one Adam step and returns its loss (read back, so the step has finished). */
  step(): Promise<number>;
  /** Frees what the step holds (optimizer state, data; worker threads for parallel steps). */
  dispose(): void | Promise<void>;
}

export function createTrainStep(
  model: BenchModel,
  batch: number,
  seed: number,
  learningRate = 1e-4,
): TrainStep {
  const adam = new Adam(model.variables, { learningRate });
  const loss = diffusionLoss(model.denoiser as TrainableDenoiser, {
    sampler: uniformTimeSampler(new CosineSchedule()),
  });
  const rng = Random.seed(seed);
  // Random.seed, not tf.randomNormal(..., seed): tfjs treats seed 0 as "unseeded".
  const x = Random.seed(seed + 1).normal([batch, ...model.dataShape]);
  return {
    async step() {
      const { value, grads } = tf.variableGrads(() => loss({ x }, rng), model.variables);
      try {
        const norm = adam.apply(model.variables.map((v) => grads[v.name]!));
        norm.dispose();
        return (await value.data())[0]!;
      } finally {
        tf.dispose([value, ...Object.values(grads)]);
      }
    },
    dispose() {
      adam.dispose();
      x.dispose();
    },
  };
}

/**
 * The same Adam step with its gradient computed data-parallel on `workers` worker threads
 * (`ParallelGradients` of `@diffuse/train`: one wasm engine per thread, each takes a shard of the
 * batch; the coordinator draws all noise for the full batch and averages the shard gradients by shard
 * size, so the step equals the one-thread step up to float32 summation order). The threads are
 * started here, before timing: their start-up (2-4 s) is not part of the step.
 */
export async function createParallelTrainStep(
  model: BenchModel,
  batch: number,
  seed: number,
  workers: number,
  learningRate = 1e-4,
): Promise<TrainStep> {
  const gradients = await ParallelGradients.create(
    model.denoiser as NetworkDenoiser,
    { sampler: uniformTimeSampler(new CosineSchedule()) },
    { workers },
  );
  const adam = new Adam(model.variables, { learningRate });
  const rng = Random.seed(seed);
  const x = Random.seed(seed + 1).normal([batch, ...model.dataShape]);
  return {
    async step() {
      const { loss, grads } = await gradients.compute({ x }, rng, model.variables);
      try {
        adam.apply(grads as tf.Tensor[]).dispose();
        return (await loss.data())[0]!;
      } finally {
        tf.dispose([loss, ...grads.filter((g): g is tf.Tensor => g !== undefined)]);
      }
    },
    async dispose() {
      adam.dispose();
      x.dispose();
      await gradients.dispose();
    },
  };
}
