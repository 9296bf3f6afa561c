/**
 * Euler-family options beyond the corpus files: `use_exponential_sigmas`, Karras sigmas between the
 * config's `sigma_min` / `sigma_max`, and continuous timesteps (Stable Video Diffusion's scheduler
 * config), against diffusers' formulas (EulerDiscreteScheduler.set_timesteps) and the default Karras
 * path that the diffusers references check.
 */
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import { GaussianMixture } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createScheduler } from './index.js';

const sd = {
  _class_name: 'EulerDiscreteScheduler',
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  beta_end: 0.012,
  steps_offset: 1,
};

beforeAll(async () => {
  await initBackend('wasm');
});

describe('EulerDiscreteScheduler sigma options', () => {
  it('Karras between explicit sigma_min / sigma_max equal to the spaced ends is the default Karras path', () => {
    const plain = createScheduler({ ...sd, use_karras_sigmas: true });
    plain.setTimesteps(20);
    const hi = plain.sigmas[0]!;
    const lo = plain.sigmas[19]!;
    const explicit = createScheduler({
      ...sd,
      use_karras_sigmas: true,
      sigma_min: lo,
      sigma_max: hi,
    });
    explicit.setTimesteps(20);
    explicit.sigmas.forEach((s, k) => {
      expect(Math.abs(s - plain.sigmas[k]!)).toBeLessThanOrEqual(1e-6 + 1e-5 * plain.sigmas[k]!);
    });
    explicit.timesteps.forEach((t, k) => {
      expect(Math.abs(t - plain.timesteps[k]!)).toBeLessThan(1e-3);
    });
  });

  it('exponential sigmas are log-uniform between the spaced ends, timesteps by _sigma_to_t', () => {
    const plain = createScheduler(sd);
    plain.setTimesteps(10);
    const s = createScheduler({ ...sd, use_exponential_sigmas: true });
    s.setTimesteps(10);
    const [hi, lo] = [plain.sigmas[0]!, plain.sigmas[9]!];
    for (let k = 0; k < 10; k++) {
      const want = Math.exp(Math.log(hi) + (k / 9) * (Math.log(lo) - Math.log(hi)));
      expect(s.sigmas[k]! / want).toBeCloseTo(1, 6);
    }
    expect(s.sigmas[10]).toBe(0);
    expect(s.timesteps[0]).toBeCloseTo(plain.timesteps[0]!, 2);
    expect(s.timesteps[9]).toBeCloseTo(plain.timesteps[9]!, 2);
    for (let k = 1; k < 10; k++) expect(s.timesteps[k]!).toBeLessThan(s.timesteps[k - 1]!);
  });

  it("Stable Video Diffusion's config: Karras 700 -> 0.002, continuous timesteps ln(sigma) / 4, v-prediction", async () => {
    const svd = createScheduler(
      {
        ...sd,
        prediction_type: 'v_prediction',
        timestep_type: 'continuous',
        use_karras_sigmas: true,
        sigma_min: 0.002,
        sigma_max: 700.0,
        interpolation_type: 'linear',
        timestep_spacing: 'leading',
        clip_sample: false,
        set_alpha_to_one: false,
        skip_prk_steps: true,
      },
      { onWarning: () => {} },
    );
    svd.setTimesteps(25);
    expect(svd.sigmas[0]).toBe(700);
    expect(svd.sigmas[svd.sigmas.length - 2]).toBe(Math.fround(0.002));
    expect(svd.timesteps[0]).toBe(Math.fround(0.25 * Math.fround(Math.log(700))));
    expect(svd.initNoiseSigma).toBeCloseTo(Math.sqrt(700 * 700 + 1), 3);
    // Gaussian data N(1, 0.05): the probability-flow map from sigma_0 to 0 is known in closed form
    const gm = new GaussianMixture({ weights: [1], means: [[1]], covs: [[[0.05]]] });
    const z = [-0.3, 0.9, 0.1];
    const model = gm.denoiser('v');
    const s0 = Math.sqrt(0.05);
    const worst = async (n: number) => {
      svd.setTimesteps(n);
      let x = tf.tidy(() => tf.mul(tf.tensor(z, [3, 1]), svd.initNoiseSigma));
      for (const [k, t] of svd.timesteps.entries()) {
        const xin = svd.scaleModelInput(x, t);
        const s = svd.sigmas[k]!;
        const out = model.predict(xin, {
          alpha: 1 / Math.sqrt(1 + s * s),
          sigma: s / Math.sqrt(1 + s * s),
        });
        const r = svd.step(out, t, x);
        tf.dispose([xin, out, x, r.predOriginalSample]);
        x = r.prevSample;
      }
      const v = await x.data();
      x.dispose();
      return Math.max(
        ...z.map((zk, k) => {
          const exact = 1 + (zk * svd.initNoiseSigma - 1) * (s0 / Math.sqrt(s0 * s0 + 700 * 700));
          return Math.abs(v[k]! - exact);
        }),
      );
    };
    await assertNoLeaks(async () => {
      // Euler is first order: the error against the exact flow map falls ~4x from 25 to 100 steps
      const e25 = await worst(25);
      const e100 = await worst(100);
      expect(e25).toBeLessThan(5e-2);
      expect(e100).toBeLessThan(e25 / 2.5);
    });
    svd.dispose();
  });
});
