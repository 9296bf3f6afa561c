/**
 * Denoiser wrappers: change what a denoiser predicts, or build one from a raw network with EDM's
 * preconditioning. Conversions all go through `convertPrediction` from `@diffuse/schedules`.
 */

import type { NoiseLevel, Prediction, Scalar } from '@diffuse/schedules';
import {
  assertPrediction,
  convertPrediction,
  edmPreconditioning,
  edmPreconditioningTensor,
} from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import type { Conditioning, Denoiser } from './denoiser.js';
import { ModelError } from './errors.js';

/**
 * The same denoiser, predicting `target` instead: predict = convertPrediction(inner, from, target)
 * (Luo 2022, eq. 133-151; all four targets carry the same information given x_t and the level).
 *
 * @example
 * const eps = withPrediction(gm.denoiser('x0'), 'epsilon').predict(x, { alpha: 0.6, sigma: 0.8 });
 */
export function withPrediction(denoiser: Denoiser, target: Prediction): Denoiser {
  assertPrediction(target);
  if (denoiser.prediction === target) return denoiser;
  return {
    prediction: target,
    ...(denoiser.shape ? { shape: denoiser.shape } : {}),
    ...(denoiser.numClasses !== undefined ? { numClasses: denoiser.numClasses } : {}),
    predict(x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning): tf.Tensor {
      return tf.tidy(() =>
        convertPrediction(denoiser.predict(x, level, cond), denoiser.prediction, target, x, level),
      );
    },
  };
}

/**
 * A raw network F(x_in; c_noise, cond): the same shape in and out, conditioned on a per-example
 * noise input `noise` ([batch] float32). Every network in this package implements it (its `apply`).
 */
export interface NoiseConditionalNetwork {
  apply(x: tf.Tensor, noise: tf.Tensor, cond?: Conditioning): tf.Tensor;
  readonly shape?: readonly number[];
  readonly numClasses?: number | undefined;
}

/** Options of `edmPreconditioned`. */
export interface EdmOptions {
  /** Standard deviation of the data (EDM's sigma_data; 0.5 for images in [-1, 1]). */
  sigmaData?: number;
}

/**
 * EDM's preconditioned denoiser around a raw network F (Karras et al. 2022, sec. 5 and Table 1):
 * in VE terms, with s = sigma / alpha and x_ve = x / alpha,
 *
 *     D(x_ve; s) = c_skip(s) x_ve + c_out(s) F(c_in(s) x_ve; c_noise(s)),
 *
 * coefficients from `edmPreconditioning` in `@diffuse/schedules`. Predicts `x0`.
 * Number levels use `edmPreconditioning`, per-example tensor levels (training) `edmPreconditioningTensor`.
 *
 * @example
 * const D = edmPreconditioned(mlp, { sigmaData: 0.5 });
 * const x0 = D.predict(x, { alpha: 0.8, sigma: 0.6 });
 */
export function edmPreconditioned(
  network: NoiseConditionalNetwork,
  options: EdmOptions = {},
): Denoiser {
  const sigmaData = options.sigmaData ?? 0.5;
  if (!(sigmaData > 0)) throw new ModelError(`sigmaData must be > 0, got ${sigmaData}`);
  return {
    prediction: 'x0',
    ...(network.shape ? { shape: network.shape } : {}),
    ...(network.numClasses !== undefined ? { numClasses: network.numClasses } : {}),
    predict(x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning): tf.Tensor {
      return tf.tidy(() => {
        const batch = x.shape[0]!;
        const a = broadcastLevel(level.alpha, x.rank);
        const xVe = tf.div(x, a);
        const c = edmCoefficients(level, sigmaData, x.rank);
        const noise =
          typeof c.cNoise === 'number' ? tf.fill([batch], c.cNoise) : tf.reshape(c.cNoise, [batch]);
        const f = network.apply(tf.mul(xVe, c.cIn), noise, cond);
        return tf.add(tf.mul(xVe, c.cSkip), tf.mul(f, c.cOut));
      });
    },
  };
}

function broadcastLevel(v: Scalar, rank: number): Scalar {
  if (typeof v === 'number') return v;
  return tf.reshape(v, [-1, ...new Array(rank - 1).fill(1)]);
}

/** EDM Table 1 coefficients for number levels, or per-example tensor levels shaped like x's batch. */
function edmCoefficients(level: NoiseLevel<Scalar>, sigmaData: number, rank: number) {
  const { alpha, sigma } = level;
  if (typeof alpha === 'number' && typeof sigma === 'number') {
    return edmPreconditioning(sigma / alpha, sigmaData);
  }
  return edmPreconditioningTensor(
    tf.div(broadcastLevel(sigma, rank), broadcastLevel(alpha, rank)),
    sigmaData,
  );
}

/**
 * log SNR = 2 (log alpha - log sigma) per example, as a [batch] tensor, from number or tensor levels
 * (the noise input our networks condition on; VDM sec. 3.3).
 *
 * @example
 * const lambda = logSNRTensor({ alpha: 0.8, sigma: 0.6 }, 4); // [4]
 */
export function logSNRTensor(level: NoiseLevel<Scalar>, batch: number): tf.Tensor {
  return tf.tidy(() => {
    const toVec = (v: Scalar) =>
      typeof v === 'number' ? tf.fill([batch], v) : tf.mul(tf.reshape(v, [-1]), tf.ones([batch]));
    return tf.mul(2, tf.sub(tf.log(toVec(level.alpha)), tf.log(toVec(level.sigma))));
  });
}
