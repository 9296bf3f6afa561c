/**
 * The one interface every model implements, so samplers, losses and guidance need nothing else.
 *
 * A denoiser sees the noisy sample x_t = alpha x_0 + sigma eps (variance-preserving scaling: the
 * sample is multiplied by alpha) together with its noise level (alpha, sigma), and optional
 * conditioning, and returns a prediction whose type it declares (`x0`, `epsilon`, `v` or `score`).
 * Networks usually condition on logSNR = 2 log(alpha / sigma), which is the same for every schedule
 * that reaches that noise level (VDM, sec. 3.3), so a model trained under one schedule samples under
 * any other.
 */

import type { NoiseLevel, Prediction, Scalar } from '@diffuse/schedules';
import type * as tf from '@tensorflow/tfjs-core';

/** Conditioning passed to a denoiser. `labels` are int32 class indices, shape [batch]. */
export interface Conditioning {
  /** Class labels, int32 [batch]; a model with a learned null class uses `nullLabel` for "unconditional". */
  labels?: tf.Tensor;
  /** Anything else a model understands (e.g. a known-region mask). */
  [key: string]: tf.Tensor | number | string | boolean | undefined;
}

/**
 * A denoiser: (x_t, noise level, conditioning) to a prediction of the declared type.
 *
 * Contract:
 * - `x` has shape [batch, ...dims]; the result has the same shape and is a new tensor the caller owns.
 * - `level.alpha` / `level.sigma` are numbers (the whole batch at one level, as while sampling) or
 *   tensors that broadcast against `x` (one level per example, as while training: shape [batch, 1, ...]).
 * - It must not dispose its inputs, and must not leak tensors (wrap the body in `tf.tidy`).
 */
export interface Denoiser {
  /** What `predict` returns. */
  readonly prediction: Prediction;
  /** The data shape of one example (without the batch axis), when fixed. */
  readonly shape?: readonly number[];
  /** Number of classes a conditional model accepts (its null class, if any, is `numClasses`). */
  readonly numClasses?: number;
  predict(x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning): tf.Tensor;
}
