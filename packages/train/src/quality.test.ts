/**
 * Trained models against their data: an MLP denoiser trained briefly on two moons and on a Gaussian
 * mixture. Samples are compared to fresh data with the energy distance, against the data-versus-data
 * baseline (what two independent samples of the true distribution score); the mixture model's
 * probability-flow NLL is compared with the mixture's exact entropy on the same points.
 */

import { initBackend, Random } from '@diffuse/backend';
import { gaussianMixture, type ToyDistribution, twoMoons } from '@diffuse/data';
import { uniformTimeSampler } from '@diffuse/losses';
import { Ema, Mlp, mlpConfig } from '@diffuse/models';
import { logLikelihood, sample } from '@diffuse/samplers';
import { CosineSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DiffusionBatch, diffusionLoss, energyDistance, Trainer } from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

async function read(t: tf.Tensor): Promise<Float64Array> {
  const a = Float64Array.from(await t.data());
  t.dispose();
  return a;
}

async function trainOn(toy: ToyDistribution, steps: number, seed: number) {
  const model = new Mlp(
    mlpConfig({ dim: 2, width: 64, depth: 2, embedDim: 32, prediction: 'epsilon' }),
    { seed },
  );
  const ema = new Ema(model.params, { decay: 0.99, warmup: true });
  const trainer = new Trainer<DiffusionBatch>({
    params: model.params,
    data: (rng) => {
      const { x, labels } = toy.sample(256, rng);
      labels.dispose();
      return { x };
    },
    loss: diffusionLoss(model, { sampler: uniformTimeSampler(new CosineSchedule()) }),
    seed,
    optimizer: {
      learningRate: 3e-3,
      warmupSteps: 50,
      clipNorm: 1,
      decay: 'cosine',
      totalSteps: steps,
      minLearningRate: 1e-4,
    },
    ema,
  });
  await trainer.run(steps);
  trainer.dispose();
  ema.copyTo(model.params);
  ema.dispose();
  return model;
}

/** Mean energy distance of `reps` pairs of independent n-point samples of the data. */
async function baseline(toy: ToyDistribution, n: number, rng: Random, reps = 4): Promise<number> {
  let s = 0;
  for (let r = 0; r < reps; r++) {
    const a = toy.sample(n, rng);
    const b = toy.sample(n, rng);
    s += energyDistance(await read(a.x), await read(b.x), 2);
    tf.dispose([a.labels, b.labels]);
  }
  return s / reps;
}

describe('trained MLP denoisers against their data', () => {
  it('two moons: samples are within a few data-vs-data baselines of fresh data; a moment-matched Gaussian is not', async () => {
    const toy = twoMoons({ noise: 0.05 });
    const model = await trainOn(toy, 1000, 1);
    const n = 1000;
    const rng = Random.seed(99);
    const base = await baseline(toy, n, rng);
    const fresh = toy.sample(n, rng);
    const data = await read(fresh.x);
    fresh.labels.dispose();
    const samples = await read(
      await sample(model, { sampler: 'dpmpp_2m', steps: 30, shape: [n, 2], seed: 5 }),
    );
    const ed = energyDistance(samples, data, 2);
    // A Gaussian with the moons' mean and covariance (1/2, 1/4; 3/4, 9/16 - 1/pi, 1/8 - 1/pi): the
    // nearest "blob" answer, which a model that did not learn the shape would give.
    const g = Random.seed(3);
    const cov = [0.75 + 0.0025, 0.125 - 1 / Math.PI, 0.5625 - 1 / Math.PI + 0.0025];
    const l11 = Math.sqrt(cov[0]!);
    const l21 = cov[1]! / l11;
    const l22 = Math.sqrt(cov[2]! - l21 * l21);
    const blob = new Float64Array(2 * n);
    for (let i = 0; i < n; i++) {
      const z1 = g.standardNormal();
      const z2 = g.standardNormal();
      blob[2 * i] = 0.5 + l11 * z1;
      blob[2 * i + 1] = 0.25 + l21 * z1 + l22 * z2;
    }
    const edBlob = energyDistance(blob, data, 2);
    console.log(
      `two moons energy distance: model ${ed.toFixed(4)}, data-vs-data ${base.toFixed(4)}, Gaussian ${edBlob.toFixed(4)}`,
    );
    // The baseline is the statistic's own sampling noise at this n (two samples of the truth). A model
    // within 2x of it is as close to the data as sampling noise can tell; the moment-matched Gaussian
    // scores above 4x, so the threshold rejects a model that learned only the first two moments.
    expect(edBlob).toBeGreaterThan(4 * base);
    expect(ed).toBeLessThan(2 * base);
    model.dispose();
  }, 400_000);

  it('Gaussian mixture: energy distance near the baseline, and probability-flow NLL within 0.1 nats of the entropy', async () => {
    const toy = gaussianMixture({
      weights: [0.5, 0.3, 0.2],
      means: [
        [-1, 0],
        [1, 0.8],
        [0.8, -1],
      ],
      covs: [
        [
          [0.1, 0],
          [0, 0.1],
        ],
        [
          [0.15, 0.05],
          [0.05, 0.1],
        ],
        [
          [0.1, -0.03],
          [-0.03, 0.12],
        ],
      ],
    });
    const model = await trainOn(toy, 1000, 2);
    const n = 1000;
    const rng = Random.seed(7);
    const base = await baseline(toy, n, rng);
    const fresh = toy.sample(n, rng);
    const data = await read(fresh.x);
    fresh.labels.dispose();
    const samples = await read(
      await sample(model, { sampler: 'dpmpp_2m', steps: 30, shape: [n, 2], seed: 6 }),
    );
    const ed = energyDistance(samples, data, 2);
    // NLL of 100 fresh points under the model (probability-flow ODE, exact trace) and under the truth
    const pts = toy.sample(100, rng);
    const ll = await logLikelihood(model, pts.x, { rtol: 1e-4, atol: 1e-4 });
    const lp = toy.mixture.logProb(pts.x, { alpha: 1, sigma: 0 });
    const nllModel = -ll.nats.reduce((a, b) => a + b, 0) / 100;
    const nllTrue = -(await read(tf.mean(lp)))[0]!;
    tf.dispose([pts.x, pts.labels, lp]);
    console.log(
      `mixture: energy ${ed.toFixed(4)} (baseline ${base.toFixed(4)}); NLL model ${nllModel.toFixed(4)}, true ${nllTrue.toFixed(4)}`,
    );
    expect(ed).toBeLessThan(2 * base);
    expect(Math.abs(nllModel - nllTrue)).toBeLessThan(0.1);
    model.dispose();
  }, 400_000);
});
