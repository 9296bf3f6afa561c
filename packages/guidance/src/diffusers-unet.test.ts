/**
 * Guidance on real diffusers checkpoints (the reference folders, whose numbers match diffusers):
 * text classifier-free guidance with a negative prompt through a prompt-embedding table (SD-1.x-like
 * UNet2DConditionModel), and class CFG on a class-conditional UNet2DModel, each equal to diffusers'
 * u + s (c - u) of two direct UNet calls, and sampling through the guided denoiser.
 */
import { fileURLToPath } from 'node:url';
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import { DiffusersDenoiser, type UNet2DConditionModel, type UNet2DModel } from '@diffuse/models';
import { loadDiffusersModel } from '@diffuse/models/node';
import { sample } from '@diffuse/samplers';
import { DiscreteSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifierFreeGuidance } from './index.js';

const dir = (id: string) =>
  fileURLToPath(new URL(`../../../reference-data/diffusers-models/${id}/`, import.meta.url));
const SD_SCHEDULER = {
  _class_name: 'PNDMScheduler',
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  beta_end: 0.012,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
};

let sd: UNet2DConditionModel;
let classUnet: UNet2DModel;
beforeAll(async () => {
  await initBackend('wasm');
  sd = (await loadDiffusersModel(dir('unet2d-cond-sd1-tiny'))) as UNet2DConditionModel;
  classUnet = (await loadDiffusersModel(dir('unet2d-class-cond'))) as UNet2DModel;
});
afterAll(() => {
  sd.dispose();
  classUnet.dispose();
});

const maxDiff = async (a: tf.Tensor, b: tf.Tensor) => {
  const d = tf.max(tf.abs(tf.sub(a, b)));
  const v = (await d.data())[0]!;
  d.dispose();
  return v;
};

describe('guidance on diffusers UNets', () => {
  it('text CFG with a negative prompt = u + s (c - u) of the UNet on the two embeddings', async () => {
    const prompt = tf.randomNormal([1, 5, 24], 0, 1, 'float32', 1);
    const negative = tf.randomNormal([1, 5, 24], 0, 1, 'float32', 2);
    const table = tf.concat([prompt, negative], 0);
    const denoiser = new DiffusersDenoiser(sd, {
      scheduler: SD_SCHEDULER,
      context: { encoderHiddenStates: table },
    });
    const guided = classifierFreeGuidance(denoiser, { guidanceScale: 7.5 });
    const level = DiscreteSchedule.fromConfig({
      betaSchedule: 'scaled_linear',
      betaStart: 0.00085,
      betaEnd: 0.012,
    }).levelAtIndex(801);
    const x = tf.randomNormal([2, 4, 8, 8], 0, 1, 'float32', 3);
    const labels = tf.zeros([2], 'int32');
    const out = await assertNoLeaks(() => guided.predict(x, level, { labels }), 'guided');
    const c = sd.forward({
      sample: x,
      timestep: 801,
      encoderHiddenStates: tf.concat([prompt, prompt]),
    });
    const u = sd.forward({
      sample: x,
      timestep: 801,
      encoderHiddenStates: tf.concat([negative, negative]),
    });
    const expected = tf.add(u, tf.mul(7.5, tf.sub(c, u)));
    expect(await maxDiff(out, expected)).toBeLessThan(1e-4);
    const latents = await sample(guided, {
      sampler: 'dpmpp_2m',
      schedule: DiscreteSchedule.fromConfig({
        betaSchedule: 'scaled_linear',
        betaStart: 0.00085,
        betaEnd: 0.012,
      }),
      steps: 3,
      shape: [2, 4, 8, 8],
      seed: 0,
      cond: { labels },
    });
    expect((await latents.data()).every(Number.isFinite)).toBe(true);
    tf.dispose([prompt, negative, table, x, labels, out, c, u, expected, latents]);
  });

  it('class CFG on a class-conditional UNet2DModel (null label = a class row)', async () => {
    const denoiser = new DiffusersDenoiser(classUnet, { scheduler: {} });
    const guided = classifierFreeGuidance(denoiser, { guidanceScale: 3, nullLabel: 9 });
    const level = DiscreteSchedule.fromConfig().levelAtIndex(300);
    const x = tf.randomNormal([2, 1, 8, 8], 0, 1, 'float32', 4);
    const labels = tf.tensor1d([3, 7], 'int32');
    const out = guided.predict(x, level, { labels });
    const c = classUnet.forward({ sample: x, timestep: 300, classLabels: labels });
    const u = classUnet.forward({ sample: x, timestep: 300, classLabels: [9, 9] });
    const expected = tf.add(u, tf.mul(3, tf.sub(c, u)));
    expect(await maxDiff(out, expected)).toBeLessThan(1e-4);
    tf.dispose([x, labels, out, c, u, expected]);
  });
});
