/**
 * x0 post-processing as denoiser wrappers, so any sampler gets it: static sample clipping and
 * Imagen's dynamic thresholding (Saharia et al. 2022, "Photorealistic Text-to-Image Diffusion Models
 * with Deep Language Understanding", sec. 2.3; diffusers' `_threshold_sample`).
 *
 * The wrapper converts the prediction to x0 (`toX0` from `@diffuse/schedules`), transforms x0, and
 * converts back to the declared prediction at the same x_t and level, so a sampler that forms
 * x_{t-1} from the prediction steps towards the processed x0.
 */
import type { AsyncDenoiser, Denoiser } from '@diffuse/models';
import {
  convertPrediction,
  type NoiseLevel,
  type Prediction,
  type Scalar,
  toX0,
} from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { type AnyDenoiser, assertAnyDenoiser, guidedDenoiser } from './any-denoiser.js';
import { GuidanceError } from './errors.js';
import { assertFinite, assertInRange, assertOptions } from './validate.js';

/** A transformation of the predicted clean sample x0 (same shape in and out). */
export type X0Transform = (x0: tf.Tensor) => tf.Tensor;

/**
 * The prediction whose x0 is `transform(x0)`: convert(transform(toX0(pred)), 'x0' -> prediction).
 * Pure: the one place both the synchronous and the asynchronous wrapper apply the transform.
 * Call it inside `tf.tidy`.
 */
function transformedPrediction(
  pred: tf.Tensor,
  prediction: Prediction,
  transform: X0Transform,
  x: tf.Tensor,
  level: NoiseLevel<Scalar>,
): tf.Tensor {
  const x0 = toX0(pred, prediction, x, level);
  return convertPrediction(transform(x0), 'x0', prediction, x, level);
}

/**
 * The denoiser whose x0 prediction is `transform(x0)`:
 * predict = convert(transform(toX0(D(x))), 'x0' -> D.prediction).
 * A `Denoiser` gives a `Denoiser`; an `AsyncDenoiser` gives an `AsyncDenoiser` (the prediction is
 * awaited, then transformed by the same tensor code).
 *
 * @example
 * const clipped = withX0Transform(unet, (x0) => tf.clipByValue(x0, -1, 1));
 * const clippedOnnx = withX0Transform(await onnxDenoiserAsync(unet), (x0) => tf.clipByValue(x0, -1, 1));
 */
export function withX0Transform(denoiser: AsyncDenoiser, transform: X0Transform): AsyncDenoiser;
export function withX0Transform(denoiser: Denoiser, transform: X0Transform): Denoiser;
export function withX0Transform(denoiser: AnyDenoiser, transform: X0Transform): AnyDenoiser;
export function withX0Transform(denoiser: AnyDenoiser, transform: X0Transform): AnyDenoiser {
  assertAnyDenoiser('denoiser', denoiser);
  if (typeof transform !== 'function') {
    throw new GuidanceError(`transform must be a function of x0, got ${typeof transform}`);
  }
  const prediction = denoiser.prediction;
  const described = { prediction, shape: denoiser.shape, numClasses: denoiser.numClasses };
  return guidedDenoiser([denoiser], described, (x, level, cond) => ({
    calls: [{ x, level, ...(cond ? { cond } : {}) }],
    combine: ([pred]) => transformedPrediction(pred!, prediction, transform, x, level),
  }));
}

/** Options of `dynamicThreshold`. */
export interface DynamicThresholdOptions {
  /** The percentile p of |x0| per example that sets the threshold s (Imagen: 0.995; diffusers' `dynamic_thresholding_ratio`). */
  percentile?: number;
  /**
   * Upper bound on s (diffusers' `sample_max_value`). Default +Infinity: Imagen's rule s = max(s, 1).
   * Note diffusers defaults it to 1, which makes dynamic thresholding static clipping to [-1, 1].
   */
  maxValue?: number;
}

/**
 * The p-th quantile of each example's values over all non-batch axes, with linear interpolation
 * between order statistics (numpy's and torch.quantile's default): shape [batch].
 * Uses `tf.topk`, so only the largest (1 - p) n values are sorted.
 *
 * @example
 * const q = perExampleQuantile(tf.abs(x0), 0.995);
 */
export function perExampleQuantile(t: tf.Tensor, p: number): tf.Tensor {
  assertInRange('percentile', p, 0, 1);
  return tf.tidy(() => {
    const batch = t.shape[0]!;
    const flat = tf.reshape(t, [batch, -1]);
    const n = flat.shape[1]!;
    const pos = p * (n - 1); // ascending index of the quantile
    const lo = Math.min(Math.floor(pos), n - 1);
    const frac = pos - lo;
    const k = n - lo; // the top k hold ascending indices lo..n-1
    const top = tf.topk(flat, k, true).values; // descending: column j is ascending index n-1-j
    const vLo = tf.reshape(tf.slice(top, [0, k - 1], [batch, 1]), [batch]);
    if (k === 1 || frac === 0) return vLo;
    const vHi = tf.reshape(tf.slice(top, [0, k - 2], [batch, 1]), [batch]);
    return tf.add(vLo, tf.mul(frac, tf.sub(vHi, vLo)));
  });
}

/**
 * Imagen's dynamic thresholding of a predicted x0 (Saharia et al. 2022, sec. 2.3):
 *
 *     s  = max(quantile_p(|x0|), 1)       per example, p = 0.995
 *     x0 = clip(x0, -s, s) / s
 *
 * (s further capped at `maxValue`, as diffusers' `sample_max_value`.) Pixels saturate less than with
 * static clipping at high guidance weights.
 *
 * @example
 * const x0t = dynamicThreshold(x0, { percentile: 0.995 });
 */
export function dynamicThreshold(x0: tf.Tensor, options: DynamicThresholdOptions = {}): tf.Tensor {
  const p = options.percentile ?? 0.995;
  const maxValue = options.maxValue ?? Number.POSITIVE_INFINITY;
  assertInRange('percentile', p, 0, 1);
  if (!(maxValue >= 1)) throw new GuidanceError(`maxValue must be >= 1, got ${String(maxValue)}`);
  if (x0.rank < 2)
    throw new GuidanceError(`x0 must have shape [batch, ...], got [${x0.shape.join(', ')}]`);
  return tf.tidy(() => {
    const s = tf.clipByValue(perExampleQuantile(tf.abs(x0), p), 1, maxValue);
    const sB = tf.reshape(s, [x0.shape[0]!, ...new Array(x0.rank - 1).fill(1)]);
    return tf.div(tf.minimum(tf.maximum(x0, tf.neg(sB)), sB), sB);
  });
}

/**
 * The denoiser with Imagen's dynamic thresholding applied to its x0 prediction (see `dynamicThreshold`).
 * Works with any sampler and any prediction type; an `AsyncDenoiser` gives an `AsyncDenoiser`.
 *
 * @example
 * const guided = dynamicThresholding(classifierFreeGuidance(unet, { guidanceScale: 8 }), { percentile: 0.995 });
 * const onnxGuided = dynamicThresholding(classifierFreeGuidance(await onnxDenoiserAsync(unet), { guidanceScale: 8 }));
 */
export function dynamicThresholding(
  denoiser: AsyncDenoiser,
  options?: DynamicThresholdOptions,
): AsyncDenoiser;
export function dynamicThresholding(
  denoiser: Denoiser,
  options?: DynamicThresholdOptions,
): Denoiser;
export function dynamicThresholding(
  denoiser: AnyDenoiser,
  options?: DynamicThresholdOptions,
): AnyDenoiser;
export function dynamicThresholding(
  denoiser: AnyDenoiser,
  options: DynamicThresholdOptions = {},
): AnyDenoiser {
  // Validate eagerly, so a bad option fails at construction rather than inside the sampler loop.
  assertAnyDenoiser('denoiser', denoiser);
  assertOptions('dynamicThresholding', options, ['percentile', 'maxValue']);
  const p = options.percentile ?? 0.995;
  assertInRange('percentile', p, 0, 1);
  const maxValue = options.maxValue ?? Number.POSITIVE_INFINITY;
  if (typeof maxValue !== 'number' || !(maxValue >= 1))
    throw new GuidanceError(`maxValue must be >= 1, got ${String(maxValue)}`);
  return withX0Transform(denoiser, (x0) => dynamicThreshold(x0, { percentile: p, maxValue }));
}

/** Options of `sampleClipping`. */
export interface ClipOptions {
  /** Lower bound (default -1). */
  min?: number;
  /** Upper bound (default 1). */
  max?: number;
}

/**
 * Static thresholding: the predicted x0 clipped to [min, max] (Ho et al. 2020's sampler clips to
 * [-1, 1]; diffusers' `clip_sample`, `clip_sample_range`). Works with any sampler; an
 * `AsyncDenoiser` gives an `AsyncDenoiser`.
 *
 * @example
 * const clipped = sampleClipping(unet, { min: -1, max: 1 });
 * const clippedOnnx = sampleClipping(await onnxDenoiserAsync(unet));
 */
export function sampleClipping(denoiser: AsyncDenoiser, options?: ClipOptions): AsyncDenoiser;
export function sampleClipping(denoiser: Denoiser, options?: ClipOptions): Denoiser;
export function sampleClipping(denoiser: AnyDenoiser, options?: ClipOptions): AnyDenoiser;
export function sampleClipping(denoiser: AnyDenoiser, options: ClipOptions = {}): AnyDenoiser {
  assertAnyDenoiser('denoiser', denoiser);
  assertOptions('sampleClipping', options, ['min', 'max']);
  const min = options.min ?? -1;
  const max = options.max ?? 1;
  assertFinite('min', min);
  assertFinite('max', max);
  if (!(max > min)) throw new GuidanceError(`sampleClipping needs min < max, got [${min}, ${max}]`);
  return withX0Transform(denoiser, (x0) => tf.clipByValue(x0, min, max));
}
