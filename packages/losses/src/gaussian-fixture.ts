/**
 * Test fixtures (not exported by the package): Gaussian data x0 ~ N(mu, s^2 I_d), for which the
 * optimal denoiser and every loss of this package are known in closed form (float64).
 *
 *     E[x0 | x] = mu + alpha s^2 (x - alpha mu) / (alpha^2 s^2 + sigma^2),
 *     E||x0 - E[x0 | x]||^2 = d s^2 / (1 + SNR s^2).
 */
import { convertPrediction, type Prediction } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import type { DenoiserLike } from './denoising-loss.js';

/** The closed-form optimal denoiser for N(mu, s^2 I) predicting `prediction`. */
export function gaussianDenoiser(
  mu: number,
  s: number,
  prediction: Prediction = 'x0',
): DenoiserLike {
  return {
    prediction,
    predict(x, level) {
      return tf.tidy(() => {
        const { alpha, sigma } = level;
        const a2s2 = tf.mul(tf.square(alpha), s * s);
        const x0 = tf.add(
          mu,
          tf.div(
            tf.mul(tf.mul(alpha, s * s), tf.sub(x, tf.mul(alpha, mu))),
            tf.add(a2s2, tf.square(sigma)),
          ),
        );
        return convertPrediction(x0, 'x0', prediction, x, level);
      });
    },
  };
}

const softplus = (x: number) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));

/** L_inf = d/2 log[(1 + SNR_max s^2) / (1 + SNR_min s^2)] (VDM eq. 18 for Gaussian data). */
export function exactContinuous(
  d: number,
  s: number,
  logSNRMin: number,
  logSNRMax: number,
): number {
  const s2 = s * s;
  return 0.5 * d * (Math.log1p(Math.exp(logSNRMax) * s2) - Math.log1p(Math.exp(logSNRMin) * s2));
}

/** L_T = d/2 sum_i (SNR(s_i) - SNR(t_i)) s^2 / (1 + SNR(t_i) s^2). */
export function exactDiscrete(
  d: number,
  s: number,
  logSNR: (t: number) => number,
  steps: number,
): number {
  const s2 = s * s;
  let sum = 0;
  for (let i = 1; i <= steps; i++) {
    const lt = logSNR(i / steps);
    const ls = logSNR((i - 1) / steps);
    // (e^ls - e^lt) s^2 / (1 + e^lt s^2), written to avoid overflow.
    sum += (Math.exp(lt) * Math.expm1(ls - lt) * s2) / (1 + Math.exp(lt) * s2);
  }
  return 0.5 * d * sum;
}

/** E_x KL(q(z_1|x) || N(0, I)) = d/2 [alpha_1^2 (mu^2 + s^2 - 1) + softplus(lambda_min)]. */
export function exactPrior(d: number, mu: number, s: number, logSNRMin: number): number {
  const a2 = 1 / (1 + Math.exp(-logSNRMin));
  return 0.5 * d * (a2 * (mu * mu + s * s - 1) + softplus(logSNRMin));
}

/** d/2 (1 + log 2 pi - lambda_max). */
export function exactReconstruction(d: number, logSNRMax: number): number {
  return 0.5 * d * (1 + Math.log(2 * Math.PI) - logSNRMax);
}

/** The true NLL of N(mu, s^2 I_d) in expectation: its entropy d/2 log(2 pi e s^2). */
export function exactNLL(d: number, s: number): number {
  return 0.5 * d * Math.log(2 * Math.PI * Math.E * s * s);
}

/** A numeric schedule from a logSNR curve: lambda(t) = max + (min - max) h(t) for a warp h. */
export function warpedSchedule(
  logSNRMin: number,
  logSNRMax: number,
  h: (t: number) => number,
  dh: (t: number) => number,
) {
  return {
    logSNR: (t: number) => logSNRMax + (logSNRMin - logSNRMax) * h(t),
    dLogSNRdt: (t: number) => (logSNRMin - logSNRMax) * dh(t),
  };
}
