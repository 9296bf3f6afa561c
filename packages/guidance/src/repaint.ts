/**
 * Inpainting by known-region replacement with resampling: RePaint (Lugmayr et al. 2022, "RePaint:
 * Inpainting using Denoising Diffusion Probabilistic Models", Algorithm 1 and sec. 4.2; diffusers'
 * `RePaintPipeline` / `RePaintScheduler`).
 *
 * With mask m (1 = known pixel, 0 = to fill) and the known image x0, each denoising move from state
 * t to t-1 is
 *
 *     x_{t-1}^known   = alpha_{t-1} x0 + sigma_{t-1} eps                      (forward process, eps ~ N(0, I))
 *     x_{t-1}^unknown = one reverse step of any sampler from x_t               (DDPM's posterior by default)
 *     x_{t-1}         = m * x_{t-1}^known + (1 - m) * x_{t-1}^unknown
 *
 * and the resampling walk (`repaintWalk`) periodically jumps back up J levels with the forward
 * transition q(x_s | x_t) = N((alpha_s / alpha_t) x_t, (sigma_s^2 - (alpha_s / alpha_t)^2 sigma_t^2) I),
 * which lets the generated region harmonise with the known one.
 */
import type { Random } from '@diffuse/backend';
import { Random as RandomStream } from '@diffuse/backend';
import type { Conditioning } from '@diffuse/models';
import { resolvePlan, type SampleOptions, type SamplerName, sample } from '@diffuse/samplers';
import type { NoiseLevel } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { type AnyDenoiser, assertAnyDenoiser } from './any-denoiser.js';
import { GuidanceError } from './errors.js';
import { type RepaintScheduleOptions, repaintWalk } from './repaint-schedule.js';
import { assertOptions } from './validate.js';

/** Progress of a RePaint run: `move` of `moves` state changes done (down or up). */
export interface RepaintProgress {
  move: number;
  moves: number;
  /** Model evaluations so far (one per down move with a first-order sampler). */
  denoisingSteps: number;
}

/** Options of `repaint`. The noise levels are given as to `sample` (sigmas, levels, or schedule + steps). */
export interface RepaintOptions
  extends RepaintScheduleOptions,
    Pick<
      SampleOptions,
      | 'sigmas'
      | 'levels'
      | 'schedule'
      | 'steps'
      | 'sigmaMin'
      | 'sigmaMax'
      | 'rho'
      | 'spacing'
      | 'embedding'
      | 'samplerOptions'
      | 'signal'
      | 'checkFinite'
    > {
  /** The image whose known pixels are kept (x0, data scale), shape [batch or 1, ...dims]. */
  image: tf.Tensor;
  /** 1 where the pixel is known (kept), 0 where it is generated; values in [0, 1]. Shape of `image` (batch and trailing axes may be 1 to broadcast). */
  mask: tf.Tensor;
  /** Number of samples (default: the batch of `image`, or of `mask`). */
  batch?: number;
  /** The sampler for the reverse move of the unknown region (default `ddpm`, as RePaint). */
  sampler?: SamplerName;
  /** Seed of the noise (initial, known-region, re-noising and sampler noise). */
  seed?: number;
  /** Random stream instead of `seed`. */
  rng?: Random;
  /** Conditioning passed to the denoiser (e.g. class labels). */
  cond?: Conditioning;
  /** Called after every move. */
  onProgress?: (progress: RepaintProgress) => void | Promise<void>;
}

/** The options of `repaint` that say how to sample (checked by `@diffuse/samplers`). */
const PLAN_KEYS = [
  'sigmas',
  'levels',
  'schedule',
  'steps',
  'sigmaMin',
  'sigmaMax',
  'rho',
  'spacing',
  'embedding',
  'samplerOptions',
  'signal',
  'checkFinite',
] as const;
const REPAINT_KEYS = [
  'image',
  'mask',
  'batch',
  'sampler',
  'seed',
  'rng',
  'cond',
  'onProgress',
  'jumpLength',
  'resampleCount',
] as const;

/** Checks that `t` broadcasts to `shape` (each axis equal or 1) and has the same rank. */
function assertBroadcasts(name: string, t: tf.Tensor, shape: readonly number[]): void {
  const ok = t.rank === shape.length && t.shape.every((d, k) => d === shape[k] || d === 1);
  if (!ok) {
    throw new GuidanceError(
      `${name} has shape [${t.shape.join(', ')}], which does not match the samples' shape [${shape.join(', ')}] (each axis must be equal or 1)`,
    );
  }
}

/** The sample shape [batch, ...dims] implied by image, mask and batch, with validation. */
function sampleShape(image: tf.Tensor, mask: tf.Tensor, batch: number | undefined): number[] {
  if (!(image instanceof tf.Tensor) || !(mask instanceof tf.Tensor)) {
    throw new GuidanceError('repaint needs image and mask tensors');
  }
  if (image.rank < 2)
    throw new GuidanceError(
      `image must have shape [batch, ...dims], got [${image.shape.join(', ')}]`,
    );
  const b = batch ?? Math.max(image.shape[0]!, mask.shape[0] ?? 1);
  if (!Number.isInteger(b) || b < 1)
    throw new GuidanceError(`batch must be an integer >= 1, got ${String(b)}`);
  const shape = [b, ...image.shape.slice(1)];
  assertBroadcasts('image', image, shape);
  if (image.shape.slice(1).some((d, k) => d !== shape[k + 1])) {
    throw new GuidanceError(
      `image must have the full data shape [${shape.slice(1).join(', ')}] after the batch axis`,
    );
  }
  assertBroadcasts('mask', mask, shape);
  return shape;
}

/** Throws unless every mask value lies in [0, 1] (read once, before sampling). */
function assertMaskValues(mask: tf.Tensor): void {
  const [lo, hi] = tf
    .tidy(() => [tf.min(mask), tf.max(mask)])
    .map((t) => {
      const v = t.dataSync()[0]!;
      t.dispose();
      return v;
    }) as [number, number];
  if (!(lo >= 0 && hi <= 1)) {
    throw new GuidanceError(
      `mask values must lie in [0, 1] (1 = known), got values in [${lo}, ${hi}]`,
    );
  }
}

/**
 * One forward jump from level `from` to the noisier level `to` (alpha_to / alpha_from <= 1):
 * x_to = (alpha_to / alpha_from) x_from + sqrt(sigma_to^2 - (alpha_to / alpha_from)^2 sigma_from^2) z.
 * This is q(x_s | x_t) of the forward process; RePaint's "undo" step (diffusers `undo_step`).
 *
 * @example
 * const noisier = renoise(x, { alpha: 0.9, sigma: 0.44 }, { alpha: 0.8, sigma: 0.6 }, Random.seed(0));
 */
export function renoise(
  x: tf.Tensor,
  from: NoiseLevel<number>,
  to: NoiseLevel<number>,
  rng: Random,
): tf.Tensor {
  const a = to.alpha / from.alpha;
  const variance = to.sigma * to.sigma - a * a * from.sigma * from.sigma;
  if (!(variance >= -1e-12)) {
    throw new GuidanceError(
      `cannot re-noise from (${from.alpha}, ${from.sigma}) to the less noisy level (${to.alpha}, ${to.sigma})`,
    );
  }
  const z = rng.normal(x.shape);
  return tf.tidy(() => {
    const out = tf.add(tf.mul(x, a), tf.mul(z, Math.sqrt(Math.max(variance, 0))));
    z.dispose();
    return out;
  });
}

/**
 * Inpaints `image` where `mask` is 0 with RePaint (Lugmayr et al. 2022, Algorithm 1 with the
 * resampling walk of sec. 4.2): known-region replacement at every level, and jumps of `jumpLength`
 * levels back up, `resampleCount - 1` times per stretch. The unknown region moves down with one step
 * of the chosen sampler (default `ddpm`, RePaint's choice; any registered sampler works). Returns the
 * samples, VP-scaled at the last level (the data itself when the last level is sigma = 0, where the
 * known region equals `image` exactly); the caller owns the result. `denoiser` may be a `Denoiser`
 * or an `AsyncDenoiser` (e.g. ONNX Runtime's `onnxDenoiserAsync`, or a guided one): each reverse
 * move is a `sample` call, which awaits it.
 *
 * @example
 * const filled = await repaint(unet, {
 *   image, mask,                             // [16, 28, 28, 1]; mask 1 = keep
 *   schedule: 'karras', steps: 50, jumpLength: 10, resampleCount: 10, seed: 1,
 *   onProgress: ({ move, moves }) => console.log(`${move}/${moves}`),
 * });
 */
export async function repaint(denoiser: AnyDenoiser, options: RepaintOptions): Promise<tf.Tensor> {
  assertAnyDenoiser('denoiser', denoiser);
  assertOptions('repaint', options, [...REPAINT_KEYS, ...PLAN_KEYS]);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function')
    throw new GuidanceError('onProgress must be a function');
  const { image, mask } = options;
  const shape = sampleShape(image, mask, options.batch);
  const planOptions: Record<string, unknown> = {};
  for (const k of PLAN_KEYS) if (options[k] !== undefined) planOptions[k] = options[k];
  const { sigmas: plan, levelFor } = resolvePlan(planOptions as SampleOptions);
  assertMaskValues(mask);
  const levels = plan.map(levelFor);
  const numSteps = levels.length - 1;
  const walk = repaintWalk(numSteps, options);
  // The walk counts states N..0; level index i = N - n (0 = noisiest).
  const rng =
    options.rng ?? (options.seed !== undefined ? RandomStream.seed(options.seed) : undefined);
  if (rng === undefined) throw new GuidanceError('repaint draws noise: give seed or rng');
  const sampler = options.sampler ?? 'ddpm';

  const known = (level: NoiseLevel<number>, current: tf.Tensor): tf.Tensor => {
    const z = rng.normal(shape);
    return tf.tidy(() => {
      const k = tf.add(tf.mul(image, level.alpha), tf.mul(z, level.sigma));
      z.dispose();
      return tf.add(tf.mul(mask, k), tf.mul(tf.sub(1, mask), current));
    });
  };

  const first = levels[0]!;
  let x = tf.tidy(() => {
    const z = rng.normal(shape);
    // Known pixels from the forward process, unknown ones from N(0, sigma_0^2) as `sample` starts.
    return tf.add(tf.mul(mask, tf.mul(image, first.alpha)), tf.mul(z, first.sigma));
  });
  let denoisingSteps = 0;
  try {
    for (let m = 1; m < walk.length; m++) {
      const from = levels[numSteps - walk[m - 1]!]!;
      const to = levels[numSteps - walk[m]!]!;
      let next: tf.Tensor;
      if (walk[m]! < walk[m - 1]!) {
        // Down: one sampler step for the unknown region from the state x itself, then replacement.
        const unknown = await sample(denoiser, {
          sampler,
          ...(options.samplerOptions ? { samplerOptions: options.samplerOptions } : {}),
          levels: [from, to],
          ...(options.embedding ? { embedding: options.embedding } : {}),
          start: x,
          rng,
          ...(options.cond ? { cond: options.cond } : {}),
          ...(options.signal ? { signal: options.signal } : {}),
          ...(options.checkFinite !== undefined ? { checkFinite: options.checkFinite } : {}),
        });
        next = known(to, unknown);
        unknown.dispose();
        denoisingSteps++;
      } else {
        // Up: re-noise the whole sample by the forward transition (RePaint's resampling jump).
        next = renoise(x, from, to, rng);
      }
      x.dispose();
      x = next;
      if (options.onProgress)
        await options.onProgress({ move: m, moves: walk.length - 1, denoisingSteps });
    }
    return x;
  } catch (e) {
    x.dispose();
    throw e;
  }
}
