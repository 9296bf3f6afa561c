/**
 * `diffuse-train flow-mixture`: a toy rectified-flow model. An MLP predicting the velocity
 * u = eps - x0 on the path x_t = (1 - t) x0 + t eps, trained by conditional flow matching
 * (`flowMatchingTrainingLoss`, SD 3's logit-normal times) on the eight-Gaussians mixture of
 * `@diffuse/data`, unconditional, EMA weights. Evaluates the energy distance of its samples to fresh
 * data (against the data-vs-data baseline) under `sample()`'s flow embedding (Euler, Heun, DPM++ 2M
 * on rectified-flow levels) and under diffusers' flow scheduler classes.
 */

import { Random } from '@diffuse/backend';
import { eightGaussians } from '@diffuse/data';
import { Ema, Mlp, mlpConfig } from '@diffuse/models';
import { createScheduler, sample } from '@diffuse/samplers';
import { RectifiedFlowSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { type DiffusionBatch, flowMatchingTrainingLoss } from '../diffusion.js';
import { energyDistance } from '../metrics.js';
import { type CommonOptions, type RecipeRun, runRecipe, setUp } from './common.js';

/** The `@diffuse/models` config of the recipe's network. */
export function flowMixtureConfig(): ReturnType<typeof mlpConfig> {
  return mlpConfig({ dim: 2, width: 128, depth: 3, embedDim: 64, prediction: 'flow' });
}

/** VE sigmas t / (1 - t) of `steps` rectified-flow levels from t = 0.995 down to 0.002, then 0. */
export function flowLevels(steps: number): number[] {
  const rf = new RectifiedFlowSchedule({ tMin: 0.002, tMax: 0.995 });
  const ts = Array.from({ length: steps }, (_, k) => (steps === 1 ? 1 : 1 - k / (steps - 1)));
  return [...ts.map((t) => rf.level(t)).map((l) => l.sigma / l.alpha), 0];
}

/** The latest flow time the logSNR-conditioned MLP is evaluated at (logSNR = -13.8). */
export const FLOW_T_MAX = 0.999;

/**
 * Runs a diffusers flow scheduler class (`FlowMatchEulerDiscreteScheduler`,
 * `FlowMatchHeunDiscreteScheduler`) on a flow model from unit noise `z`, as a diffusers pipeline
 * does: the model sees x_t at t = `sigmas[k]` of the call and returns the velocity.
 */
export function runFlowScheduler(
  model: Mlp,
  className: 'FlowMatchEulerDiscreteScheduler' | 'FlowMatchHeunDiscreteScheduler',
  steps: number,
  z: tf.Tensor,
): tf.Tensor {
  const s = createScheduler({ _class_name: className, num_train_timesteps: 1000, shift: 1 });
  s.setTimesteps(steps);
  let x = tf.clone(z);
  const ts = s.timesteps;
  // the model call at timestep t is at flow time t / 1000 (diffusers' pipelines); the MLP conditions on
  // logSNR = 2 log((1 - t) / t), which is -infinity at the schedules' first call t = 1, so the network is
  // evaluated no later than FLOW_T_MAX (its velocity E[eps - x0 | x_t] is smooth in t there)
  const levelOf = (k: number) => {
    const t = Math.min(ts[k]! / 1000, FLOW_T_MAX);
    return { alpha: 1 - t, sigma: t };
  };
  for (const [k, t] of ts.entries()) {
    const u = model.predict(x, levelOf(k));
    const r = s.step(u, t, x);
    tf.dispose([u, r.predOriginalSample, x]);
    x = r.prevSample;
  }
  s.dispose();
  return x;
}

/** Energy distances of a flow model's samples to fresh mixture data, with the EMA weights in place. */
export async function evaluateFlowMixtureModel(
  model: Mlp,
  toy: ReturnType<typeof eightGaussians>,
  options: { n?: number; seed?: number; steps?: number } = {},
): Promise<Record<string, number>> {
  const n = options.n ?? 1000;
  const steps = options.steps ?? 25;
  const rng = Random.seed(options.seed ?? 1234);
  const [rData, rData2, rNoise] = rng.fork(3);
  const read = async (t: tf.Tensor) => {
    const a = Float64Array.from(await t.data());
    t.dispose();
    return a;
  };
  const d1 = toy.sample(n, rData!);
  const d2 = toy.sample(n, rData2!);
  const a = await read(d1.x);
  const metrics: Record<string, number> = {
    energyDataVsData: energyDistance(a, await read(d2.x), 2),
  };
  tf.dispose([d1.labels, d2.labels]);
  const z = rNoise!.normal([n, 2]);
  const sigmas = flowLevels(steps);
  for (const sampler of ['euler', 'heun', 'dpmpp_2m'] as const) {
    // sample() starts at noise * sigma_0 in VE units (x_VE = x_t / (1 - t))
    const noise = tf.clone(z);
    const x = await sample(model, { sampler, sigmas, embedding: 'flow', noise });
    noise.dispose();
    metrics[`energy_${sampler}`] = energyDistance(await read(x), a, 2);
  }
  for (const cls of [
    'FlowMatchEulerDiscreteScheduler',
    'FlowMatchHeunDiscreteScheduler',
  ] as const) {
    metrics[`energy_${cls}`] = energyDistance(
      await read(runFlowScheduler(model, cls, steps, z)),
      a,
      2,
    );
  }
  z.dispose();
  return metrics;
}

/** Trains the toy flow model (see the module comment); returns the run. */
export async function trainFlowMixture(
  o: CommonOptions,
  evaluation: { n?: number; steps?: number } = {},
): Promise<RecipeRun> {
  if (o.workers !== 0)
    throw new Error(`flow-mixture trains on the main thread (--workers 0), got ${o.workers}`);
  await setUp(o.backend);
  const toy = eightGaussians();
  const model = new Mlp(flowMixtureConfig(), { seed: o.seed });
  console.log(`MLP: ${model.numParams} parameters`);
  return runRecipe<DiffusionBatch>(o, {
    label: 'flow-mixture',
    model,
    ema: new Ema(model.params, { decay: 0.995, warmup: true }),
    data: (rng) => {
      const { x, labels } = toy.sample(o.batchSize, rng);
      labels.dispose();
      return { x };
    },
    objective: { loss: flowMatchingTrainingLoss(model, { timeSampling: 'logit-normal' }) },
    optimizer: {
      warmupSteps: Math.min(100, Math.floor(o.steps / 10)),
      clipNorm: 1,
      minLearningRate: o.learningRate / 20,
    },
    checkpointEvery: 500,
    record: ['command', 'steps', 'batchSize', 'meanLossLast100', 'secondsThisRun', 'parameters'],
    results: async () => {
      const metrics = await evaluateFlowMixtureModel(model, toy, evaluation);
      console.log(metrics);
      return {
        data: 'eightGaussians() from @diffuse/data (radius 2, std 0.2), unconditional',
        path: 'rectified flow x_t = (1 - t) x0 + t eps, velocity target eps - x0, logit-normal t',
        metrics,
      };
    },
  });
}
