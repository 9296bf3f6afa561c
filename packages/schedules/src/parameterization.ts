/**
 * The one module that converts between the equivalent targets of a denoiser
 * (Luo 2022, "Understanding Diffusion Models", sec. 2.4 and eq. 133-151).
 *
 * With x_t = alpha x_0 + sigma eps, a model may predict
 *
 *   - `x0`       the clean sample x_0                                  (Ho et al. 2020, eq. 7; EDM's D)
 *   - `epsilon`  the noise eps = (x_t - alpha x_0) / sigma              (Ho et al. 2020)
 *   - `v`        v = alpha eps - sigma x_0                              (Salimans & Ho 2022, sec. 4)
 *   - `score`    grad log p(x_t) = -eps / sigma = (alpha x_0 - x_t) / sigma^2   (Tweedie's formula)
 *   - `flow`     the flow-matching velocity u = eps - x_0 (Lipman et al. 2023, Liu et al. 2023: with
 *                x_t = (1 - t) x_0 + t eps it is dx_t/dt; diffusers' `FlowMatch*` schedulers, SD 3.x, Flux)
 *
 * All four carry the same information given x_t and (alpha, sigma). Solving the pair
 * x_t = alpha x0 + sigma eps, v = alpha eps - sigma x0 gives, for any alpha and sigma
 * (variance-preserving or not):
 *
 *     x0  = (alpha x_t - sigma v) / (alpha^2 + sigma^2)
 *     eps = (sigma x_t + alpha v) / (alpha^2 + sigma^2)
 *
 * and likewise from x_t = alpha x0 + sigma eps, u = eps - x0 (so x_t = (alpha + sigma) x0 + sigma u):
 *
 *     x0  = (x_t - sigma u) / (alpha + sigma),   eps = (x_t + alpha u) / (alpha + sigma)
 *
 * which on the flow path alpha = 1 - t, sigma = t are x0 = x_t - t u and eps = x_t + (1 - t) u. A flow
 * model is thus a denoiser like any other: its VE view is x_t / (1 - t) at noise level t / (1 - t).
 *
 * Models, losses, samplers and guidance all convert through `convertPrediction`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ScheduleError } from './errors.js';
import type { NoiseLevel, Scalar } from './noise-level.js';

/** What a denoiser predicts. */
export type Prediction = 'x0' | 'epsilon' | 'v' | 'score' | 'flow';

/** Every prediction type, for validation and for iterating in tests. */
export const PREDICTIONS: readonly Prediction[] = ['x0', 'epsilon', 'v', 'score', 'flow'];

/** diffusers' `prediction_type` names and ours. */
const DIFFUSERS_NAMES: Record<string, Prediction> = {
  epsilon: 'epsilon',
  sample: 'x0',
  v_prediction: 'v',
  flow_prediction: 'flow',
};

/**
 * Maps a diffusers `prediction_type` (`epsilon`, `sample`, `v_prediction`, `flow_prediction`) to ours.
 *
 * @example
 * predictionFromDiffusers('v_prediction'); // 'v'
 */
export function predictionFromDiffusers(name: string): Prediction {
  const p = DIFFUSERS_NAMES[name];
  if (p === undefined) {
    throw new ScheduleError(
      `unknown diffusers prediction_type '${name}'; expected one of ${Object.keys(DIFFUSERS_NAMES).join(', ')}`,
    );
  }
  return p;
}

/**
 * Maps our prediction type to diffusers' `prediction_type` (diffusers has none for `score`).
 *
 * @example
 * predictionToDiffusers('x0'); // 'sample'
 */
export function predictionToDiffusers(p: Prediction): string {
  if (p === 'score') throw new ScheduleError(`diffusers has no prediction_type for 'score'`);
  return p === 'x0'
    ? 'sample'
    : p === 'v'
      ? 'v_prediction'
      : p === 'flow'
        ? 'flow_prediction'
        : 'epsilon';
}

/**
 * Throws a `ScheduleError` unless `p` names a prediction type.
 *
 * @example
 * assertPrediction('eps'); // ScheduleError: unknown prediction type 'eps'; expected one of x0, epsilon, v, score
 */
export function assertPrediction(p: unknown): asserts p is Prediction {
  if (!PREDICTIONS.includes(p as Prediction)) {
    throw new ScheduleError(
      `unknown prediction type '${String(p)}'; expected one of ${PREDICTIONS.join(', ')}`,
    );
  }
}

/**
 * x0 from any prediction of the noisy sample x = alpha x0 + sigma eps (Luo 2022, eq. 115, 133).
 *
 * @example
 * const x0 = toX0(epsHat, 'epsilon', xt, { alpha: 0.8, sigma: 0.6 }); // (xt - 0.6 epsHat) / 0.8
 */
export function toX0(
  pred: tf.Tensor,
  from: Prediction,
  x: tf.Tensor,
  level: NoiseLevel<Scalar>,
): tf.Tensor {
  const { alpha, sigma } = level;
  return tf.tidy(() => {
    switch (from) {
      case 'x0':
        return tf.clone(pred);
      case 'epsilon': // x0 = (x - sigma eps) / alpha
        return tf.div(tf.sub(x, tf.mul(sigma, pred)), alpha);
      case 'v': // x0 = (alpha x - sigma v) / (alpha^2 + sigma^2)
        return tf.div(tf.sub(tf.mul(alpha, x), tf.mul(sigma, pred)), norm2(level));
      case 'score': // Tweedie: x0 = (x + sigma^2 score) / alpha
        return tf.div(tf.add(x, tf.mul(tf.square(sigma), pred)), alpha);
      case 'flow': // x0 = (x - sigma u) / (alpha + sigma)
        return tf.div(tf.sub(x, tf.mul(sigma, pred)), sum(level));
    }
  });
}

/**
 * epsilon from any prediction (Luo 2022, eq. 122; score: eps = -sigma score, eq. 151).
 *
 * @example
 * const eps = toEpsilon(x0Hat, 'x0', xt, { alpha: 0.8, sigma: 0.6 }); // (xt - 0.8 x0Hat) / 0.6
 */
export function toEpsilon(
  pred: tf.Tensor,
  from: Prediction,
  x: tf.Tensor,
  level: NoiseLevel<Scalar>,
): tf.Tensor {
  const { alpha, sigma } = level;
  return tf.tidy(() => {
    switch (from) {
      case 'epsilon':
        return tf.clone(pred);
      case 'x0': // eps = (x - alpha x0) / sigma
        return tf.div(tf.sub(x, tf.mul(alpha, pred)), sigma);
      case 'v': // eps = (sigma x + alpha v) / (alpha^2 + sigma^2)
        return tf.div(tf.add(tf.mul(sigma, x), tf.mul(alpha, pred)), norm2(level));
      case 'score': // eps = -sigma score
        return tf.neg(tf.mul(sigma, pred));
      case 'flow': // eps = (x + alpha u) / (alpha + sigma)
        return tf.div(tf.add(x, tf.mul(alpha, pred)), sum(level));
    }
  });
}

/**
 * Converts a prediction of one type into another: the paper's equivalences, in one place. Levels may be
 * numbers or tensors that broadcast against x (one level per example while training).
 *
 * @example
 * const score = convertPrediction(epsHat, 'epsilon', 'score', xt, { alpha: 0.8, sigma: 0.6 }); // -epsHat / 0.6
 */
export function convertPrediction(
  pred: tf.Tensor,
  from: Prediction,
  to: Prediction,
  x: tf.Tensor,
  level: NoiseLevel<Scalar>,
): tf.Tensor {
  assertPrediction(from);
  assertPrediction(to);
  if (from === to) return tf.clone(pred);
  const { alpha, sigma } = level;
  return tf.tidy(() => {
    switch (to) {
      case 'x0':
        return toX0(pred, from, x, level);
      case 'epsilon':
        return toEpsilon(pred, from, x, level);
      case 'v': {
        // v = alpha eps - sigma x0
        const x0 = toX0(pred, from, x, level);
        const eps = toEpsilon(pred, from, x, level);
        return tf.sub(tf.mul(alpha, eps), tf.mul(sigma, x0));
      }
      case 'score': // score = -eps / sigma
        return tf.neg(tf.div(toEpsilon(pred, from, x, level), sigma));
      case 'flow': // u = eps - x0
        return tf.sub(toEpsilon(pred, from, x, level), toX0(pred, from, x, level));
    }
  });
}

function sum({ alpha, sigma }: NoiseLevel<Scalar>): Scalar {
  if (typeof alpha === 'number' && typeof sigma === 'number') return alpha + sigma;
  return tf.add(alpha, sigma);
}

function norm2({ alpha, sigma }: NoiseLevel<Scalar>): Scalar {
  if (typeof alpha === 'number' && typeof sigma === 'number') return alpha * alpha + sigma * sigma;
  return tf.add(tf.square(alpha), tf.square(sigma));
}

/**
 * EDM's preconditioning (Karras et al. 2022, Table 1, "Ours"), in VE noise levels s = sigma / alpha:
 *
 *     D(x; s) = c_skip(s) x + c_out(s) F(c_in(s) x; c_noise(s))
 *     c_skip = sd^2 / (s^2 + sd^2),  c_out = s sd / sqrt(s^2 + sd^2),
 *     c_in = 1 / sqrt(s^2 + sd^2),   c_noise = ln(s) / 4
 *
 * with sd = sigma_data, the data's standard deviation (0.5 for images in [-1, 1]).
 *
 * @example
 * edmPreconditioning(1, 0.5); // { cSkip: 0.2, cOut: 0.4472, cIn: 0.8944, cNoise: 0 }
 */
export function edmPreconditioning(
  sigma: number,
  sigmaData = 0.5,
): { cSkip: number; cOut: number; cIn: number; cNoise: number } {
  if (!(sigma > 0) || !(sigmaData > 0)) {
    throw new ScheduleError(
      `EDM preconditioning needs sigma > 0 and sigmaData > 0, got ${sigma}, ${sigmaData}`,
    );
  }
  const s2 = sigma * sigma;
  const d2 = sigmaData * sigmaData;
  return {
    cSkip: d2 / (s2 + d2),
    cOut: (sigma * sigmaData) / Math.sqrt(s2 + d2),
    cIn: 1 / Math.sqrt(s2 + d2),
    cNoise: Math.log(sigma) / 4,
  };
}

/** EDM's preconditioning coefficients as tensors (see `edmPreconditioning`). */
export interface EDMCoefficients {
  cSkip: tf.Tensor;
  cOut: tf.Tensor;
  cIn: tf.Tensor;
  cNoise: tf.Tensor;
}

/**
 * `edmPreconditioning` elementwise on a tensor of VE noise levels (one per example while training),
 * differentiable. Values are not range-checked (sigma must be > 0).
 *
 * @example
 * const { cSkip, cOut, cIn, cNoise } = edmPreconditioningTensor(sigmas, 0.5);
 */
export function edmPreconditioningTensor(sigma: tf.Tensor, sigmaData = 0.5): EDMCoefficients {
  if (!(sigmaData > 0))
    throw new ScheduleError(`EDM preconditioning needs sigmaData > 0, got ${sigmaData}`);
  return tf.tidy(() => {
    const d2 = sigmaData * sigmaData;
    const total = tf.add(tf.square(sigma), d2);
    const cIn = tf.rsqrt(total);
    return {
      cSkip: tf.div(d2, total),
      cOut: tf.mul(tf.mul(sigma, sigmaData), cIn),
      cIn,
      cNoise: tf.mul(tf.log(sigma), 0.25),
    };
  });
}
