/** DDIM inversion (data to noise) against the closed-form probability-flow map, and the round trip. */
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import { GaussianMixture } from '@diffuse/models';
import { DiscreteSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { invert, SamplerError, sample } from './index.js';

const MU = 0.4;
const S0 = 0.6;
let gauss: ReturnType<GaussianMixture['denoiser']>;
beforeAll(async () => {
  await initBackend('wasm');
  gauss = new GaussianMixture({ weights: [1], means: [[MU]], covs: [[[S0 * S0]]] }).denoiser(
    'epsilon',
  );
});

const flow = (x: number, s: number, s2: number) =>
  MU + (x - MU) * Math.sqrt((S0 * S0 + s2 * s2) / (S0 * S0 + s * s));
const geometric = (n: number, lo: number, hi: number) =>
  Array.from({ length: n + 1 }, (_, k) =>
    Math.exp(Math.log(lo) + (k / n) * (Math.log(hi) - Math.log(lo))),
  );

describe('invert', () => {
  it('follows the exact probability-flow map up the noise levels (DDIM = first order, Heun second)', async () => {
    const pts = [-0.8, 0.1, 0.5, 1.7];
    const errs: Record<string, number[]> = { euler: [], heun: [] };
    for (const sampler of ['euler', 'heun'] as const) {
      for (const n of [20, 40]) {
        const sigmas = geometric(n, 0.02, 30);
        const x = tf.tensor(
          pts.map((p) => p / Math.sqrt(1 + 0.02 ** 2)),
          [4, 1],
        ); // VP-scaled at sigma 0.02
        const z = await invert(gauss, x, { sampler, sigmas });
        const v = await z.data();
        tf.dispose([x, z]);
        const a = 1 / Math.sqrt(1 + 30 * 30);
        errs[sampler]!.push(
          Math.max(...pts.map((p, k) => Math.abs(v[k]! / a - flow(p, 0.02, 30)) / 30)),
        );
      }
    }
    expect(errs.euler![0]! / errs.euler![1]!).toBeGreaterThan(1.7);
    expect(errs.heun![0]! / errs.heun![1]!).toBeGreaterThan(3.4);
    expect(errs.heun![1]!).toBeLessThan(errs.euler![1]! / 5);
  });

  it('round trip on a discrete VP schedule: invert, then sample back with the same levels', async () => {
    const schedule = DiscreteSchedule.fromConfig({
      betaSchedule: 'scaled_linear',
      betaStart: 0.00085,
      betaEnd: 0.012,
    });
    const ts = Array.from({ length: 60 }, (_, k) => 999 - Math.round((k * 999) / 59));
    const levels = ts.map((t) => schedule.levelAt(t)); // decreasing noise
    const x0 = tf.tensor([[-0.5], [0.3], [1.1]]);
    await assertNoLeaks(async () => {
      const start = tf.mul(x0, levels[levels.length - 1]!.alpha);
      const z = await invert(gauss, start, { sampler: 'heun', levels: [...levels].reverse() });
      const noise = tf.div(z, levels[0]!.sigma); // sample() starts from noise * sigma_0 (VE)
      const back = await sample(gauss, { sampler: 'heun', levels, noise });
      const err = Math.max(
        ...Array.from(await back.data(), (v, k) => Math.abs(v - (start.dataSync()[k] as number))),
      );
      tf.dispose([start, z, back, noise]);
      expect(err).toBeLessThan(2e-3);
    });
    x0.dispose();
  });

  it('refuses stochastic samplers', async () => {
    const x = tf.zeros([2, 1]);
    await expect(
      invert(gauss, x, { sampler: 'euler_ancestral', sigmas: [0.1, 1], seed: 1 }),
    ).rejects.toThrow(SamplerError);
    x.dispose();
  });
});
