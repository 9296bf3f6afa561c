/**
 * diffusers-style pipelines on diffusers checkpoints, written against the toolkit's one sampler
 * driver (`sample` of `@diffuse/samplers`, any registered sampler) and its guidance wrappers:
 *
 * - `pixelPipeline`: DDPMPipeline / DDIMPipeline (unconditional or class-conditional UNet2DModel,
 *   optional class CFG), images in [0, 1] as diffusers' `(x / 2 + 0.5).clamp(0, 1)`.
 * - `textToImage`: StableDiffusionPipeline from prompt embeddings (a UNet2DConditionModel and an
 *   AutoencoderKL): CFG u + s (c - u) against negative-prompt embeddings, latents decoded with the
 *   VAE's `scaling_factor` / `shift_factor` (and `latents_mean` / `latents_std` when the config has
 *   them).
 * - `imageToImage`: StableDiffusionImg2ImgPipeline: the image is encoded (a draw from q(z | x)),
 *   noised to the timestep that `strength` selects, and denoised over the remaining steps.
 *
 * The timesteps are diffusers' for the scheduler config (`timestep_spacing`, `steps_offset`), and
 * the UNet sees exactly the table levels at those timesteps. Every pipeline reports progress after
 * each step (`onProgress`) and stops at an `AbortSignal` (between model calls, and before the VAE).
 */
import { Random } from '@diffuse/backend';
import { classifierFreeGuidance } from '@diffuse/guidance';
import {
  type AutoencoderKL,
  type Denoiser,
  DiffusersDenoiser,
  type UNet2DConditionModel,
  type UNet2DModel,
} from '@diffuse/models';
import {
  type SamplerName,
  type SamplerOptions,
  SamplingAbortedError,
  type StepInfo,
  sample,
} from '@diffuse/samplers';
import { diffusersTimesteps, type NoiseLevel, type TimestepSpacing } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { PipelineError } from './errors.js';

/** What `onProgress` receives. */
export interface PipelineProgress {
  /** `encode` (img2img), `denoise` (after each sampler step), `decode` (before the VAE). */
  stage: 'encode' | 'denoise' | 'decode';
  /** Steps done (1-based) and the number of steps of this run. */
  step: number;
  steps: number;
  /** VE noise level sigma / alpha of the step (0 outside `denoise`). */
  sigma: number;
}

/** Options every pipeline takes. */
export interface PipelineOptions {
  /** A registered sampler (default `ddim`; `listSamplers()` of `@diffuse/samplers`). */
  sampler?: SamplerName;
  /** The sampler's own options (e.g. `{ eta: 1 }`). */
  samplerOptions?: SamplerOptions;
  /** Denoising steps (default 50). */
  steps?: number;
  /** diffusers `timestep_spacing` (default: the scheduler config's). */
  spacing?: TimestepSpacing;
  /** Seed of every random draw (initial noise, step noise, the VAE posterior draw). */
  seed?: number;
  /** Called after every step (and around the VAE). May be async. */
  onProgress?: (p: PipelineProgress) => void | Promise<void>;
  /** Cancels the run (throws `SamplingAbortedError`). */
  signal?: AbortSignal;
}

/** The diffusers timesteps of a run and their exact table levels, then the clean level. */
function plan(denoiser: DiffusersDenoiser, o: PipelineOptions): NoiseLevel<number>[] {
  const steps = o.steps ?? 50;
  const T = denoiser.schedule.numTrainTimesteps;
  if (!Number.isInteger(steps) || steps < 1 || steps > T)
    throw new PipelineError(`steps must be an integer in [1, ${T}], got ${steps}`);
  const ts = diffusersTimesteps(T, {
    numInferenceSteps: steps,
    spacing: o.spacing ?? denoiser.scheduler.timestepSpacing,
    stepsOffset: denoiser.scheduler.stepsOffset,
  });
  return [...Array.from(ts, (t) => denoiser.schedule.levelAt(t)), { alpha: 1, sigma: 0 }];
}

const checkAbort = (signal?: AbortSignal) => {
  if (signal?.aborted) throw new SamplingAbortedError(undefined);
};

async function run(
  denoiser: Denoiser,
  levels: NoiseLevel<number>[],
  shape: number[],
  o: PipelineOptions,
  rng: Random,
  start: ((noise: tf.Tensor, sigma0: number) => tf.Tensor) | undefined,
  cond: Record<string, tf.Tensor> | undefined,
): Promise<tf.Tensor> {
  checkAbort(o.signal);
  const steps = levels.length - 1;
  const eps = rng.normal(shape);
  const sigma0 = levels[0]!.sigma / levels[0]!.alpha;
  // sample() starts at noise * sigma_0 (VE); an img2img start x0 + sigma_0 eps is noise = x0 / sigma_0 + eps.
  const noise = start ? tf.tidy(() => start(eps, sigma0)) : eps;
  if (start) eps.dispose();
  try {
    return await sample(denoiser, {
      sampler: o.sampler ?? 'ddim',
      samplerOptions: o.samplerOptions,
      levels,
      noise,
      rng,
      cond,
      signal: o.signal,
      onStep: o.onProgress
        ? (info: StepInfo) =>
            o.onProgress!({ stage: 'denoise', step: info.i + 1, steps, sigma: info.sigma })
        : undefined,
    });
  } finally {
    noise.dispose();
  }
}

const toUnit = (x: tf.Tensor) => tf.tidy(() => tf.clipByValue(tf.add(tf.mul(x, 0.5), 0.5), 0, 1));

// ------------------------------------------------------------------------------ pixel space

/** Options of `pixelPipeline`. */
export interface PixelPipelineOptions extends PipelineOptions {
  /** Number of images (default 1, or the number of class labels). */
  batch?: number;
  /** Class labels of a class-conditional UNet2DModel, one per image. */
  classLabels?: number[];
  /** Class CFG scale s (u + s (c - u)); needs `nullLabel`. Default: no guidance. */
  guidanceScale?: number;
  /** The class row that means "no class" (a model trained with label dropout). */
  nullLabel?: number;
}

/**
 * Pixel-space sampling with a UNet2DModel (diffusers' DDPMPipeline / DDIMPipeline, any sampler):
 * images NCHW in [0, 1].
 *
 * @example
 * const images = await pixelPipeline(unet, schedulerConfig, { sampler: 'ddim', steps: 50, batch: 4, seed: 0 });
 */
export async function pixelPipeline(
  unet: UNet2DModel,
  scheduler: string | object,
  options: PixelPipelineOptions = {},
): Promise<tf.Tensor> {
  const denoiser = new DiffusersDenoiser(unet, { scheduler });
  const labels = options.classLabels;
  const batch = options.batch ?? labels?.length ?? 1;
  if (labels !== undefined && labels.length !== batch)
    throw new PipelineError(`classLabels has ${labels.length} entries for batch ${batch}`);
  const c = unet.config;
  if (c.sample_size === null) throw new PipelineError('the UNet config has no sample_size');
  const [h, w] = typeof c.sample_size === 'number' ? [c.sample_size, c.sample_size] : c.sample_size;
  let model: Denoiser = denoiser;
  if (options.guidanceScale !== undefined) {
    if (options.nullLabel === undefined || labels === undefined)
      throw new PipelineError('class guidance needs classLabels and nullLabel');
    model = classifierFreeGuidance(denoiser, {
      guidanceScale: options.guidanceScale,
      nullLabel: options.nullLabel,
    });
  }
  const rng = Random.seed(options.seed ?? 0);
  const cond = labels ? { labels: tf.tensor1d(labels, 'int32') } : undefined;
  try {
    const x = await run(
      model,
      plan(denoiser, options),
      [batch, c.in_channels, h, w],
      options,
      rng,
      undefined,
      cond,
    );
    const images = toUnit(x);
    x.dispose();
    return images;
  } finally {
    if (cond) cond.labels.dispose();
  }
}

// ------------------------------------------------------------------------------ latent space

/** The three parts of a latent text-to-image model. */
export interface LatentModel {
  unet: UNet2DConditionModel;
  vae: AutoencoderKL;
  /** The scheduler's `scheduler_config.json` (text or object). */
  scheduler: string | object;
}

/** Options of `textToImage`. */
export interface TextToImageOptions extends PipelineOptions {
  /** Prompt embeddings [P, tokens, dim] (a text encoder's last hidden state), one row per prompt. */
  promptEmbeds: tf.Tensor;
  /** Negative (or empty-prompt) embeddings [1 or P, tokens, dim]; needed when guidanceScale > 1. */
  negativePromptEmbeds?: tf.Tensor;
  /** SDXL: pooled prompt embeddings [P, d], the negative ones [1 or P, d], and time_ids [1, n]. */
  pooledPromptEmbeds?: tf.Tensor;
  negativePooledPromptEmbeds?: tf.Tensor;
  timeIds?: tf.Tensor;
  /** CFG scale s (default 7.5, as diffusers); s <= 1 runs the conditional model alone. */
  guidanceScale?: number;
  /** Guidance rescale phi (Lin et al. 2023), default 0. */
  guidanceRescale?: number;
  /** Images per prompt (default 1). */
  imagesPerPrompt?: number;
  /** Image size in pixels (default: the UNet's sample_size times the VAE factor). */
  height?: number;
  width?: number;
}

/** What the latent pipelines return: images NCHW in [0, 1], and the final (scaled) latents. */
export interface LatentResult {
  images: tf.Tensor;
  latents: tf.Tensor;
}

interface Prepared {
  denoiser: Denoiser;
  base: DiffusersDenoiser;
  cond: Record<string, tf.Tensor>;
  batch: number;
  owned: tf.Tensor[];
}

function prepare(m: LatentModel, o: TextToImageOptions): Prepared {
  const pe = o.promptEmbeds;
  if (pe.rank !== 3)
    throw new PipelineError(`promptEmbeds must be [prompts, tokens, dim], got [${pe.shape}]`);
  const P = pe.shape[0]!;
  const per = o.imagesPerPrompt ?? 1;
  const scale = o.guidanceScale ?? 7.5;
  const guided = scale > 1;
  const neg = o.negativePromptEmbeds;
  if (guided && neg === undefined)
    throw new PipelineError(
      'guidanceScale > 1 needs negativePromptEmbeds (the empty prompt for plain CFG)',
    );
  if (neg !== undefined && neg.shape[0] !== 1 && neg.shape[0] !== P)
    throw new PipelineError(`negativePromptEmbeds needs 1 or ${P} rows, got ${neg.shape[0]}`);
  const owned: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T) => {
    owned.push(t);
    return t;
  };
  const rows = guided ? [pe, neg!] : [pe];
  const table = keep(tf.concat(rows, 0));
  let textEmbeds: tf.Tensor | undefined;
  if (o.pooledPromptEmbeds !== undefined) {
    const negPooled = o.negativePooledPromptEmbeds;
    if (guided && (negPooled === undefined || negPooled.shape[0] !== neg!.shape[0]))
      throw new PipelineError(
        `pooledPromptEmbeds with guidance needs negativePooledPromptEmbeds with ${neg!.shape[0]} rows (one per negative prompt)`,
      );
    textEmbeds = keep(
      tf.concat(guided ? [o.pooledPromptEmbeds, negPooled!] : [o.pooledPromptEmbeds], 0),
    );
  }
  const base = new DiffusersDenoiser(m.unet, {
    scheduler: m.scheduler,
    // Every row is a valid label: the negatives are addressed as `negativeLabels`.
    numClasses: table.shape[0]!,
    context: {
      encoderHiddenStates: table,
      textEmbeds,
      timeIds: o.timeIds,
    },
  });
  const batch = P * per;
  const labels = keep(
    tf.tensor1d(
      Array.from({ length: batch }, (_, i) => Math.floor(i / per)),
      'int32',
    ),
  );
  const cond: Record<string, tf.Tensor> = { labels };
  let denoiser: Denoiser = base;
  if (guided) {
    const negRows = neg!.shape[0]!;
    const negLabels = keep(
      tf.tensor1d(
        Array.from({ length: batch }, (_, i) => P + (negRows === 1 ? 0 : Math.floor(i / per))),
        'int32',
      ),
    );
    denoiser = classifierFreeGuidance(base, {
      guidanceScale: scale,
      negativeLabels: negLabels,
      rescale: o.guidanceRescale ?? 0,
    });
  }
  return { denoiser, base, cond, batch, owned };
}

/** Latents (diffusion-model scale) -> VAE input: z = latents / scaling_factor + shift_factor (or latents * std / scaling + mean). */
function unscale(vae: AutoencoderKL, latents: tf.Tensor): tf.Tensor {
  const c = vae.config;
  return tf.tidy(() => {
    if (c.latents_mean !== null && c.latents_std !== null) {
      const shape = [1, c.latent_channels, 1, 1];
      return tf.add(
        tf.div(tf.mul(latents, tf.tensor(c.latents_std, shape)), c.scaling_factor),
        tf.tensor(c.latents_mean, shape),
      );
    }
    return tf.add(tf.div(latents, c.scaling_factor), c.shift_factor ?? 0);
  });
}

/** VAE latents -> diffusion-model scale: (z - shift_factor) * scaling_factor (or (z - mean) * scaling / std). */
function scale(vae: AutoencoderKL, z: tf.Tensor): tf.Tensor {
  const c = vae.config;
  return tf.tidy(() => {
    if (c.latents_mean !== null && c.latents_std !== null) {
      const shape = [1, c.latent_channels, 1, 1];
      return tf.div(
        tf.mul(tf.sub(z, tf.tensor(c.latents_mean, shape)), c.scaling_factor),
        tf.tensor(c.latents_std, shape),
      );
    }
    return tf.mul(tf.sub(z, c.shift_factor ?? 0), c.scaling_factor);
  });
}

async function decode(
  m: LatentModel,
  latents: tf.Tensor,
  o: PipelineOptions,
): Promise<LatentResult> {
  checkAbort(o.signal);
  await o.onProgress?.({ stage: 'decode', step: 0, steps: 1, sigma: 0 });
  const z = unscale(m.vae, latents);
  const x = m.vae.decode(z);
  const images = toUnit(x);
  tf.dispose([z, x]);
  return { images, latents };
}

function latentShape(m: LatentModel, o: TextToImageOptions, batch: number): number[] {
  const f = m.vae.downsampleFactor;
  const size = m.unet.config.sample_size;
  const [sh, sw] = size === null ? [64, 64] : typeof size === 'number' ? [size, size] : size;
  const h = o.height ?? sh * f;
  const w = o.width ?? sw * f;
  if (h % f !== 0 || w % f !== 0)
    throw new PipelineError(`height and width must be multiples of ${f}, got ${h}x${w}`);
  if (m.unet.config.in_channels !== m.vae.latentChannels)
    throw new PipelineError(
      `the UNet takes ${m.unet.config.in_channels} channels, the VAE makes ${m.vae.latentChannels}`,
    );
  return [batch, m.vae.latentChannels, h / f, w / f];
}

/**
 * Text-to-image from prompt embeddings (diffusers' StableDiffusionPipeline after its text encoder):
 * CFG against the negative embeddings, any sampler, VAE decode.
 *
 * @example
 * const { images } = await textToImage({ unet, vae, scheduler }, {
 *   promptEmbeds, negativePromptEmbeds, guidanceScale: 7.5, steps: 30, sampler: 'dpmpp_2m', seed: 0,
 *   onProgress: (p) => console.log(p.stage, p.step, p.steps),
 * });
 */
export async function textToImage(
  m: LatentModel,
  options: TextToImageOptions,
): Promise<LatentResult> {
  const p = prepare(m, options);
  try {
    const latents = await run(
      p.denoiser,
      plan(p.base, options),
      latentShape(m, options, p.batch),
      options,
      Random.seed(options.seed ?? 0),
      undefined,
      p.cond,
    );
    try {
      return await decode(m, latents, options);
    } catch (e) {
      latents.dispose();
      throw e;
    }
  } finally {
    tf.dispose(p.owned);
  }
}

/** Options of `imageToImage`. */
export interface ImageToImageOptions extends TextToImageOptions {
  /** The start image NCHW in [0, 1], one per prompt (or one for all). */
  image: tf.Tensor;
  /** How much to change it, in [0, 1] (default 0.8): the fraction of the steps that run. */
  strength?: number;
}

/**
 * Image-to-image (diffusers' StableDiffusionImg2ImgPipeline): encode the image, noise the latents
 * to the timestep at `strength`, denoise the last floor(steps * strength) steps, decode.
 *
 * @example
 * const { images } = await imageToImage({ unet, vae, scheduler }, { image, strength: 0.6, promptEmbeds, negativePromptEmbeds });
 */
export async function imageToImage(
  m: LatentModel,
  options: ImageToImageOptions,
): Promise<LatentResult> {
  const strength = options.strength ?? 0.8;
  if (!(strength >= 0 && strength <= 1))
    throw new PipelineError(`strength must be in [0, 1], got ${strength}`);
  const p = prepare(m, options);
  try {
    const shape = latentShape(
      m,
      { ...options, height: options.image.shape[2], width: options.image.shape[3] },
      p.batch,
    );
    const img = options.image;
    if (img.rank !== 4 || (img.shape[0] !== 1 && img.shape[0] !== options.promptEmbeds.shape[0]))
      throw new PipelineError(
        `image must be NCHW with 1 or one-per-prompt images, got [${img.shape}]`,
      );
    const rng = Random.seed(options.seed ?? 0);
    checkAbort(options.signal);
    await options.onProgress?.({ stage: 'encode', step: 0, steps: 1, sigma: 0 });
    const per = p.batch / img.shape[0]!;
    const x = tf.tidy(() => {
      const t = tf.sub(tf.mul(img, 2), 1);
      return per === 1
        ? t
        : tf.reshape(tf.tile(tf.expandDims(t, 1), [1, per, 1, 1, 1]), [
            p.batch,
            ...img.shape.slice(1),
          ]);
    });
    const dist = m.vae.encode(x);
    const draw = rng.normal(dist.mean.shape);
    const init = tf.tidy(() => scale(m.vae, tf.add(dist.mean, tf.mul(dist.std, draw))));
    tf.dispose([x, dist.mean, dist.std, dist.logvar, draw]);
    try {
      const all = plan(p.base, options);
      const steps = all.length - 1;
      const initSteps = Math.min(Math.floor(steps * strength), steps);
      const levels = all.slice(steps - initSteps);
      let latents: tf.Tensor;
      if (initSteps === 0) latents = tf.clone(init);
      else
        latents = await run(
          p.denoiser,
          levels,
          shape,
          options,
          rng,
          (eps, sigma0) => tf.add(tf.div(init, sigma0), eps),
          p.cond,
        );
      try {
        return await decode(m, latents, options);
      } catch (e) {
        latents.dispose();
        throw e;
      }
    } finally {
      init.dispose();
    }
  } finally {
    tf.dispose(p.owned);
  }
}
