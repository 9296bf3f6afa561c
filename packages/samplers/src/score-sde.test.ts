/** Langevin dynamics and the reverse SDEs against closed-form Gaussian results. */
import { initBackend } from '@diffuse/backend';
import { GaussianMixture } from '@diffuse/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { type SamplerName, sample } from './index.js';

const MU = 0.7;
const SD = 0.5;
let gauss: ReturnType<GaussianMixture['denoiser']>;
beforeAll(async () => {
  await initBackend('wasm');
  gauss = new GaussianMixture({ weights: [1], means: [[MU]], covs: [[[SD * SD]]] }).denoiser(
    'score',
  );
});

async function moments(options: Parameters<typeof sample>[1]) {
  const out = await sample(gauss, { ...options, checkFinite: false });
  const v = Array.from(await out.data());
  out.dispose();
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return {
    mean,
    variance: v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1),
    n: v.length,
  };
}

describe('annealed Langevin dynamics', () => {
  it('on N(mu, s^2) with step eps reaches the variance s^2 / (1 - eps / (2 s^2))', async () => {
    const sigma = 1;
    const s2 = SD * SD + sigma * sigma; // p_sigma = N(mu, s^2)
    for (const stepSize of [0.4, 0.8]) {
      const eps = stepSize * sigma * sigma;
      const m = await moments({
        sampler: 'annealed_langevin',
        samplerOptions: { stepsPerLevel: 60, stepSize, denoise: false },
        sigmas: [sigma, 0],
        shape: [20000, 1],
        seed: 21,
      });
      const expected = s2 / (1 - eps / (2 * s2));
      expect(Math.abs(m.mean - MU)).toBeLessThan(5 * Math.sqrt(expected / m.n));
      expect(Math.abs(m.variance / expected - 1)).toBeLessThan(5 * Math.sqrt(2 / m.n));
      // ... and not the exact s^2: the discretisation bias is visible.
      expect(m.variance / s2 - 1).toBeGreaterThan(0.5 * (1 / (1 - eps / (2 * s2)) - 1));
    }
  });
});

describe('reverse-SDE Euler-Maruyama and predictor-corrector', () => {
  it.each<[SamplerName]>([['euler_maruyama_ve'], ['euler_maruyama_vp'], ['pc']])(
    '%s samples N(mu, s^2) with many steps',
    async (name) => {
      const m = await moments({
        sampler: name,
        steps: 250,
        sigmaMin: 0.005,
        sigmaMax: 20,
        shape: [6000, 1],
        seed: 4,
      });
      expect(Math.abs(m.mean - MU)).toBeLessThan(0.03);
      expect(Math.abs(m.variance / (SD * SD) - 1)).toBeLessThan(0.08);
    },
  );
});
