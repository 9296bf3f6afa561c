/**
 * The forward process of a Gaussian diffusion in the unified view (Luo 2022, eq. 61-85; Kingma et al.
 * 2021, VDM eq. 1-4 and appendix A), for any two noise levels s < t (lambda_s > lambda_t), variance
 * preserving or not:
 *
 *     q(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I)
 *     q(x_t | x_s) = N(alpha_{t|s} x_s, sigma_{t|s}^2 I),   alpha_{t|s} = alpha_t / alpha_s,
 *                    sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2 = sigma_t^2 (1 - e^(lambda_t - lambda_s))
 *     q(x_s | x_t, x_0) = N(mu, sigma_Q^2 I),
 *         mu = (alpha_{t|s} sigma_s^2 / sigma_t^2) x_t + (alpha_s sigma_{t|s}^2 / sigma_t^2) x_0
 *         sigma_Q^2 = sigma_{t|s}^2 sigma_s^2 / sigma_t^2
 *
 * Writing every ratio through e^(lambda_t - lambda_s) and expm1 keeps them accurate when s and t are
 * close (VDM's trick), and makes s = 0 (sigma_s = 0) exact.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DiscreteSchedule } from './discrete.js';
import { ScheduleError } from './errors.js';
import type { NoiseLevel, Scalar } from './noise-level.js';

/**
 * Samples q(x_t | x_0): x_t = alpha x_0 + sigma eps, with the caller's noise (Luo 2022, eq. 69).
 * Levels may be numbers or tensors that broadcast against x0 (one level per example while training).
 *
 * @example
 * const xt = addNoise(x0, rng.normal(x0.shape), { alpha: 0.8, sigma: 0.6 });
 */
export function addNoise(x0: tf.Tensor, noise: tf.Tensor, level: NoiseLevel<Scalar>): tf.Tensor {
  if (!arraysEqual(x0.shape, noise.shape)) {
    throw new ScheduleError(
      `addNoise: x0 has shape [${x0.shape}] but noise has shape [${noise.shape}]`,
    );
  }
  return tf.tidy(() => tf.add(tf.mul(level.alpha, x0), tf.mul(level.sigma, noise)));
}

/** The transition q(x_t | x_s): x_t = alphaTS x_s + sigmaTS eps. */
export interface Transition {
  /** alpha_{t|s} = alpha_t / alpha_s. */
  alphaTS: number;
  /** sigma_{t|s}^2 = sigma_t^2 (1 - e^(lambda_t - lambda_s)). */
  varianceTS: number;
}

/**
 * q(x_t | x_s) between two levels, s less noisy than t (VDM eq. 2; Luo 2022, eq. 31 generalised).
 *
 * @example
 * transition({ alpha: 0.9, sigma: Math.sqrt(0.19) }, { alpha: 0.6, sigma: 0.8 }); // { alphaTS: 2/3, varianceTS: ... }
 */
export function transition(levelS: NoiseLevel<number>, levelT: NoiseLevel<number>): Transition {
  const { dl } = checkPair(levelS, levelT);
  return { alphaTS: levelT.alpha / levelS.alpha, varianceTS: levelT.sigma ** 2 * -Math.expm1(dl) };
}

/** Coefficients of the posterior q(x_s | x_t, x_0) = N(meanXt x_t + meanX0 x_0, variance I). */
export interface Posterior {
  /** Coefficient of x_t in the mean: (alpha_s / alpha_t) e^(lambda_t - lambda_s). */
  meanXt: number;
  /** Coefficient of x_0 in the mean: alpha_s (1 - e^(lambda_t - lambda_s)). */
  meanX0: number;
  /** sigma_Q^2 = sigma_s^2 (1 - e^(lambda_t - lambda_s)). */
  variance: number;
}

/**
 * The posterior q(x_s | x_t, x_0) for any s < t (Luo 2022, eq. 84 for s = t - 1; VDM appendix A for
 * general s, t). With SNR ratio r = e^(lambda_t - lambda_s) = SNR_t / SNR_s:
 *
 *     mean = (alpha_s / alpha_t) r x_t + alpha_s (1 - r) x_0,   variance = sigma_s^2 (1 - r)
 *
 * @example
 * const p = posterior(schedule.level(0.4), schedule.level(0.5));
 * // mean = p.meanXt * xt + p.meanX0 * x0, std = Math.sqrt(p.variance)
 */
export function posterior(levelS: NoiseLevel<number>, levelT: NoiseLevel<number>): Posterior {
  const { dl } = checkPair(levelS, levelT);
  const oneMinusR = -Math.expm1(dl);
  return {
    // (alpha_s / alpha_t) r, written without dividing by alpha_t (zero terminal SNR has alpha_t = 0)
    meanXt: (levelT.alpha * levelS.sigma ** 2) / (levelS.alpha * levelT.sigma ** 2),
    meanX0: levelS.alpha * oneMinusR,
    variance: levelS.sigma ** 2 * oneMinusR,
  };
}

/**
 * The posterior mean mu(x_t, x_0) of q(x_s | x_t, x_0) as a tensor (see `posterior`). With x_0 replaced
 * by a denoiser's estimate this is the ancestral (DDPM) sampling step's mean (Luo 2022, eq. 94).
 *
 * @example
 * const mu = posteriorMean(x0Hat, xt, levelS, levelT);
 */
export function posteriorMean(
  x0: tf.Tensor,
  xt: tf.Tensor,
  levelS: NoiseLevel<number>,
  levelT: NoiseLevel<number>,
): tf.Tensor {
  const p = posterior(levelS, levelT);
  return tf.tidy(() => tf.add(tf.mul(p.meanXt, xt), tf.mul(p.meanX0, x0)));
}

/**
 * DDPM's q(x_{i-1} | x_i, x_0) at a discrete index i >= 1 from the beta table (Ho et al. 2020, eq. 6-7;
 * diffusers `DDPMScheduler` "fixed_small" variance):
 *
 *     mean = sqrt(abar_{i-1}) beta_i / (1 - abar_i) x_0 + sqrt(alpha_i) (1 - abar_{i-1}) / (1 - abar_i) x_i
 *     variance = (1 - abar_{i-1}) / (1 - abar_i) beta_i
 *
 * the same numbers as `posterior(levelAt(i - 1), levelAt(i))`.
 *
 * @example
 * ddpmPosterior(DiscreteSchedule.fromConfig(), 500);
 */
export function ddpmPosterior(schedule: DiscreteSchedule, i: number): Posterior {
  if (!Number.isInteger(i) || i < 1 || i >= schedule.numTrainTimesteps) {
    throw new ScheduleError(
      `ddpmPosterior: index ${i} must be an integer in [1, ${schedule.numTrainTimesteps - 1}]`,
    );
  }
  const a = schedule.alphasCumprod[i]!;
  const aPrev = schedule.alphasCumprod[i - 1]!;
  const beta = schedule.betas[i]!;
  const alpha = schedule.alphas[i]!;
  return {
    meanX0: (Math.sqrt(aPrev) * beta) / (1 - a),
    meanXt: (Math.sqrt(alpha) * (1 - aPrev)) / (1 - a),
    variance: ((1 - aPrev) / (1 - a)) * beta,
  };
}

function checkPair(s: NoiseLevel<number>, t: NoiseLevel<number>): { dl: number } {
  for (const [name, l] of [
    ['s', s],
    ['t', t],
  ] as const) {
    if (!(l.alpha >= 0 && l.sigma >= 0) || !Number.isFinite(l.alpha) || !Number.isFinite(l.sigma)) {
      throw new ScheduleError(
        `level ${name} needs finite alpha, sigma >= 0, got alpha = ${l.alpha}, sigma = ${l.sigma}`,
      );
    }
  }
  if (!(t.sigma > 0))
    throw new ScheduleError(`level t must be noisy (sigma_t > 0), got sigma_t = ${t.sigma}`);
  if (!(s.alpha > 0))
    throw new ScheduleError(`level s must keep signal (alpha_s > 0), got alpha_s = ${s.alpha}`);
  // lambda_t - lambda_s = 2 log(alpha_t sigma_s / (sigma_t alpha_s))
  const dl = 2 * (Math.log(t.alpha) + Math.log(s.sigma) - Math.log(t.sigma) - Math.log(s.alpha));
  if (!(dl <= 0)) {
    throw new ScheduleError(
      `level s must be less noisy than t (logSNR_s >= logSNR_t); got logSNR_t - logSNR_s = ${dl}`,
    );
  }
  return { dl };
}

function arraysEqual(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
