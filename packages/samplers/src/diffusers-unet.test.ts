/**
 * The samplers on a real diffusers checkpoint (the UNet2DModel reference folder, random weights,
 * whose numbers match diffusers): a diffusers UNet + scheduler config as a `Denoiser` runs under
 * every family of sampler, the first denoised estimate is the UNet's own x0 at the first level, and
 * `logLikelihood` integrates through it.
 */
import { fileURLToPath } from 'node:url';
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import { DiffusersDenoiser, type UNet2DModel } from '@diffuse/models';
import { loadDiffusersModel } from '@diffuse/models/node';
import { DiscreteSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScheduler, logLikelihood, type StepInfo, sample } from './index.js';

const DIR = fileURLToPath(
  new URL('../../../reference-data/diffusers-models/unet2d-ddpm-tiny/', import.meta.url),
);
// google/ddpm-cifar10-32's scheduler_config.json.
const SCHEDULER = {
  _class_name: 'DDPMScheduler',
  _diffusers_version: '0.1.1',
  beta_end: 0.02,
  beta_schedule: 'linear',
  beta_start: 0.0001,
  clip_sample: true,
  num_train_timesteps: 1000,
  trained_betas: null,
  variance_type: 'fixed_large',
};

let unet: UNet2DModel;
let denoiser: DiffusersDenoiser;
beforeAll(async () => {
  await initBackend('wasm');
  unet = (await loadDiffusersModel(DIR)) as UNet2DModel;
  denoiser = new DiffusersDenoiser(unet, { scheduler: SCHEDULER });
});
afterAll(() => unet.dispose());

describe('samplers on a diffusers UNet2DModel', () => {
  it('ddim, dpmpp_2m, heun, euler_ancestral and unipc give finite samples of the UNet shape, without leaks', async () => {
    const schedule = DiscreteSchedule.fromConfig();
    for (const sampler of ['ddim', 'dpmpp_2m', 'heun', 'euler_ancestral', 'unipc'] as const) {
      const x = await assertNoLeaks(
        () => sample(denoiser, { sampler, schedule, steps: 3, batch: 2, seed: 1 }),
        sampler,
      );
      expect(x.shape, sampler).toEqual([2, 3, 16, 16]);
      const data = await x.data();
      expect(data.every(Number.isFinite), sampler).toBe(true);
      x.dispose();
    }
  });

  it("the first step's denoised estimate is x - sigma eps with eps the UNet at _sigma_to_t", async () => {
    let first: { x: tf.Tensor; denoised: tf.Tensor; sigma: number } | undefined;
    const out = await sample(denoiser, {
      sampler: 'euler',
      schedule: 'karras',
      sigmaMin: 0.05,
      sigmaMax: 20,
      steps: 2,
      batch: 2,
      seed: 3,
      onStep: (info: StepInfo) => {
        if (info.i === 0)
          first = { x: tf.clone(info.x), denoised: tf.clone(info.denoised), sigma: info.sigmaHat };
      },
    });
    const { x, denoised, sigma } = first!;
    const expected = tf.tidy(() => {
      const a = 1 / Math.sqrt(1 + sigma * sigma);
      const t = DiscreteSchedule.fromConfig().timestepFromSigma(sigma);
      const eps = unet.forward({ sample: tf.mul(x, a), timestep: tf.tensor1d([t, t]) });
      return tf.sub(x, tf.mul(eps, sigma));
    });
    const diff = tf.max(tf.abs(tf.sub(expected, denoised)));
    expect((await diff.data())[0]!).toBeLessThan(1e-4 * sigma);
    tf.dispose([out, x, denoised, expected, diff]);
  });

  it("a diffusers DDIMScheduler loop over unet.forward (DDIMPipeline) equals sample(denoiser, 'ddim')", async () => {
    const scheduler = createScheduler({
      _class_name: 'DDIMScheduler',
      beta_schedule: 'linear',
      beta_start: 0.0001,
      beta_end: 0.02,
      clip_sample: false,
    });
    scheduler.setTimesteps(4);
    const noise = tf.randomNormal([2, 3, 16, 16], 0, 1, 'float32', 11);
    let x = tf.mul(noise, scheduler.initNoiseSigma);
    for (const t of scheduler.timesteps) {
      const eps = unet.forward({ sample: x, timestep: t });
      const out = scheduler.step(eps, t, x, { eta: 0 });
      tf.dispose([eps, out.predOriginalSample, x]);
      x = out.prevSample;
    }
    // DDIMPipeline starts at x_T = noise (VP); sample() starts at noise * sigma_0 (VE), i.e. at
    // VP state noise * sigma_vp(T): give it noise / sigma_vp(T) for the same start state.
    const schedule = DiscreteSchedule.fromConfig();
    const t0 = scheduler.timesteps[0]!;
    const start = tf.div(noise, schedule.levelAtIndex(t0).sigma);
    const viaDenoiser = await sample(denoiser, {
      sampler: 'ddim',
      schedule,
      steps: 4,
      spacing: 'leading',
      noise: start,
    });
    start.dispose();
    const diff = tf.max(tf.abs(tf.sub(x, viaDenoiser)));
    expect((await diff.data())[0]!).toBeLessThan(1e-4);
    tf.dispose([noise, x, viaDenoiser, diff]);
    scheduler.dispose();
  });

  it('logLikelihood integrates the probability-flow ODE through the UNet (finite nats)', async () => {
    const x0 = tf.randomUniform([1, 3, 16, 16], -1, 1, 'float32', 9);
    const r = await logLikelihood(denoiser, x0, {
      sigmaMin: 0.5,
      sigmaMax: 5,
      seed: 0,
      rtol: 1e-2,
      atol: 1e-2,
    });
    expect(Number.isFinite(r.nats[0]!)).toBe(true);
    expect(Number.isFinite(r.bitsPerDim[0]!)).toBe(true);
    x0.dispose();
  });
});
