/**
 * A diffusers UNet + scheduler config as a `Denoiser`: at a table level it is exactly the UNet at
 * that integer timestep; between levels it uses diffusers' `_sigma_to_t`; non-VP levels and
 * v-prediction convert correctly; prompt tables and class labels reach the UNet.
 */
import { fileURLToPath } from 'node:url';
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import { convertPrediction, DiscreteSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiffusersDenoiser, type UNet2DConditionModel, type UNet2DModel } from '../index.js';
import { loadDiffusersModel } from '../node.js';

const dir = (id: string) =>
  fileURLToPath(new URL(`../../../../reference-data/diffusers-models/${id}/`, import.meta.url));
const DDPM_SCHEDULER = {
  _class_name: 'DDPMScheduler',
  beta_schedule: 'linear',
  beta_start: 0.0001,
  beta_end: 0.02,
  num_train_timesteps: 1000,
  clip_sample: true,
  variance_type: 'fixed_large',
};

let unet: UNet2DModel;
let classUnet: UNet2DModel;
let sd: UNet2DConditionModel;
beforeAll(async () => {
  await initBackend('wasm');
  unet = (await loadDiffusersModel(dir('unet2d-ddpm-tiny'))) as UNet2DModel;
  classUnet = (await loadDiffusersModel(dir('unet2d-class-cond'))) as UNet2DModel;
  sd = (await loadDiffusersModel(dir('unet2d-cond-sd1-tiny'))) as UNet2DConditionModel;
});
afterAll(() => {
  for (const m of [unet, classUnet, sd]) m.dispose();
});

const maxDiff = async (a: tf.Tensor, b: tf.Tensor) => {
  const d = tf.max(tf.abs(tf.sub(a, b)));
  const v = (await d.data())[0]!;
  d.dispose();
  return v;
};

describe('DiffusersDenoiser', () => {
  it('declares the scheduler prediction and the UNet sample shape', () => {
    const d = new DiffusersDenoiser(unet, { scheduler: DDPM_SCHEDULER });
    expect(d.prediction).toBe('epsilon');
    expect(d.shape).toEqual([3, 16, 16]);
    expect(d.numClasses).toBeUndefined();
    const v = new DiffusersDenoiser(unet, {
      scheduler: JSON.stringify({ ...DDPM_SCHEDULER, prediction_type: 'v_prediction' }),
    });
    expect(v.prediction).toBe('v');
    expect(new DiffusersDenoiser(classUnet, { scheduler: {} }).numClasses).toBe(10);
    // diffusers writes lambda_min_clipped = -inf as a bare -Infinity (SD 1.5's DPM-Solver file)
    const dpm = new DiffusersDenoiser(unet, {
      scheduler: '{"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity}',
    });
    expect(dpm.prediction).toBe('epsilon');
  });

  it('at a table level is exactly the UNet at that integer timestep; between levels, at _sigma_to_t', async () => {
    const d = new DiffusersDenoiser(unet, { scheduler: DDPM_SCHEDULER });
    const s = DiscreteSchedule.fromConfig();
    const x = tf.randomNormal([2, 3, 16, 16], 0, 1, 'float32', 3);
    for (const t of [0, 481, 999]) {
      const level = s.levelAtIndex(t);
      const got = await assertNoLeaks(() => d.predict(x, level), 'predict');
      const direct = unet.forward({ sample: x, timestep: t });
      expect(Math.abs(d.timestepOf(level.sigma / level.alpha) - t)).toBeLessThan(1e-3);
      expect(await maxDiff(got, direct)).toBeLessThan(2e-5);
      tf.dispose([got, direct]);
    }
    // Half-way in log sigma between 400 and 401 is timestep 400.5.
    const sig = Math.sqrt(s.sigmaVE(400) * s.sigmaVE(401));
    expect(d.timestepOf(sig)).toBeCloseTo(400.5, 3);
    const level = { alpha: 1 / Math.sqrt(1 + sig * sig), sigma: sig / Math.sqrt(1 + sig * sig) };
    const got = d.predict(x, level);
    const direct = unet.forward({ sample: x, timestep: tf.tensor1d([d.timestepOf(sig)]) });
    expect(await maxDiff(got, direct)).toBe(0);
    tf.dispose([x, got, direct]);
  });

  it('a VE-embedded level (alpha = 1) gives the same epsilon; v predictions convert to the given level', async () => {
    const x = tf.randomNormal([2, 3, 16, 16], 0, 1, 'float32', 4);
    const sig = 1.7;
    const vpA = 1 / Math.sqrt(1 + sig * sig);
    const vpLevel = { alpha: vpA, sigma: sig * vpA };
    const eps = new DiffusersDenoiser(unet, { scheduler: DDPM_SCHEDULER });
    const a = eps.predict(x, vpLevel);
    const xVE = tf.div(x, vpA);
    const b = eps.predict(xVE, { alpha: 1, sigma: sig });
    expect(await maxDiff(a, b)).toBeLessThan(1e-5);
    const v = new DiffusersDenoiser(unet, {
      scheduler: { ...DDPM_SCHEDULER, prediction_type: 'v_prediction' },
    });
    const vVP = v.predict(x, vpLevel);
    const vVE = v.predict(xVE, { alpha: 1, sigma: sig });
    // Both must describe the same x0: x0 = convert(v) at each level.
    const x0a = convertPrediction(vVP, 'v', 'x0', x, vpLevel);
    const x0b = convertPrediction(vVE, 'v', 'x0', xVE, { alpha: 1, sigma: sig });
    expect(await maxDiff(x0a, x0b)).toBeLessThan(1e-4);
    tf.dispose([x, a, xVE, b, vVP, vVE, x0a, x0b]);
  });

  it('class labels reach a class-conditional UNet2DModel', async () => {
    const d = new DiffusersDenoiser(classUnet, { scheduler: {} });
    const x = tf.randomNormal([2, 1, 8, 8], 0, 1, 'float32', 5);
    const level = DiscreteSchedule.fromConfig().levelAtIndex(500);
    const labels = tf.tensor1d([3, 7], 'int32');
    const got = d.predict(x, level, { labels });
    const direct = classUnet.forward({ sample: x, timestep: 500, classLabels: labels });
    expect(await maxDiff(got, direct)).toBeLessThan(2e-5);
    expect(() => d.predict(x, level)).toThrow(/class_labels/);
    tf.dispose([x, labels, got, direct]);
  });

  it('a prompt table: labels pick rows, the last row is the null prompt (numClasses = rows - 1)', async () => {
    const table = tf.randomNormal([3, 5, 24], 0, 1, 'float32', 6);
    const d = new DiffusersDenoiser(sd, { scheduler: {}, context: { encoderHiddenStates: table } });
    expect(d.numClasses).toBe(2);
    const x = tf.randomNormal([2, 4, 8, 8], 0, 1, 'float32', 7);
    const level = DiscreteSchedule.fromConfig().levelAtIndex(700);
    const labels = tf.tensor1d([2, 0], 'int32');
    const got = d.predict(x, level, { labels });
    const ctx = tf.gather(table, labels);
    const direct = sd.forward({ sample: x, timestep: 700, encoderHiddenStates: ctx });
    expect(await maxDiff(got, direct)).toBeLessThan(2e-5);
    const row0 = d.predict(x, level); // no labels: row 0 for every example
    const direct0 = sd.forward({
      sample: x,
      timestep: 700,
      encoderHiddenStates: tf.gather(table, tf.tensor1d([0, 0], 'int32')),
    });
    expect(await maxDiff(row0, direct0)).toBeLessThan(2e-5);
    tf.dispose([table, x, labels, got, ctx, direct, row0, direct0]);
  });
});
