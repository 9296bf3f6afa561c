/**
 * A toy flow-matching model trained with the Trainer: an MLP predicting the velocity u = eps - x0,
 * trained by conditional flow matching on a 2-D Gaussian mixture, then sampled by `sample()` through
 * the VE view of rectified-flow levels (`embedding: 'flow'`). Its samples are compared to fresh data
 * with the energy distance against the data-versus-data baseline, and a moment-matched Gaussian must
 * score worse.
 */
import { initBackend, Random } from '@diffuse/backend';
import { gaussianMixture } from '@diffuse/data';
import { Ema, Mlp, mlpConfig } from '@diffuse/models';
import { sample } from '@diffuse/samplers';
import { RectifiedFlowSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DiffusionBatch, energyDistance, flowMatchingTrainingLoss, Trainer } from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

async function read(t: tf.Tensor): Promise<Float64Array> {
  const a = Float64Array.from(await t.data());
  t.dispose();
  return a;
}

describe('a toy flow-matching model', () => {
  it('trained by conditional flow matching, sampled through every-sampler flow levels: near the data', async () => {
    const toy = gaussianMixture({
      weights: [0.5, 0.5],
      means: [
        [-1, 0],
        [1, 0.5],
      ],
      covs: [
        [
          [0.08, 0],
          [0, 0.08],
        ],
        [
          [0.1, 0.03],
          [0.03, 0.06],
        ],
      ],
    });
    const steps = 500;
    const model = new Mlp(
      mlpConfig({ dim: 2, width: 64, depth: 2, embedDim: 32, prediction: 'flow' }),
      { seed: 3 },
    );
    const ema = new Ema(model.params, { decay: 0.99, warmup: true });
    const trainer = new Trainer<DiffusionBatch>({
      params: model.params,
      data: (rng) => {
        const { x, labels } = toy.sample(256, rng);
        labels.dispose();
        return { x };
      },
      loss: flowMatchingTrainingLoss(model, { timeSampling: 'logit-normal' }),
      seed: 3,
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

    const n = 800;
    const rng = Random.seed(9);
    const [a, b, c] = [toy.sample(n, rng), toy.sample(n, rng), toy.sample(n, rng)];
    const data = await read(a.x);
    const base = energyDistance(data, await read(b.x), 2);
    // a Gaussian with the data's mean and covariance: what a model that missed the modes looks like
    const p = await read(c.x);
    const m = [0, 1].map((d) => p.filter((_, k) => k % 2 === d).reduce((s, v) => s + v, 0) / n);
    let [s00, s01, s11] = [0, 0, 0];
    for (let k = 0; k < n; k++) {
      const [u, v] = [p[2 * k]! - m[0]!, p[2 * k + 1]! - m[1]!];
      s00 += (u * u) / n;
      s01 += (u * v) / n;
      s11 += (v * v) / n;
    }
    const l00 = Math.sqrt(s00);
    const l10 = s01 / l00;
    const l11 = Math.sqrt(s11 - l10 * l10);
    const z = await read(Random.seed(4).normal([n, 2]));
    const gauss = Float64Array.from({ length: 2 * n }, (_, i) => {
      const k = i >> 1;
      return i % 2 === 0 ? m[0]! + l00 * z[2 * k]! : m[1]! + l10 * z[2 * k]! + l11 * z[2 * k + 1]!;
    });
    tf.dispose([a.labels, b.labels, c.labels]);
    const gaussEd = energyDistance(gauss, data, 2);
    // rectified-flow levels from t = 0.995 to 0.002, then the data (sigma 0)
    const rf = new RectifiedFlowSchedule({ tMin: 0.002, tMax: 0.995 });
    const sigmas = [
      ...Array.from({ length: 25 }, (_, k) => rf.level(1 - k / 24)).map((l) => l.sigma / l.alpha),
      0,
    ];
    const eds: Record<string, number> = {};
    for (const sampler of ['euler', 'dpmpp_2m', 'heun'] as const) {
      const x = await sample(model, { sampler, sigmas, embedding: 'flow', shape: [n, 2], seed: 6 });
      eds[sampler] = energyDistance(await read(x), data, 2);
    }
    console.log(
      `flow matching: energy ${JSON.stringify(eds)} (baseline ${base.toFixed(4)}, moment-matched Gaussian ${gaussEd.toFixed(4)})`,
    );
    for (const ed of Object.values(eds)) {
      expect(ed).toBeLessThan(2 * base);
      expect(ed).toBeLessThan(gaussEd);
    }
    model.dispose();
  }, 300_000);
});
