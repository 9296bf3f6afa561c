/**
 * The conditional flow-matching loss (Lipman et al. 2023, "Flow Matching for Generative Modeling",
 * eq. 9 and 23 with sigma_min -> 0; Liu et al. 2023, rectified flow, eq. 1; Esser et al. 2024, SD 3,
 * sec. 2-3.1 for the logit-normal time density):
 *
 *     L_CFM = E_{t, x0, eps} || u_hat(x_t, t) - (eps - x0) ||^2,   x_t = (1 - t) x0 + t eps,
 *
 * in the unified view: the model is called at the level (alpha, sigma) = (1 - t, t) and may predict any
 * target; its output is converted to the flow velocity u = eps - x0 by `convertPrediction` of
 * `@diffuse/schedules` (the one conversion module). In x0 terms, ||u_hat - u||^2 = ||x0_hat - x0||^2 / t^2,
 * a weighted denoising loss with weight 1 / t^2 = (1 + e^(lambda / 2))^2 (`logTargetFactor('flow')`).
 */
import type { Random } from '@diffuse/backend';
import { assertPrediction, convertPrediction } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import type { DenoiserLike, Reduction } from './denoising-loss.js';
import { LossError } from './errors.js';
import { assertBatchSize } from './sampler.js';
import { describe } from './schedule.js';

/** How `flowMatchingLoss` draws t when it is not given. */
export type FlowTimeSampling = 'uniform' | 'logit-normal';

/** Options of `flowMatchingLoss`. */
export interface FlowMatchingLossOptions {
  /** Draws t (when not given) and the noise (when not given). */
  rng?: Random;
  /** Flow times in (0, 1), one per example (numbers or a [batch] tensor). */
  t?: ArrayLike<number> | tf.Tensor;
  /** `uniform` (default; Lipman et al.) or `logit-normal` (SD 3: t = sigmoid(m + s n), n ~ N(0, 1)). */
  timeSampling?: FlowTimeSampling;
  /** Logit-normal location m and scale s (defaults 0 and 1, SD 3's choice). */
  logitMean?: number;
  logitStd?: number;
  /** Use this noise instead of drawing it (same shape as x0). */
  noise?: tf.Tensor;
  /** Default `mean` over the non-batch dimensions. */
  reduction?: Reduction;
  /** Passed to the model. */
  cond?: Record<string, unknown>;
}

/**
 * Flow times for a batch: U(0, 1), or SD 3's logit-normal sigmoid(m + s n), kept inside (0, 1).
 *
 * @example
 * const t = flowTimes(64, Random.seed(0), 'logit-normal'); // Float64Array of 64 times in (0, 1)
 */
export function flowTimes(
  n: number,
  rng: Random,
  sampling: FlowTimeSampling = 'uniform',
  logitMean = 0,
  logitStd = 1,
): Float64Array {
  assertBatchSize(n);
  if (sampling !== 'uniform' && sampling !== 'logit-normal')
    throw new LossError(
      `timeSampling must be 'uniform' or 'logit-normal', got ${describe(sampling)}`,
    );
  if (!Number.isFinite(logitMean) || !(logitStd > 0) || !Number.isFinite(logitStd))
    throw new LossError(`need a finite logitMean and logitStd > 0, got ${logitMean}, ${logitStd}`);
  const draw = sampling === 'uniform' ? rng.uniform([n]) : rng.normal([n]);
  const v = draw.dataSync();
  draw.dispose();
  const eps = 1e-5;
  return Float64Array.from(v, (z) => {
    const t = sampling === 'uniform' ? z : 1 / (1 + Math.exp(-(logitMean + logitStd * z)));
    return Math.min(1 - eps, Math.max(eps, t));
  });
}

/**
 * One Monte-Carlo draw of the conditional flow-matching loss per example (see the module comment):
 * draw t and eps (or take them), form x_t = (1 - t) x0 + t eps, call the model at (1 - t, t), convert
 * its output to the velocity and compare with eps - x0. Returns [batch]; take `tf.mean` of it inside
 * `optimizer.minimize`.
 *
 * @example
 * const rng = Random.seed(0);
 * optimizer.minimize(() => tf.mean(flowMatchingLoss(flowModel, x0, { rng, timeSampling: 'logit-normal' })));
 */
export function flowMatchingLoss(
  denoiser: DenoiserLike,
  x0: tf.Tensor,
  options: FlowMatchingLossOptions = {},
): tf.Tensor1D {
  if (denoiser === null || typeof denoiser !== 'object' || typeof denoiser.predict !== 'function')
    throw new LossError(
      `denoiser must have predict(x, level) and a prediction type, got ${describe(denoiser)}`,
    );
  assertPrediction(denoiser.prediction);
  if (!(x0 instanceof tf.Tensor) || x0.rank < 2)
    throw new LossError(`x0 must be a tensor [batch, ...dims], got ${describe(x0)}`);
  const n = x0.shape[0]!;
  assertBatchSize(n, 'x0 batch size');
  const reduction = options.reduction ?? 'mean';
  if (reduction !== 'mean' && reduction !== 'sum')
    throw new LossError(`reduction must be 'mean' or 'sum', got ${describe(reduction)}`);
  if (options.noise !== undefined) {
    const z = options.noise;
    if (
      !(z instanceof tf.Tensor) ||
      z.rank !== x0.rank ||
      z.shape.some((d, i) => d !== x0.shape[i])
    )
      throw new LossError(
        `noise must be a tensor of x0's shape [${x0.shape.join(', ')}], got ${describe(z)}`,
      );
  }
  const { rng } = options;
  if (Array.isArray(options.t) || (options.t !== undefined && !(options.t instanceof tf.Tensor))) {
    const t = Array.from(options.t as ArrayLike<number>);
    if (t.length !== n) throw new LossError(`t has ${t.length} entries for a batch of ${n}`);
    const bad = t.findIndex((v) => !(v > 0 && v < 1));
    if (bad >= 0) throw new LossError(`t[${bad}] = ${t[bad]} must be in (0, 1)`);
  }
  const needRng = options.t === undefined || options.noise === undefined;
  if (needRng && (rng === undefined || typeof (rng as Random).normal !== 'function'))
    throw new LossError(`rng must be a Random from @diffuse/backend, got ${describe(rng)}`);
  let times: tf.Tensor;
  if (options.t === undefined) {
    times = tf.tensor1d(
      Array.from(flowTimes(n, rng!, options.timeSampling, options.logitMean, options.logitStd)),
    );
  } else if (options.t instanceof tf.Tensor) {
    if (options.t.size !== n)
      throw new LossError(`t has ${options.t.size} entries for a batch of ${n}`);
    times = tf.reshape(options.t, [n]);
  } else {
    times = tf.tensor1d(Array.from(options.t));
  }
  try {
    return tf.tidy(() => {
      const noise = options.noise ?? rng!.normal(x0.shape);
      const t = tf.reshape(times, [n, ...new Array(x0.rank - 1).fill(1)]);
      const level = { alpha: tf.sub(1, t), sigma: t };
      const x = tf.add(tf.mul(level.alpha, x0), tf.mul(t, noise));
      const pred = denoiser.predict(x, level, options.cond);
      if (!(pred instanceof tf.Tensor) || pred.shape.some((d, i) => d !== x0.shape[i]))
        throw new LossError(
          `the model returned ${describe(pred)} for x0 of shape [${x0.shape.join(', ')}]`,
        );
      const u = convertPrediction(pred, denoiser.prediction, 'flow', x, level);
      const err = tf.square(tf.sub(u, tf.sub(noise, x0)));
      const axes = Array.from({ length: x0.rank - 1 }, (_, i) => i + 1);
      return (reduction === 'mean' ? tf.mean(err, axes) : tf.sum(err, axes)) as tf.Tensor1D;
    });
  } finally {
    times.dispose();
  }
}
