/**
 * `diffuse-train mixture`: the class-conditional 2-D mixture model the demo ships: an MLP on the
 * eight-Gaussians mixture of `@diffuse/data` (8 classes, exact oracle), epsilon prediction, cosine
 * logSNR schedule, conditioning dropout 0.1 (null class 8) for classifier-free guidance, EMA weights.
 * Evaluates the energy distance of its samples to fresh data against the data-vs-data baseline, and
 * the probability-flow NLL against the mixture's exact entropy.
 */

import { Random } from '@diffuse/backend';
import { eightGaussians } from '@diffuse/data';
import { uniformTimeSampler } from '@diffuse/losses';
import { Ema, Mlp, mlpConfig } from '@diffuse/models';
import { logLikelihood, sample } from '@diffuse/samplers';
import { CosineSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import type { DiffusionBatch } from '../diffusion.js';
import { energyDistance } from '../metrics.js';
import { type CommonOptions, gradientsFor, runRecipe, setUp } from './common.js';

/** Metrics of a 2-D denoiser against a mixture toy, with the EMA weights in place. */
export async function evaluateMixtureModel(
  model: Mlp,
  toy: ReturnType<typeof eightGaussians>,
  options: { n?: number; nllPoints?: number; seed?: number; steps?: number } = {},
): Promise<Record<string, number>> {
  const n = options.n ?? 1000;
  const rng = Random.seed(options.seed ?? 1234);
  const [rData, rData2, rSample, rNll] = rng.fork(4);
  const read = async (t: tf.Tensor) => Float64Array.from(await t.data());
  const d1 = toy.sample(n, rData!);
  const d2 = toy.sample(n, rData2!);
  const nullLabels = tf.fill([n], model.nullLabel, 'int32');
  const uncond = await sample(model, {
    sampler: 'dpmpp_2m',
    steps: options.steps ?? 40,
    shape: [n, 2],
    rng: rSample!,
    cond: { labels: nullLabels },
  });
  const cond = await sample(model, {
    sampler: 'dpmpp_2m',
    steps: options.steps ?? 40,
    shape: [n, 2],
    rng: rSample!,
    cond: { labels: d2.labels },
  });
  const a = await read(d1.x);
  const b = await read(d2.x);
  const metrics: Record<string, number> = {
    energyDataVsData: energyDistance(a, b, 2),
    energyUnconditional: energyDistance(await read(uncond), a, 2),
    energyConditional: energyDistance(await read(cond), b, 2),
  };
  // probability-flow NLL of fresh data under the unconditional model vs the true entropy H = -E log p0
  const m = options.nllPoints ?? 200;
  const pts = toy.sample(m, rNll!);
  // the unconditional model (null label) as a plain denoiser: logLikelihood evaluates it on batches
  // of its own making, so the labels are made to match each call's batch
  const unconditional = {
    prediction: model.prediction,
    shape: model.shape,
    predict: (x: tf.Tensor, level: Parameters<Mlp['predict']>[1]) =>
      tf.tidy(() =>
        model.predict(x, level, { labels: tf.fill([x.shape[0]!], model.nullLabel, 'int32') }),
      ),
  };
  const ll = await logLikelihood(unconditional, pts.x, { rtol: 1e-4, atol: 1e-4 });
  const lp = toy.mixture.logProb(pts.x, { alpha: 1, sigma: 0 });
  metrics.nllModel = -ll.nats.reduce((acc: number, v: number) => acc + v, 0) / m;
  metrics.nllTrue = -(await tf.mean(lp).data())[0]!;
  tf.dispose([d1.x, d1.labels, d2.x, d2.labels, uncond, cond, nullLabels, pts.x, pts.labels, lp]);
  return metrics;
}

export async function trainMixture(o: CommonOptions): Promise<void> {
  await setUp(o.backend);
  const toy = eightGaussians();
  const model = new Mlp(
    mlpConfig({
      dim: 2,
      width: 128,
      depth: 3,
      embedDim: 64,
      numClasses: toy.numClasses,
      prediction: 'epsilon',
    }),
    { seed: o.seed },
  );
  console.log(`MLP: ${model.numParams} parameters`);
  await runRecipe<DiffusionBatch>(o, {
    label: 'mixture',
    model,
    ema: new Ema(model.params, { decay: 0.995, warmup: true }),
    data: (rng) => toy.sample(o.batchSize, rng),
    objective: await gradientsFor(
      model,
      { sampler: uniformTimeSampler(new CosineSchedule()), condDropout: 0.1 },
      o,
    ),
    optimizer: {
      warmupSteps: Math.min(100, Math.floor(o.steps / 10)),
      clipNorm: 1,
      minLearningRate: o.learningRate / 20,
    },
    checkpointEvery: 500,
    record: ['command', 'steps', 'batchSize', 'meanLossLast100', 'secondsThisRun', 'parameters'],
    results: async () => {
      const metrics = await evaluateMixtureModel(model, toy);
      console.log(metrics);
      return {
        data: 'eightGaussians() from @diffuse/data (radius 2, std 0.2, labels 0..7)',
        metrics,
      };
    },
  });
}
