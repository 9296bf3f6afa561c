/**
 * Weighted denoising losses on any target (Luo 2022, sec. 2.4, eq. 130-151; Kingma & Gao 2023,
 * eq. 6-8):
 *
 *     L_w = E_{x0, eps, lambda ~ p}[ w(lambda) ||target - target_hat(x_lambda; lambda)||^2 ],
 *     x_lambda = alpha_lambda x0 + sigma_lambda eps,  alpha^2 = sigmoid(lambda), sigma^2 = sigmoid(-lambda).
 *
 * The model may predict x0, epsilon, v or the score whatever the weighting's target: since every
 * target's error is a fixed multiple of the x0 error (`targetFactor`), the loss is computed on the
 * model's own prediction with the weighting converted to it (`convertWeighting`), which is the same
 * number and the best conditioned one. The true target on that space comes from `convertPrediction`
 * in `@diffuse/schedules`, the one conversion module.
 */
import type { Random } from '@diffuse/backend';
import {
  assertPrediction,
  convertPrediction,
  type NoiseLevel,
  type Prediction,
  type Scalar,
} from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { LossError } from './errors.js';
import { assertBatchSize, type LogSNRSample, type LogSNRSampler } from './sampler.js';
import { describe, perExampleVPLevel } from './schedule.js';
import {
  convertWeighting,
  likelihoodWeighting,
  ncsnWeighting,
  uniformWeighting,
  type Weighting,
} from './weighting.js';

/**
 * What the losses need from a model: the `Denoiser` interface of `@diffuse/models`, as a structural
 * type (losses do not depend on models).
 */
export interface DenoiserLike {
  readonly prediction: Prediction;
  predict(x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Record<string, unknown>): tf.Tensor;
}

/**
 * Noise levels of one batch, [batch] each, as numbers or tensors (tensors stay differentiable, e.g.
 * from a learned schedule); `density` is p(lambda), needed by the ELBO weightings.
 */
export interface LogSNRTensors {
  logSNR: tf.Tensor | ArrayLike<number>;
  density?: tf.Tensor | ArrayLike<number>;
}

/** How per-dimension squared errors are reduced to one number per example. */
export type Reduction = 'mean' | 'sum';

/** Input of `weightedMSE`. */
export interface WeightedMSEInput {
  /** The model's output, shape [batch, ...dims]. */
  prediction: tf.Tensor;
  /** What `prediction` is. */
  predictionType: Prediction;
  /** The clean data x0, same shape. */
  x0: tf.Tensor;
  /** The noise eps that made x = alpha x0 + sigma eps, same shape. */
  noise: tf.Tensor;
  /** lambda of each example, [batch]. */
  logSNR: tf.Tensor | ArrayLike<number>;
  /** p(lambda) of each example, [batch]; needed by the ELBO / likelihood weightings. */
  density?: tf.Tensor | ArrayLike<number>;
  /** Default: `uniformWeighting('epsilon')` (Ho et al. 2020). */
  weighting?: Weighting;
  /** Over the non-batch dimensions: `mean` (default, as Ho et al.'s mean_flat) or `sum` (nats). */
  reduction?: Reduction;
}

function asVector(v: tf.Tensor | ArrayLike<number>, n: number, what: string): tf.Tensor1D {
  if (v instanceof tf.Tensor) {
    if (v.size !== n)
      throw new LossError(
        `${what} must have one entry per example (${n}), got shape [${v.shape.join(', ')}]`,
      );
    return tf.reshape(v, [n]) as tf.Tensor1D;
  }
  if (v === null || typeof v !== 'object' || typeof (v as ArrayLike<number>).length !== 'number') {
    throw new LossError(`${what} must be a tensor or an array of numbers, got ${describe(v)}`);
  }
  if (v.length !== n)
    throw new LossError(`${what} must have one entry per example (${n}), got ${v.length}`);
  const a = Float32Array.from(v);
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(a[i]!)) throw new LossError(`${what}[${i}] = ${v[i]} is not finite`);
  }
  return tf.tensor1d(a);
}

function checkDensity(d: ArrayLike<number>): void {
  for (let i = 0; i < d.length; i++) {
    if (!(d[i]! > 0) || !Number.isFinite(d[i]!)) {
      throw new LossError(
        `density[${i}] = ${d[i]}: the density p(lambda) of a sampled logSNR must be positive and finite`,
      );
    }
  }
}

function assertData(x: unknown, what: string): asserts x is tf.Tensor {
  if (!(x instanceof tf.Tensor))
    throw new LossError(`${what} must be a tensor, got ${describe(x)}`);
  if (x.rank < 2)
    throw new LossError(
      `${what} must have shape [batch, ...dims] (rank >= 2), got [${x.shape.join(', ')}]`,
    );
}

function sameShape(a: tf.Tensor, b: tf.Tensor, what: string): void {
  if (a.rank !== b.rank || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new LossError(
      `${what} has shape [${b.shape.join(', ')}] but x0 has [${a.shape.join(', ')}]`,
    );
  }
}

/**
 * The per-example weighted squared error of a prediction (any of x0, epsilon, v, score) under a
 * weighting defined on any target:
 *
 *     w_target(lambda) ||target - target_hat||^2 = w_target(lambda) (F_target / F_pred) ||pred - pred_true||^2
 *
 * computed on the prediction's own space. Returns a [batch] tensor (reduce with `tf.mean` to train).
 *
 * @example
 * const perExample = weightedMSE({
 *   prediction: epsHat, predictionType: 'epsilon', x0, noise, logSNR: [2, -1],
 *   weighting: minSNRWeighting(5),
 * });
 */
export function weightedMSE(input: WeightedMSEInput): tf.Tensor1D {
  const { prediction, predictionType, x0, noise } = input;
  assertPrediction(predictionType);
  assertData(x0, 'x0');
  assertData(prediction, 'prediction');
  assertData(noise, 'noise');
  sameShape(x0, prediction, 'prediction');
  sameShape(x0, noise, 'noise');
  const w = input.weighting ?? uniformWeighting('epsilon');
  assertWeighting(w);
  const reduction = input.reduction ?? 'mean';
  assertReduction(reduction);
  const n = x0.shape[0]!;
  if (w.needsDensity && input.density === undefined) {
    throw new LossError(
      `the ${w.name} weighting needs density (p(lambda) of each example); pass the sampler's density`,
    );
  }
  if (input.density !== undefined && !(input.density instanceof tf.Tensor))
    checkDensity(input.density);
  return tf.tidy(() => {
    const logSNR = asVector(input.logSNR, n, 'logSNR');
    const density = input.density === undefined ? undefined : asVector(input.density, n, 'density');
    const level = perExampleVPLevel(logSNR, x0.rank);
    const x = tf.add(tf.mul(level.alpha, x0), tf.mul(level.sigma, noise));
    return weightedError(
      prediction,
      predictionType,
      x0,
      noise,
      x,
      level,
      logSNR,
      density,
      w,
      reduction,
    );
  });
}

/** The body of `weightedMSE` once x and its level are formed (shared with `denoisingLoss`). */
function weightedError(
  prediction: tf.Tensor,
  predictionType: Prediction,
  x0: tf.Tensor,
  noise: tf.Tensor,
  x: tf.Tensor,
  level: NoiseLevel<tf.Tensor>,
  logSNR: tf.Tensor,
  density: tf.Tensor | undefined,
  w: Weighting,
  reduction: Reduction,
): tf.Tensor1D {
  return tf.tidy(() => {
    const truth =
      predictionType === 'x0'
        ? x0
        : predictionType === 'epsilon'
          ? noise
          : convertPrediction(noise, 'epsilon', predictionType, x, level);
    const sq = tf.square(tf.sub(prediction, truth));
    const axes = Array.from({ length: x0.rank - 1 }, (_, i) => i + 1);
    const err = reduction === 'sum' ? tf.sum(sq, axes) : tf.mean(sq, axes);
    return tf.mul(convertWeighting(w, predictionType).weight(logSNR, density), err) as tf.Tensor1D;
  });
}

function assertReduction(r: unknown): asserts r is Reduction {
  if (r !== 'mean' && r !== 'sum')
    throw new LossError(`reduction must be 'mean' or 'sum', got '${String(r)}'`);
}

function assertWeighting(w: unknown): asserts w is Weighting {
  const o = w as Weighting | null;
  if (
    o === null ||
    typeof o !== 'object' ||
    typeof o.weight !== 'function' ||
    typeof o.space !== 'string'
  ) {
    throw new LossError(
      `weighting must be a Weighting (e.g. minSNRWeighting(5)), got ${describe(w)}`,
    );
  }
  assertPrediction(o.space);
}

/** Options of `denoisingLoss`. */
export interface DenoisingLossOptions {
  /** Draws the noise eps (and the noise levels, when `sampler` is given). */
  rng: Random;
  /** Where the noise levels come from: a sampler, or levels already drawn (numbers or tensors). */
  sampler?: LogSNRSampler;
  sample?: LogSNRSample | LogSNRTensors;
  /** Default: `uniformWeighting('epsilon')`. */
  weighting?: Weighting;
  /** Default `mean` over the non-batch dimensions. */
  reduction?: Reduction;
  /** Passed to the denoiser. */
  cond?: Record<string, unknown>;
  /** Use this noise instead of drawing it (same shape as x0). */
  noise?: tf.Tensor;
}

/**
 * One Monte-Carlo draw of a weighted denoising loss per example: draw lambda (from `sampler`, or use
 * `sample`) and eps, form x = alpha x0 + sigma eps, call the model, and weigh its error
 * (`weightedMSE`). Returns [batch]; take `tf.mean` of it inside `optimizer.minimize`.
 *
 * @example
 * const rng = Random.seed(0);
 * const sampler = uniformTimeSampler(schedule);
 * optimizer.minimize(() => tf.mean(denoisingLoss(model, x0, { rng, sampler, weighting: minSNRWeighting(5) })));
 */
export function denoisingLoss(
  denoiser: DenoiserLike,
  x0: tf.Tensor,
  options: DenoisingLossOptions,
): tf.Tensor1D {
  if (denoiser === null || typeof denoiser !== 'object' || typeof denoiser.predict !== 'function') {
    throw new LossError(
      `denoiser must have predict(x, level) and a prediction type, got ${describe(denoiser)}`,
    );
  }
  assertPrediction(denoiser.prediction);
  assertData(x0, 'x0');
  const n = x0.shape[0]!;
  assertBatchSize(n, 'x0 batch size');
  const { rng } = options;
  const w = options.weighting ?? uniformWeighting('epsilon');
  assertWeighting(w);
  const reduction = options.reduction ?? 'mean';
  assertReduction(reduction);
  let levels: LogSNRSample | LogSNRTensors;
  if (options.sample !== undefined) levels = options.sample;
  else if (options.sampler !== undefined) {
    if (typeof options.sampler.sample !== 'function') {
      throw new LossError(`sampler must be a LogSNRSampler, got ${describe(options.sampler)}`);
    }
    levels = options.sampler.sample(n, rng);
  } else
    throw new LossError(
      'denoisingLoss needs either `sampler` or `sample` (the noise levels of the batch)',
    );
  if (levels === null || typeof levels !== 'object' || levels.logSNR === undefined) {
    throw new LossError(`sample must hold logSNR (and density), got ${describe(levels)}`);
  }
  if (w.needsDensity && levels.density === undefined) {
    throw new LossError(
      `the ${w.name} weighting needs the density p(lambda) of each example; use a LogSNRSampler`,
    );
  }
  if (levels.density !== undefined && !(levels.density instanceof tf.Tensor))
    checkDensity(levels.density);
  if (options.noise !== undefined) {
    assertData(options.noise, 'noise');
    sameShape(x0, options.noise, 'noise');
  } else if (rng === undefined || typeof (rng as Random).normal !== 'function') {
    throw new LossError(`rng must be a Random from @diffuse/backend, got ${describe(rng)}`);
  }
  return tf.tidy(() => {
    const noise = options.noise ?? rng.normal(x0.shape);
    const logSNR = asVector(levels.logSNR, n, 'logSNR');
    const density =
      levels.density === undefined ? undefined : asVector(levels.density, n, 'density');
    const level = perExampleVPLevel(logSNR, x0.rank);
    const x = tf.add(tf.mul(level.alpha, x0), tf.mul(level.sigma, noise));
    const prediction = denoiser.predict(x, level, options.cond);
    if (!(prediction instanceof tf.Tensor)) {
      throw new LossError(`denoiser.predict returned ${describe(prediction)}, not a tensor`);
    }
    sameShape(x0, prediction, 'the denoiser output');
    return weightedError(
      prediction,
      denoiser.prediction,
      x0,
      noise,
      x,
      level,
      logSNR,
      density,
      w,
      reduction,
    );
  });
}

/**
 * Denoising score matching (Vincent 2011) for a model of any prediction type, summed over
 * dimensions, with
 * - `ncsn`: NCSN's lambda(sigma) = sigma^2 (Song & Ermon 2019, eq. 2):
 *   1/2 sigma^2 ||score_hat + eps / sigma||^2 = 1/2 ||eps - eps_hat||^2;
 * - `likelihood`: score-SDE's g(t)^2 (Song et al. 2021, Thm. 1), an upper bound on the KL from the
 *   data to the model that equals VDM's continuous-time diffusion loss (`elboWeighting`).
 *
 * @example
 * const perExample = denoisingScoreMatchingLoss(scoreModel, x0, {
 *   rng, sampler: uniformTimeSampler(schedule), weighting: 'likelihood',
 * });
 */
export function denoisingScoreMatchingLoss(
  denoiser: DenoiserLike,
  x0: tf.Tensor,
  options: Omit<DenoisingLossOptions, 'weighting' | 'reduction'> & {
    weighting?: 'ncsn' | 'likelihood';
  },
): tf.Tensor1D {
  const name = options.weighting ?? 'ncsn';
  if (name !== 'ncsn' && name !== 'likelihood') {
    throw new LossError(
      `denoising score matching weighting must be 'ncsn' or 'likelihood', got '${String(name)}'`,
    );
  }
  const weighting = name === 'ncsn' ? ncsnWeighting() : likelihoodWeighting();
  return denoisingLoss(denoiser, x0, { ...options, weighting, reduction: 'sum' });
}
