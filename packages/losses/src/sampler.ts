/**
 * Training-time samplers of the noise level. Every sampler draws logSNR lambda (through t, through
 * EDM's sigma, or directly) and reports the density p(lambda) it drew it with, so that the ELBO
 * weightings stay unbiased under any of them (Kingma & Gao 2023, sec. 4: sampling lambda from p and
 * weighting by w / p is the same objective as any other p; only the variance changes).
 *
 * Uniforms come in three flavours (`TimeSampling`):
 * - `iid`: independent U(0, 1).
 * - `antithetic`: pairs (u, 1 - u).
 * - `low-discrepancy`: VDM's shifted grid u_i = (u_0 + i / n) mod 1 (Kingma et al. 2021, appendix I.1;
 *   the VDM code calls this `antithetic_time_sampling`).
 * Each u_i is marginally U(0, 1), so every estimator stays unbiased; only its variance changes.
 */
import type { Random } from '@diffuse/backend';
import normalQuantile from '@stdlib/stats-base-dists-normal-quantile';
import { LossError } from './errors.js';
import { describe, type LogSNRSchedule } from './schedule.js';
import { type Weighting, weightingValues } from './weighting.js';

/** How the uniforms behind a batch of noise levels are drawn. */
export type TimeSampling = 'iid' | 'antithetic' | 'low-discrepancy';

/**
 * Every time-sampling mode, for validation and for iterating in tests.
 *
 * @example
 * for (const sampling of TIME_SAMPLINGS) uniformTimeSampler(schedule, { sampling });
 */
export const TIME_SAMPLINGS: readonly TimeSampling[] = ['iid', 'antithetic', 'low-discrepancy'];

/** Noise levels drawn for one batch. */
export interface LogSNRSample {
  /** lambda_i = log SNR of each example. */
  logSNR: Float64Array;
  /**
   * p(lambda_i): the density the sampler drew lambda_i with (over lambda). Every continuous sampler
   * reports it; a sampler of discrete timesteps has none (the ELBO weightings then refuse it).
   */
  density?: Float64Array;
  /** t_i, for samplers that draw continuous times. */
  t?: Float64Array;
  /** Integer timesteps i, for samplers over a discrete table. */
  timesteps?: Int32Array;
  /** The VE noise level sigma_i = e^{-lambda_i / 2} (EDM's sigma), for samplers of sigma. */
  sigma?: Float64Array;
}

/** Noise levels drawn by a continuous sampler: the density is always there. */
export type DensitySample = LogSNRSample & { density: Float64Array };

/** A training-time sampler of noise levels. */
export interface LogSNRSampler<S extends LogSNRSample = LogSNRSample> {
  readonly name: string;
  /** The support of p(lambda): [logSNRMin, logSNRMax] (may be infinite for EDM's log-normal). */
  readonly logSNRMin: number;
  readonly logSNRMax: number;
  /** Draws `n` noise levels. */
  sample(n: number, rng: Random): S;
}

/** Throws unless `n` is a positive integer. */
export function assertBatchSize(n: unknown, what = 'batch size'): asserts n is number {
  if (!Number.isInteger(n) || (n as number) < 1) {
    throw new LossError(`${what} must be a positive integer, got ${describe(n)}`);
  }
}

function assertRandom(rng: unknown): asserts rng is Random {
  if (rng === null || typeof rng !== 'object' || typeof (rng as Random).uniform01 !== 'function') {
    throw new LossError(
      `rng must be a Random from @diffuse/backend (Random.seed(n)), got ${describe(rng)}`,
    );
  }
}

/** Throws unless `s` names a time-sampling mode. */
export function assertTimeSampling(s: unknown): asserts s is TimeSampling {
  if (!TIME_SAMPLINGS.includes(s as TimeSampling)) {
    throw new LossError(
      `unknown time sampling '${String(s)}'; expected one of ${TIME_SAMPLINGS.join(', ')}`,
    );
  }
}

/**
 * `n` uniforms in [0, 1), i.i.d., antithetic (u, 1 - u) or low-discrepancy ((u_0 + i / n) mod 1).
 *
 * @example
 * uniformTimes(4, Random.seed(0), 'low-discrepancy'); // e.g. [0.71, 0.96, 0.21, 0.46]
 */
export function uniformTimes(n: number, rng: Random, sampling: TimeSampling = 'iid'): Float64Array {
  assertBatchSize(n);
  assertRandom(rng);
  assertTimeSampling(sampling);
  const u = new Float64Array(n);
  if (sampling === 'iid') {
    for (let i = 0; i < n; i++) u[i] = rng.uniform01();
  } else if (sampling === 'antithetic') {
    const half = Math.floor(n / 2);
    for (let i = 0; i < half; i++) {
      const a = rng.uniform01();
      u[i] = a;
      u[n - 1 - i] = a === 0 ? 0 : 1 - a; // keeps [0, 1)
    }
    if (n % 2 === 1) u[half] = rng.uniform01();
  } else {
    const u0 = rng.uniform01();
    for (let i = 0; i < n; i++) {
      const v = u0 + i / n;
      u[i] = v >= 1 ? v - 1 : v;
    }
  }
  return u;
}

/**
 * t ~ U(0, 1) pushed through a schedule: lambda = lambda(t), with density
 *
 *     p(lambda) = 1 / |d lambda / dt|,
 *
 * the sampler of Ho et al. 2020 (discrete t), VDM (continuous t) and score-SDE.
 *
 * @example
 * const sampler = uniformTimeSampler(schedule, { sampling: 'low-discrepancy' });
 * const { t, logSNR, density } = sampler.sample(128, Random.seed(0));
 */
export function uniformTimeSampler(
  schedule: LogSNRSchedule,
  options: { sampling?: TimeSampling } = {},
): LogSNRSampler<DensitySample> {
  if (typeof schedule?.logSNR !== 'function' || typeof schedule?.dLogSNRdt !== 'function') {
    throw new LossError(
      `uniformTimeSampler needs a schedule with logSNR(t) and dLogSNRdt(t), got ${describe(schedule)}`,
    );
  }
  const sampling = options.sampling ?? 'iid';
  assertTimeSampling(sampling);
  const l0 = schedule.logSNR(0);
  const l1 = schedule.logSNR(1);
  if (!Number.isFinite(l0) || !Number.isFinite(l1) || !(l0 > l1)) {
    throw new LossError(
      `the schedule's logSNR must be finite and decrease from t = 0 to t = 1, got lambda(0) = ${l0}, lambda(1) = ${l1}`,
    );
  }
  return {
    name: `uniform-t-${sampling}`,
    logSNRMin: l1,
    logSNRMax: l0,
    sample(n, rng) {
      const t = uniformTimes(n, rng, sampling);
      const logSNR = new Float64Array(n);
      const density = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const ti = t[i]!;
        const l = schedule.logSNR(ti);
        const d = schedule.dLogSNRdt(ti);
        if (!Number.isFinite(l) || !(d < 0) || !Number.isFinite(d)) {
          throw new LossError(
            `schedule at t = ${ti}: logSNR = ${l}, dLogSNRdt = ${d}; the logSNR must be finite and strictly decreasing`,
          );
        }
        logSNR[i] = l;
        density[i] = -1 / d;
      }
      return { t, logSNR, density };
    },
  };
}

/**
 * lambda ~ U(lambdaMin, lambdaMax), density 1 / (lambdaMax - lambdaMin): the logSNR-linear schedule
 * of VDM seen as a sampler, and the "uniform logSNR" sampler of Kingma & Gao 2023.
 *
 * @example
 * const sampler = uniformLogSNRSampler(-13.3, 5);
 */
export function uniformLogSNRSampler(
  logSNRMin: number,
  logSNRMax: number,
  options: { sampling?: TimeSampling } = {},
): LogSNRSampler<DensitySample> {
  assertRange(logSNRMin, logSNRMax);
  const sampling = options.sampling ?? 'iid';
  assertTimeSampling(sampling);
  const width = logSNRMax - logSNRMin;
  return {
    name: `uniform-logsnr-${sampling}`,
    logSNRMin,
    logSNRMax,
    sample(n, rng) {
      const u = uniformTimes(n, rng, sampling);
      const logSNR = new Float64Array(n);
      for (let i = 0; i < n; i++) logSNR[i] = logSNRMax - width * u[i]!;
      return { logSNR, density: new Float64Array(n).fill(1 / width) };
    },
  };
}

/**
 * EDM's training distribution of noise levels (Karras et al. 2022, sec. 5 and Table 1):
 * ln sigma ~ N(P_mean, P_std^2), P_mean = -1.2, P_std = 1.2. With sigma = e^{-lambda / 2} (the VE
 * noise level sigma / alpha) this is lambda ~ N(-2 P_mean, (2 P_std)^2), so
 *
 *     p(lambda) = N(lambda; -2 P_mean, 4 P_std^2).
 *
 * Antithetic and low-discrepancy sampling go through the normal quantile function.
 *
 * @example
 * const sampler = edmLogNormalSampler(); // P_mean = -1.2, P_std = 1.2
 * const { logSNR } = sampler.sample(64, Random.seed(0)); // sigma = exp(-logSNR / 2)
 */
export function edmLogNormalSampler(
  options: { pMean?: number; pStd?: number; sampling?: TimeSampling } = {},
): LogSNRSampler<DensitySample> {
  const pMean = options.pMean ?? -1.2;
  const pStd = options.pStd ?? 1.2;
  if (!Number.isFinite(pMean)) throw new LossError(`EDM P_mean must be finite, got ${pMean}`);
  if (!(pStd > 0) || !Number.isFinite(pStd))
    throw new LossError(`EDM P_std must be positive and finite, got ${pStd}`);
  const sampling = options.sampling ?? 'iid';
  assertTimeSampling(sampling);
  const mean = -2 * pMean;
  const std = 2 * pStd;
  return {
    name: `edm-lognormal-${sampling}`,
    logSNRMin: Number.NEGATIVE_INFINITY,
    logSNRMax: Number.POSITIVE_INFINITY,
    sample(n, rng) {
      const u = uniformTimes(n, rng, sampling);
      const logSNR = new Float64Array(n);
      const density = new Float64Array(n);
      const sigma = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const ui = Math.min(Math.max(u[i]!, 2 ** -53), 1 - 2 ** -53);
        // ln sigma = P_mean + P_std z  <=>  lambda = -2 ln sigma = mean - std z; z and -z have one law.
        const z = normalQuantile(ui, 0, 1);
        logSNR[i] = mean + std * z;
        density[i] = Math.exp(-0.5 * z * z) / (std * Math.sqrt(2 * Math.PI));
        sigma[i] = Math.exp(-0.5 * logSNR[i]!);
      }
      return { logSNR, density, sigma };
    },
  };
}

/**
 * Timesteps i ~ U{0, ..., T-1} of a discrete table (Ho et al. 2020, Algorithm 1), lambda_i =
 * log(abar_i / (1 - abar_i)) read from it (e.g. `DiscreteSchedule.logSNRs` of `@diffuse/schedules`).
 * A zero-terminal-SNR table ends at lambda = -inf (pure noise); that step is drawn at
 * `terminalLogSNR`, by default log(2^-24 / (1 - 2^-24)), the floor diffusers puts in
 * alphas_cumprod[T-1]. No density is reported (the ELBO over a discrete table is
 * `discreteDiffusionLoss`), so the ELBO weightings refuse this sampler.
 *
 * @example
 * const table = DiscreteSchedule.fromConfig({ betaSchedule: 'linear' });
 * const sampler = discreteTimestepSampler(table.logSNRs);
 * const { timesteps, logSNR } = sampler.sample(64, Random.seed(0));
 */
export function discreteTimestepSampler(
  logSNRs: ArrayLike<number>,
  options: { sampling?: TimeSampling; terminalLogSNR?: number } = {},
): LogSNRSampler {
  if (
    logSNRs === null ||
    typeof logSNRs !== 'object' ||
    typeof logSNRs.length !== 'number' ||
    logSNRs.length < 1
  ) {
    throw new LossError(
      `discreteTimestepSampler needs a non-empty table of logSNRs, got ${describe(logSNRs)}`,
    );
  }
  const floor = options.terminalLogSNR ?? Math.log(2 ** -24) - Math.log1p(-(2 ** -24));
  if (!Number.isFinite(floor)) throw new LossError(`terminalLogSNR must be finite, got ${floor}`);
  const sampling = options.sampling ?? 'iid';
  assertTimeSampling(sampling);
  const table = Float64Array.from(logSNRs);
  for (let i = 0; i < table.length; i++) {
    const l = table[i]!;
    if (Number.isNaN(l) || l === Number.POSITIVE_INFINITY) {
      throw new LossError(
        `logSNRs[${i}] = ${l}; a table's logSNRs must be finite (or -Infinity at a zero-SNR end)`,
      );
    }
    if (i > 0 && !(l < table[i - 1]!)) {
      throw new LossError(
        `logSNRs must strictly decrease with the timestep, but logSNRs[${i}] = ${l} >= logSNRs[${i - 1}] = ${table[i - 1]}`,
      );
    }
    if (l === Number.NEGATIVE_INFINITY)
      table[i] = Math.min(floor, i > 0 ? table[i - 1]! - 1e-6 : floor);
  }
  const n = table.length;
  return {
    name: `discrete-${n}-${sampling}`,
    logSNRMin: table[n - 1]!,
    logSNRMax: table[0]!,
    sample(count, rng) {
      const u = uniformTimes(count, rng, sampling);
      const timesteps = new Int32Array(count);
      const logSNR = new Float64Array(count);
      for (let k = 0; k < count; k++) {
        const i = Math.min(Math.floor(u[k]! * n), n - 1);
        timesteps[k] = i;
        logSNR[k] = table[i]!;
      }
      return { logSNR, timesteps };
    },
  };
}

/**
 * Importance sampling of lambda with density proportional to a non-negative function f on
 * [lambdaMin, lambdaMax], through the inverse CDF of f's piecewise-linear interpolant on a grid of
 * `gridSize` intervals (sampled exactly: each draw solves the quadratic CDF of its interval). The
 * reported density is that interpolant divided by its integral, so the ELBO weightings stay exact.
 * Proportional to Kingma & Gao's w(lambda) times the expected error, it minimises the variance of the
 * ELBO estimator. `f` may also be a `Weighting` (one that needs no density), taken on its own target:
 * lambda is then drawn proportionally to it.
 *
 * @example
 * // lambda with density proportional to sech(lambda / 2) (the cosine schedule's own p(lambda)):
 * const sampler = importanceSampler((l) => 1 / Math.cosh(l / 2), { logSNRMin: -15, logSNRMax: 15 });
 */
export function importanceSampler(
  f: ((logSNR: number) => number) | Weighting,
  options: {
    logSNRMin: number;
    logSNRMax: number;
    gridSize?: number;
    sampling?: TimeSampling;
    name?: string;
  },
): LogSNRSampler<DensitySample> {
  const isWeighting =
    f !== null && typeof f === 'object' && typeof (f as Weighting).weight === 'function';
  if (typeof f !== 'function' && !isWeighting) {
    throw new LossError(
      `importanceSampler needs a function of logSNR or a Weighting, got ${describe(f)}`,
    );
  }
  if (isWeighting && (f as Weighting).needsDensity) {
    throw new LossError(
      `importanceSampler cannot sample proportionally to the ${(f as Weighting).name} weighting: it depends on the sampler's own density`,
    );
  }
  const { logSNRMin, logSNRMax } = options;
  assertRange(logSNRMin, logSNRMax);
  const g = options.gridSize ?? 1024;
  assertBatchSize(g, 'importanceSampler gridSize');
  const sampling = options.sampling ?? 'iid';
  assertTimeSampling(sampling);
  const h = (logSNRMax - logSNRMin) / g;
  const grid = Float64Array.from({ length: g + 1 }, (_, j) => logSNRMin + j * h);
  const values = isWeighting
    ? weightingValues(f as Weighting, grid)
    : grid.map((l) => (f as (logSNR: number) => number)(l));
  const fs = new Float64Array(g + 1);
  for (let j = 0; j <= g; j++) {
    const l = grid[j]!;
    const v = values[j]!;
    if (!(v >= 0) || !Number.isFinite(v)) {
      throw new LossError(
        `importanceSampler: f(${l}) = ${v}; the function must be finite and non-negative`,
      );
    }
    fs[j] = v;
  }
  const cdf = new Float64Array(g + 1);
  for (let j = 0; j < g; j++) cdf[j + 1] = cdf[j]! + 0.5 * h * (fs[j]! + fs[j + 1]!);
  const z = cdf[g]!;
  if (!(z > 0) || !Number.isFinite(z)) {
    throw new LossError(
      `importanceSampler: f integrates to ${z} on [${logSNRMin}, ${logSNRMax}]; it must be positive somewhere`,
    );
  }
  return {
    name: options.name ?? `importance-${sampling}`,
    logSNRMin,
    logSNRMax,
    sample(n, rng) {
      const u = uniformTimes(n, rng, sampling);
      const logSNR = new Float64Array(n);
      const density = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const m = u[i]! * z;
        // The interval j with cdf[j] <= m < cdf[j + 1] and positive mass.
        let lo = 0;
        let hi = g;
        while (hi - lo > 1) {
          const mid = (lo + hi) >> 1;
          if (cdf[mid]! <= m) lo = mid;
          else hi = mid;
        }
        while (lo < g - 1 && cdf[lo + 1]! <= cdf[lo]!) lo++;
        const a = fs[lo]!;
        const b = fs[lo + 1]!;
        const r = Math.max(0, m - cdf[lo]!);
        // Mass within the interval: a x + (b - a) x^2 / (2h) = r, solved stably for x in [0, h].
        const q = (b - a) / (2 * h);
        const disc = Math.max(a * a + 4 * q * r, 0);
        const x = Math.min(
          Math.max(a + Math.sqrt(disc) > 0 ? (2 * r) / (a + Math.sqrt(disc)) : 0, 0),
          h,
        );
        logSNR[i] = logSNRMin + lo * h + x;
        density[i] = (a + ((b - a) * x) / h) / z;
      }
      return { logSNR, density };
    },
  };
}

function assertRange(lo: number, hi: number): void {
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(hi > lo)) {
    throw new LossError(
      `logSNR range must be finite with logSNRMin < logSNRMax, got [${lo}, ${hi}]`,
    );
  }
}
