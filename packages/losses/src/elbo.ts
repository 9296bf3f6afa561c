/**
 * The variational lower bound of a variational diffusion model (Kingma et al. 2021, "Variational
 * Diffusion Models", sec. 3-4; Luo 2022, eq. 58 and 100), in nats per example:
 *
 *     -log p(x) <= -ELBO(x) = L_prior + L_recon + L_diffusion
 *
 *     L_prior     = KL(q(z_1 | x) || N(0, I))                              (VDM eq. 11, first term)
 *     L_recon     = E_{q(z_0 | x)}[-log p(x | z_0)]                         (VDM eq. 11, second term)
 *     L_T         = T/2 E_{i ~ U{1..T}}[(SNR(s) - SNR(t)) ||x - x_hat(z_t; t)||^2],  s = (i-1)/T, t = i/T   (VDM eq. 13)
 *     L_inf       = -1/2 E_{t ~ U(0,1)}[SNR'(t) ||x - x_hat(z_t; t)||^2]
 *                 = 1/2 E_t[gamma'(t) e^{-gamma(t)} ||x - x_hat||^2]
 *                 = 1/2 int_{lambda_min}^{lambda_max} E||eps - eps_hat(z_lambda; lambda)||^2 d lambda   (VDM eq. 17, 18)
 *
 * with gamma(t) = -lambda(t) = -log SNR(t) and variance-preserving z_t = alpha_t x + sigma_t eps.
 * In logSNR, SNR(s) - SNR(t) = e^lambda_t (e^{lambda_s - lambda_t} - 1), so the discrete weight on
 * the eps error is T/2 expm1(lambda_s - lambda_t), which tends to -lambda'(t)/2 as T grows: L_T is a
 * Riemann sum of L_inf taken at the noisier end of each step, and L_T >= L_inf (VDM sec. 4.1).
 * L_inf depends on the schedule only through lambda_min and lambda_max (VDM eq. 18, sec. 5.1).
 *
 * Decoder for continuous data (our choice, documented): p(x | z_0) = N(x; z_0 / alpha_0, sigma_0^2 / alpha_0^2 I),
 * the forward step read backwards. Since x - z_0 / alpha_0 = -(sigma_0 / alpha_0) eps, its expected
 * negative log-likelihood is exact and model-free:
 *
 *     L_recon = d/2 (1 + log 2 pi - lambda_max).
 *
 * For x ~ N(mu, s^2 I_d) and the optimal denoiser, -ELBO exceeds the true NLL d/2 log(2 pi e s^2) by
 * d/2 log(1 + e^-lambda_max / s^2) - d/2 log(1 + e^lambda_min s^2) + KL_prior, which tends to 0 as
 * lambda_max -> inf, lambda_min -> -inf (VDM's 8-bit image decoder is a discretised one instead).
 */

import type { Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { type DenoiserLike, denoisingLoss } from './denoising-loss.js';
import { LossError } from './errors.js';
import {
  assertBatchSize,
  assertTimeSampling,
  type LogSNRSampler,
  type TimeSampling,
  uniformTimes,
} from './sampler.js';
import {
  assertContinuousSchedule,
  type ContinuousSchedule,
  describe,
  isDifferentiableSchedule,
  type LogSNRSchedule,
  logSNRAndDerivative,
  logSNRAt,
  logSNRValues,
} from './schedule.js';
import { elboWeighting, type Weighting } from './weighting.js';

/** The terms of -ELBO per example, in nats, each [batch]. */
export interface ELBOTerms {
  prior: tf.Tensor1D;
  reconstruction: tf.Tensor1D;
  diffusion: tf.Tensor1D;
  /** prior + reconstruction + diffusion. */
  total: tf.Tensor1D;
}

function assertX0(x0: unknown): asserts x0 is tf.Tensor {
  if (!(x0 instanceof tf.Tensor) || x0.rank < 2) {
    throw new LossError(`x0 must be a tensor of shape [batch, ...dims], got ${describe(x0)}`);
  }
  assertBatchSize(x0.shape[0], 'x0 batch size');
}

function assertLogSNR(l: unknown, what: string): asserts l is number | tf.Tensor {
  if (l instanceof tf.Tensor) {
    if (l.size !== 1)
      throw new LossError(`${what} must be a number or a scalar tensor, got ${describe(l)}`);
    return;
  }
  if (typeof l !== 'number' || !Number.isFinite(l))
    throw new LossError(`${what} must be a finite number, got ${describe(l)}`);
}

function dimsOf(x0: tf.Tensor): number {
  return x0.size / x0.shape[0]!;
}

/**
 * The prior term KL(q(z_1 | x) || N(0, I)) per example, with q(z_1 | x) = N(alpha_1 x, sigma_1^2 I),
 * alpha_1^2 = sigmoid(lambda_min), sigma_1^2 = sigmoid(-lambda_min) (VDM eq. 11; the VDM code's
 * `kl = 0.5 (sigma^2 + mean^2 - log sigma^2 - 1)`), written stably in logSNR:
 *
 *     KL = 1/2 sum_i [ alpha_1^2 (x_i^2 - 1) + softplus(lambda_min) ].
 *
 * `logSNRMin` may be a scalar tensor (a learned endpoint; the KL is differentiable in it).
 *
 * @example
 * const kl = priorKL(x0, -13.3); // [batch], about 1e-6 nats per dimension for unit-scale data
 */
export function priorKL(x0: tf.Tensor, logSNRMin: number | tf.Tensor): tf.Tensor1D {
  assertX0(x0);
  assertLogSNR(logSNRMin, 'logSNRMin');
  return tf.tidy(() => {
    const l = logSNRMin instanceof tf.Tensor ? tf.reshape(logSNRMin, []) : tf.scalar(logSNRMin);
    const a2 = tf.sigmoid(l);
    const perDim = tf.mul(0.5, tf.add(tf.mul(a2, tf.sub(tf.square(x0), 1)), tf.softplus(l)));
    return tf.sum(tf.reshape(perDim, [x0.shape[0]!, -1]), 1) as tf.Tensor1D;
  });
}

/**
 * The reconstruction term E_{q(z_0 | x)}[-log p(x | z_0)] per example for continuous data, with the
 * Gaussian decoder p(x | z_0) = N(z_0 / alpha_0, (sigma_0 / alpha_0)^2 I) (see the module doc):
 *
 *     L_recon = d/2 (1 + log 2 pi - lambda_max),   (sigma_0 / alpha_0)^2 = e^-lambda_max.
 *
 * The expectation over z_0 is taken exactly. `logSNRMax` may be a scalar tensor (learned endpoint).
 *
 * @example
 * const rec = gaussianReconstructionNLL(x0, 5); // [batch]
 */
export function gaussianReconstructionNLL(
  x0: tf.Tensor,
  logSNRMax: number | tf.Tensor,
): tf.Tensor1D {
  assertX0(x0);
  assertLogSNR(logSNRMax, 'logSNRMax');
  return tf.tidy(() => {
    const l = logSNRMax instanceof tf.Tensor ? tf.reshape(logSNRMax, []) : tf.scalar(logSNRMax);
    const perExample = tf.mul(0.5 * dimsOf(x0), tf.sub(1 + Math.log(2 * Math.PI), l));
    return tf.mul(tf.ones([x0.shape[0]!]), perExample) as tf.Tensor1D;
  });
}

/** Options shared by the diffusion terms. */
export interface DiffusionLossOptions {
  /** Draws the times and the noise. */
  rng: Random;
  /** How the batch's times are drawn; default `low-discrepancy` (VDM). */
  sampling?: TimeSampling;
  /** Passed to the denoiser. */
  cond?: Record<string, unknown>;
  /** Use this noise instead of drawing it (same shape as x0). */
  noise?: tf.Tensor;
  /**
   * Evaluate the schedule on tensors so that gradients reach its parameters. Default: automatic (yes
   * for schedules with `trainableVariables` or with tensor methods only).
   */
  differentiable?: boolean;
  /**
   * Start of the time range, default 0: the ELBO is taken over t in [tMin, 1], i.e. lambda in
   * [lambda(1), lambda(tMin)] (score SDE's VP schedule has lambda(0) = inf and starts at t = 1e-5).
   */
  tMin?: number;
}

function readTMin(tMin: unknown): number {
  if (tMin === undefined) return 0;
  if (typeof tMin !== 'number' || !(tMin >= 0 && tMin < 1)) {
    throw new LossError(`tMin must be a number in [0, 1), got ${describe(tMin)}`);
  }
  return tMin;
}

/**
 * The continuous-time diffusion loss L_inf per example (VDM eq. 17), one Monte-Carlo draw of (t, eps)
 * per example:
 *
 *     L_inf = -1/2 lambda'(t) ||eps - eps_hat||^2 = -1/2 lambda'(t) e^lambda(t) ||x0 - x0_hat||^2,  t ~ U(0, 1),
 *
 * i.e. `denoisingLoss` with `elboWeighting()` summed over dimensions. With `schedule`, t is uniform
 * (i.i.d., antithetic or low-discrepancy); a schedule with `logSNRTensor` is evaluated on tensors, so
 * the loss is differentiable in its parameters (jointly training the learned VDM schedule). With
 * `sampler` instead, lambda is drawn from any density p and weighted by 1 / (2 p(lambda)): the same
 * expectation over the sampler's range, with another variance.
 *
 * @example
 * const perExample = continuousDiffusionLoss(model, x0, { schedule, rng: Random.seed(0) });
 */
export function continuousDiffusionLoss(
  denoiser: DenoiserLike,
  x0: tf.Tensor,
  options: DiffusionLossOptions & { schedule?: ContinuousSchedule; sampler?: LogSNRSampler },
): tf.Tensor1D {
  assertX0(x0);
  const weighting: Weighting = elboWeighting();
  const common = {
    rng: options.rng,
    weighting,
    reduction: 'sum' as const,
    ...(options.cond === undefined ? {} : { cond: options.cond }),
    ...(options.noise === undefined ? {} : { noise: options.noise }),
  };
  if (options.sampler !== undefined) {
    if (options.schedule !== undefined) {
      throw new LossError(
        'continuousDiffusionLoss takes either `schedule` (uniform t) or `sampler`, not both',
      );
    }
    return denoisingLoss(denoiser, x0, { ...common, sampler: options.sampler });
  }
  if (options.schedule === undefined)
    throw new LossError('continuousDiffusionLoss needs `schedule` or `sampler`');
  assertContinuousSchedule(options.schedule);
  const sampling = options.sampling ?? 'low-discrepancy';
  assertTimeSampling(sampling);
  const tMin = readTMin(options.tMin);
  const t = uniformTimes(x0.shape[0]!, options.rng, sampling).map((u) => tMin + (1 - tMin) * u);
  return tf.tidy(() => {
    const { logSNR, dLogSNRdt } = logSNRAndDerivative(options.schedule!, t, options.differentiable);
    // p(lambda) = 1 / |lambda'(t)| for t ~ U(0, 1).
    // (1 - tMin) p(lambda) = 1 / |lambda'(t)| for t ~ U(tMin, 1).
    const density = tf.div(-1 / (1 - tMin), dLogSNRdt);
    return denoisingLoss(denoiser, x0, { ...common, sample: { logSNR, density } });
  });
}

/**
 * The discrete-time diffusion loss L_T per example (VDM eq. 13), one index i ~ U{1..T} per example:
 *
 *     L_T = T/2 (SNR(s) - SNR(t)) ||x0 - x0_hat(z_t; t)||^2 = T/2 expm1(lambda(s) - lambda(t)) ||eps - eps_hat||^2,
 *     s = (i - 1)/T,  t = i/T.
 *
 * Its expectation exceeds L_inf and falls towards it as T grows (VDM sec. 4.1).
 *
 * @example
 * const perExample = discreteDiffusionLoss(model, x0, { schedule, steps: 1000, rng: Random.seed(0) });
 */
export function discreteDiffusionLoss(
  denoiser: DenoiserLike,
  x0: tf.Tensor,
  options: DiffusionLossOptions & { schedule: ContinuousSchedule; steps: number },
): tf.Tensor1D {
  assertX0(x0);
  const { schedule, steps } = options;
  assertContinuousSchedule(schedule);
  if (!Number.isInteger(steps) || steps < 1)
    throw new LossError(`steps (T) must be a positive integer, got ${describe(steps)}`);
  const sampling = options.sampling ?? 'low-discrepancy';
  assertTimeSampling(sampling);
  const n = x0.shape[0]!;
  const tMin = readTMin(options.tMin);
  const u = uniformTimes(n, options.rng, sampling);
  const t = new Float64Array(n);
  const s = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const i = Math.min(Math.floor(u[k]! * steps), steps - 1) + 1;
    t[k] = tMin + ((1 - tMin) * i) / steps;
    s[k] = tMin + ((1 - tMin) * (i - 1)) / steps;
  }
  return tf.tidy(() => {
    let logSNR: tf.Tensor1D;
    let weightEps: tf.Tensor1D;
    if (isDifferentiableSchedule(schedule, options.differentiable)) {
      logSNR = logSNRValues(schedule, t, true);
      const logSNRs = logSNRValues(schedule, s, true);
      weightEps = tf.mul(steps / 2, tf.expm1(tf.sub(logSNRs, logSNR))) as tf.Tensor1D;
    } else {
      const lt = new Float32Array(n);
      const w = new Float32Array(n);
      const numeric = schedule as LogSNRSchedule;
      for (let k = 0; k < n; k++) {
        const a = numeric.logSNR(t[k]!);
        const b = numeric.logSNR(s[k]!);
        if (!Number.isFinite(a) || !Number.isFinite(b) || !(b > a)) {
          throw new LossError(
            `schedule logSNR must be finite and strictly decreasing, got lambda(${s[k]}) = ${b}, lambda(${t[k]}) = ${a}`,
          );
        }
        lt[k] = a;
        w[k] = (steps / 2) * Math.expm1(b - a);
      }
      logSNR = tf.tensor1d(lt);
      weightEps = tf.tensor1d(w);
    }
    const weighting: Weighting = {
      name: `discrete-elbo-${steps}`,
      space: 'epsilon',
      needsDensity: false,
      weight: () => weightEps,
    };
    return denoisingLoss(denoiser, x0, {
      rng: options.rng,
      sample: { logSNR },
      weighting,
      reduction: 'sum',
      ...(options.cond === undefined ? {} : { cond: options.cond }),
      ...(options.noise === undefined ? {} : { noise: options.noise }),
    });
  });
}

/**
 * -ELBO per example in nats (VDM eq. 11): prior KL at lambda(1) = lambda_min, Gaussian reconstruction
 * at lambda(0) = lambda_max, and the diffusion term in continuous time (default) or with `steps` = T
 * discrete steps. A differentiable schedule makes every term differentiable in its parameters (its
 * endpoints enter the prior and reconstruction terms). Convert with `bitsPerDim`.
 *
 * @example
 * const { total, prior, reconstruction, diffusion } = negativeELBO(model, x0, { schedule, rng: Random.seed(0) });
 * const nats = tf.mean(total); // bits per dimension: bitsPerDim(nats, dims)
 */
export function negativeELBO(
  denoiser: DenoiserLike,
  x0: tf.Tensor,
  options: DiffusionLossOptions & {
    schedule: ContinuousSchedule;
    steps?: number;
    sampler?: LogSNRSampler;
  },
): ELBOTerms {
  assertX0(x0);
  assertContinuousSchedule(options.schedule);
  const { schedule, steps, sampler } = options;
  if (steps !== undefined && sampler !== undefined) {
    throw new LossError(
      'negativeELBO takes `steps` (discrete time) or `sampler` (continuous time), not both',
    );
  }
  return tf.tidy(() => {
    const lMax = logSNRAt(schedule, readTMin(options.tMin), options.differentiable);
    const lMin = logSNRAt(schedule, 1, options.differentiable);
    if (sampler !== undefined) {
      const a = typeof lMin === 'number' ? lMin : lMin.dataSync()[0]!;
      const b = typeof lMax === 'number' ? lMax : lMax.dataSync()[0]!;
      const tol = 1e-5 * Math.max(1, Math.abs(a), Math.abs(b));
      if (Math.abs(sampler.logSNRMin - a) > tol || Math.abs(sampler.logSNRMax - b) > tol) {
        throw new LossError(
          `the sampler covers logSNR [${sampler.logSNRMin}, ${sampler.logSNRMax}] but the schedule runs over [${a}, ${b}]; the diffusion term must cover exactly the schedule's range`,
        );
      }
    }
    const prior = priorKL(x0, lMin);
    const reconstruction = gaussianReconstructionNLL(x0, lMax);
    const rest = {
      rng: options.rng,
      ...(options.sampling === undefined ? {} : { sampling: options.sampling }),
      ...(options.cond === undefined ? {} : { cond: options.cond }),
      ...(options.noise === undefined ? {} : { noise: options.noise }),
      ...(options.differentiable === undefined ? {} : { differentiable: options.differentiable }),
      ...(options.tMin === undefined ? {} : { tMin: options.tMin }),
    };
    const diffusion =
      steps !== undefined
        ? discreteDiffusionLoss(denoiser, x0, { ...rest, schedule, steps })
        : sampler !== undefined
          ? continuousDiffusionLoss(denoiser, x0, { ...rest, sampler })
          : continuousDiffusionLoss(denoiser, x0, { ...rest, schedule });
    const total = tf.add(tf.add(prior, reconstruction), diffusion) as tf.Tensor1D;
    return { prior, reconstruction, diffusion, total };
  });
}

/**
 * Nats per example to bits per dimension: bpd = (nats - d log binWidth) / (d log 2). Without
 * `binWidth` it is the continuous density's bpd; with it, an upper bound on the bpd of data
 * discretised in bins of that width (uniform dequantisation; for 8-bit images scaled to [-1, 1],
 * binWidth = 2 / 255).
 *
 * @example
 * bitsPerDim(2 * Math.log(2), 2); // 1
 */
export function bitsPerDim(
  nats: number,
  dims: number,
  options: { binWidth?: number } = {},
): number {
  if (!Number.isFinite(nats)) throw new LossError(`nats must be finite, got ${nats}`);
  if (!Number.isInteger(dims) || dims < 1)
    throw new LossError(`dims must be a positive integer, got ${dims}`);
  const bw = options.binWidth;
  if (bw !== undefined && (!(bw > 0) || !Number.isFinite(bw))) {
    throw new LossError(`binWidth must be a positive finite number, got ${bw}`);
  }
  return (nats - (bw === undefined ? 0 : dims * Math.log(bw))) / (dims * Math.LN2);
}

/**
 * Mean and standard error sqrt(var / n) of per-example values (unbiased sample variance). For
 * estimates from i.i.d. draws; with antithetic or low-discrepancy times, examples of one batch are
 * dependent, so take the standard error over independent batches' means instead.
 *
 * @example
 * const { mean, standardError } = meanAndStandardError(await perExample.data());
 */
export function meanAndStandardError(values: ArrayLike<number>): {
  mean: number;
  standardError: number;
  n: number;
} {
  const n = values.length;
  if (n < 2) throw new LossError(`meanAndStandardError needs at least 2 values, got ${n}`);
  let mean = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v))
      throw new LossError(`value ${i} is ${v}; per-example losses must be finite`);
    mean += (v - mean) / (i + 1);
  }
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (values[i]! - mean) ** 2;
  return { mean, standardError: Math.sqrt(ss / (n - 1) / n), n };
}
