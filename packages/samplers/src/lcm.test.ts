/**
 * `LCMScheduler` against diffusers' formulas (scheduling_lcm.py), computed here by hand from the same
 * float32 beta table: its timesteps, and every step's
 *   prev = sqrt(abar') (c_out x0 + c_skip x) + sqrt(1 - abar') z   (the last step: no noise),
 * with c_skip = 0.25 / ((10 t)^2 + 0.25), c_out = 10 t / sqrt((10 t)^2 + 0.25).
 */
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import { DiscreteSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createScheduler, fromConfig, SchedulerConfigError } from './index.js';

// LCM_Dreamshaper_v7's scheduler_config.json
const lcmConfig = {
  _class_name: 'LCMScheduler',
  _diffusers_version: '0.22.0.dev0',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  clip_sample_range: 1.0,
  dynamic_thresholding_ratio: 0.995,
  num_train_timesteps: 1000,
  original_inference_steps: 50,
  prediction_type: 'epsilon',
  rescale_betas_zero_snr: false,
  sample_max_value: 1.0,
  set_alpha_to_one: true,
  steps_offset: 1,
  thresholding: false,
  timestep_scaling: 10.0,
  timestep_spacing: 'leading',
  trained_betas: null,
};

beforeAll(async () => {
  await initBackend('wasm');
});

describe('LCMScheduler', () => {
  it("has diffusers' timesteps and rejects more steps than original_inference_steps", () => {
    const s = createScheduler(lcmConfig);
    s.setTimesteps(4);
    expect(s.timesteps).toEqual([999, 759, 499, 259]);
    s.setTimesteps(1);
    expect(s.timesteps).toEqual([999]);
    s.setTimesteps(8);
    expect(s.timesteps).toEqual([999, 879, 759, 639, 499, 379, 259, 139]);
    expect(() => s.setTimesteps(51)).toThrow(SchedulerConfigError);
  });

  it("each step is diffusers' consistency step, with the given noise", async () => {
    const table = DiscreteSchedule.fromConfig({
      betaSchedule: 'scaled_linear',
      betaStart: 0.00085,
      betaEnd: 0.012,
    }).alphasCumprod;
    const s = createScheduler(lcmConfig);
    s.setTimesteps(4);
    const x0 = [
      [0.4, -0.8],
      [1.2, 0.3],
    ];
    const zs = [
      [
        [0.1, -0.5],
        [0.7, 0.2],
      ],
      [
        [-1.1, 0.4],
        [0.3, 0.9],
      ],
      [
        [0.6, 0.6],
        [-0.2, -1.4],
      ],
      [
        [0, 0],
        [0, 0],
      ],
    ];
    await assertNoLeaks(async () => {
      let x = [
        [1.3, -0.2],
        [-0.7, 0.5],
      ];
      let xt = tf.tensor(x);
      for (const [k, t] of s.timesteps.entries()) {
        const a = table[t]!;
        // an epsilon model whose x0 estimate is x0: eps = (x - sqrt(a) x0) / sqrt(1 - a)
        const eps = x.map((row, i) =>
          row.map((v, j) => (v - Math.sqrt(a) * x0[i]![j]!) / Math.sqrt(1 - a)),
        );
        const out = tf.tensor(eps);
        const z = tf.tensor(zs[k]!);
        const r = s.step(out, t, xt, { noise: z });
        const got = (await r.prevSample.array()) as number[][];
        const st = 10 * t;
        const cSkip = 0.25 / (st * st + 0.25);
        const cOut = st / Math.sqrt(st * st + 0.25);
        const next = k + 1 < s.timesteps.length ? table[s.timesteps[k + 1]!]! : null;
        const want = x.map((row, i) =>
          row.map((v, j) => {
            const d = cOut * x0[i]![j]! + cSkip * v;
            return next === null ? d : Math.sqrt(next) * d + Math.sqrt(1 - next) * zs[k]![i]![j]!;
          }),
        );
        for (let i = 0; i < 2; i++)
          for (let j = 0; j < 2; j++)
            expect(Math.abs(got[i]![j]! - want[i]![j]!), `step ${k}`).toBeLessThan(2e-5);
        tf.dispose([out, z, xt, r.predOriginalSample]);
        xt = r.prevSample;
        x = got;
      }
      xt.dispose();
    });
    s.dispose();
  });

  it('an SD 1.5 config swaps to LCM in one line (LCM-LoRA)', () => {
    const sd15 = createScheduler({
      _class_name: 'PNDMScheduler',
      beta_start: 0.00085,
      beta_end: 0.012,
      beta_schedule: 'scaled_linear',
      skip_prk_steps: true,
      steps_offset: 1,
      clip_sample: false,
      set_alpha_to_one: false,
    });
    const lcm = fromConfig(sd15, { _class_name: 'LCMScheduler' });
    expect(lcm.toConfig().set_alpha_to_one).toBe(false);
    expect(lcm.toConfig().original_inference_steps).toBe(50);
    lcm.setTimesteps(4);
    expect(lcm.timesteps).toEqual([999, 759, 499, 259]);
  });
});
