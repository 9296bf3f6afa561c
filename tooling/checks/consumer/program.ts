// What every consumer build runs (Node ESM, Node CommonJS, an esbuild browser bundle, a vite app):
// three training steps of an MLP on two moons (gradients registered by @diffuse/backend), then
// sampling from an exact Gaussian mixture and from the trained MLP. The caller initialises a backend.
import { twoMoons } from '@diffuse/data';
import { uniformTimeSampler } from '@diffuse/losses';
import { GaussianMixture, Mlp, mlpConfig } from '@diffuse/models';
import { sample } from '@diffuse/samplers';
import { CosineSchedule } from '@diffuse/schedules';
import { diffusionLoss, Trainer } from '@diffuse/train';
import * as tf from '@tensorflow/tfjs-core';

export interface ProgramResult {
  backend: string;
  losses: number[];
  mixtureMean: number[];
  mlpFinite: boolean;
  tensorsLeft: number;
}

export async function program(): Promise<ProgramResult> {
  const before = tf.memory().numTensors;
  const toy = twoMoons();
  const model = new Mlp(mlpConfig({ dim: 2, width: 32, depth: 1, embedDim: 16 }), { seed: 0 });
  const losses: number[] = [];
  const trainer = new Trainer({
    params: model.params,
    data: (rng) => toy.sample(64, rng),
    loss: diffusionLoss(model, { sampler: uniformTimeSampler(new CosineSchedule()) }),
    seed: 0,
    optimizer: { learningRate: 1e-3 },
    onProgress: (p) => {
      if (p.kind === 'step') losses.push(p.meanLoss);
    },
    logEvery: 1,
  });
  await trainer.run(3);

  const gm = new GaussianMixture({
    weights: [0.5, 0.5],
    means: [
      [-1, 0],
      [1, 0],
    ],
    covs: [
      [
        [0.05, 0],
        [0, 0.05],
      ],
      [
        [0.05, 0],
        [0, 0.05],
      ],
    ],
  });
  const x = await sample(gm.denoiser('epsilon'), {
    sampler: 'dpmpp_2m',
    steps: 20,
    shape: [512, 2],
    seed: 1,
  });
  const mean = tf.tidy(() => tf.mean(x, 0));
  const mixtureMean = Array.from(await mean.data());
  tf.dispose([x, mean]);

  const y = await sample(model, { sampler: 'euler', steps: 5, shape: [16, 2], seed: 2 });
  const finite = tf.tidy(() => tf.all(tf.isFinite(y)));
  const mlpFinite = (await finite.data())[0] === 1;
  tf.dispose([y, finite]);
  trainer.dispose();
  model.dispose();
  return {
    backend: tf.getBackend(),
    losses,
    mixtureMean,
    mlpFinite,
    tensorsLeft: tf.memory().numTensors - before,
  };
}
