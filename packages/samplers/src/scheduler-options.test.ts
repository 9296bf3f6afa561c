/**
 * diffusers scheduler options beyond the real-config corpus, against diffusers' own classes
 * (`reference-data/diffusers-schedulers-extra/options.json`, see its README): LCMScheduler,
 * EDMDPMSolverMultistepScheduler, `use_flow_sigmas` (DPM-Solver / UniPC), Stable Video Diffusion's
 * Euler options, every `timestep_spacing` and `interpolation_type`, Karras / exponential / beta sigmas,
 * `use_lu_lambdas`, `final_sigmas_type`, dynamic thresholding, zero-terminal-SNR betas, UniPC's
 * `sigma_min` / `sigma_max`, a learned variance's extra channels (DeepFloyd IF) and DPMSolverSDE's
 * exponential / beta sigmas (set_timesteps only: diffusers' step needs torchsde).
 *
 * Per case: timesteps exact; sigmas and init_noise_sigma within 1e-6 + 1e-5 |ref|; the sample after
 * every step within 1e-4 + 1e-4 |ref| under the closed-form model out = A x_in + B t / 1000 + C
 * (x_in = scaleModelInput(x, t)), replaying every noise draw diffusers made (issue 16's tolerances,
 * those of real-configs.test.ts).
 */
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createScheduler } from './index.js';
import { expectClose, flat, loadRef } from './testing/refs.js';

interface Case {
  class: string;
  config: Record<string, unknown>;
  num_inference_steps: number;
  mu?: number;
  timesteps: number[];
  timesteps_dtype: string;
  sigmas?: number[];
  init_noise_sigma: number;
  x_init?: unknown;
  samples?: unknown[];
  noise_draws?: unknown[][];
  /** The sample's shape (default [2, 2, 3]). */
  shape?: number[];
  /**
   * The model also outputs a learned variance as extra channels (DeepFloyd IF): tanh(x_in / 2)
   * (`learned_range`), or sigmoid(x_in) / 2 (`'positive'`, the variance itself for `learned`).
   */
  learned_variance?: boolean | 'positive';
  /** diffusers failed while stepping (its step index runs off repeated timesteps): no trajectory. */
  trajectory_error?: string;
}
const ref = loadRef<{ model: { A: number; B: number; C: number }; cases: Case[] }>(
  'diffusers-schedulers-extra/options.json',
);

/** diffusers' sigmas as the sampler chain: Heun / KDPM2 / DPMSolverSDE repeat the interleaved levels. */
function refChain(c: Case): number[] {
  let s = c.sigmas!;
  if (
    c.class.startsWith('Heun') ||
    c.class.startsWith('KDPM2') ||
    c.class === 'DPMSolverSDEScheduler'
  )
    s = s.filter((v, k) => k === 0 || v !== s[k - 1]);
  return s;
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('scheduler options against diffusers', () => {
  it('covers the option cases', () => {
    expect(ref.cases.length).toBeGreaterThan(150);
  });
  for (const c of ref.cases) {
    const name = `${c.class} ${JSON.stringify(c.config)} n=${c.num_inference_steps}${c.mu !== undefined ? ` mu=${c.mu}` : ''}`;
    it(name, async () => {
      const s = createScheduler({ _class_name: c.class, ...c.config }, { onWarning: () => {} });
      s.setTimesteps(c.num_inference_steps, c.mu !== undefined ? { mu: c.mu } : {});
      if (c.timesteps_dtype.startsWith('int'))
        expect(s.timesteps, 'timesteps').toEqual(c.timesteps);
      // Float timesteps that diffusers derives through a float32 log (`_sigma_to_t` on numpy's float32
      // log table, EDM's and SVD's c_noise = log(sigma) / 4 in torch float32) are compared to within
      // 4 float32 ulps: numpy's SIMD float32 log is not correctly rounded (it differs from the rounded
      // float64 log in 190 of the 1000 entries of SD's table) and depends on the CPU's vector unit.
      else expectClose(s.timesteps, c.timesteps, 2e-7, 5e-7, 'timesteps');
      if (c.sigmas) {
        let got = s.sigmas;
        // DPM-Solver / UniPC with use_flow_sigmas run on the VE view v = s / (1 - s) of diffusers' s
        if (c.config.use_flow_sigmas === true) got = got.map((v) => v / (1 + v));
        let want = refChain(c);
        // interpolation_type 'log_linear': diffusers appends the final sigma after n + 1 levels that
        // already end at the table's smallest sigma; the last step lands there, never on the extra one
        if (c.config.interpolation_type === 'log_linear') want = want.slice(0, got.length);
        expectClose(got, want, 1e-6, 1e-5, 'sigmas');
      }
      expectClose([s.initNoiseSigma], [c.init_noise_sigma], 1e-6, 1e-5, 'init_noise_sigma');
      if (c.trajectory_error) return;
      const { A, B, C } = ref.model;
      const shape = c.shape ?? [2, 2, 3];
      const got = await assertNoLeaks(async () => {
        let x = tf.tensor(flat(c.x_init), shape);
        const out: number[][] = [];
        for (const [i, t] of s.timesteps.entries()) {
          const draws = c.noise_draws?.[i] ?? [];
          const noise = draws.length > 0 ? tf.tensor(flat(draws[0]), shape) : undefined;
          const mo = tf.tidy(() => {
            const xin = s.scaleModelInput(x, t);
            const out = tf.add(tf.mul(xin, A), B * (t / 1000) + C);
            if (c.learned_variance === 'positive')
              return tf.concat([out, tf.mul(tf.sigmoid(xin), 0.5)], 1);
            return c.learned_variance ? tf.concat([out, tf.tanh(tf.mul(xin, 0.5))], 1) : out;
          });
          const { prevSample, predOriginalSample } = s.step(mo, t, x, noise ? { noise } : {});
          tf.dispose([mo, x, predOriginalSample, noise]);
          x = prevSample;
          out.push(Array.from(await x.data()));
        }
        x.dispose();
        s.dispose();
        return out;
      });
      expect(got.length, 'steps').toBe(c.samples!.length);
      for (let k = 0; k < got.length; k++)
        expectClose(got[k]!, flat(c.samples![k]), 1e-4, 1e-4, `sample after step ${k}`);
    });
  }
});
