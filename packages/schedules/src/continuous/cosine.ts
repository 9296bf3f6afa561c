/**
 * The cosine schedule (Nichol & Dhariwal 2021, eq. 17 with s = 0) in its logSNR form, clipped to finite
 * endpoints as in "simple diffusion" (Hoogeboom et al. 2023, sec. 3.1):
 *
 *     lambda(t) = -2 log tan(a t + b),   b = atan(exp(-lambda_max / 2)),  a = atan(exp(-lambda_min / 2)) - b
 *     dlambda/dt = -4a / sin(2 (a t + b))
 *     alpha = cos(a t + b),  sigma = sin(a t + b)   (variance preserving)
 *
 * With lambda_max = +inf and lambda_min = -inf this is alpha = cos(pi t / 2) exactly.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ScheduleError } from '../errors.js';
import { BaseSchedule, readParams, type ScheduleConfig } from './schedule.js';

/** Parameters of `CosineSchedule` (defaults: lambda in [-15, 15], simple diffusion's clipping). */
export interface CosineParams {
  logSNRMin?: number;
  logSNRMax?: number;
}

/**
 * The cosine logSNR schedule.
 *
 * @example
 * const s = new CosineSchedule({ logSNRMin: -15, logSNRMax: 15 });
 * s.logSNR(0.5); // 0 (the midpoint of a symmetric range)
 */
export class CosineSchedule extends BaseSchedule {
  readonly name = 'cosine';
  readonly variancePreserving = true;
  private readonly a: number;
  private readonly b: number;
  private readonly range: { logSNRMin: number; logSNRMax: number };

  constructor(params: CosineParams = {}) {
    super();
    const p = readParams('cosine', params as Record<string, unknown>, {
      logSNRMin: -15,
      logSNRMax: 15,
    });
    if (!(p.logSNRMax > p.logSNRMin)) {
      throw new ScheduleError(
        `cosine: need logSNRMin < logSNRMax, got ${p.logSNRMin}, ${p.logSNRMax}`,
      );
    }
    this.range = p;
    this.b = Math.atan(Math.exp(-0.5 * p.logSNRMax));
    this.a = Math.atan(Math.exp(-0.5 * p.logSNRMin)) - this.b;
  }

  protected logSNRAt(t: number): number {
    return -2 * Math.log(Math.tan(this.a * t + this.b));
  }

  protected dLogSNRdtAt(t: number): number {
    return (-4 * this.a) / Math.sin(2 * (this.a * t + this.b));
  }

  protected override tFromLogSNRChecked(logSNR: number): number {
    return Math.min(1, Math.max(0, (Math.atan(Math.exp(-0.5 * logSNR)) - this.b) / this.a));
  }

  logSNRTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.mul(-2, tf.log(tf.tan(tf.add(tf.mul(t, this.a), this.b)))));
  }

  dLogSNRdtTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.div(-4 * this.a, tf.sin(tf.mul(2, tf.add(tf.mul(t, this.a), this.b)))));
  }

  toConfig(): ScheduleConfig {
    return { name: this.name, ...this.range };
  }
}
