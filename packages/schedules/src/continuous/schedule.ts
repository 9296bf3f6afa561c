/**
 * The one interface of every continuous-time noise schedule (Kingma et al. 2021, VDM sec. 2-3; Song et
 * al. 2021, score SDEs; Karras et al. 2022, EDM): at a time t in [0, 1], t = 0 clean and t = 1 noisiest,
 *
 *     x_t = alpha(t) x_0 + sigma(t) eps,   logSNR(t) = lambda(t) = 2 log(alpha(t) / sigma(t))
 *
 * with lambda strictly decreasing in t. A schedule gives alpha, sigma, lambda and dlambda/dt as numbers
 * (for sampling) and as differentiable tensors (for training: the continuous-time ELBO needs
 * SNR'(t) = SNR(t) dlambda/dt, VDM eq. 17), and inverts lambda and sigma back to t.
 */

import * as tf from '@tensorflow/tfjs-core';
import { ScheduleError } from '../errors.js';
import type { ScheduleName } from '../names.js';
import { type NoiseLevel, vpLevelFromLogSNR, vpLevelFromLogSNRTensor } from '../noise-level.js';

/** A serialisable description of a schedule: its registry name and parameters. */
export interface ScheduleConfig {
  name: ScheduleName;
  [param: string]: unknown;
}

/** A continuous-time noise schedule on t in [0, 1]. */
export interface ContinuousSchedule {
  /** The registry name (`vp-linear`, `cosine`, ...). */
  readonly name: string;
  /** True when alpha^2 + sigma^2 = 1 at every t. */
  readonly variancePreserving: boolean;
  /** lambda(0), the largest logSNR (may be +Infinity). */
  readonly logSNRMax: number;
  /** lambda(1), the smallest logSNR. */
  readonly logSNRMin: number;
  /** lambda(t) = log SNR(t). Throws `ScheduleError` for t outside [0, 1]. */
  logSNR(t: number): number;
  /** dlambda/dt (negative). */
  dLogSNRdt(t: number): number;
  /** alpha(t). */
  alpha(t: number): number;
  /** sigma(t) (this schedule's own sigma: VP sigma for VP schedules, VE sigma for VE ones). */
  sigma(t: number): number;
  /** { alpha(t), sigma(t) }. */
  level(t: number): NoiseLevel<number>;
  /** The t with lambda(t) = logSNR; throws outside [logSNRMin, logSNRMax]. */
  tFromLogSNR(logSNR: number): number;
  /** The t with sigma(t) = sigma (this schedule's own sigma). */
  tFromSigma(sigma: number): number;
  /** lambda(t) elementwise on a tensor of times (differentiable; values are not range-checked). */
  logSNRTensor(t: tf.Tensor): tf.Tensor;
  /** dlambda/dt elementwise on a tensor of times (differentiable in the schedule's parameters). */
  dLogSNRdtTensor(t: tf.Tensor): tf.Tensor;
  /** { alpha(t), sigma(t) } as tensors of t's shape (differentiable). */
  levelTensor(t: tf.Tensor): NoiseLevel<tf.Tensor>;
  /** The config that `createSchedule` turns back into this schedule. */
  toConfig(): ScheduleConfig;
  /** Frees tensors the schedule holds (learned schedules); a no-op for closed-form ones. */
  dispose(): void;
}

/**
 * Shared machinery for closed-form schedules: range checks, the VP or VE level from lambda, a bisection
 * fallback for the inverse, and tensor levels. A new schedule implements `logSNRAt`, `dLogSNRdtAt`,
 * `logSNRTensor`, `dLogSNRdtTensor` and `toConfig` (and overrides the inverse with a closed form when
 * it has one). `pnpm new schedule <name>` writes such a file and its registry line.
 *
 * @example
 * class Linear extends BaseSchedule {
 *   readonly name = 'linear-example';
 *   readonly variancePreserving = true;
 *   protected logSNRAt(t: number) { return 10 - 20 * t; }
 *   protected dLogSNRdtAt() { return -20; }
 *   logSNRTensor(t: tf.Tensor) { return tf.tidy(() => tf.sub(10, tf.mul(20, t))); }
 *   dLogSNRdtTensor(t: tf.Tensor) { return tf.fill(t.shape, -20); }
 *   toConfig() { return { name: this.name }; }
 * }
 */
export abstract class BaseSchedule implements ContinuousSchedule {
  abstract readonly name: string;
  abstract readonly variancePreserving: boolean;
  abstract logSNRTensor(t: tf.Tensor): tf.Tensor;
  abstract dLogSNRdtTensor(t: tf.Tensor): tf.Tensor;
  abstract toConfig(): ScheduleConfig;
  /** lambda(t) for t already checked to be in [0, 1]. */
  protected abstract logSNRAt(t: number): number;
  /** dlambda/dt for t already checked to be in [0, 1]. */
  protected abstract dLogSNRdtAt(t: number): number;

  get logSNRMax(): number {
    return this.logSNRAt(0);
  }

  get logSNRMin(): number {
    return this.logSNRAt(1);
  }

  logSNR(t: number): number {
    return this.logSNRAt(checkTime(t, this.name));
  }

  dLogSNRdt(t: number): number {
    return this.dLogSNRdtAt(checkTime(t, this.name));
  }

  level(t: number): NoiseLevel<number> {
    const l = this.logSNR(t);
    return this.variancePreserving ? vpLevelFromLogSNR(l) : { alpha: 1, sigma: Math.exp(-0.5 * l) };
  }

  alpha(t: number): number {
    return this.level(t).alpha;
  }

  sigma(t: number): number {
    return this.level(t).sigma;
  }

  tFromLogSNR(logSNR: number): number {
    this.checkLogSNR(logSNR);
    return this.tFromLogSNRChecked(logSNR);
  }

  tFromSigma(sigma: number): number {
    if (this.variancePreserving) {
      if (!(sigma >= 0 && sigma <= 1))
        throw new ScheduleError(`${this.name}: a VP sigma must be in [0, 1], got ${sigma}`);
      return this.tFromLogSNR(Math.log1p(-sigma * sigma) - 2 * Math.log(sigma));
    }
    if (!(sigma >= 0)) throw new ScheduleError(`${this.name}: sigma must be >= 0, got ${sigma}`);
    return this.tFromLogSNR(-2 * Math.log(sigma));
  }

  levelTensor(t: tf.Tensor): NoiseLevel<tf.Tensor> {
    return tf.tidy(() => {
      const l = this.logSNRTensor(t);
      if (this.variancePreserving) {
        const { alpha, sigma } = vpLevelFromLogSNRTensor(l);
        return { alpha, sigma };
      }
      return { alpha: tf.onesLike(l), sigma: tf.exp(tf.mul(l, -0.5)) };
    });
  }

  dispose(): void {}

  /** The inverse for a lambda already checked to be in range; bisection unless overridden. */
  protected tFromLogSNRChecked(logSNR: number): number {
    return bisectDecreasing((t) => this.logSNRAt(t), logSNR);
  }

  protected checkLogSNR(logSNR: number): void {
    const hi = this.logSNRMax;
    const lo = this.logSNRMin;
    // allow a few ulps of slack at the ends, where closed forms round
    const slack = (x: number) => 1e-12 * Math.max(1, Math.abs(x));
    if (Number.isNaN(logSNR) || logSNR > hi + slack(hi) || logSNR < lo - slack(lo)) {
      throw new ScheduleError(
        `${this.name}: logSNR ${logSNR} is outside the schedule's range [${lo}, ${hi}]`,
      );
    }
  }
}

/** Throws unless t is in [0, 1]; returns t. */
export function checkTime(t: number, name: string): number {
  if (!(t >= 0 && t <= 1)) throw new ScheduleError(`${name}: time t = ${t} is outside [0, 1]`);
  return t;
}

/**
 * The t in [0, 1] where a strictly decreasing f equals y (bisection to full double precision; 0 or 1
 * when y is outside f's range).
 *
 * @example
 * bisectDecreasing((t) => 1 - t * t, 0.75); // 0.5
 */
export function bisectDecreasing(f: (t: number) => number, y: number): number {
  let lo = 0;
  let hi = 1;
  if (y >= f(0)) return 0;
  if (y <= f(1)) return 1;
  for (let i = 0; i < 200 && hi - lo > 0; i++) {
    const mid = 0.5 * (lo + hi);
    if (mid === lo || mid === hi) break;
    if (f(mid) > y) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/**
 * Reads a schedule's numeric parameters, filling defaults; unknown names or non-finite values throw.
 *
 * @example
 * readParams('ve', { sigmaMax: 80 }, { sigmaMin: 0.01, sigmaMax: 50 }); // { sigmaMin: 0.01, sigmaMax: 80 }
 */
export function readParams<D extends Record<string, number>>(
  name: string,
  params: Record<string, unknown>,
  defaults: D,
): D {
  const out: Record<string, number> = { ...defaults };
  for (const [k, v] of Object.entries(params)) {
    if (k === 'name') continue;
    if (!(k in defaults)) {
      throw new ScheduleError(
        `${name}: unknown parameter '${k}'; expected ${Object.keys(defaults).join(', ')}`,
      );
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new ScheduleError(
        `${name}: parameter '${k}' must be a finite number, got ${String(v)}`,
      );
    }
    out[k] = v;
  }
  return out as D;
}

/**
 * expm1(x) = e^x - 1 on a tensor, accurate near 0 (tfjs has no expm1): a Taylor series for |x| < 0.1,
 * exp(x) - 1 elsewhere. Its gradient is e^x (a custom gradient, so the branch test is not on the tape).
 *
 * @example
 * expm1Tensor(tf.tensor1d([1e-6, 1])); // [1.0000005e-6, 1.7182817]
 */
export function expm1Tensor(x: tf.Tensor): tf.Tensor {
  return expm1Op(x);
}

type CustomGradArg = Parameters<typeof tf.customGrad>[0];

const expm1Op = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x]);
  const value = tf.tidy(() => {
    const small = tf.less(tf.abs(x), 0.1);
    // x + x^2/2 + x^3/6 + x^4/24 + x^5/120 + x^6/720 (Horner)
    let p = tf.add(tf.mul(x, 1 / 720), 1 / 120);
    for (const c of [1 / 24, 1 / 6, 1 / 2, 1]) p = tf.add(tf.mul(p, x), c);
    return tf.where(small, tf.mul(p, x), tf.sub(tf.exp(x), 1));
  });
  return { value, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, tf.exp(saved[0]!)) };
}) as unknown as CustomGradArg) as (x: tf.Tensor) => tf.Tensor;
