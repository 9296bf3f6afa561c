/**
 * A noise level in the unified view (Luo 2022, eq. 69; Kingma et al. 2021, VDM sec. 2):
 *
 *     x_t = alpha_t x_0 + sigma_t eps,   eps ~ N(0, I)
 *
 * Every schedule in this package, discrete or continuous, variance-preserving (alpha^2 + sigma^2 = 1)
 * or variance-exploding (alpha = 1), reduces to a sequence of such pairs. The signal-to-noise ratio is
 * SNR = alpha^2 / sigma^2 and logSNR = lambda = 2 log(alpha / sigma). The variance-exploding view of
 * the same level (k-diffusion, EDM) divides by alpha: x / alpha = x_0 + (sigma / alpha) eps.
 */
import * as tf from '@tensorflow/tfjs-core';

/** A scalar or a tensor that broadcasts against the batch (e.g. shape [batch, 1, ...]). */
export type Scalar = number | tf.Tensor;

/** alpha_t and sigma_t of one noise level (numbers while sampling, tensors while training). */
export interface NoiseLevel<T extends Scalar = Scalar> {
  alpha: T;
  sigma: T;
}

/**
 * lambda = log SNR = 2 log(alpha / sigma) (VDM eq. 3).
 *
 * @example
 * logSNRFromLevel({ alpha: 0.8, sigma: 0.6 }); // 2 log(4/3) = 0.575
 */
export function logSNRFromLevel(level: NoiseLevel<number>): number {
  return 2 * (Math.log(level.alpha) - Math.log(level.sigma));
}

/**
 * The variance-preserving level with the given logSNR: alpha^2 = sigmoid(lambda), sigma^2 = sigmoid(-lambda)
 * (VDM eq. 4), stable for large |lambda|.
 *
 * @example
 * vpLevelFromLogSNR(0); // { alpha: 0.7071, sigma: 0.7071 }
 */
export function vpLevelFromLogSNR(logSNR: number): NoiseLevel<number> {
  // sqrt(sigmoid(l)) computed stably for large |l|.
  const alpha = Math.exp(-0.5 * softplus(-logSNR));
  const sigma = Math.exp(-0.5 * softplus(logSNR));
  return { alpha, sigma };
}

/**
 * `vpLevelFromLogSNR` elementwise on a tensor of logSNR values (one per example while training):
 *
 *     alpha = sqrt(sigmoid(lambda)) = exp(-softplus(-lambda) / 2),
 *     sigma = sqrt(sigmoid(-lambda)) = exp(-softplus(lambda) / 2)
 *
 * (VDM eq. 4; Luo 2022, eq. 69), in the softplus form so that float32 neither rounds alpha or sigma to
 * 0 at large |lambda| (sigmoid(-100) underflows; the level does not) nor gives an infinite or NaN
 * gradient there: d alpha / d lambda = alpha sigmoid(-lambda) / 2 is finite everywhere. Differentiable
 * in `logSNR` (learned schedules train through it). The result has `logSNR`'s shape; reshape the
 * input to [batch, 1, ..., 1] first to broadcast against data. The caller owns both tensors.
 *
 * @example
 * const { alpha, sigma } = vpLevelFromLogSNRTensor(tf.tensor1d([-10, 0, 10])); // alpha[1] = 0.7071
 */
export function vpLevelFromLogSNRTensor(logSNR: tf.Tensor): NoiseLevel<tf.Tensor> {
  return tf.tidy(() => ({
    alpha: tf.exp(tf.mul(tf.softplus(tf.neg(logSNR)), -0.5)),
    sigma: tf.exp(tf.mul(tf.softplus(logSNR), -0.5)),
  }));
}

/**
 * The variance-preserving level whose VE noise level is `sigmaVE = sigma / alpha`:
 * alpha = 1 / sqrt(1 + sigmaVE^2) (Karras et al. 2022, sec. 4 / Table 1).
 *
 * @example
 * vpLevelFromSigmaVE(1); // { alpha: 0.7071, sigma: 0.7071 }
 */
export function vpLevelFromSigmaVE(sigmaVE: number): NoiseLevel<number> {
  const alpha = 1 / Math.sqrt(1 + sigmaVE * sigmaVE);
  return { alpha, sigma: sigmaVE * alpha };
}

/**
 * The variance-exploding noise level sigma / alpha (k-diffusion's and EDM's sigma).
 *
 * @example
 * sigmaVE({ alpha: 0.8, sigma: 0.6 }); // 0.75
 */
export function sigmaVE(level: NoiseLevel<number>): number {
  return level.sigma / level.alpha;
}

/**
 * log(1 + e^x), without overflow.
 *
 * @example
 * softplus(1000); // 1000
 */
export function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}
