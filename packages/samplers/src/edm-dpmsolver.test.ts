/**
 * `EDMDPMSolverMultistepScheduler` (Playground v2.5's scheduler config): EDM's sigmas and
 * preconditioning with DPM-Solver++ at alpha = 1. Driven through `step()` with an EDM-preconditioned
 * mixture oracle (F = (D - c_skip x) / c_out), it must equal `sample('dpmpp_2m')` with the x0 oracle on
 * the same VE levels, and share EDMEulerScheduler's sigmas and timesteps.
 */
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import { GaussianMixture } from '@diffuse/models';
import { edmPreconditioning } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createScheduler, fromConfig, sample } from './index.js';

// Playground v2.5 (1024px aesthetic)'s scheduler_config.json
const playground = {
  _class_name: 'EDMDPMSolverMultistepScheduler',
  _diffusers_version: '0.27.0.dev0',
  algorithm_type: 'dpmsolver++',
  dynamic_thresholding_ratio: 0.995,
  euler_at_final: false,
  final_sigmas_type: 'zero',
  lower_order_final: true,
  num_train_timesteps: 1000,
  prediction_type: 'epsilon',
  rho: 7.0,
  sample_max_value: 1.0,
  sigma_data: 0.5,
  sigma_max: 80.0,
  sigma_min: 0.002,
  sigma_schedule: 'exponential',
  solver_order: 2,
  solver_type: 'midpoint',
  thresholding: false,
};

let gm: GaussianMixture;
beforeAll(async () => {
  await initBackend('wasm');
  gm = new GaussianMixture({
    weights: [0.6, 0.4],
    means: [
      [-1, 0.5],
      [1, -0.5],
    ],
    covs: [
      [
        [0.05, 0],
        [0, 0.05],
      ],
      [
        [0.08, 0.02],
        [0.02, 0.04],
      ],
    ],
  });
});

describe('EDMDPMSolverMultistepScheduler', () => {
  it("shares EDM Euler's levels, and its steps are DPM-Solver++ (2M) in the VE view", async () => {
    const s = createScheduler(playground);
    s.setTimesteps(15);
    const euler = fromConfig(s, { _class_name: 'EDMEulerScheduler' });
    euler.setTimesteps(15);
    expect(s.sigmas).toEqual(euler.sigmas);
    expect(s.timesteps).toEqual(euler.timesteps);
    expect(s.initNoiseSigma).toBeCloseTo(Math.sqrt(80 * 80 + 1), 10);
    const z = [
      [0.3, -1.2],
      [1.1, 0.4],
      [-0.6, 0.9],
    ];
    const x0Model = gm.denoiser('x0');
    await assertNoLeaks(async () => {
      let x = tf.tidy(() => tf.mul(tf.tensor(z), s.sigmas[0]!));
      for (const [k, t] of s.timesteps.entries()) {
        const sig = s.sigmas[k]!;
        const p = edmPreconditioning(sig, 0.5);
        // the network output whose preconditioned x0 is the oracle's: F = (D - c_skip x) / c_out
        const out = tf.tidy(() => {
          const d = x0Model.predict(x, { alpha: 1, sigma: sig });
          return tf.div(tf.sub(d, tf.mul(x, p.cSkip)), p.cOut);
        });
        const xin = s.scaleModelInput(x, t);
        const r = s.step(out, t, x);
        tf.dispose([out, xin, x, r.predOriginalSample]);
        x = r.prevSample;
      }
      const noise = tf.tensor(z);
      const ref = await sample(x0Model, {
        sampler: 'dpmpp_2m',
        samplerOptions: { order: 2, solverType: 'midpoint', lowerOrderFinal: true },
        sigmas: s.sigmas,
        embedding: 've',
        noise,
      });
      const [a, b] = [await x.data(), await ref.data()];
      for (let i = 0; i < a.length; i++)
        expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(b[i]!)));
      tf.dispose([x, noise, ref]);
    });
    s.dispose();
    euler.dispose();
  });
});
