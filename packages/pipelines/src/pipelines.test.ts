/**
 * The pipelines on the diffusers reference checkpoints (numbers matching diffusers), each checked
 * against the same pipeline written by hand as a DDIM loop over direct `unet.forward` calls (the
 * math of diffusers' DDIMPipeline / StableDiffusion(Img2Img)Pipeline with eta = 0), plus progress,
 * cancellation, determinism and leaks.
 */
import { fileURLToPath } from 'node:url';
import { assertNoLeaks, initBackend, Random } from '@diffuse/backend';
import type { AutoencoderKL, UNet2DConditionModel, UNet2DModel } from '@diffuse/models';
import { loadDiffusersModel } from '@diffuse/models/node';
import { SamplingAbortedError } from '@diffuse/samplers';
import { DiscreteSchedule, diffusersTimesteps, type NoiseLevel } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  imageToImage,
  PipelineError,
  type PipelineProgress,
  pixelPipeline,
  textToImage,
} from './index.js';

const dir = (id: string) =>
  fileURLToPath(new URL(`../../../reference-data/diffusers-models/${id}/`, import.meta.url));
const DDPM = { _class_name: 'DDPMScheduler', beta_schedule: 'linear', num_train_timesteps: 1000 };
const SD = {
  _class_name: 'PNDMScheduler',
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  beta_end: 0.012,
  num_train_timesteps: 1000,
  steps_offset: 1,
  set_alpha_to_one: false,
  skip_prk_steps: true,
};
const SD_SCHEDULE = DiscreteSchedule.fromConfig({
  betaSchedule: 'scaled_linear',
  betaStart: 0.00085,
  betaEnd: 0.012,
});

let unet: UNet2DModel;
let sd: UNet2DConditionModel;
let vae: AutoencoderKL;
beforeAll(async () => {
  await initBackend('wasm');
  unet = (await loadDiffusersModel(dir('unet2d-ddpm-tiny'))) as UNet2DModel;
  sd = (await loadDiffusersModel(dir('unet2d-cond-sd1-tiny'))) as UNet2DConditionModel;
  vae = (await loadDiffusersModel(dir('vae-kl-sd-tiny'))) as AutoencoderKL;
});
afterAll(() => {
  for (const m of [unet, sd, vae]) m.dispose();
});

const maxDiff = async (a: tf.Tensor, b: tf.Tensor) => {
  const d = tf.max(tf.abs(tf.sub(a, b)));
  const v = (await d.data())[0]!;
  d.dispose();
  return v;
};

/** diffusers' timesteps and their table levels. */
function levelsFor(schedule: DiscreteSchedule, steps: number, stepsOffset = 0) {
  const ts = Array.from(
    diffusersTimesteps(1000, { numInferenceSteps: steps, spacing: 'leading', stepsOffset }),
  );
  return { ts, levels: ts.map((t) => schedule.levelAt(t)) };
}

/** DDIM (eta = 0) by hand from a VP state at levels[0], over direct model calls eps(x, t). */
function ddimLoop(
  x0: tf.Tensor,
  ts: number[],
  levels: NoiseLevel<number>[],
  eps: (x: tf.Tensor, t: number) => tf.Tensor,
): tf.Tensor {
  let x = tf.clone(x0);
  ts.forEach((t, i) => {
    const { alpha, sigma } = levels[i]!;
    const next = levels[i + 1] ?? { alpha: 1, sigma: 0 };
    const e = eps(x, t);
    const pred = tf.div(tf.sub(x, tf.mul(e, sigma)), alpha);
    const y = tf.add(tf.mul(pred, next.alpha), tf.mul(e, next.sigma));
    tf.dispose([x, e, pred]);
    x = y;
  });
  return x;
}

const unit = (x: tf.Tensor) => tf.clipByValue(tf.add(tf.mul(x, 0.5), 0.5), 0, 1);

describe('pixelPipeline (DDPM/DDIM pipeline)', () => {
  it('equals DDIM by hand over unet.forward, reports every step, is deterministic and leak-free', async () => {
    const progress: PipelineProgress[] = [];
    const images = await assertNoLeaks(
      () =>
        pixelPipeline(unet, DDPM, {
          sampler: 'ddim',
          steps: 4,
          batch: 2,
          seed: 5,
          onProgress: (p) => {
            progress.push(p);
          },
        }),
      'pixelPipeline',
    );
    expect(images.shape).toEqual([2, 3, 16, 16]);
    expect(progress.map((p) => p.step)).toEqual([1, 2, 3, 4]);
    expect(progress.every((p) => p.stage === 'denoise' && p.steps === 4)).toBe(true);
    const { ts, levels } = levelsFor(DiscreteSchedule.fromConfig(), 4);
    const eps = Random.seed(5).normal([2, 3, 16, 16]);
    const start = tf.mul(eps, levels[0]!.sigma); // the VP state of noise * sigma_0 (VE)
    const x = ddimLoop(start, ts, levels, (s, t) => unet.forward({ sample: s, timestep: t }));
    const expected = unit(x);
    expect(await maxDiff(images, expected)).toBeLessThan(1e-4);
    const again = await pixelPipeline(unet, DDPM, { sampler: 'ddim', steps: 4, batch: 2, seed: 5 });
    expect(await maxDiff(images, again)).toBe(0);
    tf.dispose([images, eps, start, x, expected, again]);
  });

  it('cancels at an AbortSignal between steps', async () => {
    const ctl = new AbortController();
    const before = tf.memory().numTensors;
    await expect(
      pixelPipeline(unet, DDPM, {
        steps: 10,
        signal: ctl.signal,
        onProgress: (p) => {
          if (p.step === 2) ctl.abort();
        },
      }),
    ).rejects.toThrow(SamplingAbortedError);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('textToImage / imageToImage (latent, prompt embeddings, CFG, VAE)', () => {
  it('text-to-image equals CFG DDIM by hand + decode(latents / scaling_factor)', async () => {
    const prompt = tf.randomNormal([1, 5, 24], 0, 1, 'float32', 1);
    const negative = tf.randomNormal([1, 5, 24], 0, 1, 'float32', 2);
    const stages: string[] = [];
    const { images, latents } = await textToImage(
      { unet: sd, vae, scheduler: SD },
      {
        promptEmbeds: prompt,
        negativePromptEmbeds: negative,
        guidanceScale: 7.5,
        imagesPerPrompt: 2,
        steps: 3,
        seed: 3,
        onProgress: (p) => {
          stages.push(`${p.stage}${p.step}`);
        },
      },
    );
    expect(stages).toEqual(['denoise1', 'denoise2', 'denoise3', 'decode0']);
    expect(latents.shape).toEqual([2, 4, 8, 8]);
    expect(images.shape).toEqual([2, 3, 16, 16]);
    const { ts, levels } = levelsFor(SD_SCHEDULE, 3, 1);
    const eps = Random.seed(3).normal([2, 4, 8, 8]);
    const start = tf.mul(eps, levels[0]!.sigma);
    const c2 = tf.concat([prompt, prompt]);
    const n2 = tf.concat([negative, negative]);
    const x = ddimLoop(start, ts, levels, (s, t) =>
      tf.tidy(() => {
        const c = sd.forward({ sample: s, timestep: t, encoderHiddenStates: c2 });
        const u = sd.forward({ sample: s, timestep: t, encoderHiddenStates: n2 });
        return tf.add(u, tf.mul(7.5, tf.sub(c, u)));
      }),
    );
    expect(await maxDiff(latents, x)).toBeLessThan(1e-4);
    const z = tf.div(x, 0.18215);
    const dec = vae.decode(z);
    const expected = unit(dec);
    expect(await maxDiff(images, expected)).toBeLessThan(1e-4);
    tf.dispose([prompt, negative, images, latents, eps, start, c2, n2, x, z, dec, expected]);
  });

  it('image-to-image: encode (a posterior draw) * scaling_factor, noise to the strength timestep, the last steps', async () => {
    const prompt = tf.randomNormal([1, 5, 24], 0, 1, 'float32', 4);
    const image = tf.randomUniform([1, 3, 16, 16], 0, 1, 'float32', 5);
    const steps: number[] = [];
    const { latents } = await imageToImage(
      { unet: sd, vae, scheduler: SD },
      {
        image,
        strength: 0.5,
        promptEmbeds: prompt,
        guidanceScale: 1,
        steps: 4,
        seed: 7,
        onProgress: (p) => {
          if (p.stage === 'denoise') steps.push(p.step);
        },
      },
    );
    expect(steps).toEqual([1, 2]); // floor(4 * 0.5) of the 4 steps
    const rng = Random.seed(7);
    const dist = vae.encode(tf.sub(tf.mul(image, 2), 1));
    const draw = rng.normal([1, 4, 8, 8]);
    const init = tf.mul(tf.add(dist.mean, tf.mul(dist.std, draw)), 0.18215);
    const eps = rng.normal([1, 4, 8, 8]);
    const all = levelsFor(SD_SCHEDULE, 4, 1);
    const ts = all.ts.slice(2);
    const levels = all.levels.slice(2);
    const { alpha, sigma } = levels[0]!;
    const start = tf.add(tf.mul(init, alpha), tf.mul(eps, sigma)); // scheduler.add_noise
    const x = ddimLoop(start, ts, levels, (s, t) =>
      sd.forward({ sample: s, timestep: t, encoderHiddenStates: prompt }),
    );
    expect(await maxDiff(latents, x)).toBeLessThan(1e-4);
    tf.dispose([
      prompt,
      image,
      latents,
      dist.mean,
      dist.std,
      dist.logvar,
      draw,
      init,
      eps,
      start,
      x,
    ]);
  });

  it('typed errors: guidance without a negative prompt, strength out of range', async () => {
    const prompt = tf.zeros([1, 5, 24]);
    await expect(
      textToImage({ unet: sd, vae, scheduler: SD }, { promptEmbeds: prompt, steps: 2 }),
    ).rejects.toThrow(PipelineError);
    const image = tf.zeros([1, 3, 16, 16]);
    await expect(
      imageToImage(
        { unet: sd, vae, scheduler: SD },
        { image, strength: 1.5, promptEmbeds: prompt, guidanceScale: 1 },
      ),
    ).rejects.toThrow(/strength/);
    tf.dispose([prompt, image]);
  });
});
