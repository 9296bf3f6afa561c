/**
 * The two timed workloads, shared by the Node suites and the browser page: one forward pass of a
 * model, and one Adam step. Both read their result back, so the timed work has finished (on webgl and
 * webgpu too).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BenchModel } from './models.js';
import { type Stat, type TimingPlan, timeIt } from './stats.js';
import { createTrainStep, type TrainStep } from './training-step.js';

/** One model call the way a sampler makes it: `predictAsync` for asynchronous runtimes, else `predict`. */
export async function predictOnce(
  model: BenchModel,
  x: tf.Tensor,
  level: { alpha: number; sigma: number },
): Promise<tf.Tensor> {
  return model.asyncDenoiser
    ? model.asyncDenoiser.predictAsync(x, level)
    : model.denoiser.predict(x, level);
}

/** ms per forward call of `model` at `batch`, and the tensors left behind (0 when nothing leaked). */
export async function timeForward(
  model: BenchModel,
  batch: number,
  plan: TimingPlan & { seed: number },
  onRepeat?: () => void,
): Promise<{ stat: Stat; leaked: number }> {
  const x = tf.randomNormal([batch, ...model.dataShape], 0, 1, 'float32', plan.seed);
  const level = { alpha: 0.8, sigma: 0.6 };
  const before = tf.memory().numTensors;
  try {
    const stat = await timeIt(
      async () => {
        const y = await predictOnce(model, x, level);
        await y.data();
        y.dispose();
      },
      plan,
      onRepeat,
    );
    return { stat, leaked: tf.memory().numTensors - before };
  } finally {
    x.dispose();
  }
}

/** ms per Adam step of `model` at `batch`, and the tensors left behind once the optimizer is freed. */
export async function timeTrainStep(
  model: BenchModel,
  batch: number,
  plan: TimingPlan & { seed: number },
  onRepeat?: () => void,
): Promise<{ stat: Stat; leaked: number }> {
  return timeSteps(() => createTrainStep(model, batch, plan.seed), plan, onRepeat);
}

/**
 * ms per step of any `TrainStep` (built by `create`, disposed at the end), and the tensors left
 * behind: the one timing loop every training row uses (one thread, worker threads, ...).
 */
export async function timeSteps(
  create: () => TrainStep | Promise<TrainStep>,
  plan: TimingPlan,
  onRepeat?: () => void,
): Promise<{ stat: Stat; leaked: number }> {
  const before = tf.memory().numTensors;
  const trainer = await create();
  let stat: Stat;
  try {
    stat = await timeIt(
      async () => {
        const loss = await trainer.step();
        if (!Number.isFinite(loss)) throw new Error(`training loss is ${loss}`);
      },
      plan,
      onRepeat,
    );
  } finally {
    await trainer.dispose();
  }
  return { stat, leaked: tf.memory().numTensors - before };
}
