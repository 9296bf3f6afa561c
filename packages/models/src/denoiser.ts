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
  readonly shape?: readonly number[] | undefined;
  /** Number of classes a conditional model accepts (its null class, if any, is `numClasses`). */
  readonly numClasses?: number | undefined;
  predict(x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning): tf.Tensor;
}

/**
 * A denoiser whose prediction arrives asynchronously: the same contract as `Denoiser` (VP-scaled
 * x_t = alpha x_0 + sigma eps and its level in, a prediction of the declared type out), with
 * `predictAsync` returning a promise of the new tensor. Runtimes that cannot block use it: ONNX
 * Runtime Web (`InferenceSession.run` is async-only, and a browser's main thread may not wait),
 * a model on another thread or machine.
 *
 * `sample`, `sampleSteps` and `invert` of `@diffuse/samplers` accept either kind (their driver is
 * already async and awaits each model call; results are bit-identical to the synchronous path), and
 * so do the guidance wrappers of `@diffuse/guidance` (given an asynchronous model they return one).
 * APIs that evaluate the model inside synchronous math (`logLikelihood`'s ODE) need a `Denoiser`
 * and reject an asynchronous one with a typed error. An object may implement both `predict` and
 * `predictAsync`; the sampler driver and the guidance wrappers then use `predictAsync`.
 *
 * @example
 * const slow: AsyncDenoiser = {
 *   prediction: 'epsilon',
 *   shape: [2],
 *   predictAsync: async (x, level, cond) => denoiser.predict(x, level, cond),
 * };
 * const x = await sample(slow, { sampler: 'dpmpp_2m', steps: 20, batch: 64, seed: 1 });
 */
export interface AsyncDenoiser {
  /** What `predictAsync` resolves to. */
  readonly prediction: Prediction;
  /** The data shape of one example (without the batch axis), when fixed. */
  readonly shape?: readonly number[] | undefined;
  /** Number of classes a conditional model accepts (its null class, if any, is `numClasses`). */
  readonly numClasses?: number | undefined;
  /**
   * The prediction for `x` at `level`: a new tensor the caller owns, shaped like `x`. It must not
   * dispose its inputs, and the inputs stay valid until the promise settles.
   */
  predictAsync(x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning): Promise<tf.Tensor>;
}
